//! Host names resolved on the call's own runtime: no thread, no blocking call.
//!
//! The SDK's default resolvers go through `spawn_blocking` (threads, which IRIS forbids), and
//! `getaddrinfo` on the calling thread blocks the runtime so that no timer fires: with a DNS
//! server that never answers, a call with `timeout_ms=1000` took 10 s. Here `/etc/hosts` and
//! `/etc/resolv.conf` are read with `std::fs` (as glibc reads them) and the questions go out
//! through `hickory-resolver` on UDP/TCP sockets of the tokio runtime the call runs on, so the
//! call's deadline bounds every lookup.
//!
//! Semantics, as glibc's `files dns`: an IP literal is its own answer; a name in `/etc/hosts`
//! (as written, no search domains) is answered from there without DNS; anything else goes to
//! the nameservers of `/etc/resolv.conf` with its `search`, `ndots`, `timeout` and `attempts`
//! (no usable nameserver there: 127.0.0.1, as glibc does). Both files are read again when they
//! change.
//!
//! One lookup per host per call at most: a lookup runs as a task of the runtime and every
//! connection that needs the host waits for that task, so the SDK's connection attempts and
//! retries within a call share one question, and a connection abandoned on its connect timeout
//! does not abandon the question. Answers (and failures) are kept until the next call starts
//! (`begin_call`), which also drops lookups still waiting, so that call asks afresh; across
//! calls the records' TTLs apply (hickory's cache). While the call's deadline has not run out,
//! hickory's own `timeout`/`attempts` (from resolv.conf) end a lookup with a failure naming
//! the host; when the deadline comes first, `unanswered` names it for the call's message.

use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::TokioResolver;
use std::collections::HashMap;
use std::fmt;
use std::future::poll_fn;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

const RESOLV_CONF: &str = "/etc/resolv.conf";
const HOSTS: &str = "/etc/hosts";
/// A negative answer (NXDOMAIN, no record) is cached by hickory for at most this long across
/// calls, so a record fixed by the operator is seen soon after.
const NEGATIVE_MAX_TTL: Duration = Duration::from_secs(5);
/// Answers per process: a handful of hosts (EC2, IMDS, STS).
const CACHE_SIZE: u64 = 64;

/// The resolver handed to the HTTP client (and to the container-credentials provider). Clones
/// share one state.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    next_flight: AtomicU64,
}

struct State {
    system: System,
    /// This call's answers, by host (lower case, no trailing dot).
    answers: HashMap<String, Answer>,
    /// Lookups under way, by host.
    flights: HashMap<String, Flight>,
}

type Answer = Result<Vec<IpAddr>, Failure>;

struct Flight {
    id: u64,
    started: Instant,
    waiters: Vec<Waker>,
    /// The lookup's task, aborted when the next call starts (that call asks afresh).
    task: tokio::task::AbortHandle,
}

/// What the files said, read at creation and again when they change.
struct System {
    /// None only if hickory could not be set up (it cannot fail without TLS transports).
    dns: Option<TokioResolver>,
    hosts: HashMap<String, Vec<IpAddr>>,
    /// "127.0.0.2 from /etc/resolv.conf", for messages.
    servers: String,
    /// Why resolv.conf was not used, if it was not.
    conf_problem: Option<String>,
    /// `timeout`/`attempts` in force, for messages.
    timeout: Duration,
    attempts: usize,
    stamp: Stamp,
}

/// Identity of the two files (inode, size, mtime): a change means read them again.
type Stamp = [Option<(u64, u64, i64, i64)>; 2];

fn stamp() -> Stamp {
    let one = |path: &str| {
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
    };
    [one(RESOLV_CONF), one(HOSTS)]
}

/// Why a name has no address: the message names the host and says what to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl Resolver {
    /// Reads `/etc/resolv.conf` and `/etc/hosts`. Never fails: a missing or unusable file is
    /// reported by the lookups that needed it.
    pub fn from_system() -> Resolver {
        Resolver::with_system(System::read())
    }

    fn with_system(system: System) -> Resolver {
        Resolver {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    system,
                    answers: HashMap::new(),
                    flights: HashMap::new(),
                }),
                next_flight: AtomicU64::new(1),
            }),
        }
    }

    /// A call starts: forget the previous call's answers and drop its lookups still under way
    /// (a server that did not answer then is asked again now), and read the files again if
    /// they changed.
    pub fn begin_call(&self) {
        let mut state = self.inner.lock();
        state.answers.clear();
        for (_, flight) in state.flights.drain() {
            flight.task.abort();
            flight.waiters.into_iter().for_each(Waker::wake);
        }
        if state.system.stamp != stamp() {
            state.system = System::read();
        }
    }

    /// The lookup that has been waiting longest for DNS, if one is: for the message of a call
    /// that ran out of time ("DNS did not answer for ec2.example.com within 1002 ms ...").
    pub fn unanswered(&self) -> Option<String> {
        let state = self.inner.lock();
        let (host, flight) = state.flights.iter().min_by_key(|(_, f)| f.started)?;
        Some(format!(
            "DNS did not answer for {host} within {} ms (nameservers {}; timeout {} s, attempts {})",
            flight.started.elapsed().as_millis(),
            state.system.servers,
            state.system.timeout.as_secs(),
            state.system.attempts,
        ))
    }

    /// The addresses of `host`, v4 first.
    pub async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, Failure> {
        let host = normalize(host);
        if let Some(ip) = ip_literal(&host) {
            return Ok(vec![ip]);
        }
        // A lookup whose task vanished without an answer (the runtime shut down) is started
        // again, a few times at most; the call's deadline bounds the whole anyway.
        for _ in 0..3 {
            if let Some(answer) = self.join_or_start(&host) {
                return answer;
            }
            if let Some(answer) = poll_fn(|cx| self.inner.poll_flight(&host, cx)).await {
                return answer;
            }
        }
        Err(Failure {
            message: format!("cannot resolve {host}: the lookup ended without an answer"),
        })
    }

    /// The answer if this call has one (or `/etc/hosts` has the name); else makes sure a
    /// lookup is under way and returns None (wait for it).
    fn join_or_start(&self, host: &str) -> Option<Answer> {
        let mut state = self.inner.lock();
        if let Some(ips) = state.system.hosts.get(host) {
            return Some(Ok(ips.clone()));
        }
        if let Some(answer) = state.answers.get(host) {
            return Some(answer.clone());
        }
        if state.flights.contains_key(host) {
            return None;
        }
        // The lookup runs as a task of the runtime this call runs on (a `current_thread`
        // runtime: no thread), so that it survives the connection that asked first.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Some(Err(Failure {
                message: format!("cannot resolve {host}: no I/O runtime to resolve on"),
            }));
        };
        let Some(dns) = state.system.dns.clone() else {
            return Some(Err(Failure {
                message: format!(
                    "cannot resolve {host}: {}",
                    state
                        .system
                        .conf_problem
                        .as_deref()
                        .unwrap_or("no DNS resolver")
                ),
            }));
        };
        let context = Context {
            servers: state.system.servers.clone(),
            conf_problem: state.system.conf_problem.clone(),
            timeout: state.system.timeout,
            attempts: state.system.attempts,
        };
        let id = self.inner.next_flight.fetch_add(1, Ordering::Relaxed);
        let inner = Arc::clone(&self.inner);
        let name = host.to_owned();
        // Spawned and registered under the lock: the task cannot land before its flight is
        // in place (on this current_thread runtime it does not even run before we yield).
        let task = runtime.spawn(async move {
            let answer = match dns.lookup_ip(name.as_str()).await {
                Ok(found) => {
                    let mut ips: Vec<IpAddr> = Vec::new();
                    for ip in found.iter() {
                        if !ips.contains(&ip) {
                            ips.push(ip);
                        }
                    }
                    ips.sort_by_key(IpAddr::is_ipv6);
                    if ips.is_empty() {
                        Err(context.failure(&name, "no address record (A/AAAA)"))
                    } else {
                        Ok(ips)
                    }
                }
                Err(e) => Err(context.failure(&name, &reason(&e))),
            };
            inner.land(&name, id, answer);
        });
        state.flights.insert(
            host.to_owned(),
            Flight {
                id,
                started: Instant::now(),
                waiters: Vec::new(),
                task: task.abort_handle(),
            },
        );
        None
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere (caught at the C boundary); the maps
        // are still consistent (every update is a single insert or remove).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A lookup ended: its answer serves the rest of this call; its waiters wake.
    fn land(&self, host: &str, id: u64, answer: Answer) {
        let mut state = self.lock();
        if state.flights.get(host).is_some_and(|f| f.id == id) {
            if let Some(flight) = state.flights.remove(host) {
                flight.waiters.into_iter().for_each(Waker::wake);
            }
        }
        state.answers.insert(host.to_owned(), answer);
    }

    /// Ready(Some) once the host has an answer, Ready(None) if its lookup vanished, else
    /// Pending (woken by `land`).
    fn poll_flight(&self, host: &str, cx: &mut std::task::Context<'_>) -> Poll<Option<Answer>> {
        let mut state = self.lock();
        if let Some(answer) = state.answers.get(host) {
            return Poll::Ready(Some(answer.clone()));
        }
        match state.flights.get_mut(host) {
            Some(flight) => {
                if !flight.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    flight.waiters.push(cx.waker().clone());
                }
                Poll::Pending
            }
            None => Poll::Ready(None),
        }
    }
}

/// What a failure message says about the resolver's configuration.
struct Context {
    servers: String,
    conf_problem: Option<String>,
    timeout: Duration,
    attempts: usize,
}

impl Context {
    fn failure(&self, host: &str, reason: &str) -> Failure {
        let detail = if reason.starts_with("DNS did not answer") {
            format!(
                "{reason} (nameservers {}; timeout {} s, attempts {})",
                self.servers,
                self.timeout.as_secs(),
                self.attempts
            )
        } else {
            reason.to_owned()
        };
        let conf = self
            .conf_problem
            .as_deref()
            .map(|p| format!("; {p}"))
            .unwrap_or_default();
        Failure {
            message: format!(
                "cannot resolve {host}: {detail}{conf}; check the host name (endpoint=, \
                 AWS_ENDPOINT_URL_EC2, AWS_EC2_METADATA_SERVICE_ENDPOINT) and the DNS servers in \
                 {RESOLV_CONF}"
            ),
        }
    }
}

/// The reason of a failed lookup, in words.
fn reason(e: &NetError) -> String {
    if e.is_nx_domain() {
        return "no such host (NXDOMAIN)".to_owned();
    }
    if e.is_no_records_found() {
        return "no address record (A/AAAA)".to_owned();
    }
    match e {
        NetError::Timeout => "DNS did not answer".to_owned(),
        NetError::Dns(DnsError::ResponseCode(code)) => format!("the DNS server answered {code}"),
        NetError::NoConnections | NetError::Io(_) => format!("no DNS server reachable ({e})"),
        other => {
            let text = other.to_string();
            if text.contains("timed out") {
                "DNS did not answer".to_owned()
            } else {
                format!("DNS failed ({text})")
            }
        }
    }
}

impl System {
    fn read() -> System {
        let stamp = stamp();
        let hosts = std::fs::read_to_string(HOSTS)
            .map(|text| parse_hosts(&text))
            .unwrap_or_default();
        System::from_resolv_conf(
            std::fs::read(RESOLV_CONF).map_err(|e| e.to_string()),
            hosts,
            stamp,
        )
    }

    /// From the bytes of resolv.conf (or why it could not be read).
    fn from_resolv_conf(
        resolv_conf: Result<Vec<u8>, String>,
        hosts: HashMap<String, Vec<IpAddr>>,
        stamp: Stamp,
    ) -> System {
        let parsed = resolv_conf.and_then(|bytes| {
            hickory_resolver::system_conf::parse_resolv_conf(bytes).map_err(|e| e.to_string())
        });
        match parsed {
            Ok((config, options)) => {
                let servers = config
                    .name_servers()
                    .iter()
                    .map(|s| s.ip.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                let servers = format!("{servers} from {RESOLV_CONF}");
                System::with_config(config, options, servers, None, hosts, stamp)
            }
            // glibc's fallback when resolv.conf is missing or names no server: the local host.
            Err(problem) => System::with_config(
                ResolverConfig::from_name_servers(vec![NameServerConfig::udp_and_tcp(
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                )]),
                ResolverOpts::default(),
                "127.0.0.1 (the default)".to_owned(),
                Some(format!(
                    "{RESOLV_CONF} could not be used ({problem}), so 127.0.0.1 was asked as glibc does"
                )),
                hosts,
                stamp,
            ),
        }
    }

    fn with_config(
        config: ResolverConfig,
        mut options: ResolverOpts,
        servers: String,
        conf_problem: Option<String>,
        hosts: HashMap<String, Vec<IpAddr>>,
        stamp: Stamp,
    ) -> System {
        // The hosts file is ours (exact names, as glibc's `files`); search domains must not
        // send a name that is in it to DNS first.
        options.use_hosts_file = ResolveHosts::Never;
        // A first, AAAA only without A: a resolver that drops AAAA questions costs nothing
        // when the name has an A record.
        options.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
        options.cache_size = CACHE_SIZE;
        options.negative_max_ttl = Some(NEGATIVE_MAX_TTL);
        let (timeout, attempts) = (options.timeout, options.attempts);
        let built = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build();
        let (dns, conf_problem) = match built {
            Ok(dns) => (Some(dns), conf_problem),
            Err(e) => (
                None,
                Some(format!("the DNS resolver could not be set up ({e})")),
            ),
        };
        System {
            dns,
            hosts,
            servers,
            conf_problem,
            timeout,
            attempts,
            stamp,
        }
    }
}

/// `/etc/hosts`: "address name [aliases...]", `#` comments. Names lower case; v4 first.
fn parse_hosts(text: &str) -> HashMap<String, Vec<IpAddr>> {
    let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let Some(Ok(ip)) = fields.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        for name in fields {
            let ips = map.entry(normalize(name)).or_default();
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    }
    for ips in map.values_mut() {
        ips.sort_by_key(IpAddr::is_ipv6);
    }
    map
}

fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// "10.0.0.1", "::1" or "[::1]".
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

impl ResolveDns for Resolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        DnsFuture::new(async move { self.lookup(name).await.map_err(ResolveDnsError::new) })
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("Resolver")
            .field("servers", &state.system.servers)
            .field("hosts", &state.system.hosts.len())
            .field("answers", &state.answers.len())
            .field("flights", &state.flights.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_lines_are_parsed_as_glibc_reads_them() {
        let hosts = parse_hosts(
            "127.0.0.1 localhost\n::1 localhost ip6-localhost # v6\n# 10.0.0.1 commented\n\
             10.1.2.3\tEC2.Example.internal. ec2-alias\nnot-an-ip name\nfe80::1%eth0 zoned\n",
        );
        assert_eq!(
            hosts.get("localhost"),
            Some(&vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ])
        );
        assert_eq!(
            hosts.get("ec2.example.internal"),
            Some(&vec!["10.1.2.3".parse::<IpAddr>().unwrap()])
        );
        assert!(hosts.contains_key("ec2-alias"));
        assert!(!hosts.contains_key("name"));
        assert!(
            !hosts.contains_key("zoned"),
            "a zone index is not an address"
        );
        assert!(!hosts.contains_key("10.0.0.1"));
    }

    #[test]
    fn ip_literals_never_need_dns() {
        assert_eq!(ip_literal("10.0.0.1"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(
            ip_literal("[fd00:ec2::254]"),
            Some("fd00:ec2::254".parse().unwrap())
        );
        assert_eq!(ip_literal("ec2.us-east-1.amazonaws.com"), None);
        // Answered without a runtime: nothing is spawned for a literal.
        let r = Resolver::from_system();
        let answer = futures_util::FutureExt::now_or_never(r.lookup("127.0.0.1"));
        assert_eq!(answer, Some(Ok(vec!["127.0.0.1".parse().unwrap()])));
    }

    #[test]
    fn failures_name_the_host_and_what_to_check() {
        let context = Context {
            servers: "127.0.0.2 from /etc/resolv.conf".into(),
            conf_problem: None,
            timeout: Duration::from_secs(5),
            attempts: 2,
        };
        let f = context.failure("ec2.example.invalid", "no such host (NXDOMAIN)");
        assert!(f
            .message
            .starts_with("cannot resolve ec2.example.invalid: no such host (NXDOMAIN)"));
        assert!(f.message.contains("endpoint="), "{f}");
        let f = context.failure("ec2.example.invalid", "DNS did not answer");
        assert!(
            f.message
                .contains("127.0.0.2 from /etc/resolv.conf; timeout 5 s, attempts 2"),
            "{f}"
        );
    }

    /// A DNS server on 127.0.0.1 for the tests below: `svc.test` has A 127.0.0.9 with TTL 0
    /// (so hickory's cache keeps nothing), `gone.test` is NXDOMAIN, `silent.test` never gets
    /// an answer. Counts the questions per name.
    struct TestServer {
        port: u16,
        questions: Arc<Mutex<HashMap<String, usize>>>,
    }

    impl TestServer {
        fn start() -> TestServer {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            socket
                .set_read_timeout(Some(Duration::from_secs(30)))
                .expect("timeout");
            let port = socket.local_addr().expect("addr").port();
            let questions = Arc::new(Mutex::new(HashMap::new()));
            let counted = Arc::clone(&questions);
            std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                while let Ok((n, peer)) = socket.recv_from(&mut buf) {
                    let msg = &buf[..n];
                    let (mut labels, mut i) = (Vec::new(), 12);
                    while i < n && msg[i] != 0 {
                        let len = usize::from(msg[i]);
                        labels
                            .push(String::from_utf8_lossy(&msg[i + 1..i + 1 + len]).to_lowercase());
                        i += 1 + len;
                    }
                    let end = i + 5; // the root label, QTYPE, QCLASS
                    let name = labels.join(".");
                    *counted.lock().unwrap().entry(name.clone()).or_insert(0) += 1;
                    let (rcode, answer): (u8, &[u8]) = match name.as_str() {
                        "svc.test" => (0, &[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 9]),
                        "gone.test" => (3, &[]),
                        _ => continue,
                    };
                    let mut reply = vec![msg[0], msg[1], 0x81, 0x80 | rcode, 0, 1, 0];
                    reply.push(u8::from(!answer.is_empty()));
                    reply.extend([0, 0, 0, 0]);
                    reply.extend(&msg[12..end]);
                    reply.extend(answer);
                    let _ = socket.send_to(&reply, peer);
                }
            });
            TestServer { port, questions }
        }

        fn asked(&self, name: &str) -> usize {
            self.questions
                .lock()
                .unwrap()
                .get(name)
                .copied()
                .unwrap_or(0)
        }

        fn resolver(&self) -> Resolver {
            let mut server = NameServerConfig::udp_and_tcp(IpAddr::V4(Ipv4Addr::LOCALHOST));
            for c in &mut server.connections {
                c.port = self.port;
            }
            let hosts = parse_hosts("127.0.0.7 pinned.test\n");
            Resolver::with_system(System::with_config(
                ResolverConfig::from_name_servers(vec![server]),
                ResolverOpts::default(),
                format!("127.0.0.1:{}", self.port),
                None,
                hosts,
                stamp(), // the files as they are: begin_call keeps this configuration
            ))
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn one_question_per_host_per_call_however_many_connections_ask() {
        let server = TestServer::start();
        let r = server.resolver();
        let rt = runtime();
        let svc: Vec<IpAddr> = vec!["127.0.0.9".parse().unwrap()];
        // Eight connections of one call at once: one question.
        let answers = rt.block_on(futures_util::future::join_all(
            (0..8).map(|_| r.lookup("svc.test")),
        ));
        assert!(
            answers.iter().all(|a| a.as_ref() == Ok(&svc)),
            "{answers:?}"
        );
        assert_eq!(server.asked("svc.test"), 1);
        // Later in the same call (TTL 0, so not hickory's cache): no question.
        assert_eq!(rt.block_on(r.lookup("SVC.test.")), Ok(svc.clone()));
        assert_eq!(server.asked("svc.test"), 1);
        // The next call asks again.
        r.begin_call();
        assert_eq!(rt.block_on(r.lookup("svc.test")), Ok(svc));
        assert_eq!(server.asked("svc.test"), 2);
        // The hosts file and literals never ask.
        assert_eq!(
            rt.block_on(r.lookup("pinned.test")),
            Ok(vec!["127.0.0.7".parse().unwrap()])
        );
        assert_eq!(server.asked("pinned.test"), 0);
    }

    #[test]
    fn nxdomain_names_the_host_and_is_asked_once_per_call() {
        let server = TestServer::start();
        let r = server.resolver();
        let rt = runtime();
        for _ in 0..3 {
            let e = rt.block_on(r.lookup("gone.test")).expect_err("NXDOMAIN");
            assert!(
                e.message
                    .starts_with("cannot resolve gone.test: no such host (NXDOMAIN)"),
                "{e}"
            );
        }
        // A, then AAAA since A found nothing; then the call's answer serves.
        assert_eq!(server.asked("gone.test"), 2);
    }

    #[test]
    fn a_server_that_never_answers_leaves_the_deadline_in_charge_and_is_named() {
        let server = TestServer::start();
        let r = server.resolver();
        let rt = runtime();
        let t0 = Instant::now();
        let waited = rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(300), r.lookup("silent.test")).await
        });
        assert!(waited.is_err(), "answered: {waited:?}");
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        let note = r.unanswered().expect("a lookup is waiting");
        assert!(
            note.starts_with("DNS did not answer for silent.test within"),
            "{note}"
        );
        // The next call forgets it (and asks again when it needs the name).
        r.begin_call();
        assert_eq!(r.unanswered(), None);
    }

    #[test]
    fn an_unusable_resolv_conf_falls_back_to_the_local_host_as_glibc_does() {
        for conf in [
            Ok(b"# no nameserver line\n".to_vec()),
            Err("No such file or directory".to_owned()),
        ] {
            let system = System::from_resolv_conf(conf, HashMap::new(), stamp());
            assert_eq!(system.servers, "127.0.0.1 (the default)");
            let problem = system
                .conf_problem
                .expect("the problem is kept for messages");
            assert!(
                problem.starts_with("/etc/resolv.conf could not be used ("),
                "{problem}"
            );
            assert!(system.dns.is_some());
        }
    }
}
