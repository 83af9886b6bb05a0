//! What the tool reads from `/proc` (Linux only; no `libc`, no `unsafe`).
//!
//! CPU is `utime + stime` from `stat` (fields 14 and 15), in clock ticks of
//! `AT_CLKTCK` (read from `/proc/self/auxv`; 100 Hz on every mainstream Linux), so one
//! tick is 10 ms: runs should spend at least a second of CPU for the figure to mean
//! much. Memory is `VmRSS` / `VmHWM` from `status`, in kB.

use std::collections::HashMap;
use std::time::Duration;

/// Ticks per second of the `stat` CPU fields.
pub fn clock_ticks() -> u64 {
    const AT_CLKTCK: u64 = 17;
    let width = std::mem::size_of::<usize>();
    if let Ok(auxv) = std::fs::read("/proc/self/auxv") {
        for pair in auxv.chunks_exact(2 * width) {
            let word = |b: &[u8]| -> u64 {
                let mut buf = [0u8; 8];
                buf[..width].copy_from_slice(b);
                if width == 8 {
                    u64::from_ne_bytes(buf)
                } else {
                    u64::from(u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]))
                }
            };
            let (key, value) = (word(&pair[..width]), word(&pair[width..]));
            if key == AT_CLKTCK && value > 0 {
                return value;
            }
        }
    }
    100
}

/// `utime + stime` of a `stat` file (a process or one thread), in ticks.
pub fn stat_ticks(path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces and parentheses: start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), so field 14 (utime) is fields[11], 15 (stime) fields[12].
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

pub fn ticks_to_duration(ticks: u64, hz: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / hz as f64)
}

/// The calling thread's id, from the link `/proc/thread-self` → `PID/task/TID`.
pub fn current_tid() -> Option<u32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// Every live thread of `pid` with its name and CPU ticks.
pub fn threads(pid: u32) -> HashMap<u32, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let base = format!("/proc/{pid}/task/{tid}");
        let Some(ticks) = stat_ticks(&format!("{base}/stat")) else {
            continue; // exited meanwhile
        };
        let name = std::fs::read_to_string(format!("{base}/comm"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        out.insert(tid, (name, ticks));
    }
    out
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`), in kB.
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The soft limit on open files of this process.
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        Some(u64::MAX)
    } else {
        soft.parse().ok()
    }
}
