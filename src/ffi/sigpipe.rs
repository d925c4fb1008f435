//! SIGPIPE held back for the duration of a call.
//!
//! hyper and rustls send with `writev`, which (unlike std's plain writes) has no
//! `MSG_NOSIGNAL`: writing to a connection the peer has reset raises SIGPIPE, and a host that
//! keeps SIGPIPE's default action (IRIS's disposition is not documented) dies of it. Rust
//! binaries ignore SIGPIPE before `main`; a library loaded into someone else's process cannot
//! assume that and must not change the process-wide disposition either. So for the duration of
//! a call SIGPIPE is blocked in the calling thread's mask only (the write then fails with EPIPE,
//! which the SDK treats as a transport error and retries), and a SIGPIPE left pending by the
//! call is consumed before the mask is restored. No other signal and no other thread is touched.

/// Test hook: `IRISVIP_TEST_NO_SIGPIPE_GUARD=1` leaves the mask alone, so a test can show the
/// hazard is real. Harmless in production (nobody sets it).
const DISABLE_ENV: &str = "IRISVIP_TEST_NO_SIGPIPE_GUARD";

/// Blocks SIGPIPE in this thread until dropped (unless it was blocked already: then the caller
/// owns it and nothing changes).
pub struct Held {
    blocked_here: bool,
}

fn sigpipe_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise a local set; they cannot fail for SIGPIPE.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        set
    }
}

impl Held {
    pub fn new() -> Held {
        if std::env::var_os(DISABLE_ENV).is_some_and(|v| v == "1") {
            return Held {
                blocked_here: false,
            };
        }
        let set = sigpipe_set();
        // SAFETY: a thread-local mask change with valid sets.
        let blocked_here = unsafe {
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) == 0
                && libc::sigismember(&old, libc::SIGPIPE) == 0
        };
        Held { blocked_here }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.blocked_here {
            return;
        }
        let set = sigpipe_set();
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid set and timeout; sigtimedwait with a zero timeout only polls. A
        // standard signal is pending at most once, so one successful wait consumes it; the
        // loop is bounded in case another arrives meanwhile.
        unsafe {
            for _ in 0..4 {
                if libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) != libc::SIGPIPE {
                    break;
                }
            }
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
    }
}
