//! A provider that speaks OpenAI chat completions — OpenAI-compatible servers (DeepSeek,
//! Ollama, …) and Azure OpenAI — behind the Anthropic Messages API.
//!
//! Translation lives here, in the leaf, so every layer above sees Anthropic events only:
//! the request is translated to chat completions (`stream_options.include_usage` always
//! on), a streamed answer is decoded chunk by chunk and re-encoded as Anthropic SSE as it
//! passes ([`TranslatedBody`]; no task, no buffering beyond the partial line), and a
//! whole answer or an error body is translated at once. `count_tokens` is answered with a
//! local estimate; `/v1/models` with the provider's configured model.

mod body;
mod chat_body;
pub mod translate;

pub use body::TranslatedBody;

use super::answer::{check_success, refuse_redirect, Expect};
use super::headers::{returnable_response_headers, PROVIDER_HEADER};
use super::upstream::{read_capped, send_error, ClockedBody, MAX_ERROR_BODY};
use crate::body::Body;
use crate::config::{ProviderConfig, ProviderKind, Secret};
use crate::error::{Error, ErrorKind, UpstreamResponse};
use crate::ledger::RequestLedger;
use crate::meta::{
    Endpoint, EstimatedStartUsage, OpenAiRequest, RequestMeta, ServedBy, TargetModel,
};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;
use translate::{Dialect, RequestOptions, StreamTranslator, Target};

/// Largest whole (non-streaming) answer read for translation.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// Azure `api-version` used when the config gives none (GA, supports `include_usage`).
const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

/// A provider service for an OpenAI-kind or Azure OpenAI upstream.
#[derive(Clone)]
pub struct OpenAiProvider {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    url: url::Url,
    dialect: Dialect,
    api_key: Option<Secret>,
    default_model: Option<String>,
    client: reqwest::Client,
}

impl std::fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("name", &self.inner.name)
            .field("dialect", &self.inner.dialect)
            .field("has_key", &self.inner.api_key.is_some())
            .finish()
    }
}

impl OpenAiProvider {
    /// A provider named `name` for an `openai` or `azure-openai` provider config.
    ///
    /// The dialect of an `openai` provider is told from its URL: a `deepseek` host speaks
    /// DeepSeek (`reasoning_content`, cache-hit usage), port 11434 or an `ollama` host
    /// speaks Ollama (`reasoning`), anything else plain OpenAI.
    pub fn new(
        name: impl Into<Arc<str>>,
        config: &ProviderConfig,
        api_key: Option<Secret>,
        client: reqwest::Client,
    ) -> Self {
        let (url, dialect) = match config.kind {
            ProviderKind::AzureOpenai => {
                let deployment = config.deployment.as_deref().unwrap_or_default();
                let version = config
                    .api_version
                    .as_deref()
                    .unwrap_or(DEFAULT_AZURE_API_VERSION);
                let mut url = with_segments(
                    &config.base_url,
                    &["openai", "deployments", deployment, "chat", "completions"],
                );
                url.query_pairs_mut().append_pair("api-version", version);
                (url, Dialect::Azure)
            }
            _ => {
                let ends_in_v1 = config
                    .base_url
                    .path_segments()
                    .and_then(|mut segments| segments.rfind(|s| !s.is_empty()))
                    == Some("v1");
                let path: &[&str] = if ends_in_v1 {
                    &["chat", "completions"]
                } else {
                    &["v1", "chat", "completions"]
                };
                let url = with_segments(&config.base_url, path);
                let host = config.base_url.host_str().unwrap_or_default();
                let dialect = if host.contains("deepseek") {
                    Dialect::DeepSeek
                } else if host.contains("ollama") || config.base_url.port() == Some(11434) {
                    Dialect::Ollama
                } else {
                    Dialect::OpenAi
                };
                (url, dialect)
            }
        };
        let default_model = match config.kind {
            ProviderKind::AzureOpenai => config.deployment.clone(),
            _ => config.model.clone(),
        };
        Self {
            inner: Arc::new(Inner {
                name: name.into(),
                url,
                dialect,
                api_key,
                default_model,
                client,
            }),
        }
    }
}

impl Service<Request<Bytes>> for OpenAiProvider {
    type Response = Response<Body>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Response<Body>, Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { inner.send(request).await })
    }
}

impl Inner {
    async fn send(&self, request: Request<Bytes>) -> Result<Response<Body>, Error> {
        let (parts, body) = request.into_parts();
        let meta = parts.extensions.get::<RequestMeta>();
        let model = parts
            .extensions
            .get::<TargetModel>()
            .map(|t| t.0.clone())
            .or_else(|| self.default_model.clone())
            .or_else(|| meta.and_then(|m| m.model.clone()))
            .unwrap_or_default();
        match meta.map(|m| m.endpoint) {
            Some(Endpoint::CountTokens) => return self.count_tokens(&body),
            Some(Endpoint::Models) => return Ok(self.models(&model)),
            Some(Endpoint::Passthrough) => {
                return Err(Error::new(
                    ErrorKind::NoRoute,
                    format!(
                        "provider `{}` speaks OpenAI and serves no other Anthropic API",
                        self.name
                    ),
                ))
            }
            _ => {}
        }
        if meta.is_some_and(|m| m.server_thread) {
            return Err(Error::new(
                ErrorKind::BadRequest,
                format!(
                    "the request continues or creates an Anthropic server-side thread \
                     (`thread`), which only an Anthropic-kind provider keeps; provider `{}` \
                     speaks OpenAI chat completions: route this model to an Anthropic provider",
                    self.name
                ),
            ));
        }
        let stream = meta.is_some_and(|m| m.stream);
        let target = Target {
            model: &model,
            dialect: self.dialect,
        };
        let translated = match parts.extensions.get::<OpenAiRequest>() {
            // An OpenAI client's request goes as it came.
            Some(chat) => chat_body::as_it_came(chat, meta, &model, stream),
            None => translate::translate_request_with_options(
                &body,
                &target,
                &RequestOptions {
                    reasoning_effort: false,
                },
            )
            .map(Bytes::from)
            .map_err(|e| Error::new(ErrorKind::BadRequest, e.to_string()))?,
        };
        // What a streamed answer's `message_start` reports as its input (the body below
        // the dialect layer is Messages); the body was readable, or ingress refused it.
        let input_estimate = if stream {
            translate::estimate_input_tokens(&body).unwrap_or(0)
        } else {
            0
        };

        let mut request = self
            .client
            .post(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT_ENCODING, "identity")
            .body(translated);
        if let Some(key) = &self.api_key {
            let (name, value) = match self.dialect {
                Dialect::Azure => ("api-key", key.expose().to_owned()),
                _ => ("authorization", format!("Bearer {}", key.expose())),
            };
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                Error::new(
                    ErrorKind::Internal,
                    "the provider key is not a valid header value",
                )
            })?;
            value.set_sensitive(true);
            request = request.header(name, value);
        }
        let request = request.headers(crate::telemetry::trace_headers(&parts.extensions));
        let clock = RequestLedger::of(&parts.extensions).cloned();
        if let Some(clock) = &clock {
            clock.mark_sent();
        }
        let upstream = request
            .send()
            .await
            .map_err(|e| send_error(&self.name, e))?;
        let status = upstream.status();
        refuse_redirect(&self.name, status)?;
        if status.is_success() {
            check_success(
                &self.name,
                status,
                upstream.headers(),
                Expect::for_stream(Some(stream)),
            )?;
        }
        // An error body in an encoding the gateway did not ask for is not read as text.
        let undecodable = super::answer::foreign_encoding(upstream.headers()).is_some();
        let mut returned = returnable_response_headers(upstream.headers());
        returned.remove(header::CONTENT_TYPE);
        returned.remove(header::CONTENT_ENCODING);
        if let Ok(value) = HeaderValue::from_str(&self.name) {
            returned.insert(PROVIDER_HEADER, value);
        }
        let body: reqwest::Body = http::Response::from(upstream).into_body();
        if !status.is_success() {
            let raw = if undecodable {
                Bytes::from_static(
                    b"the error body was content-encoded, which the gateway does not decode",
                )
            } else {
                read_capped(body, MAX_ERROR_BODY).await
            };
            returned.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Err(Error::upstream_status(UpstreamResponse {
                status,
                headers: returned,
                body: Bytes::from(translate::translate_error(status.as_u16(), &raw)),
            }));
        }
        let message_id = meta.map_or_else(
            || "msg_gateway".to_owned(),
            |m| format!("msg_{}", m.request_id.trim_start_matches("gw_")),
        );
        let served = ServedBy {
            provider: self.name.clone(),
            model: Some(model.clone()),
        };
        let body = match clock {
            Some(clock) => ClockedBody { inner: body, clock }.into_reqwest_agnostic(),
            None => body.into_reqwest_agnostic(),
        };
        let response_body = if stream {
            returned.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            Body::new(TranslatedBody::new(
                body,
                StreamTranslator::new(message_id, model).with_input_estimate(input_estimate),
                self.name.clone(),
            ))
        } else {
            let raw = read_capped_body(body, MAX_ANSWER_BYTES).await?;
            let message = translate::translate_response_with_id(&raw, &target, &message_id)
                .map_err(|e| {
                    Error::new(
                        ErrorKind::UpstreamProtocol,
                        format!(
                            "provider `{}` answered something unreadable: {e}",
                            self.name
                        ),
                    )
                })?;
            returned.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Body::full(message)
        };
        let mut response = build(StatusCode::OK, returned, response_body, served);
        if stream {
            response.extensions_mut().insert(EstimatedStartUsage);
        }
        Ok(response)
    }

    fn count_tokens(&self, body: &[u8]) -> Result<Response<Body>, Error> {
        let answer = translate::estimate_count_tokens_body(body)
            .map_err(|e| Error::new(ErrorKind::BadRequest, e.to_string()))?;
        Ok(self.local_answer(answer))
    }

    fn models(&self, model: &str) -> Response<Body> {
        let list = serde_json::json!({
            "data": [{"type": "model", "id": model, "display_name": model, "created_at": "1970-01-01T00:00:00Z"}],
            "first_id": model,
            "last_id": model,
            "has_more": false,
        });
        self.local_answer(list.to_string().into_bytes())
    }

    fn local_answer(&self, json: Vec<u8>) -> Response<Body> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(value) = HeaderValue::from_str(&self.name) {
            headers.insert(PROVIDER_HEADER, value);
        }
        let served = ServedBy {
            provider: self.name.clone(),
            model: None,
        };
        build(StatusCode::OK, headers, Body::full(json), served)
    }
}

/// `base` with `segments` appended as path segments (each percent-encoded as one
/// segment, so a deployment name cannot add path levels).
fn with_segments(base: &url::Url, segments: &[&str]) -> url::Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

fn build(status: StatusCode, headers: HeaderMap, body: Body, served: ServedBy) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response.extensions_mut().insert(served);
    response
}

/// Read a whole answer; an answer larger than `cap` is an error, not a silent cut.
async fn read_capped_body(body: UpstreamBody, cap: usize) -> Result<Bytes, Error> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, cap).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(Error::new(
            ErrorKind::UpstreamProtocol,
            "the upstream answer could not be read whole",
        )),
    }
}

/// The upstream body, with or without the request clock.
pub(crate) type UpstreamBody = http_body_util::combinators::UnsyncBoxBody<Bytes, reqwest::Error>;

trait IntoUpstreamBody {
    fn into_reqwest_agnostic(self) -> UpstreamBody;
}

impl<B> IntoUpstreamBody for B
where
    B: http_body::Body<Data = Bytes, Error = reqwest::Error> + Send + 'static,
{
    fn into_reqwest_agnostic(self) -> UpstreamBody {
        http_body_util::BodyExt::boxed_unsync(self)
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenAiProvider")
    }
}
