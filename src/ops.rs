//! The entries' common frame: parse the config, run the call on the process's runtime under
//! its deadline (and IRIS's interrupts), find who we are in EC2, then hand over to the kind of
//! address the config names (`kinds/`). Fills the report as it learns things, so a failure
//! still says how far the call got.

use crate::aws::session::Session;
use crate::check;
use crate::config::{self, Config, Mode};
use crate::error::{Error, Result};
use crate::kinds::{self, Call};
use crate::report::{Op, Report};
use crate::runtime;
use std::time::{Duration, Instant};
use tokio::time::timeout_at;

/// How long the whole-call timer may trail the per-step timers, so a step that times out is
/// still reported per table.
const DEADLINE_SLACK: Duration = Duration::from_millis(25);

/// Environment values that must never appear in a result.
const SECRET_ENV: [&str; 2] = ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

/// Test hook: `IRISVIP_TEST_PANIC=<op>` makes that entry panic as it starts, to prove no panic
/// crosses the C boundary; `<op>@runtime` panics inside the runtime instead (the process lock
/// held, `block_on` running), to prove the next call starts from a fresh runtime and session.
/// Harmless in production (nobody sets it).
const PANIC_HOOK_ENV: &str = "IRISVIP_TEST_PANIC";

/// Runs one entry on the raw config bytes and returns its result; never interrupted (the CLI).
/// Never panics on bad input.
pub fn execute(op: Op, raw: &[u8]) -> Report {
    execute_with(op, raw, &crate::interrupt::never)
}

/// As `execute`, asking `interrupted()` every `interrupt::TICK` while the call waits: when it
/// answers true (IRIS wants the process to stop) the call returns at once with kind
/// `interrupted`, its requests in flight abandoned.
pub fn execute_with(op: Op, raw: &[u8], interrupted: &dyn Fn() -> bool) -> Report {
    let started = Instant::now();
    let panic_hook = std::env::var(PANIC_HOOK_ENV).unwrap_or_default();
    if panic_hook == op.as_str() {
        panic!("{PANIC_HOOK_ENV} asked {} to panic", op.as_str());
    }
    let panic_in_runtime = panic_hook.strip_suffix("@runtime") == Some(op.as_str());
    let mut report = Report::new(op);
    if op == Op::Status {
        report.source_dest_check = Some(None);
    }
    match config::parse(raw) {
        Err(e) => {
            // The result keeps the shape of the mode asked for, even refused.
            if config::mode_hint(raw).is_some_and(|m| m != Mode::Route) {
                report.route_tables = None;
            }
            report.fail(&e)
        }
        Ok(cfg) => {
            // Only the route kind's result has route_tables; the others report `address`.
            if cfg.mode != Mode::Route {
                report.route_tables = None;
            }
            report.dry_run = cfg.dry_run && matches!(op, Op::Claim | Op::Release);
            let deadline = tokio::time::Instant::from_std(started + cfg.timeout);
            let ran = runtime::with_process(|rt, session| {
                rt.block_on(async {
                    if panic_in_runtime {
                        panic!("{PANIC_HOOK_ENV} asked {} to panic in the runtime", op.as_str());
                    }
                    let call = async {
                        match op {
                            Op::Check => check::run(&cfg, session, &mut report, deadline).await,
                            _ => run(op, &cfg, session, &mut report, deadline).await,
                        }
                    };
                    let bounded = timeout_at(deadline + DEADLINE_SLACK, call);
                    match crate::interrupt::or_interrupted(bounded, interrupted).await {
                        Some(Ok(Ok(()))) => {}
                        Some(Ok(Err(e))) => report.fail(&e),
                        Some(Err(_)) => {
                            // A resolver that never answered is the likeliest cause: name it.
                            let why = session.unanswered_dns().unwrap_or_else(|| {
                                "EC2 or instance metadata is slow or unreachable".to_owned()
                            });
                            report.fail(&Error::timeout(format!(
                                "{} did not finish within timeout_ms={}: {why}",
                                op.as_str(),
                                cfg.timeout.as_millis()
                            )))
                        }
                        None => {
                            let changed = if matches!(op, Op::Status | Op::Check) {
                                "nothing was changed (it only reads)"
                            } else if cfg.dry_run {
                                "nothing was changed (dry_run=1)"
                            } else {
                                "changes already sent to EC2 may have taken effect, whether or not this \
                                 result lists them; call vip_status to see where the VIP is now"
                            };
                            let e = Error::interrupted(format!(
                                "IRIS asked this process to stop (SIGINT/SIGTERM/RESJOB) during {} after {} ms; {changed}",
                                op.as_str(),
                                started.elapsed().as_millis()
                            ));
                            // The interruption is what the caller must see; an earlier error
                            // of this call stays readable as a warning.
                            if let Some(earlier) = report.error.take() {
                                report
                                    .warnings
                                    .push(format!("before the interruption: {}: {}", earlier.kind, earlier.message));
                            }
                            report.fail(&e);
                        }
                    }
                })
            });
            if let Err(e) = ran {
                report.fail(&e);
            }
        }
    }
    let secrets: Vec<String> = SECRET_ENV
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .collect();
    report.redact(&secrets);
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    report
}

async fn run(
    op: Op,
    cfg: &Config,
    session: &mut Session,
    report: &mut Report,
    deadline: tokio::time::Instant,
) -> Result<()> {
    let (region, client, me) = session
        .prepare(
            cfg.region.as_deref(),
            cfg.endpoint.as_deref(),
            cfg.eni.as_deref(),
            cfg.role.as_ref(),
            deadline,
        )
        .await?;
    report.region = Some(region);
    report.instance_id = me.instance_id.clone();
    report.eni = Some(me.eni.clone());
    report.vpc_id = Some(me.vpc_id.clone());
    let mut call = Call {
        op,
        cfg,
        session,
        client,
        me,
        deadline,
    };
    kinds::run(&mut call, report).await
}
