//! Signals and the host process: IRIS's signal protocol (`sigrtclr` / `sigrtchk` in the
//! callback table), SIGPIPE in a host that keeps its default action, the reply buffer when
//! `zfstrsize()` answers nonsense, and the process state after a caught panic.
//!
//! zfhost stands in for IRIS: SIGTERM/SIGINT set a stop flag that its `sigrtchk()` reports,
//! `sigrtclr()` clears it, and every call line records how the library consulted them.

use crate::common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// IRIS asks for a check at least every 100 ms; the bound asserted leaves room for a loaded
/// 2-core machine.
const MAX_GAP_MS: f64 = 250.0;

/// A warm zfhost (stdin mode) whose pid and exit status the test can see.
struct Host {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    pid: libc::pid_t,
    load: Value,
}

impl Host {
    fn start(mut cmd: Command) -> Host {
        let mut child = cmd
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("zfhost starts");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let pid = child.id() as libc::pid_t;
        let mut host = Host {
            child,
            stdin,
            lines,
            pid,
            load: Value::Null,
        };
        host.load = host.next(Duration::from_secs(30)).expect("a load line");
        assert_eq!(host.load["cmd"], "load", "{}", host.load);
        host
    }

    fn send(&mut self, fields: &[&str]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{}", fields.join("\t")).expect("zfhost stdin");
        stdin.flush().expect("flush");
    }

    /// The next line; None when the process closed its output (it died or ended).
    fn next(&mut self, limit: Duration) -> Option<Value> {
        match self.lines.recv_timeout(limit) {
            Ok(line) => Some(
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("zfhost line {line:?}: {e}")),
            ),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!("zfhost gave no line within {limit:?}"),
        }
    }

    fn call(&mut self, entry: &str, config: &str) -> Value {
        self.send(&["call", entry, config]);
        self.next(Duration::from_secs(60))
            .expect("zfhost died during the call")
    }

    fn command(&mut self, fields: &[&str]) -> Value {
        self.send(fields);
        self.next(Duration::from_secs(10)).expect("zfhost alive")
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: signalling our own child by pid.
        assert_eq!(unsafe { libc::kill(self.pid, sig) }, 0, "kill {sig}");
    }

    /// Waits for the process to end (after closing its stdin), killing it after `limit`.
    fn exit_status(&mut self, limit: Duration) -> ExitStatus {
        self.stdin = None;
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if t0.elapsed() > limit {
                let _ = self.child.kill();
                return self.child.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ms_of(line: &Value, key: &str) -> f64 {
    line[key].as_f64().unwrap_or(f64::MAX)
}

/// The protocol was followed: `sigrtclr()` once, before any `sigrtchk()`, and no stretch of
/// the call went unchecked for long.
fn assert_protocol(line: &Value) {
    assert_eq!(
        line["sigrtclr_calls"], 1,
        "sigrtclr() once per call: {line}"
    );
    let clr = ms_of(line, "sigrtclr_at_ms");
    if line["sigrtchk_calls"].as_u64().unwrap_or(0) > 0 {
        assert!(
            clr <= ms_of(line, "sigrtchk_first_ms"),
            "sigrtclr() must come before the first sigrtchk(): {line}"
        );
    }
    let gap = line["sigrtchk_max_gap_ms"].as_f64().unwrap_or(0.0);
    assert!(gap <= MAX_GAP_MS, "sigrtchk() gap {gap:.0} ms: {line}");
}

/// An EC2 endpoint (the fault proxy in front of moto) that accepts and never answers.
fn hanging_ec2() -> FaultProxy {
    let proxy = FaultProxy::start(moto());
    proxy.set(json!([{"fault": "hang", "count": -1, "max_s": 60}]));
    proxy
}

#[test]
fn sigterm_during_a_hanging_claim_interrupts_it_promptly_and_the_process_lives_on() {
    let w = World::create(1, &[]);
    let a = Node::new(&w, &w.a);
    let before = w.routes(VIP);
    let ec2 = hanging_ec2();
    let mut host = Host::start(a.host());
    let config = cfg(&format!("endpoint={};timeout_ms=10000", ec2.url()));

    host.send(&["call", "vip_claim", &config]);
    let sent = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    host.signal(libc::SIGTERM);
    let signalled = Instant::now();
    let line = host
        .next(Duration::from_secs(15))
        .expect("zfhost survived SIGTERM");
    let latency_ms = signalled.elapsed().as_secs_f64() * 1000.0;
    let total_ms = sent.elapsed().as_secs_f64() * 1000.0;
    eprintln!(
        "interrupt: SIGTERM after {:.0} ms, result {latency_ms:.0} ms later (call {:.0} ms), \
         sigrtchk {} calls, max gap {} ms, longest unchecked stretch {:.1} ms",
        (signalled - sent).as_secs_f64() * 1000.0,
        ms_of(&line, "ms"),
        line["sigrtchk_calls"],
        line["sigrtchk_max_gap_ms"],
        ms_of(&line, "unchecked_max_ms"),
    );
    let r = result_of(&line);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "interrupted", "{r}");
    let message = r["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("claim") && message.contains("SIGTERM") && message.contains("may"),
        "the message names the op and says what may have changed: {message}"
    );
    assert!(total_ms < 2000.0, "interrupted claim took {total_ms:.0} ms");
    assert!(
        latency_ms < 1000.0,
        "result {latency_ms:.0} ms after SIGTERM"
    );
    assert!(
        line["sigrtchk_calls"].as_u64().unwrap_or(0) >= 3,
        "sigrtchk() consulted while waiting: {line}"
    );
    assert_protocol(&line);
    // Every EC2 request hung: nothing reached moto.
    assert_eq!(
        w.routes(VIP),
        before,
        "an interrupted claim changed a route"
    );

    // Alive, the stop still pending (IRIS clears it when the next call starts).
    let state = host.command(&["sigstate"]);
    assert_eq!(state["stop"], true, "{state}");
    assert_eq!(state["signals"], 1, "{state}");

    // The next call starts with sigrtclr(): a slow but answered claim runs to its end.
    ec2.set(json!([{"action": "DescribeRouteTables", "fault": "delay", "ms": 400, "count": -1}]));
    let line = host.call("vip_claim", &config);
    let r = result_of(&line);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["holder"], "self", "{r}");
    assert!(
        line["sigrtchk_calls"].as_u64().unwrap_or(0) >= 4,
        "a call waiting 400 ms+ consults sigrtchk() several times: {line}"
    );
    assert_protocol(&line);
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone())]);
    eprintln!(
        "uninterrupted claim: {:.0} ms, sigrtchk {} calls, max gap {} ms",
        ms_of(&line, "ms"),
        line["sigrtchk_calls"],
        line["sigrtchk_max_gap_ms"]
    );

    // SIGINT counts as a stop too; a status says nothing changed.
    ec2.set(json!([{"fault": "hang", "count": -1, "max_s": 60}]));
    host.send(&["call", "vip_status", &config]);
    std::thread::sleep(Duration::from_millis(300));
    host.signal(libc::SIGINT);
    let signalled = Instant::now();
    let line = host.next(Duration::from_secs(15)).expect("alive");
    let latency_ms = signalled.elapsed().as_secs_f64() * 1000.0;
    let r = result_of(&line);
    assert_eq!(kind(&r), "interrupted", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("status") && m.contains("nothing was changed")),
        "{r}"
    );
    assert!(
        latency_ms < 1000.0,
        "result {latency_ms:.0} ms after SIGINT"
    );
    assert_protocol(&line);
}

#[test]
fn a_stop_signal_before_the_call_is_cleared_by_sigrtclr() {
    let w = World::create(1, &[]);
    let a = Node::new(&w, &w.a);
    let ec2 = hanging_ec2();
    let mut host = Host::start(a.host());
    let raised = host.command(&["raise", &libc::SIGTERM.to_string()]);
    assert_eq!(
        raised["stop"], true,
        "the stand-in notes the stop: {raised}"
    );

    // A call that waits 800 ms for its deadline, consulting sigrtchk() all along: had the
    // earlier stop not been cleared, the first check would have answered 1.
    let line = host.call(
        "vip_status",
        &cfg(&format!("endpoint={};timeout_ms=800", ec2.url())),
    );
    let r = result_of(&line);
    assert_eq!(
        kind(&r),
        "timeout",
        "an old signal interrupted the call: {r}"
    );
    assert!(
        line["sigrtchk_calls"].as_u64().unwrap_or(0) >= 3,
        "sigrtchk() consulted (and answered 0): {line}"
    );
    assert_protocol(&line);
    assert_eq!(host.command(&["sigstate"])["stop"], false);
}

#[test]
fn null_signal_slots_mean_the_call_is_never_interrupted() {
    let w = World::create(1, &[]);
    let a = Node::new(&w, &w.a);
    let ec2 = hanging_ec2();
    let mut cmd = a.host();
    cmd.arg("--no-sigrt");
    let mut host = Host::start(cmd);
    host.send(&[
        "call",
        "vip_status",
        &cfg(&format!("endpoint={};timeout_ms=1000", ec2.url())),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    host.signal(libc::SIGTERM);
    let line = host.next(Duration::from_secs(15)).expect("alive");
    let r = result_of(&line);
    assert_eq!(kind(&r), "timeout", "{r}");
    assert!(ms_of(&line, "ms") >= 950.0, "{line}");
    assert_eq!(line["sigrtchk_calls"], 0, "{line}");
    assert_eq!(line["sigrtclr_calls"], 0, "{line}");
}

// ---- SIGPIPE ----------------------------------------------------------------------------------

/// How the peer closes a pooled connection once it has been idle for 50 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// TCP RST (SO_LINGER 0).
    Reset,
    /// A plain close (FIN), without TLS's close_notify: how servers drop idle connections.
    Fin,
}

/// `tests/support/idlepeer.py` in front of moto over HTTPS (real EC2 is TLS only): answers with
/// keep-alive, then closes each idle connection 50 ms later.
struct IdlePeer {
    child: Child,
    port: u16,
    control: u16,
    ca: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl IdlePeer {
    fn start(close: Close) -> IdlePeer {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "irisvip-idlepeer-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let made = Command::new(python())
            .arg(repo().join("tests/support/tlscerts.py"))
            .arg(&dir)
            .status()
            .expect("tlscerts.py runs");
        assert!(made.success(), "tlscerts.py failed: {made}");
        let mut cmd = Command::new(python());
        cmd.arg(repo().join("tests/support/idlepeer.py"))
            .args(["--upstream", moto(), "--after-ms", "50"])
            .arg("--tls-cert")
            .arg(dir.join("server.pem"))
            .arg("--tls-key")
            .arg(dir.join("server.key"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if close == Close::Fin {
            cmd.arg("--fin");
        }
        // SAFETY: prctl is async-signal-safe; the peer dies with the test process.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("idlepeer.py starts");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut port = |label: &str| {
            let mut line = String::new();
            out.read_line(&mut line)
                .expect("idlepeer.py prints its ports");
            line.trim()
                .strip_prefix(label)
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or_else(|| panic!("idlepeer.py: expected {label}, got {line:?}"))
        };
        let (port, control) = (port("PORT"), port("CTLPORT"));
        IdlePeer {
            child,
            port,
            control,
            ca: dir.join("ca.pem"),
            dir,
        }
    }

    fn stats(&self) -> Value {
        http_get_json(self.control, "/_stats")
    }
}

impl Drop for IdlePeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three status calls, 300 ms apart, through a peer that closes every pooled connection 50 ms
/// after its answer: each later call meets closed connections in the pool. Returns the call
/// lines (fewer than three when the host died), how the host ended, and the peer's counters.
fn three_calls_across_closes(close: Close, guard: bool) -> (Vec<Value>, ExitStatus, Value) {
    let w = World::create(1, &[]);
    let a = Node::new(&w, &w.a);
    let peer = IdlePeer::start(close);
    let mut cmd = a.host();
    cmd.env("SSL_CERT_FILE", &peer.ca)
        .env_remove("SSL_CERT_DIR");
    if !guard {
        cmd.env("IRISVIP_TEST_NO_SIGPIPE_GUARD", "1");
    }
    let mut host = Host::start(cmd);
    assert_eq!(
        host.load["sigpipe"], "default",
        "the test host must keep SIGPIPE's default action: {}",
        host.load
    );
    let config = cfg(&format!(
        "endpoint=https://127.0.0.1:{};timeout_ms=10000",
        peer.port
    ));
    let mut calls = Vec::new();
    for _ in 0..3 {
        host.send(&["call", "vip_status", &config]);
        match host.next(Duration::from_secs(30)) {
            Some(line) => calls.push(line),
            None => break,
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let status = host.exit_status(Duration::from_secs(10));
    (calls, status, peer.stats())
}

#[test]
fn a_peer_closing_pooled_connections_does_not_kill_a_host_with_default_sigpipe() {
    for close in [Close::Fin, Close::Reset] {
        let (calls, status, stats) = three_calls_across_closes(close, true);
        eprintln!(
            "{close:?}, guarded: {} calls, {status:?}, peer {stats}",
            calls.len()
        );
        assert_eq!(
            status.signal(),
            None,
            "{close:?}: the host was killed: {status:?}"
        );
        assert_eq!(calls.len(), 3, "{close:?}: {calls:?}");
        for (i, line) in calls.iter().enumerate() {
            let r = result_of(line);
            assert_eq!(r["ok"], true, "{close:?}, call {}: {r}", i + 1);
        }
        let closed = stats["fins"].as_u64().unwrap_or(0) + stats["resets"].as_u64().unwrap_or(0);
        assert!(
            closed >= 2,
            "{close:?}: the peer closed pooled connections: {stats}"
        );
    }
}

/// The hazard is real: without the guard, the same calls kill the host with SIGPIPE when the
/// peer closes its idle TLS connections with a FIN (rustls's close_notify meets the reset).
#[test]
fn without_the_sigpipe_guard_an_idle_close_kills_the_host() {
    let (calls, status, stats) = three_calls_across_closes(Close::Fin, false);
    eprintln!(
        "Fin, unguarded: {} calls, {status:?}, peer {stats}",
        calls.len()
    );
    assert_eq!(
        status.signal(),
        Some(libc::SIGPIPE),
        "expected death by SIGPIPE after {} calls: {status:?}",
        calls.len()
    );
}

// ---- zfstrsize() nonsense and caught panics ---------------------------------------------------

/// zfhost without AWS: a config error answers without the network.
fn offline_host() -> Command {
    let mut cmd = Command::new(zfhost_bin());
    cmd.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_REGION")
        .env_remove("IRISVIP_TEST_PANIC");
    cmd
}

#[test]
fn a_zfstrsize_of_zero_or_less_or_too_small_for_json_never_leaves_the_buffer_stale() {
    let mut args: Vec<String> = Vec::new();
    let caps = [i32::MIN, -1, 0, 1, 2, 3, 8, 11, 12, 13, 16];
    for cap in caps {
        args.extend(
            ["strsize", &cap.to_string(), "call", "vip_claim", "bogus=1"].map(String::from),
        );
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = lines(&offline_host().args(&argv).output().expect("zfhost runs"));
    assert_eq!(out.len(), caps.len());
    for (line, cap) in out.iter().zip(caps) {
        assert_eq!(line["rc"], 0, "cap {cap}: {line}");
        assert_eq!(
            line["guard_intact"], true,
            "cap {cap}: wrote past the buffer: {line}"
        );
        assert_eq!(
            line["first_byte_stale"], false,
            "cap {cap}: buffer left stale: {line}"
        );
        assert_eq!(line["nul_within_capacity"], true, "cap {cap}: {line}");
        let output = line["output"].as_str().unwrap_or("?");
        if cap < 3 {
            // No JSON fits (or the size is unknown): one NUL, the empty string.
            assert_eq!(output, "", "cap {cap}: {line}");
        } else {
            assert!(output.len() < cap as usize, "cap {cap}: {line}");
            let v: Value = serde_json::from_str(output)
                .unwrap_or_else(|e| panic!("cap {cap}: {output:?}: {e}"));
            assert_ne!(v["ok"], true, "cap {cap}: {output}");
        }
    }
}

#[test]
fn after_a_caught_panic_the_next_call_starts_from_a_fresh_runtime_and_session() {
    let w = World::create(1, &[]);
    // Where the panic strikes: as the entry starts, or inside the runtime (lock held,
    // block_on running: the state the next call must not reuse).
    for hook in ["claim", "claim@runtime"] {
        let a = Node::new(&w, &w.a);
        let mut cmd = a.host();
        cmd.env("IRISVIP_TEST_PANIC", hook);
        let mut host = Host::start(cmd);
        let config = cfg("timeout_ms=10000");
        let token_puts = |a: &Node| a.imds.stats()["token_puts"].as_u64().unwrap_or(0);

        // Control: a warm session keeps its IMDS token (and its identity) across calls, so a
        // new token fetch can only come from a new session.
        let r = result_of(&host.call("vip_status", &config));
        assert_eq!(r["ok"], true, "{hook}: {r}");
        let first = token_puts(&a);
        let r = result_of(&host.call("vip_status", &config));
        assert_eq!(r["ok"], true, "{hook}: {r}");
        let warm = token_puts(&a);
        assert!(first >= 1, "{hook}: no IMDS token fetched");
        assert_eq!(warm, first, "{hook}: a warm session should keep its token");

        let r = result_of(&host.call("vip_claim", &config));
        assert_eq!(kind(&r), "internal", "{hook}: {r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("panicked")),
            "{hook}: {r}"
        );

        let line = host.call("vip_status", &config);
        let r = result_of(&line);
        assert_eq!(r["ok"], true, "{hook}: the call after the panic: {r}");
        let after = token_puts(&a);
        assert!(
            after > warm,
            "{hook}: the call after a panic must start from a fresh session (new IMDS token): \
             {warm} token fetches before, {after} after"
        );
        assert_eq!(line["threads_after"], 1, "{line}");
    }
}
