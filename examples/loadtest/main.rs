//! Run with
//!
//! ```sh
//! cargo run --release --example loadtest -- --concurrency 32 --requests 2000
//! ```
//!
//! A load test of the gateway on loopback. It starts its own mock Anthropic upstream on
//! `127.0.0.1`, runs the whole gateway stack in this process (the default, on a tokio
//! runtime of its own: `--gateway-threads`, default 1, threads named `gw-worker`; the
//! audit store adds a thread `audit-writer`) or drives a running gateway
//! (`--gateway-url`, which must point its `anthropic` provider at `--mock-addr`), and
//! sends streaming `/v1/messages` requests at a fixed concurrency, answered with
//! `--events` text deltas, unpaced or `--event-interval-ms` apart.
//!
//! Three targets are measured in the same run, one after the other, each after a
//! warm-up of `--warmup` streams (default: the concurrency) that is not counted:
//!
//! 1. **direct** — client → mock, the baseline (`--no-direct` skips it);
//! 2. **bare proxy** — client → a minimal hyper byte-forwarding proxy → mock (`bare.rs`:
//!    hyper-util's `auto` server with `TCP_NODELAY`, a pooled hyper-util legacy client
//!    with `TCP_NODELAY`, the URI rewritten to the mock and hop-by-hop headers dropped,
//!    both bodies streamed, never collected), on a runtime built exactly like the
//!    in-process gateway's (its own OS thread, `--gateway-threads` workers named
//!    `bare-worker`), started for its phase and stopped after it: the floor any proxy
//!    on this machine pays. It runs in this process even with `--gateway-url`.
//!    `--no-bare` skips it;
//! 3. **via gateway** — client → gateway → mock.
//!
//! Every run is bounded in count and time, and only touches 127.0.0.1.
//!
//! **Pinning** (`--pin`, on by default when this process may run on two CPUs or more;
//! `--no-pin` turns it off): the proxy under test (the gateway's or the bare proxy's
//! runtime, and every thread it spawns: its workers, tokio's blocking threads,
//! `audit-writer`) runs on `--proxy-cpu` (default the first allowed CPU, 0 here), the
//! client and the mock (the main thread and the client runtime) on `--client-cpu`
//! (default the second, 1 here). Affinity is inherited by threads created afterwards,
//! so each proxy's owner thread pins itself before it builds its runtime or anything
//! else, and `on_thread_start` pins each runtime thread again. The report's header says
//! what ran where. An external gateway (`--gateway-url`) is not pinned by this tool:
//! start it under `taskset`.
//!
//! **Request body** (`--body`): by default a synthetic ~100 KB Claude-Code-shaped request
//! (24 tools, long system blocks with `cache_control`, a conversation with thinking, a
//! tool use and a long tool result) that every request shares, plus one more exchange
//! whose final user message is unique to the request ("request N of worker W in phase
//! P" and 1–2 KB of varied words), as real Claude Code traffic resends the same tools,
//! system prompt and conversation and differs in its tail. It is built from the shared
//! prefix and suffix (serialized once) and the small tail, one copy a request, before
//! the request's clock starts, and the same sequence of bodies goes to each target.
//! `--body same` sends the old identical body every time; `--body minimal` a ~150-byte
//! one-message request, to see what is per-byte and what per-stream.
//!
//! ```sh
//! cargo run --release --example loadtest -- --concurrency 1 --requests 2000
//! cargo run --release --example loadtest -- --concurrency 32 --requests 6000
//! cargo run --release --example loadtest -- --concurrency 200 --requests 1000 --event-interval-ms 20
//! cargo run --release --example loadtest -- --hold-open 2000 --concurrency 64   # RSS per open stream
//! cargo run --release --example loadtest -- --duration-secs 600 --concurrency 32 # soak: RSS growth
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
//! Each figure is given direct, via the bare proxy and via the gateway, with the latency
//! each proxy adds over direct (`bare added`, `gw added`).
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
//!   point holds `message_start`/`ping`), so the direct and bare figures are measured
//!   the same way: until the first delta, not the first byte. `added` is proxy − direct
//!   at each percentile: the latency that proxy adds.
//! - **inter-event gap** p50/p90/p99 — for each stream, the time between the arrivals
//!   of consecutive events from its first `content_block_delta` to its `message_stop`
//!   (`events + 2` gaps a stream; events that arrive in the same read have a gap of 0).
//!   Paced, the gaps sit around the interval; unpaced, they show how the events are
//!   batched into reads. **jitter added** is `p99(gaps via the proxy) − p99(gaps
//!   direct)`, for the gateway and the bare proxy: how much later than the upstream's
//!   own rhythm the slowest 1 % of events reach the client.
//! - **gateway vs bare proxy** — the gateway's streams/s as a percentage of the bare
//!   proxy's, and the latency the gateway adds over the bare proxy (gateway − bare at
//!   each time-to-first-event percentile, and at the p99 inter-event gap).
//! - **whole stream** p50/p99 — request sent to the end of the stream.
//! - **proxy CPU / 1,000 streams** — in-process: `utime + stime` of the proxy's own
//!   threads, read from `/proc/self/task/TID/stat` around its measured phase, as seconds
//!   per 1,000 streams. For the gateway: its runtime's threads (recorded by thread id at
//!   start via `/proc/thread-self`) and every other thread that is not the client's nor
//!   the bare proxy's, such as `audit-writer`; for the bare proxy: its runtime's threads
//!   by thread id. With `--gateway-url` and `--gateway-pid PID`, the gateway's is the
//!   whole process from `/proc/PID/stat`. The gateway's window closes only once its
//!   audit store has written the phase's records (as its `/metrics` tell, at most 10 s
//!   later), so the writer's work behind the requests is counted with them. Clock ticks
//!   are 10 ms: trust it from about a second of CPU up.
//! - **process CPU** — this process during each phase (client and mock, plus the
//!   proxy when in-process).
//! - **peak RSS** — `VmHWM` of this process (client, mock, bare proxy and in-process
//!   gateway together), or of `--gateway-pid`.
//! - **RSS during the gateway phase** (with `--duration-secs`, for soaks) — `VmRSS`
//!   read right after the warm-up, every `--rss-every-secs` (default 30) and at the
//!   end: in-process that is `/proc/self`, the whole process (client and mock
//!   included; their memory is bounded — fixed-size histograms, a pool as large as the
//!   concurrency — so growth is the gateway's), with `--gateway-pid` that process. It
//!   gives the samples (JSON: an array), RSS after warm-up, at the end, the max, and
//!   the growth from the first sample at or after 1/5 of the run to the last one. The
//!   progress line shows the current RSS.
//! - **audit** — records the gateway's audit store wrote, shed bodies of and dropped (from its
//!   `/metrics`), and the gateway's own `overhead_seconds` mean.
//! - **`--hold-open K`** (a mode of its own) — K streams opened at once (at most
//!   `--concurrency` being opened at a time); the mock sends `message_start` and the
//!   first delta, then stays silent until all K are open and RSS (`VmRSS`) is read, then
//!   releases them. Direct, via the bare proxy and via the gateway each run in a fresh
//!   child process of this binary (pinned like the parent), so freed memory of one
//!   cannot hide another's: each proxy's share is `(RSS added via the proxy − RSS added
//!   direct) / K × 1,000` per 1,000 open streams (its accepted and upstream
//!   connections, and each stream's state). With `--gateway-url`, the gateway's RSS is
//!   read from `--gateway-pid` directly (start a fresh gateway for it, as memory freed by
//!   earlier runs is reused and hides part of the cost), and the direct and bare
//!   children still run for the bare proxy's figure.

mod bare;
mod body;
mod cli;
mod drive;
mod hist;
mod hold;
mod inproc;
mod mock;
mod pin;
mod procfs;
mod report;
mod server_thread;

use body::RequestBody;
use clap::Parser;
use cli::{BodyKind, Cli, OnOff, Side, MAX_REQUESTS};
use drive::Progress;
use hold::{hold, hold_child, hold_children, hold_report};
use pin::Pinning;
use report::{CpuFigure, Hold, HoldResult, Report, RssSoak, RunInfo};
use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MODEL: &str = "claude-sonnet-4-5-20250929";

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = cli.check() {
        eprintln!("loadtest: {e}");
        return ExitCode::from(2);
    }
    let pinning = match cli.pinning() {
        Ok(pinning) => pinning,
        Err(e) => {
            eprintln!("loadtest: {e}");
            return ExitCode::from(2);
        }
    };
    // The main thread first: the client runtime's threads (and the threads that start
    // the proxies, which pin themselves elsewhere) inherit it.
    if let Some(p) = pinning {
        if !pin::current_thread(p.client) {
            eprintln!(
                "loadtest: cannot pin to CPU {} (--no-pin to run unpinned)",
                p.client
            );
            return ExitCode::FAILURE;
        }
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
            if let Some(p) = pinning {
                pin::current_thread(p.client);
            }
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
    let result = runtime.block_on(run(cli.clone(), pinning, client_tids));
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
    body: Arc<RequestBody>,
    /// Phases run so far (warm-ups included): each gets its own request bodies.
    phases: AtomicU64,
    pinning: Option<Pinning>,
    stop: Arc<AtomicBool>,
    client_tids: Arc<Mutex<Vec<u32>>>,
}

impl Ctx {
    fn next_phase(&self) -> u64 {
        self.phases.fetch_add(1, Ordering::Relaxed)
    }

    fn proxy_cpu(&self) -> Option<usize> {
        self.pinning.map(|p| p.proxy)
    }
}

async fn run(
    cli: Cli,
    pinning: Option<Pinning>,
    client_tids: Arc<Mutex<Vec<u32>>>,
) -> Result<Output, String> {
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
        body: Arc::new(match cli.body {
            BodyKind::ClaudeCode => RequestBody::varying(MODEL),
            BodyKind::Same => RequestBody::Same(body::claude_code_body(MODEL).into()),
            BodyKind::Minimal => RequestBody::Same(body::minimal_body(MODEL).into()),
        }),
        phases: AtomicU64::new(0),
        pinning,
        stop,
        client_tids,
        cli,
    };

    if let Some(side) = ctx.cli.hold_child {
        let (mut gateway, mut bare) = (None, None);
        let base = match side {
            Side::Direct => mock.url(),
            Side::Bare => {
                let proxy = start_bare(&ctx, &mock)?;
                preflight(&ctx, &mock, &proxy.url, &nonce).await?;
                bare.insert(proxy).url.clone()
            }
            Side::Gateway => {
                let target = start_target(&ctx, &mock)?;
                preflight(&ctx, &mock, target.url(), &nonce).await?;
                gateway.insert(target).url().to_owned()
            }
        };
        let pid = std::process::id();
        let rss_of = format!("{} child process {pid}", side.name());
        let result = hold(&ctx, &mock, side, &base, Some(pid), rss_of).await;
        if let Some(Target::InProcess(g)) = gateway {
            g.stop();
        }
        if let Some(proxy) = bare {
            proxy.stop();
        }
        return Ok(Output::HoldChild(result));
    }

    if ctx.cli.hold_open.is_some() && ctx.cli.gateway_url.is_none() {
        // Each side runs in a child process with its own mock and proxy.
        return Ok(Output::Report(Box::new(hold_children(&ctx).await?)));
    }
    let target = start_target(&ctx, &mock)?;
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
        // The bare proxy still runs in-process: a direct and a bare child for its share.
        let (direct, bare) = if ctx.cli.no_bare {
            (None, None)
        } else {
            let direct = if ctx.cli.no_direct {
                None
            } else {
                Some(hold_child(&ctx, Side::Direct).await?)
            };
            (direct, Some(hold_child(&ctx, Side::Bare).await?))
        };
        hold_report(
            run_info(&ctx, &target),
            Hold {
                direct,
                bare,
                gateway: via,
            },
        )
    } else {
        stream_mode(&ctx, &mock, &target).await?
    };
    if let Target::InProcess(g) = target {
        g.stop();
    }
    Ok(Output::Report(Box::new(report)))
}

fn start_target(ctx: &Ctx, mock: &mock::Mock) -> Result<Target, String> {
    let cli = &ctx.cli;
    match &cli.gateway_url {
        Some(url) => Ok(Target::External { url: url.clone() }),
        None => inproc::InProcessGateway::start(inproc::Options {
            upstream: mock.url(),
            worker_threads: cli.gateway_threads,
            audit: cli.audit == OnOff::On,
            audit_bodies: cli.audit_bodies == OnOff::On,
            cpu: ctx.proxy_cpu(),
        })
        .map(Target::InProcess),
    }
}

/// The bare proxy in this process, on a runtime like the in-process gateway's.
fn start_bare(ctx: &Ctx, mock: &mock::Mock) -> Result<bare::BareProxy, String> {
    bare::start(bare::Options {
        upstream: mock.url(),
        worker_threads: ctx.cli.gateway_threads,
        cpu: ctx.proxy_cpu(),
    })
}

/// One small stream through the gateway: it must answer 200 with the mock's nonce, so
/// the gateway really points at this run's mock.
async fn preflight(ctx: &Ctx, mock: &mock::Mock, gateway: &str, nonce: &str) -> Result<(), String> {
    let before = mock.requests();
    let url = drive::messages_url(gateway, 1, Duration::ZERO, false);
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        ctx.client
            .post(&url)
            .body(ctx.body.get(u64::MAX, 0, 0))
            .send(),
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
/// that is not the client's, the main thread nor the bare proxy's (the audit store's
/// writer).
fn gateway_cpu(
    before: &Threads,
    after: &Threads,
    gateway_tids: &[u32],
    others: &[u32],
    hz: u64,
) -> CpuFigure {
    threads_cpu(
        before,
        after,
        |tid| gateway_tids.contains(&tid) || !others.contains(&tid),
        hz,
        "gateway threads of this process (/proc/self/task/TID/stat)",
    )
}

/// CPU between two snapshots of the threads `keep` accepts, grouped by thread name.
fn threads_cpu(
    before: &Threads,
    after: &Threads,
    keep: impl Fn(u32) -> bool,
    hz: u64,
    source: &str,
) -> CpuFigure {
    let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
    for (tid, (name, ticks)) in after {
        if !keep(*tid) {
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
        source: source.into(),
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
            ctx.next_phase(),
            &ctx.cli.plan(warmup),
            Arc::new(Progress::default()),
            ctx.stop.clone(),
        )
        .await;
    }
}

/// The measured streams of one target, with the progress line (showing `rss_pid`'s RSS).
async fn measure(ctx: &Ctx, label: &str, url: &str, rss_pid: Option<u32>) -> drive::PhaseResult {
    let progress = Arc::new(Progress::default());
    let total = ctx.cli.requests();
    let reporter = drive::spawn_progress(
        label.to_owned(),
        (total < MAX_REQUESTS).then_some(total),
        progress.clone(),
        ctx.cli.quiet,
        rss_pid,
    );
    let result = drive::run_phase(
        &ctx.client,
        url,
        &ctx.body,
        ctx.next_phase(),
        &ctx.cli.plan(total),
        progress,
        ctx.stop.clone(),
    )
    .await;
    reporter.abort();
    result
}

/// RSS samples taken so far: (seconds since the sampler started, kB).
type RssSamples = Arc<Mutex<Vec<(f64, u64)>>>;

/// `VmRSS` of `pid` now and every `every` until the task is aborted.
fn spawn_rss_sampler(pid: u32, every: Duration) -> (tokio::task::JoinHandle<()>, RssSamples) {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let out = samples.clone();
    let task = tokio::spawn(async move {
        let started = Instant::now();
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Some(kb) = procfs::status_kb(pid, "VmRSS") {
                drive::lock(&out).push((started.elapsed().as_secs_f64(), kb));
            }
        }
    });
    (task, samples)
}

/// One measured phase through a proxy, with this process's and its threads' CPU.
struct ProxyPhase {
    result: drive::PhaseResult,
    process_cpu: Option<Duration>,
    threads_before: Threads,
    threads_after: Threads,
}

async fn stream_mode(ctx: &Ctx, mock: &mock::Mock, target: &Target) -> Result<Report, String> {
    let cli = &ctx.cli;
    let hz = procfs::clock_ticks();
    let self_stat = "/proc/self/stat";
    let pid = std::process::id();
    let direct = if cli.no_direct {
        None
    } else {
        let url = drive::messages_url(&mock.url(), cli.events, cli.interval(), false);
        warm(ctx, &url).await;
        let cpu0 = procfs::stat_ticks(self_stat);
        let result = measure(ctx, "direct", &url, Some(pid)).await;
        let cpu1 = procfs::stat_ticks(self_stat);
        Some((result, cpu_between(cpu0, cpu1, hz)))
    };

    // The bare proxy: started for its phase only, stopped before the gateway's.
    let mut bare_tids = Vec::new();
    let bare = if cli.no_bare {
        None
    } else {
        let proxy = start_bare(ctx, mock)?;
        let url = drive::messages_url(&proxy.url, cli.events, cli.interval(), false);
        warm(ctx, &url).await;
        let threads_before = procfs::threads(pid);
        let cpu0 = procfs::stat_ticks(self_stat);
        let result = measure(ctx, "bare proxy", &url, Some(pid)).await;
        let cpu1 = procfs::stat_ticks(self_stat);
        let threads_after = procfs::threads(pid);
        bare_tids = drive::lock(&proxy.tids).clone();
        proxy.stop();
        Some(ProxyPhase {
            result,
            process_cpu: cpu_between(cpu0, cpu1, hz),
            threads_before,
            threads_after,
        })
    };
    let bare_cpu = bare.as_ref().map(|b| {
        threads_cpu(
            &b.threads_before,
            &b.threads_after,
            |tid| bare_tids.contains(&tid),
            hz,
            "bare proxy threads of this process (/proc/self/task/TID/stat)",
        )
    });

    let url = drive::messages_url(target.url(), cli.events, cli.interval(), false);
    let pid_stat = cli.gateway_pid.map(|pid| format!("/proc/{pid}/stat"));
    let rss_pid = match target {
        Target::InProcess(_) => Some(pid),
        Target::External { .. } => cli.gateway_pid,
    };
    // Snapshots are taken after the warm-up, around the measured streams only.
    warm(ctx, &url).await;
    // The audit writer works behind the requests: let it finish the warm-up's records
    // before the "before" snapshot, and this phase's before the "after" one, so its
    // CPU is counted with the streams that caused it.
    let _ = scrape_metrics(&ctx.client, target.url(), cli.warmup() + 1).await;
    let sampler = cli
        .duration_secs
        .and(rss_pid)
        .map(|p| spawn_rss_sampler(p, Duration::from_secs(cli.rss_every_secs)));
    let threads0 = procfs::threads(pid);
    let cpu0 = procfs::stat_ticks(self_stat);
    let ext0 = pid_stat.as_deref().and_then(procfs::stat_ticks);
    let via = measure(ctx, "gateway", &url, rss_pid).await;
    let expected_records = via.ok + via.errors + cli.warmup() + 1;
    let gateway_metrics = scrape_metrics(&ctx.client, target.url(), expected_records).await;
    let ext1 = pid_stat.as_deref().and_then(procfs::stat_ticks);
    let cpu1 = procfs::stat_ticks(self_stat);
    let threads1 = procfs::threads(pid);
    let rss_soak = sampler.map(|(task, samples)| {
        task.abort();
        let mut samples = std::mem::take(&mut *drive::lock(&samples));
        let end = rss_pid.and_then(|p| procfs::status_kb(p, "VmRSS"));
        if let Some(kb) = end {
            // A periodic sample taken within the last second is the end's: replace it.
            let at = via.wall.as_secs_f64();
            if samples.len() > 1 && samples.last().is_some_and(|s| at - s.0 < 1.0) {
                samples.pop();
            }
            samples.push((at, kb));
        }
        RssSoak {
            of: match target {
                Target::InProcess(_) => {
                    "this process (/proc/self VmRSS: client, mock and in-process gateway)".into()
                }
                Target::External { .. } => format!("gateway process {}", rss_pid.unwrap_or(0)),
            },
            every_secs: cli.rss_every_secs,
            samples,
        }
    });

    let gateway_cpu = match target {
        Target::InProcess(g) => {
            let mut others = drive::lock(&ctx.client_tids).clone();
            others.extend_from_slice(&bare_tids);
            let gateway_tids = drive::lock(&g.tids).clone();
            Some(gateway_cpu(
                &threads0,
                &threads1,
                &gateway_tids,
                &others,
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
            format!(
                "this process (client, mock{}; give --gateway-pid for the gateway's)",
                if cli.no_bare { "" } else { " and bare proxy" }
            ),
        ),
        (Target::InProcess(_), _) => (
            procfs::status_kb(pid, "VmHWM"),
            format!(
                "this process (client, mock, {}gateway)",
                if cli.no_bare { "" } else { "bare proxy and " }
            ),
        ),
    };
    let (bare, process_cpu_bare) = match bare {
        Some(b) => (Some(b.result), b.process_cpu),
        None => (None, None),
    };
    Ok(Report {
        info: run_info(ctx, target),
        direct: direct.as_ref().map(|(r, _)| r.clone()),
        bare,
        via,
        gateway_cpu,
        bare_cpu,
        process_cpu_direct: direct.and_then(|(_, cpu)| cpu),
        process_cpu_bare,
        process_cpu_via: cpu_between(cpu0, cpu1, hz),
        peak_rss_kb,
        peak_rss_of,
        gateway_metrics,
        rss_soak,
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
        body_bytes: ctx.body.typical_len(),
        body_shared_bytes: ctx.body.shared_len(),
        body_kind: cli.body.name().into(),
        hold_open: cli.hold_open,
        bare: !cli.no_bare,
        pinning: ctx.pinning,
    }
}

/// The gateway's `/metrics`, summed by series name (labels dropped), once its audit
/// store has caught up with `expected` records (or after 10 s).
async fn scrape_metrics(
    client: &reqwest::Client,
    gateway: &str,
    expected: u64,
) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
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
