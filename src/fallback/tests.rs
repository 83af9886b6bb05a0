use super::*;
use crate::body::Body;
use crate::ledger::RequestLedger;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response};
use http_body::Frame;
use tower::{Service, ServiceExt};

/// A request body whose buffer says when its last reference is gone.
struct Watched(#[allow(dead_code)] Arc<()>);

impl AsRef<[u8]> for Watched {
    fn as_ref(&self) -> &[u8] {
        b"{\"model\":\"m\",\"messages\":[]}"
    }
}

/// An upstream that starts a stream, commits it with content, and then stays open.
fn open_stream() -> Response<Body> {
    let frames = futures_util::stream::iter([
        Ok::<_, Error>(Frame::data(Bytes::from_static(
            b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n",
        ))),
        Ok(Frame::data(Bytes::from_static(
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n",
        ))),
    ])
    .chain(futures_util::stream::pending());
    let mut response = Response::new(Body::new(http_body_util::StreamBody::new(frames)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    response
}

#[tokio::test]
async fn a_committed_stream_keeps_no_copy_of_the_request() {
    let watch = Arc::new(());
    let provider = tower::service_fn(|request: Request<Bytes>| {
        drop(request); // as a provider does once the request has gone upstream
        async { Ok::<_, Error>(open_stream()) }
    });
    let mut fallback = FallbackLayer::new(DefaultFallbackPolicy::default()).layer(provider);
    let mut request = Request::new(Bytes::from_owner(Watched(watch.clone())));
    let ledger = RequestLedger::new("gw_1", None);
    request.extensions_mut().insert(ledger.clone());
    let response = fallback.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(
        Arc::strong_count(&watch),
        1,
        "the stream is open and committed: nothing holds the request body any more"
    );
    assert_eq!(
        ledger.take().attempts.len(),
        1,
        "the attempt is in the ledger"
    );
    drop(response);
}
