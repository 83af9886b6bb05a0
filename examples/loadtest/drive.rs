//! The client side: streams driven at a fixed concurrency, timed as they arrive.

use crate::body::RequestBody;
use crate::hist::Histogram;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What one phase (one target) does.
#[derive(Clone)]
pub struct Plan {
    /// Streams to run (an upper bound when `duration` is set).
    pub requests: u64,
    /// Stop starting new streams after this long.
    pub duration: Option<Duration>,
    pub concurrency: usize,
    /// Longest one stream may take, start to end.
    pub timeout: Duration,
    /// Text deltas each answer must have.
    pub events: usize,
    /// Worker `i` of `n` starts `i/n × ramp` late, so paced streams do not start (and
    /// end) in lockstep waves: about one stream's length when paced, 0 unpaced.
    pub ramp: Duration,
}

/// Counters the progress line reads while a phase runs.
#[derive(Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub errors: AtomicU64,
    pub in_flight: AtomicU64,
}

#[derive(Default, Clone)]
pub struct PhaseResult {
    pub ok: u64,
    pub errors: u64,
    /// The first few distinct error messages.
    pub error_samples: Vec<String>,
    pub wall: Duration,
    /// Streams completed while every worker was busy (from the last worker's first
    /// start to the first worker running out of work), and how long that was.
    pub steady: Option<(u64, Duration)>,
    /// Request start to the arrival of the first complete `content_block_delta`, µs.
    pub ttfe: Histogram,
    /// Gaps between consecutive events from the first delta to `message_stop`, µs.
    pub gaps: Histogram,
    /// Request start to the end of the stream, µs.
    pub whole: Histogram,
    pub bytes: u64,
}

impl PhaseResult {
    /// Streams/s in the steady window when there is one worth the name, else overall.
    pub fn streams_per_sec(&self) -> f64 {
        match self.steady {
            Some((done, window)) if done >= 10 && window >= Duration::from_millis(50) => {
                done as f64 / window.as_secs_f64()
            }
            _ => self.overall_streams_per_sec(),
        }
    }

    /// Streams read to their end / the phase's wall time (ramp and tail included).
    pub fn overall_streams_per_sec(&self) -> f64 {
        if self.wall.is_zero() {
            0.0
        } else {
            self.ok as f64 / self.wall.as_secs_f64()
        }
    }

    pub fn note_error(&mut self, error: String) {
        self.errors += 1;
        if self.error_samples.len() < 5 && !self.error_samples.contains(&error) {
            self.error_samples.push(error);
        }
    }

    pub fn record(&mut self, outcome: Result<StreamSample, String>) {
        match outcome {
            Ok(sample) => {
                self.ok += 1;
                self.ttfe.record(micros(sample.ttfe));
                for gap in sample.gaps {
                    self.gaps.record(micros(gap));
                }
                self.whole.record(micros(sample.whole));
                self.bytes += sample.bytes;
            }
            Err(error) => self.note_error(error),
        }
    }
}

/// The HTTP client: loopback only (`no_proxy`), `TCP_NODELAY`, HTTP/1.1 (what Claude
/// Code speaks), and an idle pool as large as the concurrency.
pub fn client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .http1_only()
        .pool_max_idle_per_host(concurrency.max(1))
        .pool_idle_timeout(Duration::from_secs(90))
        .default_headers(claude_code_headers())
        .build()
        .expect("the HTTP client builds")
}

/// Claude Code's headers, with a dummy key (the mock ignores it; the in-process gateway
/// passes a client's key through to its key-less provider, the mock).
fn claude_code_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, br, zstd"),
        ("anthropic-version", "2023-06-01"),
        (
            "anthropic-beta",
            "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14",
        ),
        ("anthropic-dangerous-direct-browser-access", "true"),
        ("user-agent", "claude-cli/2.0.0 (external, cli) llm-gateway-loadtest"),
        ("x-app", "cli"),
        ("x-stainless-lang", "js"),
        ("x-stainless-retry-count", "0"),
        ("x-stainless-timeout", "600"),
        ("x-api-key", "sk-ant-loadtest-not-a-key"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h
}

/// `/v1/messages` on `base`, with the query string that tells the mock what to send.
pub fn messages_url(base: &str, events: usize, interval: Duration, hold: bool) -> String {
    format!(
        "{}/v1/messages?beta=true&events={events}&interval_us={}{}",
        base.trim_end_matches('/'),
        interval.as_micros(),
        if hold { "&hold=1" } else { "" }
    )
}

/// Run `plan` against `url`: `concurrency` workers each take the next stream until the
/// count or the time is used up (or `stop` is set). Stream `n` sends
/// `body.get(phase, worker, n)`, built before its clock starts.
pub async fn run_phase(
    client: &reqwest::Client,
    url: &str,
    body: &Arc<RequestBody>,
    phase: u64,
    plan: &Plan,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
) -> PhaseResult {
    let next = Arc::new(AtomicU64::new(0));
    // One result for all workers, locked once per stream: a histogram per worker would
    // cost 184 KB each and show up in the process's RSS.
    let shared = Arc::new(Mutex::new(PhaseResult::default()));
    let started = Instant::now();
    let deadline = plan.duration.map(|d| started + d);
    let workers = (plan.concurrency as u64).min(plan.requests.max(1)) as usize;
    let window = Arc::new(Window::default());
    let mut handles = Vec::with_capacity(workers);
    for i in 0..workers {
        let (client, url, body, plan) =
            (client.clone(), url.to_owned(), body.clone(), plan.clone());
        let (next, progress, stop, shared, window) = (
            next.clone(),
            progress.clone(),
            stop.clone(),
            shared.clone(),
            window.clone(),
        );
        let delay = plan.ramp.mul_f64(i as f64 / workers as f64);
        handles.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let mut first = true;
            loop {
                let out_of_time =
                    stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d);
                let n = next.fetch_add(1, Ordering::Relaxed);
                if out_of_time || n >= plan.requests {
                    let _ = window
                        .end
                        .set((Instant::now(), progress.done.load(Ordering::Relaxed)));
                    break;
                }
                if first {
                    first = false;
                    if window.started.fetch_add(1, Ordering::Relaxed) + 1 == workers {
                        let _ = window
                            .start
                            .set((Instant::now(), progress.done.load(Ordering::Relaxed)));
                    }
                }
                let request = body.get(phase, i, n);
                progress.in_flight.fetch_add(1, Ordering::Relaxed);
                let outcome = tokio::time::timeout(
                    plan.timeout,
                    one_stream(&client, &url, &request, plan.events, None),
                )
                .await
                .unwrap_or_else(|_| Err(format!("stream not over after {:?}", plan.timeout)));
                progress.in_flight.fetch_sub(1, Ordering::Relaxed);
                let ok = outcome.is_ok();
                lock(&shared).record(outcome);
                if ok {
                    progress.done.fetch_add(1, Ordering::Relaxed);
                } else {
                    progress.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for handle in handles {
        if let Err(e) = handle.await {
            lock(&shared).note_error(format!("worker failed: {e}"));
        }
    }
    let mut total = std::mem::take(&mut *lock(&shared));
    total.wall = started.elapsed();
    if let (Some((t0, d0)), Some((t1, d1))) = (window.start.get(), window.end.get()) {
        if t1 > t0 {
            total.steady = Some((d1.saturating_sub(*d0), *t1 - *t0));
        }
    }
    total
}

/// When every worker was busy at once.
#[derive(Default)]
struct Window {
    started: AtomicUsize,
    start: OnceLock<(Instant, u64)>,
    end: OnceLock<(Instant, u64)>,
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What one complete stream measured.
pub struct StreamSample {
    pub ttfe: Duration,
    pub gaps: Vec<Duration>,
    pub whole: Duration,
    pub bytes: u64,
}

/// Called once a held stream has its first content event.
pub struct FirstEvent {
    pub opened: Arc<AtomicU64>,
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// One streaming request, read to its end. Times are taken when a read returns the
/// chunk that completes an event (events are blank-line terminated); events completed
/// by the same read share its time.
pub async fn one_stream(
    client: &reqwest::Client,
    url: &str,
    body: &Bytes,
    events: usize,
    mut on_first: Option<FirstEvent>,
) -> Result<StreamSample, String> {
    let started = Instant::now();
    let mut response = client
        .post(url)
        .body(body.clone())
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        let text: String = text.chars().take(200).collect();
        return Err(format!("HTTP {status}: {text}"));
    }
    let mut buffer: Vec<u8> = Vec::with_capacity(8 * 1024);
    let mut first: Option<Instant> = None;
    let mut bytes = 0u64;
    let mut last = started;
    let mut deltas = 0usize;
    let mut stopped = false;
    let mut gaps = Vec::with_capacity(events + 2);
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("body: {e}"))? {
        let now = Instant::now();
        bytes += chunk.len() as u64;
        buffer.extend_from_slice(&chunk);
        let mut consumed = 0;
        while let Some(end) = memchr::memmem::find(&buffer[consumed..], b"\n\n") {
            let event = &buffer[consumed..consumed + end];
            consumed += end + 2;
            let name = event
                .split(|&b| b == b'\n')
                .find_map(|line| line.strip_prefix(b"event: "))
                .unwrap_or_default();
            if first.is_some() {
                gaps.push(now - last);
                last = now;
            }
            match name {
                b"content_block_delta" => {
                    deltas += 1;
                    if first.is_none() {
                        first = Some(now);
                        last = now;
                        if let Some(hook) = on_first.take() {
                            hook.opened.fetch_add(1, Ordering::Relaxed);
                            drop(hook.permit);
                        }
                    }
                }
                b"message_stop" => stopped = true,
                b"error" => {
                    return Err(format!(
                        "in-band error: {}",
                        String::from_utf8_lossy(event)
                            .chars()
                            .take(200)
                            .collect::<String>()
                    ))
                }
                _ => {}
            }
        }
        buffer.drain(..consumed);
    }
    if deltas != events || !stopped {
        return Err(format!(
            "incomplete stream: {deltas} of {events} deltas, message_stop {}",
            if stopped { "seen" } else { "missing" }
        ));
    }
    let Some(first) = first else {
        return Err("no content event".to_owned());
    };
    Ok(StreamSample {
        ttfe: first - started,
        gaps,
        whole: started.elapsed(),
        bytes,
    })
}

pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The progress line on stderr, once a second, until the returned task is aborted; with
/// `rss_pid`, that process's current `VmRSS` too.
pub fn spawn_progress(
    label: String,
    total: Option<u64>,
    progress: Arc<Progress>,
    quiet: bool,
    rss_pid: Option<u32>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if quiet {
            return;
        }
        let started = Instant::now();
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.tick().await;
        let mut last_done = 0;
        loop {
            ticker.tick().await;
            let done = progress.done.load(Ordering::Relaxed);
            let errors = progress.errors.load(Ordering::Relaxed);
            let in_flight = progress.in_flight.load(Ordering::Relaxed);
            let of = total.map_or_else(String::new, |t| format!("/{t}"));
            let rss = rss_pid
                .and_then(|pid| crate::procfs::status_kb(pid, "VmRSS"))
                .map_or_else(String::new, |kb| {
                    format!(", RSS {:.1} MB", kb as f64 / 1024.0)
                });
            eprintln!(
                "[{label}] {:>5.1} s  {done}{of} streams done, {errors} errors, {in_flight} in flight, {} streams/s in the last second{rss}",
                started.elapsed().as_secs_f64(),
                done - last_done
            );
            last_done = done;
        }
    })
}
