//! Sentences of `docs/contract.md` checked one by one through the C ABI (zfhost), against
//! moto, with `tests/support/faultproxy.py` in front of EC2 wherever the requests the library
//! sends are part of the promise. After each call, moto's routes are compared with what the
//! contract says they must be.

use crate::common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const MUTATIONS: [&str; 3] = ["CreateRoute", "ReplaceRoute", "DeleteRoute"];

/// One call in a fresh zfhost process, killed (test failed) if it hangs; checks the ABI
/// promises (`result_of`) and returns (zfhost line, result).
fn call(mut cmd: Command, args: &[&str], timeout_ms: u64) -> (Value, Value) {
    let out = output_within(cmd.args(args), Duration::from_millis(timeout_ms + 20_000));
    let line = lines(&out).remove(0);
    let r = result_of(&line);
    if r["ok"] == true {
        assert!(r.get("error").is_none(), "ok with an error: {r}");
    }
    (line, r)
}

/// The config for a call through `proxy` (`endpoint=`), with the test VIP.
fn via(proxy: &FaultProxy, extra: &str) -> String {
    if extra.is_empty() {
        cfg(&format!("endpoint={}", proxy.url()))
    } else {
        cfg(&format!("endpoint={};{extra}", proxy.url()))
    }
}

/// The mutating requests of a proxy log, in arrival order, as (action, route table).
fn mutations(log: &[Value]) -> Vec<(String, String)> {
    log.iter()
        .filter(|e| MUTATIONS.iter().any(|m| e["action"] == *m))
        .map(|e| {
            (
                e["action"].as_str().unwrap_or("").to_owned(),
                e["params"]["RouteTableId"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect()
}

/// The mutating actions a proxy log shows on one table, in order.
fn mutations_on(log: &[Value], table: &str) -> Vec<String> {
    mutations(log)
        .into_iter()
        .filter(|(_, t)| t == table)
        .map(|(a, _)| a)
        .collect()
}

/// The EC2 actions of a proxy log, for messages.
fn compact(log: &[Value]) -> String {
    log.iter()
        .map(|e| {
            format!(
                "{}({}){}",
                e["action"].as_str().unwrap_or("?"),
                e["params"]["RouteTableId"].as_str().unwrap_or(""),
                match e["fault"].as_str() {
                    Some(f) => format!("[{f}]"),
                    None => String::new(),
                }
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The proxy saw the call read the tables and send nothing that changes a route.
fn assert_read_only(ec2: &FaultProxy, what: &str) {
    let log = ec2.log();
    assert!(
        log.iter().any(|e| e["action"] == "DescribeRouteTables"),
        "{what} did not go through the proxy: {}",
        compact(&log)
    );
    assert_eq!(
        mutations(&log),
        vec![],
        "{what} sent a mutating call: {}",
        compact(&log)
    );
}

/// DescribeRouteTables of `tables` as moto answers it now.
fn describe_snapshot(w: &World, tables: &[&str]) -> String {
    let keys: Vec<String> = (1..=tables.len())
        .map(|i| format!("RouteTableId.{i}"))
        .collect();
    let mut params = vec![("Action", "DescribeRouteTables")];
    params.extend(keys.iter().map(String::as_str).zip(tables.iter().copied()));
    // Straight to moto (not through any proxy): a snapshot of what DescribeRouteTables says at
    // one moment, which a proxy rule then replays as a stale read.
    let xml = ec2_query(&w.endpoint, &params);
    for t in tables {
        assert!(xml.contains(t), "snapshot lacks {t}: {xml}");
    }
    xml
}

/// "`write=changed` (the periodic re-assert's mode), where a table that reads as ours is
/// `unchanged` and costs no mutating call."
#[test]
fn a_changed_claim_where_every_table_already_points_at_us_sends_no_mutation() {
    let w = World::create(3, &[]);
    let a = Node::new(&w, &w.a);
    assert_eq!(a.claim(&cfg(""))["ok"], true, "setup");
    let all_a = vec![Some(w.a.eni.clone()); 3];
    assert_eq!(w.routes(VIP), all_a);
    let ec2 = FaultProxy::start(&w.endpoint);
    ec2.set(json!([]));

    let (_, r) = call(
        a.host(),
        &["call", "vip_claim", &via(&ec2, "write=changed")],
        10_000,
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["op"], "claim");
    assert_eq!(r["holder"], "self", "{r}");
    assert_eq!(actions(&r), ["unchanged"; 3], "{r}");
    for t in r["route_tables"].as_array().expect("tables") {
        assert_eq!(t["self"], true, "{r}");
        assert_eq!(t["target"], w.a.eni.as_str(), "{r}");
        assert_eq!(t["state"], "active", "{r}");
        assert!(t.get("confirmed").is_none(), "nothing written: {r}");
    }
    assert_read_only(&ec2, "an unchanged claim");
    assert_eq!(w.routes(VIP), all_a);
}

/// "a claim does not skip a table because a read shows it already pointing at us (a stale
/// read after another member's claim looks exactly like that): it writes every table".
#[test]
fn a_failover_claim_writes_every_table_even_when_it_reads_as_ours() {
    let w = World::create(3, &[]);
    let a = Node::new(&w, &w.a);
    assert_eq!(a.claim(&cfg(""))["ok"], true, "setup");
    let ec2 = FaultProxy::start(&w.endpoint);
    ec2.set(json!([]));

    for extra in ["", "write=always"] {
        ec2.set(json!([]));
        let (_, r) = call(a.host(), &["call", "vip_claim", &via(&ec2, extra)], 10_000);
        assert_eq!(r["ok"], true, "{extra}: {r}");
        assert_eq!(r["holder"], "self", "{r}");
        assert_eq!(actions(&r), ["replaced"; 3], "{extra}: {r}");
        for t in r["route_tables"].as_array().expect("tables") {
            assert_eq!(t["confirmed"], true, "{r}");
        }
        let sent = mutations(&ec2.log());
        assert_eq!(sent.len(), 3, "{extra}: {sent:?}");
        assert!(sent.iter().all(|(a, _)| a == "ReplaceRoute"), "{sent:?}");
    }
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone()); 3]);
}

/// "status changes nothing" and adds `local` and `source_dest_check`.
#[test]
fn status_changes_nothing_and_reports_local_state() {
    let w = World::create(3, &[]);
    let a = Node::new(&w, &w.a);
    let t = w.route_tables.clone();
    w.set_route(&t[0], &w.b.eni, VIP);
    w.set_route(&t[1], &w.b.eni, VIP);
    let before = w.routes(VIP);
    let eb = Some(w.b.eni.clone());
    assert_eq!(before, vec![eb.clone(), eb.clone(), None]);
    let ec2 = FaultProxy::start(&w.endpoint);
    ec2.set(json!([]));

    let (_, s) = call(a.host(), &["call", "vip_status", &via(&ec2, "")], 10_000);
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["op"], "status");
    // Two tables point at B, one has no route: not "all point at one other target".
    assert_eq!(s["holder"], "mixed", "{s}");
    assert_eq!(s["eni"], w.a.eni.as_str(), "{s}");
    assert_eq!(s["vpc_id"], w.vpc.as_str(), "{s}");
    assert_eq!(s["local"]["interface"], "eth0:1", "{s}");
    assert!(s["local"]["vip_present"].is_boolean(), "{s}");
    assert_eq!(
        s["source_dest_check"], false,
        "the world disables SourceDestCheck: {s}"
    );
    assert_eq!(s["route_tables"].as_array().map(Vec::len), Some(3), "{s}");
    for id in &t[..2] {
        let x = table(&s, id);
        assert_eq!(x["target"], w.b.eni.as_str(), "{s}");
        assert_eq!(x["state"], "active", "{s}");
        assert_eq!(x["self"], false, "{s}");
        assert!(x.get("action").is_none(), "status has no action: {s}");
    }
    let x = table(&s, &t[2]);
    assert!(x["target"].is_null(), "{s}");
    assert_eq!(x["state"], "absent", "{s}");
    assert_eq!(x["self"], false, "{s}");
    assert!(x.get("action").is_none(), "status has no action: {s}");
    assert_read_only(&ec2, "status");
    assert_eq!(w.routes(VIP), before, "status changed a route");

    // Every table at B: holder "other", still nothing sent that changes anything.
    w.set_route(&t[2], &w.b.eni, VIP);
    ec2.set(json!([]));
    let (_, s) = call(a.host(), &["call", "vip_status", &via(&ec2, "")], 10_000);
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["holder"], "other", "{s}");
    assert_read_only(&ec2, "status");
    assert_eq!(w.routes(VIP), vec![eb; 3]);
}

/// A claim by A on `t0`, `t1` that reads `stale` (a snapshot the proxy replays once) while moto
/// already holds the racing member's change, and whose first mutation on `t0` gets `answer`
/// (what EC2 says in that race). The fallback must send `order` on `t0` and the claim succeed.
fn claim_after_a_race(
    w: &World,
    t0: &str,
    t1: &str,
    stale: String,
    answer: Value,
    order: [&str; 2],
) {
    let a = Node::new(w, &w.a);
    let ec2 = FaultProxy::start(&w.endpoint);
    let mut rule = answer;
    rule["params"] = json!({"RouteTableId": t0});
    rule["count"] = json!(1);
    ec2.set(json!([
        {"action": "DescribeRouteTables", "fault": "canned", "body": stale, "count": 1,
         "name": "stale read"},
        rule,
    ]));
    let config = via(&ec2, &format!("route_tables={t0},{t1};timeout_ms=10000"));
    let (_, r) = call(a.host(), &["call", "vip_claim", &config], 10_000);
    let log = ec2.log();
    assert_eq!(r["ok"], true, "{r}\n{}", compact(&log));
    assert_eq!(
        mutations_on(&log, t0),
        order,
        "the fallback on the same table: {}",
        compact(&log)
    );
    // The contract does not name the action of a fallback; it is a success either way.
    let act = table(&r, t0)["action"].as_str().unwrap_or("");
    assert!(["replaced", "created"].contains(&act), "{r}");
    assert_eq!(table(&r, t1)["action"], "replaced", "{r}");
    assert_eq!(table(&r, t0)["self"], true, "{r}");
    assert_eq!(r["holder"], "self", "{r}");
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone()); 2]);
}

/// "`CreateRoute` where none does (and `ReplaceRoute` if a racing create answers
/// `RouteAlreadyExists`)". The race is reproduced deterministically: the claim's read is a
/// snapshot taken before the other member created the route (replayed by the proxy), and the
/// CreateRoute then gets what EC2 answers once that route exists.
#[test]
fn a_create_that_meets_route_already_exists_falls_back_to_replace() {
    let w = World::create(2, &[]);
    let (t0, t1) = (w.route_tables[0].clone(), w.route_tables[1].clone());
    w.set_route(&t1, &w.b.eni, VIP);
    // What the claim will read: no route in t0, B's route in t1.
    let stale = describe_snapshot(&w, &[&t0, &t1]);
    // The racing member creates its route in t0 after that read.
    w.set_route(&t0, &w.b.eni, VIP);
    assert_eq!(w.routes(VIP), vec![Some(w.b.eni.clone()); 2]);
    let answer = json!({"action": "CreateRoute", "fault": "ec2_error", "code": "RouteAlreadyExists",
        "status": 400, "message": format!("The route identified by {VIP}/32 already exists.")});
    claim_after_a_race(&w, &t0, &t1, stale, answer, ["CreateRoute", "ReplaceRoute"]);
}

/// The reverse race: the claim read a route, a release elsewhere deleted it, and ReplaceRoute
/// answers InvalidParameterValue (what EC2 says for a route that is not there): the claim
/// creates the route instead (the contract's "CreateRoute where none does").
#[test]
fn a_replace_of_a_vanished_route_falls_back_to_create() {
    let w = World::create(2, &[]);
    let (t0, t1) = (w.route_tables[0].clone(), w.route_tables[1].clone());
    w.set_route(&t0, &w.b.eni, VIP);
    w.set_route(&t1, &w.b.eni, VIP);
    // What the claim will read: B's route in both.
    let stale = describe_snapshot(&w, &[&t0, &t1]);
    // B's release deletes the route in t0 after that read.
    w.delete_route(&t0, VIP);
    assert_eq!(w.routes(VIP), vec![None, Some(w.b.eni.clone())]);
    let answer = json!({"action": "ReplaceRoute", "fault": "ec2_error", "code": "InvalidParameterValue",
        "status": 400,
        "message": format!("There is no route defined for '{VIP}/32' in the route table. Use CreateRoute instead.")});
    claim_after_a_race(&w, &t0, &t1, stale, answer, ["ReplaceRoute", "CreateRoute"]);
}

/// `region`: "SDK chain (`AWS_REGION`, then IMDS)": AWS_REGION wins over the region IMDS
/// names; `region=` in the config wins over both.
#[test]
fn aws_region_takes_precedence_over_imds() {
    const ELSEWHERE: &str = "eu-west-1";
    let w = World::create(2, &[]);
    assert_eq!(w.region, "us-east-1", "IMDS says the world's region");
    let a = Node::new(&w, &w.a);
    w.set_route(&w.route_tables[0], &w.b.eni, VIP);
    let before = w.routes(VIP);
    let ec2 = FaultProxy::start(&w.endpoint);
    ec2.set(json!([]));

    let mut cmd = a.host();
    cmd.env("AWS_REGION", ELSEWHERE);
    let (_, r) = call(
        cmd,
        &["call", "vip_claim", &via(&ec2, "timeout_ms=10000")],
        10_000,
    );
    let log = ec2.log();
    assert_eq!(r["region"], ELSEWHERE, "AWS_REGION must beat IMDS: {r}");
    // moto holds this VPC in us-east-1 only: in eu-west-1 there is nothing to claim.
    assert_eq!(r["ok"], false, "{r}");
    assert!(["not_found", "aws"].contains(&kind(&r)), "{r}");
    assert!(!log.is_empty(), "the call did not reach EC2 at all: {r}");
    assert_eq!(mutations(&log), vec![], "{}", compact(&log));
    assert_eq!(w.routes(VIP), before, "the us-east-1 world changed");

    // The same process environment with region= in the config: the config wins.
    let mut cmd = a.host();
    cmd.env("AWS_REGION", ELSEWHERE);
    let config = via(&ec2, "region=us-east-1;timeout_ms=10000");
    let (_, r) = call(cmd, &["call", "vip_claim", &config], 10_000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["region"], "us-east-1", "{r}");
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone()); 2]);
}

/// `endpoint`: "SDK chain (`AWS_ENDPOINT_URL_EC2`, `AWS_ENDPOINT_URL`)".
#[test]
fn the_generic_aws_endpoint_url_is_honoured() {
    let w = World::create(2, &[]);
    let a = Node::new(&w, &w.a);
    let ec2 = FaultProxy::start(&w.endpoint);
    ec2.set(json!([]));

    // Only the generic variable: no endpoint= and no AWS_ENDPOINT_URL_EC2.
    let mut cmd = a.host();
    cmd.env_remove("AWS_ENDPOINT_URL_EC2")
        .env("AWS_ENDPOINT_URL", ec2.url());
    let (_, r) = call(
        cmd,
        &["call", "vip_claim", &cfg("timeout_ms=10000")],
        10_000,
    );
    let log = ec2.log();
    assert_eq!(r["ok"], true, "{r}\n{}", compact(&log));
    assert_eq!(actions(&r), ["created", "created"], "{r}");
    assert!(
        ec2.attempts("DescribeRouteTables") >= 1,
        "AWS_ENDPOINT_URL ignored: {}",
        compact(&log)
    );
    for t in &w.route_tables {
        assert_eq!(
            ec2.attempts_on("CreateRoute", t),
            1,
            "AWS_ENDPOINT_URL ignored: {}",
            compact(&log)
        );
    }
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone()); 2]);

    // Both set: the service-specific one wins (the generic one leads nowhere).
    ec2.set(json!([]));
    let mut cmd = a.host();
    cmd.env("AWS_ENDPOINT_URL_EC2", ec2.url())
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    let (_, r) = call(
        cmd,
        &["call", "vip_release", &cfg("timeout_ms=10000")],
        10_000,
    );
    let log = ec2.log();
    assert_eq!(r["ok"], true, "{r}\n{}", compact(&log));
    assert_eq!(actions(&r), ["deleted", "deleted"], "{r}");
    assert_eq!(ec2.attempts("DeleteRoute"), 2, "{}", compact(&log));
    assert_eq!(w.routes(VIP), vec![None, None]);
}

/// EC2 throttling that outlasts the retries is reported as kind `throttled` (not `aws`, not
/// `timeout`: the deadline is far away), per table and for the call; nothing moves.
#[test]
fn throttling_that_outlasts_the_retries_is_kind_throttled() {
    // Throttling is retried for as long as the deadline allows; when it runs out, the answer
    // is still the cause (throttled), not the deadline.
    const TIMEOUT_MS: u64 = 3_000;
    let w = World::create(2, &[]);
    let (a, b) = (Node::new(&w, &w.a), Node::new(&w, &w.b));
    assert_eq!(b.claim(&cfg(""))["ok"], true, "setup");
    let all_b = vec![Some(w.b.eni.clone()); 2];
    let ec2 = FaultProxy::start(&w.endpoint);

    // Both throttling codes EC2 uses: RequestLimitExceeded (503) and Throttling (400).
    for code in ["RequestLimitExceeded", "Throttling"] {
        ec2.set(json!([
            {"action": "ReplaceRoute", "fault": "throttle", "code": code, "count": -1},
        ]));
        let config = via(&ec2, &format!("timeout_ms={TIMEOUT_MS}"));
        let (line, r) = call(a.host(), &["call", "vip_claim", &config], TIMEOUT_MS);
        let log = ec2.log();
        assert_eq!(r["ok"], false, "{code}: {r}");
        assert_eq!(kind(&r), "throttled", "{code}: {r}\n{}", compact(&log));
        assert!(
            line["ms"].as_f64().unwrap_or(f64::MAX) < TIMEOUT_MS as f64,
            "{code}: {line}"
        );
        assert_eq!(actions(&r), ["failed", "failed"], "{code}: {r}");
        for t in &w.route_tables {
            let x = table(&r, t);
            assert_eq!(x["error"]["kind"], "throttled", "{code}: {r}");
            assert!(x["error"]["message"].is_string(), "{code}: {r}");
            assert_eq!(x["target"], w.b.eni.as_str(), "{code}: {r}");
            assert_eq!(x["self"], false, "{code}: {r}");
            // Backoff from 100 ms doubling to 1 s, half jittered: at least 3 tries in 3 s.
            assert!(
                ec2.attempts_on("ReplaceRoute", t) >= 3,
                "{code}: throttling was not retried until the deadline: {}",
                compact(&log)
            );
        }
        assert_eq!(
            ec2.attempts("CreateRoute") + ec2.attempts("DeleteRoute"),
            0,
            "{code}: {}",
            compact(&log)
        );
        assert_eq!(r["holder"], "other", "{code}: {r}");
        assert_eq!(w.routes(VIP), all_b, "{code}");
    }
}

/// "When the full object would not fit, a shorter object that still parses and says so is
/// written" -- for a claim that succeeded and moved every route.
#[test]
fn a_successful_claim_too_big_for_zfstrsize_is_truncated_but_done() {
    const CAPACITY: usize = 512;
    const TABLES: usize = 16;
    let w = World::create(TABLES, &[]);
    let a = Node::new(&w, &w.a);
    let cap = CAPACITY.to_string();

    let (line, r) = call(
        a.host(),
        &[
            "strsize",
            &cap,
            "call",
            "vip_claim",
            &cfg("timeout_ms=20000"),
        ],
        20_000,
    );
    assert_eq!(line["capacity"], CAPACITY, "{line}");
    let len = line["output_len"].as_u64().unwrap_or(u64::MAX) as usize;
    assert!(len < CAPACITY, "{len} bytes + NUL > {CAPACITY}: {line}");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["truncated"], true, "{r}");
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone()); TABLES]);

    // The full result of the same claim (now all unchanged) is indeed larger than CAPACITY.
    let (line, r) = call(
        a.host(),
        &["call", "vip_claim", &cfg("timeout_ms=20000;write=changed")],
        20_000,
    );
    assert_eq!(r["ok"], true, "{r}");
    assert!(r.get("truncated").is_none_or(|t| t == false), "{r}");
    assert_eq!(actions(&r), vec!["unchanged"; TABLES], "{r}");
    let full = line["output_len"].as_u64().unwrap_or(0) as usize;
    assert!(
        full > CAPACITY,
        "the full result ({full} bytes) would have fit in {CAPACITY}: raise TABLES"
    );
}

/// `timeout_ms`: "deadline for the whole call", default 10000. With EC2 never answering and no
/// `timeout_ms` in the config, the call gives up at the default deadline: not before it (the
/// default is really 10 s) and not long after (every call returns within its deadline).
#[test]
fn the_default_deadline_is_ten_seconds() {
    let w = World::create(1, &[]);
    let a = Node::new(&w, &w.a);
    let before = w.routes(VIP);
    let ec2 = FaultProxy::start(&w.endpoint);
    ec2.set(json!([
        {"action": "DescribeRouteTables", "fault": "hang", "max_s": 30, "count": -1},
    ]));
    let (line, r) = call(a.host(), &["call", "vip_claim", &via(&ec2, "")], 10_000);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "timeout", "{r}");
    let ms = line["ms"].as_f64().unwrap_or(0.0);
    // Lower bound only loosely tied to the clock: a deadline of 1 s or 5 s would fail it.
    assert!(ms >= 9_500.0, "gave up after {ms:.0} ms: {r}");
    assert!(ms <= 10_000.0 + 3_000.0, "{ms:.0} ms: {r}");
    assert_eq!(w.routes(VIP), before);
}
