//! The wall clock the ledger reads, and one tests can move.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// Where the ledger reads the time: budget windows, the rate-limit minute and lease
/// expiry all follow it.
pub trait Clock: Send + Sync + 'static {
    /// The time now.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that stands still until moved: lets a test cross a window boundary or a
/// rate-limit minute without waiting.
///
/// ```
/// use llm_gateway::budget::{Clock, TestClock};
/// use std::time::{Duration, UNIX_EPOCH};
/// let clock = TestClock::at(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_800_000_060));
/// ```
#[derive(Clone, Debug)]
pub struct TestClock(Arc<Mutex<SystemTime>>);

impl TestClock {
    /// A clock showing `at`.
    pub fn at(at: SystemTime) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    /// Move the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }

    /// Set the clock to `at`.
    pub fn set(&self, at: SystemTime) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
