//! The test world: moto's EC2 server (one per test binary), IMDSv2 stand-ins (one per member),
//! worlds built in moto by `tests/support/world.py`, and the `zfhost` callout host that loads
//! the built `.so` the way IRIS does, one process per IRIS process.
#![allow(dead_code)]

pub mod zfhost;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const VIP: &str = "192.168.240.10";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// target/<profile>: where the test binary, the `.so` and the examples are.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

pub fn library() -> PathBuf {
    profile_dir().join("libirisvip.so")
}

pub fn zfhost_bin() -> PathBuf {
    profile_dir().join("examples").join("zfhost")
}

pub fn python() -> PathBuf {
    std::env::var_os("IRISVIP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"))
}

/// Children die with the test process (not with the thread that started them: see `moto`).
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        })
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_for_port(port: u16, what: &str) {
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// moto's EC2 server for this test binary. Started from a thread that lives as long as the
/// process, because PR_SET_PDEATHSIG fires when the *starting thread* ends.
pub fn moto() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        if let Ok(url) = std::env::var("IRISVIP_MOTO_ENDPOINT") {
            return url;
        }
        let port = free_port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let bin = python().with_file_name("moto_server");
            let child = die_with_parent(Command::new(&bin).args([
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
            let _ = tx.send(child.map(|_| ()).map_err(|e| {
                format!(
                    "{}: {e} (run `make test`, which installs it)",
                    bin.display()
                )
            }));
            loop {
                std::thread::park();
            }
        });
        rx.recv()
            .expect("moto starter")
            .expect("moto_server starts");
        wait_for_port(port, "moto_server");
        format!("http://127.0.0.1:{port}")
    })
}

/// A member's IMDSv2 stand-in; stopped when dropped.
pub struct Imds {
    child: Child,
    pub port: u16,
}

impl Imds {
    pub fn start(m: &Member, world: &World, extra: &[&str]) -> Imds {
        let mut cmd = Command::new(python());
        cmd.arg(repo().join("tests/support/imds.py"))
            .args([
                "--instance-id",
                &m.instance_id,
                "--mac",
                &m.mac,
                "--eni",
                &m.eni,
                "--vpc",
                &world.vpc,
            ])
            .args([
                "--subnet",
                &m.subnet,
                "--region",
                &world.region,
                "--az",
                &m.az,
                "--local-ipv4",
                &m.private_ip,
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = die_with_parent(&mut cmd).spawn().expect("imds.py starts");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("imds.py prints its port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .expect("PORT <n>");
        Imds { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stats(&self) -> Value {
        http_get_json(self.port, "/_stats")
    }
}

impl Drop for Imds {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal HTTP GET on loopback (for the stand-ins' /_stats).
pub fn http_get_json(port: u16, path: &str) -> Value {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("send");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read");
    let json = body.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(json).expect("JSON body")
}

#[derive(Debug, Clone)]
pub struct Member {
    pub instance_id: String,
    pub eni: String,
    pub mac: String,
    pub subnet: String,
    pub az: String,
    pub private_ip: String,
}

/// A VPC in moto with two members in two AZs and some route tables.
#[derive(Debug, Clone)]
pub struct World {
    pub endpoint: String,
    pub region: String,
    pub vpc: String,
    pub cidr: String,
    /// The VPC's IPv6 block, when created with `--ipv6`.
    pub ipv6_cidr: Option<String>,
    pub a: Member,
    pub b: Member,
    pub route_tables: Vec<String>,
    pub tagged: Vec<String>,
    /// Member a's secondary private IP, when created with `--secondary-ip`.
    pub secondary_ip: Option<SecondaryIp>,
    /// An Elastic IP, not associated, when created with `--eip`.
    pub eip: Option<ElasticIp>,
}

/// A secondary private IPv4 address of member a (`world.py create --secondary-ip`).
#[derive(Debug, Clone)]
pub struct SecondaryIp {
    pub ip: String,
    /// The ENI that held it when the world was made (member a's).
    pub eni: String,
    pub subnet: String,
    pub cidr: String,
}

/// An Elastic IP of the world (`world.py create --eip`).
#[derive(Debug, Clone)]
pub struct ElasticIp {
    pub allocation_id: String,
    pub public_ip: String,
}

fn member(v: &Value) -> Member {
    let s = |k: &str| {
        v[k].as_str()
            .unwrap_or_else(|| panic!("world member lacks {k}"))
            .to_owned()
    };
    Member {
        instance_id: s("instance_id"),
        eni: s("eni"),
        mac: s("mac"),
        subnet: s("subnet"),
        az: s("az"),
        private_ip: s("private_ip"),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub fn world_py(args: &[&str]) -> Value {
    let out = Command::new(python())
        .arg(repo().join("tests/support/world.py"))
        .args(args)
        .output()
        .expect("world.py runs");
    assert!(
        out.status.success(),
        "world.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

impl World {
    /// A new world with `tables` route tables (the main one plus extras).
    pub fn create(tables: usize, extra: &[&str]) -> World {
        static NEXT: AtomicU32 = AtomicU32::new(20);
        let index = NEXT.fetch_add(1, Ordering::Relaxed) % 200 + 20;
        let mut args = vec!["create", "--endpoint", moto()];
        let (t, i) = (tables.to_string(), index.to_string());
        args.extend(["--tables", &t, "--cidr-index", &i]);
        args.extend(extra);
        let v = world_py(&args);
        World {
            endpoint: moto().to_owned(),
            region: v["region"].as_str().unwrap_or("us-east-1").to_owned(),
            vpc: v["vpc"].as_str().expect("vpc").to_owned(),
            cidr: v["cidr"].as_str().expect("cidr").to_owned(),
            ipv6_cidr: v["ipv6_cidr"].as_str().map(str::to_owned),
            a: member(&v["a"]),
            b: member(&v["b"]),
            route_tables: strings(&v["route_tables"]),
            tagged: strings(&v["tagged"]),
            secondary_ip: v["secondary_ip"].as_object().map(|_| {
                let s = |k: &str| v["secondary_ip"][k].as_str().unwrap_or("").to_owned();
                SecondaryIp {
                    ip: s("ip"),
                    eni: s("eni"),
                    subnet: s("subnet"),
                    cidr: s("cidr"),
                }
            }),
            eip: v["eip"].as_object().map(|_| ElasticIp {
                allocation_id: v["eip"]["allocation_id"].as_str().unwrap_or("").to_owned(),
                public_ip: v["eip"]["public_ip"].as_str().unwrap_or("").to_owned(),
            }),
        }
    }

    /// The ENIs of this VPC that hold private IPv4 `ip` (primary or secondary), sorted, as moto
    /// holds them now: what `world.py holders --ip IP --vpc VPC` answers (every ENI of the VPC
    /// read, not moto's primary-only filter), read with one Query request instead of a Python
    /// start per read.
    pub fn holders(&self, ip: &str) -> Vec<String> {
        let xml = ec2_query(
            &self.endpoint,
            &[
                ("Action", "DescribeNetworkInterfaces"),
                ("Filter.1.Name", "vpc-id"),
                ("Filter.1.Value.1", &self.vpc),
            ],
        );
        let mut h: Vec<String> = xml_items(&xml, "networkInterfaceSet")
            .into_iter()
            .filter(|item| xml_all(item, "privateIpAddress").iter().any(|a| a == ip))
            .filter_map(|item| xml_text(item, "networkInterfaceId"))
            .collect();
        h.sort();
        h.dedup();
        h
    }

    /// `world.py holders`, for comparing with `holders`.
    pub fn holders_py(&self, ip: &str) -> Vec<String> {
        let v = world_py(&[
            "holders",
            "--endpoint",
            &self.endpoint,
            "--ip",
            ip,
            "--vpc",
            &self.vpc,
        ]);
        let mut h = strings(&v["holders"]);
        h.sort();
        h
    }

    /// `eni` holds `ip`, taken from any ENI that held it (as EC2 moves it), straight in moto.
    pub fn assign_ip(&self, eni: &str, ip: &str) -> Value {
        world_py(&[
            "assign-ip",
            "--endpoint",
            &self.endpoint,
            "--eni",
            eni,
            "--ip",
            ip,
        ])
    }

    pub fn unassign_ip(&self, eni: &str, ip: &str) -> Value {
        world_py(&[
            "unassign-ip",
            "--endpoint",
            &self.endpoint,
            "--eni",
            eni,
            "--ip",
            ip,
        ])
    }

    /// The Elastic IP `allocation_id` as `endpoint` describes it: {allocation_id, public_ip,
    /// association_id, eni, private_ip} (null when absent), what `world.py eip` answers, read
    /// with one Query request. Through an EC2 model proxy, `private_ip` is the one the
    /// association recorded; straight from moto, the ENI's primary.
    pub fn eip_at(&self, endpoint: &str, allocation_id: &str) -> Value {
        let xml = ec2_query(
            endpoint,
            &[
                ("Action", "DescribeAddresses"),
                ("AllocationId.1", allocation_id),
            ],
        );
        let items = xml_items(&xml, "addressesSet");
        assert_eq!(items.len(), 1, "DescribeAddresses {allocation_id}: {xml}");
        let item = items[0];
        let field = |tag: &str| match xml_text(item, tag) {
            Some(t) => Value::from(t),
            None => Value::Null,
        };
        serde_json::json!({
            "allocation_id": field("allocationId"),
            "public_ip": field("publicIp"),
            "association_id": field("associationId"),
            "eni": field("networkInterfaceId"),
            "private_ip": field("privateIpAddress"),
        })
    }

    /// `world.py eip`, for comparing with `eip_at`.
    pub fn eip_py(&self, endpoint: &str, allocation_id: &str) -> Value {
        world_py(&[
            "eip",
            "--endpoint",
            endpoint,
            "--allocation-id",
            allocation_id,
        ])
    }

    /// Associates (reassociates) the Elastic IP with `eni` through `endpoint`.
    pub fn associate_eip(
        &self,
        endpoint: &str,
        allocation_id: &str,
        eni: &str,
        private_ip: Option<&str>,
    ) -> Value {
        let mut args = vec![
            "associate-eip",
            "--endpoint",
            endpoint,
            "--allocation-id",
            allocation_id,
            "--eni",
            eni,
        ];
        if let Some(ip) = private_ip {
            args.extend(["--private-ip", ip]);
        }
        world_py(&args)
    }

    pub fn disassociate_eip(&self, endpoint: &str, allocation_id: &str) -> Value {
        world_py(&[
            "disassociate-eip",
            "--endpoint",
            endpoint,
            "--allocation-id",
            allocation_id,
        ])
    }

    /// Target ENI (or None) of the VIP route per table, as moto holds it now.
    pub fn routes(&self, vip: &str) -> Vec<Option<String>> {
        let mut args = vec!["routes", "--endpoint", &self.endpoint, "--vip", vip];
        args.extend(self.route_tables.iter().map(String::as_str));
        let v = world_py(&args);
        self.route_tables
            .iter()
            .map(|t| v[t]["target"].as_str().map(str::to_owned))
            .collect()
    }

    pub fn set_route(&self, table: &str, eni: &str, vip: &str) {
        world_py(&[
            "set-route",
            "--endpoint",
            &self.endpoint,
            "--vip",
            vip,
            "--table",
            table,
            "--eni",
            eni,
        ]);
    }

    pub fn delete_route(&self, table: &str, vip: &str) {
        world_py(&[
            "delete-route",
            "--endpoint",
            &self.endpoint,
            "--vip",
            vip,
            "--table",
            table,
        ]);
    }
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One EC2 Query request (`Version` added) to `endpoint` (moto, or a fault proxy in front of
/// it) on loopback; answers the XML body (the status must be 200). moto checks no signature but
/// takes the service and region from the Authorization header's credential scope; the proxy's
/// model takes the account and region from it too.
pub fn ec2_query(endpoint: &str, params: &[(&str, &str)]) -> String {
    use std::io::{Read, Write};
    let port: u16 = endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {endpoint}"));
    let body = std::iter::once(("Version", "2016-11-15"))
        .chain(params.iter().copied())
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to EC2");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    write!(
        s,
        "POST / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    let (head, xml) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "EC2 query {params:?}: {head}\n{xml}"
    );
    // The model re-serializes some answers with ElementTree, which may prefix the namespace.
    xml.replace("<ns0:", "<").replace("</ns0:", "</")
}

/// The top-level `<item>` elements (their inner text) of the first `<set>` element of `xml`.
pub fn xml_items<'a>(xml: &'a str, set: &str) -> Vec<&'a str> {
    let open = format!("<{set}>");
    let Some(start) = xml.find(&open).map(|i| i + open.len()) else {
        return Vec::new(); // `<set/>`: empty
    };
    let mut items = Vec::new();
    let (mut depth, mut item_start, mut i) = (0usize, 0usize, start);
    while i < xml.len() {
        let rest = &xml[i..];
        if rest.starts_with("<item>") {
            if depth == 0 {
                item_start = i + "<item>".len();
            }
            depth += 1;
            i += "<item>".len();
        } else if rest.starts_with("</item>") {
            depth -= 1;
            if depth == 0 {
                items.push(&xml[item_start..i]);
            }
            i += "</item>".len();
        } else if depth == 0 && rest.starts_with("</") {
            break; // the set's end
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    items
}

/// The text of every `<tag>text</tag>` in `xml` (an empty `<tag/>` has none).
pub fn xml_all(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(after[..j].to_owned());
        rest = &after[j + close.len()..];
    }
    out
}

/// The text of the first non-empty `<tag>` in `xml`.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    xml_all(xml, tag).into_iter().find(|t| !t.trim().is_empty())
}

/// One IRIS member: its IMDS stand-in and the environment its processes run with.
pub struct Node {
    pub member: Member,
    pub imds: Imds,
    pub env: Vec<(String, String)>,
}

impl Node {
    pub fn new(world: &World, m: &Member) -> Node {
        Self::with_imds_args(world, m, &[])
    }

    pub fn with_imds_args(world: &World, m: &Member, imds_args: &[&str]) -> Node {
        let imds = Imds::start(m, world, imds_args);
        let env = vec![
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT".to_owned(), imds.url()),
            ("AWS_ENDPOINT_URL_EC2".to_owned(), world.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".to_owned(), "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "testing".to_owned()),
        ];
        Node {
            member: m.clone(),
            imds,
            env,
        }
    }

    /// A `zfhost` command for this member: hermetic AWS environment (region from IMDS).
    pub fn host(&self) -> Command {
        let mut cmd = Command::new(zfhost_bin());
        for k in [
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_SESSION_TOKEN",
            "AWS_EC2_METADATA_DISABLED",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        ] {
            cmd.env_remove(k);
        }
        cmd.env("AWS_CONFIG_FILE", "/nonexistent/irisvip-test-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/irisvip-test-credentials",
            );
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs zfhost with `args` and returns its JSON lines (after the load line).
    pub fn run(&self, args: &[&str]) -> Vec<Value> {
        lines(&self.host().args(args).output().expect("zfhost runs"))
    }

    /// One call in a fresh process; asserts the ABI promises and returns the result JSON.
    pub fn call(&self, entry: &str, config: &str) -> Value {
        let lines = self.run(&["call", entry, config]);
        result_of(&lines[0])
    }

    pub fn claim(&self, config: &str) -> Value {
        self.call("vip_claim", config)
    }
    pub fn release(&self, config: &str) -> Value {
        self.call("vip_release", config)
    }
    pub fn status(&self, config: &str) -> Value {
        self.call("vip_status", config)
    }
}

/// zfhost's output lines, the load line dropped.
pub fn lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "zfhost failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("zfhost line {l:?}: {e}")))
        .collect();
    assert_eq!(v[0]["cmd"], "load");
    v[1..].to_vec()
}

/// Checks the ABI promises of one call line and parses its result.
pub fn result_of(line: &Value) -> Value {
    assert_eq!(line["cmd"], "call", "{line}");
    assert_eq!(
        line["rc"], 0,
        "every entry returns ZF_SUCCESS once it wrote a result: {line}"
    );
    assert_eq!(line["guard_intact"], true, "wrote past zfstrsize(): {line}");
    assert_eq!(
        line["nul_within_capacity"], true,
        "no NUL within capacity: {line}"
    );
    assert_eq!(line["threads_after"], 1, "a thread was left behind: {line}");
    let out = line["output"].as_str().expect("output");
    serde_json::from_str(out).unwrap_or_else(|e| panic!("result is not JSON ({e}): {out}"))
}

/// Configuration text for a member's call, with the world's VIP.
pub fn cfg(extra: &str) -> String {
    if extra.is_empty() {
        format!("vip={VIP}")
    } else {
        format!("vip={VIP};{extra}")
    }
}

pub fn actions(result: &Value) -> Vec<String> {
    result["route_tables"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| t["action"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub fn kind(result: &Value) -> &str {
    result["error"]["kind"].as_str().unwrap_or("")
}

/// The contract's "scheduling slack" on top of `timeout_ms`.
pub const DEADLINE_SLACK_MS: f64 = 1000.0;

/// One call in a fresh zfhost process (`cmd`, e.g. `Node::host()`), killed (test failed) if it
/// hangs: checks the ABI promises (`result_of`), that it returned within `timeout_ms` plus
/// `DEADLINE_SLACK_MS`, and that an `ok` result has no error. Returns (zfhost line, result).
pub fn call_within(mut cmd: Command, entry: &str, config: &str, timeout_ms: u64) -> (Value, Value) {
    let out = output_within(
        cmd.args(["call", entry, config]),
        Duration::from_millis(timeout_ms + 20_000),
    );
    let line = lines(&out).remove(0);
    let r = result_of(&line);
    let ms = line["ms"].as_f64().unwrap_or(f64::MAX);
    assert!(
        ms <= timeout_ms as f64 + DEADLINE_SLACK_MS,
        "{entry} took {ms:.0} ms with timeout_ms={timeout_ms}: {r}"
    );
    if r["ok"] == true {
        assert!(r.get("error").is_none(), "ok with an error: {r}");
    }
    (line, r)
}

/// The preflight item `name` of a `vip_check` result.
pub fn check_item<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {r}"))
}

/// Some warning of `r` contains every one of `parts`.
pub fn warned(r: &Value, parts: &[&str]) -> bool {
    r["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|w| parts.iter().all(|p| w.contains(p)))
}

// ---- Helpers for the reliability tests (faults, races, fuzz_abi) --------------------------

/// A child that prints "PORT <n>" on its first stdout line (the Python stand-ins).
pub fn spawn_with_port(cmd: &mut Command, what: &str) -> (Child, u16) {
    let (child, ports) = spawn_with_ports(cmd, what, &["PORT"]);
    (child, ports[0])
}

/// A child that prints one "<LABEL> <n>" line per label, in order, on its stdout.
fn spawn_with_ports(cmd: &mut Command, what: &str, labels: &[&str]) -> (Child, Vec<u16>) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = die_with_parent(cmd)
        .spawn()
        .unwrap_or_else(|e| panic!("{what} starts: {e}"));
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let ports = labels
        .iter()
        .map(|label| {
            let mut line = String::new();
            stdout
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("{what} prints its {label}: {e}"));
            line.trim()
                .strip_prefix(label)
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or_else(|| panic!("{what}: expected {label} <n>, got {line:?}"))
        })
        .collect();
    (child, ports)
}

/// Minimal HTTP/1.0 request on loopback with an optional JSON body; answers the JSON body.
pub fn http_json(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read");
    let (head, json) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{method} {path}: {head} {json}"
    );
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {json}"))
}

/// `tests/support/faultproxy.py` in front of `upstream` (moto or an IMDS stand-in); stopped
/// when dropped. Rules and log: see the script's docstring.
pub struct FaultProxy {
    child: Child,
    pub port: u16,
    tls_port: Option<u16>,
}

impl FaultProxy {
    /// `faultproxy.py --upstream <upstream>`, to which `start_tls` adds its options.
    fn command(upstream: &str) -> Command {
        let mut cmd = Command::new(python());
        cmd.arg(repo().join("tests/support/faultproxy.py"))
            .args(["--upstream", upstream]);
        cmd
    }

    pub fn start(upstream: &str) -> FaultProxy {
        let (child, port) = spawn_with_port(&mut Self::command(upstream), "faultproxy.py");
        FaultProxy {
            child,
            port,
            tls_port: None,
        }
    }

    /// As `start`, plus an HTTPS listener with a certificate for 127.0.0.1 issued by a
    /// throwaway CA (`tests/support/tlscerts.py`); returns the proxy and the CA's PEM file.
    pub fn start_tls(upstream: &str, dir: &Path) -> (FaultProxy, PathBuf) {
        let made = Command::new(python())
            .arg(repo().join("tests/support/tlscerts.py"))
            .arg(dir)
            .status()
            .expect("tlscerts.py runs");
        assert!(made.success(), "tlscerts.py failed: {made}");
        let mut cmd = Self::command(upstream);
        cmd.arg("--tls-cert")
            .arg(dir.join("server.pem"))
            .arg("--tls-key")
            .arg(dir.join("server.key"));
        let (child, ports) = spawn_with_ports(&mut cmd, "faultproxy.py", &["PORT", "TLSPORT"]);
        let proxy = FaultProxy {
            child,
            port: ports[0],
            tls_port: Some(ports[1]),
        };
        (proxy, dir.join("ca.pem"))
    }

    /// The HTTPS listener's URL (only after `start_tls`).
    pub fn tls_url(&self) -> String {
        let port = self.tls_port.expect("started with start_tls");
        format!("https://127.0.0.1:{port}")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replaces the rules (a JSON list) and empties the log.
    pub fn set(&self, rules: Value) {
        http_json(self.port, "POST", "/_faults", Some(&rules));
        http_json(self.port, "DELETE", "/_log", None);
    }

    /// Every request seen since the last `set`.
    pub fn log(&self) -> Vec<Value> {
        http_json(self.port, "GET", "/_log", None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// As `start`, with the EC2 model on from the first request (`--model`, docs/ec2-model.md).
    pub fn start_model(upstream: &str, cfg: &Value) -> FaultProxy {
        let mut cmd = Self::command(upstream);
        cmd.args(["--model", &cfg.to_string()]);
        let (child, port) = spawn_with_port(&mut cmd, "faultproxy.py");
        FaultProxy {
            child,
            port,
            tls_port: None,
        }
    }

    /// Turns the EC2 model on with `cfg` (fresh buckets and versions); answers its state.
    pub fn model(&self, cfg: Value) -> Value {
        http_json(self.port, "POST", "/_model", Some(&cfg))
    }

    /// The model's configuration, counters and bucket levels (`{"enabled": false, ..}` when off).
    pub fn model_stats(&self) -> Value {
        http_json(self.port, "GET", "/_model", None)
    }

    /// Turns the EC2 model off: plain forwarding again.
    pub fn model_off(&self) {
        http_json(self.port, "DELETE", "/_model", None);
    }

    /// Requests with EC2 Action `action` that reached the proxy (answered or not).
    pub fn attempts(&self, action: &str) -> usize {
        self.log().iter().filter(|e| e["action"] == action).count()
    }

    /// Requests with EC2 Action `action` and every parameter of `params` (equal), answered or not.
    pub fn attempts_with(&self, action: &str, params: &[(&str, &str)]) -> usize {
        self.log()
            .iter()
            .filter(|e| e["action"] == action && params.iter().all(|(k, v)| e["params"][*k] == *v))
            .count()
    }

    /// The EC2 actions of the log, in arrival order, with the fault that took each (for messages).
    pub fn compact_log(&self) -> String {
        self.log()
            .iter()
            .map(|e| {
                let action = e["action"].as_str().unwrap_or("?");
                match e["fault"].as_str() {
                    Some(f) => format!("{action}[{f}]"),
                    None => action.to_owned(),
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// As `attempts`, for one route table.
    pub fn attempts_on(&self, action: &str, table: &str) -> usize {
        self.log()
            .iter()
            .filter(|e| e["action"] == action && e["params"]["RouteTableId"] == table)
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to completion, killing it (and failing the test) after `limit`: a hang in the
/// library must fail a test, not stall the suite.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            // SAFETY: signalling our own child by pid.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("the process did not finish within {limit:?} (killed)");
        }
    }
}

/// A zfhost process kept warm in stdin mode (`zfhost -`): commands go in tab-separated, one
/// JSON line comes back per call. Killed when dropped.
pub struct WarmHost {
    child: Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
    pub load: Value,
}

impl WarmHost {
    /// Starts `cmd` (a zfhost command, e.g. `Node::host()`) with `-` appended.
    pub fn start(mut cmd: Command) -> WarmHost {
        let mut child = cmd
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("zfhost starts");
        let stdin = child.stdin.take().expect("stdin");
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
        let mut host = WarmHost {
            child,
            stdin,
            lines,
            load: Value::Null,
        };
        host.load = host.next(Duration::from_secs(30));
        assert_eq!(host.load["cmd"], "load", "{}", host.load);
        host
    }

    /// Writes one command (fields joined with tabs).
    pub fn send(&mut self, fields: &[&str]) {
        use std::io::Write;
        for f in fields {
            assert!(
                !f.contains(['\t', '\n']),
                "field {f:?} has a tab or newline"
            );
        }
        writeln!(self.stdin, "{}", fields.join("\t")).expect("zfhost stdin");
        self.stdin.flush().expect("flush");
    }

    /// The next output line, parsed; fails the test after `limit`.
    pub fn next(&mut self, limit: Duration) -> Value {
        let line = self
            .lines
            .recv_timeout(limit)
            .unwrap_or_else(|e| panic!("zfhost gave no line within {limit:?}: {e}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("zfhost line {line:?}: {e}"))
    }

    /// One call; returns its line (check it with `result_of`).
    pub fn call(&mut self, entry: &str, config: &str) -> Value {
        self.send(&["call", entry, config]);
        self.next(Duration::from_secs(60))
    }
}

impl Drop for WarmHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// A warm zfhost process for this member (stdin mode).
    pub fn warm(&self) -> WarmHost {
        WarmHost::start(self.host())
    }
}

/// The entry of route table `id` in a result (the order of `route_tables` is not the world's).
pub fn table<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["route_tables"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["id"] == id))
        .unwrap_or_else(|| panic!("no table {id} in {r}"))
}

/// The target per table of a result (`None` = absent), in the result's order.
pub fn targets(result: &Value) -> Vec<Option<String>> {
    result["route_tables"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| t["target"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A small deterministic PRNG (splitmix64) for seeded random tests, so no crate is needed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A seed from `var` (decimal) or `default`, printed so a failure can be replayed.
pub fn seed_from_env(var: &str, default: u64) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    eprintln!("{var}={seed}");
    seed
}

/// Samples `/proc/<pid>/task` of `child` every millisecond until it exits (60 s at most):
/// the most threads it ever had, how many samples were taken, and its output.
pub fn thread_peak(mut child: Child) -> (usize, usize, Output) {
    let task_dir = format!("/proc/{}/task", child.id());
    let (mut max, mut samples) = (0, 0);
    let t0 = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if let Ok(d) = std::fs::read_dir(&task_dir) {
            max = max.max(d.count());
            samples += 1;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "zfhost hung");
        std::thread::sleep(Duration::from_millis(1));
    }
    (max, samples, child.wait_with_output().expect("output"))
}
