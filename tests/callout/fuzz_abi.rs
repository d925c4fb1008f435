//! Arbitrary bytes as config, through the C ABI: one warm zfhost process, fed `strsize N` and
//! `callhex ENTRY HEX` commands on stdin, every answer checked. Seeded, so a failure replays
//! (IRISVIP_FUZZ_SEED). IRISVIP_FUZZ_INPUTS sets the count (default 10^5; `make fuzz` runs 10^6).
//!
//! No input can reach AWS: IMDS is disabled and points at a closed loopback port, EC2 points at
//! another closed loopback port, and an input that mentions `endpoint` with any other value is
//! defused before it is sent. So nothing can succeed, and nothing may take long.

use crate::common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::{Duration, Instant};

const DEFAULT_INPUTS: u64 = 100_000;
const CLOSED: &str = "http://127.0.0.1:9";
const ENTRIES: [&str; 4] = ["vip_claim", "vip_release", "vip_status", "vip_check"];
const KINDS: [&str; 8] = [
    "config",
    "validation",
    "metadata",
    "permission",
    "not_found",
    "throttled",
    "timeout",
    "aws",
];
/// The longest any single call may take: the default deadline plus slack (nothing is reachable,
/// so in practice a call answers in well under a millisecond, or ~150 ms of EC2 retries).
const CALL_LIMIT_MS: f64 = 10_000.0 + 1_000.0;

const KEYS: &[&str] = &[
    "vip",
    "interface",
    "route_tables",
    "route_table_tag",
    "eni",
    "region",
    "timeout_ms",
    "dry_run",
    "settle_ms",
    "permissions",
    "write",
    "max_in_flight",
    "endpoint",
    "VIP",
    "vip ",
    " dry_run",
    "route_table",
    "bogus",
    "",
    "timeout",
    "vïp",
];
const VALUES: &[&str] = &[
    "192.168.240.10",
    "192.168.240.10/32",
    "192.168.240.0/24",
    "10.0.0.1",
    "0.0.0.0/0",
    "1.2.3",
    "256.1.1.1",
    "1.2.3.4/33",
    "1.2.3.4/+3",
    "1.2.3.4/032",
    "１.２.３.４",
    "::1",
    "eth0:1",
    "lo",
    "has space",
    "waytoolonglabel:123",
    "rtb-0a1",
    "rtb-0a1,rtb-2b3",
    "rtb-1,,rtb-2",
    "rtb-1,rtb-1",
    "rtb-XYZ",
    "subnet-1",
    "irisvip=prod",
    "=v",
    "novalue",
    "eni-0abc",
    "eni-",
    "i-123",
    "us-east-1",
    "US EAST",
    "ēu-west-1",
    "a-b",
    CLOSED,
    "ftp://x",
    "http://",
    "1",
    "0",
    "2",
    "yes",
    "probe",
    "skip",
    "always",
    "changed",
    "1000",
    "1001",
    "60000",
    "60001",
    "300000",
    "300001",
    "18446744073709551616",
    "-1",
    "+5",
    "",
    "\u{0}",
    "é",
    "\u{feff}",
    "\u{1f600}",
    "%s%n",
    "\\",
    "\"",
];
const SEPARATORS: &[&str] = &[";", "\n", "\r\n", " ", ";;", "=", ",", "\t", "\r", ""];

fn inputs() -> u64 {
    std::env::var("IRISVIP_FUZZ_INPUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_INPUTS)
}

fn pick<'a>(rng: &mut Rng, from: &[&'a str]) -> &'a str {
    from[rng.below(from.len() as u64) as usize]
}

fn random_bytes(rng: &mut Rng, max: u64) -> Vec<u8> {
    let n = rng.below(max + 1) as usize;
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

/// Key/value soup from the dictionaries: mostly near-valid configs.
fn soup(rng: &mut Rng) -> Vec<u8> {
    let mut s = String::new();
    let mut timed = false;
    for _ in 0..=rng.below(6) {
        let key = pick(rng, KEYS);
        timed |= key == "timeout_ms";
        s.push_str(key);
        if rng.chance(92) {
            s.push('=');
        }
        s.push_str(pick(rng, VALUES));
        s.push_str(pick(rng, SEPARATORS));
    }
    // Valid configs try EC2 (refused, retried): keep most of them short.
    if !timed && rng.chance(90) {
        s.push_str(";timeout_ms=");
        s.push_str(&(1 + rng.below(5)).to_string());
    }
    s.into_bytes()
}

/// A valid config with a few byte-level mutations.
fn mutated(rng: &mut Rng) -> Vec<u8> {
    let mut v = format!(
        "vip=192.168.240.10;route_tables=rtb-0a1,rtb-2b3;eni=eni-0abc;region=us-east-1;timeout_ms={};dry_run=1",
        1 + rng.below(3)
    )
    .into_bytes();
    for _ in 0..=rng.below(4) {
        let at = rng.below(v.len() as u64 + 1) as usize;
        match rng.below(5) {
            0 if at < v.len() => v[at] ^= 1 << rng.below(8),
            1 if at < v.len() => v[at] = rng.next_u64() as u8,
            2 => v.insert(at, rng.next_u64() as u8),
            3 if at < v.len() => {
                v.remove(at);
            }
            _ => {
                let end = (at + rng.below(16) as usize).min(v.len());
                let piece = v[at..end].to_vec();
                v.splice(at..at, piece);
            }
        }
    }
    v
}

/// Large inputs: long garbage, many separators, a long value.
fn large(rng: &mut Rng) -> Vec<u8> {
    let n = 1024 + rng.below(64 * 1024) as usize;
    match rng.below(3) {
        0 => (0..n).map(|_| rng.next_u64() as u8).collect(),
        1 => b";\n ".iter().copied().cycle().take(n).collect(),
        _ => {
            let mut v = b"vip=".to_vec();
            v.extend(std::iter::repeat_n(b'9', n));
            v
        }
    }
}

fn generate(rng: &mut Rng) -> Vec<u8> {
    match rng.below(100) {
        0..=34 => random_bytes(rng, 64),
        35..=44 => random_bytes(rng, 2048),
        45..=79 => soup(rng),
        80..=97 => mutated(rng),
        _ => large(rng),
    }
}

/// The config IRIS would pass (up to the first NUL), with every `endpoint` that is not the
/// closed loopback port defused (renamed to an unknown key): no input may reach another host.
fn defuse(input: Vec<u8>) -> Vec<u8> {
    let cut = input.iter().position(|b| *b == 0).unwrap_or(input.len());
    let mut v = input;
    let mut i = 0;
    while let Some(at) = find(&v[i..cut], b"endpoint").map(|p| p + i) {
        let rest = &v[at + 8..cut];
        let value = trim_start(rest.strip_prefix(b" ").unwrap_or(rest));
        let safe = trim_start(value.strip_prefix(b"=").unwrap_or(b"!"))
            .strip_prefix(CLOSED.as_bytes())
            .is_some_and(|tail| {
                tail.first()
                    .is_none_or(|b| matches!(b, b';' | b'\n' | b'\r' | b' ' | b'\t'))
            });
        if !safe {
            v[at] = b'E';
        }
        i = at + 8;
    }
    v
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &s[n..]
}

fn capacity(rng: &mut Rng) -> i32 {
    (match rng.below(100) {
        0..=4 => 1 + rng.below(3),
        5..=59 => 3 + rng.below(600),
        60..=94 => 600 + rng.below(32_767 - 600 + 1),
        _ => 32_768 + rng.below(1 << 20),
    }) as i32
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// zfhost with an environment in which nothing is reachable.
fn isolated_host() -> Command {
    let mut cmd = Command::new(zfhost_bin());
    for k in [
        "AWS_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "IRISVIP_TEST_PANIC",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
        .env("AWS_ENDPOINT_URL_EC2", CLOSED)
        .env("AWS_ENDPOINT_URL", CLOSED)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "fuzz")
        .env("AWS_SECRET_ACCESS_KEY", "fuzz")
        .env("AWS_CONFIG_FILE", "/nonexistent/irisvip-fuzz-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/irisvip-fuzz-credentials",
        );
    cmd
}

/// One input as sent: what the checker needs to judge its answer.
struct Sent {
    n: u64,
    entry: &'static str,
    capacity: i32,
    input: Vec<u8>,
}

#[derive(Debug, Default)]
struct Tally {
    calls: u64,
    kinds: std::collections::BTreeMap<String, u64>,
    truncated: u64,
    empty: u64,
    slowest_ms: f64,
    over_10ms: u64,
    /// Refusals whose result had to drop its error although the capacity was ample.
    lost_kind: u64,
}

fn check(sent: &Sent, line: &Value, t: &mut Tally) {
    let replay = || {
        format!(
            "input #{} ({} bytes, hex {}), {} at capacity {}: {line}",
            sent.n,
            sent.input.len(),
            hex(&sent.input[..sent.input.len().min(512)]),
            sent.entry,
            sent.capacity
        )
    };
    assert_eq!(line["cmd"], "call", "{}", replay());
    assert!(line.get("error").is_none(), "{}", replay());
    assert_eq!(line["capacity"], sent.capacity, "{}", replay());
    assert_eq!(line["rc"], 0, "{}", replay());
    assert_eq!(
        line["guard_intact"],
        true,
        "wrote past the buffer: {}",
        replay()
    );
    assert_eq!(line["nul_within_capacity"], true, "{}", replay());
    assert_eq!(line["threads_after"], 1, "{}", replay());
    assert_eq!(line["output_utf8"], true, "{}", replay());
    let len = line["output_len"].as_u64().unwrap_or(u64::MAX);
    assert!(len < sent.capacity as u64, "{}", replay());
    let ms = line["ms"].as_f64().unwrap_or(f64::MAX);
    assert!(ms < CALL_LIMIT_MS, "took {ms} ms: {}", replay());
    t.slowest_ms = t.slowest_ms.max(ms);
    t.over_10ms += u64::from(ms > 10.0);
    let out = line["output"].as_str().unwrap_or("");
    t.calls += 1;
    if sent.capacity < 3 {
        assert_eq!(
            out,
            "",
            "no JSON fits, nothing may be written: {}",
            replay()
        );
        t.empty += 1;
        return;
    }
    let v: Value = serde_json::from_str(out)
        .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {}", replay()));
    assert!(v.is_object(), "{}", replay());
    assert_ne!(
        v["ok"],
        true,
        "success without any reachable AWS: {}",
        replay()
    );
    if let Some(op) = v.get("op") {
        assert_eq!(op.as_str(), sent.entry.strip_prefix("vip_"), "{}", replay());
    }
    if v.get("truncated").is_some() {
        t.truncated += 1;
        // Nothing is reachable, so no result carries tables: only a huge message can make it
        // exceed 1 KiB (see a_long_malformed_vip_is_refused_with_a_short_message).
        if sent.capacity >= 1024 && v.get("error").is_none() {
            t.lost_kind += 1;
        }
    }
    if let Some(k) = v["error"]["kind"].as_str() {
        assert!(KINDS.contains(&k), "kind {k}: {}", replay());
        *t.kinds.entry(k.to_owned()).or_default() += 1;
    }
}

fn writer(
    mut stdin: impl Write,
    seed: u64,
    count: u64,
    tx: std::sync::mpsc::SyncSender<Sent>,
) -> std::io::Result<()> {
    let mut rng = Rng::new(seed);
    let mut cap = -1;
    let mut out = BufWriter::with_capacity(1 << 16, &mut stdin);
    for n in 0..count {
        let capacity = capacity(&mut rng);
        let entry = ENTRIES[rng.below(ENTRIES.len() as u64) as usize];
        let input = defuse(generate(&mut rng));
        if capacity != cap {
            writeln!(out, "strsize\t{capacity}")?;
            cap = capacity;
        }
        writeln!(out, "callhex\t{entry}\t{}", hex(&input))?;
        if n % 64 == 0 {
            out.flush()?;
        }
        if tx
            .send(Sent {
                n,
                entry,
                capacity,
                input,
            })
            .is_err()
        {
            break;
        }
    }
    writeln!(out, "threads")?;
    out.flush()
}

fn drive(seed: u64, count: u64) -> Tally {
    let mut child = isolated_host()
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zfhost starts");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = sync_channel::<Sent>(4096);
    let feeder = std::thread::spawn(move || writer(stdin, seed, count, tx));
    // A watchdog: a hang kills the host, and the reader then fails on the missing lines.
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let mut last = Instant::now();
        loop {
            match done_rx.recv_timeout(Duration::from_secs(1)) {
                Ok(()) => last = Instant::now(),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if last.elapsed() > Duration::from_secs(30) {
                        // SAFETY: signalling our own child by pid.
                        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    });
    let tally = read_all(
        BufReader::with_capacity(1 << 16, stdout),
        &rx,
        &done_tx,
        count,
    );
    drop(done_tx);
    let hung = watchdog.join().unwrap_or(false);
    assert!(!hung, "zfhost hung (no answer for 30 s) and was killed");
    feeder
        .join()
        .expect("feeder thread")
        .expect("writing to zfhost");
    let status = child.wait().expect("zfhost exits");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(status.success(), "zfhost: {status}: {err}");
    assert!(err.trim().is_empty(), "zfhost wrote to stderr: {err}");
    tally
}

fn read_all(
    stdout: impl BufRead,
    rx: &Receiver<Sent>,
    alive: &std::sync::mpsc::Sender<()>,
    count: u64,
) -> Tally {
    let mut lines = stdout.lines();
    let mut next = || -> Value {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("zfhost stopped answering (crash or hang?)"))
            .expect("read zfhost");
        let _ = alive.send(());
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("zfhost line {line:?}: {e}"))
    };
    let load = next();
    assert_eq!(load["cmd"], "load", "{load}");
    let mut t = Tally::default();
    for _ in 0..count {
        let sent = rx.recv().expect("feeder sent the input");
        let line = next();
        check(&sent, &line, &mut t);
    }
    let threads = next();
    assert_eq!(threads["cmd"], "threads", "{threads}");
    assert_eq!(threads["count"], 1, "threads left behind: {threads}");
    t
}

#[test]
fn arbitrary_bytes_through_the_c_abi() {
    let seed = seed_from_env("IRISVIP_FUZZ_SEED", 0x1215_7a11);
    let count = inputs();
    let t0 = Instant::now();
    let t = drive(seed, count);
    let secs = t0.elapsed().as_secs_f64();
    let text = format!(
        "fuzz_abi: {} inputs in {secs:.1} s ({:.0}/s), seed {seed}; kinds {:?}; truncated {}, empty {}; \
         slowest call {:.1} ms, {} over 10 ms; refusals that lost their kind to an oversized message: {}",
        t.calls,
        t.calls as f64 / secs,
        t.kinds,
        t.truncated,
        t.empty,
        t.slowest_ms,
        t.over_10ms,
        t.lost_kind
    );
    eprintln!("{text}");
    println!("{text}");
    assert_eq!(t.calls, count);
    // The generator reaches past the parser: some inputs are valid configs.
    if count >= 10_000 {
        assert!(
            t.kinds.get("config").copied().unwrap_or(0) < count,
            "no input got past config parsing: {:?}",
            t.kinds
        );
    }
}

/// A malformed vip is echoed whole in the refusal (src/net.rs keeps the full text in
/// NetParseError, src/config.rs parse_vip formats it): a 40 KB value makes a 40 KB message, the
/// result no longer fits a 32 KiB reply, and the truncated result drops the error kind.
/// Fails until the message quotes the value shortened (error::quote), as every other key does.
#[test]
fn a_long_malformed_vip_is_refused_with_a_short_message() {
    for value in [
        "9".repeat(40_000),
        format!("1.2.3.4/{}", "3".repeat(40_000)),
    ] {
        let config = format!("vip={value}");
        let out = output_within(
            isolated_host().args(["call", "vip_claim", &config]),
            Duration::from_secs(30),
        );
        let r = result_of(&lines(&out)[0]);
        assert!(r.get("truncated").is_none(), "truncated: {r}");
        assert_eq!(kind(&r), "config", "{r}");
        let m = r["error"]["message"].as_str().unwrap_or("");
        assert!(m.len() <= 512, "{} byte message", m.len());
    }
}

#[test]
fn defuse_keeps_only_the_closed_endpoint() {
    let ok = |s: &str| defuse(s.as_bytes().to_vec()) == s.as_bytes();
    assert!(ok("endpoint=http://127.0.0.1:9"));
    assert!(ok("a=1;endpoint = http://127.0.0.1:9;b"));
    assert!(ok("endpoint=http://127.0.0.1:9\n"));
    assert!(!ok("endpoint=http://127.0.0.1:99"));
    assert!(!ok("endpoint=http://127.0.0.1:9.example"));
    assert!(!ok("endpoint=https://ec2.us-east-1.amazonaws.com"));
    assert!(!ok("endpoint=http://10.0.0.1:9"));
    assert!(!ok("x;endpoint=http://127.0.0.1:9;endpoint=http://h"));
    // After a NUL nothing is passed, so nothing needs defusing there.
    assert!(ok("vip=1\0endpoint=http://h"));
}
