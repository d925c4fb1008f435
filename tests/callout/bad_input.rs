//! Every bad input of the contract gets a clear error of the right kind and changes nothing.

use crate::common::*;

fn refused(node: &Node, entry: &str, config: &str, want: &str) -> serde_json::Value {
    let r = node.call(entry, config);
    assert_eq!(r["ok"], false, "{config:?} must be refused: {r}");
    assert_eq!(kind(&r), want, "{config:?}: {r}");
    assert!(
        r["error"]["message"].as_str().is_some_and(|m| m.len() > 10),
        "{r}"
    );
    r
}

#[test]
fn bad_inputs_are_refused_and_change_nothing() {
    let w = World::create(2, &["--secondary-cidr", "100.64.0.0/16"]);
    let other = World::create(1, &[]);
    let a = Node::new(&w, &w.a);
    w.set_route(&w.route_tables[0], &w.b.eni, VIP);
    let before = w.routes(VIP);

    let inside = w.cidr.replace("0.0/16", "7.7");
    for entry in ["vip_claim", "vip_release", "vip_status"] {
        let r = refused(&a, entry, &format!("vip={inside}"), "validation");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(&w.cidr),
            "{r}"
        );
    }
    refused(&a, "vip_claim", "vip=100.64.3.4", "validation");
    refused(&a, "vip_claim", "vip=192.168.240.0/24", "validation");
    refused(&a, "vip_claim", "vip=192.168.240", "config");
    refused(
        &a,
        "vip_claim",
        "vip=192.168.240.10;routetables=rtb-1",
        "config",
    );
    refused(
        &a,
        "vip_claim",
        "vip=192.168.240.10;vip=192.168.240.10",
        "config",
    );
    refused(&a, "vip_claim", &cfg("timeout_ms=soon"), "config");
    refused(
        &a,
        "vip_claim",
        &cfg("route_tables=rtb-00000000deadbeef"),
        "not_found",
    );
    refused(
        &a,
        "vip_release",
        &cfg(&format!("route_tables={}", w.route_tables[1]))
            .replace(&w.route_tables[1], "rtb-0123456789abcdef0"),
        "not_found",
    );
    let r = refused(
        &a,
        "vip_claim",
        &cfg(&format!(
            "route_tables={},{}",
            w.route_tables[1], other.route_tables[0]
        )),
        "validation",
    );
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains(&other.route_tables[0]),
        "{r}"
    );

    // Invalid UTF-8 through the C ABI.
    let out = a.run(&[
        "callhex",
        "vip_claim",
        "7669703d3139322e3136382e3234302e3130ff",
    ]);
    let r = result_of(&out[0]);
    assert_eq!(kind(&r), "config", "{r}");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("UTF-8"));

    // A NUL in the middle: IRIS passes what precedes it, which here is a valid config for a dry run.
    let out = a.run(&[
        "callhex",
        "vip_claim",
        &hex(&format!("{};dry_run=1\0;bogus=1", cfg(""))),
    ]);
    let r = result_of(&out[0]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["dry_run"], true);

    assert_eq!(w.routes(VIP), before, "a refused call changed a route");
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn no_vip_and_no_label_is_a_config_error() {
    let w = World::create(1, &[]);
    let a = Node::new(&w, &w.a);
    let r = refused(&a, "vip_claim", "interface=nosuch:7", "config");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("nosuch:7"),
        "{r}"
    );
    // The label's address is the default VIP: `lo` carries 127.0.0.1, which is outside the VPC.
    let r = a.status("interface=lo");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["vip"], "127.0.0.1/32");
    assert_eq!(r["local"]["vip_present"], true);
}
