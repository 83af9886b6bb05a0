//! A proxy under test on a tokio runtime of its own, on its own OS thread, so its CPU
//! can be read per thread apart from the client's and the mock's, and optionally
//! pinned to one CPU: the owner thread pins itself before it builds the runtime or the
//! proxy, so every thread they spawn (`audit-writer`, tokio's blocking pool) inherits
//! the affinity, and each runtime worker pins itself again as it starts.

use crate::{pin, procfs};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// How the thread and its runtime are made.
pub struct ThreadSpec {
    /// The owner thread's name (`gw-runtime`).
    pub name: &'static str,
    /// The runtime workers' name (`gw-worker`).
    pub worker_name: &'static str,
    /// Worker threads of the runtime.
    pub worker_threads: usize,
    /// Pin the owner thread and every runtime thread here.
    pub cpu: Option<usize>,
    /// How long open connections get when it is stopped.
    pub shutdown: Duration,
}

/// A server on `127.0.0.1:PORT` until stopped.
pub struct ServerThread {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Thread ids of its runtime (workers, blocking pool, and the thread that owns it).
    pub tids: Arc<Mutex<Vec<u32>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Start the thread and runtime, bind `127.0.0.1:0`, and return once it serves.
    ///
    /// `setup` runs on the pinned owner thread inside the runtime: it builds the
    /// server and returns the future that serves `listener` until the receiver fires.
    pub fn start<S, F>(spec: ThreadSpec, setup: S) -> Result<ServerThread, String>
    where
        S: FnOnce(tokio::net::TcpListener, oneshot::Receiver<()>) -> Result<F, String>
            + Send
            + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let tids = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<String, String>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread_tids = tids.clone();
        let ThreadSpec {
            name,
            worker_name,
            worker_threads,
            cpu,
            shutdown,
        } = spec;
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                // Before anything is built: threads spawned from here inherit it.
                if let Some(cpu) = cpu {
                    pin::current_thread(cpu);
                }
                record_tid(&thread_tids);
                let start_tids = thread_tids.clone();
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(worker_threads)
                    .thread_name(worker_name)
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
                        let _ = ready_tx.send(Err(format!("{name}: tokio runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let bound = crate::mock::listen(([127, 0, 0, 1], 0).into()).and_then(|l| {
                        let url = format!("http://{}", l.local_addr()?);
                        Ok((l, url))
                    });
                    let (listener, url) = match bound {
                        Ok(bound) => bound,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("{name}: listener: {e}")));
                            return;
                        }
                    };
                    let serving = match setup(listener, stop_rx) {
                        Ok(serving) => serving,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    // Served from a task, so the accept loop runs on a worker, not here.
                    let server = tokio::spawn(serving);
                    let _ = ready_tx.send(Ok(url));
                    let _ = server.await;
                });
                runtime.shutdown_timeout(shutdown);
            })
            .map_err(|e| format!("{name} thread: {e}"))?;
        let url = ready_rx
            .recv()
            .map_err(|_| format!("the {name} thread ended before serving"))??;
        Ok(ServerThread {
            url,
            tids,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Stop serving, end its runtime, join its thread.
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
    }
}

impl Drop for ServerThread {
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
