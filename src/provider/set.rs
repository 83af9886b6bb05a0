//! All configured providers behind one service, dispatching on [`AttemptTarget`].

use crate::body::Body;
use crate::error::{Error, ErrorKind};
use crate::meta::AttemptTarget;
use bytes::Bytes;
use futures_util::future::{BoxFuture, Either, Ready};
use http::{Request, Response};
use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

/// A boxed provider service (the leaf of each attempt).
pub type ProviderService = BoxCloneSyncService<Request<Bytes>, Response<Body>, Error>;

/// The configured providers by name; a request goes to the one its [`AttemptTarget`]
/// names, or to the default when it names none.
#[derive(Clone)]
pub struct ProviderSet {
    providers: Arc<HashMap<Arc<str>, ProviderService>>,
    default: Arc<str>,
}

impl std::fmt::Debug for ProviderSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSet")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("default", &self.default)
            .finish()
    }
}

impl ProviderSet {
    /// A set of `providers`, with `default` serving requests that name none.
    pub fn new(providers: HashMap<Arc<str>, ProviderService>, default: &str) -> Self {
        Self {
            providers: Arc::new(providers),
            default: Arc::from(default),
        }
    }

    /// The providers' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(|k| &**k)
    }
}

impl Service<Request<Bytes>> for ProviderSet {
    type Response = Response<Body>;
    type Error = Error;
    type Future = Either<
        BoxFuture<'static, Result<Response<Body>, Error>>,
        Ready<Result<Response<Body>, Error>>,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // Readiness is per provider; it is checked when the target is known, in `call`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let name = request
            .extensions()
            .get::<AttemptTarget>()
            .map_or_else(|| self.default.clone(), |t| t.0.clone());
        let Some(service) = self.providers.get(&name).cloned() else {
            return Either::Right(futures_util::future::ready(Err(Error::new(
                ErrorKind::NoRoute,
                format!("no provider named `{name}`"),
            ))));
        };
        Either::Left(Box::pin(service.oneshot(request)))
    }
}
