//! `mode=eip` through the C ABI (zfhost), against moto behind the EC2 model of
//! `tests/support/faultproxy.py` (docs/ec2-model.md, "Private IPs and Elastic IPs"). The world
//! has one Elastic IP, not associated, and member a a secondary private address.
//!
//! What these tests rely on from the model, where moto 5.2.5 differs from EC2:
//! - `AssociateAddress` with `PrivateIpAddress` records that address (moto shows the ENI's
//!   primary whatever was asked), so `private_ip=` can be confirmed; one that is not the ENI's is
//!   refused;
//! - moving an EIP from one ENI to another leaves the old one without it;
//! - `DryRun` answered `DryRunOperation` (HTTP 412) without reaching moto;
//! - `address_consistency`: `DescribeAddresses` shows the old association for a while.
//!
//! `DisassociateAddress` of an association id that no longer exists answers
//! `InvalidAssociationID.NotFound` in moto and EC2 alike: the late release.
//!
//! After each step the association is read around the library, straight from moto
//! (`World::eip_at(moto)`), and the private address it maps to through the proxy.

use crate::common::*;
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};

const ASSOCIATE: &str = "AssociateAddress";
const DISASSOCIATE: &str = "DisassociateAddress";
const DESCRIBE: &str = "DescribeAddresses";

/// EC2's address semantics and nothing else (no throttling, reads consistent).
fn semantics() -> Value {
    json!({"throttle": false, "consistency": false})
}

/// The same, with Elastic IP reads `stale_ms` behind each (dis)association.
fn stale(stale_ms: u64) -> Value {
    json!({"throttle": false, "consistency": false, "address_consistency": {"stale_ms": stale_ms}})
}

/// A world with an unassociated Elastic IP, the EC2 model in front of moto.
struct Eipw {
    w: World,
    alloc: String,
    public: String,
    /// Member a's secondary private address.
    sec: String,
    a: Node,
    b: Node,
    ec2: FaultProxy,
}

impl Eipw {
    fn new(model: Value) -> Eipw {
        let w = World::create(1, &["--secondary-ip", "--eip"]);
        let eip = w.eip.clone().expect("eip");
        let sec = w.secondary_ip.as_ref().expect("secondary_ip").ip.clone();
        let ec2 = FaultProxy::start_model(&w.endpoint, &model);
        let (a, b) = (Node::new(&w, &w.a), Node::new(&w, &w.b));
        let e = Eipw {
            alloc: eip.allocation_id,
            public: eip.public_ip,
            sec,
            w,
            a,
            b,
            ec2,
        };
        assert_eq!(
            e.moto()["association_id"],
            Value::Null,
            "setup: not associated"
        );
        e
    }

    fn cfg(&self, extra: &str) -> String {
        let mut c = format!(
            "mode=eip;allocation_id={};endpoint={}",
            self.alloc,
            self.ec2.url()
        );
        if !extra.is_empty() {
            c.push(';');
            c.push_str(extra);
        }
        c
    }

    /// The Elastic IP as moto holds it now (ENI, association; `private_ip` is moto's).
    fn moto(&self) -> Value {
        self.w.eip_at(&self.w.endpoint, &self.alloc)
    }

    /// The private address the association recorded, read through the model (consistent
    /// reads only: with address_consistency on it may be stale).
    fn recorded_private_ip(&self) -> Value {
        self.w.eip_at(&self.ec2.url(), &self.alloc)["private_ip"].clone()
    }

    /// One call by `node` in a fresh process within `timeout_ms` (+ slack); the result.
    fn call(&self, node: &Node, entry: &str, extra: &str, timeout_ms: u64) -> Value {
        let extra = if extra.is_empty() {
            format!("timeout_ms={timeout_ms}")
        } else {
            format!("timeout_ms={timeout_ms};{extra}")
        };
        call_within(node.host(), entry, &self.cfg(&extra), timeout_ms).1
    }

    fn mutations(&self) -> usize {
        self.ec2.attempts(ASSOCIATE) + self.ec2.attempts(DISASSOCIATE)
    }
}

/// The `address` object of a result, with the shape the contract gives it in this mode.
fn address<'a>(r: &'a Value, e: &Eipw) -> &'a Value {
    assert!(
        r.get("route_tables").is_none(),
        "mode=eip has no route_tables: {r}"
    );
    let a = &r["address"];
    assert_eq!(a["kind"], "eip", "{r}");
    assert_eq!(a["ip"], e.public.as_str(), "{r}");
    assert_eq!(a["allocation_id"], e.alloc.as_str(), "{r}");
    a
}

fn message(r: &Value) -> &str {
    r["error"]["message"].as_str().unwrap_or("")
}

/// An address in member a's subnet (`10.n.1.<host>`).
fn in_subnet(w: &World, host: u8) -> String {
    let (net, _) = w.a.private_ip.rsplit_once('.').expect("IPv4");
    format!("{net}.{host}")
}

#[test]
fn a_claim_associates_the_eip_here_and_a_release_ends_only_our_association() {
    let e = Eipw::new(semantics());
    let (wa, wb) = (e.w.a.eni.clone(), e.w.b.eni.clone());

    // A claims by allocation id: associated with A's primary address.
    e.ec2.set(json!([]));
    let r = e.call(&e.a, "vip_claim", "", 8000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["op"], "claim");
    assert_eq!(r["vip"], format!("{}/32", e.public), "{r}");
    assert_eq!(r["holder"], "self", "{r}");
    let a = address(&r, &e);
    assert_eq!(a["target"], wa.as_str(), "{r}");
    assert_eq!(a["self"], true, "{r}");
    assert_eq!(a["action"], "associated", "{r}");
    assert_eq!(a["confirmed"], true, "{r}");
    assert_eq!(a["private_ip"], e.w.a.private_ip.as_str(), "{r}");
    let assoc_a = a["association_id"]
        .as_str()
        .expect("association id")
        .to_owned();
    assert_eq!(
        e.ec2.attempts_with(
            ASSOCIATE,
            &[
                ("AllocationId", &e.alloc),
                ("NetworkInterfaceId", &wa),
                ("PrivateIpAddress", &e.w.a.private_ip),
                ("AllowReassociation", "true")
            ]
        ),
        1,
        "{}",
        e.ec2.compact_log()
    );
    let m = e.moto();
    assert_eq!(m["eni"], wa.as_str(), "moto: {m}");
    assert_eq!(m["association_id"], assoc_a.as_str(), "moto: {m}");
    assert_eq!(
        e.w.eip_py(&e.w.endpoint, &e.alloc),
        m,
        "world.py reads what World::eip_at reads"
    );

    // B claims by public IP: the association moves to B.
    e.ec2.set(json!([]));
    let config = format!(
        "mode=eip;public_ip={};endpoint={};timeout_ms=8000",
        e.public,
        e.ec2.url()
    );
    let (_, r) = call_within(e.b.host(), "vip_claim", &config, 8000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["holder"], "self", "{r}");
    let b = address(&r, &e);
    assert_eq!(b["action"], "associated", "{r}");
    assert_eq!(b["confirmed"], true, "{r}");
    assert_eq!(b["target"], wb.as_str(), "{r}");
    assert_eq!(b["private_ip"], e.w.b.private_ip.as_str(), "{r}");
    let assoc_b = b["association_id"]
        .as_str()
        .expect("association id")
        .to_owned();
    assert_ne!(assoc_a, assoc_b, "{r}");
    assert_eq!(
        e.ec2.attempts_with(ASSOCIATE, &[("PublicIp", &e.public)])
            + e.ec2
                .attempts_with(ASSOCIATE, &[("AllocationId", &e.alloc)]),
        1,
        "{}",
        e.ec2.compact_log()
    );
    let m = e.moto();
    assert_eq!(m["eni"], wb.as_str(), "moto: {m}");
    assert_eq!(m["association_id"], assoc_b.as_str(), "moto: {m}");

    // Status from A: reads only.
    e.ec2.set(json!([]));
    let s = e.call(&e.a, "vip_status", "", 5000);
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["holder"], "other", "{s}");
    let sa = address(&s, &e);
    assert_eq!(sa["target"], wb.as_str(), "{s}");
    assert_eq!(sa["self"], false, "{s}");
    assert_eq!(sa["association_id"], assoc_b.as_str(), "{s}");
    assert!(sa.get("action").is_none(), "{s}");
    assert_eq!(s["source_dest_check"], false, "{s}");
    assert!(e.ec2.attempts(DESCRIBE) >= 1, "{}", e.ec2.compact_log());

    // A's release: not A's any more, nothing sent.
    let r = e.call(&e.a, "vip_release", "", 5000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["holder"], "other", "{r}");
    assert_eq!(address(&r, &e)["action"], "unchanged", "{r}");
    assert_eq!(e.mutations(), 0, "{}", e.ec2.compact_log());
    assert_eq!(e.moto()["association_id"], assoc_b.as_str());

    // B's release ends B's association, by its id.
    e.ec2.set(json!([]));
    let r = e.call(&e.b, "vip_release", "", 8000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["holder"], "none", "{r}");
    let rb = address(&r, &e);
    assert_eq!(rb["action"], "disassociated", "{r}");
    assert_eq!(rb["confirmed"], true, "{r}");
    assert_eq!(rb["target"], Value::Null, "{r}");
    assert_eq!(rb["self"], false, "{r}");
    assert_eq!(
        e.ec2
            .attempts_with(DISASSOCIATE, &[("AssociationId", &assoc_b)]),
        1,
        "{}",
        e.ec2.compact_log()
    );
    assert_eq!(e.mutations(), 1, "{}", e.ec2.compact_log());
    let m = e.moto();
    assert_eq!(m["association_id"], Value::Null, "moto: {m}");
    assert_eq!(m["eni"], Value::Null, "moto: {m}");

    // Released twice: nothing to do.
    e.ec2.set(json!([]));
    let r = e.call(&e.b, "vip_release", "", 5000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["holder"], "none", "{r}");
    assert_eq!(address(&r, &e)["action"], "unchanged", "{r}");
    assert_eq!(e.mutations(), 0, "{}", e.ec2.compact_log());

    // write=changed: a claim that reads as ours sends nothing; the default writes again.
    assert_eq!(e.call(&e.a, "vip_claim", "", 8000)["ok"], true);
    e.ec2.set(json!([]));
    let r = e.call(&e.a, "vip_claim", "write=changed", 5000);
    assert_eq!(address(&r, &e)["action"], "unchanged", "{r}");
    assert_eq!(e.mutations(), 0, "{}", e.ec2.compact_log());
    let r = e.call(&e.a, "vip_claim", "", 5000);
    assert_eq!(address(&r, &e)["action"], "associated", "{r}");
    assert_eq!(e.ec2.attempts(ASSOCIATE), 1, "{}", e.ec2.compact_log());
    assert_eq!(e.moto()["eni"], wa.as_str());
}

#[test]
fn private_ip_maps_the_eip_to_a_secondary_address_of_our_eni() {
    let e = Eipw::new(semantics());
    let wa = e.w.a.eni.clone();

    e.ec2.set(json!([]));
    let r = e.call(&e.a, "vip_claim", &format!("private_ip={}", e.sec), 8000);
    assert_eq!(r["ok"], true, "{r}");
    let a = address(&r, &e);
    assert_eq!(a["action"], "associated", "{r}");
    assert_eq!(a["confirmed"], true, "{r}");
    assert_eq!(a["private_ip"], e.sec.as_str(), "{r}");
    assert_eq!(a["target"], wa.as_str(), "{r}");
    assert_eq!(
        e.ec2
            .attempts_with(ASSOCIATE, &[("PrivateIpAddress", &e.sec)]),
        1,
        "{}",
        e.ec2.compact_log()
    );
    assert_eq!(e.moto()["eni"], wa.as_str());
    assert_eq!(
        e.recorded_private_ip(),
        e.sec.as_str(),
        "the association's private address"
    );

    // Already mapped there: a changed-only claim sends nothing.
    e.ec2.set(json!([]));
    let r = e.call(
        &e.a,
        "vip_claim",
        &format!("private_ip={};write=changed", e.sec),
        5000,
    );
    assert_eq!(address(&r, &e)["action"], "unchanged", "{r}");
    assert_eq!(e.mutations(), 0, "{}", e.ec2.compact_log());

    // Our ENI, another of its addresses: not "ours" for a claim that wants the primary.
    let r = e.call(&e.a, "vip_claim", "write=changed", 8000);
    assert_eq!(r["ok"], true, "{r}");
    let a = address(&r, &e);
    assert_eq!(a["action"], "associated", "{r}");
    assert_eq!(a["private_ip"], e.w.a.private_ip.as_str(), "{r}");
    assert_eq!(e.recorded_private_ip(), e.w.a.private_ip.as_str());

    // An address that is not our ENI's: refused before any change.
    e.ec2.set(json!([]));
    for (node, ip) in [
        (&e.a, e.w.b.private_ip.clone()),
        (&e.a, in_subnet(&e.w, 77)),
        (&e.b, e.sec.clone()),
    ] {
        let (_, r) = call_within(
            node.host(),
            "vip_claim",
            &e.cfg(&format!("private_ip={ip};timeout_ms=5000")),
            5000,
        );
        assert_eq!(r["ok"], false, "{ip}: {r}");
        assert_eq!(kind(&r), "validation", "{ip}: {r}");
        assert!(message(&r).contains(&ip), "names the address: {r}");
    }
    let (_, r) = call_within(
        e.a.host(),
        "vip_claim",
        &e.cfg(&format!("private_ip={};timeout_ms=5000", e.w.b.private_ip)),
        5000,
    );
    assert!(
        message(&r).contains(&e.sec) && message(&r).contains(&e.w.a.private_ip),
        "lists the addresses of our ENI: {r}"
    );
    assert_eq!(e.mutations(), 0, "{}", e.ec2.compact_log());
    assert_eq!(e.moto()["eni"], wa.as_str());
    assert_eq!(e.recorded_private_ip(), e.w.a.private_ip.as_str());
}

#[test]
fn the_read_back_waits_out_stale_reads_or_says_it_could_not_confirm() {
    let e = Eipw::new(semantics());
    let (wa, wb) = (e.w.a.eni.clone(), e.w.b.eni.clone());
    assert_eq!(e.call(&e.a, "vip_claim", "", 8000)["ok"], true, "setup");

    // Reads show A's association for 1.5 s: B's claim reads until they show its own.
    e.ec2.model(stale(1500));
    e.ec2.set(json!([]));
    let t = Instant::now();
    let r = e.call(&e.b, "vip_claim", "", 6000);
    let ms = t.elapsed().as_millis();
    assert_eq!(r["ok"], true, "{r}");
    let a = address(&r, &e);
    assert_eq!(a["action"], "associated", "{r}");
    assert_eq!(a["confirmed"], true, "{r}");
    assert_eq!(a["target"], wb.as_str(), "{r}");
    assert_eq!(r["holder"], "self", "{r}");
    assert!(!warned(&r, &["eventually consistent"]), "{r}");
    assert!(
        ms >= 1400,
        "confirmed before the stale window ended: {ms} ms"
    );
    let stale_reads = e
        .ec2
        .log()
        .iter()
        .filter(|x| x["action"] == DESCRIBE && x["stale"].as_array().is_some_and(|s| !s.is_empty()))
        .count();
    assert!(
        stale_reads >= 1,
        "no read was answered stale: the test no longer exercises it: {}",
        e.ec2.compact_log()
    );
    assert_eq!(e.moto()["eni"], wb.as_str());

    // Stale for longer than the deadline: ok, unconfirmed, with the warning.
    e.ec2.model(stale(5000));
    let r = e.call(&e.a, "vip_claim", "", 1500);
    assert_eq!(r["ok"], true, "{r}");
    let a = address(&r, &e);
    assert_eq!(a["action"], "associated", "{r}");
    assert_eq!(a["confirmed"], false, "{r}");
    assert_eq!(a["target"], wb.as_str(), "the last read showed B: {r}");
    assert!(warned(&r, &[&e.alloc, "eventually consistent"]), "{r}");
    assert_eq!(e.moto()["eni"], wa.as_str(), "the association did move");
}

#[test]
fn a_late_release_by_the_old_holder_changes_nothing() {
    let e = Eipw::new(semantics());
    let wb = e.w.b.eni.clone();
    let r = e.call(&e.a, "vip_claim", "", 8000);
    let assoc_a = address(&r, &e)["association_id"]
        .as_str()
        .expect("association id")
        .to_owned();

    // B takes the Elastic IP; for 5 s reads still show A's association.
    e.ec2.model(stale(5000));
    let r = e.call(&e.b, "vip_claim", "", 1500);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(address(&r, &e)["action"], "associated", "{r}");
    let assoc_b = e.moto()["association_id"].as_str().unwrap_or("").to_owned();
    assert_eq!(e.moto()["eni"], wb.as_str());

    // A's release reads its old association and ends it by id: that id no longer exists.
    e.ec2.set(json!([]));
    let r = e.call(&e.a, "vip_release", "", 3000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(address(&r, &e)["action"], "unchanged", "{r}");
    assert!(warned(&r, &[&assoc_a, "no longer exists"]), "{r}");
    assert_eq!(
        e.ec2.attempts(DISASSOCIATE),
        1,
        "the stale read must have led to one Disassociate (else the test no longer exercises \
         the late release): {}",
        e.ec2.compact_log()
    );
    assert_eq!(
        e.ec2
            .attempts_with(DISASSOCIATE, &[("AssociationId", &assoc_a)]),
        1,
        "by A's old association id, never by public IP: {}",
        e.ec2.compact_log()
    );
    let m = e.moto();
    assert_eq!(m["eni"], wb.as_str(), "B keeps it: {m}");
    assert_eq!(m["association_id"], assoc_b.as_str(), "{m}");

    // Once reads are current, A's release sees B and sends nothing.
    e.ec2.model(semantics());
    e.ec2.set(json!([]));
    let r = e.call(&e.a, "vip_release", "", 3000);
    assert_eq!(address(&r, &e)["action"], "unchanged", "{r}");
    assert_eq!(r["holder"], "other", "{r}");
    assert_eq!(e.mutations(), 0, "{}", e.ec2.compact_log());
    assert_eq!(e.moto()["association_id"], assoc_b.as_str());
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let e = Eipw::new(semantics());
    assert_eq!(e.call(&e.b, "vip_claim", "", 8000)["ok"], true, "setup");
    let before = e.moto();
    let url = e.ec2.url();
    let alloc = e.alloc.clone();
    e.ec2.set(json!([]));
    let refused = |node: &Node, entry: &str, config: &str, want: &str, why: &str| {
        let (_, r) = call_within(node.host(), entry, config, 5000);
        assert_eq!(r["ok"], false, "{config:?} must be refused: {r}");
        assert_eq!(kind(&r), want, "{config:?}: {r}");
        assert!(message(&r).contains(why), "{config:?}: {r}");
        assert_eq!(e.mutations(), 0, "{config:?}: {}", e.ec2.compact_log());
    };
    let base = format!("mode=eip;endpoint={url};timeout_ms=5000");
    for (extra, want, why) in [
        (String::new(), "config", "allocation_id"),
        (
            format!("allocation_id={alloc};route_tables={}", e.w.route_tables[0]),
            "config",
            "mode=route",
        ),
        (
            format!("allocation_id={alloc};route_table_tag=irisvip=prod"),
            "config",
            "mode=route",
        ),
        (
            format!("allocation_id={alloc};vip={}", VIP),
            "config",
            "allocation_id",
        ),
        (
            format!("allocation_id={alloc};public_ip={}", e.public),
            "config",
            "not both",
        ),
        (
            "allocation_id=eni-0123456789abcdef0".to_owned(),
            "config",
            "eipalloc-",
        ),
        (
            format!("allocation_id={alloc};private_ip=10.0.0.1/32"),
            "config",
            "private_ip",
        ),
        (
            format!("allocation_id={alloc};allocation_id={alloc}"),
            "config",
            "twice",
        ),
        (
            format!("allocation_id={alloc};write=sometimes"),
            "config",
            "write",
        ),
        (
            "allocation_id=eipalloc-0123456789abcdef0".to_owned(),
            "not_found",
            "eipalloc-0123456789abcdef0",
        ),
        (
            "public_ip=198.51.100.77".to_owned(),
            "not_found",
            "198.51.100.77",
        ),
        (
            format!("allocation_id={alloc};private_ip={}", e.w.b.private_ip),
            "validation",
            "private_ip",
        ),
    ] {
        let config = format!("{base};{extra}");
        refused(&e.a, "vip_claim", &config, want, why);
    }
    for entry in ["vip_release", "vip_status", "vip_check"] {
        refused(
            &e.a,
            entry,
            &format!("{base};allocation_id={alloc};vip={VIP}"),
            "config",
            "allocation_id",
        );
        refused(&e.b, entry, &base, "config", "allocation_id");
    }
    refused(
        &e.b,
        "vip_release",
        &format!("{base};allocation_id=eipalloc-0123456789abcdef0"),
        "not_found",
        "eipalloc-0123456789abcdef0",
    );
    // A config for another mode is refused in this one (mode=eip keys in mode=route).
    refused(
        &e.b,
        "vip_claim",
        &format!("endpoint={url};allocation_id={alloc}"),
        "config",
        "mode=eip",
    );
    assert_eq!(e.moto(), before, "a refused call changed the Elastic IP");
}

#[test]
fn a_dry_run_plans_and_changes_nothing() {
    let e = Eipw::new(semantics());
    let wa = e.w.a.eni.clone();
    assert_eq!(e.call(&e.a, "vip_claim", "", 8000)["ok"], true, "setup");
    let before = e.moto();
    e.ec2.set(json!([]));
    let sec = format!("dry_run=1;private_ip={};write=changed", e.sec);
    for (node, entry, extra, action, holder) in [
        (&e.b, "vip_claim", "dry_run=1", "planned", "other"),
        (&e.a, "vip_claim", "dry_run=1", "planned", "self"),
        (
            &e.a,
            "vip_claim",
            "dry_run=1;write=changed",
            "unchanged",
            "self",
        ),
        (&e.a, "vip_claim", sec.as_str(), "planned", "self"),
        (&e.a, "vip_release", "dry_run=1", "planned", "self"),
        (&e.b, "vip_release", "dry_run=1", "unchanged", "other"),
    ] {
        let r = e.call(node, entry, extra, 5000);
        assert_eq!(r["ok"], true, "{entry} {extra}: {r}");
        assert_eq!(r["dry_run"], true, "{r}");
        assert_eq!(r["holder"], holder, "{entry} {extra}: {r}");
        let a = address(&r, &e);
        assert_eq!(a["action"], action, "{entry} {extra}: {r}");
        assert_eq!(a["target"], wa.as_str(), "{r}");
        assert!(a.get("confirmed").is_none(), "{r}");
    }
    assert!(e.ec2.attempts(DESCRIBE) >= 6, "{}", e.ec2.compact_log());
    assert_eq!(
        e.mutations(),
        0,
        "a dry run sent a mutation: {}",
        e.ec2.compact_log()
    );
    assert_eq!(e.moto(), before);
}

#[test]
fn throttling_is_retried_and_a_failed_mutation_is_reported() {
    let e = Eipw::new(semantics());
    let wa = e.w.a.eni.clone();

    // Throttled reads and a throttled Associate: retried, the claim succeeds.
    e.ec2.set(json!([
        {"action": DESCRIBE, "fault": "throttle", "code": "Throttling", "count": 1},
        {"action": "DescribeNetworkInterfaces", "fault": "throttle", "count": 1},
        {"action": ASSOCIATE, "fault": "throttle", "code": "RequestLimitExceeded", "count": 2},
    ]));
    let r = e.call(&e.a, "vip_claim", "", 8000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(address(&r, &e)["action"], "associated", "{r}");
    assert_eq!(address(&r, &e)["confirmed"], true, "{r}");
    assert_eq!(e.ec2.attempts(ASSOCIATE), 3, "{}", e.ec2.compact_log());
    assert_eq!(e.moto()["eni"], wa.as_str());

    // A 500 on every Associate: retried (same target, same end state), then reported.
    e.ec2.set(json!([
        {"action": ASSOCIATE, "fault": "ec2_error", "code": "InternalError", "status": 500, "count": -1},
    ]));
    let r = e.call(&e.b, "vip_claim", "", 8000);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "aws", "{r}");
    let a = address(&r, &e);
    assert_eq!(a["action"], "failed", "{r}");
    assert_eq!(a["error"]["kind"], "aws", "{r}");
    assert!(
        a["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("InternalError"),
        "{r}"
    );
    assert_eq!(a["target"], wa.as_str(), "{r}");
    assert_ne!(r["holder"], "self", "{r}");
    let tries = e.ec2.attempts(ASSOCIATE);
    assert!(
        (2..=4).contains(&tries),
        "500 tried {tries} times: {}",
        e.ec2.compact_log()
    );
    assert_eq!(e.moto()["eni"], wa.as_str());

    // A 500 on Disassociate: it may have landed, so it is not sent again.
    e.ec2.set(json!([
        {"action": DISASSOCIATE, "fault": "ec2_error", "code": "InternalError", "status": 500, "count": -1},
    ]));
    let r = e.call(&e.a, "vip_release", "", 8000);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "aws", "{r}");
    assert_eq!(address(&r, &e)["action"], "failed", "{r}");
    assert_eq!(e.ec2.attempts(DISASSOCIATE), 1, "{}", e.ec2.compact_log());
    assert_eq!(e.moto()["eni"], wa.as_str());

    // Denied: a permission error naming the action, one attempt, nothing moved.
    e.ec2
        .set(json!([{"action": ASSOCIATE, "fault": "unauthorized", "count": -1}]));
    let r = e.call(&e.b, "vip_claim", "", 5000);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "permission", "{r}");
    assert!(message(&r).contains("ec2:AssociateAddress"), "{r}");
    assert_eq!(e.ec2.attempts(ASSOCIATE), 1, "{}", e.ec2.compact_log());
    assert_eq!(e.moto()["eni"], wa.as_str());
}

#[test]
fn an_ec2_that_never_answers_costs_the_deadline_and_no_more() {
    // Reads that never answer: a short deadline. A mutation that never answers: long enough
    // that discovery surely ends before it on a loaded machine, so the mutation is reached.
    const TIMEOUT_MS: u64 = 1200;
    const MUTATION_TIMEOUT_MS: u64 = 2500;
    let e = Eipw::new(semantics());
    let (wa, wb) = (e.w.a.eni.clone(), e.w.b.eni.clone());
    assert_eq!(e.call(&e.a, "vip_claim", "", 8000)["ok"], true, "setup");
    let hang =
        |action: &str| json!([{"action": action, "fault": "hang", "max_s": 10, "count": -1}]);
    let timed = |node: &Node, entry: &str, timeout_ms: u64| {
        let config = e.cfg(&format!("timeout_ms={timeout_ms}"));
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

    e.ec2.set(hang(ASSOCIATE));
    let r = timed(&e.b, "vip_claim", MUTATION_TIMEOUT_MS);
    assert_eq!(e.ec2.attempts(ASSOCIATE), 1, "{r}\n{}", e.ec2.compact_log());
    assert_eq!(address(&r, &e)["action"], "failed", "{r}");
    assert!(message(&r).contains("may or may not"), "{r}");
    assert_eq!(e.moto()["eni"], wa.as_str());

    // The Associate lands, its answer comes too late.
    e.ec2.set(json!([
        {"action": ASSOCIATE, "fault": "delay", "where": "after", "ms": 4000, "count": 1},
    ]));
    let r = timed(&e.b, "vip_claim", MUTATION_TIMEOUT_MS);
    assert_eq!(e.ec2.attempts(ASSOCIATE), 1, "{r}\n{}", e.ec2.compact_log());
    assert_eq!(address(&r, &e)["action"], "failed", "{r}");
    assert_eq!(e.moto()["eni"], wb.as_str(), "it did land");

    e.ec2.set(hang(DESCRIBE));
    timed(&e.b, "vip_status", TIMEOUT_MS);
    timed(&e.b, "vip_release", TIMEOUT_MS);
    timed(&e.b, "vip_check", TIMEOUT_MS);
    e.ec2.set(hang(DISASSOCIATE));
    let r = timed(&e.b, "vip_release", MUTATION_TIMEOUT_MS);
    assert_eq!(
        e.ec2.attempts(DISASSOCIATE),
        1,
        "{r}\n{}",
        e.ec2.compact_log()
    );
    assert_eq!(address(&r, &e)["action"], "failed", "{r}");
    assert_eq!(e.moto()["eni"], wb.as_str());
}

#[test]
fn no_thread_is_left_behind_and_a_forked_child_works() {
    let e = Eipw::new(semantics());
    // The second Associate hangs: that call times out, its request abandoned, no thread kept.
    e.ec2.set(json!([
        {"action": ASSOCIATE, "fault": "hang", "max_s": 10, "after": 1, "count": 1},
    ]));
    let child =
        e.a.host()
            .args(["threads", "call", "vip_claim", &e.cfg("")])
            .args(["fork", "vip_status", &e.cfg("")])
            .args(["fork", "vip_claim", &e.cfg("write=changed")])
            .args(["call", "vip_claim", &e.cfg("timeout_ms=2000")])
            .args(["call", "vip_check", &e.cfg("")])
            .args(["call", "vip_release", &e.cfg(""), "threads"])
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
    assert_eq!(address(&claim, &e)["action"], "associated", "{claim}");
    let status = result_of(&l[2]);
    assert_eq!(l[2]["forked"], true, "{}", l[2]);
    assert_ne!(l[2]["pid"], l[1]["pid"]);
    assert_eq!(status["holder"], "self", "{status}");
    assert_eq!(l[3]["code"], 0, "{}", l[3]);
    let again = result_of(&l[4]);
    assert_eq!(l[4]["forked"], true);
    assert_eq!(address(&again, &e)["action"], "unchanged", "{again}");
    assert_eq!(l[5]["code"], 0, "{}", l[5]);
    let hung = result_of(&l[6]);
    assert_eq!(kind(&hung), "timeout", "{hung}");
    assert_eq!(address(&hung, &e)["action"], "failed", "{hung}");
    let check = result_of(&l[7]);
    assert_eq!(check["ok"], true, "{check}");
    let release = result_of(&l[8]);
    assert_eq!(
        address(&release, &e)["action"],
        "disassociated",
        "{release}"
    );
    assert_eq!(l[9]["count"], 1, "{}", l[9]);
    assert_eq!(e.moto()["association_id"], Value::Null);
}

#[test]
fn two_members_claiming_at_once_end_with_one_holder() {
    let e = Eipw::new(semantics());
    let (wa, wb) = (e.w.a.eni.clone(), e.w.b.eni.clone());
    let (mut ha, mut hb) = (e.a.warm(), e.b.warm());
    let mut rng = Rng::new(seed_from_env("IRISVIP_RACE_SEED", 20_261_130) ^ 0xe1);
    // As for private IPs: a read-back showing the previous holder again reads to the deadline.
    let config = e.cfg("timeout_ms=2000");
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
            assert_eq!(address(r, &e)["action"], "associated", "run {i}: {r}");
        }
        let m = e.moto();
        let now = m["eni"].as_str().unwrap_or("").to_owned();
        assert!(now == wa || now == wb, "run {i}: exactly one holder: {m}");
        let (winner, loser) = if now == wa { (&ra, &rb) } else { (&rb, &ra) };
        assert_eq!(winner["holder"], "self", "run {i}: {winner}");
        assert_eq!(address(winner, &e)["confirmed"], true, "run {i}: {winner}");
        assert_eq!(
            address(winner, &e)["association_id"],
            m["association_id"],
            "run {i}: {winner}"
        );
        if loser["holder"] != "self" {
            assert_eq!(
                address(loser, &e)["target"],
                now.as_str(),
                "run {i}: {loser}"
            );
            assert_eq!(address(loser, &e)["confirmed"], false, "run {i}: {loser}");
            assert!(warned(loser, &[&e.alloc, &now]), "run {i}: {loser}");
        }
    }
}

#[test]
fn the_preflight_probes_associate_and_disassociate_with_dry_run() {
    let e = Eipw::new(semantics());
    let wb = e.w.b.eni.clone();
    assert_eq!(e.call(&e.b, "vip_claim", "", 8000)["ok"], true, "setup");
    let before = e.moto();

    e.ec2.set(json!([]));
    let r = e.call(&e.a, "vip_check", "", 5000);
    assert_eq!(r["op"], "check", "{r}");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["holder"], "other", "{r}");
    assert_eq!(address(&r, &e)["target"], wb.as_str(), "{r}");
    for name in [
        "imds",
        "identity",
        "eip",
        "holder",
        "permission:AssociateAddress",
        "permission:DisassociateAddress",
    ] {
        assert_eq!(check_item(&r, name)["status"], "pass", "{name}: {r}");
    }
    let eip = check_item(&r, "eip")["detail"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        eip.contains(&e.alloc) && eip.contains(&e.public) && eip.contains(&e.w.a.private_ip),
        "{eip}"
    );
    assert!(
        check_item(&r, "holder")["detail"]
            .as_str()
            .unwrap_or("")
            .contains(&wb),
        "{r}"
    );
    // Both probes were DryRuns, answered by the model as EC2 does; none reached moto.
    let log = e.ec2.log();
    let probes: Vec<&Value> = log
        .iter()
        .filter(|x| x["action"] == ASSOCIATE || x["action"] == DISASSOCIATE)
        .collect();
    assert_eq!(probes.len(), 2, "{}", e.ec2.compact_log());
    for p in &probes {
        assert_eq!(p["params"]["DryRun"], "true", "{p}");
        assert_eq!(p["fault"], "model:dry_run", "{p}");
    }

    // Associate denied: the preflight fails, naming the action.
    e.ec2.set(json!([
        {"action": ASSOCIATE, "params": {"DryRun": "true"}, "fault": "unauthorized", "count": -1},
    ]));
    let r = e.call(&e.a, "vip_check", "", 5000);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "permission", "{r}");
    let item = check_item(&r, "permission:AssociateAddress");
    assert_eq!(item["status"], "fail", "{r}");
    assert!(
        item["fix"]
            .as_str()
            .unwrap_or("")
            .contains("ec2:AssociateAddress"),
        "{item}"
    );
    assert_eq!(
        check_item(&r, "permission:DisassociateAddress")["status"],
        "pass",
        "{r}"
    );

    // Disassociate denied (release disabled by policy): a warning only.
    e.ec2.set(json!([
        {"action": DISASSOCIATE, "params": {"DryRun": "true"}, "fault": "unauthorized", "count": -1},
    ]));
    let r = e.call(&e.a, "vip_check", "", 5000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        check_item(&r, "permission:DisassociateAddress")["status"],
        "warn",
        "{r}"
    );
    assert_eq!(
        check_item(&r, "permission:AssociateAddress")["status"],
        "pass",
        "{r}"
    );

    // An Elastic IP that does not exist: the eip item fails as a claim would.
    let config = format!(
        "mode=eip;allocation_id=eipalloc-0123456789abcdef0;endpoint={};timeout_ms=5000",
        e.ec2.url()
    );
    let (_, r) = call_within(e.a.host(), "vip_check", &config, 5000);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "not_found", "{r}");
    assert_eq!(check_item(&r, "eip")["status"], "fail", "{r}");

    // permissions=skip probes nothing.
    e.ec2.set(json!([]));
    let r = e.call(&e.a, "vip_check", "permissions=skip", 5000);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(check_item(&r, "permissions")["status"], "skip", "{r}");
    assert_eq!(e.mutations(), 0, "{}", e.ec2.compact_log());
    assert_eq!(e.moto(), before, "the preflight changed the Elastic IP");
}

/// "In mode=private-ip and mode=eip the result has no route_tables": also when the config is
/// refused for another key, the mode itself given and valid.
#[test]
fn a_refused_config_of_this_mode_has_no_route_tables() {
    for config in [
        "mode=eip",
        "mode=eip;allocation_id=eipalloc-1;vip=192.0.2.1",
        "mode=eip;public_ip=192.0.2.1/32",
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
            "{config}: a mode=eip result with route_tables: {r}"
        );
    }
}

/// "the message names what to fix": a key of another mode is refused with the mode it
/// belongs to.
#[test]
fn a_key_of_another_mode_is_refused_naming_the_mode_it_belongs_to() {
    for (config, fix) in [
        (
            "mode=eip;allocation_id=eipalloc-1;route_tables=rtb-1",
            "set mode=route",
        ),
        (
            "mode=eip;allocation_id=eipalloc-1;vip=192.0.2.1",
            "set mode=",
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
