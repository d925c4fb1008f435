//! The one error type of the crate. Its `kind` maps 1:1 to the contract's `error.kind`;
//! its message says what to fix. SDK errors are converted in `aws::sdk_error`, nowhere else.

use serde::Serialize;
use std::fmt;

/// What went wrong, as the contract names it (`error.kind` in the result JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The config string: unknown/duplicate key, malformed value, invalid UTF-8.
    Config,
    /// A rule about the VIP or the route tables (non-/32, inside the VPC, table of another VPC).
    Validation,
    /// Instance metadata (IMDS) could not be read.
    Metadata,
    /// EC2 refused for lack of an IAM permission.
    Permission,
    /// A route table, ENI or VPC does not exist.
    NotFound,
    /// EC2 kept throttling after the retries.
    Throttled,
    /// The call's deadline (`timeout_ms`) ran out.
    Timeout,
    /// Any other EC2 or transport failure.
    Aws,
    /// A bug in irisvip (a caught panic, a broken invariant).
    Internal,
    /// IRIS asked the process to stop (SIGINT, SIGTERM, RESJOB) while the call ran.
    Interrupted,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Validation => "validation",
            ErrorKind::Metadata => "metadata",
            ErrorKind::Permission => "permission",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Aws => "aws",
            ErrorKind::Internal => "internal",
            ErrorKind::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with its contract kind and a message that names what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }
    pub fn metadata(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Metadata, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    pub fn interrupted(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Interrupted, message)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shortens a value quoted back in a message, so a 1 MB config is not echoed whole.
pub fn quote(value: &str) -> String {
    const MAX: usize = 64;
    if value.chars().count() <= MAX {
        format!("`{value}`")
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("`{head}...` ({} bytes)", value.len())
    }
}
