use super::price::{unpriced, Pricing};
use super::{OnUsage, Outcome, UsageReport, UsageTracker, WatchUsage};
use crate::ledger::RequestLedger;
use crate::observe::{BodyEnd, BodyObserver, ObservedBody};
use crate::telemetry::{Answered, AttemptSpan, Tokens};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;

/// A body that forwards every frame unchanged and reads usage from it.
///
/// Reports once: at the end of the stream, on an error frame, or when it is dropped
/// early because the client went away.
pub type UsageBody<B, H> = ObservedBody<B, UsageTap<H>>;

/// The usage tap on one attempt's answer: reads usage as it passes, prices it and
/// reports it once (to the hooks and the request's ledger).
pub struct UsageTap<H> {
    pub(crate) tracker: UsageTracker,
    pub(crate) hook: Arc<H>,
    pub(crate) pricing: Option<Arc<Pricing>>,
    pub(crate) ledger: Option<RequestLedger>,
    pub(crate) watch: Option<WatchUsage>,
    /// The watch has been told the input.
    pub(crate) input_told: bool,
    pub(crate) request_id: String,
    pub(crate) provider: Arc<str>,
    pub(crate) model: Option<String>,
    pub(crate) agent_type: Option<String>,
    pub(crate) client: Option<String>,
    pub(crate) stream: bool,
    pub(crate) received_at: Instant,
    /// The attempt's trace span: the tap records the answer on it and holds it open
    /// until the body ends or is dropped.
    pub(crate) span: Option<AttemptSpan>,
}

impl<H: OnUsage> BodyObserver for UsageTap<H> {
    fn on_data(&mut self, data: &Bytes) {
        self.tracker.feed(data);
        if let (false, Some(watch)) = (self.input_told, &self.watch) {
            let usage = self.tracker.usage();
            if usage.input_tokens.is_some() {
                self.input_told = true;
                let model = self.tracker.served_model().or(self.model.as_deref());
                watch.0.input_known(&self.provider, model, &usage);
            }
        }
    }

    fn on_end(&mut self, end: BodyEnd) {
        let outcome = match (end, self.tracker.outcome_at_end()) {
            (BodyEnd::Whole, _) => {
                self.tracker.finish();
                self.tracker.outcome_at_end()
            }
            (_, Outcome::Error) => Outcome::Error,
            (BodyEnd::Broken, _) => Outcome::Incomplete,
            // Dropped before the end: the client went away (or the server is shutting
            // down), or fallback dropped an attempt that failed before its commit point.
            (BodyEnd::Dropped, _) => Outcome::ClientDisconnected,
        };
        let report = self.take_report(outcome);
        let cost = self
            .pricing
            .as_ref()
            .map(|pricing| pricing.price(report.clone()));
        self.tell_span(&report, cost.as_ref().and_then(|c| c.cost));
        if self.pricing.is_none() && self.ledger.is_none() && self.watch.is_none() {
            self.hook.on_usage(report);
            return;
        }
        self.hook.on_usage(report.clone());
        let priced = match (&self.pricing, cost) {
            (Some(pricing), Some(priced)) => {
                pricing.hook().on_cost(priced.clone());
                priced
            }
            _ => unpriced(report),
        };
        if let Some(watch) = &self.watch {
            watch.0.attempt_ended(&priced);
        }
        if let Some(ledger) = &self.ledger {
            ledger.usage(priced);
        }
    }
}

impl<H> UsageTap<H> {
    /// Record the answer on the attempt's span (when traced).
    fn tell_span(&self, report: &UsageReport, cost: Option<crate::pricing::Money>) {
        let Some(span) = &self.span else {
            return;
        };
        let facts = self.tracker.answer();
        let usage = &report.usage;
        let (outcome, broken) = match report.outcome {
            Outcome::Complete => ("complete", false),
            Outcome::Error => ("error", true),
            Outcome::Incomplete => ("incomplete", true),
            Outcome::ClientDisconnected => ("client_disconnected", false),
        };
        span.answered(Answered {
            model: report.model.as_deref(),
            id: facts.id.as_deref(),
            stop_reason: facts.stop_reason.as_deref(),
            tokens: Tokens {
                input: usage.input_tokens,
                output: usage.output_tokens,
                cache_read: usage.cache_read_input_tokens,
                cache_creation: usage.cache_creation_input_tokens,
            },
            cost,
            outcome,
            broken,
            committed: !self.stream || self.tracker.first_content_at().is_some(),
        });
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

impl<H> std::fmt::Debug for UsageTap<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageTap")
            .field("request_id", &self.request_id)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}
