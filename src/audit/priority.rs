//! How the writer thread shares the CPU with the proxy: [`WriterPriority`].

/// How much lower than the process a `Low` writer runs (nice increment).
const WRITER_NICENESS: i32 = 10;

/// How the audit writer thread shares the CPU with the proxy's workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriterPriority {
    /// nice +10, yielding the CPU after every record it stores: a fair share of
    /// a busy CPU, so a record stays durable within a second even when other
    /// work saturates the machine (the SPEC's promise). The default.
    #[default]
    Low,
    /// Linux's idle scheduling class: the writer runs only on CPU the proxy and
    /// every other process leave idle, and a waking worker preempts it at once,
    /// so auditing never delays a request. It gives up the one-second
    /// durability bound: on a CPU that stays saturated the writer gets almost
    /// nothing, and records and bodies wait in the queue (bodies up to
    /// `queue_max_bytes`, then shed, counted) until the CPU frees up. An
    /// unprivileged thread cannot leave the idle class again, so this is chosen
    /// once, at start.
    Idle,
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
