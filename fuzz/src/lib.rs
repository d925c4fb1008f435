//! irisvip's pure modules, compiled on their own for fuzzing: the same source files as the
//! library (`#[path]`), with serde, serde_json and thiserror only: no AWS SDK, no tokio, so a
//! fuzz build takes seconds and instruments only what parses untrusted input.
//!
//! The checks live here, not in the targets, so `cargo test` (stable, no libFuzzer) can replay
//! the committed corpus through them.

#![allow(dead_code)]

#[path = "../../src/config.rs"]
pub mod config;
#[path = "../../src/error.rs"]
pub mod error;
#[path = "../../src/net.rs"]
pub mod net;
#[path = "../../src/plan.rs"]
pub mod plan;
#[path = "../../src/report.rs"]
pub mod report;

use arbitrary::{Arbitrary, Unstructured};
use error::{Error, ErrorKind};
use report::{
    render_bounded, Action, AddressKind, AddressReport, CheckItem, CheckStatus, ErrorReport,
    Holder, LocalReport, Op, Report, RouteState, TableReport,
};
use std::time::Duration;

/// What a refusal's message may cost at most: it quotes values shortened (error::quote).
pub const MAX_MESSAGE: usize = 512;

/// `config::parse` on arbitrary bytes: no panic; a refusal is `config` or `validation` with a
/// short message naming the problem; an acceptance is in range and reproducible.
pub fn check_config(data: &[u8]) {
    match config::parse(data) {
        Ok(c) => {
            assert!(std::str::from_utf8(data).is_ok(), "accepted invalid UTF-8");
            assert!(c.timeout >= Duration::from_millis(1));
            assert!(c.timeout <= Duration::from_millis(config::MAX_TIMEOUT_MS));
            assert!(c.settle <= Duration::from_millis(config::MAX_SETTLE_MS));
            if let Some(v) = c.vip {
                assert_eq!(
                    v.prefix(),
                    v.host_prefix(),
                    "accepted a vip wider than one address"
                );
            }
            if let Some(i) = &c.interface {
                assert!(!i.is_empty() && i.len() <= 15);
            }
            assert!(c.max_in_flight >= 1);
            if let Some(e) = &c.endpoint {
                assert!(e.starts_with("http://") || e.starts_with("https://"));
            }
            match &c.selection {
                config::Selection::Ids(ids) => {
                    assert!(!ids.is_empty());
                    for (i, id) in ids.iter().enumerate() {
                        assert!(id.starts_with("rtb-"));
                        assert!(!ids[..i].contains(id), "duplicate table id accepted");
                    }
                }
                config::Selection::Tag { key, value } => {
                    assert!(!key.is_empty() && !value.is_empty());
                }
                config::Selection::AllInVpc => {}
            }
            assert_eq!(
                config::parse(data).ok(),
                Some(c),
                "parse is not deterministic"
            );
        }
        Err(e) => {
            assert!(
                matches!(e.kind, ErrorKind::Config | ErrorKind::Validation),
                "refusal of kind {}: {e}",
                e.kind
            );
            assert!(!e.message.is_empty());
            assert!(
                e.message.len() <= MAX_MESSAGE,
                "{} byte message for a {} byte config",
                e.message.len(),
                data.len()
            );
        }
    }
}

/// Decodes (capacity, report) from fuzz bytes and checks `render_bounded`.
pub fn check_render_bytes(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((capacity, report)) = arbitrary_case(&mut u) else {
        return;
    };
    check_render(&report, capacity);
}

/// The capacity: mostly small (the truncation ladder), sometimes up to 1 MiB.
fn arbitrary_case(u: &mut Unstructured) -> arbitrary::Result<(usize, Report)> {
    let capacity = match u8::arbitrary(u)? % 4 {
        0 => usize::from(u8::arbitrary(u)? % 16),
        1 => usize::from(u16::arbitrary(u)? % 1024),
        2 => usize::from(u16::arbitrary(u)?),
        _ => (u32::arbitrary(u)? % (1 << 20)) as usize,
    };
    Ok((capacity, arbitrary_report(u)?))
}

fn text(u: &mut Unstructured) -> arbitrary::Result<String> {
    // Arbitrary strings plus, now and then, a long one (a 300-char EC2 message, many tables).
    let s = String::arbitrary(u)?;
    Ok(if u8::arbitrary(u)? == 255 {
        s.repeat(64)
    } else {
        s
    })
}

fn opt_text(u: &mut Unstructured) -> arbitrary::Result<Option<String>> {
    Ok(if bool::arbitrary(u)? {
        Some(text(u)?)
    } else {
        None
    })
}

fn kind(u: &mut Unstructured) -> arbitrary::Result<ErrorKind> {
    Ok(*u.choose(&[
        ErrorKind::Config,
        ErrorKind::Validation,
        ErrorKind::Metadata,
        ErrorKind::Permission,
        ErrorKind::NotFound,
        ErrorKind::Throttled,
        ErrorKind::Timeout,
        ErrorKind::Aws,
        ErrorKind::Internal,
        ErrorKind::Interrupted,
    ])?)
}

fn error_report(u: &mut Unstructured) -> arbitrary::Result<ErrorReport> {
    Ok(ErrorReport::from(&Error::new(kind(u)?, text(u)?)))
}

/// A result as the library could produce it, with arbitrary contents.
pub fn arbitrary_report(u: &mut Unstructured) -> arbitrary::Result<Report> {
    let op = *u.choose(&[Op::Claim, Op::Release, Op::Status, Op::Check])?;
    let mut r = Report::new(op);
    r.ok = bool::arbitrary(u)?;
    r.dry_run = bool::arbitrary(u)?;
    r.vip = opt_text(u)?;
    r.instance_id = opt_text(u)?;
    r.eni = opt_text(u)?;
    r.vpc_id = opt_text(u)?;
    r.region = opt_text(u)?;
    r.holder = if bool::arbitrary(u)? {
        Some(*u.choose(&[Holder::Myself, Holder::Other, Holder::None, Holder::Mixed])?)
    } else {
        None
    };
    let tables = u8::arbitrary(u)? % 64;
    for _ in 0..tables {
        let table = TableReport {
            id: text(u)?,
            target: opt_text(u)?,
            other_target: opt_text(u)?,
            state: *u.choose(&[
                RouteState::Active,
                RouteState::Blackhole,
                RouteState::Absent,
            ])?,
            is_self: bool::arbitrary(u)?,
            action: if bool::arbitrary(u)? {
                Some(*u.choose(&[
                    Action::Replaced,
                    Action::Created,
                    Action::Deleted,
                    Action::Unchanged,
                    Action::Planned,
                    Action::Failed,
                    Action::Assigned,
                    Action::Unassigned,
                    Action::Associated,
                    Action::Disassociated,
                ])?)
            } else {
                None
            },
            confirmed: Option::<bool>::arbitrary(u)?,
            error: if bool::arbitrary(u)? {
                Some(error_report(u)?)
            } else {
                None
            },
        };
        r.route_tables.get_or_insert_with(Vec::new).push(table);
    }
    // The address kinds' result: `address` instead of `route_tables`.
    if bool::arbitrary(u)? {
        r.route_tables = None;
        r.address = Some(AddressReport {
            kind: *u.choose(&[AddressKind::PrivateIp, AddressKind::Eip])?,
            ip: text(u)?,
            target: opt_text(u)?,
            is_self: bool::arbitrary(u)?,
            action: None,
            confirmed: Option::<bool>::arbitrary(u)?,
            allocation_id: opt_text(u)?,
            association_id: opt_text(u)?,
            private_ip: opt_text(u)?,
            error: if bool::arbitrary(u)? {
                Some(error_report(u)?)
            } else {
                None
            },
        });
    }
    if bool::arbitrary(u)? {
        r.local = Some(LocalReport {
            interface: text(u)?,
            vip_present: bool::arbitrary(u)?,
        });
    }
    if op == Op::Status {
        r.source_dest_check = Some(Option::<bool>::arbitrary(u)?);
    }
    if op == Op::Check {
        for _ in 0..u8::arbitrary(u)? % 16 {
            r.checks.push(CheckItem {
                name: text(u)?,
                status: *u.choose(&[
                    CheckStatus::Pass,
                    CheckStatus::Warn,
                    CheckStatus::Fail,
                    CheckStatus::Skip,
                ])?,
                detail: text(u)?,
                fix: opt_text(u)?,
                kind: if bool::arbitrary(u)? {
                    Some(kind(u)?)
                } else {
                    None
                },
            });
        }
    }
    for _ in 0..u8::arbitrary(u)? % 8 {
        r.warnings.push(text(u)?);
    }
    if bool::arbitrary(u)? {
        r.fail(&Error::new(kind(u)?, text(u)?));
    }
    r.elapsed_ms = u64::arbitrary(u)?;
    Ok(r)
}

/// `render_bounded(report, capacity)`: within capacity - 1 bytes; the full object when it fits;
/// otherwise valid JSON that keeps `ok` (and says `truncated` unless only `{"ok":…}` or `{}`
/// fit); nothing at all when not even `{}` fits.
pub fn check_render(report: &Report, capacity: usize) {
    let out = render_bounded(report, capacity);
    let room = capacity.saturating_sub(1);
    assert!(
        out.len() <= room,
        "capacity {capacity}: {} bytes + NUL",
        out.len()
    );
    assert!(
        out.is_ascii(),
        "capacity {capacity}: non-ASCII byte in {out:?}"
    );
    // The result escapes every non-ASCII character as \uXXXX: 6 bytes per UTF-16 unit.
    let text = serde_json::to_string(report).expect("a report serialises");
    let full_len: usize = text
        .chars()
        .map(|c| if c.is_ascii() { 1 } else { 6 * c.len_utf16() })
        .sum();
    if full_len <= room {
        assert_eq!(
            out.len(),
            full_len,
            "capacity {capacity}: the full object fits"
        );
        let v: serde_json::Value = serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("capacity {capacity}: not JSON ({e}): {out:?}"));
        assert_eq!(
            v,
            serde_json::to_value(report).expect("a report serialises"),
            "capacity {capacity}: the full object, decoded, is the report"
        );
        return;
    }
    if capacity < 3 {
        assert!(out.is_empty(), "capacity {capacity}: {out:?}");
        return;
    }
    let v: serde_json::Value = serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("capacity {capacity}: not JSON ({e}): {out:?}"));
    let obj = v.as_object().expect("an object");
    if let Some(ok) = obj.get("ok") {
        assert_eq!(ok.as_bool(), Some(report.ok), "ok changed in truncation");
    }
    let tiny = [&b"{}"[..], b"{\"ok\":true}", b"{\"ok\":false}"];
    if !tiny.contains(&out.as_slice()) {
        assert_eq!(obj.get("truncated"), Some(&serde_json::Value::Bool(true)));
        assert_eq!(
            obj.get("op").and_then(|o| o.as_str()),
            Some(report.op.as_str())
        );
    }
    // The ladder is tight: when `{"ok":…}` fits, more than `{}` is written.
    if room >= 12 {
        assert_ne!(
            out, b"{}",
            "capacity {capacity}: {{}} although {{\"ok\":…}} fits"
        );
    }
}

#[cfg(test)]
mod replay {
    //! `cargo test` (stable, no libFuzzer): the committed corpus through the same checks.
    use std::path::Path;

    fn each(target: &str, check: fn(&[u8])) -> usize {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("corpus directory") {
            let path = entry.expect("entry").path();
            let data = std::fs::read(&path).expect("corpus file");
            check(&data);
            n += 1;
        }
        n
    }

    #[test]
    fn config_parse_corpus() {
        assert!(each("config_parse", super::check_config) > 0);
    }

    #[test]
    fn render_bounded_corpus() {
        assert!(each("render_bounded", super::check_render_bytes) > 0);
    }

    #[test]
    fn every_capacity_of_a_few_reports() {
        for seed in 0u8..32 {
            let bytes: Vec<u8> = (0..4096u32)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect();
            let mut u = arbitrary::Unstructured::new(&bytes);
            let Ok(report) = super::arbitrary_report(&mut u) else {
                continue;
            };
            for cap in 0..600 {
                super::check_render(&report, cap);
            }
        }
    }
}
