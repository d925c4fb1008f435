//! `mode=eip`: an Elastic IP, associated with our ENI (for clients that reach the mirror over
//! the internet). Nothing changes on the host: EC2 translates the public address to the
//! private one it maps to.
//!
//! Discover: the Elastic IP with its association, and our ENI's private addresses, in one
//! round. Plan: `plan::address_claim_step` / `address_release_step`. Apply:
//! `AssociateAddress` with `AllowReassociation` (away from wherever it is), or
//! `DisassociateAddress` of *our* association id while it is ours: never by public IP, so a
//! late release by the old holder names an association that no longer exists and changes
//! nothing. Read back: until the association shows our ENI and private address (claim), or no
//! longer shows our ENI (release).

use super::shared;
use super::Call;
use crate::aws::addresses::{self, AddressMutation, Eip, Probe};
use crate::aws::ec2::{self, EniInfo};
use crate::config::EipRef;
use crate::error::{Error, ErrorKind, Result};
use crate::plan::{self, AddressStep};
use crate::report::{Action, AddressKind, AddressReport, CheckItem, Op, Report};
use futures_util::future::join;
use std::net::Ipv4Addr;
use tokio::time::timeout_at;

/// What discovery found, validated.
struct Found {
    eip: Eip,
    allocation_id: String,
    ours: EniInfo,
    /// The private address of our ENI the Elastic IP must map to.
    private_ip: Ipv4Addr,
}

/// Claim, release or status of the Elastic IP.
pub async fn run(call: &mut Call<'_>, report: &mut Report) -> Result<()> {
    let which = eip_ref(call)?;
    let found = discover(call, &which).await?;
    let me = call.me.eni.clone();
    report.vip = found.eip.public_ip.map(|ip| format!("{ip}/32"));
    let mut address = address_report(&found.eip, &found.allocation_id, &me);
    report.holder = Some(plan::address_holder(address.target.as_deref(), &me));
    let op = call.op;
    if op == Op::Status {
        report.source_dest_check = Some(found.ours.source_dest_check);
        report.address = Some(address);
        report.ok = true;
        return Ok(());
    }
    let step = match op {
        // Ours only if it maps to the configured private address too.
        Op::Release => plan::address_release_step(found.eip.eni.as_deref() == Some(&me)),
        _ => plan::address_claim_step(is_ours(&found.eip, &me, found.private_ip), call.cfg.write),
    };
    if call.cfg.dry_run {
        address.action = Some(shared::planned(step));
        report.address = Some(address);
        report.ok = true;
        return Ok(());
    }

    let deadline = call.deadline;
    let client = &call.client;
    let (private_ip, allocation_id) = (found.private_ip, found.allocation_id.as_str());
    let applied = timeout_at(deadline, async {
        match step {
            AddressStep::Keep => Ok(Action::Unchanged),
            AddressStep::Take => {
                addresses::associate(client, allocation_id, &me, private_ip, deadline).await?;
                Ok(Action::Associated)
            }
            AddressStep::Release => {
                let Some(association) = found.eip.association_id.as_deref() else {
                    return Err(Error::internal(format!(
                        "{allocation_id} reads as associated with {me} but has no association id"
                    )));
                };
                match addresses::disassociate(client, association, deadline).await? {
                    true => Ok(Action::Disassociated),
                    false => {
                        report.warnings.push(format!(
                            "association {association} no longer exists (another member's claim replaced it after \
                             our read); nothing to release"
                        ));
                        Ok(Action::Unchanged)
                    }
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        Err(Error::timeout(format!(
            "{allocation_id}: no answer from EC2 before the deadline; the Elastic IP may or may not have moved"
        )))
    });
    let action = match applied {
        Ok(a) => a,
        Err(e) => return Err(shared::address_failed(report, address, e)),
    };
    address.action = Some(action);
    if matches!(action, Action::Associated | Action::Disassociated) {
        let taking = step == AddressStep::Take;
        let before = found.eip.clone();
        let which = EipRef::Allocation(found.allocation_id.clone());
        let seen = shared::read_back(
            deadline,
            || addresses::describe_eip(client, &which, deadline),
            |now: &Eip| {
                if taking {
                    is_ours(now, &me, private_ip)
                } else {
                    now.eni.as_deref() != Some(&me)
                }
            },
            |now: &Eip| same_association(now, &before),
        )
        .await;
        if let Some(now) = &seen.last {
            address = AddressReport {
                action: Some(action),
                ..address_report(now, &found.allocation_id, &me)
            };
        }
        address.confirmed = Some(seen.confirmed);
        let now = address.target.as_deref().unwrap_or("no ENI");
        seen.warn(allocation_id, "the association", now, &mut report.warnings);
        report.holder = Some(plan::address_holder(address.target.as_deref(), &me));
    }
    report.address = Some(address);
    report.ok = true;
    Ok(())
}

/// The eip kind's part of the preflight.
pub async fn check(
    call: &mut Call<'_>,
    report: &mut Report,
    items: &mut Vec<CheckItem>,
) -> Result<()> {
    let which = eip_ref(call)?;
    let found = match discover(call, &which).await {
        Ok(f) => f,
        Err(e) => {
            items.push(CheckItem::fail(
                "eip",
                e.message,
                e.kind,
                Some("allocate the Elastic IP in this region and account (or check allocation_id=/public_ip=)".into()),
            ));
            return Ok(());
        }
    };
    let me = call.me.eni.clone();
    report.vip = found.eip.public_ip.map(|ip| format!("{ip}/32"));
    let address = address_report(&found.eip, &found.allocation_id, &me);
    items.push(CheckItem::pass(
        "eip",
        format!(
            "{} is {}, mapped to {} of {me} on a claim",
            found.allocation_id,
            found
                .eip
                .public_ip
                .map(|i| i.to_string())
                .unwrap_or_else(|| "?".into()),
            found.private_ip
        ),
    ));
    report.holder = Some(plan::address_holder(address.target.as_deref(), &me));
    items.push(CheckItem::pass(
        "holder",
        match &address.target {
            Some(t) if *t == me => format!("this member's ENI {me} holds the Elastic IP"),
            Some(t) => format!("{t} holds the Elastic IP (a claim moves it here)"),
            None => "the Elastic IP is not associated (a claim associates it)".to_owned(),
        },
    ));
    report.address = Some(address);
    if !call.cfg.probe_permissions {
        items.push(CheckItem::skip(
            "permissions",
            "permissions=skip: IAM not probed",
        ));
        return Ok(());
    }
    let who = shared::who(call.cfg);
    let probe = Probe {
        eni: &me,
        ip: found.private_ip,
        allocation_id: &found.allocation_id,
        association_id: found.eip.association_id.as_deref(),
    };
    for m in [
        AddressMutation::AssociateAddress,
        AddressMutation::DisassociateAddress,
    ] {
        let name = format!("permission:{}", m.action());
        let answer = timeout_at(call.deadline, addresses::may(&call.client, m, &probe)).await;
        items.push(match answer {
            Ok(Ok(true)) => CheckItem::pass(
                &name,
                format!("ec2:{} allowed to {who} (DryRun)", m.action()),
            ),
            Ok(Ok(false)) if m == AddressMutation::DisassociateAddress => CheckItem::warn(
                &name,
                format!("ec2:{} is denied: a release will fail (a claim does not need it)", m.action()),
                Some("expected where release is disabled by policy; otherwise grant it (examples/iam-eip.json)".into()),
            ),
            Ok(Ok(false)) => CheckItem::fail(
                &name,
                format!("ec2:{} is denied to {who} on {} / {me}", m.action(), found.allocation_id),
                ErrorKind::Permission,
                Some(format!(
                    "grant ec2:{} on the Elastic IP and the members' network interfaces (see examples/iam-eip.json)",
                    m.action()
                )),
            ),
            Ok(Err(e)) => CheckItem::warn(&name, format!("could not probe: {}", e.message), None),
            Err(_) => CheckItem::warn(&name, "no answer before the deadline", None),
        });
    }
    Ok(())
}

fn eip_ref(call: &Call<'_>) -> Result<EipRef> {
    call.cfg.eip.clone().ok_or_else(|| {
        Error::config(
            "mode=eip needs the Elastic IP: give allocation_id=eipalloc-… (or public_ip=a.b.c.d)",
        )
    })
}

/// One round: the Elastic IP and our ENI; then which private address it must map to.
async fn discover(call: &Call<'_>, which: &EipRef) -> Result<Found> {
    let (eip, ours) = join(
        addresses::describe_eip(&call.client, which, call.deadline),
        ec2::describe_eni(&call.client, &call.me.eni, call.deadline),
    )
    .await;
    let (eip, ours) = (eip?, ours?);
    let Some(allocation_id) = eip.allocation_id.clone() else {
        return Err(Error::validation(format!(
            "Elastic IP {} has no allocation id (not a VPC address); allocate one for the VPC",
            addresses::eip_name(which)
        )));
    };
    let me = &call.me.eni;
    let private_ip = match call.cfg.private_ip {
        Some(ip) if ours.private.contains(&ip) => ip,
        Some(ip) => {
            return Err(Error::validation(format!(
                "private_ip {ip} is not an address of {me} (it has {}); name one of them or leave private_ip out \
                 for the primary",
                ours.private
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
        None => ours.primary.ok_or_else(|| {
            Error::not_found(format!(
                "EC2 reports no primary private address for {me}; give private_ip="
            ))
        })?,
    };
    Ok(Found {
        eip,
        allocation_id,
        ours,
        private_ip,
    })
}

/// The Elastic IP maps to our ENI's `private_ip`.
fn is_ours(eip: &Eip, me: &str, private_ip: Ipv4Addr) -> bool {
    eip.eni.as_deref() == Some(me) && eip.private_ip == Some(private_ip)
}

/// A read still showing the association we planned on (it may be stale).
fn same_association(now: &Eip, before: &Eip) -> bool {
    now.association_id == before.association_id
        && now.eni == before.eni
        && now.private_ip == before.private_ip
}

fn address_report(eip: &Eip, allocation_id: &str, me: &str) -> AddressReport {
    AddressReport {
        kind: AddressKind::Eip,
        ip: eip.public_ip.map(|i| i.to_string()).unwrap_or_default(),
        target: eip.eni.clone(),
        is_self: eip.eni.as_deref() == Some(me),
        action: None,
        confirmed: None,
        allocation_id: Some(allocation_id.to_owned()),
        association_id: eip.association_id.clone(),
        private_ip: eip.private_ip.map(|i| i.to_string()),
        error: None,
    }
}
