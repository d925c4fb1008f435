//! `mode=private-ip`: a secondary private IPv4 address of the subnet, moved between the ENIs
//! of the members (both in one subnet). IRIS's own mirror VIP announces its address with ARP,
//! which a VPC ignores; here the address is moved by the API and the VPC delivers it to
//! whichever ENI holds it.
//!
//! Discover: our ENI (subnet, addresses) and who holds the address, in one round; the subnet's
//! CIDR once per process. Plan: `plan::address_claim_step` / `address_release_step`. Apply:
//! `AssignPrivateIpAddresses` with `AllowReassignment` (EC2 takes it off the old holder), or
//! `UnassignPrivateIpAddresses` while it is ours: a late release by the old holder then fails
//! harmlessly, since its ENI no longer holds the address. Read back: until only our ENI holds
//! it (claim) or ours no longer does (release).

use super::shared::{self, LocalVip};
use super::Call;
use crate::aws::addresses::{self, Holding};
use crate::aws::ec2::{self, EniInfo};
use crate::error::{Error, Result};
use crate::net::{IpNet, Ipv4Net};
use crate::plan::{self, AddressStep};
use crate::report::{Action, AddressKind, AddressReport, CheckItem, Op, Report};
use futures_util::future::join;
use std::net::Ipv4Addr;
use tokio::time::timeout_at;

/// What discovery found.
struct Found {
    ours: EniInfo,
    subnet: Ipv4Net,
    holders: Vec<Holding>,
}

/// The ENI the report names as holding the address: ours if it is among them.
fn target_of(holders: &[Holding], me: &str) -> Option<String> {
    holders
        .iter()
        .find(|h| h.eni == me)
        .or(holders.first())
        .map(|h| h.eni.clone())
}

fn held_by(holders: &[Holding], me: &str) -> bool {
    holders.iter().any(|h| h.eni == me)
}

/// Claim, release or status of the address.
pub async fn run(call: &mut Call<'_>, report: &mut Report) -> Result<()> {
    let local = shared::local_vip(call, &mut report.warnings)?;
    report.vip = Some(local.vip.to_string());
    let ip = ipv4(&local)?;
    let found = discover(call, ip).await?;
    validate(&found, ip, &call.me.eni)?;
    let me = call.me.eni.clone();
    if found.holders.len() > 1 {
        report.warnings.push(format!(
            "{ip} reads as held by several ENIs ({}); EC2 reads may lag a move",
            found
                .holders
                .iter()
                .map(|h| h.eni.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut address = address_report(&found.holders, ip, &me);
    report.holder = Some(plan::address_holder(address.target.as_deref(), &me));

    let op = call.op;
    if op == Op::Status {
        report.local = Some(local.report());
        report.source_dest_check = Some(found.ours.source_dest_check);
        report.address = Some(address);
        report.ok = true;
        return Ok(());
    }
    let ours = held_by(&found.holders, &me);
    let step = match op {
        Op::Release => plan::address_release_step(ours),
        _ => plan::address_claim_step(ours, call.cfg.write),
    };
    if op == Op::Claim && !local.present {
        report
            .warnings
            .push(local.absent_warning("EC2 will deliver it to this ENI"));
    }
    if call.cfg.dry_run {
        address.action = Some(shared::planned(step));
        report.address = Some(address);
        report.ok = true;
        return Ok(());
    }

    let deadline = call.deadline;
    let client = &call.client;
    let applied = timeout_at(deadline, async {
        match step {
            AddressStep::Keep => Ok(Action::Unchanged),
            AddressStep::Take => addresses::assign(client, &me, ip, deadline)
                .await
                .map(|()| Action::Assigned),
            AddressStep::Release => match addresses::unassign(client, &me, ip, deadline).await? {
                true => Ok(Action::Unassigned),
                false => {
                    report.warnings.push(format!(
                        "{me} no longer holds {ip} (another member's claim moved it after our read); nothing to release"
                    ));
                    Ok(Action::Unchanged)
                }
            },
        }
    })
    .await
    .unwrap_or_else(|_| {
        Err(Error::timeout(format!(
            "{ip}: no answer from EC2 before the deadline; the address may or may not have moved"
        )))
    });
    let action = match applied {
        Ok(a) => a,
        Err(e) => return Err(shared::address_failed(report, address, e)),
    };
    address.action = Some(action);
    if matches!(action, Action::Assigned | Action::Unassigned) {
        let before = found.holders.clone();
        let vpc = call.me.vpc_id.clone();
        let taking = step == AddressStep::Take;
        let seen = shared::read_back(
            deadline,
            || addresses::holders(client, ip, &vpc, deadline),
            |now: &Vec<Holding>| {
                if taking {
                    now.len() == 1 && now[0].eni == me
                } else {
                    !held_by(now, &me)
                }
            },
            // A read that still shows the state we planned on may be stale; so may one that
            // shows us beside the old holder (the move half visible).
            |now: &Vec<Holding>| *now == before || (taking && held_by(now, &me)),
        )
        .await;
        address.confirmed = Some(seen.confirmed);
        if let Some(now) = &seen.last {
            address.target = target_of(now, &me);
            address.is_self = held_by(now, &me);
        }
        let now = address.target.as_deref().unwrap_or("no ENI");
        seen.warn(&ip.to_string(), "the holder", now, &mut report.warnings);
        report.holder = Some(plan::address_holder(address.target.as_deref(), &me));
    }
    report.address = Some(address);
    report.ok = true;
    Ok(())
}

/// The private-ip kind's part of the preflight.
pub async fn check(
    call: &mut Call<'_>,
    report: &mut Report,
    items: &mut Vec<CheckItem>,
) -> Result<()> {
    let local = match shared::local_vip(call, &mut report.warnings) {
        Ok(l) => l,
        Err(e) => {
            items.push(CheckItem::fail(
                "vip",
                e.message,
                e.kind,
                Some("give vip= or configure the address on its label".into()),
            ));
            return Ok(());
        }
    };
    report.vip = Some(local.vip.to_string());
    report.local = Some(local.report());
    items.push(local.check_item());
    let ip = match ipv4(&local) {
        Ok(ip) => ip,
        Err(e) => {
            items.push(CheckItem::fail("vip", e.message, e.kind, None));
            return Ok(());
        }
    };
    let found = match discover(call, ip).await {
        Ok(f) => f,
        Err(e) => {
            items.push(CheckItem::fail("private_ip", e.message, e.kind, None));
            return Ok(());
        }
    };
    let me = call.me.eni.clone();
    items.push(match validate(&found, ip, &me) {
        Ok(()) => CheckItem::pass(
            "private_ip",
            format!(
                "{ip} is a free-to-move address of {} ({}), the subnet of {me}",
                found.ours.subnet_id.as_deref().unwrap_or("?"),
                found.subnet
            ),
        ),
        Err(e) => CheckItem::fail(
            "private_ip",
            e.message,
            e.kind,
            Some("choose an unused address of this ENI's subnet, outside the first four and the last".into()),
        ),
    });
    let address = address_report(&found.holders, ip, &me);
    let target = address.target.clone();
    let holder = plan::address_holder(target.as_deref(), &me);
    report.holder = Some(holder);
    items.push(CheckItem::pass(
        "holder",
        match &target {
            Some(t) if *t == me => format!("this member's ENI {me} holds {ip}"),
            Some(t) => format!("{t} holds {ip} (a claim moves it here)"),
            None => format!("no ENI holds {ip} yet (a claim assigns it)"),
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
    // EC2's Assign/UnassignPrivateIpAddresses take no DryRun: IAM can't be asked without
    // changing something, so the preflight says what to grant instead of guessing.
    for action in ["AssignPrivateIpAddresses", "UnassignPrivateIpAddresses"] {
        items.push(CheckItem::skip(
            &format!("permission:{action}"),
            format!(
                "ec2:{action} has no DryRun in EC2's API, so it can't be probed; {} needs it on the members' \
                 network interfaces (examples/iam-private-ip.json)",
                shared::who(call.cfg)
            ),
        ));
    }
    Ok(())
}

/// The `address` of a result, as `holders` show it.
fn address_report(holders: &[Holding], ip: Ipv4Addr, me: &str) -> AddressReport {
    AddressReport {
        kind: AddressKind::PrivateIp,
        ip: ip.to_string(),
        target: target_of(holders, me),
        is_self: held_by(holders, me),
        action: None,
        confirmed: None,
        allocation_id: None,
        association_id: None,
        private_ip: None,
        error: None,
    }
}

/// The address as IPv4 (the config refuses IPv6 here; the label's default is IPv4).
fn ipv4(local: &LocalVip) -> Result<Ipv4Addr> {
    match local.vip {
        IpNet::V4(n) => Ok(n.addr),
        IpNet::V6(_) => Err(Error::config(format!(
            "vip {} is IPv6; mode=private-ip moves a private IPv4 address",
            local.vip
        ))),
    }
}

/// One round: our ENI and the address's holders; then the subnet's CIDR, once per process.
async fn discover(call: &mut Call<'_>, ip: Ipv4Addr) -> Result<Found> {
    let (ours, holders) = join(
        ec2::describe_eni(&call.client, &call.me.eni, call.deadline),
        addresses::holders(&call.client, ip, &call.me.vpc_id, call.deadline),
    )
    .await;
    let (ours, holders) = (ours?, holders?);
    let Some(subnet_id) = ours.subnet_id.clone() else {
        return Err(Error::not_found(format!(
            "EC2 reports no subnet for {}",
            call.me.eni
        )));
    };
    let cached = call
        .session
        .cached_cidrs(&subnet_id)
        .and_then(|c| c.into_iter().next());
    let subnet = match cached {
        Some(IpNet::V4(n)) => n,
        _ => {
            let n = addresses::subnet_cidr(&call.client, &subnet_id, call.deadline).await?;
            call.session.remember_cidrs(&subnet_id, &[IpNet::V4(n)]);
            n
        }
    };
    Ok(Found {
        ours,
        subnet,
        holders,
    })
}

/// The address must be one EC2 can move to our ENI: inside its subnet, not one of the five
/// the VPC reserves, not our primary, not another ENI's primary.
fn validate(found: &Found, ip: Ipv4Addr, me: &str) -> Result<()> {
    let subnet = found.subnet;
    let subnet_id = found.ours.subnet_id.as_deref().unwrap_or("?");
    if !subnet.contains(ip) {
        return Err(Error::validation(format!(
            "vip {ip} lies outside {subnet}, the subnet ({subnet_id}) of {me}; in mode=private-ip the address \
             must belong to our ENI's subnet (both members in one subnet), or use mode=route for an overlay address"
        )));
    }
    if reserved(subnet, ip) {
        return Err(Error::validation(format!(
            "vip {ip} is reserved by AWS in {subnet} (the first four addresses and the last); choose another"
        )));
    }
    if found.ours.primary == Some(ip) {
        return Err(Error::validation(format!(
            "vip {ip} is the primary address of {me}; the VIP must be a secondary address that can move"
        )));
    }
    if let Some(h) = found.holders.iter().find(|h| h.primary && h.eni != me) {
        return Err(Error::validation(format!(
            "vip {ip} is the primary address of {}; EC2 never moves a primary address: choose an unused one",
            h.eni
        )));
    }
    Ok(())
}

/// The five addresses AWS reserves in every subnet: network, router, DNS, future use, broadcast.
fn reserved(subnet: Ipv4Net, ip: Ipv4Addr) -> bool {
    let base = u32::from(subnet.addr) & mask(subnet.prefix);
    let last = base | !mask(subnet.prefix);
    let n = u32::from(ip);
    n <= base + 3 || n == last
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("test net")
    }

    #[test]
    fn the_five_reserved_addresses() {
        let n = net("10.0.1.0/24");
        for ip in ["10.0.1.0", "10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.255"] {
            assert!(reserved(n, ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["10.0.1.4", "10.0.1.254", "10.0.1.100"] {
            assert!(!reserved(n, ip.parse().expect("ip")), "{ip}");
        }
    }

    fn found(primary: &str, holders: Vec<Holding>) -> Found {
        Found {
            ours: EniInfo {
                vpc_id: None,
                instance_id: None,
                source_dest_check: None,
                mac: None,
                subnet_id: Some("subnet-1".into()),
                primary: primary.parse().ok(),
                private: vec![],
            },
            subnet: net("10.0.1.0/24"),
            holders,
        }
    }

    #[test]
    fn validation_refuses_what_ec2_cannot_move() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().expect("ip");
        let free = found("10.0.1.10", vec![]);
        assert!(validate(&free, ip("10.0.1.50"), "eni-a").is_ok());
        let e = validate(&free, ip("10.0.2.50"), "eni-a").expect_err("outside");
        assert!(e.message.contains("outside 10.0.1.0/24"), "{}", e.message);
        assert!(validate(&free, ip("10.0.1.10"), "eni-a").is_err());
        assert!(validate(&free, ip("10.0.1.2"), "eni-a").is_err());
        let primary_elsewhere = found(
            "10.0.1.10",
            vec![Holding {
                eni: "eni-b".into(),
                primary: true,
            }],
        );
        let e = validate(&primary_elsewhere, ip("10.0.1.20"), "eni-a").expect_err("primary");
        assert!(e.message.contains("eni-b"), "{}", e.message);
        let secondary_elsewhere = found(
            "10.0.1.10",
            vec![Holding {
                eni: "eni-b".into(),
                primary: false,
            }],
        );
        assert!(validate(&secondary_elsewhere, ip("10.0.1.20"), "eni-a").is_ok());
    }
}
