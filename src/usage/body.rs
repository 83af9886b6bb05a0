use super::{OnUsage, Outcome, UsageObservers, UsageReport, UsageTracker};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

pin_project! {
    /// A body that forwards every frame unchanged and reads usage from it.
    ///
    /// Reports once: at the end of the stream, on an error frame, or — through its
    /// drop guard — when it is dropped early because the client went away.
    pub struct UsageBody<B, H: OnUsage> {
        #[pin]
        inner: B,
        tap: Option<Tap<H>>,
    }
}

/// The tap's state; reporting on drop makes a client disconnect a report, not a loss.
pub(crate) struct Tap<H: OnUsage> {
    pub(crate) tracker: UsageTracker,
    pub(crate) hook: Arc<H>,
    pub(crate) request_id: String,
    pub(crate) provider: Arc<str>,
    pub(crate) model: Option<String>,
    pub(crate) agent_type: Option<String>,
    pub(crate) client: Option<String>,
    pub(crate) observers: Option<UsageObservers>,
    pub(crate) stream: bool,
    pub(crate) received_at: Instant,
    pub(crate) reported: bool,
}

// === impl UsageBody ===

impl<B, H: OnUsage> UsageBody<B, H> {
    pub(crate) fn new(inner: B, tap: Option<Tap<H>>) -> Self {
        Self { inner, tap }
    }
}

impl<B, H> Body for UsageBody<B, H>
where
    B: Body<Data = Bytes>,
    H: OnUsage,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(tap) = this.tap.as_mut() {
                    if let Some(data) = frame.data_ref() {
                        tap.tracker.feed(data);
                    }
                }
                if this.inner.is_end_stream() {
                    finish(this.tap);
                }
            }
            Some(Err(_)) => {
                if let Some(mut tap) = this.tap.take() {
                    let outcome = match tap.tracker.outcome_at_end() {
                        Outcome::Error => Outcome::Error,
                        _ => Outcome::Incomplete,
                    };
                    tap.report(outcome);
                }
            }
            None => finish(this.tap),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn finish<H: OnUsage>(tap: &mut Option<Tap<H>>) {
    if let Some(mut tap) = tap.take() {
        tap.tracker.finish();
        let outcome = tap.tracker.outcome_at_end();
        tap.report(outcome);
    }
}

// === impl Tap ===

impl<H: OnUsage> Tap<H> {
    fn report(&mut self, outcome: Outcome) {
        if self.reported {
            return;
        }
        self.reported = true;
        let report = self.take_report(outcome);
        if let Some(observers) = &self.observers {
            for observer in observers.iter() {
                observer.on_usage(report.clone());
            }
        }
        self.hook.on_usage(report);
    }

    fn take_report(&mut self, outcome: Outcome) -> UsageReport {
        let tracker = &self.tracker;
        let model = tracker
            .served_model()
            .map(str::to_owned)
            .or_else(|| self.model.take());
        UsageReport {
            request_id: std::mem::take(&mut self.request_id),
            provider: self.provider.clone(),
            model,
            agent_type: self.agent_type.take(),
            client: self.client.take(),
            stream: self.stream,
            usage: tracker.usage(),
            outcome,
            ttft: if self.stream {
                tracker
                    .first_content_at()
                    .map(|at| at.saturating_duration_since(self.received_at))
            } else {
                None
            },
            duration: self.received_at.elapsed(),
            parse_failures: tracker.parse_failures(),
        }
    }
}

impl<H: OnUsage> Drop for Tap<H> {
    fn drop(&mut self) {
        // Dropped before the end: the client went away (or the server is shutting down),
        // or fallback dropped an attempt that failed in-band before its commit point.
        let outcome = match self.tracker.outcome_at_end() {
            Outcome::Error => Outcome::Error,
            _ => Outcome::ClientDisconnected,
        };
        self.report(outcome);
    }
}
