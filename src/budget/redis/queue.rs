//! One task per ledger sends every operation to Redis in the order it was called, so an
//! operation takes effect in call order (a settle, then an admission, from one replica
//! are seen by Redis in that order), fed by a bounded channel.

use crate::budget::LedgerError;
use futures_util::future::BoxFuture;
use std::sync::{Mutex, PoisonError};
use tokio::sync::{mpsc, oneshot};

/// How many operations may wait for Redis before new ones are refused.
const DEPTH: usize = 4_096;

/// An operation waiting its turn.
type Job = BoxFuture<'static, ()>;

/// The sending end of the ledger's worker task (started on first use).
#[derive(Default)]
pub(super) struct Queue(Mutex<Option<mpsc::Sender<Job>>>);

impl Queue {
    /// Queue `job` now; the future carries its answer.
    pub(super) fn submit<T: Send + 'static>(
        &self,
        job: impl std::future::Future<Output = Result<T, LedgerError>> + Send + 'static,
    ) -> BoxFuture<'static, Result<T, LedgerError>> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::pin(async move {
            let _ = tx.send(job.await);
        });
        if let Err(error) = self.push(job) {
            return Box::pin(futures_util::future::ready(Err(error)));
        }
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(LedgerError("the Redis ledger's task stopped".into())))
        })
    }

    fn push(&self, job: Job) -> Result<(), LedgerError> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let job = match slot.as_ref() {
            None => job,
            Some(tx) => match tx.try_send(job) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    return Err(LedgerError(
                        "too many operations are waiting for Redis".into(),
                    ))
                }
                // Its runtime is gone: start a new task on the current one.
                Err(mpsc::error::TrySendError::Closed(job)) => job,
            },
        };
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| LedgerError("the Redis ledger needs a tokio runtime".into()))?;
        let (tx, mut rx) = mpsc::channel::<Job>(DEPTH);
        runtime.spawn(async move {
            while let Some(job) = rx.recv().await {
                job.await;
            }
        });
        tx.try_send(job)
            .map_err(|_| LedgerError("the Redis ledger's task stopped".into()))?;
        *slot = Some(tx);
        Ok(())
    }
}
