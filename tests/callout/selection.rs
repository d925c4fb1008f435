//! Which route tables a call acts on: the default selection leaves out edge tables (AWS
//! refuses overlay routes there), and a tag is matched literally (EC2's filter values treat
//! `*` and `?` as wildcards, which would select tables nobody tagged for this VIP).

use crate::common::*;

#[test]
fn the_default_selection_leaves_out_a_table_associated_with_a_gateway() {
    let w = World::create(2, &[]);
    let a = Node::new(&w, &w.a);
    let edge = world_py(&["edge-table", "--endpoint", &w.endpoint, "--vpc", &w.vpc]);
    let (edge_table, igw) = (
        edge["table"].as_str().expect("table").to_owned(),
        edge["gateway"].as_str().expect("gateway").to_owned(),
    );

    for entry in ["vip_status", "vip_claim"] {
        let r = a.call(entry, &cfg(""));
        assert_eq!(r["ok"], true, "{entry}: {r}");
        let ids: Vec<&str> = r["route_tables"]
            .as_array()
            .expect("tables")
            .iter()
            .filter_map(|t| t["id"].as_str())
            .collect();
        assert_eq!(ids.len(), 2, "{entry}: {r}");
        assert!(!ids.contains(&edge_table.as_str()), "{entry}: {r}");
        let warned = r["warnings"].as_array().expect("warnings").iter().any(|w| {
            let w = w.as_str().unwrap_or("");
            w.contains(&edge_table) && w.contains(&igw) && w.contains("left out")
        });
        assert!(warned, "{entry} does not say it left {edge_table} out: {r}");
    }
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone()); 2]);

    // Named by id, the edge table is the administrator's choice: it is acted on (moto, unlike
    // AWS, accepts the route).
    let r = a.claim(&cfg(&format!("route_tables={edge_table}")));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["route_tables"][0]["id"], edge_table.as_str(), "{r}");
}

#[test]
fn a_tag_value_with_wildcard_characters_matches_literally() {
    let w = World::create(3, &["--tag", "irisvip=prod"]);
    let a = Node::new(&w, &w.a);
    let t = &w.route_tables;

    // EC2's filter would read `prod*` and `pro?` as patterns matching `prod`: nothing carries
    // them literally, so nothing is selected and nothing moves.
    for pattern in [
        "irisvip=prod*",
        "irisvip=pro?",
        "irisvip=*",
        "irisvip*=prod",
    ] {
        let r = a.claim(&cfg(&format!("route_table_tag={pattern}")));
        assert_eq!(r["ok"], false, "{pattern}: {r}");
        assert_eq!(kind(&r), "not_found", "{pattern}: {r}");
        assert_eq!(w.routes(VIP), vec![None, None, None], "{pattern}");
    }

    // A table tagged with the literal value is selected, and only it.
    world_py(&[
        "tag",
        "--endpoint",
        &w.endpoint,
        "--tag",
        "irisvip=prod*",
        &t[1],
    ]);
    let r = a.claim(&cfg("route_table_tag=irisvip=prod*"));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(actions(&r), ["created"], "{r}");
    assert_eq!(r["route_tables"][0]["id"], t[1].as_str(), "{r}");
    assert_eq!(w.routes(VIP), vec![None, Some(w.a.eni.clone()), None]);
}
