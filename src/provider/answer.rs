//! Whether an upstream's answer head is one the gateway can pass on.
//!
//! A provider that redirects, answers in an encoding the gateway did not ask for, answers
//! with no content, or answers in another media type than the one asked for has not
//! answered: each is a failed attempt (retryable, so a fallback moves on), with a message
//! naming the provider and what it sent, never a URL, a `Location` or a key.

use crate::error::{status_text, Error, ErrorKind};
use http::{header, HeaderMap, StatusCode};

/// The media type the gateway asked the provider for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// A streamed Messages answer: `text/event-stream`.
    EventStream,
    /// A whole JSON answer: `application/json`.
    Json,
    /// The request carried no metadata saying which (a library caller): either.
    EventStreamOrJson,
}

impl Expect {
    /// What a request that did (or did not) ask for a stream expects.
    pub(crate) fn for_stream(stream: Option<bool>) -> Self {
        match stream {
            Some(true) => Expect::EventStream,
            Some(false) => Expect::Json,
            None => Expect::EventStreamOrJson,
        }
    }

    fn accepts(self, media_type: &str) -> bool {
        let sse = media_type.eq_ignore_ascii_case("text/event-stream");
        let json = media_type.eq_ignore_ascii_case("application/json");
        match self {
            Expect::EventStream => sse,
            Expect::Json => json,
            Expect::EventStreamOrJson => sse || json,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Expect::EventStream => "text/event-stream",
            Expect::Json => "application/json",
            Expect::EventStreamOrJson => "text/event-stream or application/json",
        }
    }
}

/// A redirect is never followed (it would carry the body and the provider key to
/// wherever `Location` points); reaching a provider, it is a failed attempt.
pub(crate) fn refuse_redirect(provider: &str, status: StatusCode) -> Result<(), Error> {
    if !status.is_redirection() {
        return Ok(());
    }
    Err(protocol_error(format!(
        "provider `{provider}` answered {}, a redirect; the gateway does not follow upstream redirects",
        status_text(status)
    )))
}

/// The answer's `content-encoding`, when it is not identity (the gateway always asks for
/// identity: it must read the stream, and the client may not accept what came).
pub(crate) fn foreign_encoding(headers: &HeaderMap) -> Option<String> {
    let mut foreign = None;
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = value.to_str().unwrap_or("?");
        for coding in text.split(',').map(str::trim) {
            if !coding.is_empty() && !coding.eq_ignore_ascii_case("identity") {
                foreign = Some(printable_token(coding));
            }
        }
    }
    foreign
}

/// Check a success answer's head against what was asked for.
pub(crate) fn check_success(
    provider: &str,
    status: StatusCode,
    headers: &HeaderMap,
    expect: Expect,
) -> Result<(), Error> {
    if matches!(
        status,
        StatusCode::NO_CONTENT | StatusCode::RESET_CONTENT | StatusCode::PARTIAL_CONTENT
    ) {
        return Err(protocol_error(format!(
            "provider `{provider}` answered {}, which is not an answer to this request",
            status_text(status)
        )));
    }
    if let Some(coding) = foreign_encoding(headers) {
        return Err(protocol_error(format!(
            "provider `{provider}` answered with content-encoding `{coding}` though the gateway asked for identity"
        )));
    }
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim());
    match media_type {
        Some(media_type) if expect.accepts(media_type) => Ok(()),
        Some(media_type) => Err(protocol_error(format!(
            "provider `{provider}` answered `{}` where {} was expected",
            printable_token(media_type),
            expect.name()
        ))),
        None => Err(protocol_error(format!(
            "provider `{provider}` answered without a content type where {} was expected",
            expect.name()
        ))),
    }
}

/// Whether the answer is a Server-Sent Events stream.
pub(crate) fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
}

fn protocol_error(message: String) -> Error {
    Error::new(ErrorKind::UpstreamProtocol, message)
}

/// An upstream-chosen token fit to quote in a message: short, and only token characters.
fn printable_token(text: &str) -> String {
    let ok = text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-+./_".contains(&b));
    if ok {
        text.to_owned()
    } else {
        "(unprintable)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn redirects_are_refused_by_status_alone() {
        let error = refuse_redirect("a", StatusCode::TEMPORARY_REDIRECT).unwrap_err();
        assert!(error.is_retryable());
        assert_eq!(
            error.message(),
            "provider `a` answered 307 Temporary Redirect, a redirect; the gateway does not follow upstream redirects"
        );
        assert!(refuse_redirect("a", StatusCode::OK).is_ok());
    }

    #[test]
    fn media_type_must_match_what_was_asked() {
        let sse = headers(&[("content-type", "text/event-stream; charset=utf-8")]);
        let json = headers(&[("content-type", "Application/JSON")]);
        let html = headers(&[("content-type", "text/html")]);
        let ok = StatusCode::OK;
        assert!(check_success("a", ok, &sse, Expect::EventStream).is_ok());
        assert!(check_success("a", ok, &json, Expect::Json).is_ok());
        assert!(check_success("a", ok, &json, Expect::EventStreamOrJson).is_ok());
        assert!(check_success("a", ok, &json, Expect::EventStream).is_err());
        let error = check_success("a", ok, &html, Expect::Json).unwrap_err();
        assert_eq!(
            error.message(),
            "provider `a` answered `text/html` where application/json was expected"
        );
        assert!(check_success("a", ok, &HeaderMap::new(), Expect::Json).is_err());
    }

    #[test]
    fn only_identity_encoding_passes() {
        let gzip = headers(&[
            ("content-type", "text/event-stream"),
            ("content-encoding", "gzip"),
        ]);
        let identity = headers(&[
            ("content-type", "text/event-stream"),
            ("content-encoding", "identity"),
        ]);
        let ok = StatusCode::OK;
        let error = check_success("a", ok, &gzip, Expect::EventStream).unwrap_err();
        assert!(error.message().contains("`gzip`"), "{}", error.message());
        assert!(check_success("a", ok, &identity, Expect::EventStream).is_ok());
    }

    #[test]
    fn no_content_is_not_an_answer() {
        let json = headers(&[("content-type", "application/json")]);
        let error = check_success("a", StatusCode::NO_CONTENT, &json, Expect::Json).unwrap_err();
        assert!(error.is_retryable());
        assert!(error.message().contains("204 No Content"));
    }

    #[test]
    fn upstream_text_is_quoted_only_when_harmless() {
        assert_eq!(printable_token("x-gzip"), "x-gzip");
        assert_eq!(printable_token("a\"b{}"), "(unprintable)");
    }
}
