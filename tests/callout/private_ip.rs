//! `mode=private-ip` through the C ABI (zfhost), against moto behind the EC2 model of
//! `tests/support/faultproxy.py` (docs/ec2-model.md, "Private IPs and Elastic IPs"). Both
//! members are in one subnet; member a holds the world's secondary address at the start.
//!
//! What these tests rely on from the model, where moto 5.2.5 differs from EC2:
//! - `AssignPrivateIpAddresses` with `AllowReassignment` *moves* the address (moto leaves it on
//!   the old ENI too: `under_plain_moto_the_address_stays_on_the_old_eni_through_the_model_it_moves`);
//! - the `addresses.private-ip-address` filter of `DescribeNetworkInterfaces` matches secondary
//!   addresses (moto's matches primaries only), so "who holds it" reads right;
//! - `UnassignPrivateIpAddresses` of an address the ENI no longer holds answers
//!   `InvalidParameterValue` "... not assigned ..." (moto succeeds silently): the late release;
//! - `address_consistency`: reads of ENIs lag a move, as EC2's do.
//!
//! After each step the truth is read around the library, straight from moto (`World::holders`).

use crate::common::*;
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};

const ASSIGN: &str = "AssignPrivateIpAddresses";
const UNASSIGN: &str = "UnassignPrivateIpAddresses";
const DESCRIBE_ENIS: &str = "DescribeNetworkInterfaces";

/// EC2's address semantics and nothing else (no throttling, reads consistent).
fn semantics() -> Value {
    json!({"throttle": false, "consistency": false})
}

/// The same, with ENI reads `stale_ms` behind each move.
fn stale(stale_ms: u64) -> Value {
    json!({"throttle": false, "consistency": false, "address_consistency": {"stale_ms": stale_ms}})
}

/// A one-subnet world, member a holding `ip`, the EC2 model in front of moto.
struct Pip {
    w: World,
    ip: String,
    a: Node,
    b: Node,
    ec2: FaultProxy,
}

impl Pip {
    fn new(model: Value) -> Pip {
        let w = World::create(1, &["--same-subnet", "--secondary-ip"]);
        let ip = w.secondary_ip.as_ref().expect("secondary_ip").ip.clone();
        assert_eq!(w.a.subnet, w.b.subnet, "one subnet");
        let ec2 = FaultProxy::start_model(&w.endpoint, &model);
        let (a, b) = (Node::new(&w, &w.a), Node::new(&w, &w.b));
        let p = Pip { w, ip, a, b, ec2 };
        assert_eq!(p.holders(), only(&p.w.a.eni), "setup: a holds it");
        p
    }

    /// A config for the world's address through the model, with `extra` appended.
    fn cfg(&self, extra: &str) -> String {
        self.cfg_at(&self.ec2.url(), extra)
    }

    fn cfg_at(&self, endpoint: &str, extra: &str) -> String {
        let mut c = format!("mode=private-ip;vip={};endpoint={endpoint}", self.ip);
        if !extra.is_empty() {
            c.push(';');
            c.push_str(extra);
        }
        c
    }

    fn holders(&self) -> Vec<String> {
        self.w.holders(&self.ip)
    }

    /// One call by `node` in a fresh process within `timeout_ms` (+ slack); the result.
    fn call(&self, node: &Node, entry: &str, extra: &str, timeout_ms: u64) -> Value {
        let config = self.cfg(&format!("timeout_ms={timeout_ms};{extra}"));
        call_within(node.host(), entry, config.trim_end_matches(';'), timeout_ms).1
    }

    /// Assign/Unassign requests that reached the proxy since the last `set`.
    fn mutations(&self) -> usize {
        self.ec2.attempts(ASSIGN) + self.ec2.attempts(UNASSIGN)
    }
}

/// The `address` object of a result, with the shape the contract gives it in this mode.
fn address<'a>(r: &'a Value, ip: &str) -> &'a Value {
    assert!(
        r.get("route_tables").is_none(),
        "mode=private-ip has no route_tables: {r}"
    );
    let a = &r["address"];
    assert_eq!(a["kind"], "private-ip", "{r}");
    assert_eq!(a["ip"], ip, "{r}");
    for k in ["allocation_id", "association_id", "private_ip"] {
        assert!(a.get(k).is_none(), "{k} belongs to an EIP: {r}");
    }
    a
}

/// What `holders` reads when `eni` alone holds the address.
fn only(eni: &str) -> Vec<String> {
    vec![eni.to_owned()]
}

/// An address in member a's subnet (`10.n.1.<host>`).
fn in_subnet(w: &World, host: u8) -> String {
    let (net, _) = w.a.private_ip.rsplit_once('.').expect("IPv4");
    format!("{net}.{host}")
}

#[test]
fn a_claim_moves_the_address_here_and_a_release_takes_back_only_ours() {
    let p = Pip::new(semantics());
    let (wa, wb) = (p.w.a.eni.clone(), p.w.b.eni.clone());

    // B claims: the address leaves A's ENI for B's.
    p.ec2.set(json!([]));
    let r = p.call(&p.b, "vip_claim", "", 8000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["op"], "claim");
    assert_eq!(r["vip"], format!("{}/32", p.ip), "{r}");
    assert_eq!(r["eni"], wb.as_str(), "{r}");
    assert_eq!(r["holder"], "self", "{r}");
    let a = address(&r, &p.ip);
    assert_eq!(a["target"], wb.as_str(), "{r}");
    assert_eq!(a["self"], true, "{r}");
    assert_eq!(a["action"], "assigned", "{r}");
    assert_eq!(a["confirmed"], true, "{r}");
    assert!(
        warned(&r, &["not on label"]),
        "the VIP is on no label of this host: a claim says so: {r}"
    );
    assert_eq!(p.holders(), only(&wb), "moto: only B holds it");
    // One Assign, to B's ENI, allowed to take the address from A.
    assert_eq!(
        p.ec2.attempts_with(
            ASSIGN,
            &[
                ("NetworkInterfaceId", &wb),
                ("PrivateIpAddress.1", &p.ip),
                ("AllowReassignment", "true")
            ]
        ),
        1,
        "{}",
        p.ec2.compact_log()
    );
    assert_eq!(p.ec2.attempts(UNASSIGN), 0, "{}", p.ec2.compact_log());

    // Status, from both sides: reads only.
    p.ec2.set(json!([]));
    let s = p.call(&p.a, "vip_status", "", 5000);
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["op"], "status");
    assert_eq!(s["holder"], "other", "{s}");
    let sa = address(&s, &p.ip);
    assert_eq!(sa["target"], wb.as_str(), "{s}");
    assert_eq!(sa["self"], false, "{s}");
    assert!(sa.get("action").is_none(), "status acts on nothing: {s}");
    assert_eq!(s["local"]["vip_present"], false, "{s}");
    assert_eq!(s["source_dest_check"], false, "{s}");
    let s = p.call(&p.b, "vip_status", "", 5000);
    assert_eq!(s["holder"], "self", "{s}");
    assert_eq!(address(&s, &p.ip)["self"], true, "{s}");
    assert!(
        p.ec2.attempts(DESCRIBE_ENIS) >= 2,
        "{}",
        p.ec2.compact_log()
    );
    assert_eq!(p.mutations(), 0, "status changed something");
    assert_eq!(p.holders(), only(&wb));

    // A's release: not A's any more, nothing sent, nothing changed.
    let r = p.call(&p.a, "vip_release", "", 5000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["holder"], "other", "{r}");
    let ra = address(&r, &p.ip);
    assert_eq!(ra["action"], "unchanged", "{r}");
    assert_eq!(ra["target"], wb.as_str(), "{r}");
    assert!(ra.get("confirmed").is_none(), "nothing written: {r}");
    assert_eq!(p.mutations(), 0, "{}", p.ec2.compact_log());
    assert_eq!(p.holders(), only(&wb));

    // B's release: unassigned from B, and nobody holds it.
    p.ec2.set(json!([]));
    let r = p.call(&p.b, "vip_release", "", 8000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["op"], "release");
    assert_eq!(r["holder"], "none", "{r}");
    let rb = address(&r, &p.ip);
    assert_eq!(rb["action"], "unassigned", "{r}");
    assert_eq!(rb["confirmed"], true, "{r}");
    assert_eq!(rb["target"], Value::Null, "{r}");
    assert_eq!(rb["self"], false, "{r}");
    assert_eq!(
        p.ec2
            .attempts_with(UNASSIGN, &[("NetworkInterfaceId", &wb)]),
        1,
        "{}",
        p.ec2.compact_log()
    );
    assert_eq!(p.holders(), Vec::<String>::new(), "moto: nobody holds it");

    // Released twice: nothing to do.
    p.ec2.set(json!([]));
    let r = p.call(&p.b, "vip_release", "", 5000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(address(&r, &p.ip)["action"], "unchanged", "{r}");
    assert_eq!(r["holder"], "none", "{r}");
    assert_eq!(p.mutations(), 0, "{}", p.ec2.compact_log());

    // A claims an address nobody holds: assigned.
    let r = p.call(&p.a, "vip_claim", "", 8000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(address(&r, &p.ip)["action"], "assigned", "{r}");
    assert_eq!(address(&r, &p.ip)["target"], wa.as_str(), "{r}");
    assert_eq!(r["holder"], "self", "{r}");
    assert_eq!(p.holders(), only(&wa));

    // write=changed: ours already, no mutating call; the default (always) writes again.
    p.ec2.set(json!([]));
    let r = p.call(&p.a, "vip_claim", "write=changed", 5000);
    assert_eq!(address(&r, &p.ip)["action"], "unchanged", "{r}");
    assert_eq!(p.mutations(), 0, "{}", p.ec2.compact_log());
    let r = p.call(&p.a, "vip_claim", "", 5000);
    assert_eq!(address(&r, &p.ip)["action"], "assigned", "{r}");
    assert_eq!(p.ec2.attempts(ASSIGN), 1, "{}", p.ec2.compact_log());
    assert_eq!(p.holders(), only(&wa));
}

/// The model's first row, shown: moto alone keeps a reassigned address on its old ENI too, and
/// its filter does not see secondary addresses; through the model the address moves and "who
/// holds it" reads as EC2 answers it. The tests above and below rely on that.
#[test]
fn under_plain_moto_the_address_stays_on_the_old_eni_through_the_model_it_moves() {
    let p = Pip::new(semantics());
    let (wa, wb) = (p.w.a.eni.clone(), p.w.b.eni.clone());
    let moto = p.w.endpoint.clone();

    // Straight at moto: status cannot even see that A holds it (the filter sees primaries only).
    let (_, s) = call_within(
        p.a.host(),
        "vip_status",
        &p.cfg_at(&moto, "timeout_ms=5000"),
        5000,
    );
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["holder"], "none", "moto's filter: {s}");
    // B's claim: moto accepts the Assign and leaves the address on A as well; no read ever
    // shows B alone, so the claim can't confirm it.
    let (_, r) = call_within(
        p.b.host(),
        "vip_claim",
        &p.cfg_at(&moto, "timeout_ms=1500"),
        1500,
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(address(&r, &p.ip)["action"], "assigned", "{r}");
    assert_eq!(address(&r, &p.ip)["confirmed"], false, "{r}");
    let mut both = vec![wa.clone(), wb.clone()];
    both.sort();
    assert_eq!(p.holders(), both, "moto keeps the address on the old ENI");
    assert_eq!(
        p.w.holders_py(&p.ip),
        both,
        "world.py reads what World::holders reads"
    );

    // Back to A alone, then the same claim through the model: it moves.
    p.w.unassign_ip(&wb, &p.ip);
    assert_eq!(p.holders(), only(&wa));
    let s = p.call(&p.a, "vip_status", "", 5000);
    assert_eq!(
        s["holder"], "self",
        "through the model A is seen holding it: {s}"
    );
    let r = p.call(&p.b, "vip_claim", "", 8000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(address(&r, &p.ip)["confirmed"], true, "{r}");
    assert_eq!(
        p.holders(),
        only(&wb),
        "through the model the address moved"
    );
    assert_eq!(
        p.ec2.model_stats()["addresses"]["moved"],
        1,
        "{}",
        p.ec2.model_stats()
    );
}

#[test]
fn the_read_back_waits_out_stale_reads_or_says_it_could_not_confirm() {
    let p = Pip::new(stale(1500));
    let (wa, wb) = (p.w.a.eni.clone(), p.w.b.eni.clone());

    // Reads show A for 1.5 s after the move: the claim keeps reading until they show B.
    p.ec2.set(json!([]));
    let t = Instant::now();
    let r = p.call(&p.b, "vip_claim", "", 6000);
    let ms = t.elapsed().as_millis();
    assert_eq!(r["ok"], true, "{r}");
    let a = address(&r, &p.ip);
    assert_eq!(a["action"], "assigned", "{r}");
    assert_eq!(a["confirmed"], true, "{r}");
    assert_eq!(a["target"], wb.as_str(), "{r}");
    assert_eq!(r["holder"], "self", "{r}");
    assert!(
        !warned(&r, &["eventually consistent"]),
        "confirmed: no warning: {r}"
    );
    assert!(
        ms >= 1400,
        "confirmed before the stale window ended: {ms} ms"
    );
    let stale_reads = p
        .ec2
        .log()
        .iter()
        .filter(|e| {
            e["action"] == DESCRIBE_ENIS && e["stale"].as_array().is_some_and(|s| !s.is_empty())
        })
        .count();
    assert!(
        stale_reads >= 1,
        "no read was answered stale: the test no longer exercises it: {:?}",
        p.ec2.log()
    );
    assert_eq!(p.holders(), only(&wb));

    // Reads stale for longer than the deadline: ok, unconfirmed, with a warning that says why.
    p.ec2.model(stale(5000));
    let r = p.call(&p.a, "vip_claim", "", 1500);
    assert_eq!(r["ok"], true, "{r}");
    let a = address(&r, &p.ip);
    assert_eq!(a["action"], "assigned", "{r}");
    assert_eq!(a["confirmed"], false, "{r}");
    assert_eq!(a["target"], wb.as_str(), "the last read showed B: {r}");
    assert!(
        warned(&r, &[&p.ip, "eventually consistent"]),
        "an unconfirmed claim says why: {r}"
    );
    assert_eq!(p.holders(), only(&wa), "the move did land");
}

#[test]
fn a_late_release_by_the_old_holder_changes_nothing() {
    let p = Pip::new(stale(5000));
    let wb = p.w.b.eni.clone();

    // B takes the address; for 5 s, reads still show A holding it.
    let r = p.call(&p.b, "vip_claim", "", 1500);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(address(&r, &p.ip)["action"], "assigned", "{r}");
    assert_eq!(p.holders(), only(&wb));

    // A's release reads the old state and unassigns; EC2 answers that A does not hold it.
    p.ec2.set(json!([]));
    let r = p.call(&p.a, "vip_release", "", 3000);
    assert_eq!(r["ok"], true, "{r}");
    let a = address(&r, &p.ip);
    assert_eq!(a["action"], "unchanged", "{r}");
    assert!(a.get("confirmed").is_none(), "{r}");
    assert!(warned(&r, &["no longer holds", &p.ip]), "{r}");
    let log = p.ec2.log();
    let unassigns: Vec<&Value> = log.iter().filter(|e| e["action"] == UNASSIGN).collect();
    assert_eq!(
        unassigns.len(),
        1,
        "the stale read must have led to one Unassign (else the test no longer exercises the \
         late release): {}",
        p.ec2.compact_log()
    );
    assert_eq!(
        unassigns[0]["params"]["NetworkInterfaceId"],
        p.w.a.eni.as_str()
    );
    assert_eq!(unassigns[0]["fault"], "model:refuse", "{:?}", unassigns[0]);
    assert_eq!(p.holders(), only(&wb), "B keeps the address");

    // Once reads are current, A's release sees B and sends nothing.
    p.ec2.model(semantics());
    p.ec2.set(json!([]));
    let r = p.call(&p.a, "vip_release", "", 3000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(address(&r, &p.ip)["action"], "unchanged", "{r}");
    assert_eq!(r["holder"], "other", "{r}");
    assert_eq!(p.mutations(), 0, "{}", p.ec2.compact_log());
    assert_eq!(p.holders(), only(&wb));
}

fn refused(p: &Pip, node: &Node, entry: &str, config: &str, want: &str) -> Value {
    let (_, r) = call_within(node.host(), entry, config, 5000);
    assert_eq!(r["ok"], false, "{config:?} must be refused: {r}");
    assert_eq!(kind(&r), want, "{config:?}: {r}");
    assert!(
        r["error"]["message"].as_str().is_some_and(|m| m.len() > 10),
        "{r}"
    );
    assert_eq!(p.mutations(), 0, "{config:?}: {}", p.ec2.compact_log());
    r
}

fn message(r: &Value) -> &str {
    r["error"]["message"].as_str().unwrap_or("")
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let p = Pip::new(semantics());
    let (wa, wb) = (p.w.a.eni.clone(), p.w.b.eni.clone());
    let url = p.ec2.url();
    let subnet =
        p.w.secondary_ip
            .as_ref()
            .expect("secondary_ip")
            .cidr
            .clone();
    let with = |vip: &str, extra: &str| {
        let c = format!("mode=private-ip;vip={vip};endpoint={url};timeout_ms=5000");
        if extra.is_empty() {
            c
        } else {
            format!("{c};{extra}")
        }
    };
    p.ec2.set(json!([]));

    // Addresses EC2 could not move here: refused by the library before any mutation.
    let outside_subnet = p.w.cidr.replace("0.0/16", "3.50"); // subnet c's
    for entry in ["vip_claim", "vip_release", "vip_status"] {
        let r = refused(&p, &p.a, entry, &with(&outside_subnet, ""), "validation");
        assert!(message(&r).contains(&subnet), "names the subnet: {r}");
    }
    let r = refused(&p, &p.a, "vip_claim", &with(VIP, ""), "validation");
    assert!(message(&r).contains(&subnet), "{r}");
    for host in [0, 1, 2, 3, 255] {
        let r = refused(
            &p,
            &p.a,
            "vip_claim",
            &with(&in_subnet(&p.w, host), ""),
            "validation",
        );
        assert!(message(&r).contains("reserved"), "{r}");
    }
    refused(
        &p,
        &p.a,
        "vip_claim",
        &with(&p.w.a.private_ip, ""),
        "validation",
    );
    let r = refused(
        &p,
        &p.a,
        "vip_claim",
        &with(&p.w.b.private_ip, ""),
        "validation",
    );
    assert!(
        message(&r).contains(&wb),
        "names the ENI whose primary it is: {r}"
    );
    refused(
        &p,
        &p.a,
        "vip_release",
        &with(&p.w.b.private_ip, ""),
        "validation",
    );

    // Keys that do not belong to this mode, and malformed values.
    let ip = p.ip.clone();
    for (config, why) in [
        (
            with(&ip, &format!("route_tables={}", p.w.route_tables[0])),
            "mode=route",
        ),
        (with(&ip, "route_table_tag=irisvip=prod"), "mode=route"),
        (
            with(
                &ip,
                &format!("allocation_id={}", "eipalloc-0123456789abcdef0"),
            ),
            "mode=eip",
        ),
        (with(&ip, "public_ip=198.51.100.7"), "mode=eip"),
        (
            with(&ip, &format!("private_ip={}", p.w.a.private_ip)),
            "mode=eip",
        ),
        (with("fd00:ec2::10", ""), "IPv6"),
        (with(&ip, "mode=private-ip"), "twice"),
        (with(&ip, "dry_run=perhaps"), "dry_run"),
        (with("10.0.1", ""), "vip"),
        (format!("mode=private_ip;vip={ip};endpoint={url}"), "mode"),
    ] {
        let r = refused(&p, &p.a, "vip_claim", &config, "config");
        assert!(message(&r).contains(why), "{config:?}: {r}");
    }
    // A network is not an address.
    for v in [format!("{ip}/24"), format!("{ip}/31")] {
        let r = refused(&p, &p.a, "vip_claim", &with(&v, ""), "validation");
        assert!(message(&r).contains("single address"), "{r}");
    }
    // No vip and no address on the label: nothing to move.
    refused(
        &p,
        &p.a,
        "vip_claim",
        &format!("mode=private-ip;interface=nosuch:7;endpoint={url}"),
        "config",
    );

    assert_eq!(p.holders(), only(&wa), "a refused call moved the address");
}

#[test]
fn a_dry_run_plans_and_changes_nothing() {
    let p = Pip::new(semantics());
    let wa = p.w.a.eni.clone();
    p.ec2.set(json!([]));
    for (node, entry, extra, action, holder) in [
        (&p.b, "vip_claim", "dry_run=1", "planned", "other"),
        (&p.a, "vip_claim", "dry_run=1", "planned", "self"),
        (
            &p.a,
            "vip_claim",
            "dry_run=1;write=changed",
            "unchanged",
            "self",
        ),
        (&p.a, "vip_release", "dry_run=1", "planned", "self"),
        (&p.b, "vip_release", "dry_run=1", "unchanged", "other"),
    ] {
        let r = p.call(node, entry, extra, 5000);
        assert_eq!(r["ok"], true, "{entry} {extra}: {r}");
        assert_eq!(r["dry_run"], true, "{r}");
        assert_eq!(r["holder"], holder, "{entry} {extra}: {r}");
        let a = address(&r, &p.ip);
        assert_eq!(a["action"], action, "{entry} {extra}: {r}");
        assert_eq!(a["target"], wa.as_str(), "{r}");
        assert!(a.get("confirmed").is_none(), "{r}");
    }
    assert!(
        p.ec2.attempts(DESCRIBE_ENIS) >= 5,
        "{}",
        p.ec2.compact_log()
    );
    assert_eq!(
        p.mutations(),
        0,
        "a dry run sent a mutation: {}",
        p.ec2.compact_log()
    );
    assert_eq!(p.holders(), only(&wa));
}

#[test]
fn throttling_is_retried_and_a_failed_mutation_is_reported() {
    let p = Pip::new(semantics());
    let wb = p.w.b.eni.clone();

    // Throttled reads and a throttled Assign: retried, the claim succeeds.
    p.ec2.set(json!([
        {"action": DESCRIBE_ENIS, "fault": "throttle", "code": "Throttling", "count": 1},
        {"action": ASSIGN, "fault": "throttle", "code": "RequestLimitExceeded", "count": 2},
    ]));
    let r = p.call(&p.b, "vip_claim", "", 8000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(address(&r, &p.ip)["action"], "assigned", "{r}");
    assert_eq!(address(&r, &p.ip)["confirmed"], true, "{r}");
    assert_eq!(p.ec2.attempts(ASSIGN), 3, "{}", p.ec2.compact_log());
    assert_eq!(p.holders(), only(&wb));

    // The model's own bucket: one token, one a second. Two claims back to back: the second
    // waits for the refill and still succeeds.
    p.ec2.model(json!({"consistency": false,
        "throttle": {"actions": {ASSIGN: {"size": 1, "refill": 1}}}}));
    p.ec2.set(json!([]));
    for node in [&p.a, &p.b] {
        let r = p.call(node, "vip_claim", "", 8000);
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(address(&r, &p.ip)["action"], "assigned", "{r}");
    }
    assert!(
        p.ec2.model_stats()["throttled"][ASSIGN]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "the bucket never ran dry: {}",
        p.ec2.model_stats()
    );
    assert_eq!(p.holders(), only(&wb));
    p.ec2.model(semantics());

    // A 500 on every Assign: retried (it is idempotent), then reported; nothing moved.
    p.ec2.set(json!([
        {"action": ASSIGN, "fault": "ec2_error", "code": "InternalError", "status": 500, "count": -1},
    ]));
    let r = p.call(&p.a, "vip_claim", "", 8000);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "aws", "{r}");
    let a = address(&r, &p.ip);
    assert_eq!(a["action"], "failed", "{r}");
    assert_eq!(a["error"]["kind"], "aws", "{r}");
    assert!(
        a["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("InternalError"),
        "{r}"
    );
    assert_eq!(a["target"], wb.as_str(), "{r}");
    assert_ne!(r["holder"], "self", "{r}");
    let tries = p.ec2.attempts(ASSIGN);
    assert!(
        (2..=4).contains(&tries),
        "500 tried {tries} times: {}",
        p.ec2.compact_log()
    );
    assert_eq!(p.holders(), only(&wb));

    // A 500 on Unassign: it may have landed, so it is not sent again; reported, B keeps it.
    p.ec2.set(json!([
        {"action": UNASSIGN, "fault": "ec2_error", "code": "InternalError", "status": 500, "count": -1},
    ]));
    let r = p.call(&p.b, "vip_release", "", 8000);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "aws", "{r}");
    assert_eq!(address(&r, &p.ip)["action"], "failed", "{r}");
    assert_eq!(p.ec2.attempts(UNASSIGN), 1, "{}", p.ec2.compact_log());
    assert_eq!(p.holders(), only(&wb));

    // Denied: a permission error naming the action, one attempt.
    p.ec2
        .set(json!([{"action": ASSIGN, "fault": "unauthorized", "count": -1}]));
    let r = p.call(&p.a, "vip_claim", "", 5000);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "permission", "{r}");
    assert!(message(&r).contains("ec2:AssignPrivateIpAddresses"), "{r}");
    assert_eq!(p.ec2.attempts(ASSIGN), 1, "{}", p.ec2.compact_log());
    assert_eq!(p.holders(), only(&wb));
}

#[test]
fn an_ec2_that_never_answers_costs_the_deadline_and_no_more() {
    // Reads that never answer: a short deadline. A mutation that never answers: long enough
    // that discovery surely ends before it on a loaded machine, so the mutation is reached.
    const TIMEOUT_MS: u64 = 1200;
    const MUTATION_TIMEOUT_MS: u64 = 2500;
    let p = Pip::new(semantics());
    let (wa, wb) = (p.w.a.eni.clone(), p.w.b.eni.clone());
    let hang =
        |action: &str| json!([{"action": action, "fault": "hang", "max_s": 10, "count": -1}]);
    let timed = |node: &Node, entry: &str, timeout_ms: u64| {
        let config = p.cfg(&format!("timeout_ms={timeout_ms}"));
        let (line, r) = call_within(node.host(), entry, &config, timeout_ms);
        let ms = line["ms"].as_f64().unwrap_or(0.0);
        assert!(
            ms >= timeout_ms as f64 - 100.0,
            "gave up early: {ms} ms: {r}"
        );
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(kind(&r), "timeout", "{r}");
        r
    };

    // The Assign is accepted and never answered: it may or may not have landed.
    p.ec2.set(hang(ASSIGN));
    let r = timed(&p.b, "vip_claim", MUTATION_TIMEOUT_MS);
    assert_eq!(p.ec2.attempts(ASSIGN), 1, "{r}\n{}", p.ec2.compact_log());
    assert_eq!(address(&r, &p.ip)["action"], "failed", "{r}");
    assert!(message(&r).contains("may or may not"), "{r}");
    assert_eq!(p.holders(), only(&wa), "the hung Assign never reached moto");

    // The Assign lands, its answer comes too late: a timeout, and the address did reach B.
    // (A request a fault rule takes bypasses the model: moto's Assign leaves it on A too.)
    p.ec2.set(json!([
        {"action": ASSIGN, "fault": "delay", "where": "after", "ms": 4000, "count": 1},
    ]));
    let r = timed(&p.b, "vip_claim", MUTATION_TIMEOUT_MS);
    assert_eq!(p.ec2.attempts(ASSIGN), 1, "{r}\n{}", p.ec2.compact_log());
    assert_eq!(address(&r, &p.ip)["action"], "failed", "{r}");
    assert!(p.holders().contains(&wb), "it landed: {:?}", p.holders());
    p.w.unassign_ip(&wa, &p.ip);
    assert_eq!(p.holders(), only(&wb));

    // Reads never answered: release and status time out too, nothing changes.
    p.ec2.set(hang(DESCRIBE_ENIS));
    timed(&p.b, "vip_release", TIMEOUT_MS);
    timed(&p.b, "vip_status", TIMEOUT_MS);
    p.ec2.set(hang(UNASSIGN));
    let r = timed(&p.b, "vip_release", MUTATION_TIMEOUT_MS);
    assert_eq!(p.ec2.attempts(UNASSIGN), 1, "{r}\n{}", p.ec2.compact_log());
    assert_eq!(address(&r, &p.ip)["action"], "failed", "{r}");
    assert_eq!(p.holders(), only(&wb));

    // An endpoint that accepts and never answers anything.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = hole.local_addr().expect("addr").port();
    let config = p.cfg_at(
        &format!("http://127.0.0.1:{port}"),
        &format!("timeout_ms={TIMEOUT_MS}"),
    );
    let (line, r) = call_within(p.a.host(), "vip_claim", &config, TIMEOUT_MS);
    drop(hole);
    assert_eq!(kind(&r), "timeout", "{r}");
    assert!(
        line["ms"].as_f64().unwrap_or(0.0) >= TIMEOUT_MS as f64 - 100.0,
        "{line}"
    );
    assert_eq!(p.holders(), only(&wb));
}

#[test]
fn no_thread_is_left_behind_and_a_forked_child_works() {
    let p = Pip::new(semantics());
    // The second Assign hangs: that call times out, its request abandoned, no thread kept.
    p.ec2.set(json!([
        {"action": ASSIGN, "fault": "hang", "max_s": 10, "after": 1, "count": 1},
    ]));
    let child =
        p.b.host()
            .args(["threads", "call", "vip_claim", &p.cfg("")])
            .args(["fork", "vip_status", &p.cfg("")])
            .args(["fork", "vip_claim", &p.cfg("write=changed")])
            .args(["call", "vip_claim", &p.cfg("timeout_ms=2000")])
            .args(["call", "vip_release", &p.cfg(""), "threads"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("zfhost");
    let (max, samples, out) = thread_peak(child);
    let l = lines(&out);
    assert!(samples > 20, "only {samples} samples");
    assert_eq!(max, 1, "the host process had {max} threads at some point");
    assert_eq!(l[0]["count"], 1, "{}", l[0]);
    let claim = result_of(&l[1]);
    assert_eq!(claim["ok"], true, "{claim}");
    assert_eq!(address(&claim, &p.ip)["action"], "assigned", "{claim}");
    // The forked children: their own runtime, the same answers.
    let status = result_of(&l[2]);
    assert_eq!(l[2]["forked"], true, "{}", l[2]);
    assert_ne!(l[2]["pid"], l[1]["pid"]);
    assert_eq!(status["ok"], true, "{status}");
    assert_eq!(status["holder"], "self", "{status}");
    assert_eq!(l[3]["exited"], true, "{}", l[3]);
    assert_eq!(l[3]["code"], 0, "{}", l[3]);
    let again = result_of(&l[4]);
    assert_eq!(l[4]["forked"], true);
    assert_eq!(address(&again, &p.ip)["action"], "unchanged", "{again}");
    assert_eq!(l[5]["code"], 0, "{}", l[5]);
    // The parent still works after its children; a timed-out call leaves nothing behind.
    let hung = result_of(&l[6]);
    assert_eq!(kind(&hung), "timeout", "{hung}");
    assert_eq!(address(&hung, &p.ip)["action"], "failed", "{hung}");
    let release = result_of(&l[7]);
    assert_eq!(release["ok"], true, "{release}");
    assert_eq!(
        address(&release, &p.ip)["action"],
        "unassigned",
        "{release}"
    );
    assert_eq!(l[8]["count"], 1, "{}", l[8]);
    assert_eq!(p.ec2.attempts(ASSIGN), 2, "{}", p.ec2.compact_log());
    assert_eq!(p.holders(), Vec::<String>::new());
}

#[test]
fn two_members_claiming_at_once_end_with_one_holder() {
    let p = Pip::new(semantics());
    let (wa, wb) = (p.w.a.eni.clone(), p.w.b.eni.clone());
    let (mut ha, mut hb) = (p.a.warm(), p.b.warm());
    let mut rng = Rng::new(seed_from_env("IRISVIP_RACE_SEED", 20_261_130) ^ 0x1b);
    // A claim whose read-back shows the other member's move cannot tell it from a stale read of
    // the state before (the same ENI): it reads until its deadline. Keep that short.
    let config = p.cfg("timeout_ms=2000");
    for i in 0..6 {
        let delay = rng.below(20).to_string();
        let (first, second) = if rng.chance(50) {
            (&mut ha, &mut hb)
        } else {
            (&mut hb, &mut ha)
        };
        first.send(&["call", "vip_claim", &config]);
        second.send(&["sleep", &delay]);
        second.send(&["call", "vip_claim", &config]);
        let ra = result_of(&ha.next(Duration::from_secs(30)));
        let rb = result_of(&hb.next(Duration::from_secs(30)));
        assert_eq!(ra["ok"], true, "run {i}: {ra}");
        assert_eq!(rb["ok"], true, "run {i}: {rb}");
        for r in [&ra, &rb] {
            assert_eq!(address(r, &p.ip)["action"], "assigned", "run {i}: {r}");
        }
        let now = p.holders();
        assert_eq!(now.len(), 1, "run {i}: exactly one holder: {now:?}");
        // The last Assign won; its claim read back after it and says so.
        let (winner, loser) = if now[0] == wa { (&ra, &rb) } else { (&rb, &ra) };
        assert!(now[0] == wa || now[0] == wb, "run {i}: {now:?}");
        assert_eq!(winner["holder"], "self", "run {i}: {winner}");
        assert_eq!(
            address(winner, &p.ip)["confirmed"],
            true,
            "run {i}: {winner}"
        );
        // The other one reports what it last read: its own move (before the winner's), or the
        // winner's, then with a warning naming where the address went.
        if loser["holder"] != "self" {
            assert_eq!(
                address(loser, &p.ip)["target"],
                now[0].as_str(),
                "run {i}: {loser}"
            );
            assert_eq!(
                address(loser, &p.ip)["confirmed"],
                false,
                "run {i}: {loser}"
            );
            assert!(warned(loser, &[&p.ip, &now[0]]), "run {i}: {loser}");
        }
    }
}

#[test]
fn the_preflight_reports_the_address_and_why_permissions_cannot_be_probed() {
    let p = Pip::new(semantics());
    let wa = p.w.a.eni.clone();
    p.ec2.set(json!([]));
    let r = p.call(&p.b, "vip_check", "", 5000);
    assert_eq!(r["op"], "check", "{r}");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["holder"], "other", "{r}");
    assert_eq!(address(&r, &p.ip)["target"], wa.as_str(), "{r}");
    for name in ["imds", "identity", "private_ip", "holder"] {
        assert_eq!(check_item(&r, name)["status"], "pass", "{name}: {r}");
    }
    assert!(
        check_item(&r, "private_ip")["detail"]
            .as_str()
            .unwrap_or("")
            .contains(&p.w.secondary_ip.as_ref().expect("secondary").cidr),
        "{r}"
    );
    assert!(
        check_item(&r, "holder")["detail"]
            .as_str()
            .unwrap_or("")
            .contains(&wa),
        "{r}"
    );
    assert_eq!(
        check_item(&r, "vip_local")["status"],
        "warn",
        "not on this host: {r}"
    );
    for action in [ASSIGN, UNASSIGN] {
        let item = check_item(&r, &format!("permission:{action}"));
        assert_eq!(item["status"], "skip", "{r}");
        assert!(
            item["detail"].as_str().unwrap_or("").contains("DryRun"),
            "{item}"
        );
    }
    assert_eq!(
        p.mutations(),
        0,
        "the preflight sent Assign/Unassign (they have no DryRun): {}",
        p.ec2.compact_log()
    );

    // An address EC2 would refuse: the item fails with the kind a claim would fail with.
    let reserved = in_subnet(&p.w, 1);
    let config = format!(
        "mode=private-ip;vip={reserved};endpoint={};timeout_ms=5000",
        p.ec2.url()
    );
    let (_, r) = call_within(p.b.host(), "vip_check", &config, 5000);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "validation", "{r}");
    let item = check_item(&r, "private_ip");
    assert_eq!(item["status"], "fail", "{r}");
    assert!(
        item["detail"].as_str().unwrap_or("").contains("reserved"),
        "{item}"
    );

    // permissions=skip: one item says so.
    let r = p.call(&p.b, "vip_check", "permissions=skip", 5000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(check_item(&r, "permissions")["status"], "skip", "{r}");
    assert_eq!(p.mutations(), 0, "{}", p.ec2.compact_log());
    assert_eq!(p.holders(), only(&wa));
}

/// "In mode=private-ip and mode=eip the result has no route_tables": also when the config is
/// refused for another key, the mode itself given and valid.
#[test]
fn a_refused_config_of_this_mode_has_no_route_tables() {
    for config in [
        "mode=private-ip;vip=10.0.1.50;route_tables=rtb-1",
        "mode=private-ip;vip=10.0.1.50;timeout_ms=soon",
        "mode=private-ip;vip=fd00::1",
    ] {
        let out = output_within(
            std::process::Command::new(zfhost_bin()).args(["call", "vip_claim", config]),
            Duration::from_secs(20),
        );
        let r = result_of(&lines(&out)[0]);
        assert_eq!(r["ok"], false, "{config}: {r}");
        assert_eq!(kind(&r), "config", "{config}: {r}");
        assert!(
            r.get("route_tables").is_none(),
            "{config}: a mode=private-ip result with route_tables: {r}"
        );
    }
}

/// "the message names what to fix": a key of another mode is refused with the mode it
/// belongs to.
#[test]
fn a_key_of_another_mode_is_refused_naming_the_mode_it_belongs_to() {
    for (config, fix) in [
        (
            "mode=private-ip;vip=10.0.1.50;route_tables=rtb-1",
            "set mode=route",
        ),
        (
            "mode=private-ip;vip=10.0.1.50;allocation_id=eipalloc-1",
            "set mode=eip",
        ),
    ] {
        let out = output_within(
            std::process::Command::new(zfhost_bin()).args(["call", "vip_claim", config]),
            Duration::from_secs(20),
        );
        let r = result_of(&lines(&out)[0]);
        assert_eq!(kind(&r), "config", "{config}: {r}");
        let m = r["error"]["message"].as_str().unwrap_or("");
        // "... leave it out or set mode=<the mode it belongs to>"
        let named = m
            .rsplit("set mode=")
            .next()
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_lowercase()));
        assert!(
            m.contains(fix) && named,
            "{config}: the fix names no mode ({fix:?} wanted): {m}"
        );
    }
}
