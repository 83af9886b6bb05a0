//! The gateway in this process, on a tokio runtime of its own on its own OS threads,
//! so its CPU can be read per thread apart from the client's and the mock's, and
//! optionally pinned to one CPU (the owner thread pins itself before it builds the
//! runtime or the gateway, so every thread they spawn, `audit-writer` included,
//! inherits the affinity).

use crate::{pin, procfs};
use llm_gateway::config::ProviderConfig;
use llm_gateway::{Config, Gateway};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct InProcessGateway {
    pub url: String,
    /// Thread ids of the gateway runtime (its workers, its blocking pool, and the thread
    /// that owns it).
    pub tids: Arc<Mutex<Vec<u32>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
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

        let tids = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<String, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread_tids = tids.clone();
        let (threads, cpu) = (options.worker_threads, options.cpu);
        let thread = std::thread::Builder::new()
            .name("gw-runtime".into())
            .spawn(move || {
                // Before anything is built: threads spawned from here inherit it.
                if let Some(cpu) = cpu {
                    pin::current_thread(cpu);
                }
                record_tid(&thread_tids);
                let start_tids = thread_tids.clone();
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .thread_name("gw-worker")
                    .on_thread_start(move || {
                        if let Some(cpu) = cpu {
                            pin::current_thread(cpu);
                        }
                        record_tid(&start_tids);
                    })
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("gateway runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let gateway = match build(config) {
                        Ok(gateway) => gateway,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let listener = match crate::mock::listen(([127, 0, 0, 1], 0).into()) {
                        Ok(listener) => listener,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("gateway listener: {e}")));
                            return;
                        }
                    };
                    let url = match listener.local_addr() {
                        Ok(addr) => format!("http://{addr}"),
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("gateway listener: {e}")));
                            return;
                        }
                    };
                    // Serve from a task, so the accept loop runs on a worker, not here.
                    let server = tokio::spawn(async move {
                        let stopped = async {
                            let _ = stop_rx.await;
                        };
                        if let Err(e) = gateway
                            .serve(listener, stopped, Duration::from_secs(2))
                            .await
                        {
                            eprintln!("gateway stopped: {e}");
                        }
                    });
                    let _ = ready_tx.send(Ok(url));
                    let _ = server.await;
                });
                runtime.shutdown_timeout(Duration::from_secs(2));
            })
            .map_err(|e| format!("gateway thread: {e}"))?;
        let url = ready_rx
            .recv()
            .map_err(|_| "the gateway thread ended before serving".to_owned())??;
        Ok(InProcessGateway {
            url,
            tids,
            stop: Some(stop_tx),
            thread: Some(thread),
            audit_dir,
        })
    }

    /// Stop serving (open streams get 2 s), flush the audit store, remove its directory.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.audit_dir);
    }
}

impl Drop for InProcessGateway {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Note the calling thread's id in `tids`.
pub fn record_tid(tids: &Mutex<Vec<u32>>) {
    if let Some(tid) = procfs::current_tid() {
        if let Ok(mut tids) = tids.lock() {
            tids.push(tid);
        }
    }
}

fn build(config: Config) -> Result<Gateway, String> {
    // The gateway's own client settings (`provider::http_client`), plus `no_proxy`: a
    // proxy variable in the environment must not send loopback traffic elsewhere.
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(config.timeouts.connect_ms))
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .no_proxy()
        .build()
        .map_err(|e| format!("gateway HTTP client: {e}"))?;
    Gateway::builder(config)
        .http_client(client)
        .build()
        .map_err(|e| format!("gateway config: {e}"))
}
