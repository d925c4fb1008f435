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
use crate::net::IpNet;
use crate::plan::{self, RouteView, Step};
use crate::report::{Action, ErrorReport, LocalReport, Op, Report, RouteState, TableReport};
use crate::runtime;
use futures_util::future::{join3, join_all};
use futures_util::stream::{self, StreamExt};
use std::time::{Duration, Instant};
use tokio::time::{sleep, timeout_at};

/// How long the whole-call timer may trail the per-step timers, so a step that times out is
/// still reported per table.
const DEADLINE_SLACK: Duration = Duration::from_millis(25);

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
                        Some(Err(_)) => {
                            // A resolver that never answered is the likeliest cause: name it.
                            let why = session.unanswered_dns().unwrap_or_else(|| {
                                "EC2 or instance metadata is slow or unreachable".to_owned()
                            });
                            report.fail(&Error::timeout(format!(
                                "{} did not finish within timeout_ms={}: {why}",
                                op.as_str(),
                                cfg.timeout.as_millis()
                            )))
                        }
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
            cfg.role.as_ref(),
            deadline,
        )
        .await?;
    report.region = Some(region);
    report.instance_id = me.instance_id.clone();
    report.eni = Some(me.eni.clone());
    report.vpc_id = Some(me.vpc_id.clone());

    // The VIP's label: as configured, else `<device>:1` of the device with our ENI's MAC.
    let label = vip_label(cfg, &me);
    let on_label = local::addresses(&label);
    let vip = match cfg.vip {
        Some(v) => v,
        None => default_vip(&label, &on_label, &mut report.warnings)?,
    };
    report.vip = Some(vip.to_string());
    let vip_present = on_label.as_ref().is_ok_and(|a| a.contains(&vip.addr()));
    let dest = vip.to_string();

    // A claim or release reads only what it needs on the failover's critical path: the
    // tables, and the VPC's CIDRs once per few minutes (they change on a human's time scale).
    // The ENI (SourceDestCheck) is read by status and check.
    let cached_cidrs = session.cached_cidrs(&me.vpc_id);
    let fresh_read = cached_cidrs.is_none();
    let (cidrs, tables, eni_info) = read_round(
        &client,
        cfg,
        &me,
        &dest,
        cached_cidrs,
        op == Op::Status,
        deadline,
    )
    .await;
    let cidrs = cidrs?;
    if fresh_read {
        session.remember_cidrs(&me.vpc_id, &cidrs);
    }
    outside_vpc(vip, &cidrs, &me.vpc_id)?;
    let tables = without_edge_tables(tables?, &cfg.selection, &mut report.warnings);
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
            interface: label.clone(),
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
            label,
            label,
            vip.addr(),
            label
        ));
    }
    let steps: Vec<Step> = tables
        .iter()
        .map(|t| match op {
            Op::Release => plan::release_step(&t.route, &me.eni),
            _ => plan::claim_step(&t.route, &me.eni, cfg.write),
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

    let actions = mutate(&client, &tables, &steps, &dest, &me.eni, cfg, deadline).await;
    if op == Op::Release {
        warn_stale_release(report, &tables, &actions);
    }

    // Read-back, only where something was written: what an unchanged table showed is current.
    let mut seen = ReadBack::unread(&tables);
    if steps.iter().any(|s| *s != Step::Keep) {
        seen = read_back(&client, &tables, &steps, &actions, &dest, &me.eni, deadline).await;
        if let Some(e) = &seen.error {
            report.warnings.push(format!(
                "read-back failed, reporting the routes as read before the change: {}",
                e.message
            ));
        }
    }
    for (i, t) in tables.iter().enumerate() {
        if actions[i].is_err() || steps[i] == Step::Keep || seen.confirmed[i] {
            continue;
        }
        let now = seen.routes[i].target.as_deref().unwrap_or("absent");
        report.warnings.push(
            if plan::may_be_stale(steps[i], &t.route, &seen.routes[i]) {
                format!(
                    "{}: EC2 accepted the change but no read showed it before the deadline (EC2 reads are \
                     eventually consistent); the last read still shows {now}",
                    t.id
                )
            } else {
                format!(
                    "{}: read-back shows the route {now} after our change; another member may have acted at the same time",
                    t.id
                )
            },
        );
    }
    let mut routes = seen.routes;
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
    for (t, (step, (action, confirmed))) in report
        .route_tables
        .iter_mut()
        .zip(steps.iter().zip(actions.iter().zip(&seen.confirmed)))
    {
        if *step != Step::Keep && action.is_ok() {
            t.confirmed = Some(*confirmed);
        }
    }
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

/// Round 2: the mutations, at most `max_in_flight` at once (EC2 throttles per account; the
/// rest wait for a slot rather than collect `RequestLimitExceeded`), each retried on
/// throttling within the deadline. Results in table order.
async fn mutate(
    client: &aws_sdk_ec2::Client,
    tables: &[TableObs],
    steps: &[Step],
    dest: &str,
    eni: &str,
    cfg: &Config,
    deadline: tokio::time::Instant,
) -> Vec<Result<Action>> {
    stream::iter(tables.iter().zip(steps).map(|(t, step)| async move {
        timeout_at(
            deadline,
            ec2::apply(client, &t.id, dest, eni, *step, deadline),
        )
        .await
        .unwrap_or_else(|_| {
            Err(Error::timeout(format!(
                "{}: no answer from EC2 before the deadline; the route may or may not have changed",
                t.id
            )))
        })
    }))
    .buffered(cfg.max_in_flight.max(1))
    .collect()
    .await
}

/// A release deletes on the strength of its read; EC2 has no conditional delete and its reads
/// lag writes, so a route another member claimed seconds ago can still read as ours. Say so,
/// naming the tables, so an operator (or the other member's re-assert) can look.
fn warn_stale_release(report: &mut Report, tables: &[TableObs], actions: &[Result<Action>]) {
    let deleted: Vec<&str> = tables
        .iter()
        .zip(actions)
        .filter(|(_, a)| matches!(a, Ok(Action::Deleted)))
        .map(|(t, _)| t.id.as_str())
        .collect();
    if deleted.is_empty() {
        return;
    }
    report.stale_read_risk = true;
    report.warnings.push(format!(
        "deleted the route in {} because a read showed it pointing here; EC2 reads are eventually consistent, \
         so if another member claimed within the last seconds its route may be gone: its claim's read-back, \
         settle_ms or the re-assert (write=changed) puts it back; check with status",
        deleted.join(", ")
    ));
}

/// After a switch: waits `settle`, reads the tables once more and re-creates routes that were
/// deleted meanwhile. EC2 has no conditional delete, so an old holder's release that read the
/// route before our switch can still delete it after; this closes most of that window.
/// Routes another member took, or re-created after the deletion, are reported, never fought
/// over: the re-creation is a plain create that backs off when a route exists.
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
    let seen = match timeout_at(
        deadline,
        ec2::route_tables(client, &ids, &vpc, dest, deadline),
    )
    .await
    {
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
            ec2::create_if_absent(client, &tables[i].id, dest, eni, deadline),
        )
    }))
    .await;
    let mut first_error = None;
    for (&i, outcome) in lost.iter().zip(redo) {
        match outcome {
            Ok(Ok(true)) => {
                warnings.push(format!("{}: the route vanished after the claim (a late release elsewhere?); re-created it", tables[i].id));
                routes[i] = RouteView {
                    target: Some(eni.to_owned()),
                    state: RouteState::Active,
                };
            }
            Ok(Ok(false)) => warnings.push(format!(
                "{}: the route vanished after the claim and another member created it again before us; left it alone",
                tables[i].id
            )),
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
    cached: Option<Vec<IpNet>>,
    with_eni: bool,
    deadline: tokio::time::Instant,
) -> (
    Result<Vec<IpNet>>,
    Result<Vec<TableObs>>,
    Option<Result<ec2::EniInfo>>,
) {
    join3(
        async {
            match cached {
                Some(c) => Ok(c),
                None => ec2::vpc_cidrs(client, &me.vpc_id, deadline).await,
            }
        },
        ec2::route_tables(client, &cfg.selection, &me.vpc_id, dest, deadline),
        async {
            if with_eni {
                Some(ec2::describe_eni(client, &me.eni, deadline).await)
            } else {
                None
            }
        },
    )
    .await
}

/// The VIP must lie outside every CIDR of the VPC.
pub(crate) fn outside_vpc(vip: IpNet, cidrs: &[IpNet], vpc_id: &str) -> Result<()> {
    match cidrs.iter().find(|c| c.contains(vip.addr())) {
        Some(c) => Err(Error::validation(format!(
            "vip {vip} lies inside {c}, a CIDR of {vpc_id}: AWS refuses such a route; use an overlay address \
             outside every CIDR of the VPC"
        ))),
        None => Ok(()),
    }
}

/// The address label that carries the VIP: `interface=` when given, else the `:1` label of the
/// device whose MAC is our ENI's (`ens5:1` on current Nitro AMIs), else `eth0:1`.
pub(crate) fn vip_label(cfg: &Config, me: &Identity) -> String {
    match &cfg.interface {
        Some(label) => label.clone(),
        None => local::label_for_mac(me.mac.as_deref(), config::DEFAULT_INTERFACE),
    }
}

/// The IPv4 address on the VIP label, when the config gives no `vip`.
pub(crate) fn default_vip(
    label: &str,
    on_label: &std::io::Result<Vec<std::net::IpAddr>>,
    warnings: &mut Vec<String>,
) -> Result<IpNet> {
    let addrs: Vec<std::net::Ipv4Addr> = on_label
        .as_ref()
        .map_err(|e| {
            Error::config(format!(
                "no vip= given and the addresses of this host cannot be read ({e}); give vip="
            ))
        })?
        .iter()
        .filter_map(|a| match a {
            std::net::IpAddr::V4(v4) => Some(*v4),
            std::net::IpAddr::V6(_) => None,
        })
        .collect();
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
    Ok(IpNet::V4(crate::net::Ipv4Net {
        addr: *first,
        prefix: 32,
    }))
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

/// The default selection (every table of the VPC) leaves out edge tables, those associated
/// with an internet or virtual private gateway: AWS refuses a route to an overlay address
/// there, so including them would fail every claim. Tables named by id or tag are kept (the
/// administrator asked for them; EC2's answer will say why it can't).
pub(crate) fn without_edge_tables(
    tables: Vec<TableObs>,
    sel: &Selection,
    warnings: &mut Vec<String>,
) -> Vec<TableObs> {
    if *sel != Selection::AllInVpc {
        return tables;
    }
    let (edge, kept): (Vec<TableObs>, Vec<TableObs>) =
        tables.into_iter().partition(|t| t.edge_gateway.is_some());
    for t in &edge {
        warnings.push(format!(
            "{} is associated with gateway {} (an edge table, where AWS refuses overlay routes); left out",
            t.id,
            t.edge_gateway.as_deref().unwrap_or("?")
        ));
    }
    kept
}

/// What the read-back saw, per table.
struct ReadBack {
    /// The route as read last (before the change where nothing could be read).
    routes: Vec<RouteView>,
    /// A read showed the change.
    confirmed: Vec<bool>,
    /// The last read failed (the routes are then what earlier reads showed).
    error: Option<Error>,
}

impl ReadBack {
    fn unread(tables: &[TableObs]) -> ReadBack {
        ReadBack {
            routes: tables.iter().map(|t| t.route.clone()).collect(),
            confirmed: vec![false; tables.len()],
            error: None,
        }
    }
}

/// First pause between read-backs; doubled each time up to `READ_BACK_MAX_PAUSE`.
const READ_BACK_FIRST_PAUSE: Duration = Duration::from_millis(50);
const READ_BACK_MAX_PAUSE: Duration = Duration::from_secs(1);

/// Reads the written tables back, with growing pauses, until each shows the change, shows a
/// third party's route (waiting won't change that), or the deadline is near. EC2's reads are
/// eventually consistent: a read that still shows the state before our write is no failure,
/// only unconfirmed.
async fn read_back(
    client: &aws_sdk_ec2::Client,
    tables: &[TableObs],
    steps: &[Step],
    actions: &[Result<Action>],
    dest: &str,
    eni: &str,
    deadline: tokio::time::Instant,
) -> ReadBack {
    let mut seen = ReadBack::unread(tables);
    // Tables still waiting to show the change.
    let mut open: Vec<usize> = (0..tables.len())
        .filter(|&i| steps[i] != Step::Keep && actions[i].is_ok())
        .collect();
    let vpc = tables
        .first()
        .and_then(|t| t.vpc_id.clone())
        .unwrap_or_default();
    let mut pause = READ_BACK_FIRST_PAUSE;
    while !open.is_empty() {
        let ids = Selection::Ids(open.iter().map(|&i| tables[i].id.clone()).collect());
        let read = timeout_at(
            deadline,
            ec2::route_tables(client, &ids, &vpc, dest, deadline),
        )
        .await;
        let read = match read {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => {
                seen.error = Some(e);
                break;
            }
            Err(_) => break,
        };
        seen.error = None;
        open.retain(|&i| {
            let Some(now) = read.iter().find(|t| t.id == tables[i].id) else {
                return true;
            };
            seen.routes[i] = now.route.clone();
            if plan::step_took_effect(steps[i], &now.route, eni) {
                seen.confirmed[i] = true;
                return false;
            }
            plan::may_be_stale(steps[i], &tables[i].route, &now.route)
        });
        if open.is_empty() || tokio::time::Instant::now() + pause >= deadline {
            break;
        }
        sleep(pause).await;
        pause = (pause * 2).min(READ_BACK_MAX_PAUSE);
    }
    seen
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
                confirmed: None,
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
