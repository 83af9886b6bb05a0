//! `--hold-open K`: K streams held open at once, and the RSS they cost.

use crate::cli::{OnOff, Side};
use crate::report::{Hold, HoldResult, Report, RunInfo};
use crate::{drive, mock, procfs, run_info_from, scrape, warm, Ctx};
use drive::Progress;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `--hold-open K` in-process: each side in a fresh child process of this binary.
pub async fn hold_children(ctx: &Ctx) -> Result<Report, String> {
    let cli = &ctx.cli;
    let direct = if cli.no_direct {
        None
    } else {
        Some(hold_child(ctx, Side::Direct).await?)
    };
    let bare = if cli.no_bare {
        None
    } else {
        Some(hold_child(ctx, Side::Bare).await?)
    };
    let gateway = hold_child(ctx, Side::Gateway).await?;
    let info = RunInfo {
        gateway_url: "(in child processes)".into(),
        ..run_info_from(ctx, true, String::new())
    };
    Ok(hold_report(
        info,
        Hold {
            direct,
            bare,
            gateway,
        },
    ))
}

pub fn hold_report(info: RunInfo, hold: Hold) -> Report {
    Report {
        info,
        direct: None,
        bare: None,
        via: drive::PhaseResult::default(),
        gateway_cpu: None,
        bare_cpu: None,
        process_cpu_direct: None,
        process_cpu_bare: None,
        process_cpu_via: None,
        peak_rss_kb: hold.gateway.hwm_kb,
        peak_rss_of: hold.gateway.rss_of.clone(),
        gateway_metrics: BTreeMap::new(),
        rss_soak: None,
        hold: Some(hold),
    }
}

/// Run this binary again as `--hold-child SIDE` and read its one JSON line. It is told
/// its CPUs: it inherits this process's (pinned) affinity, so it cannot find them.
pub async fn hold_child(ctx: &Ctx, side: Side) -> Result<HoldResult, String> {
    let cli = &ctx.cli;
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
        cli.body.name().into(),
    ];
    match ctx.pinning {
        Some(p) => args.extend([
            "--pin".into(),
            "--proxy-cpu".into(),
            p.proxy.to_string(),
            "--client-cpu".into(),
            p.client.to_string(),
        ]),
        None => args.push("--no-pin".into()),
    }
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
pub async fn hold(
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
    let phase = ctx.next_phase();
    for i in 0..k {
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
            // Built once it may open: at most --concurrency bodies exist at a time.
            let body = body.get(phase, 0, i as u64);
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
