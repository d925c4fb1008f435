//! The preflight (`vip_check`, table entry 4) through the C ABI. moto ignores EC2's DryRun and
//! would really change routes, so the IAM probe is answered by the fault proxy's canned EC2
//! errors, as EC2 answers them: `DryRunOperation` (HTTP 412) when allowed,
//! `UnauthorizedOperation` (HTTP 403) when not. Nothing with DryRun ever reaches moto.

use crate::common::*;
use serde_json::{json, Value};

fn item<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {r}"))
}

#[test]
fn permission_probe_reads_dry_run_answers_and_changes_nothing() {
    let w = World::create(2, &[]);
    let a = Node::new(&w, &w.a);
    w.set_route(&w.route_tables[0], &w.b.eni, VIP);
    let before = w.routes(VIP);
    let (t0, t1) = (w.route_tables[0].clone(), w.route_tables[1].clone());
    let ec2 = FaultProxy::start(&w.endpoint);
    ec2.set(json!([
        {"action": "ReplaceRoute", "params": {"DryRun": "true", "RouteTableId": t1}, "fault": "ec2_error",
         "code": "UnauthorizedOperation", "message": "You are not authorized to perform this operation.",
         "status": 403, "count": -1},
        {"params": {"DryRun": "true"}, "fault": "ec2_error", "code": "DryRunOperation",
         "message": "Request would have succeeded, but DryRun flag is set.", "status": 412, "count": -1},
    ]));
    let r = a.call("vip_check", &cfg(&format!("endpoint={}", ec2.url())));
    assert_eq!(r["op"], "check", "{r}");
    assert_eq!(r["ok"], false, "a denied action fails the preflight: {r}");
    assert_eq!(kind(&r), "permission", "{r}");
    let replace = item(&r, "permission:ReplaceRoute");
    assert_eq!(replace["status"], "fail", "{r}");
    let detail = replace["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains(&t1) && !detail.contains(&t0),
        "names only the denied table: {detail}"
    );
    assert!(
        replace["fix"]
            .as_str()
            .unwrap_or("")
            .contains("ec2:ReplaceRoute"),
        "{replace}"
    );
    assert_eq!(item(&r, "permission:CreateRoute")["status"], "pass", "{r}");
    assert_eq!(item(&r, "permission:DeleteRoute")["status"], "pass", "{r}");
    for name in [
        "imds",
        "identity",
        "vip_outside_vpc",
        "source_dest_check",
        "route_tables",
    ] {
        assert_eq!(item(&r, name)["status"], "pass", "{name}: {r}");
    }
    assert_eq!(
        item(&r, "holder")["status"],
        "warn",
        "A has no route, B one: mixed: {r}"
    );
    // 3 actions x 2 tables probed, every one answered by the proxy, none forwarded.
    let probes: Vec<Value> = ec2
        .log()
        .into_iter()
        .filter(|e| e["params"]["DryRun"] == "true")
        .collect();
    assert_eq!(probes.len(), 6, "{probes:?}");
    assert!(
        probes.iter().all(|e| !e["fault"].is_null()),
        "a DryRun request reached moto: {probes:?}"
    );
    assert_eq!(w.routes(VIP), before, "the preflight changed a route");

    // Everything allowed: the preflight passes (the VIP is not on eth0:1 here: a warning only).
    ec2.set(json!([
        {"params": {"DryRun": "true"}, "fault": "ec2_error", "code": "DryRunOperation",
         "message": "Request would have succeeded, but DryRun flag is set.", "status": 412, "count": -1},
    ]));
    w.set_route(&w.route_tables[1], &w.b.eni, VIP);
    let r = a.call("vip_check", &cfg(&format!("endpoint={}", ec2.url())));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(item(&r, "permission:ReplaceRoute")["status"], "pass");
    assert_eq!(item(&r, "holder")["status"], "pass");
    assert_eq!(item(&r, "vip_local")["status"], "warn");
    assert_eq!(r["holder"], "other");
}

#[test]
fn permissions_skip_probes_nothing() {
    let w = World::create(1, &[]);
    let a = Node::new(&w, &w.a);
    let ec2 = FaultProxy::start(&w.endpoint);
    let r = a.call(
        "vip_check",
        &cfg(&format!("endpoint={};permissions=skip", ec2.url())),
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(item(&r, "permissions")["status"], "skip");
    assert!(
        ec2.log()
            .iter()
            .all(|e| e["params"].get("DryRun").is_none()),
        "probed anyway"
    );
    assert_eq!(w.routes(VIP), vec![None]);
}
