//! The figures, as a table or as one JSON object.

use crate::drive::PhaseResult;
use crate::hist::Histogram;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

pub struct RunInfo {
    pub mode: String,
    pub gateway_url: String,
    pub gateway_threads: Option<usize>,
    pub client_threads: usize,
    pub audit: Option<bool>,
    pub audit_bodies: Option<bool>,
    pub concurrency: usize,
    pub requests: u64,
    pub duration_secs: Option<u64>,
    pub warmup: u64,
    pub events: usize,
    pub event_interval_ms: u64,
    pub body_bytes: usize,
    pub hold_open: Option<usize>,
}

pub struct CpuFigure {
    pub total: Duration,
    pub by_thread: Vec<(String, Duration)>,
    pub source: String,
}

/// One side of `--hold-open` (also what a child process prints).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct HoldResult {
    pub side: String,
    pub k: usize,
    /// Streams that had their first content event while all were held.
    pub opened: u64,
    /// Streams read to their end after the release.
    pub completed: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    /// Time to open all of them.
    pub open_secs: f64,
    pub rss_before_kb: Option<u64>,
    pub rss_open_kb: Option<u64>,
    pub fds_before: Option<u64>,
    pub fds_open: Option<u64>,
    pub hwm_kb: Option<u64>,
    pub rss_of: String,
    pub active_streams: Option<f64>,
}

impl HoldResult {
    fn added_kb(&self) -> Option<i64> {
        Some(self.rss_open_kb? as i64 - self.rss_before_kb? as i64)
    }

    /// kB of RSS per 1,000 open streams.
    fn per_1000_kb(&self) -> Option<f64> {
        (self.opened > 0).then(|| {
            self.added_kb()
                .map(|kb| kb as f64 * 1000.0 / self.opened as f64)
        })?
    }
}

pub struct Report {
    pub info: RunInfo,
    pub direct: Option<PhaseResult>,
    pub via: PhaseResult,
    pub gateway_cpu: Option<CpuFigure>,
    pub process_cpu_direct: Option<Duration>,
    pub process_cpu_via: Option<Duration>,
    pub peak_rss_kb: Option<u64>,
    pub peak_rss_of: String,
    pub gateway_metrics: BTreeMap<String, f64>,
    pub hold: Option<(Option<HoldResult>, HoldResult)>,
}

const PERCENTILES: [f64; 3] = [50.0, 90.0, 99.0];

fn pct_json(h: &Histogram) -> Value {
    json!({
        "count": h.count(),
        "p50_us": h.percentile(50.0),
        "p90_us": h.percentile(90.0),
        "p99_us": h.percentile(99.0),
        "max_us": h.max(),
        "mean_us": h.mean().map(|m| (m * 10.0).round() / 10.0),
    })
}

fn diff(a: Option<u64>, b: Option<u64>) -> Option<i64> {
    Some(a? as i64 - b? as i64)
}

/// µs as a short human figure.
fn us(v: u64) -> String {
    if v < 1_000 {
        format!("{v} µs")
    } else if v < 1_000_000 {
        format!("{:.2} ms", v as f64 / 1e3)
    } else {
        format!("{:.3} s", v as f64 / 1e6)
    }
}

fn signed_us(v: i64) -> String {
    let sign = if v < 0 { "−" } else { "+" };
    format!("{sign}{}", us(v.unsigned_abs()))
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

fn signed_mb(kb: i64) -> String {
    let sign = if kb < 0 { "−" } else { "+" };
    format!("{sign}{:.1} MB", kb.unsigned_abs() as f64 / 1024.0)
}

fn opt(v: Option<String>) -> String {
    v.unwrap_or_else(|| "—".into())
}

impl Report {
    /// Errors anywhere, or nothing measured.
    pub fn failed(&self) -> bool {
        match &self.hold {
            Some((direct, via)) => {
                via.opened < via.k as u64
                    || via.errors > 0
                    || direct
                        .as_ref()
                        .is_some_and(|d| d.opened < d.k as u64 || d.errors > 0)
            }
            None => {
                self.via.ok == 0
                    || self.via.errors > 0
                    || self.direct.as_ref().is_some_and(|d| d.errors > 0)
            }
        }
    }

    fn per_1000(&self, d: Duration) -> Option<f64> {
        (self.via.ok > 0).then(|| d.as_secs_f64() * 1000.0 / self.via.ok as f64)
    }

    pub fn to_json(&self) -> Value {
        let info = &self.info;
        let mut out = json!({
            "config": {
                "mode": info.mode,
                "gateway_url": info.gateway_url,
                "gateway_threads": info.gateway_threads,
                "client_threads": info.client_threads,
                "audit": info.audit,
                "audit_bodies": info.audit_bodies,
                "concurrency": info.concurrency,
                "requests": info.requests,
                "duration_secs": info.duration_secs,
                "warmup": info.warmup,
                "events": info.events,
                "event_interval_ms": info.event_interval_ms,
                "request_body_bytes": info.body_bytes,
                "hold_open": info.hold_open,
            },
            "peak_rss_kb": self.peak_rss_kb,
            "peak_rss_of": self.peak_rss_of,
            "failed": self.failed(),
        });
        if let Some((direct, via)) = &self.hold {
            let share = match direct {
                Some(d) => via.per_1000_kb().zip(d.per_1000_kb()).map(|(v, d)| v - d),
                None if info.mode == "external" => via.per_1000_kb(),
                None => None,
            };
            out["hold_open"] = json!({
                "direct": direct,
                "gateway": via,
                "direct_rss_kb_per_1000_streams": direct.as_ref().and_then(HoldResult::per_1000_kb),
                "gateway_side_rss_kb_per_1000_streams": via.per_1000_kb(),
                "gateway_rss_kb_per_1000_open_streams": share,
                "definition": "in-process: (RSS added holding K via gateway − RSS added holding K direct) / K × 1000, each side in a fresh child process; external: the gateway pid's RSS added / K × 1000",
            });
            return out;
        }
        let phase = |r: &PhaseResult, cpu: Option<Duration>| {
            json!({
                "ok": r.ok,
                "errors": r.errors,
                "error_samples": r.error_samples,
                "wall_secs": r.wall.as_secs_f64(),
                "streams_per_sec": r.streams_per_sec(),
                "overall_streams_per_sec": r.overall_streams_per_sec(),
                "steady_window": r.steady.map(|(n, d)| json!({"streams": n, "secs": d.as_secs_f64()})),
                "bytes_received": r.bytes,
                "time_to_first_event": pct_json(&r.ttfe),
                "inter_event_gap": pct_json(&r.gaps),
                "whole_stream": pct_json(&r.whole),
                "process_cpu_secs": cpu.map(|c| c.as_secs_f64()),
            })
        };
        out["via_gateway"] = phase(&self.via, self.process_cpu_via);
        if let Some(d) = &self.direct {
            out["direct"] = phase(d, self.process_cpu_direct);
            let mut added = serde_json::Map::new();
            for p in PERCENTILES {
                added.insert(
                    format!("time_to_first_event_p{p}_us"),
                    json!(diff(self.via.ttfe.percentile(p), d.ttfe.percentile(p))),
                );
                added.insert(
                    format!("inter_event_gap_p{p}_us"),
                    json!(diff(self.via.gaps.percentile(p), d.gaps.percentile(p))),
                );
            }
            added.insert(
                "jitter_added_us".into(),
                json!(diff(
                    self.via.gaps.percentile(99.0),
                    d.gaps.percentile(99.0)
                )),
            );
            added.insert(
                "jitter_definition".into(),
                json!("p99 of inter-event gaps via gateway − p99 of inter-event gaps direct; a gap is the time between the arrivals of consecutive events of one stream, from its first content_block_delta to message_stop"),
            );
            out["added"] = Value::Object(added);
        }
        if let Some(cpu) = &self.gateway_cpu {
            out["gateway_cpu"] = json!({
                "secs": cpu.total.as_secs_f64(),
                "secs_per_1000_streams": self.per_1000(cpu.total),
                "by_thread_secs": cpu.by_thread.iter().map(|(n, d)| (n.clone(), json!(d.as_secs_f64()))).collect::<serde_json::Map<_, _>>(),
                "source": cpu.source,
            });
        }
        if !self.gateway_metrics.is_empty() {
            let m = &self.gateway_metrics;
            out["gateway_metrics"] = json!({
                "audit_records_written": m.get("llm_gateway_audit_records_written_total"),
                "audit_records_spilled": m.get("llm_gateway_audit_records_spilled_total"),
                "audit_records_dropped": m.get("llm_gateway_audit_records_dropped_total"),
                "overhead_seconds_mean": mean(m, "llm_gateway_overhead_seconds"),
                "overhead_seconds_count": m.get("llm_gateway_overhead_seconds_count"),
            });
        }
        out
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let i = &self.info;
        let gateway = match (i.gateway_threads, i.audit) {
            (Some(t), Some(audit)) => format!(
                "in-process gateway ({t} worker thread{}, audit {}, body capture {})",
                if t == 1 { "" } else { "s" },
                if audit { "on" } else { "off" },
                if i.audit_bodies == Some(true) {
                    "on"
                } else {
                    "off"
                },
            ),
            _ => format!("gateway at {}", i.gateway_url),
        };
        let pacing = if i.event_interval_ms == 0 {
            "unpaced".to_owned()
        } else {
            format!("one event every {} ms", i.event_interval_ms)
        };
        let _ = writeln!(
            s,
            "llm-gateway load test: {gateway}; client and mock on {} thread{}",
            i.client_threads,
            if i.client_threads == 1 { "" } else { "s" }
        );
        if let Some((direct, via)) = &self.hold {
            self.hold_text(&mut s, direct.as_ref(), via);
            return s;
        }
        let count = match i.duration_secs {
            Some(d) => format!("{d} s (at most {} streams)", i.requests),
            None => format!("{} streams", i.requests),
        };
        let _ = writeln!(
            s,
            "{count} per target at concurrency {}, {} text deltas a stream, {pacing}; request body {} bytes; warm-up {} streams a target\n",
            i.concurrency, i.events, i.body_bytes, i.warmup
        );
        let d = self.direct.as_ref();
        let v = &self.via;
        let row = |s: &mut String, label: &str, a: String, b: String, c: String| {
            let _ = writeln!(s, "{label:<28}{a:>14}{b:>14}{c:>14}");
        };
        row(
            &mut s,
            "",
            "direct".into(),
            "via gateway".into(),
            "added".into(),
        );
        row(
            &mut s,
            "streams/s",
            opt(d.map(|d| format!("{:.1}", d.streams_per_sec()))),
            format!("{:.1}", v.streams_per_sec()),
            String::new(),
        );
        row(
            &mut s,
            "  overall (ramp, tail)",
            opt(d.map(|d| format!("{:.1}", d.overall_streams_per_sec()))),
            format!("{:.1}", v.overall_streams_per_sec()),
            String::new(),
        );
        let hist_rows = |s: &mut String, name: &str, get: &dyn Fn(&PhaseResult) -> &Histogram| {
            for p in PERCENTILES {
                let label = if p == 50.0 {
                    format!("{name} p50")
                } else {
                    format!("{:>width$} p{p}", "", width = name.len())
                };
                let a = d.and_then(|d| get(d).percentile(p));
                let b = get(v).percentile(p);
                row(
                    s,
                    &label,
                    opt(a.map(us)),
                    opt(b.map(us)),
                    opt(diff(b, a).map(signed_us)),
                );
            }
        };
        hist_rows(&mut s, "time to first event", &|r| &r.ttfe);
        hist_rows(&mut s, "inter-event gap", &|r| &r.gaps);
        let wa = d.and_then(|d| d.whole.percentile(50.0));
        let wb = v.whole.percentile(50.0);
        row(
            &mut s,
            "whole stream p50",
            opt(wa.map(us)),
            opt(wb.map(us)),
            opt(diff(wb, wa).map(signed_us)),
        );
        let wa = d.and_then(|d| d.whole.percentile(99.0));
        let wb = v.whole.percentile(99.0);
        row(
            &mut s,
            "                 p99",
            opt(wa.map(us)),
            opt(wb.map(us)),
            opt(diff(wb, wa).map(signed_us)),
        );
        row(
            &mut s,
            "streams ok / errors",
            opt(d.map(|d| format!("{} / {}", d.ok, d.errors))),
            format!("{} / {}", v.ok, v.errors),
            String::new(),
        );
        row(
            &mut s,
            "process CPU",
            opt(self
                .process_cpu_direct
                .map(|c| format!("{:.2} s", c.as_secs_f64()))),
            opt(self
                .process_cpu_via
                .map(|c| format!("{:.2} s", c.as_secs_f64()))),
            String::new(),
        );
        let _ = writeln!(s);
        if let Some(d) = d {
            let jitter = diff(v.gaps.percentile(99.0), d.gaps.percentile(99.0));
            let _ = writeln!(
                s,
                "jitter added: {} (p99 inter-event gap via gateway − direct; gaps from each stream's first delta to message_stop)",
                opt(jitter.map(signed_us))
            );
        }
        match &self.gateway_cpu {
            Some(cpu) => {
                let threads: Vec<String> = cpu
                    .by_thread
                    .iter()
                    .filter(|(_, d)| !d.is_zero())
                    .map(|(n, d)| format!("{n} {:.2} s", d.as_secs_f64()))
                    .collect();
                let _ = writeln!(
                    s,
                    "gateway CPU: {:.2} s for {} streams = {} s per 1,000 streams ({})",
                    cpu.total.as_secs_f64(),
                    v.ok,
                    opt(self.per_1000(cpu.total).map(|x| format!("{x:.3}"))),
                    if threads.is_empty() {
                        cpu.source.clone()
                    } else {
                        format!("{}; {}", threads.join(", "), cpu.source)
                    }
                );
            }
            None => {
                let _ = writeln!(s, "gateway CPU: — (give --gateway-pid with --gateway-url)");
            }
        }
        let _ = writeln!(
            s,
            "peak RSS (VmHWM): {} — {}",
            opt(self.peak_rss_kb.map(mb)),
            self.peak_rss_of
        );
        let m = &self.gateway_metrics;
        if let Some(written) = m.get("llm_gateway_audit_records_written_total") {
            let _ = writeln!(
                s,
                "audit store: {written} records written, {} spilled, {} dropped",
                m.get("llm_gateway_audit_records_spilled_total")
                    .copied()
                    .unwrap_or(0.0),
                m.get("llm_gateway_audit_records_dropped_total")
                    .copied()
                    .unwrap_or(0.0)
            );
        }
        if let Some(mean) = mean(m, "llm_gateway_overhead_seconds") {
            let _ = writeln!(
                s,
                "gateway's own overhead_seconds: mean {} over {} observations",
                us((mean * 1e6).round() as u64),
                m.get("llm_gateway_overhead_seconds_count")
                    .copied()
                    .unwrap_or(0.0)
            );
        }
        for (name, r) in [("direct", d), ("via gateway", Some(v))] {
            if let Some(r) = r {
                for e in &r.error_samples {
                    let _ = writeln!(s, "error ({name}): {e}");
                }
            }
        }
        s
    }

    fn hold_text(&self, s: &mut String, direct: Option<&HoldResult>, via: &HoldResult) {
        let _ = writeln!(
            s,
            "--hold-open {}: all streams open at once (at most {} being opened at a time), each held after its first delta\n",
            via.k, self.info.concurrency
        );
        let row = |s: &mut String, label: &str, a: String, b: String| {
            let _ = writeln!(s, "{label:<26}{a:>16}{b:>16}");
        };
        row(s, "", "direct".into(), "via gateway".into());
        let both = |f: &dyn Fn(&HoldResult) -> String| (opt(direct.map(f)), f(via));
        let (a, b) = both(&|r| format!("{}/{}", r.opened, r.k));
        row(s, "streams open", a, b);
        let (a, b) = both(&|r| format!("{:.2} s", r.open_secs));
        row(s, "time to open them all", a, b);
        let (a, b) = both(&|r| opt(r.rss_before_kb.map(mb)));
        row(s, "RSS before", a, b);
        let (a, b) = both(&|r| opt(r.rss_open_kb.map(mb)));
        row(s, "RSS with all open", a, b);
        let (a, b) = both(&|r| opt(r.added_kb().map(signed_mb)));
        row(s, "RSS added", a, b);
        let (a, b) = both(&|r| opt(r.per_1000_kb().map(|kb| format!("{:.2} MB", kb / 1024.0))));
        row(s, "  per 1,000 open streams", a, b);
        let (a, b) = both(&|r| {
            opt(r
                .fds_open
                .zip(r.fds_before)
                .map(|(o, b)| format!("+{}", o.saturating_sub(b))))
        });
        row(s, "open files added", a, b);
        let (a, b) = both(&|r| format!("{} / {}", r.completed, r.errors));
        row(s, "completed / errors", a, b);
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "RSS measured in: {}{}",
            direct.map_or(String::new(), |d| format!("{}; ", d.rss_of)),
            via.rss_of
        );
        if let Some(active) = via.active_streams {
            let _ = writeln!(
                s,
                "gateway's llm_gateway_active_streams while held: {active}"
            );
        }
        let share = match direct {
            Some(d) => via.per_1000_kb().zip(d.per_1000_kb()).map(|(v, d)| v - d),
            None if self.info.mode == "external" => via.per_1000_kb(),
            None => None,
        };
        let _ = writeln!(
            s,
            "gateway RSS per 1,000 open streams: {} ({})",
            opt(share.map(|kb| format!("{:.2} MB", kb / 1024.0))),
            if self.info.mode == "external" {
                "the gateway process's own RSS added / K × 1,000"
            } else {
                "RSS added via gateway − RSS added direct, per 1,000; each side in a fresh process"
            }
        );
        let _ = writeln!(
            s,
            "peak RSS (VmHWM) of the gateway side: {}",
            opt(self.peak_rss_kb.map(mb))
        );
        for r in direct.into_iter().chain(Some(via)) {
            for e in &r.error_samples {
                let _ = writeln!(s, "error ({}): {e}", r.side);
            }
        }
    }
}

/// The mean of a Prometheus histogram from its `_sum` and `_count`.
fn mean(m: &BTreeMap<String, f64>, name: &str) -> Option<f64> {
    let sum = m.get(&format!("{name}_sum"))?;
    let count = m.get(&format!("{name}_count"))?;
    (*count > 0.0).then(|| sum / count)
}
