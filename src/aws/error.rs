//! One retry policy for every AWS call: [`classify`] says what kind of failure it was.
//!
//! The SDK already retries transient failures a few times with backoff; what reaches us
//! is final for this attempt. Transient kinds wait for the next tick (level-triggered
//! reconcile retries for free); the others need an operator and are alerted once.

use std::fmt;

use aws_sdk_sns::config::http::HttpResponse;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};

/// What went wrong with one call, in terms of what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Timeout, connection failure, 5xx: try again next tick.
    Transient,
    /// AWS said slow down (ThrottlingException, RequestLimitExceeded, 429): next tick.
    Throttled,
    /// The credentials lack a permission: an operator must fix IAM.
    Denied,
    /// The named resource does not exist (deleted ASG, zone, log group).
    NotFound,
    /// AWS refused the request as invalid (e.g. desired capacity above the ASG's max).
    Invalid,
}

impl ErrorKind {
    /// True when waiting for the next tick is the whole remedy.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Transient | Self::Throttled)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Transient => "transient",
            Self::Throttled => "throttled",
            Self::Denied => "access denied",
            Self::NotFound => "not found",
            Self::Invalid => "invalid request",
        })
    }
}

/// A failed AWS call, with enough context for one useful log line or alert.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{service} {operation} failed ({kind}{}): {message}", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
pub struct AwsError {
    /// SDK service name, e.g. `autoscaling`.
    pub service: &'static str,
    /// API operation, e.g. `SetDesiredCapacity`.
    pub operation: &'static str,
    /// What to do about it.
    pub kind: ErrorKind,
    /// AWS error code when AWS answered, e.g. `AccessDenied`.
    pub code: Option<String>,
    /// AWS's message or the transport error.
    pub message: String,
    /// The request may have reached AWS and been carried out although no answer came
    /// back (a timeout or a connection cut after sending). Retrying a non-idempotent
    /// call such as SNS Publish could then do it twice.
    pub ambiguous: bool,
}

impl AwsError {
    /// An error found in an answer that AWS gave without an error code (e.g. a
    /// record set we asked for is absent, or a required field is missing).
    pub fn answer(service: &'static str, operation: &'static str, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { service, operation, kind, code: None, message: message.into(), ambiguous: false }
    }
}

impl From<AwsError> for crate::worker::WorkerError {
    fn from(e: AwsError) -> Self {
        e.kind.worker_error(e.to_string())
    }
}

impl ErrorKind {
    /// A worker's error of this kind (`aws:<label>`).
    pub fn worker_error(self, message: String) -> crate::worker::WorkerError {
        crate::worker::WorkerError::new(format!("aws:{}", self.label()), message)
    }

    /// Short label for metrics and worker status.
    pub fn label(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Throttled => "throttled",
            Self::Denied => "denied",
            Self::NotFound => "not_found",
            Self::Invalid => "invalid",
        }
    }
}

const THROTTLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "PriorRequestNotComplete",
    "Rate exceeded",
];

const DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthorizationError",
    "AuthFailure",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
];

/// Maps an error code and HTTP status to a kind; separate from [`classify`] so it is
/// testable without building SDK errors.
pub fn kind_of(code: Option<&str>, status: Option<u16>) -> ErrorKind {
    match code {
        Some(c) if THROTTLE_CODES.contains(&c) => return ErrorKind::Throttled,
        Some(c) if DENIED_CODES.contains(&c) => return ErrorKind::Denied,
        Some(c) if c.contains("NotFound") || c.starts_with("NoSuch") || c.contains("NotExist") => return ErrorKind::NotFound,
        _ => {}
    }
    match status {
        Some(429) => ErrorKind::Throttled,
        Some(401 | 403) => ErrorKind::Denied,
        Some(404) => ErrorKind::NotFound,
        Some(s) if s >= 500 => ErrorKind::Transient,
        Some(_) => ErrorKind::Invalid,
        None => ErrorKind::Transient,
    }
}

/// Turns an SDK error into an [`AwsError`].
#[allow(clippy::needless_pass_by_value, reason = "takes the error as `map_err` hands it over")]
pub fn classify<E>(service: &'static str, operation: &'static str, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let inner = se.err();
            let code = inner.code().map(str::to_owned);
            let message = inner.message().map_or_else(|| format!("HTTP {status}"), str::to_owned);
            AwsError { service, operation, kind: kind_of(code.as_deref(), Some(status)), code, message, ambiguous: false }
        }
        SdkError::ResponseError(re) => {
            let status = re.raw().status().as_u16();
            let kind = kind_of(None, Some(status).filter(|s| *s >= 400));
            AwsError { service, operation, kind, code: None, message: format!("unreadable response (HTTP {status})"), ambiguous: status < 400 }
        }
        SdkError::ConstructionFailure(_) => {
            AwsError { service, operation, kind: ErrorKind::Invalid, code: None, message: error_chain(&err), ambiguous: false }
        }
        _ => {
            let message = error_chain(&err);
            AwsError { service, operation, kind: ErrorKind::Transient, ambiguous: !never_sent(&message), code: None, message }
        }
    }
}

/// True when a transport error shows the request never left: no connection was made.
fn never_sent(chain: &str) -> bool {
    ["tcp connect error", "Connection refused", "dns error", "failed to lookup address", "connect timed out", "ConnectTimeout"].iter().any(|m| chain.contains(m))
}

/// `err: cause: cause` on one line, for logs.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_recognised_in_every_protocol_spelling() {
        for code in ["Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"] {
            assert_eq!(kind_of(Some(code), Some(400)), ErrorKind::Throttled, "{code}");
        }
        assert_eq!(kind_of(None, Some(429)), ErrorKind::Throttled);
    }

    #[test]
    fn permissions_and_missing_resources_need_an_operator() {
        assert_eq!(kind_of(Some("AccessDenied"), Some(403)), ErrorKind::Denied);
        assert_eq!(kind_of(Some("UnauthorizedOperation"), Some(403)), ErrorKind::Denied);
        assert_eq!(kind_of(Some("NoSuchHostedZone"), Some(404)), ErrorKind::NotFound);
        assert_eq!(kind_of(Some("ResourceNotFoundException"), Some(400)), ErrorKind::NotFound);
        assert!(!ErrorKind::Denied.is_transient());
    }

    #[test]
    fn a_refused_connection_is_not_ambiguous_a_cut_one_is() {
        assert!(never_sent("dispatch failure: io error: tcp connect error: Connection refused (os error 111)"));
        assert!(!never_sent("dispatch failure: io error: connection closed before message completed"));
    }

    #[test]
    fn server_errors_and_no_answer_are_transient() {
        assert_eq!(kind_of(Some("InternalFailure"), Some(500)), ErrorKind::Transient);
        assert_eq!(kind_of(None, Some(503)), ErrorKind::Transient);
        assert_eq!(kind_of(None, None), ErrorKind::Transient);
        assert_eq!(kind_of(Some("ValidationError"), Some(400)), ErrorKind::Invalid);
    }
}
