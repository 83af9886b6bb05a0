//! CPU pinning (`--pin`): the proxy under test on one CPU, the client and mock on
//! another, so neither steals the other's core and the proxy's figures are those of
//! one core.
//!
//! Affinity is per thread and inherited by threads created afterwards, so a runtime's
//! owner thread pins itself before it builds anything (its workers, blocking threads
//! and any thread they spawn, such as the audit store's `audit-writer`, inherit it),
//! and `on_thread_start` pins each runtime thread again for good measure.

/// The CPUs this process may run on, in order (the affinity mask at start, before any
/// pinning; a child of a pinned process inherits the narrowed mask, so children are
/// told their CPUs instead).
pub fn available() -> Vec<usize> {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

/// Pin the calling thread to `cpu`; false if the kernel refused.
pub fn current_thread(cpu: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
}

/// Where things run, when pinned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pinning {
    /// The proxy under test (gateway or bare proxy): its runtime and every thread it spawns.
    pub proxy: usize,
    /// The main thread, the client and mock runtime.
    pub client: usize,
}
