//! `mode=route`: the overlay VIP's /32 (or /128) route in the VPC's route tables, pointed at
//! our ENI. Discover: the VPC's CIDRs (cached), the selected tables with the VIP's route, the
//! ENI (status, check). Plan: `plan::claim_step` / `release_step` per table. Apply: one round
//! of concurrent Replace/Create/DeleteRoute, at most `max_in_flight` at once. Read back: the
//! written tables until they show the change. Then, for a claim with `settle_ms`, re-check
//! and re-create what a late release deleted.

use super::shared::{self, Backoff};
use super::Call;
use crate::aws::ec2::{self, Mutation, TableObs};
use crate::aws::imds::Identity;
use crate::config::{Config, Selection};
use crate::error::{Error, ErrorKind, Result};
use crate::net::IpNet;
use crate::plan::{self, RouteView, Step};
use crate::report::{Action, CheckItem, ErrorReport, Holder, Op, Report, RouteState, TableReport};
use futures_util::future::{join3, join_all};
use futures_util::stream::{self, StreamExt};
use std::time::Duration;
use tokio::time::{sleep, timeout_at, Instant};

/// What discovery found.
struct Found {
    /// The selected tables with the VIP's route in each.
    tables: Vec<TableObs>,
    /// Read by status only (a claim doesn't wait for it).
    source_dest_check: Option<bool>,
}

/// Claim, release or status of the VIP's route in the selected tables.
pub async fn run(call: &mut Call<'_>, report: &mut Report) -> Result<()> {
    let (op, cfg, deadline) = (call.op, call.cfg, call.deadline);
    let local = shared::local_vip(call, &mut report.warnings)?;
    report.vip = Some(local.vip.to_string());
    let dest = local.vip.to_string();
    let found = discover(call, local.vip, op == Op::Status, &mut report.warnings).await?;
    let (client, eni) = (&call.client, call.me.eni.as_str());
    let tables = &found.tables;
    let routes_read: Vec<RouteView> = tables.iter().map(|t| t.route.clone()).collect();
    if op == Op::Status {
        report.local = Some(local.report());
        report.source_dest_check = Some(found.source_dest_check);
        fill_tables(report, tables, &routes_read, None, eni);
        report.ok = true;
        return Ok(());
    }
    if op == Op::Claim && !local.present {
        report
            .warnings
            .push(local.absent_warning("the route will lead here"));
    }

    // Plan.
    let steps: Vec<Step> = tables
        .iter()
        .map(|t| match op {
            Op::Release => plan::release_step(&t.route, eni),
            _ => plan::claim_step(&t.route, eni, cfg.write),
        })
        .collect();
    if cfg.dry_run {
        let planned: Vec<Result<Action>> = steps
            .iter()
            .map(|s| {
                Ok(if *s == Step::Keep {
                    Action::Unchanged
                } else {
                    Action::Planned
                })
            })
            .collect();
        fill_tables(report, tables, &routes_read, Some(&planned), eni);
        report.ok = true;
        return Ok(());
    }

    // Apply.
    let actions = mutate(client, tables, &steps, &dest, eni, cfg, deadline).await;
    if op == Op::Release {
        warn_stale_release(report, tables, &actions);
    }

    // Read back, only where something was written: what an unchanged table showed is current.
    let mut seen = ReadBack::unread(tables);
    if steps.iter().any(|s| *s != Step::Keep) {
        seen = read_back(client, tables, &steps, &actions, &dest, eni, deadline).await;
        if let Some(e) = &seen.error {
            report.warnings.push(format!(
                "read-back failed, reporting the routes as read before the change: {}",
                e.message
            ));
        }
    }
    warn_unconfirmed(report, tables, &steps, &actions, &seen);
    let mut routes = seen.routes;
    let mut settle_error = None;
    if op == Op::Claim && !cfg.settle.is_zero() && steps.iter().any(|s| *s != Step::Keep) {
        settle_error = settle_and_reassert(
            client,
            tables,
            &mut routes,
            &dest,
            eni,
            cfg.settle,
            deadline,
            &mut report.warnings,
        )
        .await;
    }

    // Report.
    fill_tables(report, tables, &routes, Some(&actions), eni);
    for (t, (step, (action, confirmed))) in report
        .route_tables
        .iter_mut()
        .flatten()
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

/// One round of concurrent reads: the selected tables with the VIP's route, the VPC's CIDRs
/// (once per few minutes: they change on a human's time scale) and, for status, the ENI; then
/// validation. A claim or release reads only what the failover's critical path needs.
async fn discover(
    call: &mut Call<'_>,
    vip: IpNet,
    with_eni: bool,
    warnings: &mut Vec<String>,
) -> Result<Found> {
    let (cfg, me) = (call.cfg, &call.me);
    let cached_cidrs = call.session.cached_cidrs(&me.vpc_id);
    let fresh_read = cached_cidrs.is_none();
    let (cidrs, tables, eni_info) = read_round(
        &call.client,
        cfg,
        me,
        &vip.to_string(),
        cached_cidrs,
        with_eni,
        call.deadline,
    )
    .await;
    let cidrs = cidrs?;
    if fresh_read {
        call.session.remember_cidrs(&me.vpc_id, &cidrs);
    }
    outside_vpc(vip, &cidrs, &me.vpc_id)?;
    let tables = without_edge_tables(tables?, &cfg.selection, warnings);
    check_tables(&tables, &cfg.selection, me)?;
    let source_dest_check = match eni_info {
        Some(Ok(info)) => info.source_dest_check,
        Some(Err(e)) => {
            warnings.push(format!(
                "cannot read SourceDestCheck of {}: {}",
                me.eni, e.message
            ));
            None
        }
        None => None,
    };
    if source_dest_check == Some(true) {
        warnings.push(format!(
            "SourceDestCheck is enabled on {}: the instance drops packets addressed to the VIP; disable it \
             (aws ec2 modify-network-interface-attribute --no-source-dest-check)",
            me.eni
        ));
    }
    Ok(Found {
        tables,
        source_dest_check,
    })
}

/// A warning per written table that no read showed changed: stale (EC2's reads lag) or taken
/// by a third party since.
fn warn_unconfirmed(
    report: &mut Report,
    tables: &[TableObs],
    steps: &[Step],
    actions: &[Result<Action>],
    seen: &ReadBack,
) {
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
}

/// The route kind's part of the preflight: the VIP outside the VPC, SourceDestCheck, the
/// tables, the holder, the permissions (DryRun) and the least-privilege guards.
pub async fn check(
    call: &mut Call<'_>,
    report: &mut Report,
    items: &mut Vec<CheckItem>,
) -> Result<()> {
    let cfg = call.cfg;
    let deadline = call.deadline;
    let client = call.client.clone();
    let me = call.me.clone();
    let local = match shared::local_vip(call, &mut report.warnings) {
        Ok(l) => l,
        Err(e) => {
            items.push(CheckItem::fail(
                "vip",
                e.message,
                e.kind,
                Some("give vip= or configure the VIP on its label".into()),
            ));
            return Ok(());
        }
    };
    let vip = local.vip;
    report.vip = Some(vip.to_string());
    report.local = Some(local.report());
    items.push(local.check_item());

    let dest = vip.to_string();
    // The preflight reads everything fresh.
    let (cidrs, tables, eni_info) =
        read_round(&client, cfg, &me, &dest, None, true, deadline).await;
    let Some(eni_info) = eni_info else {
        return Err(Error::internal("the read round skipped the ENI"));
    };

    items.push(match cidrs.and_then(|c| outside_vpc(vip, &c, &me.vpc_id).map(|()| c)) {
        Ok(c) => {
            let list: Vec<String> = c.iter().map(|n| n.to_string()).collect();
            CheckItem::pass("vip_outside_vpc", format!("{vip} is a /32 outside {} ({})", me.vpc_id, list.join(", ")))
        }
        Err(e) => CheckItem::fail(
            "vip_outside_vpc",
            e.message,
            e.kind,
            Some("use an overlay address outside every CIDR of the VPC (for example from 192.168.0.0/16 when the VPC is in 10.0.0.0/8)".into()),
        ),
    });

    report.source_dest_check = Some(eni_info.as_ref().ok().and_then(|i| i.source_dest_check));
    items.push(source_dest_check_item(&eni_info, &me.eni));

    let tables = tables.map(|t| without_edge_tables(t, &cfg.selection, &mut report.warnings));
    let tables = match tables.and_then(|t| check_tables(&t, &cfg.selection, &me).map(|()| t)) {
        Ok(t) => t,
        Err(e) => {
            items.push(CheckItem::fail("route_tables", e.message, e.kind, None));
            return Ok(());
        }
    };
    let ids: Vec<&str> = tables.iter().map(|t| t.id.as_str()).collect();
    items.push(CheckItem::pass(
        "route_tables",
        format!(
            "{} table(s) of {}: {}",
            ids.len(),
            me.vpc_id,
            ids.join(", ")
        ),
    ));

    let routes: Vec<RouteView> = tables.iter().map(|t| t.route.clone()).collect();
    fill_tables(report, &tables, &routes, None, &me.eni);
    items.push(holder_item(plan::holder(&routes, &me.eni)));

    if !cfg.probe_permissions {
        items.push(CheckItem::skip(
            "permissions",
            "permissions=skip: IAM not probed",
        ));
        return Ok(());
    }
    permission_items(&client, cfg, &ids, &dest, &me.eni, deadline, items).await;
    guards(&client, cfg, &me, &ids, &dest, deadline, items).await;
    Ok(())
}

/// SourceDestCheck must be off: the VIP is not one of the ENI's addresses.
fn source_dest_check_item(eni_info: &Result<ec2::EniInfo>, eni: &str) -> CheckItem {
    let sdc = eni_info.as_ref().ok().and_then(|i| i.source_dest_check);
    let sdc_fix = Some(format!(
        "aws ec2 modify-network-interface-attribute --network-interface-id {eni} --no-source-dest-check"
    ));
    match (eni_info, sdc) {
        (Ok(_), Some(false)) => CheckItem::pass("source_dest_check", format!("disabled on {eni}")),
        (Ok(_), Some(true)) => CheckItem::fail(
            "source_dest_check",
            format!("enabled on {eni}: the instance drops packets addressed to the VIP"),
            ErrorKind::Validation,
            sdc_fix,
        ),
        (Ok(_), None) => CheckItem::warn(
            "source_dest_check",
            format!("EC2 did not report SourceDestCheck of {eni}"),
            None,
        ),
        (Err(e), _) => CheckItem::warn(
            "source_dest_check",
            e.message.clone(),
            Some("grant ec2:DescribeNetworkInterfaces".into()),
        ),
    }
}

fn holder_item(holder: Holder) -> CheckItem {
    match holder {
        Holder::Mixed => CheckItem::warn(
            "holder",
            "the VIP route points at different targets in the selected tables",
            Some("claim on the primary to make them agree".into()),
        ),
        Holder::Myself => CheckItem::pass("holder", "this member holds the VIP route"),
        Holder::Other => CheckItem::pass("holder", "another member holds the VIP route"),
        Holder::None => CheckItem::pass(
            "holder",
            "no table has the VIP route yet (a claim creates it)",
        ),
    }
}

/// `permission:<action>` per route call, probed with DryRun on every selected table at once.
async fn permission_items(
    client: &aws_sdk_ec2::Client,
    cfg: &Config,
    ids: &[&str],
    dest: &str,
    eni: &str,
    deadline: Instant,
    items: &mut Vec<CheckItem>,
) {
    let who = shared::who(cfg);
    // Every (action, table) pair at once, each bounded by the deadline.
    let probes: Vec<(Mutation, &str)> = Mutation::ALL
        .iter()
        .flat_map(|m| ids.iter().map(move |t| (*m, *t)))
        .collect();
    let answers = join_all(
        probes
            .iter()
            .map(|(m, t)| timeout_at(deadline, ec2::may(client, *m, t, dest, eni))),
    )
    .await;
    for m in Mutation::ALL {
        let name = format!("permission:{}", m.action());
        let mut denied = Vec::new();
        let mut unknown = Vec::new();
        for ((pm, t), answer) in probes.iter().zip(&answers) {
            if *pm != m {
                continue;
            }
            match answer {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => denied.push(*t),
                Ok(Err(e)) => unknown.push(e.message.clone()),
                Err(_) => unknown.push(format!("{t}: no answer before the deadline")),
            }
        }
        items.push(if !denied.is_empty() && m == Mutation::DeleteRoute {
            // Least privilege leaves DeleteRoute out where members never release (the
            // template's AllowRelease=false): only a release would fail, so a warning.
            CheckItem::warn(
                &name,
                format!("ec2:DeleteRoute is denied on {}: a release will fail (a claim does not need it)", denied.join(", ")),
                Some("expected where release is disabled by policy; otherwise grant it (examples/iam-policy-release.json)".into()),
            )
        } else if !denied.is_empty() {
            CheckItem::fail(
                &name,
                format!("ec2:{} is denied to {who} on {}", m.action(), denied.join(", ")),
                ErrorKind::Permission,
                Some(format!("grant ec2:{} on these route tables to {who} (see {})", m.action(), policy_example(cfg))),
            )
        } else if !unknown.is_empty() {
            CheckItem::warn(&name, format!("could not probe ec2:{}: {}", m.action(), unknown.join("; ")), None)
        } else {
            CheckItem::pass(&name, format!("ec2:{} allowed to {who} on {} table(s) (DryRun)", m.action(), ids.len()))
        });
    }
}

fn policy_example(cfg: &Config) -> &'static str {
    match cfg.role {
        Some(_) => "examples/iam-shared-vpc-owner.json",
        None => "examples/iam-policy.json",
    }
}

/// The guards of least privilege that can be seen from inside, each probed with DryRun:
/// - `guard:route_scope`: route calls are denied on a table of the VPC outside the selection
///   (IAM can't restrict a route call's destination, so the table is the only fence);
/// - `guard:tag`: the role can't set the selecting tag, so it can't pull another table into
///   the VIP's route set (or push one out).
///
/// A guard that is missing is a warning, not a failure: claims work without it.
async fn guards(
    client: &aws_sdk_ec2::Client,
    cfg: &Config,
    me: &Identity,
    selected: &[&str],
    dest: &str,
    deadline: Instant,
    items: &mut Vec<CheckItem>,
) {
    let all = timeout_at(
        deadline,
        ec2::route_tables(client, &Selection::AllInVpc, &me.vpc_id, dest, deadline),
    )
    .await;
    let outside: Option<String> = match &all {
        Ok(Ok(all)) => all
            .iter()
            .map(|t| t.id.clone())
            .find(|id| !selected.contains(&id.as_str())),
        _ => None,
    };
    items.push(match &outside {
        None => CheckItem::skip(
            "guard:route_scope",
            format!("no table of {} outside the selection to probe", me.vpc_id),
        ),
        Some(other) => match timeout_at(
            deadline,
            ec2::may(client, Mutation::ReplaceRoute, other, dest, &me.eni),
        )
        .await
        {
            Ok(Ok(false)) => CheckItem::pass(
                "guard:route_scope",
                format!("route calls are denied on {other}, outside the selection"),
            ),
            Ok(Ok(true)) => CheckItem::warn(
                "guard:route_scope",
                format!(
                    "ec2:ReplaceRoute is allowed on {other}, outside the selection: this role can repoint any route \
                     (0.0.0.0/0, the local route) there"
                ),
                Some("scope Create/Replace/DeleteRoute to the VIP's route-table ARNs with an ec2:Vpc condition, and alert on \
                      the role's route calls (examples/eventbridge-route-alert.json)".into()),
            ),
            Ok(Err(e)) => CheckItem::warn("guard:route_scope", format!("could not probe: {}", e.message), None),
            Err(_) => CheckItem::warn("guard:route_scope", "no answer before the deadline", None),
        },
    });

    let (key, value) = match &cfg.selection {
        Selection::Tag { key, value } => (key.clone(), value.clone()),
        _ => ("irisvip".to_owned(), "irisvip-check-probe".to_owned()),
    };
    let target = outside.as_deref().or(selected.first().copied());
    items.push(match target {
        None => CheckItem::skip("guard:tag", "no table to probe"),
        Some(t) => match timeout_at(deadline, ec2::may_tag(client, t, &key, &value)).await {
            Ok(Ok(false)) => CheckItem::pass(
                "guard:tag",
                format!("tagging {t} with {key} is denied"),
            ),
            Ok(Ok(true)) => CheckItem::warn(
                "guard:tag",
                format!("this role may tag {t} with {key}={value}: it could move a table into or out of the VIP's route set"),
                Some(format!("deny ec2:CreateTags and ec2:DeleteTags for the tag key {key} (aws:TagKeys) to the instance role")),
            ),
            Ok(Err(e)) => CheckItem::warn("guard:tag", format!("could not probe: {}", e.message), None),
            Err(_) => CheckItem::warn("guard:tag", "no answer before the deadline", None),
        },
    });
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
async fn read_round(
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
fn outside_vpc(vip: IpNet, cidrs: &[IpNet], vpc_id: &str) -> Result<()> {
    match cidrs.iter().find(|c| c.contains(vip.addr())) {
        Some(c) => Err(Error::validation(format!(
            "vip {vip} lies inside {c}, a CIDR of {vpc_id}: AWS refuses such a route; use an overlay address \
             outside every CIDR of the VPC"
        ))),
        None => Ok(()),
    }
}

/// The selected tables must exist and belong to our VPC.
fn check_tables(tables: &[TableObs], sel: &Selection, me: &Identity) -> Result<()> {
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
fn without_edge_tables(
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
    let mut backoff = Backoff::new();
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
        if open.is_empty() || !backoff.wait(deadline).await {
            break;
        }
    }
    seen
}

/// Writes the per-table entries and the holder.
fn fill_tables(
    report: &mut Report,
    tables: &[TableObs],
    routes: &[RouteView],
    actions: Option<&[Result<Action>]>,
    eni: &str,
) {
    report.route_tables = Some(
        tables
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
            .collect(),
    );
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
