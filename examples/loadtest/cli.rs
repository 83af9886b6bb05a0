//! The command line: the flags, their bounds, and the checks made before anything
//! starts (every run is bounded in count and time, and touches only loopback).

use crate::drive::Plan;
use crate::pin::{self, Pinning};
use crate::procfs;
use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::time::Duration;

pub const DEFAULT_REQUESTS: u64 = 2_000;
pub const MAX_REQUESTS: u64 = 1_000_000;
pub const MAX_PHASE: Duration = Duration::from_secs(600);
pub const MAX_CONCURRENCY: usize = 10_000;
pub const MAX_HOLD: usize = 20_000;

#[derive(Parser, Clone, Debug)]
#[command(
    name = "loadtest",
    about = "Load-test llm-gateway on loopback against its own mock upstream",
    after_help = "Targets, one after the other in the same run: direct (client → mock), bare proxy \
        (a minimal hyper byte-forwarding proxy on a runtime like the gateway's, in this process even \
        with --gateway-url; --no-bare skips it), via gateway. Pinning (default with ≥2 CPUs; \
        --no-pin): the proxy under test and every thread it spawns on --proxy-cpu, client and mock \
        on --client-cpu. Body: ~100 KB shared Claude Code prefix + a final user message unique to \
        each request (--body same: identical bodies). \
        Figures: streams/s = streams completed while all workers were busy / that time. \
        Time to first event = request sent → first complete content_block_delta \
        received (direct measured the same way); added = proxy − direct. Inter-event gap = time \
        between consecutive events of a stream from its first content_block_delta to message_stop, \
        as received; jitter added = p99(gaps via the proxy) − p99(gaps direct). Gateway vs bare = \
        gateway streams/s as % of the bare proxy's, and gateway − bare latency. CPU per 1,000 \
        streams = the proxy's threads' utime+stime over its phase / streams × 1,000. RSS per \
        1,000 open streams (--hold-open) = (RSS added holding K streams via the proxy − the same \
        direct) / K × 1,000, each side in a child process. --duration-secs: RSS of the gateway \
        (in-process: of this whole process) sampled every --rss-every-secs; growth = last sample − \
        the first at or after 1/5 of the run. \
        See the top of examples/loadtest/main.rs for details."
)]
pub struct Cli {
    /// Streams open at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Streams per target (direct, bare proxy, gateway), warm-up not counted [default: 2000;
    /// with --duration-secs, a cap of 1,000,000].
    #[arg(long)]
    pub requests: Option<u64>,
    /// Run each target this long instead (at most 600); --requests still caps it.
    #[arg(long)]
    pub duration_secs: Option<u64>,
    /// Text deltas in each answer (plus message_start, content_block_start, ping,
    /// content_block_stop, message_delta, message_stop).
    #[arg(long, default_value_t = 20)]
    pub events: usize,
    /// Time between consecutive events of an answer, ms (0 = unpaced: as fast as the
    /// socket takes them).
    #[arg(long, default_value_t = 0)]
    pub event_interval_ms: u64,
    /// The request body: the synthetic Claude Code request (~100 KB shared by every
    /// request) with a final user message unique to each request (1–2 KB); `same`: that
    /// request without the unique message, identical every time; or a minimal
    /// one-message request (~150 bytes) to see what is per-byte and what per-stream.
    #[arg(long, value_enum, default_value_t = BodyKind::ClaudeCode)]
    pub body: BodyKind,
    /// Instead of the streaming run: hold K streams open at once and measure RSS
    /// (direct, via the bare proxy and via an in-process gateway each in a fresh child
    /// process).
    #[arg(long, value_name = "K")]
    pub hold_open: Option<usize>,
    /// In-process gateway: [audit] enabled, the SQLite store in a temporary directory
    /// removed at the end.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub audit: OnOff,
    /// In-process gateway: [audit] log_request_bodies and log_response_bodies. The
    /// gateway's default is on, and it applies even with --audit off.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub audit_bodies: OnOff,
    /// Drive this running gateway (loopback only) instead of one in this process. Its
    /// `anthropic` provider must point at --mock-addr.
    #[arg(long)]
    pub gateway_url: Option<String>,
    /// With --gateway-url: the gateway's pid, to read its CPU and memory from /proc.
    #[arg(long)]
    pub gateway_pid: Option<u32>,
    /// Where the mock upstream listens (loopback only; port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub mock_addr: SocketAddr,
    /// Skip the direct-to-mock baseline.
    #[arg(long)]
    pub no_direct: bool,
    /// Skip the bare hyper proxy (measured between direct and the gateway; in-process
    /// even with --gateway-url).
    #[arg(long)]
    pub no_bare: bool,
    /// Pin the proxy under test (its runtime and every thread it spawns) to
    /// --proxy-cpu and the client and mock to --client-cpu [default: on when this
    /// process may run on 2 CPUs or more].
    #[arg(long, overrides_with = "no_pin")]
    pub pin: bool,
    /// Do not pin threads to CPUs.
    #[arg(long, overrides_with = "pin")]
    pub no_pin: bool,
    /// With pinning: the CPU of the proxy under test [default: the first CPU this
    /// process may run on].
    #[arg(long)]
    pub proxy_cpu: Option<usize>,
    /// With pinning: the CPU of the client and the mock [default: the second].
    #[arg(long)]
    pub client_cpu: Option<usize>,
    /// With --duration-secs: read the gateway's RSS this often during its phase, seconds.
    #[arg(long, default_value_t = 30)]
    pub rss_every_secs: u64,
    /// In-process gateway and bare proxy: worker threads of each one's tokio runtime.
    #[arg(long, default_value_t = 1)]
    pub gateway_threads: usize,
    /// Worker threads of the runtime that runs the client and the mock.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Streams run before each measured phase and not counted [default: the concurrency].
    #[arg(long)]
    pub warmup: Option<u64>,
    /// Longest one stream may take, seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Internal: run one side of --hold-open in this (child) process.
    #[arg(long, value_enum, hide = true)]
    pub hold_child: Option<Side>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BodyKind {
    ClaudeCode,
    Same,
    Minimal,
}

impl BodyKind {
    pub fn name(self) -> &'static str {
        match self {
            BodyKind::ClaudeCode => "claude-code",
            BodyKind::Same => "same",
            BodyKind::Minimal => "minimal",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Side {
    Direct,
    Bare,
    Gateway,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Direct => "direct",
            Side::Bare => "bare",
            Side::Gateway => "gateway",
        }
    }
}

impl Cli {
    pub fn requests(&self) -> u64 {
        self.requests.unwrap_or(if self.duration_secs.is_some() {
            MAX_REQUESTS
        } else {
            DEFAULT_REQUESTS
        })
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.event_interval_ms)
    }

    pub fn warmup(&self) -> u64 {
        self.warmup
            .unwrap_or(self.concurrency as u64)
            .min(self.requests())
    }

    pub fn plan(&self, requests: u64) -> Plan {
        Plan {
            requests,
            duration: Some(self.duration_secs.map_or(MAX_PHASE, Duration::from_secs)),
            concurrency: self.concurrency,
            timeout: Duration::from_secs(self.timeout_secs),
            events: self.events,
            ramp: self.interval() * (self.events as u32 + 5),
        }
    }

    /// Where to pin threads, if at all: on by default with two CPUs or more.
    pub fn pinning(&self) -> Result<Option<Pinning>, String> {
        if self.no_pin {
            return Ok(None);
        }
        let cpus = pin::available();
        let proxy = self.proxy_cpu.or_else(|| cpus.first().copied());
        let client = self
            .client_cpu
            .or_else(|| cpus.iter().copied().find(|&c| Some(c) != proxy));
        match (proxy, client) {
            (Some(proxy), Some(client)) if proxy != client && (self.pin || cpus.len() >= 2) => {
                Ok(Some(Pinning { proxy, client }))
            }
            _ if self.pin => Err(format!(
                "--pin needs two distinct CPUs (this process may run on {cpus:?}); \
                 give --proxy-cpu and --client-cpu, or --no-pin"
            )),
            _ => Ok(None),
        }
    }

    /// Refuse anything unbounded or off loopback before starting.
    pub fn check(&self) -> Result<(), String> {
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(format!("--concurrency must be 1..={MAX_CONCURRENCY}"));
        }
        if self.requests() == 0 || self.requests() > MAX_REQUESTS {
            return Err(format!("--requests must be 1..={MAX_REQUESTS}"));
        }
        if let Some(d) = self.duration_secs {
            if d == 0 || d > MAX_PHASE.as_secs() {
                return Err(format!(
                    "--duration-secs must be 1..={}",
                    MAX_PHASE.as_secs()
                ));
            }
        }
        if self.events == 0 || self.events > 10_000 {
            return Err("--events must be 1..=10000".into());
        }
        if self.event_interval_ms > 10_000 {
            return Err("--event-interval-ms must be at most 10000".into());
        }
        if self.timeout_secs == 0 || self.timeout_secs > 600 {
            return Err("--timeout-secs must be 1..=600".into());
        }
        if self.gateway_threads == 0 || self.gateway_threads > 64 {
            return Err("--gateway-threads must be 1..=64".into());
        }
        if self.client_threads == 0 || self.client_threads > 64 {
            return Err("--client-threads must be 1..=64".into());
        }
        if self.rss_every_secs == 0 || self.rss_every_secs > MAX_PHASE.as_secs() {
            return Err(format!(
                "--rss-every-secs must be 1..={}",
                MAX_PHASE.as_secs()
            ));
        }
        if !self.mock_addr.ip().is_loopback() {
            return Err(format!("--mock-addr {} is not loopback", self.mock_addr));
        }
        // One stream lasts about (events + 5) intervals; a count-bounded run must end.
        let per_stream = self.interval() * (self.events as u32 + 5);
        let waves = self.requests().div_ceil(self.concurrency as u64);
        if self.duration_secs.is_none()
            && per_stream * waves.min(u32::MAX as u64) as u32 > MAX_PHASE
        {
            return Err(format!(
                "{} streams of ~{:?} at concurrency {} would take over {} s a phase: \
                 use --duration-secs, fewer --requests or more --concurrency",
                self.requests(),
                per_stream,
                self.concurrency,
                MAX_PHASE.as_secs()
            ));
        }
        if per_stream > Duration::from_secs(self.timeout_secs) {
            return Err(format!(
                "one stream takes ~{per_stream:?}, longer than --timeout-secs {}",
                self.timeout_secs
            ));
        }
        if let Some(url) = &self.gateway_url {
            check_loopback_url(url)?;
            if self.mock_addr.port() == 0 {
                return Err(
                    "with --gateway-url, give --mock-addr 127.0.0.1:PORT: the gateway's \
                    anthropic provider must have base_url = \"http://127.0.0.1:PORT\""
                        .into(),
                );
            }
        } else if self.gateway_pid.is_some() {
            return Err("--gateway-pid goes with --gateway-url".into());
        }
        if let Some(k) = self.hold_open {
            if k == 0 || k > MAX_HOLD {
                return Err(format!("--hold-open must be 1..={MAX_HOLD}"));
            }
            // In-process via gateway: client, gateway in and out, mock: 4 sockets a stream.
            let per_stream = if self.gateway_url.is_some() { 2 } else { 4 };
            let needed = (k as u64) * per_stream + 256;
            let limit = procfs::open_files_limit().unwrap_or(1024);
            if needed > limit {
                return Err(format!(
                    "--hold-open {k} needs about {needed} open files; the limit is {limit} (ulimit -n)"
                ));
            }
        }
        Ok(())
    }
}

fn check_loopback_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--gateway-url {url}: only http:// on loopback"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!("--gateway-url {url}: the host must be loopback"))
    }
}
