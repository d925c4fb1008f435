//! The config string of the contract: `key=value` pairs separated by `;` or newlines,
//! parsed into validated settings. Anything unknown, malformed or repeated is refused:
//! a typo must never silently change which routes move.

use crate::error::{quote, Error, Result};
use crate::net::{IpNet, NetParseError};
use std::time::Duration;

/// Default deadline of a whole call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(10_000);
/// Longest deadline accepted: a callout blocks its IRIS process for that long.
pub const MAX_TIMEOUT_MS: u64 = 300_000;
/// Longest settle time accepted.
pub const MAX_SETTLE_MS: u64 = 60_000;
/// The address label carrying the VIP when no device carries our ENI's MAC (or the MAC is
/// unknown): what the overlay-IP setups configured on hosts whose first device is `eth0`.
pub const DEFAULT_INTERFACE: &str = "eth0:1";
/// Default cap on mutating requests in flight: EC2's mutating bucket holds 50 tokens, so a
/// claim of up to 50 tables goes out in one round on an account nothing else is spending.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 50;
/// Largest cap accepted.
pub const MAX_IN_FLIGHT: u64 = 1000;

/// Which tables a claim writes (the contract's `write`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Every selected table: EC2 reads are eventually consistent, so a read that shows the
    /// route already at us may be stale (a failover claim).
    Always,
    /// Only tables that do not read as ours: no mutating call for those (the periodic re-assert).
    Changed,
}

/// What kind of address a call moves (the contract's `mode`). Each has its own module under
/// `kinds/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The VIP's /32 (or /128) route in the VPC's route tables, pointed at our ENI.
    Route,
    /// A secondary private IPv4 address of the subnet, moved between ENIs.
    PrivateIp,
    /// An Elastic IP, associated with our ENI.
    Eip,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Route => "route",
            Mode::PrivateIp => "private-ip",
            Mode::Eip => "eip",
        }
    }
}

/// Which Elastic IP `mode=eip` moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EipRef {
    /// `allocation_id=eipalloc-…`
    Allocation(String),
    /// `public_ip=a.b.c.d`
    PublicIp(std::net::Ipv4Addr),
}

/// Which route tables a call acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every route table of the instance's VPC.
    AllInVpc,
    /// These ids (each must exist and belong to the VPC).
    Ids(Vec<String>),
    /// The VPC's tables carrying this tag.
    Tag { key: String, value: String },
}

/// Settings of one call, validated as far as possible without AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The overlay address (IPv4, or IPv6 in `mode=route`); `None` = the IPv4 address
    /// labelled `interface` on this host.
    pub vip: Option<IpNet>,
    /// The VIP's address label; `None` = the `:1` label of the device carrying our ENI.
    pub interface: Option<String>,
    pub selection: Selection,
    pub eni: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub timeout: Duration,
    pub dry_run: bool,
    /// Claim only: after a switch, wait this long, look again and re-create routes a late
    /// release deleted (EC2 has no conditional delete). Zero = off.
    pub settle: Duration,
    /// Check only: probe IAM permissions with EC2's DryRun (`probe`) or not (`skip`, for
    /// emulators such as moto that ignore DryRun and would really change routes).
    pub probe_permissions: bool,
    /// Claim only: which tables are written.
    pub write: WriteMode,
    /// At most this many mutating requests in flight at once (EC2 throttles per account).
    pub max_in_flight: usize,
    /// Assume this IAM role (STS) for every EC2 call: route tables of another account.
    pub role: Option<Role>,
    /// What moves.
    pub mode: Mode,
    /// `mode=eip`: the Elastic IP (required there).
    pub eip: Option<EipRef>,
    /// `mode=eip`: which private address of our ENI the Elastic IP maps to; `None` = the
    /// ENI's primary.
    pub private_ip: Option<std::net::Ipv4Addr>,
}

/// The contract's `role_arn` (+ `external_id`): the role every EC2 call of the call runs as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Role {
    pub arn: String,
    pub external_id: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            vip: None,
            interface: None,
            selection: Selection::AllInVpc,
            eni: None,
            region: None,
            endpoint: None,
            timeout: DEFAULT_TIMEOUT,
            dry_run: false,
            settle: Duration::ZERO,
            probe_permissions: true,
            write: WriteMode::Always,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            role: None,
            mode: Mode::Route,
            eip: None,
            private_ip: None,
        }
    }
}

const KEYS: [&str; 19] = [
    "vip",
    "interface",
    "route_tables",
    "route_table_tag",
    "eni",
    "region",
    "endpoint",
    "timeout_ms",
    "dry_run",
    "settle_ms",
    "permissions",
    "write",
    "max_in_flight",
    "role_arn",
    "external_id",
    "mode",
    "allocation_id",
    "public_ip",
    "private_ip",
];

/// Keys that only mean something in `mode=route`, and those only in `mode=eip`.
const ROUTE_ONLY: [&str; 4] = [
    "route_tables",
    "route_table_tag",
    "settle_ms",
    "max_in_flight",
];
const EIP_ONLY: [&str; 3] = ["allocation_id", "public_ip", "private_ip"];

/// Parses the raw config bytes (what IRIS passed, up to the first NUL).
pub fn parse(raw: &[u8]) -> Result<Config> {
    let text = std::str::from_utf8(raw).map_err(|e| {
        Error::config(format!(
            "config is not valid UTF-8 (bad byte at offset {}); use plain key=value text",
            e.valid_up_to()
        ))
    })?;
    let mut seen: Vec<&str> = Vec::new();
    let mut cfg = Config::default();
    let mut tables: Option<Vec<String>> = None;
    let mut tag: Option<(String, String)> = None;
    let mut external_id: Option<String> = None;

    for item in text.split([';', '\n']) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let Some((key, value)) = item.split_once('=') else {
            return Err(Error::config(format!(
                "config item {} is not key=value (separate items with `;` or newlines)",
                quote(item)
            )));
        };
        let (key, value) = (key.trim(), value.trim());
        let Some(known) = KEYS.iter().copied().find(|k| *k == key) else {
            return Err(Error::config(format!(
                "unknown config key {}; known keys: {}",
                quote(key),
                KEYS.join(", ")
            )));
        };
        if seen.contains(&known) {
            return Err(Error::config(format!(
                "config key `{known}` is given twice; give it once"
            )));
        }
        seen.push(known);
        if value.is_empty() {
            return Err(Error::config(format!(
                "config key `{known}` has an empty value; give a value or leave the key out for its default"
            )));
        }
        match known {
            "vip" => cfg.vip = Some(parse_vip(value)?),
            "interface" => cfg.interface = Some(parse_interface(value)?),
            "route_tables" => tables = Some(parse_table_ids(value)?),
            "route_table_tag" => tag = Some(parse_tag(value)?),
            "eni" => cfg.eni = Some(parse_id(known, "eni-", value)?),
            "region" => cfg.region = Some(parse_region(value)?),
            "endpoint" => cfg.endpoint = Some(parse_endpoint(value)?),
            "timeout_ms" => cfg.timeout = parse_ms(known, value, 1, MAX_TIMEOUT_MS)?,
            "settle_ms" => cfg.settle = parse_ms(known, value, 0, MAX_SETTLE_MS)?,
            "dry_run" => cfg.dry_run = parse_flag(known, value)?,
            "write" => {
                cfg.write = match value {
                    "always" => WriteMode::Always,
                    "changed" => WriteMode::Changed,
                    _ => {
                        return Err(Error::config(format!(
                        "write {} must be always (a failover claim writes every table) or changed \
                             (the re-assert skips tables that read as ours)",
                        quote(value)
                    )))
                    }
                }
            }
            "max_in_flight" => cfg.max_in_flight = parse_count(known, value, 1, MAX_IN_FLIGHT)?,
            "role_arn" => {
                cfg.role = Some(Role {
                    arn: parse_role_arn(value)?,
                    external_id: None,
                })
            }
            "external_id" => external_id = Some(parse_external_id(value)?),
            "mode" => cfg.mode = parse_mode(value)?,
            "allocation_id" => {
                cfg.eip = Some(EipRef::Allocation(parse_id(known, "eipalloc-", value)?))
            }
            "public_ip" => cfg.eip = Some(EipRef::PublicIp(parse_ipv4(known, value)?)),
            "private_ip" => cfg.private_ip = Some(parse_ipv4(known, value)?),
            "permissions" => {
                cfg.probe_permissions = match value {
                    "probe" => true,
                    "skip" => false,
                    _ => {
                        return Err(Error::config(format!(
                            "permissions {} must be probe or skip",
                            quote(value)
                        )))
                    }
                }
            }
            _ => {
                return Err(Error::internal(format!(
                    "config key `{known}` has no parser"
                )))
            }
        }
    }

    check_mode_keys(&cfg, &seen)?;
    cfg.selection = match (tables, tag) {
        (Some(_), Some(_)) => {
            return Err(Error::config(
                "give either route_tables or route_table_tag, not both",
            ))
        }
        (Some(ids), None) => Selection::Ids(ids),
        (None, Some((key, value))) => Selection::Tag { key, value },
        (None, None) => Selection::AllInVpc,
    };
    match (&mut cfg.role, external_id) {
        (Some(role), id) => role.external_id = id,
        (None, Some(_)) => {
            return Err(Error::config(
                "external_id is given without role_arn; it is sent with STS AssumeRole of role_arn, so give \
                 role_arn= too (or leave external_id out)",
            ))
        }
        (None, None) => {}
    }
    Ok(cfg)
}

fn parse_mode(value: &str) -> Result<Mode> {
    match value {
        "route" => Ok(Mode::Route),
        "private-ip" => Ok(Mode::PrivateIp),
        "eip" => Ok(Mode::Eip),
        _ => Err(Error::config(format!(
            "mode {} must be route (an overlay route in the route tables), private-ip (a secondary private \
             address of the subnet) or eip (an Elastic IP)",
            quote(value)
        ))),
    }
}

/// A plain IPv4 address (`public_ip`, `private_ip`): no prefix.
fn parse_ipv4(key: &str, value: &str) -> Result<std::net::Ipv4Addr> {
    value.parse().map_err(|_| {
        Error::config(format!(
            "{key} {} is not an IPv4 address; give it as a.b.c.d",
            quote(value)
        ))
    })
}

/// Each mode's keys, and what it needs: a key of another mode is refused rather than ignored
/// (it would mean the administrator expects something this call won't do).
fn check_mode_keys(cfg: &Config, seen: &[&str]) -> Result<()> {
    let mode = cfg.mode.as_str();
    let foreign: Vec<&str> = match cfg.mode {
        Mode::Route => EIP_ONLY.to_vec(),
        Mode::PrivateIp => [&ROUTE_ONLY[..], &EIP_ONLY[..]].concat(),
        Mode::Eip => [&ROUTE_ONLY[..], &["vip"][..]].concat(),
    };
    if let Some(k) = seen.iter().find(|k| foreign.contains(k)) {
        let fix = match *k {
            "vip" => {
                "in mode=eip the address is named by allocation_id= or public_ip=; leave vip out, \
                 or set mode=route or mode=private-ip to move vip"
                    .to_owned()
            }
            k if EIP_ONLY.contains(&k) => {
                format!("{k} belongs to mode=eip; leave it out or set mode=eip")
            }
            k => format!("{k} belongs to mode=route; leave it out or set mode=route"),
        };
        return Err(Error::config(format!(
            "config key `{k}` does not apply to mode={mode}: {fix}"
        )));
    }
    match cfg.mode {
        Mode::Eip if seen.contains(&"allocation_id") && seen.contains(&"public_ip") => {
            Err(Error::config(
                "give either allocation_id or public_ip, not both: they name the same Elastic IP",
            ))
        }
        Mode::Eip if cfg.eip.is_none() => Err(Error::config(
            "mode=eip needs the Elastic IP: give allocation_id=eipalloc-… (or public_ip=a.b.c.d)",
        )),
        Mode::PrivateIp => match cfg.vip {
            Some(v @ IpNet::V6(_)) => Err(Error::config(format!(
                "vip {v} is IPv6; mode=private-ip moves a private IPv4 address of the subnet (IPv6 works in \
                 mode=route)"
            ))),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// The mode a config asks for, read leniently (the first well-formed `mode=` item), for the
/// shape of a result whose config was refused: a refused `mode=eip` config still gets the
/// address kinds' shape, without `route_tables`.
pub fn mode_hint(raw: &[u8]) -> Option<Mode> {
    let text = std::str::from_utf8(raw).ok()?;
    text.split([';', '\n']).find_map(|item| {
        let (key, value) = item.split_once('=')?;
        (key.trim() == "mode").then(|| parse_mode(value.trim()).ok())?
    })
}

/// Longest role ARN IAM accepts.
const MAX_ROLE_ARN: usize = 2048;

/// `arn:<partition>:iam::<12 digits>:role/<path/>name`. Only the shape: whether the role exists
/// and trusts us, STS answers.
fn parse_role_arn(value: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::config(format!(
            "role_arn {} {why}; give an IAM role ARN such as arn:aws:iam::123456789012:role/irisvip-routes",
            quote(value)
        ))
    };
    if value.len() > MAX_ROLE_ARN {
        return Err(bad("is longer than 2048 characters"));
    }
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts[..] else {
        return Err(bad("is not an ARN (arn:partition:iam::account:role/name)"));
    };
    let partition_ok = partition.starts_with("aws")
        && partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-');
    if arn != "arn" || !partition_ok {
        return Err(bad(
            "does not start with arn:aws (or another AWS partition)",
        ));
    }
    if service != "iam" || !region.is_empty() {
        return Err(bad(
            "is not an IAM ARN (arn:<partition>:iam::<account>:...)",
        ));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("does not name a 12-digit account id"));
    }
    let Some(path_name) = resource.strip_prefix("role/") else {
        return Err(bad("is not a role (the resource must be role/<name>)"));
    };
    let name_char = |b: u8| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b);
    let segments: Vec<&str> = path_name.split('/').collect();
    let name = segments.last().copied().unwrap_or("");
    let ok = segments
        .iter()
        .all(|s| !s.is_empty() && s.bytes().all(name_char))
        && name.len() <= 64;
    if !ok {
        return Err(bad(
            "has an invalid role path or name (letters, digits and +=,.@_- ; a name of at most 64 characters)",
        ));
    }
    Ok(value.to_owned())
}

/// STS's own rule for an external id: 2 to 1224 characters of `[\w+=,.@:/-]`.
fn parse_external_id(value: &str) -> Result<String> {
    let ok = (2..=1224).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/_-".contains(&b));
    if !ok {
        return Err(Error::config(format!(
            "external_id {} must be 2 to 1224 characters of letters, digits and +=,.@:/_- (what the role's trust \
             policy expects in sts:ExternalId)",
            quote(value)
        )));
    }
    Ok(value.to_owned())
}

/// `a.b.c.d` or `a.b.c.d/32`, or an IPv6 address (`/128`). A well-formed prefix other than a
/// single address is a validation error: AWS would silently widen such a route to a whole range.
pub fn parse_vip(value: &str) -> Result<IpNet> {
    // The parse error holds the whole text: quote it shortened instead, as for every key.
    let net: IpNet = value.parse().map_err(|e| {
        let what = match e {
            NetParseError::Address(_) => "is not an IP address",
            NetParseError::Prefix(_) => "has an invalid prefix length",
        };
        Error::config(format!(
            "vip {} {what}; give the overlay address as a.b.c.d or a.b.c.d/32 (IPv6: x:y::z or x:y::z/128)",
            quote(value)
        ))
    })?;
    check_host_route(net)?;
    Ok(net)
}

/// The VIP must be one address: a /32 (IPv4) or /128 (IPv6) route.
pub fn check_host_route(net: IpNet) -> Result<()> {
    if net.prefix() != net.host_prefix() {
        return Err(Error::validation(format!(
            "vip {net} is a /{} network; the VIP must be a single address (/{})",
            net.prefix(),
            net.host_prefix()
        )));
    }
    Ok(())
}

fn parse_interface(value: &str) -> Result<String> {
    // Linux labels are at most IFNAMSIZ-1 = 15 bytes, no blanks or slashes.
    let ok = value.len() <= 15
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'=');
    if !ok {
        return Err(Error::config(format!(
            "interface {} is not an address label such as eth0:1 (at most 15 characters, no blanks)",
            quote(value)
        )));
    }
    Ok(value.to_owned())
}

/// An AWS resource id: the prefix, then letters and digits (`rtb-0a1b2c...`). Only the shape is
/// checked here; whether the id exists, or is well-formed in EC2's own terms, EC2 answers.
fn parse_id(key: &str, prefix: &str, value: &str) -> Result<String> {
    let ok = value.strip_prefix(prefix).is_some_and(|rest| {
        (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    if !ok {
        return Err(Error::config(format!(
            "{key}: {} is not a {prefix}... id (letters and digits after `{prefix}`)",
            quote(value)
        )));
    }
    Ok(value.to_owned())
}

fn parse_table_ids(value: &str) -> Result<Vec<String>> {
    let mut ids: Vec<String> = Vec::new();
    for part in value.split(',') {
        let id = parse_id("route_tables", "rtb-", part.trim())?;
        if ids.contains(&id) {
            return Err(Error::config(format!(
                "route_tables lists {id} twice; list each table once"
            )));
        }
        ids.push(id);
    }
    Ok(ids)
}

fn parse_tag(value: &str) -> Result<(String, String)> {
    match value.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
            Ok((k.trim().to_owned(), v.trim().to_owned()))
        }
        _ => Err(Error::config(format!(
            "route_table_tag {} is not Key=Value (for example route_table_tag=irisvip=prod)",
            quote(value)
        ))),
    }
}

fn parse_region(value: &str) -> Result<String> {
    let ok = value.len() <= 32
        && value.contains('-')
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(Error::config(format!(
            "region {} is not an AWS region name such as us-east-1",
            quote(value)
        )));
    }
    Ok(value.to_owned())
}

fn parse_endpoint(value: &str) -> Result<String> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    let ok = rest.is_some_and(|r| {
        !r.is_empty() && !r.starts_with('/') && r.bytes().all(|b| b.is_ascii_graphic())
    });
    if !ok {
        return Err(Error::config(format!(
            "endpoint {} is not an http:// or https:// URL",
            quote(value)
        )));
    }
    Ok(value.to_owned())
}

fn parse_ms(key: &str, value: &str, min: u64, max: u64) -> Result<Duration> {
    let ms = value
        .parse::<u64>()
        .ok()
        .filter(|ms| (min..=max).contains(ms) && value.bytes().all(|b| b.is_ascii_digit()));
    match ms {
        Some(ms) => Ok(Duration::from_millis(ms)),
        None => Err(Error::config(format!(
            "{key} {} must be a whole number of milliseconds from {min} to {max}",
            quote(value)
        ))),
    }
}

fn parse_count(key: &str, value: &str, min: u64, max: u64) -> Result<usize> {
    let n = value
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n) && value.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| usize::try_from(n).ok());
    n.ok_or_else(|| {
        Error::config(format!(
            "{key} {} must be a whole number from {min} to {max}",
            quote(value)
        ))
    })
}

fn parse_flag(key: &str, value: &str) -> Result<bool> {
    match value {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err(Error::config(format!(
            "{key} {} must be 0 or 1",
            quote(value)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn ok(s: &str) -> Config {
        parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn err(s: &[u8]) -> Error {
        match parse(s) {
            Ok(c) => panic!(
                "{:?} should be refused, got {c:?}",
                String::from_utf8_lossy(s)
            ),
            Err(e) => e,
        }
    }

    #[test]
    fn empty_means_defaults() {
        assert_eq!(ok(""), Config::default());
        assert_eq!(ok("  ;\n ; "), Config::default());
    }

    #[test]
    fn every_key_with_blanks_and_both_separators() {
        let c = ok(" vip = 192.168.240.10/32 ; interface=eth1:7\nroute_tables= rtb-0a1 , rtb-2b3 ;eni=eni-0abc\nregion=eu-west-1;endpoint=http://127.0.0.1:5000;timeout_ms=2500;dry_run=1;");
        assert_eq!(
            c.vip.map(|v| v.to_string()).as_deref(),
            Some("192.168.240.10/32")
        );
        assert_eq!(c.interface.as_deref(), Some("eth1:7"));
        assert_eq!(
            c.selection,
            Selection::Ids(vec!["rtb-0a1".into(), "rtb-2b3".into()])
        );
        assert_eq!(c.eni.as_deref(), Some("eni-0abc"));
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert!(c.dry_run);
        assert_eq!(ok("settle_ms=150").settle, Duration::from_millis(150));
        assert_eq!(ok("settle_ms=0").settle, Duration::ZERO);
        assert!(!ok("permissions=skip").probe_permissions);
        assert!(ok("").probe_permissions);
        assert_eq!(ok("").write, WriteMode::Always);
        assert_eq!(ok("write=changed").write, WriteMode::Changed);
        assert_eq!(ok("write=always").write, WriteMode::Always);
        assert_eq!(ok("").max_in_flight, DEFAULT_MAX_IN_FLIGHT);
        assert_eq!(ok("max_in_flight=4").max_in_flight, 4);
    }

    #[test]
    fn plain_vip_is_a_host_route_and_crlf_is_blank() {
        let c = ok("vip=10.99.0.1\r\n");
        assert_eq!(c.vip.map(|v| v.prefix()), Some(32));
    }

    #[test]
    fn an_ipv6_vip_is_a_128_route() {
        let c = ok("vip=FD00:EC2::10");
        assert_eq!(
            c.vip.map(|v| v.to_string()).as_deref(),
            Some("fd00:ec2::10/128")
        );
        assert_eq!(ok("vip=fd00:ec2::10/128").vip, ok("vip=fd00:ec2::10").vip);
        assert_eq!(err(b"vip=fd00:ec2::/64").kind, ErrorKind::Validation);
        assert!(err(b"vip=fd00:ec2::/64").message.contains("/128"));
        assert_eq!(err(b"vip=fd00:::1").kind, ErrorKind::Config);
    }

    #[test]
    fn tag_selection_keeps_equals_in_value() {
        assert_eq!(
            ok("route_table_tag=env=a=b").selection,
            Selection::Tag {
                key: "env".into(),
                value: "a=b".into()
            }
        );
    }

    #[test]
    fn ids_of_any_letters_pass_to_ec2() {
        // Existence and EC2's own id format are EC2's to answer (not_found / Malformed).
        let c = ok("route_tables=rtb-missing,rtb-0A1;eni=eni-gone");
        assert_eq!(
            c.selection,
            Selection::Ids(vec!["rtb-missing".into(), "rtb-0A1".into()])
        );
        assert_eq!(c.eni.as_deref(), Some("eni-gone"));
    }

    #[test]
    fn modes_and_their_keys() {
        assert_eq!(ok("").mode, Mode::Route);
        let c = ok("mode=private-ip;vip=10.0.1.50");
        assert_eq!(c.mode, Mode::PrivateIp);
        let c = ok("mode=eip;allocation_id=eipalloc-0abc;private_ip=10.0.1.10");
        assert_eq!(c.eip, Some(EipRef::Allocation("eipalloc-0abc".into())));
        assert_eq!(c.private_ip, Some(std::net::Ipv4Addr::new(10, 0, 1, 10)));
        let c = ok("mode=eip;public_ip=203.0.113.7");
        assert_eq!(
            c.eip,
            Some(EipRef::PublicIp(std::net::Ipv4Addr::new(203, 0, 113, 7)))
        );
        // Keys of another mode are refused, naming the mode they belong to.
        for (input, says) in [
            (
                "route_tables=rtb-1;mode=eip;allocation_id=eipalloc-1",
                "belongs to mode=route",
            ),
            (
                "mode=private-ip;route_table_tag=a=b",
                "belongs to mode=route",
            ),
            ("mode=private-ip;settle_ms=100", "belongs to mode=route"),
            ("allocation_id=eipalloc-1", "belongs to mode=eip"),
            ("mode=route;private_ip=10.0.0.1", "belongs to mode=eip"),
            ("mode=private-ip;public_ip=1.2.3.4", "belongs to mode=eip"),
            (
                "mode=eip;vip=1.2.3.4;allocation_id=eipalloc-1",
                "allocation_id= or public_ip=",
            ),
            ("mode=eip", "needs the Elastic IP"),
            (
                "mode=eip;allocation_id=eipalloc-1;public_ip=1.2.3.4",
                "not both",
            ),
            ("mode=private-ip;vip=fd00::1", "IPv6"),
            ("mode=Route", "must be route"),
            ("mode=eip;allocation_id=eni-1", "eipalloc-"),
            ("mode=eip;public_ip=1.2.3.4/32", "not an IPv4 address"),
            (
                "mode=eip;allocation_id=eipalloc-1;route_tables=rtb-1",
                "set mode=route",
            ),
            ("private_ip=10.0.0.1", "set mode=eip"),
        ] {
            let e = err(input.as_bytes());
            assert_eq!(e.kind, ErrorKind::Config, "{input}: {e}");
            assert!(e.message.contains(says), "{input}: {}", e.message);
        }
    }

    #[test]
    fn a_refused_config_still_says_its_mode() {
        assert_eq!(mode_hint(b"mode=eip;route_tables=rtb-1"), Some(Mode::Eip));
        assert_eq!(
            mode_hint(b" mode = private-ip ;bogus"),
            Some(Mode::PrivateIp)
        );
        assert_eq!(mode_hint(b"vip=1.2.3.4"), None);
        assert_eq!(mode_hint(b"mode=nonsense"), None);
        assert_eq!(mode_hint(b"\xff"), None);
    }

    #[test]
    fn refusals_have_the_right_kind() {
        let cases: &[(&[u8], ErrorKind)] = &[
            (b"vip=1.2.3.0/24", ErrorKind::Validation),
            (b"vip=1.2.3", ErrorKind::Config),
            (b"vip=1.2.3.4/33", ErrorKind::Config),
            (b"bogus=1", ErrorKind::Config),
            (b"VIP=1.2.3.4", ErrorKind::Config),
            (b"vip=1.2.3.4;vip=1.2.3.4", ErrorKind::Config),
            (b"vip", ErrorKind::Config),
            (b"vip=", ErrorKind::Config),
            (b"route_tables=rtb-1;route_table_tag=a=b", ErrorKind::Config),
            (b"route_tables=rtb-1,rtb-1", ErrorKind::Config),
            (b"route_tables=rtb-1,,rtb-2", ErrorKind::Config),
            (b"route_tables=rtb-0a1!", ErrorKind::Config),
            (b"route_tables=rtb-", ErrorKind::Config),
            (b"eni=eni-", ErrorKind::Config),
            (b"route_tables=subnet-1", ErrorKind::Config),
            (b"route_table_tag=novalue", ErrorKind::Config),
            (b"route_table_tag==v", ErrorKind::Config),
            (b"eni=i-123", ErrorKind::Config),
            (b"region=US EAST", ErrorKind::Config),
            (b"endpoint=ftp://x", ErrorKind::Config),
            (b"endpoint=http://", ErrorKind::Config),
            (b"timeout_ms=0", ErrorKind::Config),
            (b"timeout_ms=-5", ErrorKind::Config),
            (b"timeout_ms=+5", ErrorKind::Config),
            (b"timeout_ms=999999999", ErrorKind::Config),
            (b"dry_run=yes", ErrorKind::Config),
            (b"settle_ms=-1", ErrorKind::Config),
            (b"permissions=maybe", ErrorKind::Config),
            (b"write=sometimes", ErrorKind::Config),
            (b"write=Always", ErrorKind::Config),
            (b"max_in_flight=0", ErrorKind::Config),
            (b"max_in_flight=1001", ErrorKind::Config),
            (b"max_in_flight=+3", ErrorKind::Config),
            (b"settle_ms=60001", ErrorKind::Config),
            (b"interface=has space", ErrorKind::Config),
            (b"interface=waytoolonglabel:123", ErrorKind::Config),
            (b"vip=1.2.3.4\xff", ErrorKind::Config),
        ];
        for (input, kind) in cases {
            let e = err(input);
            assert_eq!(e.kind, *kind, "{:?}: {e}", String::from_utf8_lossy(input));
            assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn role_arn_and_external_id() {
        let c =
            ok("role_arn=arn:aws:iam::123456789012:role/irisvip-routes;external_id=prod-mirror:1");
        assert_eq!(
            c.role,
            Some(Role {
                arn: "arn:aws:iam::123456789012:role/irisvip-routes".into(),
                external_id: Some("prod-mirror:1".into()),
            })
        );
        let c = ok("role_arn=arn:aws-us-gov:iam::123456789012:role/ops/net/irisvip");
        assert_eq!(c.role.and_then(|r| r.external_id), None);
        assert!(ok("role_arn=arn:aws-cn:iam::000000000000:role/a")
            .role
            .is_some());
        let refused: &[&str] = &[
            "role_arn=irisvip-routes",
            "role_arn=arn:aws:iam::12345678901:role/x",
            "role_arn=arn:aws:iam::1234567890123:role/x",
            "role_arn=arn:aws:iam:us-east-1:123456789012:role/x",
            "role_arn=arn:aws:sts::123456789012:assumed-role/x/y",
            "role_arn=arn:aws:iam::123456789012:user/x",
            "role_arn=arn:aws:iam::123456789012:role/",
            "role_arn=arn:aws:iam::123456789012:role//x",
            "role_arn=arn:aws:iam::123456789012:role/has space",
            "role_arn=arn:gcp:iam::123456789012:role/x",
            "role_arn=arn:aws:iam::12345678901a:role/x",
            "role_arn=arn:aws:iam::123456789012:role/x;external_id=a",
            "role_arn=arn:aws:iam::123456789012:role/x;external_id=no spaces",
            "role_arn=arn:aws:iam::123456789012:role/x;external_id=ünï",
            "external_id=prod-mirror",
        ];
        for input in refused {
            let e = err(input.as_bytes());
            assert_eq!(e.kind, ErrorKind::Config, "{input}: {e}");
            assert!(
                e.message.contains("role_arn") || e.message.contains("external_id"),
                "{input}: {e}"
            );
        }
        let long_name = format!("role_arn=arn:aws:iam::123456789012:role/{}", "n".repeat(65));
        assert_eq!(err(long_name.as_bytes()).kind, ErrorKind::Config);
        let long_id = format!(
            "role_arn=arn:aws:iam::123456789012:role/x;external_id={}",
            "i".repeat(1225)
        );
        assert_eq!(err(long_id.as_bytes()).kind, ErrorKind::Config);
        assert!(err(b"external_id=prod-mirror")
            .message
            .contains("without role_arn"));
    }

    #[test]
    fn messages_name_the_problem() {
        assert!(err(b"bogus=1").message.contains("bogus"));
        assert!(err(b"timeout_ms=1;timeout_ms=2").message.contains("twice"));
        assert!(err(b"vip=10.0.0.0/8").message.contains("/32"));
    }

    #[test]
    fn worst_inputs() {
        // 1 MB of garbage: refused, and the message does not echo it whole.
        let big = vec![b'x'; 1 << 20];
        let e = err(&big);
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(
            e.message.len() < 512,
            "message is {} bytes",
            e.message.len()
        );
        // A long malformed vip is quoted short too.
        let long_vip = format!("vip={}", "9".repeat(40_000));
        assert!(err(long_vip.as_bytes()).message.len() < 512);
        // 1 MB of separators is empty.
        let seps: Vec<u8> = b";\n".iter().copied().cycle().take(1 << 20).collect();
        assert_eq!(parse(&seps).expect("only separators"), Config::default());
        // Non-ASCII keys and values.
        assert_eq!(err("vïp=1.2.3.4".as_bytes()).kind, ErrorKind::Config);
        assert_eq!(err("vip=１.２.３.４".as_bytes()).kind, ErrorKind::Config);
        assert_eq!(err("region=ēu-west-1".as_bytes()).kind, ErrorKind::Config);
        // A NUL inside is not how IRIS passes a `c` string, but must still be refused, not trusted.
        assert_eq!(err(b"vip=1.2.3.4\0;bogus=1").kind, ErrorKind::Config);
    }
}
