//! `GET /gateway/audit/stream`: Server-Sent Events, one `record` event per audit record
//! as its request closes (metadata, usage and cost; never bodies).
//!
//! Fed by the [`AuditStream`](crate::record::AuditStream) sink over a bounded
//! broadcast: a subscriber that falls more than
//! [`STREAM_CAPACITY`](crate::record::STREAM_CAPACITY) records behind gets a `lagged`
//! event (`{"missed":N}`) and goes on with the newest; no request ever waits for it. A
//! comment every 15 s keeps proxies from closing an idle stream.

use super::AdminState;
use crate::audit::AuditRecord;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};

/// How often an idle stream carries a comment.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// `GET /gateway/audit/stream`.
pub(super) async fn records(
    State(state): State<Arc<AdminState>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    Sse::new(events(state.audit_stream.subscribe()))
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
}

/// The events of one subscriber: a `record` per record, a `lagged` when it fell behind.
fn events(
    receiver: broadcast::Receiver<Arc<AuditRecord>>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(record) => Event::default()
                .event("record")
                .id(record.request_id.clone())
                .json_data(&*record)
                .unwrap_or_else(|_| Event::default().comment("unencodable record")),
            Err(RecvError::Lagged(missed)) => Event::default()
                .event("lagged")
                .data(format!("{{\"missed\":{missed}}}")),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), receiver))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::AuditStream;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn a_subscriber_that_lags_is_told_how_many_it_missed() {
        let stream = AuditStream::with_capacity(2);
        let mut events = std::pin::pin!(events(stream.subscribe()));
        for n in 0..5 {
            stream.publish(AuditRecord::new(format!("gw_{n}"), 0));
        }
        let text = |event: Event| format!("{event:?}");
        let first = text(events.next().await.unwrap().unwrap());
        assert!(
            first.contains("lagged") && first.contains("missed\\\":3"),
            "{first}"
        );
        let next = text(events.next().await.unwrap().unwrap());
        assert!(next.contains("gw_3"), "{next}");
    }
}
