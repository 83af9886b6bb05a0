//! Run with
//!
//! ```sh
//! cargo run --release --example loadtest -- --concurrency 32 --requests 2000
//! ```
//!
//! A load test of the gateway on loopback. It starts its own mock Anthropic upstream on
//! `127.0.0.1`, runs the whole gateway stack in this process (the default, on a tokio
//! runtime of its own: `--gateway-threads`, default 1) or drives a running gateway
//! (`--gateway-url`, which must point its `anthropic` provider at `--mock-addr`), and
//! sends streaming `/v1/messages` requests at a fixed concurrency: a synthetic ~100 KB
//! Claude-Code-shaped body (24 tools, long system blocks with `cache_control`), answered
//! with `--events` text deltas, unpaced or `--event-interval-ms` apart. The same streams
//! are then run straight against the mock, for the baseline (`--no-direct` skips it).
//! Every run is bounded in count and time, and only touches 127.0.0.1.
//!
//! ```sh
//! cargo run --release --example loadtest -- --concurrency 1 --requests 500
//! cargo run --release --example loadtest -- --concurrency 200 --requests 400 --event-interval-ms 20
//! cargo run --release --example loadtest -- --hold-open 2000          # RSS per open stream
//! cargo run --release --example loadtest -- --audit off --json        # one JSON object on stdout
//! # a gateway process of its own, pinned to one core:
//! taskset -c 0 cargo run --release --example gateway -- --config lt.toml --listen 127.0.0.1:8788 &
//! #   (lt.toml: [providers.anthropic] kind = "anthropic", base_url = "http://127.0.0.1:8789")
//! cargo run --release --example loadtest -- --gateway-url http://127.0.0.1:8788 \
//!     --mock-addr 127.0.0.1:8789 --gateway-pid $(pgrep -n gateway)
//! ```
//!
//! # What it prints
//!
//! Each figure is given direct (client → mock) and via the gateway (client → gateway →
//! mock), with the difference, measured in the same run one after the other (direct
//! first), each after a warm-up of `--warmup` streams (default: the concurrency) that
//! is not counted.
//!
//! - **streams/s** — streams read to their end without error per second while all
//!   `--concurrency` workers were busy (from the last worker's first request to the
//!   first worker finding no more to do), so the ramp and the tail do not count; when
//!   that window is too short (fewer than 10 streams or 50 ms) it is streams over the
//!   phase's wall time, which the JSON also gives (`overall_streams_per_sec`). Paced,
//!   worker `i` of `n` starts `i/n` of one stream's length late, so streams do not
//!   start and end in lockstep waves.
//! - **time to first event** p50/p90/p99 — from sending the request to the arrival of
//!   the chunk that completes the first `content_block_delta` event. Through the gateway
//!   nothing reaches the client before the upstream's first content event (its commit
//!   point holds `message_start`/`ping`), so the direct figure is measured the same way:
//!   until the first delta, not the first byte. `added` is via − direct at each
//!   percentile: the latency the gateway adds.
//! - **inter-event gap** p50/p90/p99 — for each stream, the time between the arrivals
//!   of consecutive events from its first `content_block_delta` to its `message_stop`
//!   (`events + 2` gaps a stream; events that arrive in the same read have a gap of 0).
//!   Paced, the gaps sit around the interval; unpaced, they show how the events are
//!   batched into reads. **jitter added** is `p99(gaps via gateway) − p99(gaps direct)`
//!   (the `added` column shows the same difference at p50 and p90): how much later than
//!   the upstream's own rhythm the slowest 1 % of events reach the client.
//! - **whole stream** p50/p99 — request sent to the end of the stream.
//! - **gateway CPU** — in-process: `utime + stime` of the gateway's own threads (its
//!   runtime's workers, recorded by thread id at start via `/proc/thread-self`, and every
//!   other thread that is not the client's, such as `audit-writer`), read from
//!   `/proc/self/task/TID/stat` around the gateway phase, as seconds per 1,000 streams.
//!   With `--gateway-url` and `--gateway-pid PID`, the whole process from
//!   `/proc/PID/stat`. Clock ticks are 10 ms: trust it from about a second of CPU up.
//! - **process CPU** — this process during each phase (client and mock, plus the
//!   gateway when in-process).
//! - **peak RSS** — `VmHWM` of this process (client, mock and in-process gateway
//!   together), or of `--gateway-pid`.
//! - **audit** — records the gateway's audit store wrote, spilled and dropped (from its
//!   `/metrics`), and the gateway's own `overhead_seconds` mean.
//! - **`--hold-open K`** (a mode of its own) — K streams opened at once (at most
//!   `--concurrency` being opened at a time); the mock sends `message_start` and the
//!   first delta, then stays silent until all K are open and RSS (`VmRSS`) is read, then
//!   releases them. In-process, direct and via-gateway each run in a fresh child process
//!   of this binary, so freed memory of one cannot hide the other's: the gateway's share
//!   is `(RSS added via gateway − RSS added direct) / K × 1,000` per 1,000 open streams
//!   (its accepted and upstream connections, and each stream's state). With
//!   `--gateway-url`, the gateway's RSS is read from `--gateway-pid` directly; start a
//!   fresh gateway for it, as memory freed by earlier runs is reused and hides part of
//!   the cost.

mod body;
mod drive;
mod hist;
mod inproc;
mod mock;
mod procfs;
mod report;

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use drive::{Plan, Progress};
use report::{CpuFigure, HoldResult, Report, RunInfo};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEFAULT_REQUESTS: u64 = 2_000;
const MAX_REQUESTS: u64 = 1_000_000;
const MAX_PHASE: Duration = Duration::from_secs(600);
const MAX_CONCURRENCY: usize = 10_000;
const MAX_HOLD: usize = 20_000;
const MODEL: &str = "claude-sonnet-4-5-20250929";

#[derive(Parser, Clone, Debug)]
#[command(
    name = "loadtest",
    about = "Load-test llm-gateway on loopback against its own mock upstream",
    after_help = "Figures: streams/s = streams completed while all workers were busy / that time. \
        Time to first event = request sent → first complete content_block_delta \
        received (direct measured the same way). Inter-event gap = time between consecutive events \
        of a stream from its first content_block_delta to message_stop, as received; jitter added = \
        p99(gaps via gateway) − p99(gaps direct). CPU per 1,000 streams = gateway threads' \
        utime+stime over the gateway phase / streams × 1,000. RSS per 1,000 open streams \
        (--hold-open) = (RSS added holding K streams via gateway − the same direct) / K × 1,000. \
        See the top of examples/loadtest/main.rs for details."
)]
struct Cli {
    /// Streams open at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Streams per target (direct and via gateway), warm-up not counted [default: 2000;
    /// with --duration-secs, a cap of 1,000,000].
    #[arg(long)]
    requests: Option<u64>,
    /// Run each target this long instead (at most 600); --requests still caps it.
    #[arg(long)]
    duration_secs: Option<u64>,
    /// Text deltas in each answer (plus message_start, content_block_start, ping,
    /// content_block_stop, message_delta, message_stop).
    #[arg(long, default_value_t = 20)]
    events: usize,
    /// Time between consecutive events of an answer, ms (0 = unpaced: as fast as the
    /// socket takes them).
    #[arg(long, default_value_t = 0)]
    event_interval_ms: u64,
    /// The request body: the synthetic Claude Code request (~100 KB), or a minimal
    /// one-message request (~150 bytes) to see what is per-byte and what per-stream.
    #[arg(long, value_enum, default_value_t = BodyKind::ClaudeCode)]
    body: BodyKind,
    /// Instead of the streaming run: hold K streams open at once and measure RSS
    /// (in-process: direct and via gateway each in a fresh child process).
    #[arg(long, value_name = "K")]
    hold_open: Option<usize>,
    /// In-process gateway: [audit] enabled, the SQLite store in a temporary directory
    /// removed at the end.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    audit: OnOff,
    /// In-process gateway: [audit] log_request_bodies and log_response_bodies. The
    /// gateway's default is on, and it applies even with --audit off.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    audit_bodies: OnOff,
    /// Drive this running gateway (loopback only) instead of one in this process. Its
    /// `anthropic` provider must point at --mock-addr.
    #[arg(long)]
    gateway_url: Option<String>,
    /// With --gateway-url: the gateway's pid, to read its CPU and memory from /proc.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// Where the mock upstream listens (loopback only; port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    mock_addr: SocketAddr,
    /// Skip the direct-to-mock baseline.
    #[arg(long)]
    no_direct: bool,
    /// In-process gateway: worker threads of its tokio runtime.
    #[arg(long, default_value_t = 1)]
    gateway_threads: usize,
    /// Worker threads of the runtime that runs the client and the mock.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Streams run before each measured phase and not counted [default: the concurrency].
    #[arg(long)]
    warmup: Option<u64>,
    /// Longest one stream may take, seconds.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// Internal: run one side of --hold-open in this (child) process.
    #[arg(long, value_enum, hide = true)]
    hold_child: Option<Side>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BodyKind {
    ClaudeCode,
    Minimal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Side {
    Direct,
    Gateway,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Direct => "direct",
            Side::Gateway => "gateway",
        }
    }
}

impl Cli {
    fn requests(&self) -> u64 {
        self.requests.unwrap_or(if self.duration_secs.is_some() {
            MAX_REQUESTS
        } else {
            DEFAULT_REQUESTS
        })
    }

    fn interval(&self) -> Duration {
        Duration::from_millis(self.event_interval_ms)
    }

    fn warmup(&self) -> u64 {
        self.warmup
            .unwrap_or(self.concurrency as u64)
            .min(self.requests())
    }

    fn plan(&self, requests: u64) -> Plan {
        Plan {
            requests,
            duration: Some(self.duration_secs.map_or(MAX_PHASE, Duration::from_secs)),
            concurrency: self.concurrency,
            timeout: Duration::from_secs(self.timeout_secs),
            events: self.events,
            ramp: self.interval() * (self.events as u32 + 5),
        }
    }

    /// Refuse anything unbounded or off loopback before starting.
    fn check(&self) -> Result<(), String> {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli.check() {
        eprintln!("loadtest: {e}");
        return ExitCode::from(2);
    }
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let client_tids = Arc::new(Mutex::new(vec![std::process::id()]));
    let start_tids = client_tids.clone();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.client_threads)
        .thread_name("lt-client")
        .on_thread_start(move || {
            if let Some(tid) = procfs::current_tid() {
                drive::lock(&start_tids).push(tid);
            }
        })
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadtest: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli.clone(), client_tids));
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(Output::Report(report)) => {
            if cli.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            if report.failed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Ok(Output::HoldChild(result)) => {
            println!(
                "{}",
                serde_json::to_string(&result).expect("a hold result serializes")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadtest: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Output {
    Report(Box<Report>),
    HoldChild(HoldResult),
}

/// The gateway under test.
enum Target {
    InProcess(inproc::InProcessGateway),
    External { url: String },
}

impl Target {
    fn url(&self) -> &str {
        match self {
            Target::InProcess(g) => &g.url,
            Target::External { url } => url.trim_end_matches('/'),
        }
    }
}

/// What every phase shares.
struct Ctx {
    cli: Cli,
    client: reqwest::Client,
    body: Bytes,
    stop: Arc<AtomicBool>,
    client_tids: Arc<Mutex<Vec<u32>>>,
}

async fn run(cli: Cli, client_tids: Arc<Mutex<Vec<u32>>>) -> Result<Output, String> {
    let nonce = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let mock = mock::Mock::start(cli.mock_addr, nonce.clone())
        .await
        .map_err(|e| format!("mock upstream on {}: {e}", cli.mock_addr))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_on_signal = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("loadtest: interrupted; finishing the streams in flight");
            stop_on_signal.store(true, Ordering::Relaxed);
        }
    });
    let ctx = Ctx {
        client: drive::client(cli.concurrency),
        body: Bytes::from(match cli.body {
            BodyKind::ClaudeCode => body::claude_code_body(MODEL),
            BodyKind::Minimal => body::minimal_body(MODEL),
        }),
        stop,
        client_tids,
        cli,
    };

    if let Some(side) = ctx.cli.hold_child {
        let target = match side {
            Side::Gateway => Some(start_target(&ctx.cli, &mock)?),
            Side::Direct => None,
        };
        let base = target
            .as_ref()
            .map_or_else(|| mock.url(), |t| t.url().to_owned());
        let pid = std::process::id();
        let rss_of = format!("{} child process {pid}", side.name());
        let result = hold(&ctx, &mock, side, &base, Some(pid), rss_of).await;
        if let Some(Target::InProcess(g)) = target {
            g.stop();
        }
        return Ok(Output::HoldChild(result));
    }

    if ctx.cli.hold_open.is_some() && ctx.cli.gateway_url.is_none() {
        // Each side runs in a child process with its own mock and gateway.
        return Ok(Output::Report(Box::new(hold_children(&ctx).await?)));
    }
    let target = start_target(&ctx.cli, &mock)?;
    preflight(&ctx, &mock, target.url(), &nonce).await?;
    let report = if ctx.cli.hold_open.is_some() {
        let rss_of = match ctx.cli.gateway_pid {
            Some(pid) => format!("gateway process {pid}"),
            None => "unknown (give --gateway-pid)".to_owned(),
        };
        let via = hold(
            &ctx,
            &mock,
            Side::Gateway,
            target.url(),
            ctx.cli.gateway_pid,
            rss_of,
        )
        .await;
        hold_report(&ctx, &target, None, via)
    } else {
        stream_mode(&ctx, &mock, &target).await?
    };
    if let Target::InProcess(g) = target {
        g.stop();
    }
    Ok(Output::Report(Box::new(report)))
}

fn start_target(cli: &Cli, mock: &mock::Mock) -> Result<Target, String> {
    match &cli.gateway_url {
        Some(url) => Ok(Target::External { url: url.clone() }),
        None => inproc::InProcessGateway::start(inproc::Options {
            upstream: mock.url(),
            worker_threads: cli.gateway_threads,
            audit: cli.audit == OnOff::On,
            audit_bodies: cli.audit_bodies == OnOff::On,
        })
        .map(Target::InProcess),
    }
}

/// One small stream through the gateway: it must answer 200 with the mock's nonce, so
/// the gateway really points at this run's mock.
async fn preflight(ctx: &Ctx, mock: &mock::Mock, gateway: &str, nonce: &str) -> Result<(), String> {
    let before = mock.requests();
    let url = drive::messages_url(gateway, 1, Duration::ZERO, false);
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        ctx.client.post(&url).body(ctx.body.clone()).send(),
    )
    .await
    .map_err(|_| format!("preflight: no answer from {gateway} within 10 s"))?
    .map_err(|e| format!("preflight to {gateway}: {e}"))?;
    let status = response.status();
    let seen = response
        .headers()
        .get(mock::NONCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = response.bytes().await;
    if !status.is_success() || seen.as_deref() != Some(nonce) || mock.requests() == before {
        return Err(format!(
            "preflight: {gateway} answered {status} without this run's mock behind it; \
             its anthropic provider must have base_url = \"{}\"",
            mock.url()
        ));
    }
    Ok(())
}

/// CPU ticks of every thread of this process, by thread id.
type Threads = HashMap<u32, (String, u64)>;

/// Gateway threads' CPU between two snapshots, grouped by thread name: the gateway
/// runtime's threads (by the ids they recorded when they started) and every other thread
/// that is not the client's nor the main thread (the audit store's writer).
fn gateway_cpu(
    before: &Threads,
    after: &Threads,
    gateway_tids: &[u32],
    client_tids: &[u32],
    hz: u64,
) -> CpuFigure {
    let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
    for (tid, (name, ticks)) in after {
        if !gateway_tids.contains(tid) && client_tids.contains(tid) {
            continue;
        }
        let start = before.get(tid).map_or(0, |(_, t)| *t);
        *by_name.entry(name.clone()).or_default() += ticks.saturating_sub(start);
    }
    CpuFigure {
        total: procfs::ticks_to_duration(by_name.values().sum(), hz),
        by_thread: by_name
            .into_iter()
            .map(|(name, ticks)| (name, procfs::ticks_to_duration(ticks, hz)))
            .collect(),
        source: "gateway threads of this process (/proc/self/task/TID/stat)".into(),
    }
}

/// Streams that open the pools and warm the caches; not counted.
async fn warm(ctx: &Ctx, url: &str) {
    let warmup = ctx.cli.warmup();
    if warmup > 0 {
        let _ = drive::run_phase(
            &ctx.client,
            url,
            &ctx.body,
            &ctx.cli.plan(warmup),
            Arc::new(Progress::default()),
            ctx.stop.clone(),
        )
        .await;
    }
}

/// The measured streams of one target, with the progress line.
async fn measure(ctx: &Ctx, label: &str, url: &str) -> drive::PhaseResult {
    let progress = Arc::new(Progress::default());
    let total = ctx.cli.requests();
    let reporter = drive::spawn_progress(
        label.to_owned(),
        (total < MAX_REQUESTS).then_some(total),
        progress.clone(),
        ctx.cli.quiet,
    );
    let result = drive::run_phase(
        &ctx.client,
        url,
        &ctx.body,
        &ctx.cli.plan(total),
        progress,
        ctx.stop.clone(),
    )
    .await;
    reporter.abort();
    result
}

async fn stream_mode(ctx: &Ctx, mock: &mock::Mock, target: &Target) -> Result<Report, String> {
    let cli = &ctx.cli;
    let hz = procfs::clock_ticks();
    let self_stat = "/proc/self/stat";
    let direct = if cli.no_direct {
        None
    } else {
        let url = drive::messages_url(&mock.url(), cli.events, cli.interval(), false);
        warm(ctx, &url).await;
        let cpu0 = procfs::stat_ticks(self_stat);
        let result = measure(ctx, "direct", &url).await;
        let cpu1 = procfs::stat_ticks(self_stat);
        Some((result, cpu_between(cpu0, cpu1, hz)))
    };

    let url = drive::messages_url(target.url(), cli.events, cli.interval(), false);
    let pid_stat = cli.gateway_pid.map(|pid| format!("/proc/{pid}/stat"));
    // Snapshots are taken after the warm-up, around the measured streams only.
    warm(ctx, &url).await;
    let pid = std::process::id();
    let threads0 = procfs::threads(pid);
    let cpu0 = procfs::stat_ticks(self_stat);
    let ext0 = pid_stat.as_deref().and_then(procfs::stat_ticks);
    let via = measure(ctx, "gateway", &url).await;
    let ext1 = pid_stat.as_deref().and_then(procfs::stat_ticks);
    let cpu1 = procfs::stat_ticks(self_stat);
    let threads1 = procfs::threads(pid);

    let gateway_cpu = match target {
        Target::InProcess(g) => {
            let client_tids = drive::lock(&ctx.client_tids).clone();
            let gateway_tids = drive::lock(&g.tids).clone();
            Some(gateway_cpu(
                &threads0,
                &threads1,
                &gateway_tids,
                &client_tids,
                hz,
            ))
        }
        Target::External { .. } => cpu_between(ext0, ext1, hz).map(|total| CpuFigure {
            total,
            by_thread: Vec::new(),
            source: format!("process {} (/proc/PID/stat)", cli.gateway_pid.unwrap_or(0)),
        }),
    };
    let (peak_rss_kb, peak_rss_of) = match (target, cli.gateway_pid) {
        (Target::External { .. }, Some(pid)) => (
            procfs::status_kb(pid, "VmHWM"),
            format!("gateway process {pid}"),
        ),
        (Target::External { .. }, None) => (
            procfs::status_kb(pid, "VmHWM"),
            "this process (client and mock; give --gateway-pid for the gateway's)".into(),
        ),
        (Target::InProcess(_), _) => (
            procfs::status_kb(pid, "VmHWM"),
            "this process (client, mock and gateway)".into(),
        ),
    };
    let expected_records = via.ok + via.errors + cli.warmup() + 1;
    let gateway_metrics = scrape_metrics(&ctx.client, target.url(), expected_records).await;
    Ok(Report {
        info: run_info(ctx, target),
        direct: direct.as_ref().map(|(r, _)| r.clone()),
        via,
        gateway_cpu,
        process_cpu_direct: direct.and_then(|(_, cpu)| cpu),
        process_cpu_via: cpu_between(cpu0, cpu1, hz),
        peak_rss_kb,
        peak_rss_of,
        gateway_metrics,
        hold: None,
    })
}

fn cpu_between(a: Option<u64>, b: Option<u64>, hz: u64) -> Option<Duration> {
    Some(procfs::ticks_to_duration(b?.saturating_sub(a?), hz))
}

fn run_info(ctx: &Ctx, target: &Target) -> RunInfo {
    let in_process = matches!(target, Target::InProcess(_));
    run_info_from(ctx, in_process, target.url().to_owned())
}

fn run_info_from(ctx: &Ctx, in_process: bool, gateway_url: String) -> RunInfo {
    let cli = &ctx.cli;
    RunInfo {
        mode: if in_process { "in-process" } else { "external" }.into(),
        gateway_url,
        gateway_threads: in_process.then_some(cli.gateway_threads),
        client_threads: cli.client_threads,
        audit: in_process.then_some(cli.audit == OnOff::On),
        audit_bodies: in_process.then_some(cli.audit_bodies == OnOff::On),
        concurrency: cli.concurrency,
        requests: cli.requests(),
        duration_secs: cli.duration_secs,
        warmup: cli.warmup(),
        events: cli.events,
        event_interval_ms: cli.event_interval_ms,
        body_bytes: ctx.body.len(),
        hold_open: cli.hold_open,
    }
}

/// The gateway's `/metrics`, summed by series name (labels dropped), once its audit
/// store has caught up with `expected` records (or after 3 s).
async fn scrape_metrics(
    client: &reqwest::Client,
    gateway: &str,
    expected: u64,
) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let series = scrape(client, gateway).await;
        let accounted: f64 = [
            "llm_gateway_audit_records_written_total",
            "llm_gateway_audit_records_dropped_total",
        ]
        .iter()
        .filter_map(|k| series.get(*k))
        .sum();
        let audit_on = series.contains_key("llm_gateway_audit_records_written_total");
        if !audit_on || accounted >= expected as f64 || Instant::now() >= deadline {
            return series;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scrape(client: &reqwest::Client, gateway: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(Ok(response)) = tokio::time::timeout(
        Duration::from_secs(5),
        client.get(format!("{gateway}/metrics")).send(),
    )
    .await
    else {
        return out;
    };
    let Ok(text) = response.text().await else {
        return out;
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = key.split('{').next().unwrap_or(key);
        if let Ok(value) = value.parse::<f64>() {
            *out.entry(name.to_owned()).or_default() += value;
        }
    }
    out
}

/// `--hold-open K` in-process: each side in a fresh child process of this binary.
async fn hold_children(ctx: &Ctx) -> Result<Report, String> {
    let cli = &ctx.cli;
    let direct = if cli.no_direct {
        None
    } else {
        Some(hold_child(cli, Side::Direct).await?)
    };
    let via = hold_child(cli, Side::Gateway).await?;
    let info = RunInfo {
        gateway_url: "(in child processes)".into(),
        ..run_info_from(ctx, true, String::new())
    };
    Ok(hold_report_with(info, direct, via))
}

fn hold_report(ctx: &Ctx, target: &Target, direct: Option<HoldResult>, via: HoldResult) -> Report {
    hold_report_with(run_info(ctx, target), direct, via)
}

fn hold_report_with(info: RunInfo, direct: Option<HoldResult>, via: HoldResult) -> Report {
    Report {
        info,
        direct: None,
        via: drive::PhaseResult::default(),
        gateway_cpu: None,
        process_cpu_direct: None,
        process_cpu_via: None,
        peak_rss_kb: via.hwm_kb,
        peak_rss_of: via.rss_of.clone(),
        gateway_metrics: BTreeMap::new(),
        hold: Some((direct, via)),
    }
}

/// Run this binary again as `--hold-child SIDE` and read its one JSON line.
async fn hold_child(cli: &Cli, side: Side) -> Result<HoldResult, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut args: Vec<String> = vec![
        "--hold-child".into(),
        side.name().into(),
        "--hold-open".into(),
        cli.hold_open.unwrap_or(1).to_string(),
        "--concurrency".into(),
        cli.concurrency.to_string(),
        "--events".into(),
        cli.events.to_string(),
        "--gateway-threads".into(),
        cli.gateway_threads.to_string(),
        "--client-threads".into(),
        cli.client_threads.to_string(),
        "--audit".into(),
        match cli.audit {
            OnOff::On => "on",
            OnOff::Off => "off",
        }
        .into(),
        "--audit-bodies".into(),
        match cli.audit_bodies {
            OnOff::On => "on",
            OnOff::Off => "off",
        }
        .into(),
        "--timeout-secs".into(),
        cli.timeout_secs.to_string(),
        "--warmup".into(),
        cli.warmup().to_string(),
        "--body".into(),
        match cli.body {
            BodyKind::ClaudeCode => "claude-code",
            BodyKind::Minimal => "minimal",
        }
        .into(),
    ];
    if cli.quiet {
        args.push("--quiet".into());
    }
    let output = tokio::process::Command::new(exe)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("hold-open child: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).map_err(|e| {
        format!(
            "hold-open child ({}) exited {} without a result ({e})",
            side.name(),
            output.status
        )
    })
}

/// Hold K streams open through `base` at once, read RSS, release them.
async fn hold(
    ctx: &Ctx,
    mock: &mock::Mock,
    side: Side,
    base: &str,
    rss_pid: Option<u32>,
    rss_of: String,
) -> HoldResult {
    let cli = &ctx.cli;
    let k = cli.hold_open.unwrap_or(1);
    // Warm-up: pools, lazy statics and the runtime's buffers exist before the "before".
    warm(
        ctx,
        &drive::messages_url(base, cli.events, Duration::ZERO, false),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss = |field: &str| rss_pid.and_then(|pid| procfs::status_kb(pid, field));
    let fds = || {
        rss_pid.and_then(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .ok()
                .map(|d| d.count() as u64)
        })
    };
    let rss_before_kb = rss("VmRSS");
    let fds_before = fds();

    let url = drive::messages_url(base, cli.events, Duration::ZERO, true);
    let opening = Arc::new(tokio::sync::Semaphore::new(cli.concurrency));
    let progress = Arc::new(Progress::default());
    let opened = Arc::new(AtomicU64::new(0));
    let results = Arc::new(Mutex::new(drive::PhaseResult::default()));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(k);
    for _ in 0..k {
        let (client, url, body) = (ctx.client.clone(), url.clone(), ctx.body.clone());
        let (opening, opened, progress, results) = (
            opening.clone(),
            opened.clone(),
            progress.clone(),
            results.clone(),
        );
        let events = cli.events;
        handles.push(tokio::spawn(async move {
            let Ok(permit) = opening.acquire_owned().await else {
                return;
            };
            let hook = drive::FirstEvent {
                opened: opened.clone(),
                permit: Some(permit),
            };
            let outcome = drive::one_stream(&client, &url, &body, events, Some(hook)).await;
            if outcome.is_err() {
                progress.errors.fetch_add(1, Ordering::Relaxed);
            }
            drive::lock(&results).record(outcome);
        }));
    }
    // Wait until every stream has its first event (or failed), within the timeout.
    let deadline = started + Duration::from_secs(cli.timeout_secs);
    let mut next_line = started + Duration::from_secs(1);
    loop {
        let (open, failed) = (
            opened.load(Ordering::Relaxed),
            progress.errors.load(Ordering::Relaxed),
        );
        if open + failed >= k as u64
            || Instant::now() >= deadline
            || ctx.stop.load(Ordering::Relaxed)
        {
            break;
        }
        if Instant::now() >= next_line && !cli.quiet {
            eprintln!(
                "[hold {}] {:>5.1} s  {open}/{k} streams open, {failed} failed",
                side.name(),
                started.elapsed().as_secs_f64()
            );
            next_line += Duration::from_secs(1);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open_secs = started.elapsed().as_secs_f64();
    let opened_count = opened.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await; // let allocations settle
    let rss_open_kb = rss("VmRSS");
    let fds_open = fds();
    let active_streams = if side == Side::Gateway {
        scrape(&ctx.client, base)
            .await
            .get("llm_gateway_active_streams")
            .copied()
    } else {
        None
    };
    mock.release();
    let join = async {
        for handle in handles {
            let _ = handle.await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(cli.timeout_secs), join).await;
    let results = std::mem::take(&mut *drive::lock(&results));
    HoldResult {
        side: side.name().into(),
        k,
        opened: opened_count,
        completed: results.ok,
        errors: results.errors,
        error_samples: results.error_samples,
        open_secs,
        rss_before_kb,
        rss_open_kb,
        fds_before,
        fds_open,
        hwm_kb: rss("VmHWM"),
        rss_of,
        active_streams,
    }
}
