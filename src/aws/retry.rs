//! Sending one EC2 request with the library's own retries, instead of the SDK's.
//!
//! The SDK's standard retry gives up after a few attempts and draws on a process-wide quota
//! that a large claim spends within a second of throttling, while most of the call's deadline
//! is unused. EC2 advises exponential backoff with jitter and a cap, retrying only throttling
//! and 5xx. So here:
//! - throttling (the request was refused, nothing changed) is retried for as long as the next
//!   pause still fits before the call's deadline;
//! - other transient failures (5xx, a lost connection, an attempt that timed out) are retried a
//!   few times, but only for requests that are safe to send twice. A `DeleteRoute` whose first
//!   attempt may have landed is not re-sent: by the time a second one lands, another member
//!   may have claimed the route, and the resend would delete *its* route.

use super::{error_code, is_throttling};
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::dns::ResolveDnsError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use std::cell::Cell;
use std::future::Future;
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// Attempts in all for a transient failure (throttling has no count, only the deadline).
const TRANSIENT_ATTEMPTS: u32 = 4;
/// Transient failures: full jitter over 50 ms, 100 ms, 200 ms... up to 1 s.
const TRANSIENT_BASE: Duration = Duration::from_millis(50);
/// Throttling: half fixed, half jitter over 100 ms, 200 ms... up to 1 s. The fixed half keeps
/// a crowd of throttled requests from coming back at once; the cap keeps a request that waits
/// for the bucket's refill (5 tokens/s for mutations) from sleeping past its token.
const THROTTLE_BASE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Whether sending a request twice is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Describes, and route writes whose repetition ends in the same state.
    Safe,
    /// Only when EC2 certainly did not act on the first attempt (it throttled it).
    OnlyIfRefused,
}

/// How a failed attempt is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// EC2 refused it for the rate: nothing happened, try again later.
    Throttled,
    /// May or may not have reached EC2 (5xx, connection lost, attempt timed out).
    Transient,
    /// Retrying would get the same answer (4xx, a bad request, TLS trust...).
    Final,
}

fn classify<E>(err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(s) => {
            if error_code(err).is_some_and(is_throttling) {
                Failure::Throttled
            } else if s.raw().status().is_server_error() {
                Failure::Transient
            } else {
                Failure::Final
            }
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => Failure::Transient,
        // A name that did not resolve won't on a resend: the answer is kept for the call.
        SdkError::DispatchFailure(_) if caused_by_dns(err) => Failure::Final,
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => Failure::Transient,
        _ => Failure::Final,
    }
}

/// Whether a resolver's answer (NXDOMAIN, no nameserver) is somewhere in the error's causes.
fn caused_by_dns(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if e.is::<ResolveDnsError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Runs `attempt` until it succeeds, fails for good, or no pause fits before `deadline`;
/// returns the last answer. The caller still bounds the whole with `timeout_at(deadline)`.
pub async fn send<T, E, F, Fut>(
    resend: Resend,
    deadline: Instant,
    mut attempt: F,
) -> Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
{
    let mut throttled = 0u32;
    let mut transient = 0u32;
    loop {
        let err = match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let pause = match classify(&err) {
            Failure::Throttled => {
                throttled += 1;
                let ceiling = exponential(THROTTLE_BASE, throttled);
                ceiling / 2 + jitter(ceiling / 2)
            }
            Failure::Transient if resend == Resend::Safe && transient + 1 < TRANSIENT_ATTEMPTS => {
                transient += 1;
                jitter(exponential(TRANSIENT_BASE, transient))
            }
            _ => return Err(err),
        };
        if Instant::now() + pause >= deadline {
            return Err(err);
        }
        sleep(pause).await;
    }
}

/// `base * 2^(n-1)`, at most `MAX_PAUSE`.
fn exponential(base: Duration, n: u32) -> Duration {
    let factor = 1u32 << n.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(MAX_PAUSE)
}

/// A uniformly random duration in `[0, max]`.
fn jitter(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(next_random() % (nanos + 1))
}

thread_local! {
    static SEED: Cell<u64> = const { Cell::new(0) };
}

/// splitmix64 over a per-thread state seeded from the clock and the pid: jitter only needs
/// members and requests not to move in lockstep, not cryptographic quality.
fn next_random() -> u64 {
    SEED.with(|seed| {
        let mut s = seed.get();
        if s == 0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1);
            s = now ^ (u64::from(std::process::id()) << 32) | 1;
        }
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        seed.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_and_are_capped() {
        assert_eq!(exponential(THROTTLE_BASE, 1), Duration::from_millis(100));
        assert_eq!(exponential(THROTTLE_BASE, 3), Duration::from_millis(400));
        assert_eq!(exponential(THROTTLE_BASE, 10), MAX_PAUSE);
        assert_eq!(exponential(THROTTLE_BASE, u32::MAX), MAX_PAUSE);
    }

    #[test]
    fn jitter_stays_in_range_and_varies() {
        let max = Duration::from_millis(100);
        let draws: Vec<Duration> = (0..200).map(|_| jitter(max)).collect();
        assert!(draws.iter().all(|d| *d <= max));
        let distinct: std::collections::HashSet<_> = draws.iter().collect();
        assert!(distinct.len() > 150, "jitter repeats itself: {distinct:?}");
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
