//! Answers each client in the dialect it spoke: below ingress, every layer sees Anthropic
//! events; here, on the way out, an OpenAI client's answer becomes Chat Completions.
//!
//! A stream is re-encoded as it passes by a [`ChunkBody`] (an SSE decoder holding the
//! partial line, and a [`ChunkWriter`]; no task, nothing held past one event); a whole
//! answer becomes one `chat.completion`. A `/v1/models` answer, whoever asked, gets the
//! fields both SDKs read. Errors pass through untouched: the error layer above renders
//! them in the client's dialect.
//!
//! It sits just below ingress, the layer that reads which dialect a request is in, so
//! the translation back happens once, where the translation in did.
//!
//! ```
//! use llm_gateway::dialect::DialectLayer;
//! let layer = DialectLayer::new();
//! # let _ = layer;
//! ```

mod body;

pub use body::ChunkBody;

use crate::body::Body;
use crate::error::{Error, ErrorKind};
use crate::meta::{Endpoint, Ingress, OpenAiRequest, RequestMeta};
use crate::provider::openai::translate::{
    chat_completion_from_message, models_for_both_sdks, ChunkWriter,
};
use crate::provider::PROVIDER_HEADER;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{header, Request, Response};
use http_body_util::BodyExt;
use std::task::{Context, Poll};
use std::time::UNIX_EPOCH;
use tower::{Layer, Service};

/// Largest whole answer read to translate it.
const MAX_WHOLE_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Translates answers back to the client's dialect; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct DialectLayer;

impl DialectLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for DialectLayer {
    type Service = DialectService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DialectService { inner }
    }
}

/// The service made by [`DialectLayer`].
#[derive(Clone, Debug)]
pub struct DialectService<S> {
    inner: S,
}

/// What the way back needs to know about the request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// As it came.
    Anthropic,
    /// For an OpenAI client.
    Chat { created: u64, include_usage: bool },
    /// A models list, for either SDK.
    Models,
}

impl<S, ResB> Service<Request<Bytes>> for DialectService<S>
where
    S: Service<Request<Bytes>, Response = Response<ResB>, Error = Error>,
    S::Future: Send + 'static,
    ResB: http_body::Body<Data = Bytes, Error = Error> + Send + 'static,
{
    type Response = Response<Body>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Response<Body>, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let answer = answer_for(&request);
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            match answer {
                Answer::Anthropic => Ok(response.map(Body::new)),
                Answer::Chat {
                    created,
                    include_usage,
                } => chat_answer(response, ChunkWriter::new(created, include_usage), created).await,
                Answer::Models => models_answer(response).await,
            }
        })
    }
}

fn answer_for(request: &Request<Bytes>) -> Answer {
    let Some(meta) = request.extensions().get::<RequestMeta>() else {
        return Answer::Anthropic;
    };
    match (meta.ingress, meta.endpoint) {
        (_, Endpoint::Models) => Answer::Models,
        (Ingress::OpenAi, _) => Answer::Chat {
            created: meta
                .received_at_wall
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            include_usage: request
                .extensions()
                .get::<OpenAiRequest>()
                .is_some_and(|chat| chat.include_usage),
        },
        _ => Answer::Anthropic,
    }
}

async fn chat_answer<B>(
    response: Response<B>,
    writer: ChunkWriter,
    created: u64,
) -> Result<Response<Body>, Error>
where
    B: http_body::Body<Data = Bytes, Error = Error> + Send + 'static,
{
    let is_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if is_stream {
        return Ok(response.map(|body| Body::new(ChunkBody::new(body, writer))));
    }
    let (mut parts, body) = response.into_parts();
    let message = read_whole(body).await?;
    let completion = chat_completion_from_message(&message, created).map_err(|e| {
        Error::new(
            ErrorKind::UpstreamProtocol,
            format!("the answer could not be translated for an OpenAI client: {e}"),
        )
    })?;
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Response::from_parts(parts, Body::full(completion)))
}

async fn models_answer<B>(response: Response<B>) -> Result<Response<Body>, Error>
where
    B: http_body::Body<Data = Bytes, Error = Error> + Send + 'static,
{
    let (mut parts, body) = response.into_parts();
    let list = read_whole(body).await?;
    let owner = parts
        .headers
        .get(PROVIDER_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("anthropic")
        .to_owned();
    let body = match models_for_both_sdks(&list, &owner) {
        Some(both) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Bytes::from(both)
        }
        None => list,
    };
    Ok(Response::from_parts(parts, Body::full(body)))
}

/// A whole (not streamed) answer, read under [`MAX_WHOLE_ANSWER_BYTES`].
async fn read_whole<B>(body: B) -> Result<Bytes, Error>
where
    B: http_body::Body<Data = Bytes, Error = Error>,
{
    match http_body_util::Limited::new(body, MAX_WHOLE_ANSWER_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => Err(match error.downcast::<Error>() {
            Ok(error) => *error,
            Err(_) => Error::new(
                ErrorKind::UpstreamProtocol,
                format!("the answer is larger than the {MAX_WHOLE_ANSWER_BYTES} bytes the gateway translates"),
            ),
        }),
    }
}
