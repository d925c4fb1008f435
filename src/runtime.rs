//! The per-process tokio runtime and AWS session.
//!
//! The runtime is `current_thread`, driven by `block_on` on the caller's thread: IRIS forbids a
//! callout to create threads, and none is ever created. It is created on the first call and
//! rebuilt when the process id changed: a child forked after an earlier call must not use the
//! parent's epoll fd or pooled sockets (the old state is leaked, never dropped, for the same
//! reason). A panic caught at the C boundary discards the state the same way: the runtime may
//! have been stopped mid-poll, the session mid-update, and dropping either could run code
//! against a broken invariant; the next call builds both anew.

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
    let mut guard = lock();
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

/// The process state, locked. A poisoned lock means a call panicked while it held the state
/// (the panic was caught at the C boundary): that state is leaked and a fresh one is built.
fn lock() -> std::sync::MutexGuard<'static, Option<Process>> {
    match PROCESS.lock() {
        Ok(guard) => guard,
        Err(poisoned) => {
            let mut guard = poisoned.into_inner();
            if let Some(broken) = guard.take() {
                std::mem::forget(broken);
            }
            PROCESS.clear_poison();
            guard
        }
    }
}

/// Forgets this process's runtime and session without dropping them (their sockets and epoll
/// fd stay open, unused); the next call builds new ones. Called after a caught panic, wherever
/// it happened: the panic may have left either in a state nobody should run code against.
pub fn abandon() {
    if let Some(broken) = lock().take() {
        std::mem::forget(broken);
    }
}

/// Drops this process's runtime and session (closing its sockets); the next call builds new
/// ones. Called when IRIS unloads the library.
pub fn shutdown() {
    let mut guard = lock();
    if let Some(p) = guard.take() {
        if p.pid == std::process::id() {
            drop(p);
        } else {
            std::mem::forget(p);
        }
    }
}
