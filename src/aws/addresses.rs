//! EC2 calls for addresses that move between network interfaces: secondary private IPv4
//! addresses (`mode=private-ip`) and Elastic IPs (`mode=eip`). One function per operation;
//! what to do with the answers is decided in `kinds/`. Our ENI's addresses come from
//! `ec2::describe_eni`.

use super::ec2::filter;
use super::retry::{self, Resend};
use super::{error_code, sdk_error};
use crate::config::EipRef;
use crate::error::{Error, Result};
use crate::net::Ipv4Net;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::Client;
use std::net::Ipv4Addr;
use tokio::time::Instant;

/// An ENI that holds a private address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub eni: String,
    /// The address is that ENI's primary (EC2 never moves a primary address).
    pub primary: bool,
}

/// An Elastic IP and its association, as DescribeAddresses shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eip {
    pub allocation_id: Option<String>,
    pub public_ip: Option<Ipv4Addr>,
    pub association_id: Option<String>,
    pub eni: Option<String>,
    pub private_ip: Option<Ipv4Addr>,
}

/// The ENIs of `vpc_id` that hold `ip` (EC2's `addresses.private-ip-address` filter matches
/// primary and secondary addresses). Normally one or none.
pub async fn holders(
    client: &Client,
    ip: Ipv4Addr,
    vpc_id: &str,
    deadline: Instant,
) -> Result<Vec<Holding>> {
    let text = ip.to_string();
    let out = retry::send(Resend::Safe, deadline, || {
        client
            .describe_network_interfaces()
            .filters(filter("addresses.private-ip-address", &text))
            .filters(filter("vpc-id", vpc_id))
            .send()
    })
    .await
    .map_err(|e| sdk_error("DescribeNetworkInterfaces", &text, e))?;
    let mut found: Vec<Holding> = out
        .network_interfaces()
        .iter()
        .filter_map(|ni| {
            let entry = ni
                .private_ip_addresses()
                .iter()
                .find(|a| a.private_ip_address() == Some(text.as_str()));
            // The filter said it holds the address; trust the entry where there is one.
            let primary = match entry {
                Some(a) => a.primary() == Some(true),
                None => ni.private_ip_address() == Some(text.as_str()),
            };
            Some(Holding {
                eni: ni.network_interface_id()?.to_owned(),
                primary,
            })
        })
        .collect();
    found.sort_by(|a, b| a.eni.cmp(&b.eni));
    Ok(found)
}

/// The IPv4 CIDR of `subnet_id`.
pub async fn subnet_cidr(client: &Client, subnet_id: &str, deadline: Instant) -> Result<Ipv4Net> {
    let out = retry::send(Resend::Safe, deadline, || {
        client.describe_subnets().subnet_ids(subnet_id).send()
    })
    .await
    .map_err(|e| sdk_error("DescribeSubnets", subnet_id, e))?;
    out.subnets()
        .first()
        .and_then(|s| s.cidr_block())
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            Error::not_found(format!(
                "subnet {subnet_id} does not exist or has no IPv4 CIDR"
            ))
        })
}

/// Moves `ip` to `eni` (`AllowReassignment`: from whichever ENI holds it). Idempotent, so it
/// is resent on any transient failure.
pub async fn assign(client: &Client, eni: &str, ip: Ipv4Addr, deadline: Instant) -> Result<()> {
    let text = ip.to_string();
    retry::send(Resend::Safe, deadline, || {
        client
            .assign_private_ip_addresses()
            .network_interface_id(eni)
            .private_ip_addresses(&text)
            .allow_reassignment(true)
            .send()
    })
    .await
    .map(|_| ())
    .map_err(|e| sdk_error("AssignPrivateIpAddresses", eni, e))
}

/// Takes `ip` off `eni`. `Ok(false)`: EC2 says `eni` does not hold it (any more): another
/// member's claim moved it, so nothing of ours is left. Only resent when throttled.
pub async fn unassign(client: &Client, eni: &str, ip: Ipv4Addr, deadline: Instant) -> Result<bool> {
    let text = ip.to_string();
    match retry::send(Resend::OnlyIfRefused, deadline, || {
        client
            .unassign_private_ip_addresses()
            .network_interface_id(eni)
            .private_ip_addresses(&text)
            .send()
    })
    .await
    {
        Ok(_) => Ok(true),
        // EC2: "Some of the specified addresses are not assigned to interface eni-…".
        Err(e)
            if error_code(&e) == Some("InvalidParameterValue")
                && e.message().is_some_and(|m| m.contains("not assigned")) =>
        {
            Ok(false)
        }
        Err(e) => Err(sdk_error("UnassignPrivateIpAddresses", eni, e)),
    }
}

/// The Elastic IP `which`, with its association.
pub async fn describe_eip(client: &Client, which: &EipRef, deadline: Instant) -> Result<Eip> {
    let name = eip_name(which);
    let out = retry::send(Resend::Safe, deadline, || {
        let req = client.describe_addresses();
        match which {
            EipRef::Allocation(id) => req.allocation_ids(id),
            EipRef::PublicIp(ip) => req.public_ips(ip.to_string()),
        }
        .send()
    })
    .await
    .map_err(|e| sdk_error("DescribeAddresses", &name, e))?;
    let Some(a) = out.addresses().first() else {
        return Err(Error::not_found(format!(
            "Elastic IP {name} does not exist in this region (DescribeAddresses found nothing)"
        )));
    };
    Ok(Eip {
        allocation_id: a.allocation_id().map(str::to_owned),
        public_ip: a.public_ip().and_then(|s| s.parse().ok()),
        association_id: a.association_id().map(str::to_owned),
        eni: a.network_interface_id().map(str::to_owned),
        private_ip: a.private_ip_address().and_then(|s| s.parse().ok()),
    })
}

/// Associates the Elastic IP with `eni`'s `private_ip` (`AllowReassociation`: away from
/// wherever it is). Returns the new association's id. Idempotent for the same target.
pub async fn associate(
    client: &Client,
    allocation_id: &str,
    eni: &str,
    private_ip: Ipv4Addr,
    deadline: Instant,
) -> Result<Option<String>> {
    let private = private_ip.to_string();
    retry::send(Resend::Safe, deadline, || {
        client
            .associate_address()
            .allocation_id(allocation_id)
            .network_interface_id(eni)
            .private_ip_address(&private)
            .allow_reassociation(true)
            .send()
    })
    .await
    .map(|out| out.association_id().map(str::to_owned))
    .map_err(|e| sdk_error("AssociateAddress", allocation_id, e))
}

/// Ends association `association_id`. `Ok(false)`: it no longer exists (another member's
/// claim replaced it, or it was ended already). By association id, never by public IP: a
/// release that read our association before another member's claim must not end theirs.
pub async fn disassociate(
    client: &Client,
    association_id: &str,
    deadline: Instant,
) -> Result<bool> {
    match retry::send(Resend::OnlyIfRefused, deadline, || {
        client
            .disassociate_address()
            .association_id(association_id)
            .send()
    })
    .await
    {
        Ok(_) => Ok(true),
        Err(e) if error_code(&e) == Some("InvalidAssociationID.NotFound") => Ok(false),
        Err(e) => Err(sdk_error("DisassociateAddress", association_id, e)),
    }
}

/// A mutating address call with a DryRun, as the preflight's permission probe names it.
/// (Assign/UnassignPrivateIpAddresses have no DryRun in EC2's API: they can't be probed.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressMutation {
    AssociateAddress,
    DisassociateAddress,
}

impl AddressMutation {
    pub fn action(self) -> &'static str {
        match self {
            AddressMutation::AssociateAddress => "AssociateAddress",
            AddressMutation::DisassociateAddress => "DisassociateAddress",
        }
    }
}

/// What a DryRun probe acts on.
pub struct Probe<'a> {
    pub eni: &'a str,
    /// The private address the Elastic IP maps to.
    pub ip: Ipv4Addr,
    pub allocation_id: &'a str,
    /// Disassociate needs an association id; where there is none yet a made-up one does for a
    /// DryRun (IAM is evaluated before the id is looked up).
    pub association_id: Option<&'a str>,
}

/// Whether IAM allows `m`, asked with EC2's DryRun: `DryRunOperation` = allowed,
/// `UnauthorizedOperation` = not. Never changes anything.
pub async fn may(client: &Client, m: AddressMutation, p: &Probe<'_>) -> Result<bool> {
    let ip = p.ip.to_string();
    let (code, err) = match m {
        AddressMutation::AssociateAddress => answer(
            client
                .associate_address()
                .dry_run(true)
                .allocation_id(p.allocation_id)
                .network_interface_id(p.eni)
                .private_ip_address(&ip)
                .allow_reassociation(true)
                .send()
                .await,
        ),
        AddressMutation::DisassociateAddress => answer(
            client
                .disassociate_address()
                .dry_run(true)
                .association_id(p.association_id.unwrap_or("eipassoc-00000000000000000"))
                .send()
                .await,
        ),
    };
    match code.as_deref() {
        None | Some("DryRunOperation") => Ok(true),
        Some("UnauthorizedOperation") => Ok(false),
        Some(_) => Err(err.unwrap_or_else(|| {
            Error::internal(format!("{}: DryRun answered no error", m.action()))
        })),
    }
}

/// A DryRun answer as (error code, the error): `(None, None)` when the call succeeded (an
/// endpoint that ignores DryRun: allowed).
fn answer<T, E>(
    result: std::result::Result<
        T,
        aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>,
    >,
) -> (Option<String>, Option<Error>)
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => (None, None),
        Err(e) => {
            let code = error_code(&e).unwrap_or("unknown").to_owned();
            (Some(code), Some(sdk_error("DryRun", "", e)))
        }
    }
}

/// How a message names an Elastic IP.
pub fn eip_name(which: &EipRef) -> String {
    match which {
        EipRef::Allocation(id) => id.clone(),
        EipRef::PublicIp(ip) => ip.to_string(),
    }
}
