//! IRIS's callback table, kept from `GetZFTable`: `zfstrsize()` tells the reply capacity,
//! `sigrtclr()` / `sigrtchk()` carry IRIS's signal protocol. A null table or a null slot means
//! the defaults: 32,767 bytes, never interrupted.

use super::abi::{irisvip_callbacks, IRISVIP_DEFAULT_STRSIZE};
use std::sync::atomic::{AtomicPtr, Ordering};

static CALLBACKS: AtomicPtr<irisvip_callbacks> = AtomicPtr::new(std::ptr::null_mut());

/// What `sigrtchk()` answers when IRIS wants the process to stop (SIGINT, SIGTERM); -1 (a real
/// error) and 0 (restart the interrupted call) mean carry on.
const SIGRTCHK_STOP: i32 = 1;

/// Keeps the table IRIS passed (null leaves the defaults in force).
pub fn keep(cbtp: *const irisvip_callbacks) {
    CALLBACKS.store(cbtp.cast_mut(), Ordering::Release);
}

fn table() -> Option<&'static irisvip_callbacks> {
    let table = CALLBACKS.load(Ordering::Acquire);
    // SAFETY: IRIS's callback table lives as long as the process that loaded us.
    unsafe { table.as_ref() }
}

/// Bytes the caller's `C` buffer holds, the NUL included; at least 1.
///
/// IRIS reserves at least ZFString bytes for every `C` output, so a zero or negative answer is
/// a broken report, not an empty buffer. Writing nothing would leave whatever the buffer held
/// before (an earlier call's result, say) to be read as this call's answer; the one byte every
/// C string has is the only room we can trust, and an empty string is the safe answer there.
pub fn reply_capacity() -> usize {
    let reported = match table().and_then(|t| t.zfstrsize) {
        // SAFETY: a function IRIS put in its table, taking no arguments.
        Some(f) => unsafe { f() },
        None => IRISVIP_DEFAULT_STRSIZE as i32,
    };
    usize::try_from(reported).unwrap_or(0).max(1)
}

/// `sigrtclr()`: forget signals that arrived before this call (once, as a call starts).
pub fn clear_signals() {
    if let Some(f) = table().and_then(|t| t.sigrtclr) {
        // SAFETY: a function IRIS put in its table, taking no arguments.
        unsafe { f() };
    }
}

/// `sigrtchk()` answers 1: IRIS wants this process to stop (SIGINT, SIGTERM, RESJOB).
pub fn stop_requested() -> bool {
    table()
        .and_then(|t| t.sigrtchk)
        // SAFETY: a function IRIS put in its table, taking no arguments.
        .is_some_and(|f| unsafe { f() } == SIGRTCHK_STOP)
}
