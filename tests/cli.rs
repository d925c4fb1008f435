//! The operator CLI against moto and an IMDSv2 stand-in: output, JSON, exit codes, --config.

mod common;

use common::*;
use std::process::Command;

fn cli(node: &Node) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_irisvip"));
    for k in [
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_EC2_METADATA_DISABLED",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("AWS_CONFIG_FILE", "/nonexistent/c")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/s");
    for (k, v) in &node.env {
        cmd.env(k, v);
    }
    cmd
}

fn run(node: &Node, args: &[&str]) -> (i32, String) {
    let out = cli(node).args(args).output().expect("irisvip runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn claim_status_release_check_and_exit_codes() {
    let w = World::create(2, &[]);
    let (a, b) = (Node::new(&w, &w.a), Node::new(&w, &w.b));

    let (code, out) = run(&a, &["claim", "--vip", VIP, "--json"]);
    assert_eq!(code, 0, "{out}");
    let r: serde_json::Value =
        serde_json::from_str(out.trim()).expect("--json prints the contract JSON");
    assert_eq!(r["ok"], true);
    assert_eq!(actions(&r), ["created", "created"]);
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone()); 2]);

    // Human output from the other member: one line per table with target, state, self.
    let (code, out) = run(&b, &["status", "--vip", VIP]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("holder other"), "{out}");
    for t in &w.route_tables {
        let line = out
            .lines()
            .find(|l| l.contains(t.as_str()))
            .unwrap_or_else(|| panic!("{t} missing: {out}"));
        assert!(
            line.contains(&w.a.eni) && line.contains("active") && line.contains(" no "),
            "{line}"
        );
    }

    // --config as a string and as a file; a key given twice is refused (exit 2).
    let file = std::env::temp_dir().join(format!("irisvip-cli-{}.conf", std::process::id()));
    std::fs::write(&file, format!("vip={VIP}\ntimeout_ms=5000\n")).expect("write config");
    let (code, out) = run(
        &b,
        &[
            "claim",
            "--config",
            file.to_str().unwrap_or_default(),
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("(dry run)") && out.contains("planned"),
        "{out}"
    );
    assert_eq!(
        w.routes(VIP),
        vec![Some(w.a.eni.clone()); 2],
        "dry run changed nothing"
    );
    let (code, out) = run(
        &b,
        &[
            "claim",
            "--config",
            file.to_str().unwrap_or_default(),
            "--vip",
            VIP,
        ],
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("twice"), "{out}");
    let _ = std::fs::remove_file(&file);

    // Exit codes: config/validation 2, not found 4.
    assert_eq!(run(&b, &["claim", "--vip", "10.0.0.0/8"]).0, 2);
    assert_eq!(
        run(&b, &["claim", "--vip", &w.cidr.replace("0.0/16", "1.1")]).0,
        2
    );
    assert_eq!(
        run(
            &b,
            &[
                "release",
                "--vip",
                VIP,
                "--route-tables",
                "rtb-0000000000000000f"
            ]
        )
        .0,
        4
    );
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone()); 2]);

    // Preflight (IAM probe skipped: moto ignores DryRun and would really change routes).
    let (code, out) = run(
        &b,
        &["check", "--vip", VIP, "--permissions", "skip", "--json"],
    );
    let r: serde_json::Value = serde_json::from_str(out.trim()).expect("check JSON");
    let status = |name: &str| {
        r["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|x| x["name"] == name))
            .map(|x| x["status"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(status("imds").as_deref(), Some("pass"), "{r}");
    assert_eq!(status("identity").as_deref(), Some("pass"));
    assert_eq!(status("source_dest_check").as_deref(), Some("pass"));
    assert_eq!(status("vip_outside_vpc").as_deref(), Some("pass"));
    assert_eq!(status("route_tables").as_deref(), Some("pass"));
    assert_eq!(status("holder").as_deref(), Some("pass"));
    assert_eq!(
        status("vip_local").as_deref(),
        Some("warn"),
        "the VIP is not on eth0:1 here"
    );
    assert_eq!(status("permissions").as_deref(), Some("skip"));
    assert_eq!(r["ok"], true);
    assert_eq!(code, 0);
    assert_eq!(
        w.routes(VIP),
        vec![Some(w.a.eni.clone()); 2],
        "check changed nothing"
    );

    // A failing check: the VIP inside the VPC; exit 2 and the fix is printed.
    let (code, out) = run(
        &b,
        &[
            "check",
            "--vip",
            &w.cidr.replace("0.0/16", "9.9"),
            "--permissions",
            "skip",
        ],
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("FAIL vip_outside_vpc") && out.contains("fix:"),
        "{out}"
    );

    let (code, out) = run(&a, &["release", "--vip", VIP]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(w.routes(VIP), vec![None, None]);
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["status", "claim", "release", "check"] {
        let out = Command::new(env!("CARGO_BIN_EXE_irisvip"))
            .args([sub, "--help"])
            .output()
            .expect("runs");
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        for flag in [
            "--vip",
            "--route-tables",
            "--route-table-tag",
            "--eni",
            "--region",
            "--endpoint",
            "--timeout-ms",
            "--dry-run",
            "--config",
            "--json",
            "--mode",
            "--write",
            "--max-in-flight",
            "--allocation-id",
            "--public-ip",
            "--private-ip",
            "--role-arn",
            "--external-id",
        ] {
            assert!(text.contains(flag), "{sub} --help lacks {flag}");
        }
    }
}

/// The address kinds from the command line: `--mode` and the EIP flags reach the library, the
/// human report names the holder, a key of another mode exits 2 and changes nothing. Through
/// the EC2 model (docs/ec2-model.md): moto leaves a moved private IP on the old ENI too.
#[test]
fn private_ip_and_elastic_ip_modes_from_flags() {
    let w = World::create(1, &["--same-subnet", "--secondary-ip", "--eip"]);
    let ec2 = FaultProxy::start_model(
        &w.endpoint,
        &serde_json::json!({"throttle": false, "consistency": false}),
    );
    let endpoint = ec2.url();
    let b = Node::new(&w, &w.b);
    let sec = w.secondary_ip.clone().expect("a secondary ip");
    let eip = w.eip.clone().expect("an elastic ip");
    assert_eq!(w.holders(&sec.ip), vec![w.a.eni.clone()]);

    let (code, out) = run(
        &b,
        &[
            "claim",
            "--mode",
            "private-ip",
            "--vip",
            &sec.ip,
            "--endpoint",
            &endpoint,
            "--json",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let r: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(r["address"]["action"], "assigned", "{r}");
    assert!(r.get("route_tables").is_none(), "{r}");
    assert_eq!(w.holders(&sec.ip), vec![w.b.eni.clone()]);

    let (code, out) = run(
        &b,
        &[
            "claim",
            "--mode",
            "eip",
            "--allocation-id",
            &eip.allocation_id,
            "--endpoint",
            &endpoint,
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("Elastic IP {}", eip.public_ip))
            && out.contains(&format!("held by {}", w.b.eni))
            && out.contains("action associated"),
        "{out}"
    );
    let (code, out) = run(
        &b,
        &[
            "status",
            "--mode",
            "eip",
            "--public-ip",
            &eip.public_ip,
            "--endpoint",
            &endpoint,
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("holder self"), "{out}");

    // A key of another mode: exit 2, nothing sent.
    let before = ec2.log().len();
    let (code, out) = run(
        &b,
        &[
            "release",
            "--mode",
            "eip",
            "--allocation-id",
            &eip.allocation_id,
            "--route-tables",
            &w.route_tables[0],
            "--endpoint",
            &endpoint,
        ],
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("belongs to mode=route"), "{out}");
    assert_eq!(ec2.log().len(), before, "a refused config sends nothing");
    let v = w.eip_at(&w.endpoint, &eip.allocation_id);
    assert_eq!(v["eni"], w.b.eni.as_str(), "{v}");
}
