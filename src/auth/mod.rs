//! Client keys: `/v1/*` answers only requests that present a key the
//! [`KeyRegistry`] accepts.
//!
//! A key comes in `x-api-key` or `Authorization: Bearer`. The registry looks it up by
//! its SHA-256 digest and refuses unknown, revoked and expired keys with a 401
//! `authentication_error` that says which (never echoing the key). The key's *name*
//! goes into the request ([`ClientName`]) for audit and metrics, its team into
//! [`ClientTeam`], and the key with its team and limits into
//! [`Authenticated`] and, for Govern, a [`ChargeTo`] ([`charge_to`]); the client's credential
//! headers are then removed, so they can never be forwarded upstream.
//!
//! ```
//! use llm_gateway::auth::AuthLayer;
//! use llm_gateway::config::Secret;
//! let layer = AuthLayer::new(vec![("ci".to_owned(), Secret::new("gk-123"))]);
//! # let _ = layer;
//! ```

use crate::config::Secret;
use crate::error::{Error, ErrorKind};
use crate::govern::ChargeTo;
use crate::keys::{Authenticated, KeyRegistry};
use bytes::Bytes;
use futures_util::future::{BoxFuture, Either};
use http::{header, HeaderMap, Request};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

pub use crate::meta::{ClientName, ClientTeam};

/// Requires a client key on `/v1/*`; see the [module docs](self).
#[derive(Clone)]
pub struct AuthLayer {
    registry: Arc<KeyRegistry>,
    /// How long a refused request's body is drained before the 401 goes out.
    drain_within: Duration,
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<Arc<str>> = self
            .registry
            .list()
            .iter()
            .map(|k| k.name.clone())
            .collect();
        f.debug_struct("AuthLayer").field("keys", &names).finish()
    }
}

impl AuthLayer {
    /// A layer accepting `keys`, each with the name audit and metrics show, and no
    /// limits. An empty key is never accepted, so it is left out.
    pub fn new(keys: Vec<(String, Secret)>) -> Self {
        Self::with_registry(Arc::new(KeyRegistry::from_named_keys(keys)))
    }

    /// A layer accepting the keys of `registry`, as they are at each request.
    pub fn with_registry(registry: Arc<KeyRegistry>) -> Self {
        Self {
            registry,
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
        Self::with_registry(Arc::new(KeyRegistry::disabled()))
    }

    /// The name of the key in `headers`, if it is one of ours and usable now (an empty
    /// key never is).
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<Arc<str>> {
        self.registry
            .authenticate(headers)
            .ok()
            .map(|auth| auth.key.name.clone())
    }
}

/// What Govern charges a request of `auth` to: the key's scope and its team's, with
/// their limits, and the `models` globs of those that restrict models.
pub fn charge_to(auth: &Authenticated) -> ChargeTo {
    let mut models = Vec::new();
    if let Some(globs) = &auth.key.models {
        models.push((auth.key.scope(), globs.clone()));
    }
    if let Some(team) = &auth.team {
        if let Some(globs) = &team.models {
            models.push((team.scope(), globs.clone()));
        }
    }
    ChargeTo {
        scopes: auth.scopes(),
        models,
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
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
        if !self.layer.registry.is_enabled() || !request.uri().path().starts_with("/v1/") {
            return Either::Left(self.inner.call(request));
        }
        match self.layer.registry.authenticate(request.headers()) {
            Ok(auth) => {
                let headers = request.headers_mut();
                headers.remove("x-api-key");
                headers.remove(header::AUTHORIZATION);
                headers.remove("api-key");
                let extensions = request.extensions_mut();
                extensions.insert(ClientName(auth.key.name.clone()));
                if let Some(team) = &auth.key.team {
                    extensions.insert(ClientTeam(team.clone()));
                }
                extensions.insert(charge_to(&auth));
                extensions.insert(auth);
                Either::Left(self.inner.call(request))
            }
            Err(failure) => {
                let message = failure.to_string();
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
    use crate::budget::{Limits, Scope};
    use crate::keys::{KeyInfo, TeamInfo};

    #[tokio::test]
    async fn an_accepted_request_carries_its_key_team_and_charge() {
        use tower::ServiceExt;
        let registry = Arc::new(KeyRegistry::new(
            vec![(
                KeyInfo {
                    team: Some("platform".into()),
                    ..KeyInfo::config("ci", std::time::SystemTime::now())
                },
                Secret::new("gk-ci"),
            )],
            Vec::new(),
        ));
        let seen = Arc::new(std::sync::Mutex::new(None));
        let sink = seen.clone();
        let inner = tower::service_fn(move |request: Request<http_body_util::Empty<Bytes>>| {
            let extensions = request.extensions();
            *sink.lock().unwrap() = Some((
                extensions.get::<ClientName>().cloned(),
                extensions.get::<ClientTeam>().cloned(),
                extensions
                    .get::<Authenticated>()
                    .map(|a| a.key.name.clone()),
                extensions.get::<ChargeTo>().map(|c| c.scopes.len()),
                request.headers().contains_key("x-api-key"),
            ));
            async { Ok::<_, Error>(()) }
        });
        let service = AuthLayer::with_registry(registry.clone()).layer(inner);
        let request = Request::post("/v1/messages")
            .header("x-api-key", "gk-ci")
            .body(http_body_util::Empty::new())
            .unwrap();
        service.clone().oneshot(request).await.unwrap();
        let seen = seen.lock().unwrap().take().unwrap();
        assert_eq!(seen.0, Some(ClientName("ci".into())));
        assert_eq!(seen.1, Some(ClientTeam("platform".into())));
        assert_eq!(seen.2.as_deref(), Some("ci"));
        assert_eq!(seen.3, Some(2));
        assert!(!seen.4, "the client's key is removed");
        let refused = Request::post("/v1/messages")
            .header("x-api-key", "gk-wrong")
            .body(http_body_util::Empty::new())
            .unwrap();
        let error = service.oneshot(refused).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Unauthorized);
        assert!(!format!("{error:?}").contains("gk-wrong"));
    }

    #[test]
    fn a_key_is_charged_to_itself_and_its_team() {
        let key = KeyInfo {
            team: Some("platform".into()),
            limits: Limits {
                rpm: Some(5),
                ..Limits::default()
            },
            models: Some(vec!["claude-*".into()]),
            ..KeyInfo::config("ci", std::time::SystemTime::now())
        };
        let team = TeamInfo {
            limits: Limits {
                tpm: Some(9),
                ..Limits::default()
            },
            ..TeamInfo::unlimited("platform")
        };
        let charge = charge_to(&Authenticated {
            key: Arc::new(key),
            team: Some(Arc::new(team)),
        });
        assert_eq!(charge.scopes.len(), 2);
        assert_eq!(charge.scopes[0].0, Scope::key("ci"));
        assert_eq!(charge.scopes[0].1.rpm, Some(5));
        assert_eq!(charge.scopes[1].0, Scope::team("platform"));
        assert_eq!(charge.scopes[1].1.tpm, Some(9));
        assert_eq!(
            charge.models,
            vec![(Scope::key("ci"), vec!["claude-*".to_owned()])]
        );
    }

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
