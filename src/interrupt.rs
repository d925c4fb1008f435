//! IRIS's signal protocol, seen from the logic: a call that waits on the network asks, at
//! short intervals, whether IRIS wants the process to stop (SIGINT, SIGTERM, RESJOB), and
//! gives up promptly when it does.
//!
//! The question itself (IRIS's `sigrtchk()` callback) belongs to the C boundary; here it is
//! only a `&dyn Fn() -> bool`, so the logic neither knows nor cares where the answer comes from
//! (the CLI passes one that never says yes).

use futures_util::future::{select, Either};
use std::future::Future;
use std::pin::pin;
use std::time::Duration;

/// How often the check runs while a call waits. IRIS's guidance is "at least every 100 ms";
/// a timer set for 100 ms fires at 100 ms plus the runtime's latency, so half of that keeps
/// the real gap under 100 ms even on a busy machine. A check costs one function call.
pub const TICK: Duration = Duration::from_millis(50);

/// The check for callers outside IRIS (the CLI, tests of the logic): never interrupted.
pub fn never() -> bool {
    false
}

/// Runs `call` on the current runtime; every `TICK` asks `interrupted()`. Returns the call's
/// output, or `None` as soon as `interrupted()` answered true. The call is then dropped where
/// it stands: its requests in flight are abandoned, not undone.
pub async fn or_interrupted<F: Future>(
    call: F,
    interrupted: &dyn Fn() -> bool,
) -> Option<F::Output> {
    let watch = async {
        let mut tick = tokio::time::interval(TICK);
        // A late tick (a long poll of the call) must not be followed by a burst of checks.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate; the caller has just cleared the state
        loop {
            tick.tick().await;
            if interrupted() {
                return;
            }
        }
    };
    match select(pin!(call), pin!(watch)).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(((), _)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::time::Instant;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn a_call_that_finishes_is_not_interrupted() {
        let out = runtime().block_on(or_interrupted(async { 7 }, &never));
        assert_eq!(out, Some(7));
    }

    #[test]
    fn a_yes_stops_a_waiting_call_within_a_tick_or_two() {
        let asked = Cell::new(0u32);
        let check = || {
            asked.set(asked.get() + 1);
            asked.get() >= 3
        };
        let t0 = Instant::now();
        // The sleep is created inside the runtime (it needs its timer).
        let out = runtime().block_on(or_interrupted(
            async { tokio::time::sleep(Duration::from_secs(10)).await },
            &check,
        ));
        assert_eq!(out, None);
        assert_eq!(asked.get(), 3);
        // Three ticks of 50 ms, generous slack for a loaded machine.
        assert!(
            t0.elapsed() < Duration::from_millis(1000),
            "{:?}",
            t0.elapsed()
        );
    }

    #[test]
    fn the_check_runs_while_the_call_waits() {
        let asked = Cell::new(0u32);
        let check = || {
            asked.set(asked.get() + 1);
            false
        };
        let out = runtime().block_on(or_interrupted(
            async {
                tokio::time::sleep(Duration::from_millis(320)).await;
                "done"
            },
            &check,
        ));
        assert_eq!(out, Some("done"));
        // 320 ms / 50 ms: six checks on an idle machine; at least a few on any machine.
        assert!((2..=7).contains(&asked.get()), "{}", asked.get());
    }
}
