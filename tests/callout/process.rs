//! Process-level promises: deadlines, IMDS down, fork, many processes, no threads.

use crate::common::*;
use std::net::TcpListener;
use std::time::Duration;

/// An endpoint that accepts connections and never answers.
fn black_hole() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
            if held.len() > 64 {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(120));
    });
    port
}

#[test]
fn an_ec2_endpoint_that_never_answers_times_out_within_the_deadline() {
    let w = World::create(1, &[]);
    let a = Node::new(&w, &w.a);
    let port = black_hole();
    let line = &a.run(&[
        "call",
        "vip_claim",
        &cfg(&format!("endpoint=http://127.0.0.1:{port};timeout_ms=1500")),
    ])[0];
    let r = result_of(line);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "timeout", "{r}");
    let ms = line["ms"].as_f64().unwrap_or(f64::MAX);
    // The contract: within timeout_ms plus scheduling slack.
    assert!(ms < 1500.0 + 1000.0, "took {ms} ms");
    assert!(ms >= 1400.0, "gave up early: {ms} ms");
}

#[test]
fn imds_down_is_a_metadata_error_quickly_and_changes_nothing() {
    let w = World::create(1, &[]);
    let a = Node::new(&w, &w.a);
    let out = a
        .host()
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
        .args(["call", "vip_claim", &cfg("")])
        .output()
        .expect("zfhost");
    let r = result_of(&lines(&out)[0]);
    assert_eq!(r["ok"], false);
    assert_eq!(kind(&r), "metadata", "{r}");
    assert_eq!(w.routes(VIP), vec![None]);
}

#[test]
fn a_forked_child_calls_after_the_parent_did() {
    let w = World::create(1, &[]);
    let a = Node::new(&w, &w.a);
    let out = a.run(&[
        "call",
        "vip_claim",
        &cfg(""),
        "fork",
        "vip_status",
        &cfg(""),
        "fork",
        "vip_claim",
        &cfg("write=changed"),
        "call",
        "vip_status",
        &cfg(""),
    ]);
    let parent = result_of(&out[0]);
    assert_eq!(parent["ok"], true, "{parent}");
    let child = result_of(&out[1]);
    assert_eq!(out[1]["forked"], true);
    assert_ne!(out[1]["pid"], out[0]["pid"]);
    assert_eq!(child["ok"], true, "{child}");
    assert_eq!(child["holder"], "self");
    assert_eq!(out[2]["exited"], true, "{}", out[2]);
    assert_eq!(out[2]["code"], 0);
    let child2 = result_of(&out[3]);
    assert_eq!(actions(&child2), ["unchanged"]);
    // The parent still works after its children used their own runtimes.
    assert_eq!(result_of(&out[5])["ok"], true);
}

#[test]
fn many_processes_at_once() {
    let w = World::create(2, &[]);
    let a = Node::new(&w, &w.a);
    let children: Vec<_> = (0..6)
        .map(|i| {
            let entry = if i % 3 == 2 {
                "vip_status"
            } else {
                "vip_claim"
            };
            a.host()
                .args(["call", entry, &cfg("")])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        let r = result_of(&lines(&out)[0]);
        assert_eq!(r["ok"], true, "{r}");
    }
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone()); 2]);
}

#[test]
fn no_thread_is_created_before_during_or_after_calls() {
    let w = World::create(1, &[]);
    let a = Node::new(&w, &w.a);
    let port = black_hole();
    let child = a
        .host()
        .args([
            "threads",
            "call",
            "vip_claim",
            &cfg(""),
            "call",
            "vip_status",
            &cfg(&format!("endpoint=http://127.0.0.1:{port};timeout_ms=800")),
        ])
        // A hostname endpoint: resolved on the calling thread, not in a blocking pool.
        .args([
            "call",
            "vip_status",
            &cfg(&format!(
                "endpoint={}",
                w.endpoint.replace("127.0.0.1", "localhost")
            )),
        ])
        .args(["call", "vip_release", &cfg(""), "threads"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let (max, samples, out) = thread_peak(child);
    let lines = lines(&out);
    assert!(samples > 50, "only {samples} samples");
    assert_eq!(max, 1, "the host process had {max} threads at some point");
    assert_eq!(lines[0]["count"], 1);
    assert_eq!(result_of(&lines[1])["ok"], true);
    assert_eq!(kind(&result_of(&lines[2])), "timeout");
    let by_name = result_of(&lines[3]);
    assert_eq!(by_name["ok"], true, "{by_name}");
    assert_eq!(by_name["holder"], "self");
    assert_eq!(result_of(&lines[4])["ok"], true);
    assert_eq!(lines[5]["count"], 1);
}
