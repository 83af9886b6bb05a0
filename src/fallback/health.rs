//! Which providers are worth trying now.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Per-provider health: consecutive failures and when a skipped provider may be tried again.
#[derive(Debug, Default)]
pub struct ProviderHealth {
    state: Mutex<HashMap<String, State>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct State {
    consecutive_failures: u32,
    skip_until: Option<Instant>,
}

impl ProviderHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `provider` is not being skipped right now.
    pub fn is_available(&self, provider: &str) -> bool {
        self.lock()
            .get(provider)
            .and_then(|s| s.skip_until)
            .is_none_or(|until| Instant::now() >= until)
    }

    /// A success clears the failure count.
    pub fn record_success(&self, provider: &str) {
        self.lock().insert(provider.to_owned(), State::default());
    }

    /// A failure; at `threshold` in a row the provider is skipped for `cool_down`, and a
    /// `retry_after` keeps it skipped at least that long.
    pub fn record_failure(
        &self,
        provider: &str,
        threshold: u32,
        cool_down: Duration,
        retry_after: Option<Duration>,
    ) {
        let now = Instant::now();
        let mut state = self.lock();
        let entry = state.entry(provider.to_owned()).or_default();
        entry.consecutive_failures = entry.consecutive_failures.saturating_add(1);
        let mut until = entry.skip_until.filter(|t| *t > now);
        if entry.consecutive_failures >= threshold {
            until = until.max(Some(now + cool_down));
        }
        if let Some(wait) = retry_after {
            until = until.max(Some(now + wait));
        }
        entry.skip_until = until;
    }

    /// `(provider, available)` for each of `providers`.
    pub fn snapshot<'a>(
        &self,
        providers: impl IntoIterator<Item = &'a str>,
    ) -> Vec<(String, bool)> {
        providers
            .into_iter()
            .map(|p| (p.to_owned(), self.is_available(p)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_then_cool_down_then_success_clears() {
        let health = ProviderHealth::default();
        let cool = Duration::from_secs(60);
        health.record_failure("a", 2, cool, None);
        assert!(health.is_available("a"));
        health.record_failure("a", 2, cool, None);
        assert!(!health.is_available("a"));
        health.record_success("a");
        assert!(health.is_available("a"));
        health.record_failure("b", 5, cool, Some(Duration::from_secs(30)));
        assert!(!health.is_available("b"), "retry-after keeps it skipped");
        health.record_failure("c", 5, cool, Some(Duration::ZERO));
        assert!(health.is_available("c"));
    }
}
