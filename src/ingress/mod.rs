//! Ingress: reads the request body once under the size cap and learns what it asks for.
//!
//! The body is read into one `Bytes` (so a fallback can replay it for free), checked to
//! be a JSON object with `model` and `messages`, and peeked — not parsed into a tree —
//! for `model`, `stream`, `agent_type`, `max_tokens` and the session in `metadata`, with
//! the image and document blocks counted. The gateway's own `agent_type` field is cut
//! out (and its own `x-gateway-session` header dropped); every other byte goes upstream
//! as it came. The client key's name and team come from auth, the session from the
//! first of `x-gateway-session`, `x-claude-code-session-id` and `metadata.user_id`.
//! One [`RequestMeta`] goes into the request's extensions for the layers below, and,
//! with the body as the client sent it and the time it was read, into the request's
//! [`RequestLedger`] when it has one.
//!
//! The whole body must arrive within the body time limit (408 after it); a request
//! refused before its body is read (unknown path or method) has the rest of its body
//! drained first, so a client still uploading reads the answer instead of a reset.
//!
//! ```
//! use llm_gateway::ingress::IngressLayer;
//! use std::time::Duration;
//! let layer = IngressLayer::new(32 * 1024 * 1024).with_body_timeout(Duration::from_secs(30));
//! # let _ = layer;
//! ```

mod drain;
mod openai;
mod peek;
mod session;

pub(crate) use drain::drain;
pub use session::{CLAUDE_CODE_SESSION_HEADER, SESSION_HEADER};

use crate::error::{Error, ErrorKind};
use crate::ledger::{request_id_of, RequestLedger};
use crate::meta::{ClientName, ClientTeam, Endpoint, Ingress, RequestMeta, CHAT_COMPLETIONS_PATH};
use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use http::{header, Method, Request, Response};
use http_body_util::BodyExt;
use std::ops::Range;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};
use tower::{Layer, Service};

/// The default time a client has to send its whole body.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads and checks request bodies; see the [module docs](self).
#[derive(Clone, Copy, Debug)]
pub struct IngressLayer {
    limits: BodyLimits,
}

/// How much body, and how long to send it.
#[derive(Clone, Copy, Debug)]
struct BodyLimits {
    max_bytes: usize,
    timeout: Duration,
}

impl IngressLayer {
    /// A layer that refuses bodies over `max_request_bytes` with 413, and bodies not
    /// read within [`DEFAULT_BODY_TIMEOUT`] with 408.
    pub fn new(max_request_bytes: usize) -> Self {
        Self {
            limits: BodyLimits {
                max_bytes: max_request_bytes,
                timeout: DEFAULT_BODY_TIMEOUT,
            },
        }
    }

    /// Answer 408 when the whole body has not arrived within `timeout`.
    pub fn with_body_timeout(mut self, timeout: Duration) -> Self {
        self.limits.timeout = timeout;
        self
    }
}

impl<S> Layer<S> for IngressLayer {
    type Service = IngressService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IngressService {
            inner,
            limits: self.limits,
        }
    }
}

/// The service made by [`IngressLayer`].
#[derive(Clone, Debug)]
pub struct IngressService<S> {
    inner: S,
    limits: BodyLimits,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for IngressService<S>
where
    S: Service<Request<Bytes>, Response = Response<ResB>, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqB: http_body::Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ResB>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Response<ResB>, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        // Call the service that was made ready, not a fresh clone of it.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limits = self.limits;
        Box::pin(async move {
            let request = read_request(request, limits).await?;
            inner.call(request).await
        })
    }
}

/// Read the body under the cap, check it and attach the [`RequestMeta`].
async fn read_request<B>(request: Request<B>, limits: BodyLimits) -> Result<Request<Bytes>, Error>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let received_at = Instant::now();
    let received_at_wall = SystemTime::now();
    let (mut parts, body) = request.into_parts();
    let endpoint = match endpoint_for(&parts.method, parts.uri.path()) {
        Ok(endpoint) => endpoint,
        Err(error) => {
            drain(body, limits.timeout).await;
            return Err(error);
        }
    };
    let max = limits.max_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return Err(too_large(max));
    }
    let body = tokio::time::timeout(limits.timeout, collect_body(body, declared, max))
        .await
        .map_err(|_| body_timeout(limits.timeout))??;
    let ledger = RequestLedger::of(&parts.extensions).cloned();
    if let Some(ledger) = &ledger {
        ledger.mark_read();
        match openai::upload_note(&parts.headers, body.len()) {
            // File uploads are recorded by size, never stored.
            Some(note) => ledger.set_request_body(&note),
            None => ledger.set_request_body(&body),
        }
    }
    let request_id = match &ledger {
        Some(ledger) => ledger.request_id().to_owned(),
        None => request_id_of(&mut parts.extensions),
    };
    let mut meta = RequestMeta {
        client: parts
            .extensions
            .get::<ClientName>()
            .map(|c| c.0.to_string()),
        team: parts
            .extensions
            .get::<ClientTeam>()
            .map(|t| t.0.to_string()),
        session: session::from_headers(&parts.headers),
        received_at,
        received_at_wall,
        ingress: Ingress::of_path(parts.uri.path()),
        ..RequestMeta::new(request_id, endpoint)
    };
    let body = if meta.ingress == Ingress::OpenAi {
        openai::chat_request(body, &mut meta, &mut parts)?
    } else if endpoint.has_messages_body() {
        check_messages_body(body, &mut meta)?
    } else {
        body
    };
    // The body changed length if `agent_type` was cut; let the client library recompute.
    parts.headers.remove(header::CONTENT_LENGTH);
    // The gateway's own header, like its own `agent_type` field, stays here.
    parts.headers.remove(SESSION_HEADER);
    if let Some(ledger) = &ledger {
        ledger.set_meta(meta.clone());
    }
    parts.extensions.insert(meta);
    Ok(Request::from_parts(parts, body))
}

fn body_timeout(timeout: Duration) -> Error {
    Error::new(
        ErrorKind::RequestTimeout,
        format!(
            "the request body did not arrive within the gateway's limit of {} ms",
            timeout.as_millis()
        ),
    )
}

fn too_large(max: usize) -> Error {
    Error::new(
        ErrorKind::BodyTooLarge,
        format!("request body is larger than the gateway's limit of {max} bytes"),
    )
}

/// Read the whole body into one buffer, sized from `Content-Length` when the client gave
/// one: each frame is copied once and dropped at once, so hyper can reuse its read
/// buffer instead of every frame pinning one until the end (as collecting them would).
async fn collect_body<B>(body: B, declared: Option<u64>, max: usize) -> Result<Bytes, Error>
where
    B: http_body::Body<Data = Bytes>,
{
    let mut body = std::pin::pin!(body);
    let capacity = declared.map_or(0, |n| usize::try_from(n).unwrap_or(max).min(max));
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|_| Error::new(ErrorKind::BadRequest, "the request body could not be read"))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers: nothing of the body
        };
        if first.as_ref().map_or(0, Bytes::len) + buf.len() + data.len() > max {
            return Err(too_large(max));
        }
        // A body that arrives in one frame is kept as it came, without a copy.
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            None => buf.extend_from_slice(&data),
            Some(head) => {
                buf.reserve(capacity.max(head.len() + data.len()));
                buf.extend_from_slice(&head);
                buf.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

/// Which API `path` is, refusing unknown paths and methods.
pub fn endpoint_for(method: &Method, path: &str) -> Result<Endpoint, Error> {
    let (endpoint, allowed) = match path {
        "/v1/messages" | CHAT_COMPLETIONS_PATH => (Endpoint::Messages, Method::POST),
        "/v1/messages/count_tokens" => (Endpoint::CountTokens, Method::POST),
        "/v1/models" => (Endpoint::Models, Method::GET),
        p if p.starts_with("/v1/models/") => {
            if !is_model_id(&p["/v1/models/".len()..]) {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    "no such model: a model id is 1 to 256 letters, digits and `._:@-`, not only dots",
                ));
            }
            (Endpoint::Models, Method::GET)
        }
        // The rest of the Anthropic API goes upstream as it came, whatever the method.
        p if p.starts_with("/v1/") => return Ok(Endpoint::Passthrough),
        _ => {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no route for {path}"),
            ))
        }
    };
    if *method != allowed {
        return Err(Error::new(
            ErrorKind::MethodNotAllowed,
            format!("{path} does not accept {method}"),
        ));
    }
    Ok(endpoint)
}

/// Longest model id `/v1/models/{id}` accepts.
const MAX_MODEL_ID_BYTES: usize = 256;

/// Whether `id` (as it came on the wire, still percent-encoded) is a model id: a short
/// token of letters, digits and `._:@-`, never `.` or `..`, so it can name no other path.
fn is_model_id(id: &str) -> bool {
    (1..=MAX_MODEL_ID_BYTES).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:@-".contains(&b))
        && id.bytes().any(|b| b != b'.')
}

fn bad_request(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::BadRequest, message)
}

/// a Messages body is a JSON object with a string `model` and a `messages` array.
fn check_messages_body(body: Bytes, meta: &mut RequestMeta) -> Result<Bytes, Error> {
    let peeked = peek::peek(&body).map_err(|error| match error {
        peek::PeekError::Malformed(why) => {
            bad_request(format!("the body is not valid JSON: {why}"))
        }
        peek::PeekError::NotObject => bad_request("the body must be a JSON object"),
    })?;
    if peeked.model_not_string {
        return Err(bad_request("model: must be a string"));
    }
    let Some((model, mut model_span)) = peeked.model else {
        return Err(bad_request("model: field required"));
    };
    if !peeked.has_messages {
        return Err(bad_request("messages: field required"));
    }
    if !peeked.messages_is_array {
        return Err(bad_request("messages: must be an array"));
    }
    if peeked.stream_invalid {
        return Err(bad_request("stream: must be a boolean"));
    }
    meta.stream = peeked.stream.unwrap_or(false);
    meta.max_tokens = peeked.max_tokens;
    meta.server_thread = peeked.thread;
    meta.media_blocks = peek::media_blocks(&body);
    if meta.session.is_none() {
        meta.session = peeked
            .metadata
            .and_then(|span| session::from_metadata(&body[span]));
    }
    let body = match peeked.agent_type {
        Some((agent_type, cut)) => {
            meta.agent_type = agent_type;
            model_span = shift_after_cut(model_span, &cut);
            remove_span(&body, cut)
        }
        None => body,
    };
    meta.model = Some(model);
    meta.model_span = Some(model_span);
    Ok(body)
}

fn shift_after_cut(span: Range<usize>, cut: &Range<usize>) -> Range<usize> {
    if span.start >= cut.end {
        let len = cut.end - cut.start;
        span.start - len..span.end - len
    } else {
        span
    }
}

fn remove_span(body: &Bytes, cut: Range<usize>) -> Bytes {
    let mut out = BytesMut::with_capacity(body.len() - (cut.end - cut.start));
    out.extend_from_slice(&body[..cut.start]);
    out.extend_from_slice(&body[cut.end..]);
    out.freeze()
}

/// `body` with the `model` value at `span` replaced by `model` (for routing rewrites).
pub fn rewrite_model(body: &Bytes, span: Range<usize>, model: &str) -> Bytes {
    let quoted = serde_json::to_string(model).unwrap_or_else(|_| format!("\"{model}\""));
    let mut out = BytesMut::with_capacity(body.len() + quoted.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(quoted.as_bytes());
    out.extend_from_slice(&body[span.end..]);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> RequestMeta {
        RequestMeta::new("t", Endpoint::Messages)
    }

    /// A body that arrives as these frames.
    fn framed(parts: &[&'static str]) -> impl http_body::Body<Data = Bytes, Error = Error> {
        let frames: Vec<Result<http_body::Frame<Bytes>, Error>> = parts
            .iter()
            .map(|p| Ok(http_body::Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        http_body_util::StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_in_many_frames_is_read_whole_and_in_order() {
        for declared in [None, Some(9), Some(1_000)] {
            let body = collect_body(framed(&["abc", "", "def", "ghi"]), declared, 100)
                .await
                .unwrap();
            assert_eq!(&body[..], b"abcdefghi", "declared {declared:?}");
        }
        let one = collect_body(framed(&["whole"]), Some(5), 100)
            .await
            .unwrap();
        assert_eq!(&one[..], b"whole");
        let none = collect_body(framed(&[]), None, 100).await.unwrap();
        assert!(none.is_empty());
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_even_without_a_length() {
        let error = collect_body(framed(&["12345", "6"]), None, 5)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::BodyTooLarge);
        let exact = collect_body(framed(&["12", "345"]), None, 5).await.unwrap();
        assert_eq!(&exact[..], b"12345");
    }

    #[test]
    fn model_ids_are_tokens_that_name_no_other_path() {
        for id in [
            "claude-sonnet-4-5",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            "llama3:8b",
            "claude@20250929",
            "...a",
        ] {
            assert!(
                endpoint_for(&Method::GET, &format!("/v1/models/{id}")).is_ok(),
                "{id}"
            );
        }
        let long = "a".repeat(MAX_MODEL_ID_BYTES + 1);
        for id in [
            "",
            ".",
            "..",
            "...",
            "../../admin/secrets",
            "%2e%2e",
            "..%2fadmin",
            "..\\..\\admin",
            "a/b",
            "a?b",
            long.as_str(),
        ] {
            let error = endpoint_for(&Method::GET, &format!("/v1/models/{id}")).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::NotFound, "{id}");
        }
    }

    #[test]
    fn agent_type_is_cut_and_model_span_follows() {
        let body = Bytes::from_static(
            br#"{"agent_type":"reviewer","model":"claude-x","messages":[],"stream":true}"#,
        );
        let mut meta = meta();
        let out = check_messages_body(body, &mut meta).unwrap();
        assert_eq!(
            &out[..],
            br#"{"model":"claude-x","messages":[],"stream":true}"#
        );
        assert_eq!(meta.agent_type.as_deref(), Some("reviewer"));
        assert!(meta.stream);
        let span = meta.model_span.unwrap();
        assert_eq!(&out[span.clone()], br#""claude-x""#);
        let rewritten = rewrite_model(&out, span, "deepseek-flash");
        assert_eq!(
            &rewritten[..],
            br#"{"model":"deepseek-flash","messages":[],"stream":true}"#
        );
    }

    #[test]
    fn bodies_without_agent_type_are_untouched() {
        let raw: &[u8] = br#"{"model" : "m", "messages":[{"role":"system","content":"x"}], "output_config":{"effort":"high"}, "unknown": [1,2]}"#;
        let mut meta = meta();
        let out = check_messages_body(Bytes::copy_from_slice(raw), &mut meta).unwrap();
        assert_eq!(&out[..], raw);
    }

    #[test]
    fn missing_fields_are_named() {
        for (body, needle) in [
            (&br#"{"messages":[]}"#[..], "model"),
            (br#"{"model":"m"}"#, "messages"),
            (br#"{"model":3,"messages":[]}"#, "model"),
            (br#"{"model":"m","messages":{}}"#, "messages"),
            (br#"{"model":"m","messages":[],"stream":"yes"}"#, "stream"),
            (br#"[1]"#, "object"),
            (br#"{"model":"m","#, "JSON"),
        ] {
            let err = check_messages_body(Bytes::copy_from_slice(body), &mut meta()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadRequest);
            assert!(
                err.message().contains(needle),
                "{}: {}",
                needle,
                err.message()
            );
        }
    }

    #[test]
    fn budget_facts_and_the_body_session_are_read() {
        let body = Bytes::from_static(
            br#"{"model":"m","max_tokens":512,"metadata":{"user_id":"{\"session_id\":\"s-1\"}"},"messages":[{"role":"user","content":[{"type":"image","source":{}}]}]}"#,
        );
        let mut meta = meta();
        let out = check_messages_body(body.clone(), &mut meta).unwrap();
        assert_eq!(out, body);
        assert_eq!(meta.max_tokens, Some(512));
        assert_eq!(meta.media_blocks, 1);
        assert_eq!(meta.session.as_deref(), Some("s-1"));
        // A session from a header is kept over the body's.
        let mut from_header = RequestMeta {
            session: Some("header".into()),
            ..super::tests::meta()
        };
        check_messages_body(body, &mut from_header).unwrap();
        assert_eq!(from_header.session.as_deref(), Some("header"));
    }

    #[test]
    fn malformed_metadata_is_ignored_not_refused() {
        for metadata in [
            r#""text""#,
            r#"{"user_id":"{broken"}"#,
            r#"{"user_id":12}"#,
            "[]",
        ] {
            let body = format!(r#"{{"model":"m","metadata":{metadata},"messages":[]}}"#);
            let mut meta = meta();
            check_messages_body(Bytes::from(body), &mut meta).unwrap();
            assert_eq!(meta.session, None, "{metadata}");
        }
    }
}
