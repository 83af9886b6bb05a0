//! Reading and discarding a body the gateway refuses before reading it.
//!
//! When a refusal (401, 404, 405) is answered while the client is still uploading, the
//! server closes a socket with unread bytes in it: the kernel then resets the connection
//! and the client gets `EPIPE` or `ECONNRESET` instead of the answer. Reading what is
//! left first — up to [`DRAIN_LIMIT`] bytes and the body time limit — lets the client
//! finish its upload and read the error. A body larger than that is dropped as before.

use bytes::Bytes;
use http_body_util::BodyExt;
use std::time::Duration;

/// Most bytes read and discarded from a refused request's body.
pub const DRAIN_LIMIT: usize = 1024 * 1024;

/// Read `body` to its end and discard it, giving up after [`DRAIN_LIMIT`] bytes or
/// `within`, whichever comes first.
pub async fn drain<B>(body: B, within: Duration)
where
    B: http_body::Body<Data = Bytes>,
{
    let read = async {
        let mut body = std::pin::pin!(body);
        let mut total = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                total += data.len();
                if total > DRAIN_LIMIT {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(within, read).await;
}
