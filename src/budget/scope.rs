//! What a limit applies to ([`Scope`]) and the limits themselves ([`Limits`]).

use super::Period;
use crate::pricing::Money;
use std::sync::Arc;

/// Whether a scope is one client key or a team of keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    /// One client key, by name.
    Key,
    /// A team, by name: every key with `team = NAME`.
    Team,
}

/// One thing spend and limits are counted for: a key or a team, by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// Key or team.
    pub kind: ScopeKind,
    /// The key's or team's name.
    pub name: Arc<str>,
}

impl Scope {
    /// The scope of the client key `name`.
    pub fn key(name: &str) -> Self {
        Self {
            kind: ScopeKind::Key,
            name: Arc::from(name),
        }
    }

    /// The scope of the team `name`.
    pub fn team(name: &str) -> Self {
        Self {
            kind: ScopeKind::Team,
            name: Arc::from(name),
        }
    }

    /// `key` or `team`, as in metrics labels and messages.
    pub fn kind_str(&self) -> &'static str {
        match self.kind {
            ScopeKind::Key => "key",
            ScopeKind::Team => "team",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.kind_str(), &*self.name)
    }
}

/// A spending limit: at most `limit` in each window of `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The most that may be settled in one window.
    pub limit: Money,
    /// The window.
    pub period: Period,
}

/// The limits of one scope; every one is optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Spend per window.
    pub budget: Option<Budget>,
    /// Requests admitted in any 60 seconds.
    pub rpm: Option<u32>,
    /// Tokens (input, cache writes, cache reads and output) charged or reserved in any
    /// 60 seconds.
    pub tpm: Option<u64>,
    /// Requests open at once (a stream is open until its body ends).
    pub max_concurrent: Option<u32>,
}

impl Limits {
    /// Whether no limit is set.
    pub fn is_unlimited(&self) -> bool {
        *self == Limits::default()
    }
}
