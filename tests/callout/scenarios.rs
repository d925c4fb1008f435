//! Claim, release and status between two members in two AZs, against moto.

use crate::common::*;

#[test]
fn failover_a_to_b_and_release_semantics() {
    let w = World::create(2, &[]);
    let (a, b) = (Node::new(&w, &w.a), Node::new(&w, &w.b));
    let all_a = vec![Some(w.a.eni.clone()); 2];
    let all_b = vec![Some(w.b.eni.clone()); 2];

    // Cold start: A claims (the route exists nowhere yet).
    let r = a.claim(&cfg(""));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["op"], "claim");
    assert_eq!(r["holder"], "self");
    assert_eq!(r["vip"], format!("{VIP}/32"));
    assert_eq!(r["eni"], w.a.eni);
    assert_eq!(r["instance_id"], w.a.instance_id);
    assert_eq!(r["vpc_id"], w.vpc);
    assert_eq!(r["region"], "us-east-1", "region comes from IMDS");
    assert_eq!(actions(&r), ["created", "created"]);
    for t in r["route_tables"].as_array().expect("tables") {
        assert_eq!(t["target"], w.a.eni);
        assert_eq!(t["state"], "active");
        assert_eq!(t["self"], true);
    }
    assert_eq!(w.routes(VIP), all_a);

    // Re-assert (write=changed): nothing to do.
    let r = a.claim(&cfg("write=changed"));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(actions(&r), ["unchanged", "unchanged"]);
    assert_eq!(r["holder"], "self");
    // A failover claim (the default, write=always) does not trust the read: it writes.
    let r = a.claim(&cfg(""));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(actions(&r), ["replaced", "replaced"]);
    assert_eq!(r["holder"], "self");

    // B looks: A holds it.
    let s = b.status(&cfg(""));
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["op"], "status");
    assert_eq!(s["holder"], "other");
    assert_eq!(s["source_dest_check"], false);
    assert_eq!(s["local"]["interface"], "eth0:1");
    assert_eq!(s["local"]["vip_present"], false);
    assert!(
        s["route_tables"][0].get("action").is_none(),
        "status has no action: {s}"
    );
    assert_eq!(s["route_tables"][0]["self"], false);

    // Failover: B claims, every table replaced atomically.
    let r = b.claim(&cfg(""));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(actions(&r), ["replaced", "replaced"]);
    assert_eq!(r["holder"], "self");
    assert_eq!(w.routes(VIP), all_b);

    // A's late release leaves B's routes alone.
    let r = a.release(&cfg(""));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(actions(&r), ["unchanged", "unchanged"]);
    assert_eq!(r["holder"], "other");
    assert_eq!(w.routes(VIP), all_b);

    // B releases: gone.
    let r = b.release(&cfg(""));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(actions(&r), ["deleted", "deleted"]);
    assert_eq!(r["holder"], "none");
    assert_eq!(w.routes(VIP), vec![None, None]);
    for t in r["route_tables"].as_array().expect("tables") {
        assert_eq!(t["state"], "absent");
        assert!(t["target"].is_null());
    }
}

#[test]
fn selection_by_ids_and_by_tag_and_by_default() {
    let w = World::create(4, &["--tag", "irisvip=prod", "--tag-some"]);
    let a = Node::new(&w, &w.a);
    let t = &w.route_tables;

    // route_tables: only the listed ones, in the order given.
    let r = a.claim(&cfg(&format!("route_tables={},{}", t[3], t[1])));
    assert_eq!(r["ok"], true, "{r}");
    let ids: Vec<&str> = r["route_tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter_map(|x| x["id"].as_str())
        .collect();
    assert_eq!(ids, [t[3].as_str(), t[1].as_str()]);
    assert_eq!(
        w.routes(VIP),
        vec![None, Some(w.a.eni.clone()), None, Some(w.a.eni.clone())]
    );

    // route_table_tag: the tagged half only.
    assert_eq!(w.tagged.len(), 2);
    let r = a.release(&cfg(&format!("route_tables={},{}", t[3], t[1])));
    assert_eq!(r["ok"], true, "{r}");
    let r = a.claim(&cfg("route_table_tag=irisvip=prod"));
    assert_eq!(r["ok"], true, "{r}");
    let mut got: Vec<String> = r["route_tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter_map(|x| x["id"].as_str().map(str::to_owned))
        .collect();
    let mut want = w.tagged.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // Default: every table of the VPC.
    let r = a.claim(&cfg(""));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["route_tables"].as_array().map(|a| a.len()), Some(4));
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone()); 4]);

    // A tag nobody carries: not_found, nothing changes.
    let r = a.release(&cfg("route_table_tag=irisvip=nope"));
    assert_eq!(r["ok"], false);
    assert_eq!(kind(&r), "not_found", "{r}");
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone()); 4]);
}

#[test]
fn route_missing_in_some_tables_is_created_and_others_replaced() {
    let w = World::create(3, &[]);
    let a = Node::new(&w, &w.a);
    let t = &w.route_tables;
    w.set_route(&t[0], &w.b.eni, VIP);
    w.set_route(&t[2], &w.a.eni, VIP);
    let r = a.claim(&cfg("write=changed"));
    assert_eq!(r["ok"], true, "{r}");
    let by_id = |id: &str| {
        r["route_tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|x| x["id"] == id)
            .map(|x| x["action"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(by_id(&t[0]).as_deref(), Some("replaced"));
    assert_eq!(by_id(&t[1]).as_deref(), Some("created"));
    assert_eq!(by_id(&t[2]).as_deref(), Some("unchanged"));
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone()); 3]);
}

#[test]
fn dry_run_plans_and_changes_nothing() {
    let w = World::create(2, &[]);
    let (a, b) = (Node::new(&w, &w.a), Node::new(&w, &w.b));
    w.set_route(&w.route_tables[0], &w.b.eni, VIP);
    let before = w.routes(VIP);

    let r = a.claim(&cfg("dry_run=1"));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["dry_run"], true);
    assert_eq!(actions(&r), ["planned", "planned"]);
    assert_eq!(
        r["holder"], "mixed",
        "reports what is, not what would be: {r}"
    );
    assert_eq!(w.routes(VIP), before);

    let r = b.release(&cfg("dry_run=1"));
    assert_eq!(r["ok"], true, "{r}");
    let mut acts = actions(&r);
    acts.sort();
    assert_eq!(acts, ["planned", "unchanged"]);
    assert_eq!(w.routes(VIP), before);
}

#[test]
fn explicit_eni_region_and_endpoint_work_without_imds() {
    let w = World::create(1, &[]);
    let a = Node::new(&w, &w.a);
    // IMDS unreachable: the ENI and region are given, the endpoint in the config.
    let out = a
        .host()
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
        .env_remove("AWS_ENDPOINT_URL_EC2")
        .args([
            "call",
            "vip_claim",
            &cfg(&format!(
                "eni={};region=us-east-1;endpoint={}",
                w.a.eni, w.endpoint
            )),
        ])
        .output()
        .expect("zfhost");
    let r = result_of(&lines(&out)[0]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["eni"], w.a.eni);
    assert_eq!(r["vpc_id"], w.vpc);
    assert_eq!(
        r["instance_id"], w.a.instance_id,
        "from the ENI's attachment"
    );
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone())]);
}

#[test]
fn credentials_from_the_instance_profile_via_imdsv2() {
    let w = World::create(1, &[]);
    let a = Node::with_imds_args(&w, &w.a, &["--credentials"]);
    let out = a
        .host()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .args(["call", "vip_claim", &cfg("")])
        .output()
        .expect("zfhost");
    let r = result_of(&lines(&out)[0]);
    assert_eq!(r["ok"], true, "{r}");
    let stats = a.imds.stats();
    assert!(
        stats["token_puts"].as_u64().unwrap_or(0) >= 1,
        "IMDSv2 token used: {stats}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("irisvip-test-secret-key") && !text.contains("irisvip-test-session-token"),
        "secret in output"
    );
}

#[test]
fn metadata_disabled_means_no_request_to_imds() {
    let w = World::create(1, &[]);
    let a = Node::new(&w, &w.a);
    let before = w.routes(VIP);
    // IMDS is up, but AWS_EC2_METADATA_DISABLED says not to ask it: without eni= the claim
    // cannot know which ENI to point at, and says so without touching IMDS.
    let out = a
        .host()
        .env("AWS_EC2_METADATA_DISABLED", "TRUE")
        .env("AWS_REGION", "us-east-1")
        .args(["call", "vip_claim", &cfg("")])
        .output()
        .expect("zfhost");
    let r = result_of(&lines(&out)[0]);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "metadata", "{r}");
    let message = r["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("AWS_EC2_METADATA_DISABLED") && message.contains("eni="),
        "{message}"
    );
    let stats = a.imds.stats();
    assert_eq!(stats["token_puts"], 0, "{stats}");
    assert_eq!(stats["gets"], 0, "{stats}");
    assert_eq!(w.routes(VIP), before);

    // With eni= and region= nothing is needed from IMDS: the claim works, IMDS still untouched.
    let out = a
        .host()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .args([
            "call",
            "vip_claim",
            &cfg(&format!("eni={};region=us-east-1", w.a.eni)),
        ])
        .output()
        .expect("zfhost");
    let r = result_of(&lines(&out)[0]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone())]);
    let stats = a.imds.stats();
    assert_eq!(stats["token_puts"], 0, "{stats}");
    assert_eq!(stats["gets"], 0, "{stats}");
}

#[test]
fn route_to_a_gateway_is_reported_as_other_target_and_claimed_back() {
    let w = World::create(2, &[]);
    let a = Node::new(&w, &w.a);
    w.set_route(&w.route_tables[0], &w.b.eni, VIP);
    let igw = world_py(&[
        "gateway-route",
        "--endpoint",
        &w.endpoint,
        "--vip",
        VIP,
        "--table",
        &w.route_tables[1],
    ])["gateway"]
        .as_str()
        .expect("gateway id")
        .to_owned();

    let r = a.status(&cfg(""));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["holder"], "mixed", "{r}");
    let t = table(&r, &w.route_tables[1]);
    assert_eq!(t["target"], serde_json::Value::Null, "{r}");
    assert_eq!(t["other_target"], igw.as_str(), "{r}");
    assert_eq!(t["state"], "active");
    assert_eq!(t["self"], false);
    let t = table(&r, &w.route_tables[0]);
    assert_eq!(t["target"], w.b.eni.as_str());
    assert!(t.get("other_target").is_none(), "{r}");

    let r = a.claim(&cfg(""));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(actions(&r), ["replaced", "replaced"]);
    assert_eq!(r["holder"], "self");
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone()); 2]);
}

#[test]
fn table_ids_that_do_not_exist_are_not_found_whatever_their_letters() {
    let w = World::create(1, &[]);
    let a = Node::new(&w, &w.a);
    let before = w.routes(VIP);
    for ids in ["rtb-doesnotexist", "rtb-MISSING0"] {
        let r = a.claim(&cfg(&format!("route_tables={ids}")));
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(kind(&r), "not_found", "{ids}: {r}");
        assert!(
            r["error"]["message"].as_str().unwrap_or("").contains(ids),
            "{r}"
        );
    }
    assert_eq!(w.routes(VIP), before);
}
