//! irisvip: the operator's command line. Same core code as the IRIS library (not through the
//! C ABI): see, move and check the VIP (a route, a private IP or an Elastic IP) from a shell.
//!
//! Exit codes: 0 ok; 2 config or validation; 3 permission; 4 AWS, metadata, not found,
//! throttled or timeout; 1 internal or anything else.

use clap::{Args, Parser, Subcommand};
use irisvip::report::{Action, AddressKind, CheckStatus, Holder, Report};
use irisvip::{ErrorKind, Op};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "irisvip",
    version,
    about = "Move an IRIS mirror's VIP on AWS: an overlay route in the VPC route tables (across \
             availability zones), a secondary private IP, or an Elastic IP"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Where the VIP is (each table's route, or who holds the address); changes nothing.
    Status(Opts),
    /// Move the VIP to this member's ENI (every selected table's route, or the address).
    Claim(Opts),
    /// Let go of the VIP where it is still this member's.
    Release(Opts),
    /// Preflight: IMDSv2, identity, VIP, tables or address, holder, IAM; changes nothing.
    Check(Opts),
}

/// The contract's config keys as flags (each may also come from --config, but not twice).
#[derive(Args)]
struct Opts {
    /// What moves: route (an overlay route), private-ip (a secondary private IP of the subnet)
    /// or eip (an Elastic IP) [default: route].
    #[arg(long)]
    mode: Option<String>,
    /// The VIP: an overlay address (a.b.c.d[/32], or IPv6) outside the VPC for mode=route; a
    /// private address of the subnet for mode=private-ip.
    #[arg(long)]
    vip: Option<String>,
    /// Address label that carries the VIP on this host [default: eth0:1].
    #[arg(long)]
    interface: Option<String>,
    /// Comma-separated route table ids [default: every table of the VPC].
    #[arg(long)]
    route_tables: Option<String>,
    /// Key=Value: the VPC's tables carrying that tag.
    #[arg(long)]
    route_table_tag: Option<String>,
    /// Network interface the route points at [default: the primary ENI, from IMDS].
    #[arg(long)]
    eni: Option<String>,
    /// AWS region [default: AWS_REGION, profile, IMDS].
    #[arg(long)]
    region: Option<String>,
    /// EC2 endpoint URL [default: AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL, public].
    #[arg(long)]
    endpoint: Option<String>,
    /// Deadline for the whole call in milliseconds [default: 10000].
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Report the plan, change nothing (claim, release).
    #[arg(long)]
    dry_run: bool,
    /// Claim: wait this long after the switch and re-create routes a late release deleted.
    #[arg(long)]
    settle_ms: Option<u64>,
    /// Check: `probe` IAM with EC2 DryRun, or `skip` (emulators that ignore DryRun).
    #[arg(long)]
    permissions: Option<String>,
    /// Claim: `always` writes every table (a failover), `changed` only those not reading as ours.
    #[arg(long)]
    write: Option<String>,
    /// At most this many mutating requests in flight [default: 50].
    #[arg(long)]
    max_in_flight: Option<u64>,
    /// mode=eip: the Elastic IP's allocation id (eipalloc-…).
    #[arg(long)]
    allocation_id: Option<String>,
    /// mode=eip: the Elastic IP by its address (instead of --allocation-id).
    #[arg(long)]
    public_ip: Option<String>,
    /// mode=eip: the private address of our ENI it maps to [default: the ENI's primary].
    #[arg(long)]
    private_ip: Option<String>,
    /// Assume this IAM role (STS) for every EC2 call: route tables of another account.
    #[arg(long)]
    role_arn: Option<String>,
    /// With --role-arn: the external id its trust policy expects.
    #[arg(long)]
    external_id: Option<String>,
    /// A config string (key=value;…) or the path of a file holding one.
    #[arg(long)]
    config: Option<String>,
    /// Print the contract's JSON result instead of the human-readable report.
    #[arg(long)]
    json: bool,
}

impl Opts {
    /// The config text: --config (string or file) first, then one line per flag given.
    fn config_text(&self) -> Result<String, String> {
        let mut text = match &self.config {
            Some(c) if std::path::Path::new(c).is_file() => std::fs::read_to_string(c)
                .map_err(|e| format!("cannot read --config file {c}: {e}"))?,
            Some(c) => c.clone(),
            None => String::new(),
        };
        let flags: [(&str, Option<String>); 18] = [
            ("mode", self.mode.clone()),
            ("vip", self.vip.clone()),
            ("interface", self.interface.clone()),
            ("route_tables", self.route_tables.clone()),
            ("route_table_tag", self.route_table_tag.clone()),
            ("eni", self.eni.clone()),
            ("region", self.region.clone()),
            ("endpoint", self.endpoint.clone()),
            ("timeout_ms", self.timeout_ms.map(|v| v.to_string())),
            ("settle_ms", self.settle_ms.map(|v| v.to_string())),
            ("permissions", self.permissions.clone()),
            ("write", self.write.clone()),
            ("max_in_flight", self.max_in_flight.map(|v| v.to_string())),
            ("allocation_id", self.allocation_id.clone()),
            ("public_ip", self.public_ip.clone()),
            ("private_ip", self.private_ip.clone()),
            ("role_arn", self.role_arn.clone()),
            ("external_id", self.external_id.clone()),
        ];
        for (key, value) in flags {
            if let Some(v) = value {
                text.push_str(&format!("\n{key}={v}"));
            }
        }
        if self.dry_run {
            text.push_str("\ndry_run=1");
        }
        Ok(text)
    }
}

fn exit_code(report: &Report) -> u8 {
    if report.ok {
        return 0;
    }
    match report.error.as_ref().map(|e| e.kind) {
        Some(ErrorKind::Config | ErrorKind::Validation) => 2,
        Some(ErrorKind::Permission) => 3,
        Some(
            ErrorKind::Aws
            | ErrorKind::Metadata
            | ErrorKind::NotFound
            | ErrorKind::Throttled
            | ErrorKind::Timeout,
        ) => 4,
        _ => 1,
    }
}

fn action_text(a: Option<Action>) -> &'static str {
    match a {
        None => "-",
        Some(Action::Replaced) => "replaced",
        Some(Action::Created) => "created",
        Some(Action::Deleted) => "deleted",
        Some(Action::Unchanged) => "unchanged",
        Some(Action::Planned) => "planned",
        Some(Action::Failed) => "FAILED",
        Some(Action::Assigned) => "assigned",
        Some(Action::Unassigned) => "unassigned",
        Some(Action::Associated) => "associated",
        Some(Action::Disassociated) => "disassociated",
    }
}

fn print_human(r: &Report) {
    let holder = match r.holder {
        Some(Holder::Myself) => "self",
        Some(Holder::Other) => "other",
        Some(Holder::None) => "none",
        Some(Holder::Mixed) => "mixed",
        None => "?",
    };
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!(
        "{} {}{}: {} — holder {holder}, {} ms",
        r.op.as_str(),
        dash(&r.vip),
        if r.dry_run { " (dry run)" } else { "" },
        if r.ok { "OK" } else { "FAILED" },
        r.elapsed_ms
    );
    println!(
        "  eni {}  instance {}  vpc {}  region {}",
        dash(&r.eni),
        dash(&r.instance_id),
        dash(&r.vpc_id),
        dash(&r.region)
    );
    if let Some(l) = &r.local {
        println!(
            "  local: {} {}",
            l.interface,
            if l.vip_present {
                "carries the VIP"
            } else {
                "does NOT carry the VIP"
            }
        );
    }
    if let Some(sdc) = r.source_dest_check {
        let text = match sdc {
            Some(false) => "disabled (good)",
            Some(true) => "ENABLED (packets to the VIP are dropped)",
            None => "unknown",
        };
        println!("  source/dest check: {text}");
    }
    if let Some(a) = &r.address {
        let kind = match a.kind {
            AddressKind::PrivateIp => "private IP",
            AddressKind::Eip => "Elastic IP",
        };
        println!(
            "\n  {kind} {}{}: held by {}{}, action {}{}",
            a.ip,
            a.allocation_id
                .as_deref()
                .map(|id| format!(" ({id})"))
                .unwrap_or_default(),
            a.target.as_deref().unwrap_or("nobody"),
            match (&a.private_ip, a.is_self) {
                (Some(p), true) => format!(" (this member, {p})"),
                (Some(p), false) => format!(" ({p})"),
                (None, true) => " (this member)".to_owned(),
                (None, false) => String::new(),
            },
            action_text(a.action),
            match a.confirmed {
                Some(true) => ", confirmed",
                Some(false) => ", NOT yet confirmed by a read",
                None => "",
            }
        );
        if let Some(e) = &a.error {
            println!("      error [{}]: {}", e.kind, e.message);
        }
    }
    let tables = r.route_tables.as_deref().unwrap_or_default();
    if !tables.is_empty() {
        println!(
            "\n  {:<24} {:<24} {:<10} {:<5} ACTION",
            "ROUTE TABLE", "TARGET", "STATE", "SELF"
        );
        for t in tables {
            let state = match t.state {
                irisvip::report::RouteState::Active => "active",
                irisvip::report::RouteState::Blackhole => "blackhole",
                irisvip::report::RouteState::Absent => "absent",
            };
            println!(
                "  {:<24} {:<24} {:<10} {:<5} {}",
                t.id,
                t.target
                    .as_deref()
                    .or(t.other_target.as_deref())
                    .unwrap_or("-"),
                state,
                if t.is_self { "yes" } else { "no" },
                action_text(t.action)
            );
            if let Some(e) = &t.error {
                println!("      error [{}]: {}", e.kind, e.message);
            }
        }
    }
    if !r.checks.is_empty() {
        println!();
        for c in &r.checks {
            let tag = match c.status {
                CheckStatus::Pass => "PASS",
                CheckStatus::Warn => "WARN",
                CheckStatus::Fail => "FAIL",
                CheckStatus::Skip => "SKIP",
            };
            println!("  {tag} {:<26} {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                println!("       {:<26} fix: {fix}", "");
            }
        }
    }
    for w in &r.warnings {
        println!("  warning: {w}");
    }
    if let Some(e) = &r.error {
        println!("  error [{}]: {}", e.kind, e.message);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (op, opts) = match &cli.command {
        Command::Status(o) => (Op::Status, o),
        Command::Claim(o) => (Op::Claim, o),
        Command::Release(o) => (Op::Release, o),
        Command::Check(o) => (Op::Check, o),
    };
    let text = match opts.config_text() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("irisvip: {e}");
            return ExitCode::from(2);
        }
    };
    let report = irisvip::execute(op, text.as_bytes());
    if opts.json {
        match serde_json::to_string(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("irisvip: cannot write JSON: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        print_human(&report);
    }
    ExitCode::from(exit_code(&report))
}
