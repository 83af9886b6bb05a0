//! The gateway in this process, on a tokio runtime of its own on its own OS threads,
//! so its CPU can be read per thread apart from the client's and the mock's, and
//! optionally pinned to one CPU (the owner thread pins itself before it builds the
//! runtime or the gateway, so every thread they spawn, `audit-writer` included,
//! inherits the affinity).

use crate::server_thread::{ServerThread, ThreadSpec};
use llm_gateway::config::ProviderConfig;
use llm_gateway::{Config, Gateway};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct InProcessGateway {
    pub url: String,
    /// Thread ids of the gateway runtime (its workers, its blocking pool, and the thread
    /// that owns it).
    pub tids: Arc<Mutex<Vec<u32>>>,
    server: Option<ServerThread>,
    audit_dir: PathBuf,
}

pub struct Options {
    pub upstream: String,
    pub worker_threads: usize,
    pub audit: bool,
    pub audit_bodies: bool,
    /// Pin the runtime's owner thread and every thread it spawns to this CPU.
    pub cpu: Option<usize>,
}

impl InProcessGateway {
    /// Build the gateway for a config whose only provider, `anthropic`, is the mock,
    /// and serve it on `127.0.0.1:0` with [`Gateway::serve`] (which sets `TCP_NODELAY`).
    pub fn start(options: Options) -> Result<InProcessGateway, String> {
        let audit_dir =
            std::env::temp_dir().join(format!("llm-gateway-loadtest-{}", std::process::id()));
        std::fs::create_dir_all(&audit_dir)
            .map_err(|e| format!("cannot create {}: {e}", audit_dir.display()))?;
        let mut config = Config::default();
        let upstream = options
            .upstream
            .parse()
            .map_err(|e| format!("mock URL: {e}"))?;
        config
            .providers
            .insert("anthropic".into(), ProviderConfig::anthropic(upstream));
        config.audit.enabled = options.audit;
        config.audit.log_request_bodies = options.audit_bodies;
        config.audit.log_response_bodies = options.audit_bodies;
        config.audit.path = audit_dir.join("audit.db");
        let spec = ThreadSpec {
            name: "gw-runtime",
            worker_name: "gw-worker",
            worker_threads: options.worker_threads,
            cpu: options.cpu,
            shutdown: Duration::from_secs(2),
        };
        let server = ServerThread::start(spec, move |listener, stop| {
            // Built on the pinned owner thread: the audit writer inherits its CPU.
            let (gateway, prometheus) = build(config)?;
            Ok(async move {
                // Folds histogram samples into buckets between scrapes, as the daemon does.
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(5));
                    loop {
                        tick.tick().await;
                        prometheus.run_upkeep();
                    }
                });
                let stopped = async {
                    let _ = stop.await;
                };
                if let Err(e) = gateway
                    .serve(listener, stopped, Duration::from_secs(2))
                    .await
                {
                    eprintln!("gateway stopped: {e}");
                }
            })
        })?;
        Ok(InProcessGateway {
            url: server.url.clone(),
            tids: server.tids.clone(),
            server: Some(server),
            audit_dir,
        })
    }

    /// Stop serving (open streams get 2 s), flush the audit store, remove its directory.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
        let _ = std::fs::remove_dir_all(&self.audit_dir);
    }
}

impl Drop for InProcessGateway {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The gateway, with its own Prometheus recorder (the daemon's buckets) behind `/metrics`.
fn build(config: Config) -> Result<(Gateway, PrometheusHandle), String> {
    // The gateway's own client settings (`provider::http_client`), plus `no_proxy`: a
    // proxy variable in the environment must not send loopback traffic elsewhere.
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(config.timeouts.connect_ms))
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .no_proxy()
        .build()
        .map_err(|e| format!("gateway HTTP client: {e}"))?;
    let mut prometheus = PrometheusBuilder::new();
    for h in llm_gateway::metrics::HISTOGRAM_BUCKETS {
        prometheus = prometheus
            .set_buckets_for_metric(Matcher::Full(h.metric.into()), h.bounds)
            .map_err(|e| format!("{}: {e}", h.metric))?;
    }
    let recorder = prometheus.build_recorder();
    let handle = recorder.handle();
    let render = handle.clone();
    let gateway = Gateway::builder(config)
        .http_client(client)
        .metrics_recorder(recorder)
        .serve_metrics(move || render.render())
        .build()
        .map_err(|e| format!("gateway config: {e}"))?;
    Ok((gateway, handle))
}
