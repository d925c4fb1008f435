//! The preflight (`vip_check`): everything a failover needs, checked without changing anything,
//! each as pass / warn / fail with the fix. Unlike claim it does not stop at the first problem.

use crate::aws::ec2::{self, Mutation};
use crate::aws::session::Session;
use crate::config::{Config, Selection};
use crate::error::{Error, ErrorKind, Result};
use crate::local;
use crate::ops::{
    check_tables, default_vip, fill_tables, outside_vpc, read_round, vip_label, without_edge_tables,
};
use crate::plan::{self, RouteView};
use crate::report::{CheckItem, CheckStatus, Holder, LocalReport, Report};
use futures_util::future::join_all;
use tokio::time::{timeout_at, Instant};

fn item(name: &str, status: CheckStatus, detail: impl Into<String>) -> CheckItem {
    CheckItem {
        name: name.to_owned(),
        status,
        detail: detail.into(),
        fix: None,
        kind: None,
    }
}

fn failed(
    name: &str,
    detail: impl Into<String>,
    kind: ErrorKind,
    fix: Option<String>,
) -> CheckItem {
    CheckItem {
        fix,
        kind: Some(kind),
        ..item(name, CheckStatus::Fail, detail)
    }
}

fn warned(name: &str, detail: impl Into<String>, fix: Option<String>) -> CheckItem {
    CheckItem {
        fix,
        ..item(name, CheckStatus::Warn, detail)
    }
}

pub async fn run(
    cfg: &Config,
    session: &mut Session,
    report: &mut Report,
    deadline: Instant,
) -> Result<()> {
    let mut items = Vec::new();
    let outcome = checks(cfg, session, report, deadline, &mut items).await;
    report.checks = items;
    outcome?;
    match report.checks.iter().find(|c| c.status == CheckStatus::Fail) {
        Some(c) => report.fail(&Error::new(
            c.kind.unwrap_or(ErrorKind::Validation),
            format!("preflight failed: {}: {}", c.name, c.detail),
        )),
        None => report.ok = true,
    }
    Ok(())
}

async fn checks(
    cfg: &Config,
    session: &mut Session,
    report: &mut Report,
    deadline: Instant,
    items: &mut Vec<CheckItem>,
) -> Result<()> {
    // IMDSv2: needed unless the ENI and region are given.
    let imds_optional = cfg.eni.is_some() && cfg.region.is_some();
    match session.probe_imds().await {
        Ok(id) => items.push(item(
            "imds",
            CheckStatus::Pass,
            format!("IMDSv2 answered (token, instance-id {id})"),
        )),
        Err(e) => {
            let fix = Some(
                "enable IMDSv2 on the instance; in a container raise the hop limit to 2 \
                 (aws ec2 modify-instance-metadata-options --http-put-response-hop-limit 2); or give eni= and region="
                    .to_owned(),
            );
            items.push(if imds_optional {
                warned("imds", e.message, fix)
            } else {
                failed("imds", e.message, ErrorKind::Metadata, fix)
            });
        }
    }

    let (region, client, me) = match session
        .prepare(
            cfg.region.as_deref(),
            cfg.endpoint.as_deref(),
            cfg.eni.as_deref(),
            cfg.role.as_ref(),
            deadline,
        )
        .await
    {
        Ok(found) => found,
        Err(e) => {
            match (&cfg.role, session.assume_failure()) {
                (Some(role), Some(_)) => items.push(failed(
                    "assume_role",
                    e.message,
                    e.kind,
                    Some(assume_fix(role)),
                )),
                _ => items.push(failed("identity", e.message, e.kind, None)),
            }
            return Ok(());
        }
    };
    // With role_arn every EC2 request below (the DryRun probes included) signs as that role.
    if let Some(role) = &cfg.role {
        let (name, left) = match session.assumed(role) {
            Some((name, Some(until))) => (
                name,
                until
                    .duration_since(std::time::SystemTime::now())
                    .map(|d| format!(", credentials valid for {} more min", d.as_secs() / 60))
                    .unwrap_or_default(),
            ),
            Some((name, None)) => (name, String::new()),
            None => ("?".to_owned(), String::new()),
        };
        items.push(item(
            "assume_role",
            CheckStatus::Pass,
            format!(
                "STS AssumeRole of {} as session {name}{}{left}; the EC2 checks below run as this role",
                role.arn,
                role.external_id
                    .as_ref()
                    .map(|_| " (with external_id)")
                    .unwrap_or("")
            ),
        ));
    }
    let who = match &cfg.role {
        Some(r) => format!("role {}", r.arn),
        None => "the instance role".to_owned(),
    };
    report.region = Some(region.clone());
    report.instance_id = me.instance_id.clone();
    report.eni = Some(me.eni.clone());
    report.vpc_id = Some(me.vpc_id.clone());
    items.push(item(
        "identity",
        CheckStatus::Pass,
        format!(
            "region {region}, ENI {}, VPC {}, instance {}{}",
            me.eni,
            me.vpc_id,
            me.instance_id.as_deref().unwrap_or("?"),
            match &cfg.role {
                Some(r) => format!(", EC2 calls as assumed role {}", r.arn),
                None => String::new(),
            }
        ),
    ));

    // The VIP's label: as configured, else `<device>:1` of the device with our ENI's MAC.
    let label = vip_label(cfg, &me);
    let on_label = local::addresses(&label);
    let vip = match cfg.vip {
        Some(v) => v,
        None => match default_vip(&label, &on_label, &mut report.warnings) {
            Ok(v) => v,
            Err(e) => {
                items.push(failed(
                    "vip",
                    e.message,
                    e.kind,
                    Some("give vip= or configure the VIP on its label".into()),
                ));
                return Ok(());
            }
        },
    };
    report.vip = Some(vip.to_string());
    let present = on_label.as_ref().is_ok_and(|a| a.contains(&vip.addr()));
    report.local = Some(LocalReport {
        interface: label.clone(),
        vip_present: present,
    });
    items.push(if present {
        item(
            "vip_local",
            CheckStatus::Pass,
            format!("{} carries {vip}", label),
        )
    } else {
        warned(
            "vip_local",
            format!(
                "{vip} is not on label {} of this host: after a claim nothing here answers",
                label
            ),
            Some(format!(
                "ip addr add {}/32 dev eth0 label {} (and make it persistent: ifcfg or netplan)",
                vip.addr(),
                label
            )),
        )
    });

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
            item("vip_outside_vpc", CheckStatus::Pass, format!("{vip} is a /32 outside {} ({})", me.vpc_id, list.join(", ")))
        }
        Err(e) => failed(
            "vip_outside_vpc",
            e.message,
            e.kind,
            Some("use an overlay address outside every CIDR of the VPC (for example from 192.168.0.0/16 when the VPC is in 10.0.0.0/8)".into()),
        ),
    });

    let sdc = eni_info.as_ref().ok().and_then(|i| i.source_dest_check);
    report.source_dest_check = Some(sdc);
    let sdc_fix = Some(format!("aws ec2 modify-network-interface-attribute --network-interface-id {} --no-source-dest-check", me.eni));
    items.push(match (&eni_info, sdc) {
        (Ok(_), Some(false)) => item(
            "source_dest_check",
            CheckStatus::Pass,
            format!("disabled on {}", me.eni),
        ),
        (Ok(_), Some(true)) => failed(
            "source_dest_check",
            format!(
                "enabled on {}: the instance drops packets addressed to the VIP",
                me.eni
            ),
            ErrorKind::Validation,
            sdc_fix,
        ),
        (Ok(_), None) => warned(
            "source_dest_check",
            format!("EC2 did not report SourceDestCheck of {}", me.eni),
            None,
        ),
        (Err(e), _) => warned(
            "source_dest_check",
            e.message.clone(),
            Some("grant ec2:DescribeNetworkInterfaces".into()),
        ),
    });

    let tables = tables.map(|t| without_edge_tables(t, &cfg.selection, &mut report.warnings));
    let tables = match tables.and_then(|t| check_tables(&t, &cfg.selection, &me).map(|()| t)) {
        Ok(t) => t,
        Err(e) => {
            items.push(failed("route_tables", e.message, e.kind, None));
            return Ok(());
        }
    };
    let ids: Vec<&str> = tables.iter().map(|t| t.id.as_str()).collect();
    items.push(item(
        "route_tables",
        CheckStatus::Pass,
        format!(
            "{} table(s) of {}: {}",
            ids.len(),
            me.vpc_id,
            ids.join(", ")
        ),
    ));

    let routes: Vec<RouteView> = tables.iter().map(|t| t.route.clone()).collect();
    fill_tables(report, &tables, &routes, None, &me.eni);
    let holder = plan::holder(&routes, &me.eni);
    items.push(match holder {
        Holder::Mixed => warned(
            "holder",
            "the VIP route points at different targets in the selected tables",
            Some("claim on the primary to make them agree".into()),
        ),
        Holder::Myself => item(
            "holder",
            CheckStatus::Pass,
            "this member holds the VIP route",
        ),
        Holder::Other => item(
            "holder",
            CheckStatus::Pass,
            "another member holds the VIP route",
        ),
        Holder::None => item(
            "holder",
            CheckStatus::Pass,
            "no table has the VIP route yet (a claim creates it)",
        ),
    });

    if !cfg.probe_permissions {
        items.push(item(
            "permissions",
            CheckStatus::Skip,
            "permissions=skip: IAM not probed",
        ));
        return Ok(());
    }
    // Every (action, table) pair at once, each bounded by the deadline.
    let probes: Vec<(Mutation, &str)> = Mutation::ALL
        .iter()
        .flat_map(|m| ids.iter().map(move |t| (*m, *t)))
        .collect();
    let answers = join_all(
        probes
            .iter()
            .map(|(m, t)| timeout_at(deadline, ec2::may(&client, *m, t, &dest, &me.eni))),
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
            warned(
                &name,
                format!("ec2:DeleteRoute is denied on {}: a release will fail (a claim does not need it)", denied.join(", ")),
                Some("expected where release is disabled by policy; otherwise grant it (examples/iam-policy-release.json)".into()),
            )
        } else if !denied.is_empty() {
            failed(
                &name,
                format!("ec2:{} is denied to {who} on {}", m.action(), denied.join(", ")),
                ErrorKind::Permission,
                Some(format!("grant ec2:{} on these route tables to {who} (see {})", m.action(), policy_example(cfg))),
            )
        } else if !unknown.is_empty() {
            warned(&name, format!("could not probe ec2:{}: {}", m.action(), unknown.join("; ")), None)
        } else {
            item(&name, CheckStatus::Pass, format!("ec2:{} allowed to {who} on {} table(s) (DryRun)", m.action(), ids.len()))
        });
    }
    guards(&client, cfg, &me, &ids, &dest, deadline, items).await;
    Ok(())
}

/// The fix of a failed AssumeRole: both sides of the trust.
fn assume_fix(role: &crate::config::Role) -> String {
    let condition = match &role.external_id {
        Some(_) => " with the condition sts:ExternalId equal to external_id=",
        None => "",
    };
    format!(
        "allow sts:AssumeRole on {} to this instance's own role (examples/iam-shared-vpc-member.json), and trust \
         that role in the trust policy of {}{condition} (examples/iam-shared-vpc-owner-trust.json)",
        role.arn, role.arn
    )
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
    me: &crate::aws::imds::Identity,
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
        None => item(
            "guard:route_scope",
            CheckStatus::Skip,
            format!("no table of {} outside the selection to probe", me.vpc_id),
        ),
        Some(other) => match timeout_at(
            deadline,
            ec2::may(client, Mutation::ReplaceRoute, other, dest, &me.eni),
        )
        .await
        {
            Ok(Ok(false)) => item(
                "guard:route_scope",
                CheckStatus::Pass,
                format!("route calls are denied on {other}, outside the selection"),
            ),
            Ok(Ok(true)) => warned(
                "guard:route_scope",
                format!(
                    "ec2:ReplaceRoute is allowed on {other}, outside the selection: this role can repoint any route \
                     (0.0.0.0/0, the local route) there"
                ),
                Some("scope Create/Replace/DeleteRoute to the VIP's route-table ARNs with an ec2:Vpc condition, and alert on \
                      the role's route calls (examples/eventbridge-route-alert.json)".into()),
            ),
            Ok(Err(e)) => warned("guard:route_scope", format!("could not probe: {}", e.message), None),
            Err(_) => warned("guard:route_scope", "no answer before the deadline", None),
        },
    });

    let (key, value) = match &cfg.selection {
        Selection::Tag { key, value } => (key.clone(), value.clone()),
        _ => ("irisvip".to_owned(), "irisvip-check-probe".to_owned()),
    };
    let target = outside.as_deref().or(selected.first().copied());
    items.push(match target {
        None => item("guard:tag", CheckStatus::Skip, "no table to probe"),
        Some(t) => match timeout_at(deadline, ec2::may_tag(client, t, &key, &value)).await {
            Ok(Ok(false)) => item(
                "guard:tag",
                CheckStatus::Pass,
                format!("tagging {t} with {key} is denied"),
            ),
            Ok(Ok(true)) => warned(
                "guard:tag",
                format!("this role may tag {t} with {key}={value}: it could move a table into or out of the VIP's route set"),
                Some(format!("deny ec2:CreateTags and ec2:DeleteTags for the tag key {key} (aws:TagKeys) to the instance role")),
            ),
            Ok(Err(e)) => warned("guard:tag", format!("could not probe: {}", e.message), None),
            Err(_) => warned("guard:tag", "no answer before the deadline", None),
        },
    });
}
