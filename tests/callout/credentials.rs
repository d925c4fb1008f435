//! Where the region and the credentials come from, through the C ABI: `region=` given means no
//! instance-metadata request for the region; instance-profile credentials use IMDS for the
//! credentials only; container credentials (`AWS_CONTAINER_CREDENTIALS_FULL_URI`, as on ECS and
//! EKS Pod Identity) work without a thread in the host. IMDS sits behind the fault proxy, whose
//! log shows every request that reached it (logged on arrival, also when never answered).

use crate::common::*;
use serde_json::{json, Value};
use std::process::{Child, Command, Output};
use std::time::Duration;

/// Recognisable secrets: no output line may contain them.
const SECRET_KEY: &str = "irisvipCONTAINERsecretKEY/q7Lw2";
const SESSION_TOKEN: &str = "irisvipCONTAINERsessionTOKEN+9vRk";
const AUTH_TOKEN: &str = "irisvipCONTAINERauthTOKEN-3hJd";

/// `node` with its IMDS behind a fault proxy; returns the proxy.
fn behind_proxy(node: &mut Node) -> FaultProxy {
    let proxy = FaultProxy::start(&node.imds.url());
    for (k, v) in node.env.iter_mut() {
        if k == "AWS_EC2_METADATA_SERVICE_ENDPOINT" {
            *v = proxy.url();
        }
    }
    proxy
}

fn paths(log: &[Value]) -> Vec<String> {
    log.iter()
        .map(|e| e["path"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn no_secret(out: &Output) {
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        for (i, line) in text.lines().enumerate() {
            for secret in [SECRET_KEY, SESSION_TOKEN, AUTH_TOKEN] {
                assert!(
                    !line.contains(secret),
                    "{name} line {i} contains a secret: {line}"
                );
            }
        }
    }
}

#[test]
fn region_given_means_no_instance_metadata_request_for_it() {
    let w = World::create(1, &[]);
    let mut a = Node::new(&w, &w.a);
    let imds = behind_proxy(&mut a);
    // IMDS accepts connections and never answers: any request to it costs its 1 s timeout.
    imds.set(json!([{"fault": "hang", "max_s": 10, "count": -1}]));
    let config = cfg(&format!(
        "eni={};region={};timeout_ms=5000",
        w.a.eni, w.region
    ));
    // Static credentials in the environment (Node's), the first claim of a fresh process.
    let line = &a.run(&["call", "vip_claim", &config])[0];
    let r = result_of(line);
    let ms = line["ms"].as_f64().unwrap_or(f64::MAX);
    eprintln!("credentials: first claim, region= and eni= given, IMDS hanging: {ms:.0} ms");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone())]);
    let log = imds.log();
    assert!(log.is_empty(), "IMDS was asked: {:?}", paths(&log));
    assert!(ms < 900.0, "the first claim took {ms:.0} ms");
}

#[test]
fn instance_profile_credentials_use_imds_for_the_credentials_only() {
    let w = World::create(1, &[]);
    let mut a = Node::with_imds_args(&w, &w.a, &["--credentials"]);
    let imds = behind_proxy(&mut a);
    imds.set(json!([]));
    let config = cfg(&format!(
        "eni={};region={};timeout_ms=5000",
        w.a.eni, w.region
    ));
    let out = a
        .host()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .args(["call", "vip_claim", &config])
        .output()
        .expect("zfhost");
    let r = result_of(&lines(&out)[0]);
    assert_eq!(r["ok"], true, "{r}");
    let seen = paths(&imds.log());
    assert!(
        seen.iter()
            .any(|p| p.starts_with("/latest/meta-data/iam/security-credentials")),
        "the credentials did not come from IMDS: {seen:?}"
    );
    for p in &seen {
        assert!(
            p == "/latest/api/token" || p.starts_with("/latest/meta-data/iam/"),
            "IMDS asked for {p} although region= and eni= are given: {seen:?}"
        );
    }
}

/// `tests/support/containercreds.py`; killed when dropped.
struct ContainerCreds {
    child: Child,
    port: u16,
}

impl ContainerCreds {
    fn start() -> ContainerCreds {
        let mut cmd = Command::new(python());
        cmd.arg(repo().join("tests/support/containercreds.py"))
            .args(["--secret-key", SECRET_KEY, "--session-token", SESSION_TOKEN])
            .args(["--token", AUTH_TOKEN]);
        let (child, port) = spawn_with_port(&mut cmd, "containercreds.py");
        ContainerCreds { child, port }
    }

    fn stats(&self) -> Value {
        http_get_json(self.port, "/_stats")
    }
}

impl Drop for ContainerCreds {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn container_credentials_work_without_a_thread() {
    let w = World::create(1, &[]);
    let a = Node::new(&w, &w.a); // its IMDS serves no credentials
    let creds = ContainerCreds::start();
    let config = cfg(&format!(
        "eni={};region={};timeout_ms=5000",
        w.a.eni, w.region
    ));
    let mut cmd = a.host();
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        // A host name, as ECS and EKS give: the SDK checks that it resolves to a loopback or
        // container address before it asks (with its own resolver, a thread, unless given ours).
        .env(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("http://localhost:{}/creds", creds.port),
        )
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", AUTH_TOKEN);
    let out = output_within(
        cmd.args(["call", "vip_claim", &config, "call", "vip_status", &config]),
        Duration::from_secs(30),
    );
    no_secret(&out);
    let calls = lines(&out);
    // result_of checks threads_after == 1 for each call.
    let claim = result_of(&calls[0]);
    eprintln!(
        "credentials: first claim with container credentials: {:.0} ms",
        calls[0]["ms"].as_f64().unwrap_or(-1.0)
    );
    assert_eq!(claim["ok"], true, "{claim}");
    let status = result_of(&calls[1]);
    assert_eq!(status["ok"], true, "{status}");
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone())]);
    let stats = creds.stats();
    assert!(
        stats["authorized"].as_u64().unwrap_or(0) >= 1,
        "the stand-in was not asked with the token: {stats}"
    );
    assert_eq!(stats["unauthorized"], 0, "{stats}");
    assert!(
        stats["paths"]
            .as_array()
            .is_some_and(|p| p.iter().all(|p| p == "/creds")),
        "{stats}"
    );
    // The chain stopped at the container provider: instance metadata was never asked.
    let imds = a.imds.stats();
    assert_eq!(imds["token_puts"], 0, "{imds}");
    assert_eq!(imds["gets"], 0, "{imds}");
}
