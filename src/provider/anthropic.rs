//! A provider that speaks Anthropic Messages: Anthropic itself, Azure AI Foundry's
//! `/anthropic` endpoint, DeepSeek's `/anthropic` endpoint, Ollama ≥ 0.14.

use super::answer::{check_success, foreign_encoding, is_event_stream, refuse_redirect, Expect};
use super::checked_sse::CheckedSse;
use super::headers::{forwardable_request_headers, returnable_response_headers, PROVIDER_HEADER};
use super::upstream::{read_capped, send_error, ClockedBody, MAX_ERROR_BODY};
use crate::body::Body;
use crate::config::Secret;
use crate::error::{anthropic_type_for_status, status_text, Error, ErrorKind, UpstreamResponse};
use crate::ingress::rewrite_model;
use crate::ledger::RequestLedger;
use crate::meta::{CrossProvider, OpenAiRequest, RequestMeta, ServedBy, TargetModel};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{header, HeaderValue, Request, Response};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

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
        if let Some(why) = parts
            .extensions
            .get::<OpenAiRequest>()
            .and_then(|chat| chat.untranslatable.as_deref())
        {
            return Err(Error::new(ErrorKind::BadRequest, why));
        }
        let meta = parts.extensions.get::<RequestMeta>();
        let mut model = meta.and_then(|m| m.model.clone());
        let target = parts.extensions.get::<TargetModel>().map(|t| t.0.as_str());
        if parts.extensions.get::<CrossProvider>().is_some() {
            // Only for conversations that may come from elsewhere: a full parse, once.
            if let Some(cleaned) = super::clean::clean_for_other_provider(&body, target) {
                body = cleaned;
            }
            if let Some(target) = target {
                model = Some(target.to_owned());
            }
        } else if let (Some(target), Some(span)) = (target, meta.and_then(|m| m.model_span.clone()))
        {
            if model.as_deref() != Some(target) {
                body = rewrite_model(&body, span, target);
                model = Some(target.to_owned());
            }
        }

        let url = self.url_for(&parts.uri)?;
        let expect = Expect::for_stream(meta.map(|m| m.stream));
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
        headers.extend(crate::telemetry::trace_headers(&parts.extensions));
        if !headers.contains_key("anthropic-version") {
            headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        }

        let clock = RequestLedger::of(&parts.extensions).cloned();
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
            .map_err(|e| send_error(&self.name, e))?;

        let status = upstream.status();
        refuse_redirect(&self.name, status)?;
        let mut response: Response<reqwest::Body> = upstream.into();
        // The client's connection keeps its own HTTP version, whatever the upstream spoke.
        *response.version_mut() = http::Version::default();
        let mut returned = returnable_response_headers(response.headers());
        if let Ok(value) = HeaderValue::from_str(&self.name) {
            returned.insert(PROVIDER_HEADER, value);
        }
        if !status.is_success() {
            let body = match foreign_encoding(response.headers()) {
                Some(coding) => self.undecoded_error_body(status, &coding, &mut returned),
                None => read_capped(response.into_body(), MAX_ERROR_BODY).await,
            };
            return Err(Error::upstream_status(UpstreamResponse {
                status,
                headers: returned,
                body,
            }));
        }
        check_success(&self.name, status, response.headers(), expect)?;
        let checked = is_event_stream(response.headers());
        *response.headers_mut() = returned;
        response.extensions_mut().insert(ServedBy {
            provider: self.name.clone(),
            model,
        });
        let name = self.name.clone();
        Ok(response.map(|body| match (clock, checked) {
            (Some(clock), true) => {
                Body::new(CheckedSse::new(ClockedBody { inner: body, clock }, name))
            }
            (Some(clock), false) => Body::new(ClockedBody { inner: body, clock }),
            (None, true) => Body::new(CheckedSse::new(body, name)),
            (None, false) => Body::new(body),
        }))
    }

    /// The upstream URL for a request path: the base URL's path, then the request's path
    /// segments, each pushed as a segment (so no `..`, `%2e%2e` or `\` can climb out of
    /// the base path), then the request's query.
    fn url_for(&self, uri: &http::Uri) -> Result<url::Url, Error> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| {
                Error::new(
                    ErrorKind::Internal,
                    format!(
                        "provider `{}` has a base URL that cannot take a path",
                        self.name
                    ),
                )
            })?
            .pop_if_empty()
            .extend(uri.path().split('/').filter(|segment| !segment.is_empty()));
        url.set_query(uri.query());
        Ok(url)
    }

    /// An error answer in an encoding the gateway did not ask for cannot go to the client
    /// as it came (the client may not decode it): an Anthropic-shaped body saying so.
    fn undecoded_error_body(
        &self,
        status: http::StatusCode,
        coding: &str,
        headers: &mut http::HeaderMap,
    ) -> Bytes {
        headers.remove(header::CONTENT_ENCODING);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let message = format!(
            "provider `{}` answered {} with a `{coding}`-encoded body, which the gateway does not decode",
            self.name,
            status_text(status)
        );
        let body = serde_json::json!({
            "type": "error",
            "error": {"type": anthropic_type_for_status(status), "message": message},
        });
        Bytes::from(body.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(base: &str) -> AnthropicProvider {
        AnthropicProvider::new("a", base.parse().unwrap(), None, reqwest::Client::new())
    }

    fn url(base: &str, path: &str) -> String {
        let uri: http::Uri = path.parse().unwrap();
        provider(base).inner.url_for(&uri).unwrap().to_string()
    }

    #[test]
    fn upstream_urls_stay_under_the_base_path() {
        let base = "http://up.test/anthropic/";
        assert_eq!(
            url(base, "/v1/messages?beta=true"),
            "http://up.test/anthropic/v1/messages?beta=true"
        );
        assert_eq!(
            url("http://up.test", "/v1/models/claude-x"),
            "http://up.test/v1/models/claude-x"
        );
        for path in [
            "/v1/models/../../../admin",
            "/v1/models/%2e%2e/%2e%2e/%2e%2e/admin",
            "/v1/models/..%2f..%2fadmin",
        ] {
            let built = url(base, path);
            assert!(
                built.starts_with("http://up.test/anthropic/v1/models/"),
                "{path} → {built}"
            );
            let reparsed: url::Url = built.parse().unwrap();
            assert_eq!(
                reparsed.as_str(),
                built,
                "{path}: no segment resolves on reparse"
            );
        }
    }
}
