//! The hold that never starves a client: once a stream has been held for
//! `max_hold` with no content, its `200` head goes out and this body carries on the
//! fallback loop, sending SSE comments while it still holds the events.

use super::peek::PeekBody;
use super::run::{Ended, Run};
use super::FallbackPolicy;
use crate::error::Error;
use crate::ledger::{AttemptsEnd, RequestLedger};
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tower::Service;

/// The comment a held stream sends while no content has arrived; SSE parsers skip it.
pub(super) const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// The longest gap between keepalives: well inside the 60 s idle timeout common to load
/// balancers (and the 30 s some are set to), for 13 bytes per gap.
const MAX_KEEPALIVE_GAP: Duration = Duration::from_secs(5);

/// The shortest gap, so a tiny `max_hold` does not turn into a flood of comments.
const MIN_KEEPALIVE_GAP: Duration = Duration::from_millis(100);

/// The gap between keepalives for a hold of `max_hold`: as often as the hold itself
/// (whoever set a short hold has a short idle timeout in front), at most every 5 s.
pub(super) fn keepalive_gap(max_hold: Duration) -> Duration {
    max_hold.clamp(MIN_KEEPALIVE_GAP, MAX_KEEPALIVE_GAP)
}

/// A held stream whose head went out: keepalives until an attempt commits, then that
/// attempt's frames; or, when every attempt fails, one `event: error`.
pub(super) struct HoldBody<S: Service<Request<Bytes>>, P> {
    state: State<S, P>,
    keepalive: Pin<Box<Sleep>>,
    gap: Duration,
    /// Says how the attempts ended, and marks the frames made here (they are not
    /// upstream chunks waiting to go out).
    ledger: Option<RequestLedger>,
}

// The body is boxed as a whole (`Body::new`), once per held stream.
#[allow(clippy::large_enum_variant)]
enum State<S: Service<Request<Bytes>>, P> {
    Holding(Run<S, P>),
    Committed(PeekBody),
    Done,
}

impl<S, P, ResB> HoldBody<S, P>
where
    S: Service<Request<Bytes>, Response = Response<ResB>, Error = Error> + Clone,
    ResB: http_body::Body<Data = Bytes, Error = Error> + Send + 'static,
    P: FallbackPolicy,
{
    /// Hold `run`, sending a keepalive at once and then every `gap`.
    pub(super) fn new(run: Run<S, P>, gap: Duration, ledger: Option<RequestLedger>) -> Self {
        Self {
            state: State::Holding(run),
            keepalive: Box::pin(tokio::time::sleep_until(Instant::now())),
            gap,
            ledger,
        }
    }

    fn local_frame(&self, bytes: Bytes) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if let Some(ledger) = &self.ledger {
            ledger.mark_local_frame();
        }
        Poll::Ready(Some(Ok(Frame::data(bytes))))
    }
}

impl<S, P, ResB> http_body::Body for HoldBody<S, P>
where
    S: Service<Request<Bytes>, Response = Response<ResB>, Error = Error> + Clone,
    ResB: http_body::Body<Data = Bytes, Error = Error> + Send + 'static,
    P: FallbackPolicy,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Holding(run) => match run.poll_run(cx) {
                    Poll::Ready(Ended::Answered(response)) => {
                        this.state = State::Committed(response.into_body());
                    }
                    Poll::Ready(Ended::Failed(error)) => {
                        this.state = State::Done;
                        tracing::warn!(kind = ?error.kind(), %error, "every attempt failed after the held stream's head went out; ending it with an error event");
                        if let Some(ledger) = &this.ledger {
                            ledger.attempts_ended(AttemptsEnd::Failed {
                                message: error.message().to_owned(),
                            });
                        }
                        return this.local_frame(error_event(&error));
                    }
                    Poll::Pending => {
                        ready!(this.keepalive.as_mut().poll(cx));
                        let next = Instant::now() + this.gap;
                        this.keepalive.as_mut().reset(next);
                        return this.local_frame(Bytes::from_static(KEEPALIVE));
                    }
                },
                State::Committed(body) => return Pin::new(body).poll_frame(cx),
                State::Done => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Holding(_) => false,
            State::Committed(body) => http_body::Body::is_end_stream(body),
            State::Done => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// One `event: error` frame carrying the last upstream error: the upstream's own error
/// type and message when it sent an Anthropic-shaped error, else the gateway's.
fn error_event(error: &Error) -> Bytes {
    let upstream = error
        .upstream()
        .and_then(|u| serde_json::from_slice::<serde_json::Value>(&u.body).ok())
        .and_then(|v| {
            let detail = v.get("error")?;
            Some((
                detail.get("type")?.as_str()?.to_owned(),
                detail.get("message")?.as_str()?.to_owned(),
            ))
        });
    let body = match &upstream {
        Some((kind, message)) => crate::error_response::error_body(kind, message, None),
        None => crate::error_response::error_body(error.anthropic_type(), error.message(), None),
    };
    let mut frame = Vec::with_capacity(body.len() + 24);
    frame.extend_from_slice(b"event: error\ndata: ");
    frame.extend_from_slice(&body);
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalives_come_as_often_as_the_hold_but_at_most_every_five_seconds() {
        assert_eq!(
            keepalive_gap(Duration::from_secs(10)),
            Duration::from_secs(5)
        );
        assert_eq!(
            keepalive_gap(Duration::from_millis(300)),
            Duration::from_millis(300)
        );
        assert_eq!(
            keepalive_gap(Duration::from_millis(1)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn the_error_event_carries_the_upstreams_own_error() {
        let upstream = crate::error::UpstreamResponse {
            status: http::StatusCode::from_u16(529).unwrap(),
            headers: http::HeaderMap::new(),
            body: Bytes::from_static(
                br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
        };
        let frame = error_event(&Error::upstream_status(upstream));
        assert_eq!(
            &frame[..],
            &b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"[..]
        );
        let cut = Error::new(crate::error::ErrorKind::UpstreamProtocol, "cut");
        let frame = String::from_utf8(error_event(&cut).to_vec()).unwrap();
        assert!(
            frame.starts_with("event: error\ndata: {\"type\":\"error\""),
            "{frame}"
        );
        assert!(frame.contains("\"message\":\"cut\""), "{frame}");
    }
}
