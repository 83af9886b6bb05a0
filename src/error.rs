//! The one error type that flows through the stack.
//!
//! Every layer below the error-response layer fails with [`Error`]; that layer turns
//! it into an Anthropic-shaped response, so the service axum sees is infallible.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use std::fmt;

/// What went wrong, coarse enough for a retry policy and an HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Could not connect to the upstream (refused, DNS, TLS).
    Connect,
    /// The upstream did not answer, or went silent, within its time limit.
    Timeout,
    /// The upstream answered with a non-success HTTP status.
    UpstreamStatus,
    /// The upstream sent an in-band `event: error` inside a 200 stream.
    UpstreamEvent,
    /// The upstream sent something that is not the protocol (bad SSE, cut body).
    UpstreamProtocol,
    /// The client's body is larger than `max_request_bytes`.
    BodyTooLarge,
    /// No provider can serve the request.
    NoRoute,
    /// Every attempt failed.
    Exhausted,
    /// The client's request is malformed.
    BadRequest,
    /// The client did not present a valid key.
    Unauthorized,
    /// The path does not exist.
    NotFound,
    /// The method is not allowed on the path.
    MethodNotAllowed,
    /// The gateway is at its concurrency limit.
    Overloaded,
    /// A bug or an unexpected local failure.
    Internal,
    /// The client did not send its whole request body within `timeouts.request_body_ms`.
    RequestTimeout,
    /// The client key (or its team) is over `rpm`, `tpm` or `max_concurrent`.
    RateLimited,
    /// The request does not fit what is left of a budget.
    BudgetExceeded,
    /// The client key may not do this (a model outside its `models`).
    Forbidden,
    /// A service the gateway needs to decide (the shared budget ledger) is unavailable.
    Unavailable,
}

/// An upstream's non-success answer, kept so it can be returned to the client as it came.
#[derive(Clone, Debug)]
pub struct UpstreamResponse {
    /// The upstream's HTTP status.
    pub status: StatusCode,
    /// Response headers worth returning (request id, retry-after, rate limits, content type).
    pub headers: HeaderMap,
    /// The upstream's body, cut at a bound.
    pub body: Bytes,
}

/// The gateway's error: a kind, a client-safe message and, for upstream failures, the
/// upstream's own answer.
///
/// Messages never contain credentials: they are built from fixed text, status codes and
/// upstream bodies, never from request headers.
pub struct Error {
    kind: ErrorKind,
    message: String,
    upstream: Option<Box<UpstreamResponse>>,
    retry_after: Option<u64>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

// === impl Error ===

impl Error {
    /// A new error of `kind` with a message safe to show to the client.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            upstream: None,
            retry_after: None,
            source: None,
        }
    }

    /// An upstream answered with a non-success status; keep its answer.
    pub fn upstream_status(response: UpstreamResponse) -> Self {
        let message = format!("upstream answered {}", status_text(response.status));
        Self {
            kind: ErrorKind::UpstreamStatus,
            message,
            upstream: Some(Box::new(response)),
            retry_after: None,
            source: None,
        }
    }

    /// Attach the underlying cause (kept for logs; not shown to clients).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Tell the client to try again after `seconds` (a `retry-after` header on the
    /// gateway's own answer).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The `retry-after` the gateway's answer carries, in whole seconds.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    pub(crate) fn set_kind(&mut self, kind: ErrorKind) {
        self.kind = kind;
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The client-safe message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The upstream's answer, for [`ErrorKind::UpstreamStatus`] (and in-band errors).
    pub fn upstream(&self) -> Option<&UpstreamResponse> {
        self.upstream.as_deref()
    }

    /// Whether another attempt (at another provider) may succeed.
    ///
    /// Connection failures, timeouts, in-band errors and 408/409/429/5xx/529 are
    /// retryable; 400/401/403/404/413/422 and every client-side error are not.
    pub fn is_retryable(&self) -> bool {
        if let Some(upstream) = &self.upstream {
            return is_retryable_status(upstream.status);
        }
        matches!(
            self.kind,
            ErrorKind::Connect
                | ErrorKind::Timeout
                | ErrorKind::UpstreamEvent
                | ErrorKind::UpstreamProtocol
        )
    }

    /// The HTTP status the client gets for this error.
    pub fn status(&self) -> StatusCode {
        if let Some(upstream) = &self.upstream {
            return upstream.status;
        }
        match self.kind {
            ErrorKind::Connect | ErrorKind::UpstreamProtocol => StatusCode::BAD_GATEWAY,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::UpstreamStatus | ErrorKind::Exhausted => StatusCode::BAD_GATEWAY,
            ErrorKind::UpstreamEvent | ErrorKind::Overloaded => overloaded_status(),
            ErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::NoRoute | ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::BudgetExceeded => StatusCode::PAYMENT_REQUIRED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The Anthropic `error.type` for this error.
    pub fn anthropic_type(&self) -> &'static str {
        match self.kind {
            ErrorKind::BadRequest | ErrorKind::NoRoute => "invalid_request_error",
            ErrorKind::BodyTooLarge => "request_too_large",
            ErrorKind::Unauthorized => "authentication_error",
            ErrorKind::NotFound | ErrorKind::MethodNotAllowed => "not_found_error",
            ErrorKind::Timeout | ErrorKind::RequestTimeout => "timeout_error",
            ErrorKind::Overloaded | ErrorKind::UpstreamEvent => "overloaded_error",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::BudgetExceeded => "billing_error",
            ErrorKind::Forbidden => "permission_error",
            ErrorKind::Unavailable => "api_error",
            _ => anthropic_type_for_status(self.status()),
        }
    }
}

/// A status as `529 overloaded` or `502 Bad Gateway`: the code and a reason phrase, with
/// Anthropic's 529 named, and just the code for any status with no known phrase.
pub fn status_text(status: StatusCode) -> String {
    match (status.as_u16(), status.canonical_reason()) {
        (529, _) => "529 overloaded".to_owned(),
        (code, Some(reason)) => format!("{code} {reason}"),
        (code, None) => code.to_string(),
    }
}

/// HTTP 529, Anthropic's "overloaded".
pub(crate) fn overloaded_status() -> StatusCode {
    StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

/// The statuses after which another provider is tried.
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        408 | 409 | 429 | 500 | 502 | 503 | 504 | 529
    )
}

/// Anthropic's error types and the HTTP status each one is answered with: the one
/// table both directions read ([`anthropic_type_for_status`], [`status_for_anthropic_type`]).
pub const ANTHROPIC_ERROR_TYPES: [(&str, u16); 10] = [
    ("invalid_request_error", 400),
    ("authentication_error", 401),
    ("billing_error", 402),
    ("permission_error", 403),
    ("not_found_error", 404),
    ("request_too_large", 413),
    ("rate_limit_error", 429),
    ("api_error", 500),
    ("timeout_error", 504),
    ("overloaded_error", 529),
];

/// The Anthropic `error.type` that goes with an HTTP status: the table's, then 503
/// `overloaded_error` (as 529), other 4xx `invalid_request_error`, anything else
/// `api_error`.
pub fn anthropic_type_for_status(status: StatusCode) -> &'static str {
    let code = status.as_u16();
    if let Some((kind, _)) = ANTHROPIC_ERROR_TYPES.iter().find(|(_, s)| *s == code) {
        return kind;
    }
    match code {
        503 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// The HTTP status that goes with an Anthropic `error.type` (an in-band stream error is
/// answered with it); an unknown type is a 500.
pub fn status_for_anthropic_type(kind: &str) -> StatusCode {
    ANTHROPIC_ERROR_TYPES
        .iter()
        .find(|(name, _)| *name == kind)
        .and_then(|(_, code)| StatusCode::from_u16(*code).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("upstream_status", &self.upstream.as_ref().map(|u| u.status))
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(status: u16) -> Error {
        Error::upstream_status(UpstreamResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        })
    }

    #[test]
    fn retryable_statuses_follow_spec() {
        for s in [408, 409, 429, 500, 502, 503, 504, 529] {
            assert!(upstream(s).is_retryable(), "{s} should be retryable");
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert!(!upstream(s).is_retryable(), "{s} must not be retried");
        }
        assert!(Error::new(ErrorKind::Connect, "x").is_retryable());
        assert!(!Error::new(ErrorKind::BadRequest, "x").is_retryable());
    }

    #[test]
    fn statuses_are_named_without_placeholders() {
        assert_eq!(upstream(529).message(), "upstream answered 529 overloaded");
        assert_eq!(upstream(502).message(), "upstream answered 502 Bad Gateway");
        assert_eq!(upstream(599).message(), "upstream answered 599");
    }

    #[test]
    fn the_type_table_reads_the_same_both_ways() {
        for (kind, code) in ANTHROPIC_ERROR_TYPES {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(anthropic_type_for_status(status), kind);
            assert_eq!(status_for_anthropic_type(kind), status);
        }
        let status = |code| StatusCode::from_u16(code).unwrap();
        assert_eq!(anthropic_type_for_status(status(503)), "overloaded_error");
        assert_eq!(
            anthropic_type_for_status(status(422)),
            "invalid_request_error"
        );
        assert_eq!(anthropic_type_for_status(status(502)), "api_error");
        assert_eq!(status_for_anthropic_type("no_such_error"), status(500));
    }

    #[test]
    fn upstream_status_is_returned_as_is() {
        assert_eq!(upstream(529).status().as_u16(), 529);
        assert_eq!(upstream(529).anthropic_type(), "overloaded_error");
        assert_eq!(upstream(401).anthropic_type(), "authentication_error");
    }
}
