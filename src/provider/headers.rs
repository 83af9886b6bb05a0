//! Which headers cross the gateway, in each direction.

use http::header::{self, HeaderMap, HeaderName};

/// Names the provider that served an answer.
pub const PROVIDER_HEADER: &str = "x-gateway-provider";

/// RFC 9110 §7.6.1 connection-specific headers, never forwarded.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Headers named by the `Connection` header are hop-by-hop too.
fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

/// The client's credential headers.
pub(crate) fn is_credential(name: &HeaderName) -> bool {
    name == header::AUTHORIZATION || name == "x-api-key" || name == "api-key"
}

/// Client request headers that go upstream: everything but hop-by-hop headers, those
/// the HTTP client sets itself, and credentials (the provider decides on those).
pub(crate) fn forwardable_request_headers(client: &HeaderMap) -> HeaderMap {
    let listed = connection_listed(client);
    let mut out = HeaderMap::with_capacity(client.len());
    for (name, value) in client {
        if is_hop_by_hop(name)
            || listed.contains(name)
            || is_credential(name)
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::ACCEPT_ENCODING
            || name == header::EXPECT
        {
            continue;
        }
        out.append(name, value.clone());
    }
    out
}

/// Upstream response headers that go back to the client.
pub(crate) fn returnable_response_headers(upstream: &HeaderMap) -> HeaderMap {
    let listed = connection_listed(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        if is_hop_by_hop(name) || listed.contains(name) || name == header::CONTENT_LENGTH {
            continue;
        }
        out.append(name, value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn request_filter_keeps_api_headers_and_drops_the_rest() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "a,b"),
            ("x-stainless-os", "Linux"),
            ("user-agent", "claude-cli/2"),
            ("x-app", "cli"),
            ("connection", "keep-alive, x-drop-me"),
            ("x-drop-me", "1"),
            ("keep-alive", "5"),
            ("te", "trailers"),
            ("x-api-key", "sk-secret"),
            ("authorization", "Bearer sk-secret"),
            ("accept-encoding", "gzip, br, zstd"),
            ("host", "localhost"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let out = forwardable_request_headers(&headers);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            [
                "anthropic-version",
                "anthropic-beta",
                "x-stainless-os",
                "user-agent",
                "x-app"
            ]
        );
    }
}
