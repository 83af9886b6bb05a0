//! `GET /gateway/audit/stream`: Server-Sent Events, one `record` event per audit record
//! as its request closes (metadata, usage and cost; never bodies).
//!
//! Fed by the [`AuditStream`](crate::record::AuditStream) sink over a bounded
//! broadcast: a subscriber that falls more than
//! [`STREAM_CAPACITY`](crate::record::STREAM_CAPACITY) records behind gets a `lagged`
//! event (`{"missed":N}`) and goes on with the newest; no request ever waits for it. A
//! comment every 15 s keeps proxies from closing an idle stream.

use super::AdminState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How often an idle stream carries a comment.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// `GET /gateway/audit/stream`.
pub(super) async fn records(
    State(state): State<Arc<AdminState>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = state.audit_stream.subscribe();
    let events = stream::unfold(receiver, |mut receiver| async move {
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
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
}
