//! The figures, as a table or as one JSON object.

use crate::drive::PhaseResult;
use crate::hist::Histogram;
use crate::pin::Pinning;
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
    /// Bytes of request 0's body (varying bodies differ by up to 1 KB).
    pub body_bytes: usize,
    /// The part every varying body shares; `None` when every body is the same.
    pub body_shared_bytes: Option<usize>,
    pub body_kind: String,
    pub hold_open: Option<usize>,
    /// The bare proxy is measured too.
    pub bare: bool,
    pub pinning: Option<Pinning>,
}

impl RunInfo {
    fn pinning_text(&self) -> String {
        match self.pinning {
            Some(p) if self.mode == "external" => format!(
                "pinned: bare proxy (its runtime and every thread it spawns) on CPU {}, client and \
                 mock on CPU {}; the external gateway is not pinned by this tool (taskset it)",
                p.proxy, p.client
            ),
            Some(p) => format!(
                "pinned: proxy under test (gateway or bare proxy: its runtime and every thread it \
                 spawns, audit-writer included) on CPU {}, client and mock on CPU {}",
                p.proxy, p.client
            ),
            None => "not pinned (--no-pin, or fewer than 2 CPUs)".into(),
        }
    }

    fn body_text(&self) -> String {
        match self.body_shared_bytes {
            Some(shared) => format!(
                "request body ~{} bytes ({shared} shared, plus a 1–2 KB final user message unique to each request)",
                self.body_bytes
            ),
            None => format!(
                "request body {} bytes ({}, identical every request)",
                self.body_bytes, self.body_kind
            ),
        }
    }
}

/// `--hold-open`: each side's result.
pub struct Hold {
    pub direct: Option<HoldResult>,
    pub bare: Option<HoldResult>,
    pub gateway: HoldResult,
}

impl Hold {
    /// kB per 1,000 open streams a proxy side adds over direct (external gateway: its
    /// own RSS added).
    fn share(&self, side: &HoldResult, external: bool) -> Option<f64> {
        match &self.direct {
            Some(d) if !(external && side.side == "gateway") => {
                side.per_1000_kb().zip(d.per_1000_kb()).map(|(v, d)| v - d)
            }
            _ if external && side.side == "gateway" => side.per_1000_kb(),
            _ => None,
        }
    }
}

/// `--duration-secs`: the gateway's RSS sampled through its phase.
pub struct RssSoak {
    /// Whose RSS.
    pub of: String,
    pub every_secs: u64,
    /// (seconds since the measured phase began, kB); the first right after the
    /// warm-up, the last at the end.
    pub samples: Vec<(f64, u64)>,
}

impl RssSoak {
    fn after_warmup(&self) -> Option<u64> {
        self.samples.first().map(|s| s.1)
    }

    fn end(&self) -> Option<u64> {
        self.samples.last().map(|s| s.1)
    }

    fn max(&self) -> Option<u64> {
        self.samples.iter().map(|s| s.1).max()
    }

    /// The first sample at or after 1/5 of the run (not the last one), and the growth
    /// from it to the last: what the warm-up's caches and pools no longer explain.
    fn growth(&self) -> Option<((f64, u64), i64)> {
        let (&last, rest) = self.samples.split_last()?;
        let fifth = last.0 / 5.0;
        let from = *rest.iter().find(|s| s.0 >= fifth)?;
        Some((from, last.1 as i64 - from.1 as i64))
    }
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
    pub bare: Option<PhaseResult>,
    pub via: PhaseResult,
    pub gateway_cpu: Option<CpuFigure>,
    pub bare_cpu: Option<CpuFigure>,
    pub process_cpu_direct: Option<Duration>,
    pub process_cpu_bare: Option<Duration>,
    pub process_cpu_via: Option<Duration>,
    pub peak_rss_kb: Option<u64>,
    pub peak_rss_of: String,
    pub gateway_metrics: BTreeMap<String, f64>,
    pub rss_soak: Option<RssSoak>,
    pub hold: Option<Hold>,
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
        let bad = |r: &HoldResult| r.opened < r.k as u64 || r.errors > 0;
        match &self.hold {
            Some(h) => {
                bad(&h.gateway)
                    || h.direct.as_ref().is_some_and(bad)
                    || h.bare.as_ref().is_some_and(bad)
            }
            None => {
                self.via.ok == 0
                    || self.via.errors > 0
                    || self.direct.as_ref().is_some_and(|d| d.errors > 0)
                    || self
                        .bare
                        .as_ref()
                        .is_some_and(|b| b.ok == 0 || b.errors > 0)
            }
        }
    }

    /// Seconds of CPU per 1,000 streams of `phase`.
    fn per_1000(phase: &PhaseResult, d: Duration) -> Option<f64> {
        (phase.ok > 0).then(|| d.as_secs_f64() * 1000.0 / phase.ok as f64)
    }

    /// Gateway streams/s as a percentage of the bare proxy's.
    fn gateway_of_bare_pct(&self) -> Option<f64> {
        let bare = self.bare.as_ref()?.streams_per_sec();
        (bare > 0.0).then(|| 100.0 * self.via.streams_per_sec() / bare)
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
                "request_body_shared_bytes": info.body_shared_bytes,
                "request_body_kind": info.body_kind,
                "hold_open": info.hold_open,
                "bare_proxy": info.bare,
                "pinning": info.pinning.map(|p| json!({"proxy_cpu": p.proxy, "client_cpu": p.client})),
                "pinning_text": info.pinning_text(),
            },
            "peak_rss_kb": self.peak_rss_kb,
            "peak_rss_of": self.peak_rss_of,
            "failed": self.failed(),
        });
        if let Some(h) = &self.hold {
            let external = info.mode == "external";
            out["hold_open"] = json!({
                "direct": h.direct,
                "bare": h.bare,
                "gateway": h.gateway,
                "direct_rss_kb_per_1000_streams": h.direct.as_ref().and_then(HoldResult::per_1000_kb),
                "bare_side_rss_kb_per_1000_streams": h.bare.as_ref().and_then(HoldResult::per_1000_kb),
                "gateway_side_rss_kb_per_1000_streams": h.gateway.per_1000_kb(),
                "bare_rss_kb_per_1000_open_streams": h.bare.as_ref().and_then(|b| h.share(b, external)),
                "gateway_rss_kb_per_1000_open_streams": h.share(&h.gateway, external),
                "definition": "in-process: (RSS added holding K through the proxy − RSS added holding K direct) / K × 1000, each side in a fresh child process; external gateway: the gateway pid's RSS added / K × 1000",
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
        let added = |via: &PhaseResult, base: &PhaseResult, what: &str| {
            let mut added = serde_json::Map::new();
            for p in PERCENTILES {
                added.insert(
                    format!("time_to_first_event_p{p}_us"),
                    json!(diff(via.ttfe.percentile(p), base.ttfe.percentile(p))),
                );
                added.insert(
                    format!("inter_event_gap_p{p}_us"),
                    json!(diff(via.gaps.percentile(p), base.gaps.percentile(p))),
                );
            }
            added.insert(
                "jitter_added_us".into(),
                json!(diff(via.gaps.percentile(99.0), base.gaps.percentile(99.0))),
            );
            added.insert(
                "jitter_definition".into(),
                json!(format!("p99 of inter-event gaps {what}; a gap is the time between the arrivals of consecutive events of one stream, from its first content_block_delta to message_stop")),
            );
            Value::Object(added)
        };
        out["via_gateway"] = phase(&self.via, self.process_cpu_via);
        if let Some(b) = &self.bare {
            out["via_bare_proxy"] = phase(b, self.process_cpu_bare);
        }
        if let Some(d) = &self.direct {
            out["direct"] = phase(d, self.process_cpu_direct);
            out["added"] = added(&self.via, d, "via gateway − direct");
            if let Some(b) = &self.bare {
                out["added_bare"] = added(b, d, "via bare proxy − direct");
            }
        }
        if let Some(b) = &self.bare {
            let mut vs = added(&self.via, b, "via gateway − via bare proxy");
            vs["throughput_pct_of_bare"] = json!(self.gateway_of_bare_pct());
            out["gateway_vs_bare"] = vs;
        }
        let cpu_json = |cpu: &CpuFigure, phase: &PhaseResult| {
            json!({
                "secs": cpu.total.as_secs_f64(),
                "secs_per_1000_streams": Self::per_1000(phase, cpu.total),
                "by_thread_secs": cpu.by_thread.iter().map(|(n, d)| (n.clone(), json!(d.as_secs_f64()))).collect::<serde_json::Map<_, _>>(),
                "source": cpu.source,
            })
        };
        if let Some(cpu) = &self.gateway_cpu {
            out["gateway_cpu"] = cpu_json(cpu, &self.via);
        }
        if let (Some(cpu), Some(b)) = (&self.bare_cpu, &self.bare) {
            out["bare_proxy_cpu"] = cpu_json(cpu, b);
        }
        if let Some(soak) = &self.rss_soak {
            let growth = soak.growth();
            out["rss_soak"] = json!({
                "of": soak.of,
                "every_secs": soak.every_secs,
                "samples": soak.samples.iter().map(|(t, kb)| json!({"secs": (t * 10.0).round() / 10.0, "rss_kb": kb})).collect::<Vec<_>>(),
                "after_warmup_kb": soak.after_warmup(),
                "end_kb": soak.end(),
                "max_kb": soak.max(),
                "growth_from_secs": growth.map(|((t, _), _)| t),
                "growth_kb": growth.map(|(_, g)| g),
                "growth_definition": "last sample − the first sample at or after 1/5 of the run",
            });
        }
        if !self.gateway_metrics.is_empty() {
            let m = &self.gateway_metrics;
            out["gateway_metrics"] = json!({
                "audit_records_written": m.get("llm_gateway_audit_records_written_total"),
                "audit_bodies_shed": m.get("llm_gateway_audit_bodies_shed_total"),
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
        let bare =
            match (i.bare, i.mode.as_str()) {
                (false, _) => String::new(),
                (true, "external") => format!(
                "; bare hyper proxy in this process (even with --gateway-url; {} worker thread{})",
                i.gateway_threads.unwrap_or(1),
                if i.gateway_threads.unwrap_or(1) == 1 { "" } else { "s" }
            ),
                (true, _) => "; bare hyper proxy on a runtime like the gateway's".into(),
            };
        let pacing = if i.event_interval_ms == 0 {
            "unpaced".to_owned()
        } else {
            format!("one event every {} ms", i.event_interval_ms)
        };
        let _ = writeln!(
            s,
            "llm-gateway load test: {gateway}{bare}; client and mock on {} thread{}",
            i.client_threads,
            if i.client_threads == 1 { "" } else { "s" }
        );
        let _ = writeln!(s, "{}", i.pinning_text());
        if let Some(hold) = &self.hold {
            self.hold_text(&mut s, hold);
            return s;
        }
        let count = match i.duration_secs {
            Some(d) => format!("{d} s (at most {} streams)", i.requests),
            None => format!("{} streams", i.requests),
        };
        let _ = writeln!(
            s,
            "{count} per target at concurrency {}, {} text deltas a stream, {pacing}; {}; warm-up {} streams a target\n",
            i.concurrency, i.events, i.body_text(), i.warmup
        );
        let d = self.direct.as_ref();
        let b = self.bare.as_ref();
        let v = &self.via;
        let row = |s: &mut String, label: &str, cells: [String; 5]| {
            let [c1, c2, c3, c4, c5] = cells;
            let _ = writeln!(s, "{label:<26}{c1:>13}{c2:>13}{c3:>13}{c4:>13}{c5:>13}");
        };
        row(
            &mut s,
            "",
            [
                "direct".into(),
                "bare proxy".into(),
                "via gateway".into(),
                "bare added".into(),
                "gw added".into(),
            ],
        );
        let plain = |s: &mut String, label: &str, f: &dyn Fn(&PhaseResult) -> String| {
            row(
                s,
                label,
                [
                    opt(d.map(f)),
                    opt(b.map(f)),
                    f(v),
                    String::new(),
                    String::new(),
                ],
            );
        };
        plain(&mut s, "streams/s", &|r| {
            format!("{:.1}", r.streams_per_sec())
        });
        plain(&mut s, "  overall (ramp, tail)", &|r| {
            format!("{:.1}", r.overall_streams_per_sec())
        });
        let triple = |s: &mut String, label: &str, get: &dyn Fn(&PhaseResult) -> Option<u64>| {
            let (a, bb, c) = (d.and_then(get), b.and_then(get), get(v));
            row(
                s,
                label,
                [
                    opt(a.map(us)),
                    opt(bb.map(us)),
                    opt(c.map(us)),
                    opt(diff(bb, a).map(signed_us)),
                    opt(diff(c, a).map(signed_us)),
                ],
            );
        };
        let hist_rows = |s: &mut String, name: &str, get: &dyn Fn(&PhaseResult) -> &Histogram| {
            for p in PERCENTILES {
                let label = if p == 50.0 {
                    format!("{name} p50")
                } else {
                    format!("{:>width$} p{p}", "", width = name.len())
                };
                triple(s, &label, &|r| get(r).percentile(p));
            }
        };
        hist_rows(&mut s, "time to first event", &|r| &r.ttfe);
        hist_rows(&mut s, "inter-event gap", &|r| &r.gaps);
        triple(&mut s, "whole stream p50", &|r| r.whole.percentile(50.0));
        triple(&mut s, "                 p99", &|r| {
            r.whole.percentile(99.0)
        });
        plain(&mut s, "streams ok / errors", &|r| {
            format!("{} / {}", r.ok, r.errors)
        });
        let secs = |c: Option<Duration>| opt(c.map(|c| format!("{:.2} s", c.as_secs_f64())));
        row(
            &mut s,
            "process CPU",
            [
                secs(self.process_cpu_direct),
                secs(self.process_cpu_bare),
                secs(self.process_cpu_via),
                String::new(),
                String::new(),
            ],
        );
        let per_1000 = |cpu: Option<&CpuFigure>, r: Option<&PhaseResult>| {
            opt(cpu
                .zip(r)
                .and_then(|(c, r)| Self::per_1000(r, c.total))
                .map(|x| format!("{x:.3} s")))
        };
        row(
            &mut s,
            "proxy CPU / 1,000 streams",
            [
                "—".into(),
                per_1000(self.bare_cpu.as_ref(), b),
                per_1000(self.gateway_cpu.as_ref(), Some(v)),
                String::new(),
                String::new(),
            ],
        );
        let _ = writeln!(s);
        if let Some(d) = d {
            let jitter = |r: &PhaseResult| diff(r.gaps.percentile(99.0), d.gaps.percentile(99.0));
            let _ = writeln!(
                s,
                "jitter added: gateway {}{} (p99 inter-event gap via the proxy − direct; gaps from each stream's first delta to message_stop)",
                opt(jitter(v).map(signed_us)),
                b.map_or(String::new(), |b| format!(", bare proxy {}", opt(jitter(b).map(signed_us)))),
            );
        }
        if let Some(b) = b {
            let ttfe: Vec<String> = PERCENTILES
                .iter()
                .map(|&p| {
                    format!(
                        "p{p} {}",
                        opt(diff(v.ttfe.percentile(p), b.ttfe.percentile(p)).map(signed_us))
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                "gateway vs bare proxy: throughput {} of the bare proxy's (streams/s); gateway − bare added latency: time to first event {}, inter-event gap p99 {}",
                opt(self.gateway_of_bare_pct().map(|p| format!("{p:.1} %"))),
                ttfe.join(", "),
                opt(diff(v.gaps.percentile(99.0), b.gaps.percentile(99.0)).map(signed_us)),
            );
        }
        let cpu_line = |s: &mut String, name: &str, cpu: &CpuFigure, r: &PhaseResult| {
            let threads: Vec<String> = cpu
                .by_thread
                .iter()
                .filter(|(_, d)| !d.is_zero())
                .map(|(n, d)| format!("{n} {:.2} s", d.as_secs_f64()))
                .collect();
            let _ = writeln!(
                s,
                "{name} CPU: {:.2} s for {} streams = {} s per 1,000 streams ({})",
                cpu.total.as_secs_f64(),
                r.ok,
                opt(Self::per_1000(r, cpu.total).map(|x| format!("{x:.3}"))),
                if threads.is_empty() {
                    cpu.source.clone()
                } else {
                    format!("{}; {}", threads.join(", "), cpu.source)
                }
            );
        };
        if let (Some(cpu), Some(b)) = (&self.bare_cpu, b) {
            cpu_line(&mut s, "bare proxy", cpu, b);
        }
        match &self.gateway_cpu {
            Some(cpu) => cpu_line(&mut s, "gateway", cpu, v),
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
        if let Some(soak) = &self.rss_soak {
            let samples: Vec<String> = soak
                .samples
                .iter()
                .map(|(t, kb)| format!("{t:.0} s {:.1}", *kb as f64 / 1024.0))
                .collect();
            let growth = soak.growth();
            let _ = writeln!(
                s,
                "RSS during the gateway phase (every {} s; MB): {}",
                soak.every_secs,
                samples.join(", ")
            );
            let _ = writeln!(
                s,
                "  after warm-up {}, at the end {}, max {}; growth from {} to the end: {} — RSS of {}",
                opt(soak.after_warmup().map(mb)),
                opt(soak.end().map(mb)),
                opt(soak.max().map(mb)),
                opt(growth.map(|((t, _), _)| format!("the {t:.0} s sample (1/5 of the run)"))),
                opt(growth.map(|(_, g)| signed_mb(g))),
                soak.of
            );
        }
        let m = &self.gateway_metrics;
        if let Some(written) = m.get("llm_gateway_audit_records_written_total") {
            let _ = writeln!(
                s,
                "audit store: {written} records written, {} bodies shed, {} dropped",
                m.get("llm_gateway_audit_bodies_shed_total")
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
        for (name, r) in [("direct", d), ("bare proxy", b), ("via gateway", Some(v))] {
            if let Some(r) = r {
                for e in &r.error_samples {
                    let _ = writeln!(s, "error ({name}): {e}");
                }
            }
        }
        s
    }

    fn hold_text(&self, s: &mut String, hold: &Hold) {
        let via = &hold.gateway;
        let _ = writeln!(
            s,
            "--hold-open {}: all streams open at once (at most {} being opened at a time), each held after its first delta; {}\n",
            via.k,
            self.info.concurrency,
            self.info.body_text()
        );
        let row = |s: &mut String, label: &str, a: String, b: String, c: String| {
            let _ = writeln!(s, "{label:<26}{a:>16}{b:>16}{c:>16}");
        };
        row(
            s,
            "",
            "direct".into(),
            "bare proxy".into(),
            "via gateway".into(),
        );
        let (direct, bare) = (hold.direct.as_ref(), hold.bare.as_ref());
        let all = |s: &mut String, label: &str, f: &dyn Fn(&HoldResult) -> String| {
            row(s, label, opt(direct.map(f)), opt(bare.map(f)), f(via));
        };
        all(s, "streams open", &|r| format!("{}/{}", r.opened, r.k));
        all(s, "time to open them all", &|r| {
            format!("{:.2} s", r.open_secs)
        });
        all(s, "RSS before", &|r| opt(r.rss_before_kb.map(mb)));
        all(s, "RSS with all open", &|r| opt(r.rss_open_kb.map(mb)));
        all(s, "RSS added", &|r| opt(r.added_kb().map(signed_mb)));
        all(s, "  per 1,000 open streams", &|r| {
            opt(r.per_1000_kb().map(|kb| format!("{:.2} MB", kb / 1024.0)))
        });
        all(s, "open files added", &|r| {
            opt(r
                .fds_open
                .zip(r.fds_before)
                .map(|(o, b)| format!("+{}", o.saturating_sub(b))))
        });
        all(s, "completed / errors", &|r| {
            format!("{} / {}", r.completed, r.errors)
        });
        let _ = writeln!(s);
        let measured: Vec<&str> = direct
            .into_iter()
            .chain(bare)
            .chain(Some(via))
            .map(|r| r.rss_of.as_str())
            .collect();
        let _ = writeln!(s, "RSS measured in: {}", measured.join("; "));
        if let Some(active) = via.active_streams {
            let _ = writeln!(
                s,
                "gateway's llm_gateway_active_streams while held: {active}"
            );
        }
        let external = self.info.mode == "external";
        let per = |kb: f64| format!("{:.2} MB ({:.1} KB per stream)", kb / 1024.0, kb / 1000.0);
        if let Some(b) = bare {
            let _ = writeln!(
                s,
                "bare proxy RSS per 1,000 open streams: {} (RSS added via bare proxy − RSS added direct, per 1,000; each side in a fresh process)",
                opt(hold.share(b, external).map(per)),
            );
        }
        let _ = writeln!(
            s,
            "gateway RSS per 1,000 open streams: {} ({})",
            opt(hold.share(via, external).map(per)),
            if external {
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
        for r in direct.into_iter().chain(bare).chain(Some(via)) {
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
