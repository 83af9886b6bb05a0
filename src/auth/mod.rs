//! Client keys: `/v1/*` answers only requests that present one of the configured keys.
//!
//! A key comes in `x-api-key` or `Authorization: Bearer`. Keys are compared by their
//! SHA-256 digests in constant time, against every configured key (no early exit), so
//! neither a key's bytes nor its length leak through timing. The key's *name* goes into
//! the request ([`ClientName`]) for audit and metrics; the client's credential headers
//! are then removed, so they can never be forwarded upstream.
//!
//! ```
//! use llm_gateway::auth::AuthLayer;
//! use llm_gateway::config::Secret;
//! let layer = AuthLayer::new(vec![("ci".to_owned(), Secret::new("gk-123"))]);
//! # let _ = layer;
//! ```

use crate::config::Secret;
use crate::error::{Error, ErrorKind};
use bytes::Bytes;
use futures_util::future::{BoxFuture, Either};
use http::{header, HeaderMap, Request};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

pub use crate::meta::ClientName;

/// Requires a client key on `/v1/*`; see the [module docs](self).
#[derive(Clone)]
pub struct AuthLayer {
    keys: Arc<Vec<(Arc<str>, [u8; 32])>>,
    enabled: bool,
    /// How long a refused request's body is drained before the 401 goes out.
    drain_within: Duration,
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.keys.iter().map(|(n, _)| &**n).collect();
        f.debug_struct("AuthLayer").field("keys", &names).finish()
    }
}

impl AuthLayer {
    /// A layer accepting `keys`, each with the name audit and metrics show. An empty
    /// key is never accepted, so it is left out.
    pub fn new(keys: Vec<(String, Secret)>) -> Self {
        let keys = keys
            .into_iter()
            .filter(|(_, key)| !key.expose().is_empty())
            .map(|(name, key)| (Arc::from(name), digest(key.expose().as_bytes())))
            .collect();
        Self {
            keys: Arc::new(keys),
            enabled: true,
            drain_within: crate::ingress::DEFAULT_BODY_TIMEOUT,
        }
    }

    /// Before answering 401, read and discard what the client is still uploading for
    /// at most `within` (the body time limit), so it can read the answer.
    pub fn with_body_timeout(mut self, within: Duration) -> Self {
        self.drain_within = within;
        self
    }

    /// A layer that lets every request through (no `[auth]` configured).
    pub fn open() -> Self {
        Self {
            keys: Arc::new(Vec::new()),
            enabled: false,
            drain_within: crate::ingress::DEFAULT_BODY_TIMEOUT,
        }
    }

    /// The name of the key in `headers`, if it is one of ours (an empty key never is).
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<Arc<str>> {
        let presented = presented_key(headers).filter(|key| !key.is_empty())?;
        let presented = digest(presented);
        let mut found = None;
        for (name, key) in self.keys.iter() {
            // Check every key: the time taken does not say which one matched.
            if bool::from(key.ct_eq(&presented)) {
                found = Some(name.clone());
            }
        }
        found
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The key in `x-api-key`, else in `Authorization: Bearer`.
fn presented_key(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(key) = headers.get("x-api-key") {
        return Some(key.as_bytes());
    }
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at(value.iter().position(|b| *b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| token.trim_ascii())
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S, B> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Error = Error>,
    S::Response: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
{
    type Response = S::Response;
    type Error = Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<S::Response, Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        if !self.layer.enabled || !request.uri().path().starts_with("/v1/") {
            return Either::Left(self.inner.call(request));
        }
        match self.layer.authenticate(request.headers()) {
            Some(name) => {
                let headers = request.headers_mut();
                headers.remove("x-api-key");
                headers.remove(header::AUTHORIZATION);
                headers.remove("api-key");
                request.extensions_mut().insert(ClientName(name));
                Either::Left(self.inner.call(request))
            }
            None => {
                let message = if presented_key(request.headers()).is_some() {
                    "invalid client key"
                } else {
                    "a client key is required (x-api-key or Authorization: Bearer)"
                };
                let within = self.layer.drain_within;
                Either::Right(Box::pin(async move {
                    crate::ingress::drain(request.into_body(), within).await;
                    Err(Error::new(ErrorKind::Unauthorized, message))
                }))
            }
        }
    }
}

/// Whether `headers` carry `Authorization: Bearer <token>` for `token`, in constant time.
pub fn bearer_matches(headers: &HeaderMap, token: &Secret) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    let Some(space) = value.iter().position(|b| *b == b' ') else {
        return false;
    };
    let (scheme, presented) = value.split_at(space);
    let presented = presented.trim_ascii();
    let non_empty = !presented.is_empty() & !token.expose().is_empty();
    let presented = digest(presented);
    let expected = digest(token.expose().as_bytes());
    non_empty & scheme.eq_ignore_ascii_case(b"bearer") & bool::from(presented.ct_eq(&expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn either_header_names_the_key() {
        let layer = AuthLayer::new(vec![
            ("ci".into(), Secret::new("gk-ci")),
            ("dev".into(), Secret::new("gk-dev")),
        ]);
        assert_eq!(
            layer
                .authenticate(&headers(&[("x-api-key", "gk-dev")]))
                .as_deref(),
            Some("dev")
        );
        assert_eq!(
            layer
                .authenticate(&headers(&[("authorization", "Bearer gk-ci")]))
                .as_deref(),
            Some("ci")
        );
        assert_eq!(
            layer.authenticate(&headers(&[("x-api-key", "gk-nope")])),
            None
        );
        assert_eq!(
            layer.authenticate(&headers(&[("authorization", "Basic gk-ci")])),
            None
        );
        assert_eq!(layer.authenticate(&HeaderMap::new()), None);
    }

    #[test]
    fn bearer_matching() {
        let token = Secret::new("admin-1");
        assert!(bearer_matches(
            &headers(&[("authorization", "Bearer admin-1")]),
            &token
        ));
        assert!(!bearer_matches(
            &headers(&[("authorization", "Bearer admin-2")]),
            &token
        ));
        assert!(!bearer_matches(
            &headers(&[("authorization", "admin-1")]),
            &token
        ));
        assert!(!bearer_matches(&HeaderMap::new(), &token));
    }

    #[test]
    fn an_empty_key_never_authenticates() {
        let layer = AuthLayer::new(vec![
            ("empty".into(), Secret::new("")),
            ("ci".into(), Secret::new("gk-ci")),
        ]);
        assert_eq!(layer.authenticate(&headers(&[("x-api-key", "")])), None);
        assert_eq!(
            layer.authenticate(&headers(&[("authorization", "Bearer ")])),
            None
        );
        assert!(!bearer_matches(
            &headers(&[("authorization", "Bearer ")]),
            &Secret::new("")
        ));
    }

    #[test]
    fn debug_shows_names_only() {
        let layer = AuthLayer::new(vec![("ci".into(), Secret::new("gk-secret-ci"))]);
        let debug = format!("{layer:?}");
        assert!(debug.contains("ci") && !debug.contains("gk-secret-ci"));
    }
}
