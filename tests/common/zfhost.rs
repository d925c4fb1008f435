//! A callout host: loads a callout library the way IRIS does and calls its entries.
//!
//! `dlopen`, `ZFInit`, `GetZFTable(cbtp, eftp)` with a nine-slot callback table, a walk of the
//! function table to its all-NULL entry, then calls with descriptor-correct buffers: each `C`
//! output gets `zfstrsize()` bytes followed by a guard region that must stay untouched.
//! The types are written here from the documented ABI, independently of `include/irisvip.h`,
//! so a mistake in our header is not repeated in the check.
#![allow(dead_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

/// `struct zfestr` as IRIS reads it.
#[repr(C)]
pub struct ZfEntry {
    pub name: *const c_char,
    pub desc: *const c_char,
    pub func: Option<unsafe extern "C" fn() -> c_int>,
}

/// IRIS's callback table on Linux: nine slots in this order.
#[repr(C)]
pub struct Callbacks {
    pub zfstrsize: extern "C" fn() -> c_int,
    pub zferror: extern "C" fn(c_int, c_int) -> c_int,
    pub mgrdira: extern "C" fn(c_int, *mut c_char) -> c_int,
    pub mgrdirw: extern "C" fn(c_int, *mut u16) -> c_int,
    pub sigrtchk: extern "C" fn() -> c_int,
    pub sigrtclr: extern "C" fn() -> c_int,
    pub dzfalarm: extern "C" fn() -> c_int,
    pub zfresjob: extern "C" fn() -> c_int,
    pub mgrdirh: extern "C" fn(c_int, *mut libc::wchar_t) -> c_int,
}

static STRSIZE: AtomicI32 = AtomicI32::new(32_767);
/// How often the library called back into the host (other than zfstrsize).
pub static OTHER_CALLBACKS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn cb_zfstrsize() -> c_int {
    STRSIZE.load(Ordering::Relaxed)
}
extern "C" fn cb_zferror(_: c_int, _: c_int) -> c_int {
    OTHER_CALLBACKS.fetch_add(1, Ordering::Relaxed);
    0
}
extern "C" fn cb_mgrdira(_: c_int, _: *mut c_char) -> c_int {
    OTHER_CALLBACKS.fetch_add(1, Ordering::Relaxed);
    0
}
extern "C" fn cb_mgrdirw(_: c_int, _: *mut u16) -> c_int {
    OTHER_CALLBACKS.fetch_add(1, Ordering::Relaxed);
    0
}
extern "C" fn cb_sigrtchk() -> c_int {
    OTHER_CALLBACKS.fetch_add(1, Ordering::Relaxed);
    0
}
extern "C" fn cb_sigrtclr() -> c_int {
    OTHER_CALLBACKS.fetch_add(1, Ordering::Relaxed);
    0
}
extern "C" fn cb_dzfalarm() -> c_int {
    OTHER_CALLBACKS.fetch_add(1, Ordering::Relaxed);
    0
}
extern "C" fn cb_zfresjob() -> c_int {
    OTHER_CALLBACKS.fetch_add(1, Ordering::Relaxed);
    0
}
extern "C" fn cb_mgrdirh(_: c_int, _: *mut libc::wchar_t) -> c_int {
    OTHER_CALLBACKS.fetch_add(1, Ordering::Relaxed);
    0
}

static CALLBACKS: Callbacks = Callbacks {
    zfstrsize: cb_zfstrsize,
    zferror: cb_zferror,
    mgrdira: cb_mgrdira,
    mgrdirw: cb_mgrdirw,
    sigrtchk: cb_sigrtchk,
    sigrtclr: cb_sigrtclr,
    dzfalarm: cb_dzfalarm,
    zfresjob: cb_zfresjob,
    mgrdirh: cb_mgrdirh,
};

/// Sets what `zfstrsize()` answers (the reply capacity, NUL included).
pub fn set_strsize(n: i32) {
    STRSIZE.store(n, Ordering::Relaxed);
}

pub fn strsize() -> i32 {
    STRSIZE.load(Ordering::Relaxed)
}

/// Bytes after each output buffer that the library must never touch.
pub const GUARD: usize = 256;
const GUARD_BYTE: u8 = 0xA5;
/// What the output buffer holds before the call (IRIS gives no promise about it).
const STALE_BYTE: u8 = b'#';

/// One entry of the function table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// 1-based position: the function id `$ZF(-4,3)` returns.
    pub id: usize,
    pub name: String,
    pub desc: String,
}

/// A loaded callout library.
pub struct Library {
    handle: *mut c_void,
    entries: Vec<(EntryInfo, unsafe extern "C" fn() -> c_int)>,
}

/// The outcome of one call.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    pub rc: c_int,
    /// The bytes before the first NUL of the output buffer.
    pub output: Vec<u8>,
    /// A NUL was found inside the first `zfstrsize()` bytes.
    pub nul_within_capacity: bool,
    /// The guard region after the buffer is untouched.
    pub guard_intact: bool,
}

fn dlerror() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated message.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown dlopen error".into()
    } else {
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

impl Library {
    /// dlopen + ZFInit + GetZFTable + table walk, as `$ZF(-4,1,path)` does.
    pub fn load(path: &Path) -> Result<Library, String> {
        let cpath = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: plain dlopen of a path.
        let handle = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(format!("dlopen {}: {}", path.display(), dlerror()));
        }
        // SAFETY: looking symbols up in a handle we own.
        let get = unsafe { libc::dlsym(handle, c"GetZFTable".as_ptr()) };
        if get.is_null() {
            return Err("GetZFTable is not exported".into());
        }
        let init = unsafe { libc::dlsym(handle, c"ZFInit".as_ptr()) };
        if !init.is_null() {
            // SAFETY: ZFInit is `int ZFInit(void)`.
            let init: extern "C" fn() -> c_int = unsafe { std::mem::transmute(init) };
            let rc = init();
            if rc != 0 {
                return Err(format!("ZFInit returned {rc}"));
            }
        }
        type GetTable = unsafe extern "C" fn(*const Callbacks, *const c_void) -> *const ZfEntry;
        // SAFETY: GetZFTable has this signature per the ABI.
        let get: GetTable = unsafe { std::mem::transmute(get) };
        let table = unsafe { get(&CALLBACKS, std::ptr::null()) };
        if table.is_null() {
            return Err("GetZFTable returned NULL".into());
        }
        let mut entries = Vec::new();
        for i in 0.. {
            if i > 1024 {
                return Err("function table has no all-NULL terminator within 1024 entries".into());
            }
            // SAFETY: walking the table up to its terminator.
            let e = unsafe { &*table.add(i) };
            if e.name.is_null() && e.desc.is_null() && e.func.is_none() {
                break;
            }
            let (Some(func), false, false) = (e.func, e.name.is_null(), e.desc.is_null()) else {
                return Err(format!("table entry {} is partly NULL", i + 1));
            };
            let name = unsafe { CStr::from_ptr(e.name) }
                .to_string_lossy()
                .into_owned();
            let desc = unsafe { CStr::from_ptr(e.desc) }
                .to_string_lossy()
                .into_owned();
            entries.push((
                EntryInfo {
                    id: i + 1,
                    name,
                    desc,
                },
                func,
            ));
        }
        Ok(Library { handle, entries })
    }

    pub fn entries(&self) -> Vec<EntryInfo> {
        self.entries.iter().map(|(e, _)| e.clone()).collect()
    }

    /// Calls a `cC` entry by name: `config` is passed as IRIS passes a `c` argument
    /// (truncated at its first NUL), the output buffer is `zfstrsize()` bytes plus a guard.
    pub fn call(&self, name: &str, config: &[u8]) -> Result<CallOutcome, String> {
        let (info, func) = self
            .entries
            .iter()
            .find(|(e, _)| e.name == name)
            .ok_or_else(|| format!("no entry named {name}"))?;
        if info.desc != "cC" {
            return Err(format!(
                "{name} has descriptor {:?}, this host calls only cC",
                info.desc
            ));
        }
        let cut = config.iter().position(|b| *b == 0).unwrap_or(config.len());
        let input = CString::new(&config[..cut]).map_err(|e| e.to_string())?;
        let cap = usize::try_from(strsize().max(0)).unwrap_or(0);
        let mut buf = vec![STALE_BYTE; cap + GUARD];
        buf[cap..].fill(GUARD_BYTE);
        type Cc = unsafe extern "C" fn(*const c_char, *mut c_char) -> c_int;
        // SAFETY: the descriptor says cC: (const char*, char*).
        let f: Cc = unsafe { std::mem::transmute(*func) };
        let rc = unsafe { f(input.as_ptr(), buf.as_mut_ptr().cast()) };
        let guard_intact = buf[cap..].iter().all(|b| *b == GUARD_BYTE);
        let nul = buf[..cap].iter().position(|b| *b == 0);
        let output = buf[..nul.unwrap_or(0)].to_vec();
        Ok(CallOutcome {
            rc,
            output,
            nul_within_capacity: nul.is_some(),
            guard_intact,
        })
    }

    /// Calls ZFUnload (if exported) and dlcloses, as `$ZF(-4,2)` does.
    pub fn unload(self) {
        // SAFETY: symbol lookup and close of our own handle.
        unsafe {
            let f = libc::dlsym(self.handle, c"ZFUnload".as_ptr());
            if !f.is_null() {
                let f: extern "C" fn() -> c_int = std::mem::transmute(f);
                f();
            }
            libc::dlclose(self.handle);
        }
    }
}

/// Threads of this process, from /proc/self/task.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}
