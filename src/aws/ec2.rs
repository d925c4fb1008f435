//! EC2 calls, one function per operation, plus the fallbacks the contract asks for
//! (Replace↔Create when a route appears or vanishes between our read and our write).

use super::retry::{self, Resend};
use super::{error_code, sdk_error};
use crate::config::Selection;
use crate::error::{Error, Result};
use crate::net::IpNet;
use crate::plan::{RouteView, Step};
use crate::report::{Action, RouteState};
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{Filter, RouteState as AwsRouteState, RouteTable};
use aws_sdk_ec2::Client;
use std::net::Ipv4Addr;
use tokio::time::Instant;

/// One selected route table as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableObs {
    pub id: String,
    pub vpc_id: Option<String>,
    pub route: RouteView,
    /// The gateway (internet or virtual private) the table is associated with as an edge
    /// table, if any: AWS refuses routes to an overlay address there.
    pub edge_gateway: Option<String>,
}

/// What we need to know about an ENI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EniInfo {
    pub vpc_id: Option<String>,
    pub instance_id: Option<String>,
    pub source_dest_check: Option<bool>,
    pub mac: Option<String>,
    pub subnet_id: Option<String>,
    /// The primary private IPv4 address.
    pub primary: Option<Ipv4Addr>,
    /// Every private IPv4 address, the primary included.
    pub private: Vec<Ipv4Addr>,
}

/// Every IPv4 and IPv6 CIDR associated with the VPC.
pub async fn vpc_cidrs(client: &Client, vpc_id: &str, deadline: Instant) -> Result<Vec<IpNet>> {
    let out = retry::send(Resend::Safe, deadline, || {
        client.describe_vpcs().vpc_ids(vpc_id).send()
    })
    .await
    .map_err(|e| sdk_error("DescribeVpcs", vpc_id, e))?;
    let Some(vpc) = out.vpcs().first() else {
        return Err(Error::not_found(format!(
            "VPC {vpc_id} does not exist in this region"
        )));
    };
    let mut cidrs: Vec<IpNet> = vpc
        .cidr_block_association_set()
        .iter()
        .filter(|a| {
            in_force(
                a.cidr_block_state()
                    .and_then(|s| s.state())
                    .map(|s| s.as_str()),
            )
        })
        .filter_map(|a| a.cidr_block()?.parse().ok())
        .collect();
    if let Some(primary) = vpc.cidr_block().and_then(|c| c.parse().ok()) {
        if !cidrs.contains(&primary) {
            cidrs.push(primary);
        }
    }
    cidrs.extend(
        vpc.ipv6_cidr_block_association_set()
            .iter()
            .filter(|a| {
                in_force(
                    a.ipv6_cidr_block_state()
                        .and_then(|s| s.state())
                        .map(|s| s.as_str()),
                )
            })
            .filter_map(|a| a.ipv6_cidr_block()?.parse::<IpNet>().ok()),
    );
    Ok(cidrs)
}

/// Whether a CIDR block in this association state still constrains routes: disassociated or
/// failed blocks no longer do.
fn in_force(state: Option<&str>) -> bool {
    !matches!(state, Some("disassociated") | Some("failed"))
}

/// The selected route tables and the route to `dest` in each.
///
/// `Ids` is asked for by id (EC2 answers `InvalidRouteTableID.NotFound` for a missing one) and
/// reported in the order given; the others are filtered to the VPC and sorted by id.
///
/// A tag is matched here, exactly, not with EC2's `tag:` filter: filter values treat `*` and
/// `?` as wildcards, so `route_table_tag=irisvip=prod*` would select tables the administrator
/// never tagged for this VIP.
pub async fn route_tables(
    client: &Client,
    sel: &Selection,
    vpc_id: &str,
    dest: &str,
    deadline: Instant,
) -> Result<Vec<TableObs>> {
    let req = client.describe_route_tables();
    let req = match sel {
        Selection::Ids(ids) => req.set_route_table_ids(Some(ids.clone())),
        Selection::AllInVpc | Selection::Tag { .. } => req.filters(filter("vpc-id", vpc_id)),
    };
    let what = match sel {
        Selection::Ids(ids) => ids.join(","),
        _ => vpc_id.to_owned(),
    };
    let pages: Vec<RouteTable> = retry::send(Resend::Safe, deadline, || {
        req.clone().into_paginator().items().send().try_collect()
    })
    .await
    .map_err(|e| sdk_error("DescribeRouteTables", &what, e))?;
    let mut tables: Vec<TableObs> = pages
        .iter()
        .filter(|t| match sel {
            Selection::Tag { key, value } => t
                .tags()
                .iter()
                .any(|tag| tag.key() == Some(key.as_str()) && tag.value() == Some(value.as_str())),
            _ => true,
        })
        .filter_map(|t| {
            Some(TableObs {
                id: t.route_table_id()?.to_owned(),
                vpc_id: t.vpc_id().map(str::to_owned),
                route: vip_route(t, dest),
                edge_gateway: t
                    .associations()
                    .iter()
                    .find_map(|a| a.gateway_id())
                    .map(str::to_owned),
            })
        })
        .collect();
    match sel {
        Selection::Ids(ids) => {
            let mut ordered = Vec::with_capacity(ids.len());
            for id in ids {
                match tables.iter().position(|t| &t.id == id) {
                    Some(i) => ordered.push(tables.swap_remove(i)),
                    None => {
                        return Err(Error::not_found(format!("route table {id} does not exist")))
                    }
                }
            }
            Ok(ordered)
        }
        _ => {
            tables.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(tables)
        }
    }
}

/// The ENI's VPC, instance, SourceDestCheck, subnet and private addresses.
pub async fn describe_eni(client: &Client, eni: &str, deadline: Instant) -> Result<EniInfo> {
    let out = retry::send(Resend::Safe, deadline, || {
        client
            .describe_network_interfaces()
            .network_interface_ids(eni)
            .send()
    })
    .await
    .map_err(|e| sdk_error("DescribeNetworkInterfaces", eni, e))?;
    let Some(ni) = out.network_interfaces().first() else {
        return Err(Error::not_found(format!(
            "network interface {eni} does not exist"
        )));
    };
    let mut primary = None;
    let mut private = Vec::new();
    for a in ni.private_ip_addresses() {
        let Some(ip) = a.private_ip_address().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if a.primary() == Some(true) {
            primary = Some(ip);
        }
        private.push(ip);
    }
    Ok(EniInfo {
        vpc_id: ni.vpc_id().map(str::to_owned),
        instance_id: ni
            .attachment()
            .and_then(|a| a.instance_id())
            .map(str::to_owned),
        source_dest_check: ni.source_dest_check(),
        mac: ni.mac_address().map(str::to_owned),
        subnet_id: ni.subnet_id().map(str::to_owned),
        primary: primary.or_else(|| ni.private_ip_address().and_then(|s| s.parse().ok())),
        private,
    })
}

/// Carries out one step on one table, with the contract's fallbacks; returns what was done.
pub async fn apply(
    client: &Client,
    table: &str,
    dest: &str,
    eni: &str,
    step: Step,
    deadline: Instant,
) -> Result<Action> {
    let send_replace = || {
        retry::send(Resend::Safe, deadline, || {
            replace(client, table, dest, eni, false)
        })
    };
    let send_create = || {
        retry::send(Resend::Safe, deadline, || {
            create(client, table, dest, eni, false)
        })
    };
    match step {
        Step::Keep => Ok(Action::Unchanged),
        Step::Replace => match send_replace().await {
            Ok(()) => Ok(Action::Replaced),
            // The route vanished since we read it: create it.
            Err(first)
                if matches!(
                    error_code(&first),
                    Some("InvalidParameterValue" | "InvalidRoute.NotFound")
                ) =>
            {
                match send_create().await {
                    Ok(()) => Ok(Action::Created),
                    // The route is there after all: the replace failed for its own reason
                    // (EC2 says InvalidParameterValue for more than a missing route); report that.
                    Err(e) if error_code(&e) == Some("RouteAlreadyExists") => {
                        Err(sdk_error("ReplaceRoute", table, first))
                    }
                    Err(e) => Err(sdk_error("CreateRoute", table, e)),
                }
            }
            Err(e) => Err(sdk_error("ReplaceRoute", table, e)),
        },
        Step::Create => match send_create().await {
            Ok(()) => Ok(Action::Created),
            // Someone created it since we read it: replace it.
            Err(e) if error_code(&e) == Some("RouteAlreadyExists") => send_replace()
                .await
                .map(|()| Action::Replaced)
                .map_err(|e| sdk_error("ReplaceRoute", table, e)),
            Err(e) => Err(sdk_error("CreateRoute", table, e)),
        },
        // Sent again only when EC2 throttled it: a resend after an attempt that may have
        // landed could delete a route another member created meanwhile.
        Step::Delete => match retry::send(Resend::OnlyIfRefused, deadline, || {
            let req = client.delete_route().route_table_id(table);
            if is_v6(dest) {
                req.destination_ipv6_cidr_block(dest).send()
            } else {
                req.destination_cidr_block(dest).send()
            }
        })
        .await
        {
            Ok(_) => Ok(Action::Deleted),
            // Already gone: nothing of ours is left to release.
            Err(e) if error_code(&e) == Some("InvalidRoute.NotFound") => Ok(Action::Unchanged),
            Err(e) => Err(sdk_error("DeleteRoute", table, e)),
        },
    }
}

/// Creates the route to our ENI only where none exists: `Ok(false)` when EC2 says one does
/// (another member's, created after our read), which is then left alone.
pub async fn create_if_absent(
    client: &Client,
    table: &str,
    dest: &str,
    eni: &str,
    deadline: Instant,
) -> Result<bool> {
    match retry::send(Resend::Safe, deadline, || {
        create(client, table, dest, eni, false)
    })
    .await
    {
        Ok(()) => Ok(true),
        Err(e) if error_code(&e) == Some("RouteAlreadyExists") => Ok(false),
        Err(e) => Err(sdk_error("CreateRoute", table, e)),
    }
}

/// A mutating route call, as the permission probe names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    ReplaceRoute,
    CreateRoute,
    DeleteRoute,
}

impl Mutation {
    pub const ALL: [Mutation; 3] = [
        Mutation::ReplaceRoute,
        Mutation::CreateRoute,
        Mutation::DeleteRoute,
    ];

    pub fn action(self) -> &'static str {
        match self {
            Mutation::ReplaceRoute => "ReplaceRoute",
            Mutation::CreateRoute => "CreateRoute",
            Mutation::DeleteRoute => "DeleteRoute",
        }
    }
}

/// Whether IAM allows `m` on `table`, asked with EC2's DryRun: `DryRunOperation` = allowed,
/// `UnauthorizedOperation` = not. Changes nothing on real EC2 (moto ignores DryRun!).
pub async fn may(client: &Client, m: Mutation, table: &str, dest: &str, eni: &str) -> Result<bool> {
    match m {
        Mutation::ReplaceRoute => {
            dry_run_answer(m, table, replace(client, table, dest, eni, true).await)
        }
        Mutation::CreateRoute => {
            dry_run_answer(m, table, create(client, table, dest, eni, true).await)
        }
        Mutation::DeleteRoute => dry_run_answer(
            m,
            table,
            {
                let req = client.delete_route().dry_run(true).route_table_id(table);
                if is_v6(dest) {
                    req.destination_ipv6_cidr_block(dest).send().await
                } else {
                    req.destination_cidr_block(dest).send().await
                }
            }
            .map(|_| ()),
        ),
    }
}

/// Whether IAM allows tagging `table` with `key=value`, asked with DryRun: a role that may
/// tag tables can move one into (or out of) a tag-selected VIP route set.
pub async fn may_tag(client: &Client, table: &str, key: &str, value: &str) -> Result<bool> {
    let answer = client
        .create_tags()
        .dry_run(true)
        .resources(table)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(key)
                .value(value)
                .build(),
        )
        .send()
        .await
        .map(|_| ());
    match answer {
        Ok(()) => Ok(true),
        Err(e) => match error_code(&e) {
            Some("DryRunOperation") => Ok(true),
            Some("UnauthorizedOperation") => Ok(false),
            _ => Err(sdk_error("CreateTags", table, e)),
        },
    }
}

/// Reads a DryRun answer. A real success means the endpoint ignored DryRun: allowed.
fn dry_run_answer<E>(m: Mutation, table: &str, answer: SdkResult<E>) -> Result<bool>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match answer {
        Ok(()) => Ok(true),
        Err(e) => match error_code(&e) {
            Some("DryRunOperation") => Ok(true),
            Some("UnauthorizedOperation") => Ok(false),
            _ => Err(sdk_error(m.action(), table, e)),
        },
    }
}

type SdkResult<E> = std::result::Result<
    (),
    aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>,
>;

async fn replace(
    client: &Client,
    table: &str,
    dest: &str,
    eni: &str,
    dry_run: bool,
) -> SdkResult<aws_sdk_ec2::operation::replace_route::ReplaceRouteError> {
    let req = client
        .replace_route()
        .set_dry_run(dry_run.then_some(true))
        .route_table_id(table)
        .network_interface_id(eni);
    if is_v6(dest) {
        req.destination_ipv6_cidr_block(dest).send().await
    } else {
        req.destination_cidr_block(dest).send().await
    }
    .map(|_| ())
}

async fn create(
    client: &Client,
    table: &str,
    dest: &str,
    eni: &str,
    dry_run: bool,
) -> SdkResult<aws_sdk_ec2::operation::create_route::CreateRouteError> {
    let req = client
        .create_route()
        .set_dry_run(dry_run.then_some(true))
        .route_table_id(table)
        .network_interface_id(eni);
    if is_v6(dest) {
        req.destination_ipv6_cidr_block(dest).send().await
    } else {
        req.destination_cidr_block(dest).send().await
    }
    .map(|_| ())
}

/// An IPv6 destination (`fd00::a/128`) goes in EC2's `DestinationIpv6CidrBlock`.
fn is_v6(dest: &str) -> bool {
    dest.contains(':')
}

pub(super) fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// The route to `dest` in `table`, if any, with the id of whatever it targets.
fn vip_route(table: &RouteTable, dest: &str) -> RouteView {
    let Some(r) = table.routes().iter().find(|r| {
        if is_v6(dest) {
            r.destination_ipv6_cidr_block() == Some(dest)
        } else {
            r.destination_cidr_block() == Some(dest)
        }
    }) else {
        return RouteView::absent();
    };
    let target = r
        .network_interface_id()
        .or(r.instance_id())
        .or(r.gateway_id())
        .or(r.nat_gateway_id())
        .or(r.transit_gateway_id())
        .or(r.vpc_peering_connection_id())
        .or(r.local_gateway_id())
        .or(r.carrier_gateway_id())
        .or(r.egress_only_internet_gateway_id())
        .map(str::to_owned);
    let state = match r.state() {
        Some(AwsRouteState::Blackhole) => RouteState::Blackhole,
        _ => RouteState::Active,
    };
    RouteView { target, state }
}
