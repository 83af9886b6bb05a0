//! The gateway's id for one request: `gw_` and a UUIDv7 in simple form, time-ordered.
//!
//! The HTTP edge makes it with tower-http's `SetRequestId` and [`MakeGatewayRequestId`],
//! ignoring any id the client sent, and puts it in the request's extensions as a [`tower_http::request_id::RequestId`]; every
//! answer carries it in [`REQUEST_ID_HEADER`]. Layers read it with [`RequestId::of`],
//! which makes one the same way when a layer is used without the edge.

use http::{Extensions, HeaderValue, Request};
use tower_http::request_id::MakeRequestId;

/// The response header that carries the request id.
pub const REQUEST_ID_HEADER: &str = "x-gateway-request-id";

/// The gateway's id for one request, as text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(pub String);

impl RequestId {
    /// A fresh, time-ordered id (`gw_` + UUIDv7).
    pub fn generate() -> Self {
        Self(format!("gw_{}", uuid::Uuid::now_v7().simple()))
    }

    /// The id the edge gave this request, if it has one.
    pub fn get(extensions: &Extensions) -> Option<Self> {
        let id = extensions.get::<tower_http::request_id::RequestId>()?;
        id.header_value()
            .to_str()
            .ok()
            .map(|id| Self(id.to_owned()))
    }

    /// The request's id: the edge's, or, for a layer used alone, a fresh one inserted
    /// now so that every layer inside sees the same id.
    pub fn of(extensions: &mut Extensions) -> Self {
        if let Some(id) = Self::get(extensions) {
            return id;
        }
        let id = Self::generate();
        if let Ok(value) = HeaderValue::from_str(&id.0) {
            extensions.insert(tower_http::request_id::RequestId::new(value));
        }
        id
    }

    /// The id as a header value.
    pub fn header_value(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.0).ok()
    }
}

/// An axum extractor: a handler's `id: RequestId` is the request's id ([`RequestId::of`]).
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(RequestId::of(&mut parts.extensions))
    }
}

/// Makes [`RequestId`]s for tower-http's `SetRequestId`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MakeGatewayRequestId;

impl MakeRequestId for MakeGatewayRequestId {
    fn make_request_id<B>(
        &mut self,
        _request: &Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        RequestId::generate()
            .header_value()
            .map(tower_http::request_id::RequestId::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_gw_and_a_uuid_v7() {
        let id = RequestId::generate().0;
        let uuid = id.strip_prefix("gw_").expect("gw_ prefix");
        let uuid = uuid::Uuid::parse_str(uuid).expect("a UUID");
        assert_eq!(uuid.get_version_num(), 7);
    }

    #[test]
    fn a_layer_alone_makes_one_id_and_keeps_it() {
        let mut extensions = Extensions::new();
        let first = RequestId::of(&mut extensions);
        assert_eq!(RequestId::of(&mut extensions), first);
        assert_eq!(RequestId::get(&extensions), Some(first));
    }
}
