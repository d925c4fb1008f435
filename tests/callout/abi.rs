//! The function table and the buffer rules, as IRIS sees them.

use crate::common::*;
use serde_json::Value;

fn host() -> std::process::Command {
    let mut cmd = std::process::Command::new(zfhost_bin());
    cmd.env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_REGION");
    cmd
}

fn run(args: &[&str]) -> Vec<Value> {
    lines(&host().args(args).output().expect("zfhost runs"))
}

#[test]
fn table_lists_the_contract_entries_in_order_with_null_terminator() {
    let out = run(&["table"]);
    let entries = out[0]["entries"].as_array().expect("entries");
    let got: Vec<(u64, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["id"].as_u64().unwrap_or(0),
                e["name"].as_str().unwrap_or(""),
                e["desc"].as_str().unwrap_or(""),
            )
        })
        .collect();
    // The contract fixes the first three; the table may only grow after them.
    assert!(got.len() >= 3, "{got:?}");
    assert_eq!(
        &got[..3],
        &[
            (1, "vip_claim", "cC"),
            (2, "vip_release", "cC"),
            (3, "vip_status", "cC")
        ]
    );
}

#[test]
fn zfestr_layout_is_24_bytes_on_x86_64() {
    assert_eq!(
        std::mem::size_of::<zfhost::ZfEntry>(),
        3 * std::mem::size_of::<usize>()
    );
    assert_eq!(
        std::mem::size_of::<zfhost::Callbacks>(),
        9 * std::mem::size_of::<usize>()
    );
}

#[test]
fn every_capacity_is_respected_and_answers_valid_json() {
    // A config error answers without AWS: exercise the writer through the ABI at every small size.
    let mut args: Vec<String> = Vec::new();
    for cap in [0, 1, 2, 3, 4, 8, 12, 13, 16, 32, 48, 64, 100, 200, 400] {
        args.extend([
            "strsize".into(),
            cap.to_string(),
            "call".into(),
            "vip_claim".into(),
            "bogus=1".into(),
        ]);
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    for line in run(&argv) {
        let cap = line["capacity"].as_u64().expect("capacity") as usize;
        assert_eq!(line["rc"], 0, "{line}");
        assert_eq!(
            line["guard_intact"], true,
            "cap {cap}: wrote past the buffer: {line}"
        );
        let len = line["output_len"].as_u64().expect("len") as usize;
        if cap == 0 {
            continue; // no room to trust: see signals.rs for what is written then
        }
        assert_eq!(line["nul_within_capacity"], true, "cap {cap}: {line}");
        assert!(len < cap, "cap {cap}: {len} bytes + NUL");
        let out = line["output"].as_str().unwrap_or("");
        if cap >= 3 {
            let v: Value =
                serde_json::from_str(out).unwrap_or_else(|e| panic!("cap {cap}: {out:?}: {e}"));
            assert_ne!(v["ok"], true, "cap {cap}: {out}");
        } else {
            assert_eq!(out, "", "cap {cap}");
        }
    }
}

#[test]
fn a_64_byte_reply_capacity_gets_a_short_valid_object_saying_so() {
    let line = &run(&[
        "strsize",
        "64",
        "call",
        "vip_status",
        "bogus=1;also_bogus=2",
    ])[0];
    let v = result_of(line);
    assert!(line["output_len"].as_u64().unwrap_or(99) <= 63);
    assert_eq!(v["ok"], false);
    assert_eq!(v["truncated"], true, "{v}");
}

#[test]
fn a_panic_inside_an_entry_is_an_internal_error_and_the_process_lives_on() {
    let out = lines(
        &host()
            .env("IRISVIP_TEST_PANIC", "claim")
            .args(["call", "vip_claim", "", "call", "vip_release", "bogus=1"])
            .output()
            .expect("zfhost runs"),
    );
    let v = result_of(&out[0]);
    assert_eq!(v["ok"], false);
    assert_eq!(kind(&v), "internal", "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("panicked"));
    // The same process keeps answering.
    let after = result_of(&out[1]);
    assert_eq!(kind(&after), "config");
}

#[test]
fn unload_and_reload_keeps_working() {
    let out = run(&[
        "call",
        "vip_status",
        "bogus=1",
        "unload",
        "call",
        "vip_status",
        "bogus=2",
    ]);
    assert_eq!(kind(&result_of(&out[0])), "config");
    assert_eq!(out[1]["reloaded"], true);
    let v = result_of(&out[2]);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("bogus"),
        "{v}"
    );
}

#[test]
fn the_objectscript_names_exist_in_the_table_with_matching_arity() {
    let script = repo().join("tests/objectscript/zf_calls.py");
    if !script.exists() {
        panic!("{} is missing", script.display());
    }
    let out = std::process::Command::new(python())
        .arg(&script)
        .arg(repo().join("objectscript"))
        .output()
        .expect("zf_calls.py runs");
    assert!(
        out.status.success(),
        "zf_calls.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON list");
    assert!(
        !calls.is_empty(),
        "no $ZF(-4,3,...) call found in objectscript/"
    );
    let table = run(&["table"]);
    let entries = table[0]["entries"].as_array().expect("entries").clone();
    for c in &calls {
        let name = c["name"].as_str().expect("name");
        let entry = entries
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} ({}) is not in the table", c["where"]));
        let desc = entry["desc"].as_str().unwrap_or("");
        // Inputs: every argument up to the last lowercase one; trailing outputs may be left out.
        let required = desc
            .rfind(|ch: char| ch.is_ascii_lowercase())
            .map(|i| i + 1)
            .unwrap_or(0);
        let inputs = c["inputs"].as_u64().expect("inputs") as usize;
        assert!(
            (required..=desc.len()).contains(&inputs),
            "{name} at {} passes {inputs} arguments; descriptor {desc:?} takes {required}..={}",
            c["where"],
            desc.len()
        );
    }
}
