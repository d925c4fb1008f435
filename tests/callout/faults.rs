//! Faults between the library and EC2 / IMDS, injected by `tests/support/faultproxy.py`, through
//! the C ABI. Every call returns within `timeout_ms` plus slack whatever the fault, leaves no
//! thread, retries what is transient and only that, never reports a partial change as success,
//! and never prints a secret. After every scenario, moto's routes are checked: none lost, none
//! pointing anywhere unexpected.

use crate::common::*;
use serde_json::{json, Value};
use std::process::{Command, Output};
use std::time::Duration;

/// Recognisable secrets: no output line may ever contain them.
const SECRET_KEY: &str = "irisvipFAULTsecretKEY/Zq81xW0c9";
const SESSION_TOKEN: &str = "irisvipFAULTsessionTOKEN+Tk55wQ7";
/// The contract's "scheduling slack" (as in process.rs).
const SLACK_MS: f64 = 1000.0;
/// What real EC2 says on a denied call: the action is NOT named (only in the encoded blob).
const DENIED: &str =
    "You are not authorized to perform this operation. Encoded authorization failure message: \
                      4ZgXsbLkQ0AmT3vC8yTq1n0x";

fn no_secret(out: &Output) {
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        for (i, line) in text.lines().enumerate() {
            assert!(
                !line.contains(SECRET_KEY) && !line.contains(SESSION_TOKEN),
                "{name} line {i} contains a secret: {line}"
            );
        }
    }
}

/// A zfhost command for `node` with the recognisable secrets as its credentials.
fn host(node: &Node) -> Command {
    let mut cmd = node.host();
    cmd.env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_SESSION_TOKEN", SESSION_TOKEN);
    cmd
}

/// One call in a fresh process: checks the deadline, the ABI promises (result_of: rc, guard,
/// NUL, threads_after == 1) and that no secret shows; returns (zfhost line, result).
fn call(mut cmd: Command, entry: &str, config: &str, timeout_ms: u64) -> (Value, Value) {
    let out = output_within(
        cmd.args(["call", entry, config]),
        Duration::from_millis(timeout_ms + 20_000),
    );
    no_secret(&out);
    let line = lines(&out).remove(0);
    let r = result_of(&line);
    let ms = line["ms"].as_f64().unwrap_or(f64::MAX);
    assert!(
        ms <= timeout_ms as f64 + SLACK_MS,
        "{entry} took {ms:.0} ms with timeout_ms={timeout_ms}: {r}"
    );
    if r["ok"] == true {
        assert!(r.get("error").is_none(), "ok with an error: {r}");
    }
    (line, r)
}

fn ec2_cfg(proxy: &FaultProxy, extra: &str) -> String {
    cfg(&format!("endpoint={};{extra}", proxy.url()))
}

/// A claim by `node` through the EC2 proxy, with 8 s for the retries to play out.
fn claim_through(node: &Node, ec2: &FaultProxy) -> Value {
    call(
        host(node),
        "vip_claim",
        &ec2_cfg(ec2, "timeout_ms=8000"),
        8000,
    )
    .1
}

fn message(r: &Value) -> &str {
    r["error"]["message"].as_str().unwrap_or("")
}

/// `entry` by `node` while EC2 denies `action` every time: the call fails as a permission
/// error that names the missing `ec2:` action. Returns the result.
fn denied(ec2: &FaultProxy, node: &Node, entry: &str, action: &str) -> Value {
    ec2.set(json!([
        {"action": action, "fault": "unauthorized", "message": DENIED, "count": -1},
    ]));
    let (_, r) = call(host(node), entry, &ec2_cfg(ec2, "timeout_ms=5000"), 5000);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "permission", "{r}");
    assert!(message(&r).contains(&format!("ec2:{action}")), "{r}");
    r
}

#[test]
fn transient_faults_are_retried_and_the_claim_succeeds() {
    let w = World::create(2, &[]);
    let a = Node::new(&w, &w.a);
    let (t0, t1) = (&w.route_tables[0], &w.route_tables[1]);
    w.set_route(t0, &w.b.eni, VIP);
    let ec2 = FaultProxy::start(&w.endpoint);
    ec2.set(json!([
        {"action": "DescribeVpcs", "fault": "throttle", "code": "Throttling", "count": 1},
        {"action": "DescribeRouteTables", "fault": "status", "status": 503, "count": 1},
        {"action": "ReplaceRoute", "fault": "throttle", "code": "RequestLimitExceeded", "count": 2},
        {"action": "CreateRoute", "fault": "reset", "count": 1},
    ]));
    let r = claim_through(&a, &ec2);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(table(&r, t0)["action"], "replaced", "{r}");
    assert_eq!(table(&r, t1)["action"], "created", "{r}");
    assert_eq!(r["holder"], "self", "{r}");
    // Each fault cost exactly one more attempt.
    assert_eq!(
        ec2.attempts("DescribeVpcs"),
        2,
        "{}",
        Value::from(ec2.log())
    );
    assert_eq!(
        ec2.attempts_on("ReplaceRoute", t0),
        3,
        "{}",
        Value::from(ec2.log())
    );
    assert_eq!(
        ec2.attempts_on("CreateRoute", t1),
        2,
        "{}",
        Value::from(ec2.log())
    );
    // Round 1 (503 + retry) and at least one read-back.
    assert!(
        ec2.attempts("DescribeRouteTables") >= 3,
        "{}",
        Value::from(ec2.log())
    );
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone()); 2]);
}

#[test]
fn permission_errors_are_not_retried_and_name_the_missing_action() {
    let w = World::create(2, &[]);
    let (a, b) = (Node::new(&w, &w.a), Node::new(&w, &w.b));
    assert_eq!(b.claim(&cfg(""))["ok"], true);
    let all_b = vec![Some(w.b.eni.clone()); 2];
    let ec2 = FaultProxy::start(&w.endpoint);

    // The switch is refused in every table: each table fails on its own, once.
    let r = denied(&ec2, &a, "vip_claim", "ReplaceRoute");
    assert_eq!(actions(&r), ["failed", "failed"], "{r}");
    for t in &w.route_tables {
        let e = &table(&r, t)["error"];
        assert_eq!(e["kind"], "permission", "{r}");
        assert!(e["message"]
            .as_str()
            .unwrap_or("")
            .contains("ec2:ReplaceRoute"));
        assert_eq!(table(&r, t)["target"], w.b.eni.as_str(), "{r}");
        assert_eq!(
            ec2.attempts_on("ReplaceRoute", t),
            1,
            "UnauthorizedOperation was retried: {}",
            Value::from(ec2.log())
        );
    }
    assert_ne!(r["holder"], "self");
    assert_eq!(w.routes(VIP), all_b);

    // A read refused: the call stops there, no mutation is attempted.
    denied(&ec2, &a, "vip_claim", "DescribeRouteTables");
    assert_eq!(
        ec2.attempts("DescribeRouteTables"),
        1,
        "{}",
        Value::from(ec2.log())
    );
    assert_eq!(
        ec2.attempts("ReplaceRoute") + ec2.attempts("CreateRoute"),
        0
    );
    assert_eq!(w.routes(VIP), all_b);

    // A release whose DeleteRoute is refused: ok false, the route stays.
    let r = denied(&ec2, &b, "vip_release", "DeleteRoute");
    assert_eq!(actions(&r), ["failed", "failed"], "{r}");
    assert_eq!(ec2.attempts("DeleteRoute"), 2, "{}", Value::from(ec2.log()));
    assert_eq!(w.routes(VIP), all_b);
}

#[test]
fn a_failure_in_one_table_leaves_the_others_correct() {
    let w = World::create(3, &[]);
    let (a, b) = (Node::new(&w, &w.a), Node::new(&w, &w.b));
    let t = w.route_tables.clone();
    let r = b.claim(&cfg(&format!("route_tables={},{}", t[0], t[1])));
    assert_eq!(r["ok"], true, "{r}");
    let ec2 = FaultProxy::start(&w.endpoint);

    // A table whose ReplaceRoute keeps failing with a 500: retried (transient), then failed.
    ec2.set(json!([
        {"action": "ReplaceRoute", "params": {"RouteTableId": t[1]}, "fault": "ec2_error",
         "code": "InternalError", "status": 500, "count": -1},
    ]));
    let r = claim_through(&a, &ec2);
    assert_eq!(r["ok"], false, "partial success reported as success: {r}");
    assert_eq!(kind(&r), "aws", "{r}");
    let acts: Vec<&str> = t
        .iter()
        .map(|id| table(&r, id)["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(acts, ["replaced", "failed", "created"], "{r}");
    let failed = table(&r, &t[1]);
    assert_eq!(failed["error"]["kind"], "aws", "{r}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains(&t[1]),
        "{r}"
    );
    assert_eq!(failed["target"], w.b.eni.as_str(), "read back: {r}");
    assert_eq!(failed["self"], false);
    for id in [&t[0], &t[2]] {
        assert_eq!(table(&r, id)["self"], true, "{r}");
        assert!(table(&r, id).get("error").is_none(), "{r}");
    }
    assert_eq!(r["holder"], "mixed", "{r}");
    let tries = ec2.attempts_on("ReplaceRoute", &t[1]);
    assert!(
        (2..=4).contains(&tries),
        "500 tried {tries} times: {}",
        Value::from(ec2.log())
    );
    let (ea, eb) = (Some(w.a.eni.clone()), Some(w.b.eni.clone()));
    assert_eq!(w.routes(VIP), vec![ea.clone(), eb.clone(), ea.clone()]);

    // The same table refused for lack of permission: one attempt, the others still move.
    assert_eq!(b.claim(&cfg(""))["ok"], true);
    ec2.set(json!([
        {"action": "ReplaceRoute", "params": {"RouteTableId": t[1]}, "fault": "unauthorized",
         "message": DENIED, "count": -1},
    ]));
    let r = claim_through(&a, &ec2);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "permission", "{r}");
    let acts: Vec<&str> = t
        .iter()
        .map(|id| table(&r, id)["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(acts, ["replaced", "failed", "replaced"], "{r}");
    assert_eq!(
        ec2.attempts_on("ReplaceRoute", &t[1]),
        1,
        "{}",
        Value::from(ec2.log())
    );
    assert_eq!(w.routes(VIP), vec![ea.clone(), eb, ea]);
}

/// One deadline scenario: rules for the EC2 and IMDS proxies, the kinds the failure may have,
/// and what the table may hold afterwards.
struct Case {
    name: &'static str,
    ec2: Value,
    imds: Value,
    kinds: &'static [&'static str],
    /// The change lands although its answer does not arrive in time.
    lands: bool,
}

#[test]
fn every_call_returns_within_its_deadline_whatever_the_fault() {
    const TIMEOUT_MS: u64 = 1200;
    let w = World::create(1, &[]);
    let mut a = Node::new(&w, &w.a);
    let b = Node::new(&w, &w.b);
    let ec2 = FaultProxy::start(&w.endpoint);
    let imds = FaultProxy::start(&a.imds.url());
    for (k, v) in a.env.iter_mut() {
        if k == "AWS_EC2_METADATA_SERVICE_ENDPOINT" {
            *v = imds.url();
        }
    }
    let none = json!([]);
    let cases = [
        Case {
            name: "DescribeRouteTables accepted, never answered",
            ec2: json!([{"action": "DescribeRouteTables", "fault": "hang", "max_s": 10, "count": -1}]),
            imds: none.clone(),
            kinds: &["timeout"],
            lands: false,
        },
        Case {
            name: "DescribeRouteTables answer trickles in",
            ec2: json!([{"action": "DescribeRouteTables", "fault": "trickle", "chunk": 1,
                         "interval_ms": 100, "count": -1}]),
            imds: none.clone(),
            kinds: &["timeout"],
            lands: false,
        },
        Case {
            name: "ReplaceRoute accepted, never answered",
            ec2: json!([{"action": "ReplaceRoute", "fault": "hang", "max_s": 10, "count": -1}]),
            imds: none.clone(),
            kinds: &["timeout"],
            lands: false,
        },
        Case {
            name: "ReplaceRoute lands, its answer comes too late",
            ec2: json!([{"action": "ReplaceRoute", "fault": "delay", "where": "after", "ms": 4000,
                         "count": 1}]),
            imds: none.clone(),
            kinds: &["timeout"],
            lands: true,
        },
        Case {
            name: "every EC2 connection reset",
            ec2: json!([{"fault": "reset", "count": -1}]),
            imds: none.clone(),
            kinds: &["aws", "timeout"],
            lands: false,
        },
        Case {
            name: "EC2 answers 503 forever",
            ec2: json!([{"fault": "status", "status": 503, "count": -1}]),
            imds: none.clone(),
            kinds: &["aws", "timeout"],
            lands: false,
        },
        Case {
            name: "EC2 throttles forever",
            ec2: json!([{"fault": "throttle", "count": -1}]),
            imds: none.clone(),
            kinds: &["throttled", "timeout"],
            lands: false,
        },
        Case {
            name: "every request 2 s slow",
            ec2: json!([{"fault": "delay", "ms": 2000, "count": -1}]),
            imds: none.clone(),
            kinds: &["timeout"],
            lands: false,
        },
        Case {
            name: "IMDS metadata GET never answered",
            ec2: none.clone(),
            imds: json!([{"method": "GET", "fault": "hang", "max_s": 10, "count": -1}]),
            kinds: &["metadata", "timeout"],
            lands: false,
        },
        Case {
            name: "IMDS token PUT never answered",
            ec2: none.clone(),
            imds: json!([{"method": "PUT", "fault": "hang", "max_s": 10, "count": -1}]),
            kinds: &["metadata", "timeout"],
            lands: false,
        },
        Case {
            name: "IMDS answers trickle in",
            ec2: none.clone(),
            imds: json!([{"method": "GET", "fault": "trickle", "chunk": 1, "interval_ms": 400,
                          "count": -1}]),
            kinds: &["metadata", "timeout"],
            lands: false,
        },
    ];
    let (ea, eb) = (Some(w.a.eni.clone()), Some(w.b.eni.clone()));
    for case in &cases {
        assert_eq!(b.claim(&cfg(""))["ok"], true, "{}: reset", case.name);
        ec2.set(case.ec2.clone());
        imds.set(case.imds.clone());
        let config = ec2_cfg(&ec2, &format!("timeout_ms={TIMEOUT_MS}"));
        let (line, r) = call(host(&a), "vip_claim", &config, TIMEOUT_MS);
        eprintln!(
            "faults: {:<48} {:>6.0} ms  {}",
            case.name,
            line["ms"].as_f64().unwrap_or(-1.0),
            kind(&r)
        );
        assert_eq!(r["ok"], false, "{}: {r}", case.name);
        assert!(
            case.kinds.contains(&kind(&r)),
            "{}: kind {} not in {:?}: {r}",
            case.name,
            kind(&r),
            case.kinds
        );
        for t in r["route_tables"].as_array().into_iter().flatten() {
            assert_ne!(
                t["action"], "replaced",
                "{}: a change without an answer reported as done: {r}",
                case.name
            );
        }
        let now = w.routes(VIP);
        if case.lands {
            assert_eq!(actions(&r), ["failed"], "{}: {r}", case.name);
            assert!(message(&r).contains("may or may not"), "{}: {r}", case.name);
            assert_eq!(now, vec![ea.clone()], "{}", case.name);
        } else {
            assert_eq!(now, vec![eb.clone()], "{}: a route moved", case.name);
        }
    }
    // The proxies are still there: a last call without faults works.
    ec2.set(json!([]));
    imds.set(json!([]));
    let (_, r) = call(
        host(&a),
        "vip_claim",
        &ec2_cfg(&ec2, "timeout_ms=5000"),
        5000,
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(w.routes(VIP), vec![ea.clone()]);

    // Release and status keep the deadline too.
    let hang =
        |action: &str| json!([{"action": action, "fault": "hang", "max_s": 10, "count": -1}]);
    for (entry, ec2_rules, imds_rules, kinds) in [
        (
            "vip_release",
            hang("DeleteRoute"),
            none.clone(),
            &["timeout"][..],
        ),
        (
            "vip_release",
            hang("DescribeRouteTables"),
            none.clone(),
            &["timeout"][..],
        ),
        (
            "vip_status",
            hang("DescribeVpcs"),
            none.clone(),
            &["timeout"][..],
        ),
        (
            "vip_status",
            none.clone(),
            json!([{"method": "GET", "fault": "hang", "max_s": 10, "count": -1}]),
            &["metadata", "timeout"][..],
        ),
    ] {
        ec2.set(ec2_rules);
        imds.set(imds_rules);
        let config = ec2_cfg(&ec2, &format!("timeout_ms={TIMEOUT_MS}"));
        let (_, r) = call(host(&a), entry, &config, TIMEOUT_MS);
        assert_eq!(r["ok"], false, "{entry}: {r}");
        assert!(kinds.contains(&kind(&r)), "{entry}: {r}");
        assert_ne!(r["route_tables"][0]["action"], "deleted", "{r}");
        assert_eq!(w.routes(VIP), vec![ea.clone()], "{entry}: {r}");
    }
}

#[test]
fn an_expired_imds_token_is_refreshed() {
    let w = World::create(1, &[]);
    let mut a = Node::new(&w, &w.a);
    let imds = FaultProxy::start(&a.imds.url());
    for (k, v) in a.env.iter_mut() {
        if k == "AWS_EC2_METADATA_SERVICE_ENDPOINT" {
            *v = imds.url();
        }
    }
    // The token the first metadata GET carries has expired: that GET and every later one with
    // the same token get 401, as from EC2's IMDS; only a new token from PUT works.
    imds.set(json!([
        {"method": "GET", "path_prefix": "/latest/meta-data/", "fault": "expire_token", "count": 1},
    ]));
    let (_, r) = call(host(&a), "vip_claim", &cfg("timeout_ms=5000"), 5000);
    let log = imds.log();
    let puts = log.iter().filter(|e| e["method"] == "PUT").count();
    let compact = serde_json::to_string(&log).unwrap_or_default();
    assert_eq!(r["ok"], true, "expired token not refreshed: {r}\n{compact}");
    assert!(puts >= 2, "no new token was fetched: {compact}");
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone())]);

    // A single 401 with a token that is still good: a retry suffices.
    imds.set(json!([{"method": "GET", "fault": "status", "status": 401, "count": 1}]));
    let (_, r) = call(host(&a), "vip_status", &cfg("timeout_ms=5000"), 5000);
    assert_eq!(r["ok"], true, "{r}\n{}", Value::from(imds.log()));
}

#[test]
fn instance_profile_credentials_never_show_whatever_the_fault() {
    let w = World::create(1, &[]);
    let mut a = Node::with_imds_args(
        &w,
        &w.a,
        &[
            "--credentials",
            "--secret-key",
            SECRET_KEY,
            "--session-token",
            SESSION_TOKEN,
        ],
    );
    let imds = FaultProxy::start(&a.imds.url());
    let ec2 = FaultProxy::start(&w.endpoint);
    for (k, v) in a.env.iter_mut() {
        if k == "AWS_EC2_METADATA_SERVICE_ENDPOINT" {
            *v = imds.url();
        }
    }
    let profile_host = |node: &Node| {
        let mut cmd = node.host();
        cmd.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
        cmd
    };
    let creds = "/latest/meta-data/iam/security-credentials/irisvip-test-role";

    // A 500 on the credentials fetch is retried; EC2 refuses the first attempt (its message
    // then travels with the signed request's context): the claim succeeds, no secret shows.
    imds.set(json!([{"path": creds, "fault": "status", "status": 500, "count": 1}]));
    ec2.set(json!([{"action": "CreateRoute", "fault": "throttle", "count": 1}]));
    let (_, r) = call(
        profile_host(&a),
        "vip_claim",
        &ec2_cfg(&ec2, "timeout_ms=8000"),
        8000,
    );
    assert_eq!(r["ok"], true, "{r}\n{}", Value::from(imds.log()));
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone())]);

    // Credentials documents IMDS garbles, each carrying the secrets: every call fails
    // cleanly and quotes none of them.
    let garbled = [
        json!({"Code": "Success", "SecretAccessKey": SECRET_KEY, "Token": SESSION_TOKEN}).to_string(),
        format!("{{\"Code\":\"Success\",\"SecretAccessKey\":\"{SECRET_KEY}\",\"Token\":\"{SESSION_TOKEN}\""),
        format!("SecretAccessKey={SECRET_KEY}&Token={SESSION_TOKEN}"),
        json!({"Code": "Failure", "Message": "The role has no policy attached"}).to_string(),
        format!("{{\"Code\":\"Success\",\"AccessKeyId\":\"AKIAIRISVIPTEST00001\",\"SecretAccessKey\":\"{SECRET_KEY}\",\"Token\":\"{SESSION_TOKEN}\",\"Expiration\":\"not a date\"}}"),
    ];
    for body in &garbled {
        imds.set(json!([{"path": creds, "fault": "canned", "status": 200,
                         "content_type": "text/plain", "body": body, "count": -1}]));
        ec2.set(json!([]));
        let (_, r) = call(
            profile_host(&a),
            "vip_claim",
            &ec2_cfg(&ec2, "timeout_ms=3000"),
            3000,
        );
        assert_eq!(r["ok"], false, "garbled credentials accepted: {r}");
        assert_eq!(
            ec2.attempts("CreateRoute") + ec2.attempts("ReplaceRoute"),
            0
        );
    }
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone())]);
}

#[test]
fn a_replace_refused_for_its_own_reason_reports_that_reason() {
    // EC2 answers InvalidParameterValue both for a route that vanished (the library then
    // creates it) and for other faults. When the fallback create finds the route still there,
    // the replace's own error is what the operator must see.
    let w = World::create(1, &[]);
    let (a, b) = (Node::new(&w, &w.a), Node::new(&w, &w.b));
    assert_eq!(b.claim(&cfg(""))["ok"], true);
    let ec2 = FaultProxy::start(&w.endpoint);
    // CreateRoute over an existing route: EC2 answers RouteAlreadyExists, moto would overwrite.
    ec2.set(json!([
        {"action": "ReplaceRoute", "fault": "ec2_error", "code": "InvalidParameterValue",
         "message": "irisvip-test: interface not in this VPC", "count": -1},
        {"action": "CreateRoute", "fault": "ec2_error", "code": "RouteAlreadyExists",
         "message": "The route identified by 192.168.240.10/32 already exists.", "count": -1},
    ]));
    let r = claim_through(&a, &ec2);
    assert_eq!(r["ok"], false, "{r}");
    let t = table(&r, &w.route_tables[0]);
    assert_eq!(t["action"], "failed", "{r}");
    let m = t["error"]["message"].as_str().unwrap_or("");
    assert!(
        m.contains("ReplaceRoute")
            && m.contains("InvalidParameterValue")
            && m.contains("interface not in this VPC"),
        "{r}"
    );
    assert_eq!(ec2.attempts("CreateRoute"), 1, "{}", Value::from(ec2.log()));
    assert_eq!(w.routes(VIP), vec![Some(w.b.eni.clone())]);
}
