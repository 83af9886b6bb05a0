//! Which providers are worth trying now.

use super::shared::CoolDownSink;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Per-provider health: consecutive failures and when a skipped provider may be tried again.
///
/// With [`share_cool_downs`](crate::fallback::share_cool_downs) (several replicas on one
/// Redis), a cool-down this replica starts is also sent to Redis, and the ones other
/// replicas started are taken in from there: a provider skipped by one is skipped by all.
/// Failures in a row are still counted per replica.
#[derive(Debug, Default)]
pub struct ProviderHealth {
    state: Mutex<HashMap<String, State>>,
    shared: OnceLock<CoolDownSink>,
}

#[derive(Debug, Default, Clone, Copy)]
struct State {
    consecutive_failures: u32,
    skip_until: Option<Instant>,
    /// Until when another replica (through Redis) has it cooling down.
    remote_until: Option<Instant>,
}

impl ProviderHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `provider` is not being skipped right now.
    pub fn is_available(&self, provider: &str) -> bool {
        let now = Instant::now();
        self.lock().get(provider).is_none_or(|s| {
            s.skip_until.is_none_or(|until| now >= until)
                && s.remote_until.is_none_or(|until| now >= until)
        })
    }

    /// A success clears the failure count (and a shared cool-down: it works again).
    pub fn record_success(&self, provider: &str) {
        let old = self.lock().insert(provider.to_owned(), State::default());
        let remote = old.and_then(|s| s.remote_until);
        if remote.is_some_and(|until| until > Instant::now()) {
            if let Some(shared) = self.shared.get() {
                shared.clear(provider);
            }
        }
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
        let longer = until.filter(|u| entry.skip_until.is_none_or(|old| *u > old));
        entry.skip_until = until;
        drop(state);
        if let (Some(until), Some(shared)) = (longer, self.shared.get()) {
            shared.cool_down(provider, until - now);
        }
    }

    /// Send this replica's cool-downs to `sink` from now on.
    pub(super) fn share_with(&self, sink: CoolDownSink) {
        let _ = self.shared.set(sink);
    }

    /// What Redis says: `provider` cools down for `remaining` more (another replica's
    /// cool-down, or this one's), or not at all.
    pub(super) fn set_remote(&self, provider: &str, remaining: Option<Duration>) {
        let until = remaining.map(|r| Instant::now() + r);
        let mut state = self.lock();
        if let Some(entry) = state.get_mut(provider) {
            entry.remote_until = until;
        } else if until.is_some() {
            let entry = State {
                remote_until: until,
                ..State::default()
            };
            state.insert(provider.to_owned(), entry);
        }
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

    #[test]
    fn another_replicas_cool_down_skips_until_it_ends_or_a_success() {
        let health = ProviderHealth::default();
        health.set_remote("a", Some(Duration::from_secs(60)));
        assert!(!health.is_available("a"), "skipped for the other replica");
        health.set_remote("a", None);
        assert!(health.is_available("a"), "ended in Redis: tried again");
        health.set_remote("a", Some(Duration::from_secs(60)));
        health.record_success("a");
        assert!(health.is_available("a"), "a success here ends it");
        health.set_remote("b", None);
        assert!(health.is_available("b"));
    }
}
