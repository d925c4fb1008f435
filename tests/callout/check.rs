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
    // 3 route actions x 2 tables probed (plus the tag guard's CreateTags), every one answered
    // by the proxy, none forwarded.
    let probes: Vec<Value> = ec2
        .log()
        .into_iter()
        .filter(|e| e["params"]["DryRun"] == "true")
        .collect();
    let route_probes = probes
        .iter()
        .filter(|e| e["action"].as_str().is_some_and(|a| a.ends_with("Route")))
        .count();
    assert_eq!(route_probes, 6, "{probes:?}");
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

/// The guards of least privilege the preflight can see: route calls denied outside the
/// selected tables, the selecting tag out of the role's reach; and DeleteRoute denied where
/// release is disabled by policy is a warning, not a failed preflight.
#[test]
fn guards_of_least_privilege_are_reported() {
    let w = World::create(3, &[]);
    let a = Node::new(&w, &w.a);
    let t = w.route_tables.clone();
    let ec2 = FaultProxy::start(&w.endpoint);
    let config = cfg(&format!(
        "endpoint={};route_tables={},{}",
        ec2.url(),
        t[0],
        t[1]
    ));
    let denied = |extra: Value| {
        let mut rule = json!({"fault": "ec2_error", "code": "UnauthorizedOperation",
            "message": "You are not authorized to perform this operation.", "status": 403, "count": -1});
        if let (Some(r), Some(x)) = (rule.as_object_mut(), extra.as_object()) {
            r.extend(x.clone());
        }
        rule
    };
    let allowed = json!({"params": {"DryRun": "true"}, "fault": "ec2_error", "code": "DryRunOperation",
        "message": "Request would have succeeded, but DryRun flag is set.", "status": 412, "count": -1});

    // The template's policy: routes only in the selected tables, no tagging, no release.
    ec2.set(json!([
        denied(
            json!({"action": "ReplaceRoute", "params": {"DryRun": "true", "RouteTableId": t[2]}})
        ),
        denied(json!({"action": "CreateTags", "params": {"DryRun": "true"}})),
        denied(json!({"action": "DeleteRoute", "params": {"DryRun": "true"}})),
        allowed.clone(),
    ]));
    let r = a.call("vip_check", &config);
    assert_eq!(r["ok"], true, "a denied DeleteRoute only warns: {r}");
    assert_eq!(item(&r, "guard:route_scope")["status"], "pass", "{r}");
    assert!(item(&r, "guard:route_scope")["detail"]
        .as_str()
        .unwrap_or("")
        .contains(&t[2]));
    assert_eq!(item(&r, "guard:tag")["status"], "pass", "{r}");
    let delete = item(&r, "permission:DeleteRoute");
    assert_eq!(delete["status"], "warn", "{r}");
    assert!(
        delete["fix"]
            .as_str()
            .unwrap_or("")
            .contains("iam-policy-release.json"),
        "{delete}"
    );

    // A broad policy: both guards missing, named with their fix.
    ec2.set(json!([allowed]));
    let r = a.call("vip_check", &config);
    assert_eq!(r["ok"], true, "{r}");
    let scope = item(&r, "guard:route_scope");
    assert_eq!(scope["status"], "warn", "{r}");
    assert!(
        scope["detail"].as_str().unwrap_or("").contains(&t[2]),
        "{scope}"
    );
    assert!(
        scope["fix"].as_str().unwrap_or("").contains("ec2:Vpc"),
        "{scope}"
    );
    let tag = item(&r, "guard:tag");
    assert_eq!(tag["status"], "warn", "{r}");
    assert!(
        tag["fix"].as_str().unwrap_or("").contains("aws:TagKeys"),
        "{tag}"
    );
    assert_eq!(item(&r, "permission:DeleteRoute")["status"], "pass", "{r}");
    // Every DryRun answered by the proxy; nothing changed in EC2.
    assert!(
        ec2.log()
            .iter()
            .filter(|e| e["params"]["DryRun"] == "true")
            .all(|e| !e["fault"].is_null()),
        "a DryRun request reached moto"
    );
    assert_eq!(w.routes(VIP), vec![None, None, None]);
}
