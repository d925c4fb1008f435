//! The table's entries (`cC`: config in, JSON out). Each is: null checks, the panic guard
//! around the safe work, the result copied into the caller's buffer within its capacity.

use super::abi::{irisvip_entry_fn, IRISVIP_ZF_FAILURE, IRISVIP_ZF_SUCCESS};
use super::{callbacks, panic, sigpipe};
use crate::ops;
use crate::report::{render_bounded, Op};
use std::ffi::{c_char, c_int, CStr};

/// `int vip_claim(const char *config, char *result)`
///
/// # Safety
/// `config` is null or NUL-terminated; `result` is null or holds `zfstrsize()` bytes.
#[no_mangle]
pub unsafe extern "C" fn vip_claim(config: *const c_char, result: *mut c_char) -> c_int {
    entry(Op::Claim, config, result)
}

/// `int vip_release(const char *config, char *result)`
///
/// # Safety
/// As for `vip_claim`.
#[no_mangle]
pub unsafe extern "C" fn vip_release(config: *const c_char, result: *mut c_char) -> c_int {
    entry(Op::Release, config, result)
}

/// `int vip_status(const char *config, char *result)`
///
/// # Safety
/// As for `vip_claim`.
#[no_mangle]
pub unsafe extern "C" fn vip_status(config: *const c_char, result: *mut c_char) -> c_int {
    entry(Op::Status, config, result)
}

/// `int vip_check(const char *config, char *result)`: the preflight; changes nothing.
///
/// # Safety
/// As for `vip_claim`.
#[no_mangle]
pub unsafe extern "C" fn vip_check(config: *const c_char, result: *mut c_char) -> c_int {
    entry(Op::Check, config, result)
}

// The entries have exactly the signature the header declares.
const _: irisvip_entry_fn = Some(vip_claim);
const _: irisvip_entry_fn = Some(vip_release);
const _: irisvip_entry_fn = Some(vip_status);
const _: irisvip_entry_fn = Some(vip_check);

unsafe fn entry(op: Op, config: *const c_char, result: *mut c_char) -> c_int {
    if result.is_null() {
        return IRISVIP_ZF_FAILURE as c_int;
    }
    let _sigpipe = sigpipe::Held::new();
    let capacity = callbacks::reply_capacity();
    let bytes = panic::guard(op, || {
        // SAFETY: the caller passes a NUL-terminated string or null (an empty config).
        let raw = if config.is_null() {
            &[][..]
        } else {
            unsafe { CStr::from_ptr(config) }.to_bytes()
        };
        // IRIS's protocol: clear once as the call starts, then ask while it waits.
        callbacks::clear_signals();
        ops::execute_with(op, raw, &callbacks::stop_requested)
    });
    // Rendering cannot realistically panic, but nothing may unwind from here either.
    let json = std::panic::catch_unwind(|| render_bounded(&bytes, capacity)).unwrap_or_default();
    let n = json.len().min(capacity - 1);
    // SAFETY: `result` holds `capacity` bytes (the contract with IRIS; `reply_capacity` is at
    // least 1); we write n + 1 <= capacity.
    unsafe {
        std::ptr::copy_nonoverlapping(json.as_ptr(), result.cast::<u8>(), n);
        *result.add(n) = 0;
    }
    IRISVIP_ZF_SUCCESS as c_int
}
