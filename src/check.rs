//! The preflight (`vip_check`): everything a failover needs, checked without changing anything,
//! each as pass / warn / fail with the fix. Unlike claim it does not stop at the first problem.
//! Here: what every kind needs (instance metadata, identity, the assumed role); then the kind's
//! own part (`kinds::check`).

use crate::aws::session::Session;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::kinds::{self, Call};
use crate::report::{CheckItem, CheckStatus, Op, Report};
use tokio::time::Instant;

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
        Ok(id) => items.push(CheckItem::pass(
            "imds",
            format!("IMDSv2 answered (token, instance-id {id})"),
        )),
        Err(e) => {
            let fix = Some(
                "enable IMDSv2 on the instance; in a container raise the hop limit to 2 \
                 (aws ec2 modify-instance-metadata-options --http-put-response-hop-limit 2); or give eni= and region="
                    .to_owned(),
            );
            items.push(if imds_optional {
                CheckItem::warn("imds", e.message, fix)
            } else {
                CheckItem::fail("imds", e.message, ErrorKind::Metadata, fix)
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
                (Some(role), Some(_)) => items.push(CheckItem::fail(
                    "assume_role",
                    e.message,
                    e.kind,
                    Some(assume_fix(role)),
                )),
                _ => items.push(CheckItem::fail("identity", e.message, e.kind, None)),
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
        items.push(CheckItem::pass(
            "assume_role",
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
    report.region = Some(region.clone());
    report.instance_id = me.instance_id.clone();
    report.eni = Some(me.eni.clone());
    report.vpc_id = Some(me.vpc_id.clone());
    items.push(CheckItem::pass(
        "identity",
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

    let mut call = Call {
        op: Op::Check,
        cfg,
        session,
        client,
        me,
        deadline,
    };
    kinds::check(&mut call, report, items).await
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
