//! `GetZFTable`, `ZFInit`, `ZFUnload`: what IRIS looks up after `dlopen`.
//!
//! Function ids are 1-based positions in the table and ObjectScript may cache them: the
//! order is part of the contract and only grows at the end.

use super::abi::{
    irisvip_callbacks, irisvip_get_table_fn, irisvip_init_fn, irisvip_unload_fn, zfestr,
};
use super::callbacks;
use super::entry::{vip_check, vip_claim, vip_release, vip_status};
use std::ffi::{c_char, c_int, c_void};

/// The table is read-only and its pointers are 'static.
#[repr(transparent)]
struct Table([zfestr; 5]);
// SAFETY: every pointer in the table is to 'static, immutable data or code.
unsafe impl Sync for Table {}

type Entry = unsafe extern "C" fn(*const c_char, *mut c_char) -> c_int;

/// An entry as the table stores it: IRIS calls through a prototype-less pointer with the
/// arguments the descriptor names.
const fn erase(f: Entry) -> Option<unsafe extern "C" fn() -> c_int> {
    // SAFETY: only the static type changes; IRIS calls it with (char*, char*) per "cC".
    Some(unsafe { std::mem::transmute::<Entry, unsafe extern "C" fn() -> c_int>(f) })
}

static TABLE: Table = Table([
    zfestr {
        zfename: c"vip_claim".as_ptr(),
        zfead: c"cC".as_ptr(),
        zfeep: erase(vip_claim),
    },
    zfestr {
        zfename: c"vip_release".as_ptr(),
        zfead: c"cC".as_ptr(),
        zfeep: erase(vip_release),
    },
    zfestr {
        zfename: c"vip_status".as_ptr(),
        zfead: c"cC".as_ptr(),
        zfeep: erase(vip_status),
    },
    zfestr {
        zfename: c"vip_check".as_ptr(),
        zfead: c"cC".as_ptr(),
        zfeep: erase(vip_check),
    },
    zfestr {
        zfename: std::ptr::null(),
        zfead: std::ptr::null(),
        zfeep: None,
    },
]);

/// Returns the function table; keeps IRIS's callback table for `zfstrsize()`.
#[no_mangle]
pub extern "C" fn GetZFTable(
    cbtp: *const irisvip_callbacks,
    _eftp: *const c_void,
) -> *const zfestr {
    callbacks::keep(cbtp);
    TABLE.0.as_ptr()
}

/// First load: nothing to prepare (the runtime is built lazily by the first call).
#[no_mangle]
pub extern "C" fn ZFInit() -> c_int {
    0
}

/// Unload: drop this process's runtime and sockets. Not called at process halt.
#[no_mangle]
pub extern "C" fn ZFUnload() -> c_int {
    // Nothing may unwind into IRIS, and the return value is ignored.
    let _ = std::panic::catch_unwind(crate::runtime::shutdown);
    0
}

const _: irisvip_get_table_fn = Some(GetZFTable);
const _: irisvip_init_fn = Some(ZFInit);
const _: irisvip_unload_fn = Some(ZFUnload);
