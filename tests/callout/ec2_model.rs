//! Claims under the EC2 model (docs/ec2-model.md): the fault proxy in front of moto throttles
//! with EC2's token buckets, answers describes from before a write for a while (eventual
//! consistency) and takes service time per request, in parallel. moto alone does none of it.

use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn via(proxy: &FaultProxy, extra: &str) -> String {
    cfg(&format!("endpoint={};{extra}", proxy.url()))
}

/// One call in a fresh callout host; returns (elapsed ms as the host measured it, result).
fn timed(node: &Node, entry: &str, config: &str, limit: Duration) -> (f64, Value) {
    let out = output_within(node.host().args(["call", entry, config]), limit);
    let line = lines(&out).remove(0);
    (line["ms"].as_f64().unwrap_or(f64::MAX), result_of(&line))
}

fn confirmed(r: &Value) -> Vec<Value> {
    r["route_tables"]
        .as_array()
        .map(|a| a.iter().map(|t| t["confirmed"].clone()).collect())
        .unwrap_or_default()
}

fn warned(r: &Value, what: &str) -> bool {
    r["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|w| w.contains(what))
}

fn stat(proxy: &FaultProxy, counter: &str, action: &str) -> u64 {
    proxy.model_stats()[counter][action].as_u64().unwrap_or(0)
}

/// A -> B -> A inside the stale window: A's second claim reads its own old route (B's write is
/// not visible yet). A failover claim writes anyway and every table ends at A; the re-assert
/// mode trusts the stale read and leaves B's routes in place, which is why failovers must not
/// use it.
#[test]
fn a_fail_back_inside_the_stale_window_leaves_every_table_at_the_claimer() {
    let w = World::create(3, &[]);
    let (a, b) = (Node::new(&w, &w.a), Node::new(&w, &w.b));
    let ec2 = FaultProxy::start(&w.endpoint);
    let limit = Duration::from_secs(30);
    let all = |m: &Member| vec![Some(m.eni.clone()); 3];

    for (write, a_wins) in [("always", true), ("changed", false)] {
        // Fresh model state per round: a long window, EC2's default buckets.
        ec2.model(json!({"consistency": {"stale_ms": 8000}}));
        let (_, r) = timed(&a, "vip_claim", &via(&ec2, "timeout_ms=5000"), limit);
        assert_eq!(r["ok"], true, "A: {r}");
        assert_eq!(w.routes(VIP), all(&w.a));
        ec2.model(json!({"consistency": {"stale_ms": 8000}}));
        // B's claim lands at once; its read-back can't see it within 1.5 s: unconfirmed.
        let t = Instant::now();
        let (b_ms, r) = timed(&b, "vip_claim", &via(&ec2, "timeout_ms=1500"), limit);
        assert_eq!(r["ok"], true, "B: {r}");
        assert_eq!(confirmed(&r), vec![json!(false); 3], "B: {r}");
        assert!(warned(&r, "eventually consistent"), "B: {r}");
        assert_eq!(actions(&r), ["replaced"; 3], "B: {r}");
        // A fails back, well inside B's window: its read shows A's own, stale, routes.
        let (a_ms, r) = timed(
            &a,
            "vip_claim",
            &via(&ec2, &format!("write={write};timeout_ms=5000")),
            limit,
        );
        assert!(
            t.elapsed() < Duration::from_millis(7000),
            "too slow to stay inside the window: B {b_ms:.0} ms, A {a_ms:.0} ms, in all {:?}",
            t.elapsed()
        );
        assert_eq!(r["ok"], true, "A again, write={write}: {r}");
        let stale = ec2.model_stats()["stale"].clone();
        assert!(
            w.route_tables
                .iter()
                .all(|id| stale[id].as_u64().unwrap_or(0) >= 1),
            "the model served no stale read: {stale}"
        );
        if a_wins {
            assert_eq!(actions(&r), ["replaced"; 3], "{r}");
            assert_eq!(w.routes(VIP), all(&w.a), "write={write}");
        } else {
            // The hazard the default avoids: the result says A holds it, EC2 says B.
            assert_eq!(actions(&r), ["unchanged"; 3], "{r}");
            assert_eq!(r["holder"], "self", "{r}");
            assert_eq!(w.routes(VIP), all(&w.b), "write={write}");
        }
    }
}

#[test]
fn the_read_back_waits_for_the_change_and_an_unseen_change_is_no_failure() {
    let w = World::create(2, &[]);
    let a = Node::new(&w, &w.a);
    let ec2 = FaultProxy::start(&w.endpoint);
    let limit = Duration::from_secs(30);

    // Visible after 800 ms: the read-back polls with backoff until it sees it.
    ec2.model(json!({"consistency": {"stale_ms": 800}}));
    let (ms, r) = timed(&a, "vip_claim", &via(&ec2, "timeout_ms=5000"), limit);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(confirmed(&r), vec![json!(true); 2], "{r}");
    assert_eq!(r["holder"], "self", "{r}");
    assert!(!warned(&r, "eventually consistent"), "{r}");
    assert!(
        ms >= 800.0,
        "confirmed before the change could show: {ms} ms"
    );
    assert!(
        stat(&ec2, "requests", "DescribeRouteTables") >= 3,
        "one read round + at least two read-backs: {}",
        ec2.model_stats()
    );

    // Visible only after 4 s, deadline 1.5 s: accepted, unconfirmed, ok, within the deadline.
    w.delete_route(&w.route_tables[0], VIP);
    w.delete_route(&w.route_tables[1], VIP);
    ec2.model(json!({"consistency": {"stale_ms": 4000}}));
    let (ms, r) = timed(&a, "vip_claim", &via(&ec2, "timeout_ms=1500"), limit);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(actions(&r), ["created", "created"], "{r}");
    assert_eq!(confirmed(&r), vec![json!(false); 2], "{r}");
    assert!(warned(&r, "eventually consistent"), "{r}");
    assert!(ms <= 1500.0 + 1000.0, "{ms} ms with timeout_ms=1500");
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone()); 2], "EC2 has it");
}

/// EC2's default buckets: 50 mutating tokens, 5 more per second. More tables than tokens need
/// the refill; the claim waits for it within its deadline instead of failing.
fn claim_many(tables: usize, timeout_ms: u64) -> (f64, Value, FaultProxy, World) {
    let w = World::create(tables, &[]);
    let a = Node::new(&w, &w.a);
    let ec2 = FaultProxy::start_model(&w.endpoint, &json!({"consistency": false}));
    let (ms, r) = timed(
        &a,
        "vip_claim",
        &via(&ec2, &format!("timeout_ms={timeout_ms}")),
        Duration::from_millis(timeout_ms + 30_000),
    );
    assert_eq!(r["ok"], true, "{tables} tables: {r}");
    assert_eq!(r["holder"], "self", "{r}");
    assert_eq!(actions(&r), vec!["created"; tables], "{r}");
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone()); tables]);
    assert!(ms <= timeout_ms as f64 + 1000.0, "{ms} ms");
    (ms, r, ec2, w)
}

#[test]
fn sixty_four_tables_under_the_default_buckets_all_end_at_the_claimer() {
    let (ms, _, ec2, _) = claim_many(64, 20_000);
    let throttled = stat(&ec2, "throttled", "CreateRoute");
    assert!(
        throttled > 0,
        "64 creates in a 50-token bucket: {}",
        ec2.model_stats()
    );
    // 14 tokens at 5/s: at least two refills of the bucket.
    assert!(ms >= 2000.0, "{ms} ms: the bucket was not honoured");
    eprintln!("64 tables: claim {ms:.0} ms, {throttled} throttled CreateRoute answers");
}

/// 200 tables need (200 - 50) / 5 = 30 s of refill at EC2's default limits, whatever the
/// client does: `timeout_ms` must allow for it.
#[test]
fn two_hundred_tables_need_thirty_seconds_and_get_them() {
    let (ms, _, ec2, _) = claim_many(200, 45_000);
    let throttled = stat(&ec2, "throttled", "CreateRoute");
    assert!(ms >= 29_000.0, "{ms} ms: faster than the bucket allows");
    eprintln!("200 tables: claim {ms:.0} ms, {throttled} throttled CreateRoute answers");
}

#[test]
fn requests_in_flight_are_capped() {
    let w = World::create(8, &[]);
    let a = Node::new(&w, &w.a);
    let ec2 = FaultProxy::start(&w.endpoint);
    let limit = Duration::from_secs(30);
    let model = json!({"throttle": false, "consistency": false, "latency_ms": 300});

    ec2.model(model.clone());
    let (_, r) = timed(
        &a,
        "vip_claim",
        &via(&ec2, "max_in_flight=2;timeout_ms=9000"),
        limit,
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(actions(&r), vec!["created"; 8], "{r}");
    let seen = ec2.model_stats()["max_in_flight"].as_u64().unwrap_or(0);
    assert_eq!(
        seen, 2,
        "max_in_flight=2 but {seen} requests were in flight at once"
    );

    // The default lets all 8 out at once: the counter is real.
    ec2.model(model);
    let (_, r) = timed(&a, "vip_claim", &via(&ec2, "timeout_ms=9000"), limit);
    assert_eq!(r["ok"], true, "{r}");
    let seen = ec2.model_stats()["max_in_flight"].as_u64().unwrap_or(0);
    assert_eq!(seen, 8, "{}", ec2.model_stats());
}

/// A small bucket (2 tokens, 2 per second) for 10 tables: throttling is retried with jittered
/// backoff until the deadline; when the deadline is too short the cause is still `throttled`,
/// and what did land is reported as such.
#[test]
fn throttling_is_retried_until_the_deadline_and_then_reported_as_such() {
    let w = World::create(10, &[]);
    let a = Node::new(&w, &w.a);
    let ec2 = FaultProxy::start(&w.endpoint);
    let limit = Duration::from_secs(40);
    let small = json!({"consistency": false,
                       "throttle": {"categories": {"mutating": {"size": 2, "refill": 2}}}});

    ec2.model(small.clone());
    let (_, r) = timed(&a, "vip_claim", &via(&ec2, "timeout_ms=20000"), limit);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(actions(&r), vec!["created"; 10], "{r}");
    assert!(
        stat(&ec2, "throttled", "CreateRoute") > 0,
        "{}",
        ec2.model_stats()
    );

    for t in &w.route_tables {
        w.delete_route(t, VIP);
    }
    ec2.model(small);
    let (ms, r) = timed(&a, "vip_claim", &via(&ec2, "timeout_ms=1500"), limit);
    assert!(ms <= 1500.0 + 1000.0, "{ms} ms");
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "throttled", "{r}");
    let acts = actions(&r);
    let created = acts.iter().filter(|a| *a == "created").count();
    assert!((2..10).contains(&created), "{acts:?}");
    // What the result says is what EC2 holds.
    let held = w.routes(VIP);
    for t in r["route_tables"].as_array().expect("tables") {
        // The result lists tables by id; the world in creation order.
        let i = w
            .route_tables
            .iter()
            .position(|id| t["id"] == id.as_str())
            .expect("a table of the world");
        let landed = held[i].as_deref() == Some(w.a.eni.as_str());
        assert_eq!(t["action"] == "created", landed, "{t} vs EC2 {:?}", held[i]);
        if !landed {
            assert_eq!(t["error"]["kind"], "throttled", "{t}");
        }
    }
}
