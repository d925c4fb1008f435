//! The result JSON of the contract, and writing it into a buffer of fixed capacity.

use crate::error::{Error, ErrorKind};
use serde::Serialize;
use std::fmt::Write;

/// Which entry produced a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Claim,
    Release,
    Status,
    /// Preflight (`vip_check`): changes nothing, reports pass/warn/fail per check.
    Check,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Claim => "claim",
            Op::Release => "release",
            Op::Status => "status",
            Op::Check => "check",
        }
    }
}

/// Who the VIP route points at across the selected tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    /// Every selected table points at our ENI.
    #[serde(rename = "self")]
    Myself,
    /// All point at one other target.
    Other,
    /// No table has the route.
    None,
    /// Anything else.
    Mixed,
}

/// State of the VIP route in one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteState {
    Active,
    Blackhole,
    Absent,
}

/// What a call did to one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Replaced,
    Created,
    Deleted,
    Unchanged,
    Planned,
    Failed,
    /// `mode=private-ip`: AssignPrivateIpAddresses moved the address to our ENI.
    Assigned,
    /// `mode=private-ip`: UnassignPrivateIpAddresses took it off our ENI.
    Unassigned,
    /// `mode=eip`: AssociateAddress pointed the Elastic IP at our ENI.
    Associated,
    /// `mode=eip`: DisassociateAddress ended our association.
    Disassociated,
}

/// Which kind of address an `address` result describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AddressKind {
    #[serde(rename = "private-ip")]
    PrivateIp,
    #[serde(rename = "eip")]
    Eip,
}

/// The moved address in `mode=private-ip` and `mode=eip` (instead of `route_tables`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressReport {
    pub kind: AddressKind,
    /// The address: the private IPv4, or the Elastic IP's public IPv4.
    pub ip: String,
    /// The ENI that holds it (is associated with it), or null.
    pub target: Option<String>,
    #[serde(rename = "self")]
    pub is_self: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
    /// `eip`: the allocation id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocation_id: Option<String>,
    /// `eip`: the current association's id (null when unassociated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub association_id: Option<String>,
    /// `eip`: the private address of `target` it maps to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
}

/// One selected route table in a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableReport {
    pub id: String,
    /// The ENI the VIP route points at (the contract: an ENI id or null).
    pub target: Option<String>,
    /// Extension: what the route points at when that is not an ENI (a gateway, a peering...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_target: Option<String>,
    pub state: RouteState,
    #[serde(rename = "self")]
    pub is_self: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Where a write was accepted: whether a read-back saw it before the deadline (EC2 reads
    /// are eventually consistent, so `false` is not a failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
}

/// `error` of a result or of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorReport {
    pub kind: ErrorKind,
    pub message: String,
}

impl From<&Error> for ErrorReport {
    fn from(e: &Error) -> Self {
        ErrorReport {
            kind: e.kind,
            message: e.message.clone(),
        }
    }
}

/// `local` of a status result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalReport {
    pub interface: String,
    pub vip_present: bool,
}

/// Outcome of one preflight check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
    Skip,
}

/// One preflight check: what was checked, how it went, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckItem {
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The error kind a failure stands for (what the claim would fail with).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<ErrorKind>,
}

impl CheckItem {
    fn new(name: &str, status: CheckStatus, detail: impl Into<String>) -> Self {
        CheckItem {
            name: name.to_owned(),
            status,
            detail: detail.into(),
            fix: None,
            kind: None,
        }
    }

    pub fn pass(name: &str, detail: impl Into<String>) -> Self {
        Self::new(name, CheckStatus::Pass, detail)
    }

    pub fn skip(name: &str, detail: impl Into<String>) -> Self {
        Self::new(name, CheckStatus::Skip, detail)
    }

    pub fn warn(name: &str, detail: impl Into<String>, fix: Option<String>) -> Self {
        CheckItem {
            fix,
            ..Self::new(name, CheckStatus::Warn, detail)
        }
    }

    /// A failure, with the error kind the operation would fail with.
    pub fn fail(
        name: &str,
        detail: impl Into<String>,
        kind: ErrorKind,
        fix: Option<String>,
    ) -> Self {
        CheckItem {
            fix,
            kind: Some(kind),
            ..Self::new(name, CheckStatus::Fail, detail)
        }
    }
}

/// One result object, as the contract lays it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub ok: bool,
    pub op: Op,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    pub vip: Option<String>,
    pub instance_id: Option<String>,
    pub eni: Option<String>,
    pub vpc_id: Option<String>,
    pub region: Option<String>,
    pub holder: Option<Holder>,
    /// `mode=route` only (absent in the other modes, which report `address`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_tables: Option<Vec<TableReport>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<AddressReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalReport>,
    /// Only in status results (null there when it could not be read).
    #[serde(skip_serializing_if = "is_not_status")]
    pub source_dest_check: Option<Option<bool>>,
    /// Only in check results.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckItem>,
    /// Release only: a route was deleted on the strength of a read that may have lagged
    /// another member's claim (EC2 reads are eventually consistent, deletes unconditional).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stale_read_risk: bool,
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
    pub elapsed_ms: u64,
}

fn is_not_status(v: &Option<Option<bool>>) -> bool {
    v.is_none()
}

impl Report {
    /// An empty result for `op`, to be filled in as the call learns things.
    pub fn new(op: Op) -> Self {
        Report {
            ok: false,
            op,
            dry_run: false,
            vip: None,
            instance_id: None,
            eni: None,
            vpc_id: None,
            region: None,
            holder: None,
            route_tables: Some(Vec::new()),
            address: None,
            local: None,
            source_dest_check: None,
            checks: Vec::new(),
            stale_read_risk: false,
            warnings: Vec::new(),
            error: None,
            elapsed_ms: 0,
        }
    }

    /// Replaces every occurrence of a secret in the result's free text with `[redacted]`.
    /// Messages quote EC2 and IMDS text verbatim; this makes "no secret in a result" hold by
    /// construction, whatever a misbehaving endpoint echoes.
    pub fn redact(&mut self, secrets: &[String]) {
        let secrets: Vec<&String> = secrets.iter().filter(|s| s.len() >= 8).collect();
        if secrets.is_empty() {
            return;
        }
        let scrub = |text: &mut String| {
            for s in &secrets {
                if text.contains(s.as_str()) {
                    *text = text.replace(s.as_str(), "[redacted]");
                }
            }
        };
        if let Some(e) = &mut self.error {
            scrub(&mut e.message);
        }
        self.warnings.iter_mut().for_each(scrub);
        for t in self.route_tables.iter_mut().flatten() {
            if let Some(e) = &mut t.error {
                scrub(&mut e.message);
            }
        }
        if let Some(e) = self.address.as_mut().and_then(|a| a.error.as_mut()) {
            scrub(&mut e.message);
        }
        for c in &mut self.checks {
            scrub(&mut c.detail);
        }
    }

    /// Marks the result failed with `e` (the first error wins: it is the cause).
    pub fn fail(&mut self, e: &Error) {
        self.ok = false;
        if self.error.is_none() {
            self.error = Some(e.into());
        }
    }
}

/// Smaller stand-ins for a result that does not fit, largest first.
#[derive(Serialize)]
struct Summary<'a> {
    ok: bool,
    op: Op,
    truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    holder: Option<Holder>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ErrorReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// Serialises `report` into at most `capacity - 1` bytes (the NUL takes the last one).
///
/// When the full object does not fit, returns the largest of a series of shorter objects
/// that still parse and say `"truncated": true`; when not even `{}` fits, an empty string.
/// `capacity` 0 means nothing at all may be written (the caller writes no NUL either).
pub fn render_bounded(report: &Report, capacity: usize) -> Vec<u8> {
    let room = capacity.saturating_sub(1);
    let full = to_json_ascii(report);
    if !full.is_empty() && full.len() <= room {
        return full;
    }
    let why = format!(
        "result of {} bytes exceeds the {} byte reply capacity (zfstrsize); raise ZFString or select fewer tables",
        full.len(),
        capacity
    );
    // Each shorter candidate drops one more field: message, error, holder.
    let candidates = [
        (true, true, true),
        (false, true, true),
        (false, false, true),
        (false, false, false),
    ]
    .map(|(message, error, holder)| {
        to_json_ascii(&Summary {
            ok: report.ok,
            op: report.op,
            truncated: true,
            holder: if holder { report.holder } else { None },
            error: if error { report.error.as_ref() } else { None },
            message: message.then(|| why.clone()),
        })
    });
    for bytes in candidates {
        if !bytes.is_empty() && bytes.len() <= room {
            return bytes;
        }
    }
    let tiny = if report.ok {
        &b"{\"ok\":true}"[..]
    } else {
        &b"{\"ok\":false}"[..]
    };
    for bytes in [tiny, b"{}"] {
        if bytes.len() <= room {
            return bytes.to_vec();
        }
    }
    Vec::new()
}

/// JSON with every non-ASCII character escaped (`\u00e9`, surrogate pairs above U+FFFF). The
/// `c`/`C` arguments are 8-bit strings to IRIS, so raw UTF-8 (an echoed `vïp`, a message's
/// punctuation) would arrive as two or three wrong characters; `\u` escapes decode exactly in
/// `%FromJSON`. Outside strings JSON is ASCII already, so escaping every non-ASCII char is valid.
/// Empty when serialisation fails (it cannot for these types; callers then fall back).
fn to_json_ascii<T: Serialize>(value: &T) -> Vec<u8> {
    let Ok(text) = serde_json::to_string(value) else {
        return Vec::new();
    };
    if text.is_ascii() {
        return text.into_bytes();
    }
    let mut out = String::with_capacity(text.len() + 32);
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ok: bool, tables: usize) -> Report {
        let mut r = Report::new(Op::Claim);
        r.ok = ok;
        r.vip = Some("192.168.240.10/32".into());
        r.holder = Some(Holder::Myself);
        for i in 0..tables {
            r.route_tables
                .get_or_insert_with(Vec::new)
                .push(TableReport {
                    id: format!("rtb-{i:08x}"),
                    target: Some("eni-0123".into()),
                    other_target: None,
                    state: RouteState::Active,
                    is_self: true,
                    action: Some(Action::Replaced),
                    confirmed: Some(true),
                    error: None,
                });
        }
        if !ok {
            r.fail(&Error::new(
                ErrorKind::Permission,
                "EC2 refused ReplaceRoute: grant ec2:ReplaceRoute",
            ));
        }
        r
    }

    fn parse(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).expect("valid JSON")
    }

    #[test]
    fn result_is_ascii_and_decodes_to_the_same_text() {
        let mut r = sample(false, 1);
        let msg = "vïp `１.２` is not an IPv4 address 😀";
        r.error = Some(ErrorReport {
            kind: ErrorKind::Config,
            message: msg.into(),
        });
        let bytes = render_bounded(&r, 32_767);
        assert!(bytes.is_ascii(), "{}", String::from_utf8_lossy(&bytes));
        assert!(
            String::from_utf8_lossy(&bytes).contains("\\u00ef")
                && String::from_utf8_lossy(&bytes).contains("\\ud83d\\ude00")
        );
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
        assert_eq!(v["error"]["message"], msg);
    }

    #[test]
    fn full_result_has_the_contract_fields() {
        let v = parse(&render_bounded(&sample(true, 2), 32_767));
        assert_eq!(v["ok"], true);
        assert_eq!(v["op"], "claim");
        assert_eq!(v["holder"], "self");
        assert_eq!(v["route_tables"][1]["self"], true);
        assert_eq!(v["route_tables"][0]["action"], "replaced");
        assert_eq!(v["route_tables"][0]["state"], "active");
        assert!(v.get("error").is_none());
        assert!(
            v.get("source_dest_check").is_none(),
            "only status reports it"
        );
        assert!(v.get("dry_run").is_none());
    }

    #[test]
    fn redact_scrubs_every_free_text() {
        let mut r = sample(false, 1);
        r.error = Some(ErrorReport {
            kind: ErrorKind::Aws,
            message: "echo SECRETVALUE123 back".into(),
        });
        r.warnings.push("SECRETVALUE123".into());
        r.redact(&["SECRETVALUE123".into(), "short".into()]);
        let text = String::from_utf8(render_bounded(&r, 4096)).expect("utf8");
        assert!(
            !text.contains("SECRETVALUE123") && text.contains("[redacted]"),
            "{text}"
        );
    }

    #[test]
    fn status_reports_null_source_dest_check() {
        let mut r = Report::new(Op::Status);
        r.source_dest_check = Some(None);
        let v = parse(&render_bounded(&r, 4096));
        assert!(v["source_dest_check"].is_null());
        assert!(v
            .as_object()
            .is_some_and(|o| o.contains_key("source_dest_check")));
    }

    #[test]
    fn every_capacity_gives_valid_json_or_nothing_and_never_overflows() {
        for report in [sample(true, 40), sample(false, 40)] {
            let full_len = serde_json::to_vec(&report).map(|v| v.len()).unwrap_or(0);
            for cap in 0..full_len + 3 {
                let out = render_bounded(&report, cap);
                assert!(
                    out.len() < cap.max(1),
                    "cap {cap}: wrote {} bytes + NUL",
                    out.len()
                );
                if cap >= 3 {
                    let v = parse(&out);
                    assert_eq!(
                        v.get("ok").and_then(|o| o.as_bool()).unwrap_or(report.ok),
                        report.ok
                    );
                    if out.len() < full_len {
                        assert!(cap <= full_len, "cap {cap} fits the full result");
                    }
                } else {
                    assert!(out.is_empty(), "cap {cap}: {out:?}");
                }
            }
        }
    }

    #[test]
    fn truncated_result_says_so_and_keeps_the_error_kind() {
        let out = render_bounded(&sample(false, 200), 400);
        let v = parse(&out);
        assert_eq!(v["truncated"], true);
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["kind"], "permission");
        let small = parse(&render_bounded(&sample(true, 200), 64));
        assert_eq!(small["truncated"], true);
        assert_eq!(small["ok"], true);
    }
}
