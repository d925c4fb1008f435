//! An IPv6 overlay VIP in `mode=route`: the route is `DestinationIpv6CidrBlock`, the address a
//! single /128 outside every IPv6 CIDR of the VPC; the rest (create/replace, release only
//! what is ours, status) as for IPv4.

use crate::common::*;

/// An IPv6 overlay address: a unique-local one, outside the Amazon-provided block.
const VIP6: &str = "fd00:ec2:1815::10";

fn v6cfg(extra: &str) -> String {
    if extra.is_empty() {
        format!("vip={VIP6}")
    } else {
        format!("vip={VIP6};{extra}")
    }
}

#[test]
fn an_ipv6_vip_moves_between_members_like_an_ipv4_one() {
    let w = World::create(2, &["--ipv6"]);
    let (a, b) = (Node::new(&w, &w.a), Node::new(&w, &w.b));

    let r = a.claim(&v6cfg(""));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["vip"], "fd00:ec2:1815::10/128", "{r}");
    assert_eq!(actions(&r), ["created", "created"], "{r}");
    assert_eq!(r["holder"], "self", "{r}");
    assert_eq!(w.routes(VIP6), vec![Some(w.a.eni.clone()); 2]);
    // The IPv4 VIP's routes are another destination: untouched.
    assert_eq!(w.routes(VIP), vec![None, None]);

    let r = b.claim(&v6cfg(""));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(actions(&r), ["replaced", "replaced"], "{r}");
    assert_eq!(w.routes(VIP6), vec![Some(w.b.eni.clone()); 2]);

    let r = a.release(&v6cfg(""));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(actions(&r), ["unchanged", "unchanged"], "{r}");
    assert_eq!(r["holder"], "other", "{r}");

    let s = a.status(&v6cfg(""));
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["holder"], "other", "{s}");
    assert_eq!(s["route_tables"][0]["target"], w.b.eni.as_str(), "{s}");

    let r = b.release(&v6cfg(""));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(actions(&r), ["deleted", "deleted"], "{r}");
    assert_eq!(w.routes(VIP6), vec![None, None]);
}

#[test]
fn an_ipv6_vip_inside_the_vpc_or_wider_than_one_address_is_refused() {
    let w = World::create(1, &["--ipv6"]);
    let a = Node::new(&w, &w.a);
    let block = w
        .ipv6_cidr
        .clone()
        .expect("moto gave the VPC an IPv6 block");
    let base = block.split('/').next().expect("address part");
    let inside = format!("{}10", base.trim_end_matches(':').to_owned() + "::");

    let r = a.claim(&format!("vip={inside}"));
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "validation", "{r}");
    let msg = r["error"]["message"].as_str().unwrap_or("");
    // The library writes addresses canonically (RFC 5952): moto may hand out a block written
    // with leading zeros (`2400:6500:27a6:0b00::/56`), so compare canonical forms.
    let (addr, len) = block.split_once('/').expect("a CIDR");
    let canonical = format!(
        "{}/{len}",
        addr.parse::<std::net::Ipv6Addr>().expect("an IPv6 address")
    );
    assert!(
        msg.contains(&canonical),
        "the message names the VPC's block {canonical}: {r}"
    );

    let r = a.claim("vip=fd00:ec2:1815::/64");
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "validation", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("/128"),
        "{r}"
    );

    assert_eq!(w.routes(VIP6), vec![None]);
}
