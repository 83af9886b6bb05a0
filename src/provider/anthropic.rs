//! A provider that speaks Anthropic Messages: Anthropic itself, Azure AI Foundry's
//! `/anthropic` endpoint, DeepSeek's `/anthropic` endpoint, Ollama ≥ 0.14.

use super::headers::{forwardable_request_headers, returnable_response_headers, PROVIDER_HEADER};
use crate::body::Body;
use crate::config::Secret;
use crate::error::{Error, ErrorKind, UpstreamResponse};
use crate::ingress::rewrite_model;
use crate::meta::{RequestClock, RequestMeta, ServedBy, TargetModel};
use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use http::{header, HeaderValue, Request, Response};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

/// Largest upstream error body kept (they are small JSON objects).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A provider service for an Anthropic-kind upstream.
#[derive(Clone)]
pub struct AnthropicProvider {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    base_url: url::Url,
    api_key: Option<Secret>,
    forward_client_key: bool,
    client: reqwest::Client,
}

impl std::fmt::Debug for AnthropicProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicProvider")
            .field("name", &self.inner.name)
            .field("base_url", &self.inner.base_url.as_str())
            .field("has_key", &self.inner.api_key.is_some())
            .finish()
    }
}

impl AnthropicProvider {
    /// A provider named `name` at `base_url`. With `api_key`, that key is sent; without
    /// one, the client's own credential is passed through.
    pub fn new(
        name: impl Into<Arc<str>>,
        base_url: url::Url,
        api_key: Option<Secret>,
        client: reqwest::Client,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: name.into(),
                base_url,
                forward_client_key: api_key.is_none(),
                api_key,
                client,
            }),
        }
    }

    /// The provider's configured name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
}

impl Service<Request<Bytes>> for AnthropicProvider {
    type Response = Response<Body>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Response<Body>, Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // reqwest's pool queues internally; the provider itself is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { inner.send(request).await })
    }
}

impl Inner {
    async fn send(&self, request: Request<Bytes>) -> Result<Response<Body>, Error> {
        let (parts, mut body) = request.into_parts();
        let meta = parts.extensions.get::<RequestMeta>();
        let mut model = meta.and_then(|m| m.model.clone());
        if let (Some(target), Some(span)) = (
            parts.extensions.get::<TargetModel>(),
            meta.and_then(|m| m.model_span.clone()),
        ) {
            if model.as_deref() != Some(target.0.as_str()) {
                body = rewrite_model(&body, span, &target.0);
                model = Some(target.0.clone());
            }
        }

        let url = self.url_for(&parts.uri);
        let mut headers = forwardable_request_headers(&parts.headers);
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        match &self.api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(key.expose()).map_err(|_| {
                    Error::new(
                        ErrorKind::Internal,
                        "the provider key is not a valid header value",
                    )
                })?;
                value.set_sensitive(true);
                headers.insert("x-api-key", value);
            }
            None if self.forward_client_key => {
                for name in [header::AUTHORIZATION.as_str(), "x-api-key"] {
                    if let Some(value) = parts.headers.get(name) {
                        let mut value = value.clone();
                        value.set_sensitive(true);
                        headers.insert(name, value);
                    }
                }
            }
            None => {}
        }
        if !headers.contains_key("anthropic-version") {
            headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        }

        let clock = parts.extensions.get::<Arc<RequestClock>>().cloned();
        if let Some(clock) = &clock {
            clock.mark_sent();
        }
        let upstream = self
            .client
            .request(parts.method, url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| self.send_error(e))?;

        let status = upstream.status();
        let mut response: Response<reqwest::Body> = upstream.into();
        let mut returned = returnable_response_headers(response.headers());
        if let Ok(value) = HeaderValue::from_str(&self.name) {
            returned.insert(PROVIDER_HEADER, value);
        }
        if !status.is_success() {
            let body = read_capped(response.into_body(), MAX_ERROR_BODY).await;
            return Err(Error::upstream_status(UpstreamResponse {
                status,
                headers: returned,
                body,
            }));
        }
        *response.headers_mut() = returned;
        response.extensions_mut().insert(ServedBy {
            provider: self.name.clone(),
            model,
        });
        Ok(response.map(|body| match clock {
            Some(clock) => Body::new(ClockedBody { inner: body, clock }),
            None => Body::new(body),
        }))
    }

    fn url_for(&self, uri: &http::Uri) -> String {
        let base = self.base_url.as_str().trim_end_matches('/');
        match uri.query() {
            Some(query) => format!("{base}{}?{query}", uri.path()),
            None => format!("{base}{}", uri.path()),
        }
    }

    fn send_error(&self, error: reqwest::Error) -> Error {
        let (kind, what) = if error.is_timeout() {
            (ErrorKind::Timeout, "timed out connecting to")
        } else if error.is_connect() {
            (ErrorKind::Connect, "could not connect to")
        } else {
            (ErrorKind::Connect, "request failed at")
        };
        Error::new(kind, format!("{what} provider `{}`", self.name))
            .with_source(error.without_url())
    }
}

/// Read at most `cap` bytes of a body; a failure or the cap ends the read.
async fn read_capped(mut body: reqwest::Body, cap: usize) -> Bytes {
    let mut out = BytesMut::new();
    while out.len() < cap {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = cap - out.len();
                    out.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            _ => break,
        }
    }
    out.freeze()
}

impl From<reqwest::Error> for Error {
    fn from(error: reqwest::Error) -> Self {
        let kind = if error.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::UpstreamProtocol
        };
        Error::new(kind, "the upstream connection broke during the answer")
            .with_source(error.without_url())
    }
}

pin_project_lite::pin_project! {
    /// Marks the arrival of each upstream chunk on the request's clock.
    struct ClockedBody {
        #[pin]
        inner: reqwest::Body,
        clock: Arc<RequestClock>,
    }
}

impl http_body::Body for ClockedBody {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, reqwest::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let Some(Ok(_)) = &frame {
            this.clock.mark_chunk();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
