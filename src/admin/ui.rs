//! `GET /gateway/ui`: the dashboard, served from assets built into the binary (no CDN,
//! nothing to build): one page, its script and style, and uPlot (MIT, vendored with its
//! licence) for the charts.
//!
//! The assets hold no data and are open; the page asks for the admin token (kept in
//! `sessionStorage`) and sends it as `Authorization: Bearer` to the admin endpoints,
//! never in a URL. Every answer carries a strict Content-Security-Policy: scripts only
//! from the gateway itself (no inline script, no `eval`), no framing, no form posts;
//! the page renders bodies with `textContent`, so a prompt holding `<script>` stays
//! text.

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};

/// The policy on every dashboard answer.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// One built-in asset: path under `/gateway/ui`, content type, bytes.
const ASSETS: [(&str, &str, &str); 6] = [
    (
        "",
        "text/html; charset=utf-8",
        include_str!("ui/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/app.js"),
    ),
    (
        "/app.css",
        "text/css; charset=utf-8",
        include_str!("ui/app.css"),
    ),
    (
        "/uPlot.min.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/uPlot.iife.min.js"),
    ),
    (
        "/uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("ui/uPlot.min.css"),
    ),
    (
        "/uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_str!("ui/uPlot.LICENSE"),
    ),
];

/// The routes of the page and its assets (`/gateway/ui` and `/gateway/ui/` both serve
/// the page).
pub(super) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new().route("/gateway/ui/", get(|| async { asset(ASSETS[0]) }));
    for entry in ASSETS {
        router = router.route(
            &format!("/gateway/ui{}", entry.0),
            get(move || async move { asset(entry) }),
        );
    }
    router
}

fn asset((_, content_type, body): (&str, &'static str, &'static str)) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CONTENT_SECURITY_POLICY, CSP),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (X_FRAME_OPTIONS, "DENY"),
            (REFERRER_POLICY, "no-referrer"),
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
