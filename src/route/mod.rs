//! Routing: which providers a request is tried at, in which order, with which model.
//!
//! [`RouteLayer`] asks a [`RoutePolicy`] for a [`RouteDecision`] and puts it in the
//! request's extensions for fallback to follow. [`ConfigRoutePolicy`] implements
//! the `agent_type` rule, then the first `[[routing.models]]` glob that matches the
//! requested model, then `default_provider`; the rest of `fallback_chain` follows in
//! order, each fallback using its provider's own `model`. A request on an Anthropic
//! server-side thread ([`RequestMeta::server_thread`]) keeps only the attempts at its
//! first provider: the thread lives there.
//!
//! ```
//! use llm_gateway::route::{Attempt, RouteDecision, RouteLayer, RoutePolicy};
//! use llm_gateway::{Error, RequestMeta};
//!
//! /// Everything goes to "primary", then "backup".
//! struct Fixed;
//! impl RoutePolicy for Fixed {
//!     fn route(&self, _: &RequestMeta) -> Result<RouteDecision, Error> {
//!         Ok(RouteDecision {
//!             attempts: vec![Attempt::new("primary", None), Attempt::new("backup", None)],
//!         })
//!     }
//! }
//! let layer = RouteLayer::new(Fixed);
//! # let _ = layer;
//! ```

mod policy;

pub use policy::ConfigRoutePolicy;

use crate::error::{Error, ErrorKind};
use crate::meta::RequestMeta;
use http::Request;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// One provider to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The provider's configured name.
    pub provider: Arc<str>,
    /// The model to ask it for; `None` = the model the client asked for.
    pub model: Option<String>,
    /// The conversation may come from another provider: clean it for this one.
    pub cross_provider: bool,
}

impl Attempt {
    /// An attempt at `provider` with `model`.
    pub fn new(provider: &str, model: Option<String>) -> Self {
        Self {
            provider: Arc::from(provider),
            model,
            cross_provider: false,
        }
    }
}

/// The attempts for one request, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteDecision {
    /// First the chosen provider, then its fallbacks.
    pub attempts: Vec<Attempt>,
}

impl RouteDecision {
    /// Keep only the attempts at the first attempt's provider. A server-side thread
    /// ([`RequestMeta::server_thread`]) lives at one provider: another cannot continue it.
    pub fn pin_to_first_provider(&mut self) {
        if let Some(first) = self.attempts.first().map(|a| a.provider.clone()) {
            self.attempts.retain(|attempt| attempt.provider == first);
        }
    }
}

/// Decides where a request goes.
pub trait RoutePolicy: Send + Sync + 'static {
    /// The attempts for the request described by `meta`; an error refuses the request.
    fn route(&self, meta: &RequestMeta) -> Result<RouteDecision, Error>;
}

/// Puts the policy's [`RouteDecision`] into each request's extensions.
pub struct RouteLayer<P> {
    policy: Arc<P>,
}

impl<P> Clone for RouteLayer<P> {
    fn clone(&self) -> Self {
        Self {
            policy: self.policy.clone(),
        }
    }
}

impl<P: RoutePolicy> RouteLayer<P> {
    /// A layer routing with `policy`.
    pub fn new(policy: P) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }
}

impl<S, P> Layer<S> for RouteLayer<P> {
    type Service = RouteService<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        RouteService {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service made by [`RouteLayer`].
pub struct RouteService<S, P> {
    inner: S,
    policy: Arc<P>,
}

impl<S: Clone, P> Clone for RouteService<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<S, P, B> Service<Request<B>> for RouteService<S, P>
where
    S: Service<Request<B>, Error = Error>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    P: RoutePolicy,
{
    type Response = S::Response;
    type Error = Error;
    type Future = futures_util::future::Either<
        S::Future,
        futures_util::future::Ready<Result<S::Response, Error>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let decision = match request.extensions().get::<RequestMeta>() {
            Some(meta) => self.policy.route(meta),
            None => Err(Error::new(
                ErrorKind::Internal,
                "routing needs the request metadata that ingress sets",
            )),
        };
        match decision {
            Ok(mut decision) => {
                if request
                    .extensions()
                    .get::<RequestMeta>()
                    .is_some_and(|meta| meta.server_thread)
                {
                    decision.pin_to_first_provider();
                }
                request.extensions_mut().insert(decision);
                futures_util::future::Either::Left(self.inner.call(request))
            }
            Err(error) => {
                futures_util::future::Either::Right(futures_util::future::ready(Err(error)))
            }
        }
    }
}
