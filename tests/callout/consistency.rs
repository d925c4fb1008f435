//! EC2 is eventually consistent and has no conditional writes: a read can lag another
//! member's change, a delete can't say "only if still mine", and an answer can arrive after
//! the change landed. These tests hold the library to what the contract promises under that:
//! a failover claim writes every table, a release says when its read may have been stale and
//! never re-sends a delete that may have landed, and the settle pass never overrides a route
//! another member created after the claim.

use crate::common::*;
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn via(proxy: &FaultProxy, extra: &str) -> String {
    cfg(&format!("endpoint={};{extra}", proxy.url()))
}

fn call(node: &Node, entry: &str, config: &str) -> Value {
    let out = output_within(
        node.host().args(["call", entry, config]),
        Duration::from_secs(40),
    );
    result_of(&lines(&out)[0])
}

fn warned(r: &Value, all: &[&str]) -> bool {
    r["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|w| all.iter().all(|s| w.contains(s)))
}

#[test]
fn a_delete_whose_answer_came_too_late_is_not_sent_again() {
    let w = World::create(1, &[]);
    let a = Node::new(&w, &w.a);
    let t0 = &w.route_tables[0];
    assert_eq!(a.claim(&cfg(""))["ok"], true, "setup");
    let ec2 = FaultProxy::start(&w.endpoint);

    // The delete lands, its answer comes after the SDK's 3 s attempt timeout. A second
    // DeleteRoute could land after another member's claim and delete *its* route.
    ec2.set(json!([
        {"action": "DeleteRoute", "fault": "delay", "where": "after", "ms": 4500, "count": -1},
    ]));
    let t = Instant::now();
    let r = call(&a, "vip_release", &via(&ec2, "timeout_ms=9000"));
    let ms = t.elapsed().as_millis();
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "timeout", "{r}");
    assert_eq!(actions(&r), ["failed"], "{r}");
    assert_eq!(
        ec2.attempts_on("DeleteRoute", t0),
        1,
        "a DeleteRoute that may have landed was sent again: {:?}",
        ec2.log()
    );
    assert!(
        ms < 9000,
        "gave up at the attempt timeout, not the deadline: {ms} ms"
    );
    assert_eq!(w.routes(VIP), vec![None], "the one delete did land");

    // A throttled delete certainly did not land: that one is sent again.
    assert_eq!(a.claim(&cfg(""))["ok"], true, "setup");
    ec2.set(json!([{"action": "DeleteRoute", "fault": "throttle", "count": 2}]));
    let r = call(&a, "vip_release", &via(&ec2, "timeout_ms=9000"));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(actions(&r), ["deleted"], "{r}");
    assert_eq!(ec2.attempts_on("DeleteRoute", t0), 3, "{:?}", ec2.log());
    assert_eq!(w.routes(VIP), vec![None]);
}

#[test]
fn a_release_says_when_the_read_it_deleted_on_may_have_been_stale() {
    let w = World::create(2, &[]);
    let a = Node::new(&w, &w.a);
    assert_eq!(a.claim(&cfg(""))["ok"], true, "setup");

    let r = a.release(&cfg(""));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(actions(&r), ["deleted", "deleted"], "{r}");
    assert_eq!(r["stale_read_risk"], true, "{r}");
    assert!(
        warned(
            &r,
            &[
                &w.route_tables[0],
                &w.route_tables[1],
                "eventually consistent"
            ]
        ),
        "{r}"
    );

    // Nothing deleted: nothing to warn about.
    let r = a.release(&cfg(""));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(actions(&r), ["unchanged", "unchanged"], "{r}");
    assert!(r.get("stale_read_risk").is_none(), "{r}");
}

#[test]
fn the_settle_pass_never_overrides_a_route_created_after_the_claim() {
    let w = World::create(1, &[]);
    let (a, b) = (Node::new(&w, &w.a), Node::new(&w, &w.b));
    let t0 = w.route_tables[0].clone();
    assert_eq!(b.claim(&cfg(""))["ok"], true, "setup");
    let ec2 = FaultProxy::start(&w.endpoint);
    // moto lets CreateRoute overwrite an existing ENI route; EC2 answers RouteAlreadyExists.
    // The proxy answers as EC2 does for the settle pass's create: in the race modelled here,
    // another member created the route between the settle read and that create.
    ec2.set(json!([
        {"action": "CreateRoute", "fault": "ec2_error", "code": "RouteAlreadyExists",
         "message": "The route identified by 192.168.240.10/32 already exists.", "count": -1},
    ]));
    let child = a
        .host()
        .args([
            "call",
            "vip_claim",
            &via(&ec2, "settle_ms=2500;timeout_ms=9000"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("zfhost");
    // Once A's switch landed, a late release elsewhere deletes the route.
    let t = Instant::now();
    while ec2.attempts("ReplaceRoute") == 0 {
        assert!(t.elapsed() < Duration::from_secs(8), "{:?}", ec2.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    w.delete_route(&t0, VIP);
    let out = child.wait_with_output().expect("zfhost output");
    let r = result_of(&lines(&out)[0]);

    assert_eq!(r["ok"], true, "{r}");
    let sent: Vec<&str> = ec2
        .log()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.ends_with("Route"))
        .map(|a| match a {
            "ReplaceRoute" => "replace",
            "CreateRoute" => "create",
            _ => "other",
        })
        .collect();
    assert_eq!(
        sent,
        ["replace", "create"],
        "the settle pass must create where the route vanished and leave a route that exists alone"
    );
    assert!(warned(&r, &[&t0, "another member created it again"]), "{r}");
    assert_eq!(r["route_tables"][0]["self"], false, "{r}");
}
