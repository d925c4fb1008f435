//! A callout host: loads a callout library the way IRIS does and calls its entries.
//!
//! `dlopen`, `ZFInit`, `GetZFTable(cbtp, eftp)` with a nine-slot callback table, a walk of the
//! function table to its all-NULL entry, then calls with descriptor-correct buffers: each `C`
//! output gets `zfstrsize()` bytes followed by a guard region that must stay untouched.
//! The types are written here from the documented ABI, independently of `include/irisvip.h`,
//! so a mistake in our header is not repeated in the check.
//!
//! IRIS's signal protocol has a controllable stand-in: after `install_stop_handlers`, SIGTERM
//! and SIGINT set a flag (as IRIS notes a pending stop); `sigrtchk()` answers 1 while it is
//! set, `sigrtclr()` clears it. Each call records when the library consulted them.
#![allow(dead_code)]

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

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

/// Set by SIGTERM/SIGINT (async-signal-safe: one atomic store), cleared by `sigrtclr()`.
static STOP: AtomicBool = AtomicBool::new(false);
/// Stop signals received since the host started.
static STOP_SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// What the library did with the signal protocol during the current call; times are ns since
/// `epoch()`, `u64::MAX` = never.
static CHK_CALLS: AtomicUsize = AtomicUsize::new(0);
static CLR_CALLS: AtomicUsize = AtomicUsize::new(0);
static CALL_START_NS: AtomicU64 = AtomicU64::new(0);
static FIRST_CLR_NS: AtomicU64 = AtomicU64::new(u64::MAX);
static FIRST_CHK_NS: AtomicU64 = AtomicU64::new(u64::MAX);
static LAST_CHK_NS: AtomicU64 = AtomicU64::new(u64::MAX);
static MAX_CHK_GAP_NS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

extern "C" fn on_stop_signal(_: c_int) {
    STOP.store(true, Ordering::SeqCst);
    STOP_SIGNALS.fetch_add(1, Ordering::SeqCst);
}

/// SIGTERM and SIGINT set the stop flag instead of ending the process, as in IRIS.
pub fn install_stop_handlers() {
    epoch();
    // SAFETY: a handler that only touches atomics; sigaction with a zeroed, filled struct.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_stop_signal as *const () as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
    }
}

/// Whether a stop is pending, and how many stop signals arrived so far.
pub fn stop_state() -> (bool, usize) {
    (
        STOP.load(Ordering::SeqCst),
        STOP_SIGNALS.load(Ordering::SeqCst),
    )
}

extern "C" fn cb_sigrtchk() -> c_int {
    let now = now_ns();
    CHK_CALLS.fetch_add(1, Ordering::Relaxed);
    let _ = FIRST_CHK_NS.compare_exchange(u64::MAX, now, Ordering::Relaxed, Ordering::Relaxed);
    let last = LAST_CHK_NS.swap(now, Ordering::Relaxed);
    if last != u64::MAX {
        MAX_CHK_GAP_NS.fetch_max(now.saturating_sub(last), Ordering::Relaxed);
    }
    c_int::from(STOP.load(Ordering::SeqCst))
}
extern "C" fn cb_sigrtclr() -> c_int {
    CLR_CALLS.fetch_add(1, Ordering::Relaxed);
    let _ = FIRST_CLR_NS.compare_exchange(u64::MAX, now_ns(), Ordering::Relaxed, Ordering::Relaxed);
    STOP.store(false, Ordering::SeqCst);
    0
}

fn reset_call_record() {
    CHK_CALLS.store(0, Ordering::Relaxed);
    CLR_CALLS.store(0, Ordering::Relaxed);
    for a in [&FIRST_CLR_NS, &FIRST_CHK_NS, &LAST_CHK_NS] {
        a.store(u64::MAX, Ordering::Relaxed);
    }
    MAX_CHK_GAP_NS.store(0, Ordering::Relaxed);
    CALL_START_NS.store(now_ns(), Ordering::Relaxed);
}

/// How the library used `sigrtclr()` / `sigrtchk()` during one call (milliseconds).
#[derive(Debug, Clone, Default)]
pub struct SignalRecord {
    pub sigrtchk_calls: usize,
    pub sigrtclr_calls: usize,
    /// From the call's start to `sigrtclr()` (None: never called).
    pub sigrtclr_at_ms: Option<f64>,
    /// From the call's start to the first `sigrtchk()`.
    pub sigrtchk_first_ms: Option<f64>,
    /// Longest interval between two consecutive `sigrtchk()` (None: fewer than two).
    pub sigrtchk_max_gap_ms: Option<f64>,
    /// Longest stretch of the call without a `sigrtchk()`: start to first, between two, last
    /// to the return (the whole call when there was none).
    pub unchecked_max_ms: f64,
}

fn call_record(end: u64) -> SignalRecord {
    let ms = |ns: u64| ns as f64 / 1e6;
    let start = CALL_START_NS.load(Ordering::Relaxed);
    let since_start = |a: &AtomicU64| {
        let t = a.load(Ordering::Relaxed);
        (t != u64::MAX).then(|| ms(t.saturating_sub(start)))
    };
    let chk = CHK_CALLS.load(Ordering::Relaxed);
    let gap = MAX_CHK_GAP_NS.load(Ordering::Relaxed);
    let (first, last) = (
        FIRST_CHK_NS.load(Ordering::Relaxed),
        LAST_CHK_NS.load(Ordering::Relaxed),
    );
    let unchecked = if chk == 0 {
        end.saturating_sub(start)
    } else {
        gap.max(first.saturating_sub(start))
            .max(end.saturating_sub(last))
    };
    SignalRecord {
        sigrtchk_calls: chk,
        sigrtclr_calls: CLR_CALLS.load(Ordering::Relaxed),
        sigrtclr_at_ms: since_start(&FIRST_CLR_NS),
        sigrtchk_first_ms: since_start(&FIRST_CHK_NS),
        sigrtchk_max_gap_ms: (chk >= 2).then(|| ms(gap)),
        unchecked_max_ms: ms(unchecked),
    }
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

/// The same table with null `sigrtchk` / `sigrtclr` slots (a caller without the protocol).
static CALLBACKS_NO_SIGRT: CallbacksNullable = CallbacksNullable {
    zfstrsize: cb_zfstrsize,
    zferror: cb_zferror,
    mgrdira: cb_mgrdira,
    mgrdirw: cb_mgrdirw,
    sigrtchk: None,
    sigrtclr: None,
    dzfalarm: cb_dzfalarm,
    zfresjob: cb_zfresjob,
    mgrdirh: cb_mgrdirh,
};

/// `Callbacks` with nullable signal slots: the same layout (a null function pointer).
#[repr(C)]
struct CallbacksNullable {
    zfstrsize: extern "C" fn() -> c_int,
    zferror: extern "C" fn(c_int, c_int) -> c_int,
    mgrdira: extern "C" fn(c_int, *mut c_char) -> c_int,
    mgrdirw: extern "C" fn(c_int, *mut u16) -> c_int,
    sigrtchk: Option<extern "C" fn() -> c_int>,
    sigrtclr: Option<extern "C" fn() -> c_int>,
    dzfalarm: extern "C" fn() -> c_int,
    zfresjob: extern "C" fn() -> c_int,
    mgrdirh: extern "C" fn(c_int, *mut libc::wchar_t) -> c_int,
}

/// Load with null `sigrtchk`/`sigrtclr` slots from now on (before `Library::load`).
static NO_SIGRT: AtomicBool = AtomicBool::new(false);
pub fn use_null_signal_slots() {
    NO_SIGRT.store(true, Ordering::Relaxed);
}

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
    /// The first byte of the buffer still holds what it held before the call.
    pub first_byte_stale: bool,
    /// How the library used IRIS's signal protocol during the call.
    pub signals: SignalRecord,
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
        let cbtp: *const Callbacks = if NO_SIGRT.load(Ordering::Relaxed) {
            std::ptr::from_ref(&CALLBACKS_NO_SIGRT).cast()
        } else {
            &CALLBACKS
        };
        let table = unsafe { get(cbtp, std::ptr::null()) };
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
        // IRIS reserves at least ZFString bytes for a `C` output whatever zfstrsize() says:
        // a zero or negative answer still comes with a real buffer, here of one byte.
        let cap = usize::try_from(strsize().max(1)).unwrap_or(1);
        let mut buf = vec![STALE_BYTE; cap + GUARD];
        buf[cap..].fill(GUARD_BYTE);
        type Cc = unsafe extern "C" fn(*const c_char, *mut c_char) -> c_int;
        // SAFETY: the descriptor says cC: (const char*, char*).
        let f: Cc = unsafe { std::mem::transmute(*func) };
        reset_call_record();
        let rc = unsafe { f(input.as_ptr(), buf.as_mut_ptr().cast()) };
        let signals = call_record(now_ns());
        let guard_intact = buf[cap..].iter().all(|b| *b == GUARD_BYTE);
        let nul = buf[..cap].iter().position(|b| *b == 0);
        let output = buf[..nul.unwrap_or(0)].to_vec();
        Ok(CallOutcome {
            rc,
            output,
            nul_within_capacity: nul.is_some(),
            guard_intact,
            first_byte_stale: buf[0] == STALE_BYTE,
            signals,
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
