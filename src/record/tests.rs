use super::*;
use crate::ledger::{AttemptRecord, RequestLedger};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use std::convert::Infallible;
use std::sync::Mutex;
use tower::{Layer, Service};

/// What a sink saw of one closed request.
type Close = (String, u16, BodyEnd, Vec<AttemptRecord>, Option<Bytes>);

/// Remembers what it was told, in order.
#[derive(Default)]
struct Seen {
    answers: Mutex<Vec<u16>>,
    closed: Mutex<Vec<Close>>,
}

impl RecordSink for Seen {
    fn keeps(&self) -> KeepBodies {
        KeepBodies {
            request: Some(4),
            response: Some(3),
        }
    }

    fn on_answer(&self, _: Option<Endpoint>, head: &AnswerHead) {
        self.answers.lock().unwrap().push(head.status);
    }

    fn on_close(&self, request: &ClosedRequest) {
        self.closed.lock().unwrap().push((
            request.request_id.clone(),
            request.status(),
            request.end,
            request.entries.attempts.clone(),
            request.response_body.clone(),
        ));
    }
}

/// A service that writes one attempt into the ledger, as fallback does, and answers.
fn writer() -> impl Service<Request<Bytes>, Response = Response<Full<Bytes>>, Error = Infallible> {
    tower::service_fn(|request: Request<Bytes>| async move {
        let ledger = RequestLedger::of(request.extensions()).expect("Record opened a ledger");
        ledger.set_request_body(request.body());
        ledger.attempt(AttemptRecord {
            provider: "p".into(),
            status: Some(200),
            error: None,
            latency_ms: 1,
        });
        Ok(Response::new(Full::new(Bytes::from_static(b"answer"))))
    })
}

#[tokio::test]
async fn each_request_is_closed_once_with_what_the_layers_wrote() {
    let seen = Arc::new(Seen::default());
    let mut service = RecordLayer::new().sink(seen.clone()).layer(writer());
    let request = Request::post("/v1/messages")
        .body(Bytes::from_static(b"0123456789"))
        .unwrap();
    let response = service.call(request).await.unwrap();
    let _ = response.into_body().collect().await.unwrap();
    let closed = seen.closed.lock().unwrap();
    assert_eq!(closed.len(), 1, "one close per request");
    let (id, status, end, attempts, response_body) = &closed[0];
    assert!(id.starts_with("gw_"), "{id}");
    assert_eq!((*status, *end), (200, BodyEnd::Whole));
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        response_body.as_deref(),
        Some(&b"ans\n[llm-gateway: body cut at 3 of 6 bytes]"[..])
    );
    assert_eq!(*seen.answers.lock().unwrap(), [200]);
}

#[tokio::test]
async fn a_request_dropped_before_its_answer_is_closed_as_a_client_that_left() {
    let seen = Arc::new(Seen::default());
    let never = tower::service_fn(|_: Request<Bytes>| {
        std::future::pending::<Result<Response<Full<Bytes>>, Infallible>>()
    });
    let mut service = RecordLayer::new().sink(seen.clone()).layer(never);
    let future = service.call(Request::post("/v1/messages").body(Bytes::new()).unwrap());
    drop(future);
    let closed = seen.closed.lock().unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!((closed[0].1, closed[0].2), (499, BodyEnd::Dropped));
    assert!(seen.answers.lock().unwrap().is_empty());
}

#[tokio::test]
async fn paths_outside_the_api_open_no_ledger() {
    let seen = Arc::new(Seen::default());
    let inner = tower::service_fn(|request: Request<Bytes>| async move {
        assert!(RequestLedger::of(request.extensions()).is_none());
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let mut service = RecordLayer::new().sink(seen.clone()).layer(inner);
    let response = service
        .call(Request::get("/gateway/health").body(Bytes::new()).unwrap())
        .await
        .unwrap();
    let _ = response.into_body().collect().await;
    assert!(seen.closed.lock().unwrap().is_empty());
}
