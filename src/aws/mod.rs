//! Everything that talks to AWS: instance metadata, EC2, and the per-process session that
//! caches clients and discovered identity. SDK errors become crate errors here only.

pub mod addresses;
pub mod assume;
pub mod ec2;
pub mod imds;
pub mod retry;
pub mod session;

use crate::error::{Error, ErrorKind};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// The EC2 error code of an SDK error, if EC2 answered one.
pub fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// The one conversion from an SDK error into a crate error. `action` is the EC2 API action
/// (`ReplaceRoute`), `target` what it acted on; both end up in the message.
pub fn sdk_error<E, R>(action: &str, target: &str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let what = if target.is_empty() {
        action.to_owned()
    } else {
        format!("{action} on {target}")
    };
    match &err {
        SdkError::TimeoutError(_) => Error::timeout(format!("{what}: EC2 did not answer in time")),
        SdkError::DispatchFailure(d) if d.is_timeout() => Error::timeout(format!(
            "{what}: EC2 did not answer in time ({})",
            DisplayErrorContext(&err)
        )),
        SdkError::DispatchFailure(_) => {
            let detail = DisplayErrorContext(&err).to_string();
            // rustls names the reason (UnknownIssuer, NotValidForName, Expired...) in the chain.
            let hint = if detail.contains("invalid peer certificate") {
                "the endpoint's TLS certificate is not trusted; behind a TLS-inspecting proxy add its CA \
                 to the system trust store or point SSL_CERT_FILE at it, and check the endpoint's name"
            } else {
                "check the endpoint, DNS, proxy and security groups"
            };
            Error::new(
                ErrorKind::Aws,
                format!("{what}: could not reach EC2 ({detail}); {hint}"),
            )
        }
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or("unknown");
            let message = short(s.err().message().unwrap_or(""));
            let kind = kind_for_code(code);
            let hint = match kind {
                ErrorKind::Permission if code == "UnauthorizedOperation" => {
                    format!("; grant ec2:{action} to this instance's IAM role")
                }
                ErrorKind::Permission => "; check the credentials this process uses".to_owned(),
                ErrorKind::Throttled => {
                    "; EC2 throttled the account after retries, try again shortly".to_owned()
                }
                _ => String::new(),
            };
            Error::new(
                kind,
                format!("{what}: EC2 answered {code}: {message}{hint}"),
            )
        }
        _ => Error::new(
            ErrorKind::Aws,
            format!("{what}: {}", DisplayErrorContext(&err)),
        ),
    }
}

/// Maps an EC2 error code to the contract's error kind.
pub fn kind_for_code(code: &str) -> ErrorKind {
    match code {
        "UnauthorizedOperation"
        | "AuthFailure"
        | "AccessDenied"
        | "Blocked"
        | "OptInRequired"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "UnrecognizedClientException" => ErrorKind::Permission,
        c if is_throttling(c) => ErrorKind::Throttled,
        c if c.ends_with(".NotFound") => ErrorKind::NotFound,
        // EC2's own check of an id's format (`InvalidRouteTableID.Malformed`): a malformed value.
        c if c.ends_with(".Malformed") => ErrorKind::Config,
        _ => ErrorKind::Aws,
    }
}

/// EC2's (and its siblings') ways of saying "slow down".
pub fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "RequestLimitExceeded"
            | "Throttling"
            | "ThrottlingException"
            | "RequestThrottled"
            | "TooManyRequestsException"
    )
}

/// EC2 messages can be long (encoded authorization blobs): keep the head.
fn short(message: &str) -> String {
    const MAX: usize = 300;
    match message.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &message[..cut]),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        assert_eq!(
            kind_for_code("UnauthorizedOperation"),
            ErrorKind::Permission
        );
        assert_eq!(kind_for_code("RequestLimitExceeded"), ErrorKind::Throttled);
        assert_eq!(kind_for_code("Throttling"), ErrorKind::Throttled);
        assert_eq!(
            kind_for_code("InvalidRouteTableID.NotFound"),
            ErrorKind::NotFound
        );
        assert_eq!(kind_for_code("InvalidParameterValue"), ErrorKind::Aws);
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let m = "é".repeat(1000);
        let s = short(&m);
        assert!(s.chars().count() == 303 && s.ends_with("..."));
    }
}
