//! Logging a recurring condition once per episode instead of once per occurrence.
//!
//! Out of file descriptors, or at the connection cap, the accept loop meets the same
//! condition for every connection; a log line each time would flood the log exactly
//! when the machine is under pressure. An episode starts at the first occurrence and
//! ends once [`QUIET`] has passed without one.

use std::time::{Duration, Instant};

/// How long a condition must stay away for its episode to end.
pub(crate) const QUIET: Duration = Duration::from_secs(10);

/// One recurring condition's current episode, if any.
#[derive(Debug, Default)]
pub(crate) struct Episode {
    last: Option<Instant>,
    occurrences: u64,
}

impl Episode {
    /// The condition happened; true when this starts a new episode (log it).
    pub(crate) fn occurred(&mut self) -> bool {
        let now = Instant::now();
        let starts = self
            .last
            .is_none_or(|last| now.duration_since(last) >= QUIET);
        if starts {
            self.occurrences = 0;
        }
        self.last = Some(now);
        self.occurrences += 1;
        starts
    }

    /// The condition did not happen this time; when that ends an episode, how many
    /// times it happened in it (log that it is over).
    pub(crate) fn cleared(&mut self) -> Option<u64> {
        let last = self.last?;
        if last.elapsed() < QUIET {
            return None;
        }
        self.last = None;
        Some(std::mem::take(&mut self.occurrences))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_episode_until_the_condition_stays_away() {
        let mut episode = Episode::default();
        assert_eq!(episode.cleared(), None, "no episode yet");
        assert!(episode.occurred(), "the first occurrence starts one");
        assert!(!episode.occurred());
        assert_eq!(episode.cleared(), None, "not quiet long enough");
        assert!(!episode.occurred(), "a success in between does not end it");
        // As if QUIET had passed since the last occurrence.
        episode.last = Instant::now().checked_sub(QUIET);
        assert_eq!(episode.cleared(), Some(3));
        assert!(episode.occurred(), "a new episode");
    }
}
