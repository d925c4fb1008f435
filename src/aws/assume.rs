//! `role_arn=`: the credentials of STS AssumeRole, obtained with the process's own credentials
//! (the session's chain) and kept per process until shortly before they expire. One more HTTPS
//! call under the call's deadline, on the session's HTTP client and resolver (no thread).

use crate::config::{Role, MAX_TIMEOUT_MS};
use crate::error::{Error, ErrorKind, Result};
use aws_config::sts::AssumeRoleProvider;
use aws_sdk_ec2::config::{Credentials, ProvideCredentials};
use aws_sdk_ec2::error::{ConnectorError, DisplayErrorContext, ErrorMetadata};
use std::time::{Duration, SystemTime};
use tokio::time::{timeout_at, Instant};

/// Credentials are assumed again once they expire within this: longer than the longest call,
/// so credentials found good at a call's start stay good to its end.
pub const REFRESH_BEFORE: Duration = Duration::from_millis(MAX_TIMEOUT_MS + 60_000);

/// The most of STS's message kept in ours.
const MAX_MESSAGE: usize = 300;

/// One role of this process: STS's provider (its session name fixed) and the credentials it
/// gave last. The credentials never leave the session: not in a result, not in a message.
pub struct Assumed {
    provider: AssumeRoleProvider,
    session_name: String,
    credentials: Option<Credentials>,
}

impl Assumed {
    pub fn new(provider: AssumeRoleProvider, session_name: String) -> Self {
        Assumed {
            provider,
            session_name,
            credentials: None,
        }
    }

    /// Credentials held that stay valid for longer than `REFRESH_BEFORE`.
    pub fn fresh(&self) -> bool {
        self.credentials.as_ref().is_some_and(lasts)
    }

    pub fn credentials(&self) -> Option<Credentials> {
        self.credentials.clone()
    }

    /// `None` before the first success; then when the credentials expire (if STS said).
    pub fn expiry(&self) -> Option<Option<SystemTime>> {
        self.credentials.as_ref().map(Credentials::expiry)
    }

    pub fn session_name(&self) -> &str {
        &self.session_name
    }

    /// One AssumeRole, bounded by `deadline`.
    pub async fn refresh(&mut self, role: &Role, deadline: Instant) -> Result<()> {
        let answer = timeout_at(deadline, self.provider.provide_credentials()).await;
        match answer {
            Err(_) => Err(Error::timeout(format!(
                "STS did not answer AssumeRole of {} before the deadline; check that this host reaches STS \
                 (AWS_ENDPOINT_URL_STS, an STS VPC endpoint, proxy, security groups)",
                role.arn
            ))),
            Ok(Err(e)) => Err(sts_error(role, &e)),
            Ok(Ok(c)) => {
                self.credentials = Some(c);
                Ok(())
            }
        }
    }
}

/// The provider for `role`, signing AssumeRole with `sts`'s credentials (the process's own).
/// AssumeRoleProvider caches nothing itself: `Assumed` keeps its credentials.
pub async fn provider(
    role: &Role,
    session_name: &str,
    sts: &aws_config::SdkConfig,
) -> AssumeRoleProvider {
    let mut builder = AssumeRoleProvider::builder(role.arn.clone())
        .configure(sts)
        .session_name(session_name);
    if let Some(id) = &role.external_id {
        builder = builder.external_id(id.clone());
    }
    builder.build().await
}

/// `irisvip-<instance id>`, else `irisvip-<eni>`: the role's owner sees in CloudTrail which
/// member acted. STS allows 2-64 characters of `[\w+=,.@-]`.
pub fn session_name(instance: Option<String>, eni: Option<&str>) -> String {
    let who = instance
        .or_else(|| eni.map(str::to_owned))
        .unwrap_or_else(|| "member".to_owned());
    format!("irisvip-{who}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(*c))
        .take(64)
        .collect()
}

/// An AssumeRole failure as a crate error: the kind from STS's code, the message naming the
/// role and the likely fix.
fn sts_error(role: &Role, err: &(dyn std::error::Error + 'static)) -> Error {
    let mut code: Option<(String, String)> = None;
    let mut timed_out = false;
    let mut unreachable = false;
    let mut cur = Some(err);
    while let Some(e) = cur {
        // STS's unmodelled errors (AccessDenied among them) carry their code this way.
        if let Some(m) = e.downcast_ref::<ErrorMetadata>() {
            code = Some((
                m.code().unwrap_or("unknown").to_owned(),
                short(m.message().unwrap_or("")),
            ));
        }
        if let Some(c) = e.downcast_ref::<ConnectorError>() {
            timed_out |= c.is_timeout();
            unreachable |= !c.is_timeout();
        }
        cur = e.source();
    }
    let detail = short(&DisplayErrorContext(err).to_string());
    let arn = &role.arn;
    if code.is_none() {
        // The modelled ones name themselves in their text.
        for known in ["ExpiredToken", "RegionDisabled", "InvalidClientTokenId"] {
            if detail.contains(known) {
                code = Some((known.to_owned(), detail.clone()));
            }
        }
    }
    match code {
        Some((code, message)) if code == "AccessDenied" => {
            let trust = match &role.external_id {
                Some(_) => "and the role's trust policy must trust that role with an sts:ExternalId condition equal to external_id=",
                None => "and the role's trust policy must trust that role (if it requires an sts:ExternalId, give external_id=)",
            };
            Error::new(
                ErrorKind::Permission,
                format!(
                    "STS refused AssumeRole of {arn} (AccessDenied: {message}); this instance's own role needs \
                     sts:AssumeRole on {arn}, {trust}"
                ),
            )
        }
        Some((code, message)) if code == "RegionDisabled" => Error::new(
            ErrorKind::Permission,
            format!(
                "STS refused AssumeRole of {arn} ({message}); activate STS in this region (IAM account settings) \
                 or set AWS_ENDPOINT_URL_STS to an active region's STS"
            ),
        ),
        Some((code, message)) => {
            let kind = super::kind_for_code(&code);
            let hint = match kind {
                ErrorKind::Permission => {
                    "; STS refused the process's own credentials (check the instance role or the environment's keys)"
                }
                ErrorKind::Throttled => "; STS throttled the account, try again shortly",
                _ => "",
            };
            Error::new(
                kind,
                format!("AssumeRole of {arn}: STS answered {code}: {message}{hint}"),
            )
        }
        None if timed_out || detail.contains("timed out") => Error::timeout(format!(
            "AssumeRole of {arn}: STS did not answer in time ({detail})"
        )),
        None if unreachable => Error::new(
            ErrorKind::Aws,
            format!(
                "AssumeRole of {arn}: could not reach STS ({detail}); check AWS_ENDPOINT_URL_STS, DNS, proxy and \
                 security groups"
            ),
        ),
        None => Error::new(
            ErrorKind::Aws,
            format!("AssumeRole of {arn} failed: {detail}"),
        ),
    }
}

/// True for credentials that expire later than `REFRESH_BEFORE` from now (or never).
fn lasts(c: &Credentials) -> bool {
    match c.expiry() {
        None => true,
        Some(at) => at
            .duration_since(SystemTime::now())
            .is_ok_and(|left| left > REFRESH_BEFORE),
    }
}

fn short(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_follow_sts_rules() {
        assert_eq!(
            session_name(Some("i-0123456789abcdef0".into()), Some("eni-1")),
            "irisvip-i-0123456789abcdef0"
        );
        assert_eq!(session_name(None, Some("eni-0abc")), "irisvip-eni-0abc");
        assert_eq!(session_name(None, None), "irisvip-member");
        let long = session_name(Some(format!("i-{}", "a".repeat(100))), None);
        assert_eq!(long.len(), 64);
        assert_eq!(session_name(Some("i-1 /x".into()), None), "irisvip-i-1x");
    }

    #[test]
    fn credentials_near_expiry_are_assumed_again() {
        let at = |secs: u64| {
            Credentials::new(
                "AKID",
                "SECRET",
                None,
                Some(SystemTime::now() + Duration::from_secs(secs)),
                "test",
            )
        };
        assert!(lasts(&at(3600)));
        assert!(!lasts(&at(REFRESH_BEFORE.as_secs() - 10)));
        assert!(!lasts(&Credentials::new(
            "AKID",
            "SECRET",
            None,
            Some(SystemTime::UNIX_EPOCH),
            "test"
        )));
        assert!(lasts(&Credentials::new(
            "AKID", "SECRET", None, None, "test"
        )));
    }
}
