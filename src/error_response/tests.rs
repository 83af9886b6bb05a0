use super::*;
use http_body_util::BodyExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tower::ServiceExt;

/// A service whose `poll_ready` always fails; it counts its polls and calls.
#[derive(Clone, Default)]
struct NeverReady {
    polls: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

impl Service<Request<()>> for NeverReady {
    type Response = Response<crate::Body>;
    type Error = Error;
    type Future = std::future::Ready<Result<Self::Response, Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(Err(Error::new(
            ErrorKind::Internal,
            "the backend pool is gone",
        )))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(Response::new(crate::Body::empty())))
    }
}

#[tokio::test]
async fn a_service_that_fails_readiness_is_answered_for_and_never_called() {
    let never = NeverReady::default();
    let mut service = ErrorResponseLayer::new().layer(never.clone());
    for _ in 0..2 {
        let response = service
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        let id = response.headers()[REQUEST_ID_HEADER].clone();
        assert_eq!(response.headers()[SDK_REQUEST_ID_HEADER], id);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["type"], "api_error");
        assert_eq!(body["error"]["message"], "the backend pool is gone");
        assert_eq!(body["request_id"], id.to_str().unwrap());
    }
    assert_eq!(never.calls.load(Ordering::SeqCst), 0, "never called");
    assert_eq!(
        never.polls.load(Ordering::SeqCst),
        1,
        "a failed service is not polled again"
    );
}
