//! HTTPS to EC2 through the library's own TLS stack (rustls on ring, roots from the system
//! store or `SSL_CERT_FILE`): real EC2 is only reachable over TLS, and every other test talks
//! plain HTTP to moto. The fault proxy terminates TLS with a certificate for 127.0.0.1 from a
//! throwaway CA and forwards to moto.

use crate::common::*;
use std::time::Duration;

#[test]
fn a_claim_over_https_checks_the_certificate_and_changes_nothing_when_untrusted() {
    let w = World::create(1, &[]);
    let a = Node::new(&w, &w.a);
    let t0 = &w.route_tables[0];
    w.set_route(t0, &w.b.eni, VIP);
    let dir = std::env::temp_dir().join(format!("irisvip-tls-{}", std::process::id()));
    let (proxy, ca) = FaultProxy::start_tls(&w.endpoint, &dir);
    let config = cfg(&format!("endpoint={};timeout_ms=8000", proxy.tls_url()));
    let limit = Duration::from_secs(30);

    // The throwaway CA is in no trust store: the handshake fails, no request reaches EC2.
    let mut untrusted = a.host();
    untrusted
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .args(["call", "vip_claim", &config]);
    let r = result_of(&lines(&output_within(&mut untrusted, limit))[0]);
    assert_eq!(r["ok"], false, "{r}");
    let msg = r["error"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("UnknownIssuer") && msg.contains("SSL_CERT_FILE"),
        "the error should say the certificate is not trusted: {r}"
    );
    assert!(proxy.log().is_empty(), "{:?}", proxy.log());
    assert_eq!(w.routes(VIP), vec![Some(w.b.eni.clone())]);

    // Trusted through SSL_CERT_FILE (as an operator with a TLS-inspecting proxy would do).
    let mut trusted = a.host();
    trusted
        .env("SSL_CERT_FILE", &ca)
        .env_remove("SSL_CERT_DIR")
        .args(["call", "vip_claim", &config]);
    let r = result_of(&lines(&output_within(&mut trusted, limit))[0]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["holder"], "self", "{r}");
    assert_eq!(
        proxy.attempts_on("ReplaceRoute", t0),
        1,
        "{:?}",
        proxy.log()
    );
    assert_eq!(w.routes(VIP), vec![Some(w.a.eni.clone())]);
    let _ = std::fs::remove_dir_all(&dir);
}
