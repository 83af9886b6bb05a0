//! The Lua scripts of the Redis ledger, one per operation, each atomic on the server.

use ::redis::Script;
use std::sync::LazyLock;

macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| Script::new(concat!(include_str!("common.lua"), include_str!($file))))
    };
}

/// Admission: check every scope, then reserve in every scope.
pub(super) static ADMIT: LazyLock<Script> = script!("admit.lua");
/// Set a reservation to a new amount.
pub(super) static RESERVE: LazyLock<Script> = script!("reserve.lua");
/// Settle a request: charge, release.
pub(super) static SETTLE: LazyLock<Script> = script!("settle.lua");
/// Charge a request that was admitted without limits.
pub(super) static CHARGE: LazyLock<Script> = script!("charge.lua");
/// One scope's counters.
pub(super) static USAGE: LazyLock<Script> = script!("usage.lua");
