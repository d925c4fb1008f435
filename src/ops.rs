//! claim / release / status. One round of concurrent reads (VPC CIDRs, the selected tables
//! with their routes, the ENI), validation, a plan per table, one round of concurrent
//! mutations, then a bounded read-back. Fills the report as it learns things, so a failure
//! still says how far the call got.

use crate::aws::ec2::{self, TableObs};
use crate::aws::imds::Identity;
use crate::aws::session::Session;
use crate::check;
use crate::config::{self, Config, Selection};
use crate::error::{quote, Error, Result};
use crate::local;
use crate::net::Ipv4Net;
use crate::plan::{self, RouteView, Step};
use crate::report::{Action, ErrorReport, LocalReport, Op, Report, RouteState, TableReport};
use crate::runtime;
use futures_util::future::{join3, join_all};
use std::time::{Duration, Instant};
use tokio::time::{sleep, timeout_at};

/// How long the whole-call timer may trail the per-step timers, so a step that times out is
/// still reported per table.
const DEADLINE_SLACK: Duration = Duration::from_millis(25);
/// Read-back: EC2 reads are eventually consistent; look again a few times, briefly.
const READ_BACK_TRIES: u32 = 3;
const READ_BACK_PAUSE: Duration = Duration::from_millis(100);

/// Environment values that must never appear in a result.
const SECRET_ENV: [&str; 2] = ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

/// Test hook: `IRISVIP_TEST_PANIC=<op>` makes that entry panic as it starts, to prove no panic
/// crosses the C boundary; `<op>@runtime` panics inside the runtime instead (the process lock
/// held, `block_on` running), to prove the next call starts from a fresh runtime and session.
/// Harmless in production (nobody sets it).
const PANIC_HOOK_ENV: &str = "IRISVIP_TEST_PANIC";

/// Runs one entry on the raw config bytes and returns its result; never interrupted (the CLI).
/// Never panics on bad input.
pub fn execute(op: Op, raw: &[u8]) -> Report {
    execute_with(op, raw, &crate::interrupt::never)
}

/// As `execute`, asking `interrupted()` every `interrupt::TICK` while the call waits: when it
/// answers true (IRIS wants the process to stop) the call returns at once with kind
/// `interrupted`, its requests in flight abandoned.
pub fn execute_with(op: Op, raw: &[u8], interrupted: &dyn Fn() -> bool) -> Report {
    let started = Instant::now();
    let panic_hook = std::env::var(PANIC_HOOK_ENV).unwrap_or_default();
    if panic_hook == op.as_str() {
        panic!("{PANIC_HOOK_ENV} asked {} to panic", op.as_str());
    }
    let panic_in_runtime = panic_hook.strip_suffix("@runtime") == Some(op.as_str());
    let mut report = Report::new(op);
    if op == Op::Status {
        report.source_dest_check = Some(None);
    }
    match config::parse(raw) {
        Err(e) => report.fail(&e),
        Ok(cfg) => {
            report.dry_run = cfg.dry_run && matches!(op, Op::Claim | Op::Release);
            let deadline = tokio::time::Instant::from_std(started + cfg.timeout);
            let ran = runtime::with_process(|rt, session| {
                rt.block_on(async {
                    if panic_in_runtime {
                        panic!("{PANIC_HOOK_ENV} asked {} to panic in the runtime", op.as_str());
                    }
                    let call = async {
                        match op {
                            Op::Check => check::run(&cfg, session, &mut report, deadline).await,
                            _ => run(op, &cfg, session, &mut report, deadline).await,
                        }
                    };
                    let bounded = timeout_at(deadline + DEADLINE_SLACK, call);
                    match crate::interrupt::or_interrupted(bounded, interrupted).await {
                        Some(Ok(Ok(()))) => {}
                        Some(Ok(Err(e))) => report.fail(&e),
                        Some(Err(_)) => report.fail(&Error::timeout(format!(
                            "{} did not finish within timeout_ms={}; EC2 or instance metadata is slow or unreachable",
                            op.as_str(),
                            cfg.timeout.as_millis()
                        ))),
                        None => {
                            let changed = if matches!(op, Op::Status | Op::Check) {
                                "nothing was changed (it only reads)"
                            } else if cfg.dry_run {
                                "nothing was changed (dry_run=1)"
                            } else {
                                "route changes already sent to EC2 may have taken effect, whether or not this \
                                 result lists them; call vip_status to see where the VIP's routes point now"
                            };
                            let e = Error::interrupted(format!(
                                "IRIS asked this process to stop (SIGINT/SIGTERM/RESJOB) during {} after {} ms; {changed}",
                                op.as_str(),
                                started.elapsed().as_millis()
                            ));
                            // The interruption is what the caller must see; an earlier error
                            // of this call stays readable as a warning.
                            if let Some(earlier) = report.error.take() {
                                report
                                    .warnings
                                    .push(format!("before the interruption: {}: {}", earlier.kind, earlier.message));
                            }
                            report.fail(&e);
                        }
                    }
                })
            });
            if let Err(e) = ran {
                report.fail(&e);
            }
        }
    }
    let secrets: Vec<String> = SECRET_ENV
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .collect();
    report.redact(&secrets);
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    report
}

async fn run(
    op: Op,
    cfg: &Config,
    session: &mut Session,
    report: &mut Report,
    deadline: tokio::time::Instant,
) -> Result<()> {
    let (region, client, me) = session
        .prepare(
            cfg.region.as_deref(),
            cfg.endpoint.as_deref(),
            cfg.eni.as_deref(),
        )
        .await?;
    report.region = Some(region);
    report.instance_id = me.instance_id.clone();
    report.eni = Some(me.eni.clone());
    report.vpc_id = Some(me.vpc_id.clone());

    let on_label = local::ipv4_on_label(&cfg.interface);
    let vip = match cfg.vip {
        Some(v) => v,
        None => default_vip(&cfg.interface, &on_label, &mut report.warnings)?,
    };
    report.vip = Some(vip.to_string());
    let vip_present = on_label.as_ref().is_ok_and(|a| a.contains(&vip.addr));
    let dest = vip.to_string();

    // A claim or release reads only what it needs on the failover's critical path: the
    // tables, and the VPC's CIDRs once per few minutes (they change on a human's time scale).
    // The ENI (SourceDestCheck) is read by status and check.
    let cached_cidrs = session.cached_cidrs(&me.vpc_id);
    let fresh_read = cached_cidrs.is_none();
    let (cidrs, tables, eni_info) =
        read_round(&client, cfg, &me, &dest, cached_cidrs, op == Op::Status).await;
    let cidrs = cidrs?;
    if fresh_read {
        session.remember_cidrs(&me.vpc_id, &cidrs);
    }
    outside_vpc(vip, &cidrs, &me.vpc_id)?;
    let tables = tables?;
    check_tables(&tables, &cfg.selection, &me)?;
    let source_dest_check = match eni_info {
        Some(Ok(info)) => info.source_dest_check,
        Some(Err(e)) => {
            report.warnings.push(format!(
                "cannot read SourceDestCheck of {}: {}",
                me.eni, e.message
            ));
            None
        }
        None => None,
    };
    if source_dest_check == Some(true) {
        report.warnings.push(format!(
            "SourceDestCheck is enabled on {}: the instance drops packets addressed to the VIP; disable it \
             (aws ec2 modify-network-interface-attribute --no-source-dest-check)",
            me.eni
        ));
    }

    if op == Op::Status {
        report.local = Some(LocalReport {
            interface: cfg.interface.clone(),
            vip_present,
        });
        report.source_dest_check = Some(source_dest_check);
        let routes: Vec<RouteView> = tables.iter().map(|t| t.route.clone()).collect();
        fill_tables(report, &tables, &routes, None, &me.eni);
        report.ok = true;
        return Ok(());
    }

    if op == Op::Claim && !vip_present {
        report.warnings.push(format!(
            "{vip} is not on label {} of this host: the route will lead here but nothing answers; \
             configure the VIP on {} (ip addr add {} dev <eth> label {})",
            cfg.interface, cfg.interface, vip.addr, cfg.interface
        ));
    }
    let steps: Vec<Step> = tables
        .iter()
        .map(|t| match op {
            Op::Release => plan::release_step(&t.route, &me.eni),
            _ => plan::claim_step(&t.route, &me.eni),
        })
        .collect();

    if cfg.dry_run {
        let actions: Vec<Result<Action>> = steps
            .iter()
            .map(|s| {
                Ok(if *s == Step::Keep {
                    Action::Unchanged
                } else {
                    Action::Planned
                })
            })
            .collect();
        let routes: Vec<RouteView> = tables.iter().map(|t| t.route.clone()).collect();
        fill_tables(report, &tables, &routes, Some(&actions), &me.eni);
        report.ok = true;
        return Ok(());
    }

    // Round 2: every mutation at once, each bounded by the deadline.
    let (client_ref, dest_ref, eni_ref) = (&client, dest.as_str(), me.eni.as_str());
    let actions: Vec<Result<Action>> = join_all(tables.iter().zip(&steps).map(|(t, step)| async move {
        timeout_at(deadline, ec2::apply(client_ref, &t.id, dest_ref, eni_ref, *step))
            .await
            .unwrap_or_else(|_| {
                Err(Error::timeout(format!(
                    "{}: no answer from EC2 before the deadline; the route may or may not have changed",
                    t.id
                )))
            })
    }))
    .await;

    // Read-back, only when something changed: what an unchanged call saw is still current.
    let mut routes: Vec<RouteView> = tables.iter().map(|t| t.route.clone()).collect();
    if steps.iter().any(|s| *s != Step::Keep) {
        match read_back(&client, &tables, &steps, &actions, &dest, &me.eni, deadline).await {
            Ok(seen) => routes = seen,
            Err(e) => report.warnings.push(format!(
                "read-back failed, reporting the routes as read before the change: {}",
                e.message
            )),
        }
    }
    for ((t, route), (step, action)) in tables.iter().zip(&routes).zip(steps.iter().zip(&actions)) {
        if action.is_ok() && !plan::step_took_effect(*step, route, &me.eni) {
            report.warnings.push(format!(
                "{}: read-back shows the route {} after our change; another member may have acted at the same time",
                t.id,
                route.target.as_deref().unwrap_or("absent")
            ));
        }
    }
    let mut settle_error = None;
    if op == Op::Claim && !cfg.settle.is_zero() && steps.iter().any(|s| *s != Step::Keep) {
        settle_error = settle_and_reassert(
            &client,
            &tables,
            &mut routes,
            &dest,
            &me.eni,
            cfg.settle,
            deadline,
            &mut report.warnings,
        )
        .await;
    }
    fill_tables(report, &tables, &routes, Some(&actions), &me.eni);
    match actions
        .iter()
        .find_map(|a| a.as_ref().err())
        .or(settle_error.as_ref())
    {
        Some(e) => report.fail(e),
        None => report.ok = true,
    }
    Ok(())
}

/// After a switch: waits `settle`, reads the tables once more and re-creates routes that were
/// deleted meanwhile. EC2 has no conditional delete, so an old holder's release that read the
/// route before our switch can still delete it after; this closes most of that window.
/// Routes another member took are reported, not fought over.
#[allow(clippy::too_many_arguments)]
async fn settle_and_reassert(
    client: &aws_sdk_ec2::Client,
    tables: &[TableObs],
    routes: &mut [RouteView],
    dest: &str,
    eni: &str,
    settle: Duration,
    deadline: tokio::time::Instant,
    warnings: &mut Vec<String>,
) -> Option<Error> {
    if tokio::time::Instant::now() + settle >= deadline {
        warnings
            .push("settle_ms: no time left within timeout_ms to re-check the routes".to_owned());
        return None;
    }
    sleep(settle).await;
    let ids = Selection::Ids(tables.iter().map(|t| t.id.clone()).collect());
    let vpc = tables
        .first()
        .and_then(|t| t.vpc_id.clone())
        .unwrap_or_default();
    let seen = match timeout_at(deadline, ec2::route_tables(client, &ids, &vpc, dest)).await {
        Ok(Ok(seen)) => seen,
        Ok(Err(e)) => {
            warnings.push(format!("settle_ms: re-check failed: {}", e.message));
            return None;
        }
        Err(_) => {
            warnings.push("settle_ms: re-check ran out of time".to_owned());
            return None;
        }
    };
    let lost: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, t)| t.route.state == RouteState::Absent)
        .map(|(i, _)| i)
        .collect();
    for (i, t) in seen.iter().enumerate() {
        if t.route.state != RouteState::Absent && !t.route.points_at(eni) {
            warnings.push(format!(
                "{}: after the claim the route points at {}; another member claimed at the same time",
                t.id,
                t.route.target.as_deref().unwrap_or("?")
            ));
        }
        routes[i] = t.route.clone();
    }
    let redo = join_all(lost.iter().map(|&i| {
        timeout_at(
            deadline,
            ec2::apply(client, &tables[i].id, dest, eni, Step::Create),
        )
    }))
    .await;
    let mut first_error = None;
    for (&i, outcome) in lost.iter().zip(redo) {
        match outcome {
            Ok(Ok(_)) => {
                warnings.push(format!("{}: the route vanished after the claim (a late release elsewhere?); re-created it", tables[i].id));
                routes[i] = RouteView {
                    target: Some(eni.to_owned()),
                    state: RouteState::Active,
                };
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert(Error::timeout(format!(
                    "{}: re-creating the vanished route ran out of time",
                    tables[i].id
                )));
            }
        }
    }
    first_error
}

/// Round 1: everything validation and planning need, in one round of concurrent requests:
/// the VPC's CIDRs (unless `cached`), the selected tables with their routes, and the ENI when
/// `with_eni`.
pub(crate) async fn read_round(
    client: &aws_sdk_ec2::Client,
    cfg: &Config,
    me: &Identity,
    dest: &str,
    cached: Option<Vec<Ipv4Net>>,
    with_eni: bool,
) -> (
    Result<Vec<Ipv4Net>>,
    Result<Vec<TableObs>>,
    Option<Result<ec2::EniInfo>>,
) {
    join3(
        async {
            match cached {
                Some(c) => Ok(c),
                None => ec2::vpc_cidrs(client, &me.vpc_id).await,
            }
        },
        ec2::route_tables(client, &cfg.selection, &me.vpc_id, dest),
        async {
            if with_eni {
                Some(ec2::describe_eni(client, &me.eni).await)
            } else {
                None
            }
        },
    )
    .await
}

/// The VIP must lie outside every CIDR of the VPC.
pub(crate) fn outside_vpc(vip: Ipv4Net, cidrs: &[Ipv4Net], vpc_id: &str) -> Result<()> {
    match cidrs.iter().find(|c| c.contains(vip.addr)) {
        Some(c) => Err(Error::validation(format!(
            "vip {vip} lies inside {c}, a CIDR of {vpc_id}: AWS refuses such a route; use an overlay address \
             outside every CIDR of the VPC"
        ))),
        None => Ok(()),
    }
}

/// The IPv4 address on the VIP label, when the config gives no `vip`.
pub(crate) fn default_vip(
    label: &str,
    on_label: &std::io::Result<Vec<std::net::Ipv4Addr>>,
    warnings: &mut Vec<String>,
) -> Result<Ipv4Net> {
    let addrs = on_label.as_ref().map_err(|e| {
        Error::config(format!(
            "no vip= given and the addresses of this host cannot be read ({e}); give vip="
        ))
    })?;
    let Some(first) = addrs.first() else {
        return Err(Error::config(format!(
            "no vip= given and no IPv4 address carries the label {} on this host; give vip= or configure the label",
            quote(label)
        )));
    };
    if addrs.len() > 1 {
        warnings.push(format!(
            "label {label} carries {} addresses; using the first, {first}",
            addrs.len()
        ));
    }
    Ok(Ipv4Net {
        addr: *first,
        prefix: 32,
    })
}

/// The selected tables must exist and belong to our VPC.
pub(crate) fn check_tables(tables: &[TableObs], sel: &Selection, me: &Identity) -> Result<()> {
    if tables.is_empty() {
        return Err(Error::not_found(match sel {
            Selection::Tag { key, value } => {
                format!(
                    "no route table of {} carries the tag {key}={value}",
                    me.vpc_id
                )
            }
            _ => format!("{} has no route tables", me.vpc_id),
        }));
    }
    for t in tables {
        if t.vpc_id.as_deref() != Some(me.vpc_id.as_str()) {
            return Err(Error::validation(format!(
                "route table {} belongs to {}, not to {} (the VPC of {}); list only this VPC's tables",
                t.id,
                t.vpc_id.as_deref().unwrap_or("no VPC"),
                me.vpc_id,
                me.eni
            )));
        }
    }
    Ok(())
}

/// Reads the selected tables again until every successful change shows (bounded by tries
/// and the deadline); returns the routes seen last.
async fn read_back(
    client: &aws_sdk_ec2::Client,
    tables: &[TableObs],
    steps: &[Step],
    actions: &[Result<Action>],
    dest: &str,
    eni: &str,
    deadline: tokio::time::Instant,
) -> Result<Vec<RouteView>> {
    let ids = Selection::Ids(tables.iter().map(|t| t.id.clone()).collect());
    let mut tries = 0;
    loop {
        tries += 1;
        let vpc = tables
            .first()
            .and_then(|t| t.vpc_id.clone())
            .unwrap_or_default();
        let seen = timeout_at(deadline, ec2::route_tables(client, &ids, &vpc, dest))
            .await
            .map_err(|_| Error::timeout("no time left before the deadline"))??;
        let routes: Vec<RouteView> = seen.into_iter().map(|t| t.route).collect();
        let settled = routes
            .iter()
            .zip(steps.iter().zip(actions))
            .all(|(r, (s, a))| a.is_err() || plan::step_took_effect(*s, r, eni));
        let pause_fits = tokio::time::Instant::now() + READ_BACK_PAUSE < deadline;
        if settled || tries >= READ_BACK_TRIES || !pause_fits {
            return Ok(routes);
        }
        sleep(READ_BACK_PAUSE).await;
    }
}

/// Writes the per-table entries and the holder.
pub(crate) fn fill_tables(
    report: &mut Report,
    tables: &[TableObs],
    routes: &[RouteView],
    actions: Option<&[Result<Action>]>,
    eni: &str,
) {
    report.route_tables = tables
        .iter()
        .zip(routes)
        .enumerate()
        .map(|(i, (t, r))| {
            let outcome = actions.and_then(|a| a.get(i));
            let (target, other_target) = split_target(r.target.as_deref());
            TableReport {
                id: t.id.clone(),
                target,
                other_target,
                state: r.state,
                is_self: r.points_at(eni),
                action: outcome.map(|o| o.as_ref().copied().unwrap_or(Action::Failed)),
                error: outcome
                    .and_then(|o| o.as_ref().err())
                    .map(ErrorReport::from),
            }
        })
        .collect();
    report.holder = Some(plan::holder(routes, eni));
}

/// The contract's `target` is an ENI id or null; a route to anything else (a gateway, a
/// peering, a NAT) names it in `other_target` instead.
fn split_target(target: Option<&str>) -> (Option<String>, Option<String>) {
    match target {
        Some(t) if t.starts_with("eni-") => (Some(t.to_owned()), None),
        Some(t) => (None, Some(t.to_owned())),
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_is_an_eni_or_null() {
        assert_eq!(split_target(Some("eni-1")), (Some("eni-1".into()), None));
        assert_eq!(split_target(Some("igw-1")), (None, Some("igw-1".into())));
        assert_eq!(split_target(None), (None, None));
    }
}
