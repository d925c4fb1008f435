//! `role_arn=` (+ `external_id=`) through the C ABI: every EC2 call with the credentials of STS
//! AssumeRole. moto serves STS on the same port as EC2 (it routes by the SigV4 service name)
//! and accepts AssumeRole of any role; the credentials it gives belong to the role's account,
//! and moto answers EC2 requests signed with them from that account. The fault proxy sits in
//! front of moto for both services (`AWS_ENDPOINT_URL_STS` and `AWS_ENDPOINT_URL_EC2`), so its
//! log shows every AssumeRole (RoleArn, RoleSessionName, ExternalId) and every EC2 request.

use crate::common::*;
use serde_json::{json, Value};
use std::process::Output;
use std::time::Duration;

/// The world's account (moto's default): the role of the "owner account" in these tests.
const OWNER_ROLE: &str = "arn:aws:iam::123456789012:role/irisvip-routes";
/// A role in an account that holds none of the world's resources.
const ELSEWHERE_ROLE: &str = "arn:aws:iam::210987654321:role/irisvip-routes";
const EXTERNAL_ID: &str = "prod-mirror:7";

/// A canned AssumeRole answer with recognisable secrets: no output line may contain them.
const CANNED_KEY_ID: &str = "ASIAIRISVIPCANNED001";
const CANNED_SECRET: &str = "irisvipASSUMEDsecretKEY/r8Tq4Zp";
const CANNED_TOKEN: &str = "irisvipASSUMEDsessionTOKEN+5mWx";

/// `node` with STS and EC2 behind one fault proxy in front of moto; returns the proxy.
fn behind_proxy(node: &mut Node) -> FaultProxy {
    let proxy = FaultProxy::start(moto());
    node.env.retain(|(k, _)| k != "AWS_ENDPOINT_URL_EC2");
    node.env
        .push(("AWS_ENDPOINT_URL_EC2".to_owned(), proxy.url()));
    node.env
        .push(("AWS_ENDPOINT_URL_STS".to_owned(), proxy.url()));
    proxy.set(json!([]));
    proxy
}

fn assume_requests(log: &[Value]) -> Vec<Value> {
    log.iter()
        .filter(|e| e["action"] == "AssumeRole")
        .cloned()
        .collect()
}

fn ec2_actions(log: &[Value]) -> Vec<String> {
    log.iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| *a != "AssumeRole")
        .map(str::to_owned)
        .collect()
}

fn no_secret(out: &Output) {
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        for (i, line) in text.lines().enumerate() {
            for secret in [CANNED_SECRET, CANNED_TOKEN] {
                assert!(
                    !line.contains(secret),
                    "{name} line {i} contains an assumed secret: {line}"
                );
            }
        }
    }
}

fn sts_xml_error(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>{message}</Message></Error><RequestId>c0ffee00-0000-4000-8000-000000000001</RequestId>\
         </ErrorResponse>"
    )
}

fn canned_assume_role() -> String {
    format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
         <Credentials><AccessKeyId>{CANNED_KEY_ID}</AccessKeyId><SecretAccessKey>{CANNED_SECRET}</SecretAccessKey>\
         <SessionToken>{CANNED_TOKEN}</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>\
         <AssumedRoleUser><AssumedRoleId>AROAIRISVIPCANNED0001:irisvip</AssumedRoleId>\
         <Arn>arn:aws:sts::123456789012:assumed-role/irisvip-routes/irisvip</Arn></AssumedRoleUser>\
         </AssumeRoleResult><ResponseMetadata><RequestId>c0ffee00-0000-4000-8000-000000000002</RequestId>\
         </ResponseMetadata></AssumeRoleResponse>"
    )
}

#[test]
fn claim_with_role_arn_assumes_the_role_named_after_the_instance_and_moves_routes() {
    let w = World::create(2, &[]);
    let mut a = Node::new(&w, &w.a);
    let proxy = behind_proxy(&mut a);
    // No eni=: the identity comes from IMDS, so the instance id names the session.
    let config = cfg(&format!(
        "region={};role_arn={OWNER_ROLE};external_id={EXTERNAL_ID};timeout_ms=8000",
        w.region
    ));
    let line = &a.run(&["call", "vip_claim", &config])[0];
    let r = result_of(line);
    eprintln!(
        "role: first claim with role_arn (AssumeRole + claim): {:.0} ms",
        line["ms"].as_f64().unwrap_or(-1.0)
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone()); 2]);
    let log = proxy.log();
    let assumed = assume_requests(&log);
    assert_eq!(assumed.len(), 1, "{log:?}");
    let p = &assumed[0]["params"];
    assert_eq!(p["RoleArn"], OWNER_ROLE, "{p}");
    assert_eq!(p["ExternalId"], EXTERNAL_ID, "{p}");
    assert_eq!(
        p["RoleSessionName"],
        format!("irisvip-{}", w.a.instance_id),
        "{p}"
    );
    // AssumeRole came first, then the EC2 calls (which moved the routes).
    assert_eq!(log[0]["action"], "AssumeRole", "{log:?}");
    let ec2 = ec2_actions(&log);
    assert!(
        ec2.iter()
            .any(|a| a == "CreateRoute" || a == "ReplaceRoute"),
        "{ec2:?}"
    );
    // The result carries nothing of the credentials.
    let text = r.to_string();
    assert!(
        !text.contains("ASIA") && !text.contains("SessionToken"),
        "{text}"
    );
}

#[test]
fn ec2_calls_sign_with_the_assumed_credentials() {
    // moto answers a request from the account its access key belongs to. Credentials of a
    // role in another account see none of the world: the ENI is not found there. Signed with
    // the process's own keys (moto's default account) the same call finds it.
    let w = World::create(1, &[]);
    let mut a = Node::new(&w, &w.a);
    let proxy = behind_proxy(&mut a);
    let base = format!("eni={};region={};timeout_ms=8000", w.a.eni, w.region);
    let elsewhere = a.status(&cfg(&format!("{base};role_arn={ELSEWHERE_ROLE}")));
    assert_eq!(elsewhere["ok"], false, "{elsewhere}");
    assert_eq!(kind(&elsewhere), "not_found", "{elsewhere}");
    let assumed = assume_requests(&proxy.log());
    assert_eq!(assumed.len(), 1);
    assert_eq!(assumed[0]["params"]["RoleArn"], ELSEWHERE_ROLE);
    // eni= given: the instance id is unknown before the first EC2 call, the ENI names the session.
    assert_eq!(
        assumed[0]["params"]["RoleSessionName"],
        format!("irisvip-{}", w.a.eni)
    );
    assert!(assumed[0]["params"].get("ExternalId").is_none());
    let own = a.status(&cfg(&base));
    assert_eq!(own["ok"], true, "{own}");
    let owner = a.status(&cfg(&format!("{base};role_arn={OWNER_ROLE}")));
    assert_eq!(owner["ok"], true, "{owner}");
}

#[test]
fn assume_role_once_per_process_for_several_calls() {
    let w = World::create(1, &[]);
    let mut a = Node::new(&w, &w.a);
    let proxy = behind_proxy(&mut a);
    let config = cfg(&format!(
        "eni={};region={};role_arn={OWNER_ROLE};timeout_ms=8000",
        w.a.eni, w.region
    ));
    let mut host = a.warm();
    let claim = result_of(&host.call("vip_claim", &config));
    assert_eq!(claim["ok"], true, "{claim}");
    let second = host.call("vip_status", &config);
    let status = result_of(&second);
    assert_eq!(status["ok"], true, "{status}");
    eprintln!(
        "role: warm status with cached assumed credentials: {:.0} ms",
        second["ms"].as_f64().unwrap_or(-1.0)
    );
    let third = result_of(&host.call("vip_claim", &config));
    assert_eq!(third["ok"], true, "{third}");
    let log = proxy.log();
    assert_eq!(assume_requests(&log).len(), 1, "{log:?}");
    // The calls after the first sent EC2 requests, all with the cached credentials.
    assert!(ec2_actions(&log).len() >= 3, "{log:?}");
    // Another role in the same process: its own AssumeRole (cache per role and external id).
    let other = cfg(&format!(
        "eni={};region={};role_arn={OWNER_ROLE};external_id={EXTERNAL_ID};timeout_ms=8000",
        w.a.eni, w.region
    ));
    let r = result_of(&host.call("vip_status", &other));
    assert_eq!(r["ok"], true, "{r}");
    let assumed = assume_requests(&proxy.log());
    assert_eq!(assumed.len(), 2, "{assumed:?}");
    assert_eq!(assumed[1]["params"]["ExternalId"], EXTERNAL_ID);
}

#[test]
fn a_malformed_role_or_a_lone_external_id_is_config_and_sends_nothing() {
    let w = World::create(1, &[]);
    let mut a = Node::new(&w, &w.a);
    let proxy = behind_proxy(&mut a);
    let base = format!("eni={};region={}", w.a.eni, w.region);
    for extra in [
        "role_arn=irisvip-routes".to_owned(),
        "role_arn=arn:aws:iam::12345:role/irisvip-routes".to_owned(),
        "role_arn=arn:aws:iam::123456789012:user/irisvip".to_owned(),
        format!("role_arn={OWNER_ROLE};external_id=x"),
        format!("role_arn={OWNER_ROLE};external_id=has space"),
        format!("external_id={EXTERNAL_ID}"),
    ] {
        let r = a.claim(&cfg(&format!("{base};{extra}")));
        assert_eq!(r["ok"], false, "{extra}: {r}");
        assert_eq!(kind(&r), "config", "{extra}: {r}");
        let message = r["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains("role_arn") || message.contains("external_id"),
            "{extra}: {message}"
        );
    }
    assert!(
        a.claim(&cfg(&format!("{base};external_id={EXTERNAL_ID}")))["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("without role_arn")
    );
    let log = proxy.log();
    assert!(log.is_empty(), "requests were sent: {log:?}");
    assert_eq!(w.routes(VIP), vec![None]);
}

#[test]
fn sts_access_denied_is_permission_naming_the_role_and_nothing_changes() {
    let w = World::create(2, &[]);
    w.set_route(&w.route_tables[0], &w.b.eni, VIP);
    let mut a = Node::new(&w, &w.a);
    let proxy = behind_proxy(&mut a);
    let denied = sts_xml_error(
        "AccessDenied",
        "User: arn:aws:sts::111111111111:assumed-role/member/i-0abc is not authorized to perform: sts:AssumeRole \
         on resource: arn:aws:iam::123456789012:role/irisvip-routes",
    );
    proxy.set(
        json!([{"action": "AssumeRole", "fault": "canned", "status": 403,
                      "body": denied, "count": -1}]),
    );
    let config = cfg(&format!(
        "eni={};region={};role_arn={OWNER_ROLE};external_id={EXTERNAL_ID};timeout_ms=8000",
        w.a.eni, w.region
    ));
    let r = a.claim(&config);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "permission", "{r}");
    let message = r["error"]["message"].as_str().unwrap_or("");
    for needed in [
        OWNER_ROLE,
        "sts:AssumeRole",
        "AccessDenied",
        "external_id",
        "trust",
    ] {
        assert!(message.contains(needed), "{needed} missing: {message}");
    }
    let log = proxy.log();
    assert!(!assume_requests(&log).is_empty());
    assert!(
        ec2_actions(&log).is_empty(),
        "EC2 was called without the role: {log:?}"
    );
    assert_eq!(w.routes(VIP), vec![Some(w.b.eni.clone()), None]);

    // The preflight says which step failed and how to fix both sides of the trust.
    let c = a.call("vip_check", &format!("{config};permissions=skip"));
    assert_eq!(c["ok"], false, "{c}");
    let item = c["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["name"] == "assume_role"))
        .cloned()
        .unwrap_or_else(|| panic!("no assume_role item: {c}"));
    assert_eq!(item["status"], "fail", "{item}");
    assert_eq!(item["kind"], "permission", "{item}");
    let fix = item["fix"].as_str().unwrap_or("");
    assert!(
        fix.contains("sts:AssumeRole") && fix.contains("sts:ExternalId"),
        "{fix}"
    );
}

#[test]
fn a_hanging_sts_is_a_timeout_within_the_deadline() {
    let w = World::create(1, &[]);
    let mut a = Node::new(&w, &w.a);
    let proxy = behind_proxy(&mut a);
    proxy.set(json!([{"action": "AssumeRole", "fault": "hang", "max_s": 30, "count": -1}]));
    let timeout_ms = 1500.0;
    let config = cfg(&format!(
        "eni={};region={};role_arn={OWNER_ROLE};timeout_ms={timeout_ms}",
        w.a.eni, w.region
    ));
    let out = output_within(
        a.host().args(["call", "vip_claim", &config]),
        Duration::from_secs(30),
    );
    let lines = lines(&out);
    // result_of checks threads_after == 1.
    let r = result_of(&lines[0]);
    let ms = lines[0]["ms"].as_f64().unwrap_or(f64::MAX);
    eprintln!("role: claim with STS hanging, timeout_ms={timeout_ms}: {ms:.0} ms");
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(kind(&r), "timeout", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap_or("").contains("STS"),
        "{r}"
    );
    assert!(ms < timeout_ms + 1000.0, "took {ms:.0} ms");
    assert!(ec2_actions(&proxy.log()).is_empty());
    assert_eq!(w.routes(VIP), vec![None]);
}

#[test]
fn the_assumed_secrets_never_reach_the_output() {
    // A canned AssumeRole answer whose secrets we know; moto takes the unknown key as its
    // default account (the world's), so the claim goes through.
    let w = World::create(1, &[]);
    let mut a = Node::new(&w, &w.a);
    let proxy = behind_proxy(&mut a);
    proxy.set(json!([{"action": "AssumeRole", "fault": "canned",
                      "body": canned_assume_role(), "count": -1}]));
    let config = cfg(&format!(
        "eni={};region={};role_arn={OWNER_ROLE};timeout_ms=8000",
        w.a.eni, w.region
    ));
    let out = output_within(
        a.host().args([
            "call",
            "vip_claim",
            &config,
            "call",
            "vip_check",
            &format!("{config};permissions=skip"),
            "call",
            "vip_release",
            &config,
        ]),
        Duration::from_secs(60),
    );
    no_secret(&out);
    let calls = lines(&out);
    let claim = result_of(&calls[0]);
    assert_eq!(claim["ok"], true, "{claim}");
    let check = result_of(&calls[1]);
    let names: Vec<&str> = check["checks"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["name"].as_str()).collect())
        .unwrap_or_default();
    let item = |n: &str| {
        check["checks"]
            .as_array()
            .and_then(|a| a.iter().find(|i| i["name"] == n))
            .cloned()
            .unwrap_or_else(|| panic!("no {n} item in {names:?}"))
    };
    assert_eq!(item("assume_role")["status"], "pass", "{check}");
    assert!(item("assume_role")["detail"]
        .as_str()
        .unwrap_or("")
        .contains(OWNER_ROLE));
    assert!(item("identity")["detail"]
        .as_str()
        .unwrap_or("")
        .contains(OWNER_ROLE));
    let release = result_of(&calls[2]);
    assert_eq!(release["ok"], true, "{release}");
    assert_eq!(w.routes(VIP), vec![None]);
    // One AssumeRole for the three calls of the process.
    assert_eq!(assume_requests(&proxy.log()).len(), 1);
}
