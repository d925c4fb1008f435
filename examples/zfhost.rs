//! zfhost: a stand-in for an IRIS process that loads a callout library and calls it.
//!
//! Loads the library as `$ZF(-4,1)` does (dlopen, ZFInit, GetZFTable with IRIS's nine-slot
//! callback table) and runs commands in order, printing one JSON line per command:
//!
//! ```text
//! zfhost [--lib PATH] [--strsize N] [--no-sigrt] COMMAND...
//!   table                     the function table (id, name, descriptor)
//!   call NAME CONFIG          call a cC entry, print rc, time, threads, the result and how the
//!                             library used sigrtclr()/sigrtchk() during the call
//!   callhex NAME HEX          same, config given as hex bytes (invalid UTF-8, NUL, ...)
//!   fork NAME CONFIG          fork; the child makes the call and prints; the parent waits
//!   strsize N                 what zfstrsize() answers from now on
//!   threads                   threads of this process
//!   rss                       resident set size of this process (KiB)
//!   sleep MS
//!   unload                    ZFUnload + dlclose, then load again
//!   raise SIG                 send signal number SIG to this process (raise(3)) and report
//!   sigstate                  whether a stop is pending (sigrtchk would answer 1), signals seen
//!   -                         read further commands from stdin, one per line, fields tab-separated
//! ```
//! Like an IRIS process, zfhost keeps SIGPIPE at its default action (Rust's runtime ignores it
//! before `main`; zfhost restores SIG_DFL), and SIGTERM/SIGINT do not end it: they set the stop
//! flag that the callback table's `sigrtchk()` reports (1) until `sigrtclr()` clears it.
//! `--no-sigrt` passes null `sigrtchk`/`sigrtclr` slots instead.
//! The library defaults to `libirisvip.so` beside the directory of this executable
//! (`target/release/examples/zfhost` → `target/release/libirisvip.so`).

#[path = "../tests/common/zfhost.rs"]
mod zfhost;

use serde_json::json;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use zfhost::{
    install_stop_handlers, set_strsize, stop_state, strsize, thread_count, use_null_signal_slots,
    Library,
};

fn default_lib() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    dir.join("libirisvip.so")
}

fn emit(v: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn call(lib: &Library, name: &str, config: &[u8]) -> serde_json::Value {
    let before = thread_count();
    let t0 = Instant::now();
    let outcome = lib.call(name, config);
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let after = thread_count();
    match outcome {
        Ok(o) => json!({
            "cmd": "call", "name": name, "pid": std::process::id(), "rc": o.rc, "ms": ms,
            "threads_before": before, "threads_after": after, "capacity": strsize(),
            "guard_intact": o.guard_intact, "nul_within_capacity": o.nul_within_capacity,
            "first_byte_stale": o.first_byte_stale,
            "sigrtchk_calls": o.signals.sigrtchk_calls, "sigrtclr_calls": o.signals.sigrtclr_calls,
            "sigrtclr_at_ms": o.signals.sigrtclr_at_ms,
            "sigrtchk_first_ms": o.signals.sigrtchk_first_ms,
            "sigrtchk_max_gap_ms": o.signals.sigrtchk_max_gap_ms,
            "unchecked_max_ms": o.signals.unchecked_max_ms,
            "output_len": o.output.len(), "output_utf8": std::str::from_utf8(&o.output).is_ok(),
            "output": String::from_utf8_lossy(&o.output),
        }),
        Err(e) => json!({"cmd": "call", "name": name, "error": e}),
    }
}

/// VmRSS of this process in KiB, from /proc/self/status.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err("odd-length hex".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

fn run(lib: &mut Option<Library>, path: &Path, args: &[String]) -> Result<usize, String> {
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .ok_or_else(|| format!("{}: missing argument", args[0]))
    };
    let loaded = |lib: &Option<Library>| -> Result<(), String> {
        lib.as_ref()
            .map(|_| ())
            .ok_or_else(|| "library not loaded".to_string())
    };
    match args[0].as_str() {
        "table" => {
            loaded(lib)?;
            let entries: Vec<_> = lib
                .as_ref()
                .map(|l| l.entries())
                .unwrap_or_default()
                .into_iter()
                .map(|e| json!({"id": e.id, "name": e.name, "desc": e.desc}))
                .collect();
            emit(json!({"cmd": "table", "entries": entries}));
            Ok(1)
        }
        "call" | "callhex" => {
            loaded(lib)?;
            let name = arg(1)?;
            let config = if args[0] == "call" {
                arg(2)?.into_bytes()
            } else {
                hex(&arg(2)?)?
            };
            if let Some(l) = lib.as_ref() {
                emit(call(l, &name, &config));
            }
            Ok(3)
        }
        "fork" => {
            loaded(lib)?;
            let (name, config) = (arg(1)?, arg(2)?);
            // SAFETY: single-threaded host; the child only calls the library, prints, _exits.
            let pid = unsafe { libc::fork() };
            if pid < 0 {
                return Err("fork failed".into());
            }
            if pid == 0 {
                if let Some(l) = lib.as_ref() {
                    let mut v = call(l, &name, config.as_bytes());
                    v["forked"] = json!(true);
                    emit(v);
                }
                unsafe { libc::_exit(0) };
            }
            let mut status = 0;
            unsafe { libc::waitpid(pid, &mut status, 0) };
            emit(
                json!({"cmd": "wait", "child": pid, "exited": libc::WIFEXITED(status),
                        "code": libc::WEXITSTATUS(status), "signaled": libc::WIFSIGNALED(status)}),
            );
            Ok(3)
        }
        "strsize" => {
            let n: i32 = arg(1)?.parse().map_err(|e| format!("strsize: {e}"))?;
            set_strsize(n);
            Ok(2)
        }
        "threads" => {
            emit(json!({"cmd": "threads", "count": thread_count()}));
            Ok(1)
        }
        "rss" => {
            emit(json!({"cmd": "rss", "kib": rss_kib()}));
            Ok(1)
        }
        "sleep" => {
            let ms: u64 = arg(1)?.parse().map_err(|e| format!("sleep: {e}"))?;
            std::thread::sleep(std::time::Duration::from_millis(ms));
            Ok(2)
        }
        "raise" => {
            let sig: i32 = arg(1)?.parse().map_err(|e| format!("raise: {e}"))?;
            // SAFETY: raise(3) on this process; the handlers installed are async-signal-safe.
            let rc = unsafe { libc::raise(sig) };
            let (stop, signals) = stop_state();
            emit(json!({"cmd": "raise", "sig": sig, "rc": rc, "stop": stop, "signals": signals}));
            Ok(2)
        }
        "sigstate" => {
            let (stop, signals) = stop_state();
            emit(json!({"cmd": "sigstate", "stop": stop, "signals": signals}));
            Ok(1)
        }
        "unload" => {
            if let Some(l) = lib.take() {
                l.unload();
            }
            *lib = Some(Library::load(path)?);
            emit(json!({"cmd": "unload", "reloaded": true}));
            Ok(1)
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

/// SIGPIPE's disposition now: "default", "ignore" or "handler".
fn sigpipe_disposition() -> &'static str {
    // SAFETY: reading the current action into a zeroed struct.
    let handler = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old);
        old.sa_sigaction
    };
    match handler {
        libc::SIG_DFL => "default",
        libc::SIG_IGN => "ignore",
        _ => "handler",
    }
}

fn main() -> ExitCode {
    // An IRIS process's SIGPIPE disposition is not documented: test against the harshest one,
    // the default action (death), which Rust's runtime replaced with SIG_IGN before main.
    // SAFETY: setting a disposition at start, before any other thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    install_stop_handlers();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut path = default_lib();
    while let Some(flag) = args.first().cloned() {
        match flag.as_str() {
            "--lib" if args.len() > 1 => {
                path = PathBuf::from(&args[1]);
                args.drain(..2);
            }
            "--strsize" if args.len() > 1 => {
                match args[1].parse() {
                    Ok(n) => set_strsize(n),
                    Err(e) => {
                        eprintln!("zfhost: --strsize: {e}");
                        return ExitCode::from(2);
                    }
                }
                args.drain(..2);
            }
            "--no-sigrt" => {
                use_null_signal_slots();
                args.drain(..1);
            }
            _ => break,
        }
    }
    let rss_before = rss_kib();
    let t0 = Instant::now();
    let mut lib = match Library::load(&path) {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!("zfhost: {e}");
            return ExitCode::from(2);
        }
    };
    let load_ms = t0.elapsed().as_secs_f64() * 1000.0;
    emit(
        json!({"cmd": "load", "lib": path, "ms": load_ms, "pid": std::process::id(),
                "threads": thread_count(), "rss_before_kib": rss_before, "rss_kib": rss_kib(),
                "sigpipe": sigpipe_disposition()}),
    );
    let mut i = 0;
    while i < args.len() {
        if args[i] == "-" {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if line.trim().is_empty() {
                    continue;
                }
                let fields: Vec<String> = line.split('\t').map(str::to_owned).collect();
                if let Err(e) = run(&mut lib, &path, &fields) {
                    emit(json!({"cmd": fields[0], "error": e}));
                }
            }
            i += 1;
            continue;
        }
        match run(&mut lib, &path, &args[i..]) {
            Ok(n) => i += n,
            Err(e) => {
                eprintln!("zfhost: {e}");
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}
