//! The per-process tokio runtime and AWS session.
//!
//! The runtime is `current_thread`, driven by `block_on` on the caller's thread: IRIS forbids a
//! callout to create threads, and none is ever created. It is created on the first call and
//! rebuilt when the process id changed: a child forked after an earlier call must not use the
//! parent's epoll fd or pooled sockets (the old state is leaked, never dropped, for the same
//! reason).

use crate::aws::session::Session;
use crate::error::{Error, Result};
use std::sync::Mutex;
use tokio::runtime::{Builder, Runtime};

struct Process {
    pid: u32,
    runtime: Runtime,
    session: Session,
}

static PROCESS: Mutex<Option<Process>> = Mutex::new(None);

/// Runs `f` with this process's runtime and session (one call at a time per process).
pub fn with_process<R>(f: impl FnOnce(&Runtime, &mut Session) -> R) -> Result<R> {
    // A poisoned lock only means an earlier call panicked (and was caught); the state is usable.
    let mut guard = PROCESS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let pid = std::process::id();
    if let Some(stale) = guard.take_if(|p| p.pid != pid) {
        std::mem::forget(stale);
    }
    let process = match guard.as_mut() {
        Some(p) => p,
        None => {
            let runtime = Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::internal(format!("cannot start the I/O runtime: {e}")))?;
            let session = {
                let _entered = runtime.enter();
                Session::new()
            };
            guard.insert(Process {
                pid,
                runtime,
                session,
            })
        }
    };
    Ok(f(&process.runtime, &mut process.session))
}

/// Drops this process's runtime and session (closing its sockets); the next call builds new
/// ones. Called when IRIS unloads the library.
pub fn shutdown() {
    let mut guard = PROCESS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(p) = guard.take() {
        if p.pid == std::process::id() {
            drop(p);
        } else {
            std::mem::forget(p);
        }
    }
}
