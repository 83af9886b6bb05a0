//! [`Hold`]: what `Govern` leaves in a request for the layers inside it: the usage tap
//! tells it each attempt's input and cost, fallback asks it before each further attempt.

use super::bound::{cost_bound, exact_input_bound, tokens_of};
use crate::budget::{AttemptRefused, Reservation};
use crate::error::{Error, ErrorKind};
use crate::fallback::AttemptGate;
use crate::pricing::{ModelPrice, PriceTable};
use crate::route::Attempt;
use crate::usage::{CostReport, Usage, UsageWatch};
use std::sync::Arc;

/// One governed request's reservation, with what it takes to bound each attempt.
pub(crate) struct Hold {
    pub(crate) reservation: Arc<Reservation>,
    pub(crate) prices: Arc<PriceTable>,
    /// The model the client asked for (an attempt without its own model asks for it).
    pub(crate) requested_model: Option<String>,
    /// The prompt's upper bound in tokens.
    pub(crate) input_bound: u64,
    /// The request's `max_tokens` (0 when it has none: only unbudgeted requests).
    pub(crate) max_tokens: u64,
    pub(crate) on_refusal: super::OnRefusal,
}

impl Hold {
    fn price(&self, provider: &str, model: Option<&str>) -> Option<&ModelPrice> {
        let model = model.or(self.requested_model.as_deref())?;
        self.prices.lookup(Some(provider), model)
    }
}

impl UsageWatch for Hold {
    fn input_known(&self, provider: &str, model: Option<&str>, usage: &Usage) {
        // Priced as the tap will price it: by the model the upstream said it served.
        if let Some(price) = self.price(provider, model) {
            let bound = exact_input_bound(price, usage, self.max_tokens);
            let tokens = tokens_of(&Usage {
                output_tokens: Some(self.max_tokens),
                ..*usage
            });
            self.reservation.input_known(bound, tokens);
        }
    }

    fn attempt_ended(&self, report: &CostReport) {
        self.reservation
            .attempt_ended(report.cost, tokens_of(&report.usage.usage));
    }
}

impl AttemptGate for Hold {
    fn before_attempt(&self, attempt: &Attempt) -> Result<(), Error> {
        let tokens = self.input_bound.saturating_add(self.max_tokens);
        let cost = match self.price(&attempt.provider, attempt.model.as_deref()) {
            Some(price) => cost_bound(price, self.input_bound, self.max_tokens),
            // Govern removed unpriced attempts from budgeted requests; an unbudgeted one
            // holds nothing.
            None => crate::pricing::Money::ZERO,
        };
        match self.reservation.begin_attempt(cost, tokens) {
            Ok(()) => Ok(()),
            Err(AttemptRefused::Refused(refusal)) => {
                (self.on_refusal)(&refusal);
                Err(super::refuse::refusal_error(
                    &refusal,
                    self.reservation.now(),
                ))
            }
            Err(AttemptRefused::Unavailable(error)) => Err(Error::new(
                ErrorKind::Unavailable,
                format!("another attempt could not be reserved: {error}"),
            )),
        }
    }
}
