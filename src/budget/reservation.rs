//! [`Reservation`]: one admitted request's hold on its budgets, from admission to
//! settlement.

use super::{Ledger, LedgerError, Refusal, Settlement};
use crate::pricing::Money;
use futures_util::FutureExt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// One admitted request's hold on its budgets.
///
/// Made by `Govern` once the ledger admitted the request with the first attempt's bound;
/// the usage tap tells it each attempt's exact input (the hold shrinks) and cost; fallback
/// asks it before every further attempt (the hold must cover what the earlier attempts
/// cost plus the next one's bound, or that attempt is refused); `Record`'s budget sink
/// settles it once, when the request is over.
pub struct Reservation {
    ledger: Arc<dyn Ledger>,
    request_id: String,
    state: Mutex<Held>,
}

#[derive(Debug)]
struct Held {
    /// What the ledger holds for the request now.
    reserved: Money,
    reserved_tokens: u64,
    /// What the attempts that ended cost.
    consumed: Money,
    consumed_tokens: u64,
    /// The running attempt's bound, until it reports.
    running: Option<(Money, u64)>,
    settled: bool,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("request_id", &self.request_id)
            .field("held", &*self.lock())
            .finish()
    }
}

/// Why a further attempt may not start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptRefused {
    /// Its bound does not fit the budget.
    Refused(Box<Refusal>),
    /// The ledger could not answer at once.
    Unavailable(LedgerError),
}

impl Reservation {
    /// The hold of request `request_id`, which `ledger` admitted with `cost` and `tokens`
    /// for its first attempt.
    pub fn new(ledger: Arc<dyn Ledger>, request_id: &str, cost: Money, tokens: u64) -> Self {
        Self {
            ledger,
            request_id: request_id.to_owned(),
            state: Mutex::new(Held {
                reserved: cost,
                reserved_tokens: tokens,
                consumed: Money::ZERO,
                consumed_tokens: 0,
                running: Some((cost, tokens)),
                settled: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The request id the ledger knows the hold by.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The time on the ledger's clock.
    pub fn now(&self) -> std::time::SystemTime {
        self.ledger.now()
    }

    /// What is held now.
    pub fn reserved(&self) -> Money {
        self.lock().reserved
    }

    /// A further attempt bounded by `cost` and `tokens` is about to start: the hold must
    /// cover what the earlier attempts cost plus this bound. It grows when it must, if
    /// the ledger confirms at once (an in-memory ledger always answers at once; a
    /// remote one that cannot refuses the attempt rather than risk an overshoot).
    pub fn begin_attempt(&self, cost: Money, tokens: u64) -> Result<(), AttemptRefused> {
        let mut held = self.lock();
        let needed = held.consumed.saturating_add(cost);
        let needed_tokens = held.consumed_tokens.saturating_add(tokens);
        if needed > held.reserved {
            let answer = self
                .ledger
                .reserve(&self.request_id, needed, needed_tokens)
                .now_or_never();
            match answer {
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(refusal))) => return Err(AttemptRefused::Refused(Box::new(refusal))),
                Some(Err(error)) => return Err(AttemptRefused::Unavailable(error)),
                None => {
                    return Err(AttemptRefused::Unavailable(LedgerError(
                        "the ledger did not confirm the reservation at once".into(),
                    )))
                }
            }
            held.reserved = needed;
            held.reserved_tokens = needed_tokens;
        }
        held.running = Some((cost, tokens));
        Ok(())
    }

    /// The running attempt's exact input is known: its bound is now `cost` and `tokens`
    /// (the exact input plus `max_tokens` of output). The hold shrinks to what the
    /// earlier attempts cost plus that; it never grows here.
    pub fn input_known(&self, cost: Money, tokens: u64) {
        let mut held = self.lock();
        let total = held.consumed.saturating_add(cost);
        let total_tokens = held.consumed_tokens.saturating_add(tokens);
        if total < held.reserved {
            // Shrinking always succeeds and takes effect on the call.
            drop(self.ledger.reserve(&self.request_id, total, total_tokens));
            held.reserved = total;
            held.reserved_tokens = total_tokens;
        }
        if let Some(running) = &mut held.running {
            running.0 = running.0.min(cost);
        }
    }

    /// The running attempt ended having used `tokens` and cost `cost`; `None` when its
    /// cost is unknown (usage that could not be read): it is charged its bound.
    pub fn attempt_ended(&self, cost: Option<Money>, tokens: u64) {
        let mut held = self.lock();
        let bound = held.running.take();
        let charged = match (cost, bound) {
            (Some(cost), _) => cost,
            (None, Some((bound, _))) => bound,
            (None, None) => Money::ZERO,
        };
        held.consumed = held.consumed.saturating_add(charged);
        held.consumed_tokens = held.consumed_tokens.saturating_add(tokens);
    }

    /// The request is over: settle what its attempts cost (once; later calls do nothing).
    pub fn settle(&self) -> Settlement {
        let mut held = self.lock();
        let settlement = Settlement {
            cost: held.consumed,
            tokens: held.consumed_tokens,
        };
        if !held.settled {
            held.settled = true;
            self.ledger.settle(&self.request_id, settlement);
        }
        settlement
    }
}
