//! Host names under DNS faults, through the C ABI. Each DNS case runs zfhost inside a network
//! namespace made for the test (`ip netns`), whose `/etc/resolv.conf` (and `/etc/hosts`, via
//! `/etc/netns/<name>/`) point at `tests/support/dnsstub.py` on a loopback address of that
//! namespace: a server that never answers, or one that answers NXDOMAIN. Nothing leaves the
//! namespace. The endpoint is a name only DNS could answer; `eni=` and `region=` are given and
//! the credentials are in the environment, so the first request of the call is EC2's and DNS
//! is what decides its fate.

use crate::common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The namespace's nameserver (a loopback address of its own).
const NAMESERVER: &str = "127.0.0.2";
/// Where a hosts-file entry points: a TCP sink that accepts and closes.
const SINK: &str = "127.0.0.3";
const SINK_PORT: u16 = 8080;
/// A name only DNS can answer. `.test` (RFC 6761) is reserved for tests; `.invalid` would not
/// do: the resolver answers it NXDOMAIN itself, without a question, as RFC 6761 asks.
const DNS_ONLY: &str = "ec2.irisvip.test";
/// A name only the namespace's hosts file has.
const HOSTS_ONLY: &str = "ec2-hosts.irisvip.test";
const ENI: &str = "eni-0123456789abcdef0";

/// A network namespace of this test process, with files for its `/etc` (`ip netns exec`
/// bind-mounts `/etc/netns/<name>/*` over `/etc/*`). Deleted with its files when dropped,
/// also when the test panics; namespaces left by a killed test process are removed by the next.
struct Netns {
    name: String,
    etc: PathBuf,
}

impl Netns {
    fn create(files: &[(&str, &str)]) -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        remove_stale_namespaces();
        let name = format!(
            "irisvip-dns-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let etc = PathBuf::from("/etc/netns").join(&name);
        let made = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip runs");
        assert!(
            made.success(),
            "`ip netns add {name}` failed ({made}): these tests need root and CAP_SYS_ADMIN"
        );
        // From here on, Drop cleans up whatever fails below.
        let ns = Netns { name, etc };
        std::fs::create_dir_all(&ns.etc).expect("/etc/netns/<name>");
        for (file, text) in files {
            std::fs::write(ns.etc.join(file), text).expect("write a netns file");
        }
        let lo = ns.exec("ip").args(["link", "set", "lo", "up"]).status();
        assert!(lo.is_ok_and(|s| s.success()), "lo up in {}", ns.name);
        ns
    }

    /// `program` run inside the namespace.
    fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// A zfhost command inside the namespace with a hermetic AWS environment: credentials in
    /// the environment, instance metadata on a closed port, no AWS settings from outside.
    fn host(&self) -> Command {
        let mut cmd = self.exec(zfhost_bin());
        hermetic(&mut cmd);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.etc);
    }
}

/// Namespaces (and their /etc/netns files) of earlier test processes that no longer exist.
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix("irisvip-dns-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if PathBuf::from("/proc").join(pid).exists() {
            continue;
        }
        let _ = Command::new("ip").args(["netns", "del", name]).status();
        let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(name));
    }
}

/// The environment of `common::Node::host` minus everything a namespace cannot reach.
fn hermetic(cmd: &mut Command) {
    for k in [
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_EC2",
        "AWS_SESSION_TOKEN",
        "AWS_EC2_METADATA_DISABLED",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("AWS_CONFIG_FILE", "/nonexistent/irisvip-test-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/irisvip-test-credentials",
        )
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9");
}

/// `tests/support/dnsstub.py` inside a namespace; killed when dropped.
struct DnsStub {
    child: Child,
    log: PathBuf,
}

impl DnsStub {
    fn start(ns: &Netns, mode: &str, host: &str) -> DnsStub {
        let log = std::env::temp_dir().join(format!("{}-{mode}-{host}.jsonl", ns.name));
        let _ = std::fs::remove_file(&log);
        let mut cmd = ns.exec(python());
        cmd.arg(repo().join("tests/support/dnsstub.py"))
            .args(["--mode", mode, "--host", host, "--log"])
            .arg(&log)
            .args(["--sink", &format!("{SINK}:{SINK_PORT}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = die_with_parent(&mut cmd)
            .spawn()
            .expect("dnsstub.py starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("dnsstub.py prints READY");
        assert_eq!(line.trim(), "READY", "dnsstub.py did not start");
        DnsStub { child, log }
    }

    fn entries(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Questions (UDP or TCP) for `name` so far: distinct (type, id), since a question sent
    /// again over UDP after 333 ms without an answer (hickory's retransmission, as glibc's
    /// `timeout`/`attempts` do) keeps its id.
    fn questions(&self, name: &str) -> usize {
        let mut seen: Vec<(Value, Value)> = self
            .entries()
            .into_iter()
            .filter(|e| e["name"] == name)
            .map(|e| (e["qtype"].clone(), e["id"].clone()))
            .collect();
        seen.sort_by_key(|(t, i)| (t.as_u64(), i.as_u64()));
        seen.dedup();
        seen.len()
    }

    /// Connections the sink accepted so far.
    fn sink_connections(&self) -> usize {
        self.entries()
            .iter()
            .filter(|e| e["proto"] == "sink")
            .count()
    }
}

impl Drop for DnsStub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn dns_cfg(endpoint_host: &str, timeout_ms: u64) -> String {
    cfg(&format!(
        "endpoint=http://{endpoint_host}:{SINK_PORT};eni={ENI};region=us-east-1;timeout_ms={timeout_ms}"
    ))
}

/// One call in a fresh zfhost inside `ns`: (zfhost line, result); the ABI promises, one
/// thread after the call included, are checked by `result_of`.
fn call_in(ns: &Netns, config: &str) -> (Value, Value) {
    let out = output_within(
        ns.host().args(["call", "vip_claim", config]),
        Duration::from_secs(30),
    );
    let line = lines(&out).remove(0);
    let r = result_of(&line);
    (line, r)
}

fn ms(line: &Value) -> f64 {
    line["ms"].as_f64().unwrap_or(f64::MAX)
}

fn message(r: &Value) -> &str {
    r["error"]["message"].as_str().unwrap_or("")
}

#[test]
fn a_dns_server_that_never_answers_costs_the_deadline_and_no_more() {
    let ns = Netns::create(&[("resolv.conf", &format!("nameserver {NAMESERVER}\n"))]);
    let dns = DnsStub::start(&ns, "silent", NAMESERVER);
    let config = dns_cfg(DNS_ONLY, 1000);

    // A fresh process: the deadline holds, the error says which name DNS did not answer.
    let (line, r) = call_in(&ns, &config);
    eprintln!("dns: silent server, fresh process: {:.0} ms", ms(&line));
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "timeout", "{r}");
    assert!(ms(&line) < 2500.0, "took {:.0} ms: {r}", ms(&line));
    assert!(ms(&line) >= 950.0, "gave up before the deadline: {r}");
    assert!(
        message(&r).contains(&format!("DNS did not answer for {DNS_ONLY}")),
        "the host is not named: {r}"
    );
    let asked = dns.questions(DNS_ONLY);
    assert!(
        (1..=2).contains(&asked),
        "{asked} questions in one call: {:?}",
        dns.entries()
    );

    // A warm process: every call is bounded, each asks DNS afresh (once).
    let mut warm = WarmHost::start(ns.host());
    for i in 0..2 {
        let before = dns.questions(DNS_ONLY);
        let line = warm.call("vip_claim", &config);
        let r = result_of(&line);
        eprintln!("dns: silent server, warm call {i}: {:.0} ms", ms(&line));
        assert_eq!(kind(&r), "timeout", "call {i}: {r}");
        assert!(ms(&line) < 2500.0, "call {i} took {:.0} ms: {r}", ms(&line));
        assert!(message(&r).contains(DNS_ONLY), "call {i}: {r}");
        let asked = dns.questions(DNS_ONLY) - before;
        assert!(
            (1..=2).contains(&asked),
            "call {i}: {asked} questions: {:?}",
            dns.entries()
        );
    }
}

#[test]
fn nxdomain_is_a_quick_clear_error_naming_the_host() {
    let ns = Netns::create(&[("resolv.conf", &format!("nameserver {NAMESERVER}\n"))]);
    let dns = DnsStub::start(&ns, "nxdomain", NAMESERVER);
    let (line, r) = call_in(&ns, &dns_cfg(DNS_ONLY, 5000));
    eprintln!("dns: NXDOMAIN: {:.0} ms", ms(&line));
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "aws", "{r}");
    assert!(
        message(&r).contains(&format!(
            "cannot resolve {DNS_ONLY}: no such host (NXDOMAIN)"
        )),
        "{r}"
    );
    assert!(
        message(&r).contains("endpoint="),
        "no hint what to fix: {r}"
    );
    assert!(ms(&line) < 1000.0, "NXDOMAIN took {:.0} ms: {r}", ms(&line));
    // One lookup for the whole call (A, then AAAA since A found nothing).
    let asked = dns.questions(DNS_ONLY);
    assert!(
        (1..=2).contains(&asked),
        "{asked} questions: {:?}",
        dns.entries()
    );
    // Nothing was connected to.
    assert_eq!(dns.sink_connections(), 0);
}

#[test]
fn without_a_usable_resolv_conf_the_local_host_is_asked_as_glibc_does() {
    // resolv.conf names no server: glibc asks 127.0.0.1, and so does the library; the error
    // says that resolv.conf was not usable.
    let ns = Netns::create(&[("resolv.conf", "# no nameserver here\n")]);
    let dns = DnsStub::start(&ns, "nxdomain", "127.0.0.1");
    let (line, r) = call_in(&ns, &dns_cfg(DNS_ONLY, 5000));
    assert_eq!(kind(&r), "aws", "{r}");
    assert!(message(&r).contains("no such host (NXDOMAIN)"), "{r}");
    assert!(
        message(&r).contains("/etc/resolv.conf could not be used"),
        "{r}"
    );
    assert!(ms(&line) < 1000.0, "{:.0} ms: {r}", ms(&line));
    assert!(dns.questions(DNS_ONLY) >= 1, "{:?}", dns.entries());
}

#[test]
fn hosts_file_entries_and_ip_literals_never_ask_dns() {
    // The namespace's DNS never answers: any question would cost the whole deadline.
    let ns = Netns::create(&[
        ("resolv.conf", &format!("nameserver {NAMESERVER}\n")),
        (
            "hosts",
            &format!("127.0.0.1 localhost\n{SINK} {HOSTS_ONLY} # the sink\n"),
        ),
    ]);
    let dns = DnsStub::start(&ns, "silent", NAMESERVER);
    for (endpoint, what) in [(HOSTS_ONLY, "hosts entry"), (SINK, "IP literal")] {
        let before = dns.sink_connections();
        let (line, r) = call_in(&ns, &dns_cfg(endpoint, 5000));
        eprintln!("dns: {what}: {:.0} ms", ms(&line));
        assert_eq!(r["ok"], false, "{what}: {r}");
        // The sink at the hosts entry's address took the connection (and closed it): a
        // connection error, quickly, not a DNS error at the deadline.
        assert_eq!(kind(&r), "aws", "{what}: {r}");
        assert!(
            !message(&r).contains("cannot resolve") && !message(&r).contains("DNS did not"),
            "{what}: {r}"
        );
        assert!(ms(&line) < 3000.0, "{what}: {:.0} ms: {r}", ms(&line));
        assert!(
            dns.sink_connections() > before,
            "{what}: nothing reached {SINK}:{SINK_PORT}: {:?}",
            dns.entries()
        );
    }
    assert_eq!(dns.questions(HOSTS_ONLY), 0, "{:?}", dns.entries());
    assert!(
        dns.entries().iter().all(|e| e["proto"] == "sink"),
        "DNS was asked: {:?}",
        dns.entries()
    );
}

#[test]
fn localhost_from_the_hosts_file_reaches_moto() {
    let w = World::create(1, &[]);
    let a = Node::new(&w, &w.a);
    let port = w
        .endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .expect("moto's port");
    let r = a.claim(&cfg(&format!("endpoint=http://localhost:{port}")));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone())]);
}
