//! [`MemoryLedger`]: the ledger in this process's memory.

use super::{
    Admission, Clock, Ledger, LedgerError, Limits, Refusal, Scope, ScopeUsage, Settlement,
    SpendJournal, SystemClock,
};
use crate::pricing::Money;
use futures_util::future::BoxFuture;
use std::sync::Arc;

/// The ledger of one gateway process; see the [module docs](super).
pub struct MemoryLedger {
    clock: Arc<dyn Clock>,
    journal: Option<SpendJournal>,
}

impl Default for MemoryLedger {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLedger {
    /// An empty ledger on the system clock.
    pub fn new() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            journal: None,
        }
    }

    /// Read the time from `clock`.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Load settled spend from `journal` and write every settlement to it, so spend
    /// survives a restart.
    pub fn with_journal(mut self, journal: SpendJournal) -> Self {
        self.journal = Some(journal);
        self
    }
}

impl Ledger for MemoryLedger {
    fn admit(
        &self,
        _admission: Admission,
    ) -> BoxFuture<'static, Result<Result<(), Refusal>, LedgerError>> {
        todo!()
    }

    fn reserve(
        &self,
        _request_id: &str,
        _cost: Money,
        _tokens: u64,
    ) -> BoxFuture<'static, Result<Result<(), Refusal>, LedgerError>> {
        todo!()
    }

    fn settle(&self, _request_id: &str, _settlement: Settlement) {
        todo!()
    }

    fn usage(
        &self,
        _scope: &Scope,
        _limits: &Limits,
    ) -> BoxFuture<'static, Result<ScopeUsage, LedgerError>> {
        todo!()
    }
}
