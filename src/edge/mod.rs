//! The HTTP edge: tower-http's request id, trace span, sensitive headers and panic
//! catching, around the whole router.
//!
//! [`wrap`] puts these around a router, outermost first:
//!
//! 1. `SetSensitiveRequestHeaders` marks `x-api-key`, `authorization` and `api-key`
//!    sensitive, so no `Debug` of the headers (in a log, in a span) shows them.
//! 2. Any `x-gateway-request-id` the client sent is dropped: the id is the gateway's.
//! 3. `SetRequestId` gives the request its [`RequestId`](crate::request_id::RequestId)
//!    (`gw_` + UUIDv7, [`MakeGatewayRequestId`]) in the header and the extensions.
//! 4. `PropagateRequestId` copies it onto every answer that lacks it (admin answers,
//!    axum's own 405s).
//! 5. `Trace` opens one `request` span per request with the request id, method and path,
//!    records the status when the head is ready, and stays entered while the body is
//!    polled; inner layers fill in client, model and provider with [`record`].
//! 6. `CatchPanic`, through a small wrapper that hands its handler the request id: a
//!    panic while making the answer becomes a 500 `api_error` carrying the request id,
//!    and the server keeps serving.
//!
//! # Panics
//!
//! A panic in a layer's `call` or response future is caught; a panic while a body is
//! being polled is not (hyper's connection task ends, and with it that connection only).
//!
//! ```
//! let router = axum::Router::new().route("/hello", axum::routing::get(|| async { "hi" }));
//! let router = llm_gateway::edge::wrap(router);
//! # let _ = router;
//! ```

mod panic;
mod span;

pub use crate::request_id::MakeGatewayRequestId;
pub use span::{record, SpanField};

use crate::request_id::REQUEST_ID_HEADER;
use http::header::{HeaderName, AUTHORIZATION};
use http::Request;
use tower::ServiceBuilder;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

/// The client headers that carry credentials.
fn credential_headers() -> [HeaderName; 3] {
    [
        AUTHORIZATION,
        HeaderName::from_static("x-api-key"),
        HeaderName::from_static("api-key"),
    ]
}

/// Put the edge around `router`; see the [module docs](self).
pub fn wrap(router: axum::Router) -> axum::Router {
    let id_header = HeaderName::from_static(REQUEST_ID_HEADER);
    router.layer(
        ServiceBuilder::new()
            .layer(SetSensitiveRequestHeadersLayer::new(credential_headers()))
            .map_request(drop_client_request_id)
            .layer(SetRequestIdLayer::new(
                id_header.clone(),
                MakeGatewayRequestId,
            ))
            .layer(PropagateRequestIdLayer::new(id_header))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(span::request_span)
                    .on_response(span::record_status)
                    // Failures are logged where they are understood (error_response).
                    .on_failure(()),
            )
            .layer(panic::PanicAnswerLayer),
    )
}

/// A client's own `x-gateway-request-id` would name another request's record.
fn drop_client_request_id(mut request: Request<axum::body::Body>) -> Request<axum::body::Body> {
    request.headers_mut().remove(REQUEST_ID_HEADER);
    request
}
