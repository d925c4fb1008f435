//! IRIS's callback table, kept from `GetZFTable`: `zfstrsize()` tells the reply capacity.

use super::abi::{irisvip_callbacks, IRISVIP_DEFAULT_STRSIZE};
use std::sync::atomic::{AtomicPtr, Ordering};

static CALLBACKS: AtomicPtr<irisvip_callbacks> = AtomicPtr::new(std::ptr::null_mut());

/// Keeps the table IRIS passed (null leaves the default capacity in force).
pub fn keep(cbtp: *const irisvip_callbacks) {
    CALLBACKS.store(cbtp.cast_mut(), Ordering::Release);
}

/// Bytes the caller's `C` buffer holds, the NUL included.
pub fn reply_capacity() -> usize {
    let table = CALLBACKS.load(Ordering::Acquire);
    // SAFETY: IRIS's callback table lives as long as the process that loaded us.
    let zfstrsize = unsafe { table.as_ref() }.and_then(|t| t.zfstrsize);
    let reported = match zfstrsize {
        // SAFETY: a function IRIS put in its table, taking no arguments.
        Some(f) => unsafe { f() },
        None => IRISVIP_DEFAULT_STRSIZE as i32,
    };
    // A negative answer means no room we can trust.
    usize::try_from(reported).unwrap_or(0)
}
