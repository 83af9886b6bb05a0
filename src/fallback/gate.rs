//! [`AttemptGate`]: a check before every attempt after the first.

use crate::error::Error;
use crate::route::Attempt;
use std::sync::Arc;

/// Asked before each attempt after the first one that ran; an error ends the request
/// with it instead of trying that attempt (budgets use it: a further attempt must fit
/// what the earlier ones cost plus its own bound).
pub trait AttemptGate: Send + Sync + 'static {
    /// Whether `attempt` may start.
    fn before_attempt(&self, attempt: &Attempt) -> Result<(), Error>;
}

/// The request's [`AttemptGate`], in its extensions (inserted by an outer layer, such
/// as `Govern`).
#[derive(Clone)]
pub struct GateAttempts(pub Arc<dyn AttemptGate>);

impl std::fmt::Debug for GateAttempts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GateAttempts")
    }
}
