//! How the writer thread shares the CPU with the proxy: [`WriterPriority`].

/// How much lower than the process a `Low` writer runs (nice increment).
const WRITER_NICENESS: i32 = 10;

/// How the audit writer thread shares the CPU with the proxy's workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriterPriority {
    /// Linux's idle scheduling class: the writer runs only on CPU the proxy and
    /// every other process leave idle, and a waking worker preempts it at once,
    /// so auditing never delays a request. On a CPU that stays saturated it
    /// falls behind: bodies wait in the queue (up to `queue_max_bytes`, then
    /// they are shed, counted) until the CPU frees up.
    #[default]
    Idle,
    /// nice +10: a fair share of a busy CPU, so the writer keeps up under
    /// saturation; on a core it shares with a worker, a commit can delay
    /// that worker's events by milliseconds.
    Low,
}

/// Lower this thread's priority as `priority` says: the idle scheduling
/// class, or nice +[`WRITER_NICENESS`] (also the fallback where the idle class
/// is refused). Best effort: a failure is logged at debug and ignored.
pub(crate) fn apply(priority: WriterPriority) {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadPriority, ThreadSchedulePolicy,
        };
        if priority == WriterPriority::Idle
            && set_thread_priority_and_policy(
                thread_native_id(),
                ThreadPriority::Min,
                ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
            )
            .is_ok()
        {
            return;
        }
        // On Linux a thread id names one thread for setpriority(2).
        let tid = rustix::thread::gettid();
        let result = rustix::process::getpriority_process(Some(tid)).and_then(|nice| {
            rustix::process::setpriority_process(Some(tid), (nice + WRITER_NICENESS).min(19))
        });
        if let Err(error) = result {
            tracing::debug!(%error, "audit writer: could not lower its priority; running at the process's");
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = priority;
        tracing::debug!("audit writer: lowering a thread's priority is only done on Linux");
    }
}
