//! `start`, `stop`, `status` and `credentials`: the daemon's management commands.

use super::CredentialsCommand;
use llm_gateway::config::Secret;
use llm_gateway::credentials::{gateway_home, CredentialStore};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// `status`/`stop` exit code when nothing runs (the LSB init-script convention).
const NOT_RUNNING: u8 = 3;

#[derive(Serialize, Deserialize)]
struct State {
    pid: u32,
    address: SocketAddr,
    started_at_ms: u64,
    log: Option<PathBuf>,
}

fn state_path() -> Result<PathBuf, String> {
    gateway_home()
        .map(|home| home.join("gateway.state.json"))
        .map_err(|e| e.to_string())
}

/// Written by the background `serve` once it listens.
pub(crate) fn write_state(address: SocketAddr) -> Result<PathBuf, String> {
    let path = state_path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let state = State {
        pid: std::process::id(),
        address,
        started_at_ms: now_ms(),
        log: gateway_home().ok().map(|home| home.join("gateway.log")),
    };
    let text = serde_json::to_vec_pretty(&state).map_err(|e| e.to_string())?;
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text)
        .and_then(|()| std::fs::rename(&temp, &path))
        .map_err(|e| e.to_string())?;
    Ok(path)
}

/// Removed on a clean exit, if it is still ours.
pub(crate) fn remove_state(path: &Path) {
    if read_state(path).is_some_and(|s| s.pid == std::process::id()) {
        let _ = std::fs::remove_file(path);
    }
}

fn read_state(path: &Path) -> Option<State> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn is_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if proc.is_dir() {
        // A zombie has exited: it does not count as running.
        return std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).is_ok_and(
            |stat| {
                !stat
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            },
        );
    }
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The running daemon's state, or why there is none.
fn running() -> Result<(PathBuf, State), ExitCode> {
    let path = match state_path() {
        Ok(path) => path,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::FAILURE);
        }
    };
    match read_state(&path) {
        Some(state) if is_alive(state.pid) => Ok((path, state)),
        Some(state) => {
            let _ = std::fs::remove_file(&path);
            println!(
                "llm-gateway is not running (pid {} has exited; stale state removed)",
                state.pid
            );
            Err(ExitCode::from(NOT_RUNNING))
        }
        None => {
            println!("llm-gateway is not running");
            Err(ExitCode::from(NOT_RUNNING))
        }
    }
}

pub(crate) fn start(config: &llm_gateway::Config) -> ExitCode {
    let live = state_path()
        .ok()
        .and_then(|path| read_state(&path))
        .filter(|state| is_alive(state.pid));
    if let Some(state) = live {
        eprintln!(
            "error: llm-gateway is already running (pid {}, http://{})",
            state.pid, state.address
        );
        return ExitCode::FAILURE;
    }
    let (home, state_path) = match (gateway_home(), state_path()) {
        (Ok(home), Ok(state)) => (home, state),
        (Err(e), _) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&home) {
        eprintln!("error: cannot create {}: {e}", home.display());
        return ExitCode::FAILURE;
    }
    let log_path = home.join("gateway.log");
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
    {
        Ok(log) => log,
        Err(e) => {
            eprintln!("error: cannot open {}: {e}", log_path.display());
            return ExitCode::FAILURE;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The child re-reads the same config; `--listen` pins the address chosen here.
    let mut args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg != "start")
        .collect();
    // The child runs in the home, so relative paths in the config (the audit store, the
    // key store) land there, where `logs` finds them; the config file itself is named
    // by its absolute path.
    absolute_config_arg(&mut args);
    if !args
        .iter()
        .any(|a| a == "--listen" || a.starts_with("--listen="))
    {
        args.push("--listen".into());
        args.push(config.listen.to_string());
    }
    args.push("serve".into());
    args.push("--write-state".into());
    let mut command = Command::new(exe);
    if let Some(config) = std::env::var_os("LLM_GATEWAY_CONFIG") {
        if let Ok(config) = std::path::absolute(config) {
            command.env("LLM_GATEWAY_CONFIG", config);
        }
    }
    command
        .current_dir(&home)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(match log.try_clone() {
            Ok(log) => Stdio::from(log),
            Err(_) => Stdio::null(),
        });
    #[cfg(unix)]
    {
        // Its own process group: a Ctrl-C in this terminal does not reach it.
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("error: cannot start the gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(state) = read_state(&state_path).filter(|s| s.pid == child.id()) {
            println!(
                "started llm-gateway (pid {}) on http://{}; logs: {}",
                state.pid,
                state.address,
                log_path.display()
            );
            return ExitCode::SUCCESS;
        }
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!(
                "error: the gateway exited at start-up ({status}); see {}",
                log_path.display()
            );
            return ExitCode::FAILURE;
        }
        if Instant::now() > deadline {
            eprintln!(
                "error: the gateway did not come up in 30 s; see {}",
                log_path.display()
            );
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn stop() -> ExitCode {
    let (path, state) = match running() {
        Ok(found) => found,
        Err(code) => return code,
    };
    let sent = Command::new("kill")
        .args(["-TERM", &state.pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if !sent {
        eprintln!("error: could not signal pid {}", state.pid);
        return ExitCode::FAILURE;
    }
    // It drains open streams (up to its grace period) before exiting.
    let deadline = Instant::now() + Duration::from_secs(120);
    while is_alive(state.pid) {
        if Instant::now() > deadline {
            eprintln!("error: pid {} is still running after 120 s", state.pid);
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(&path);
    println!("stopped llm-gateway (pid {})", state.pid);
    ExitCode::SUCCESS
}

pub(crate) fn status() -> ExitCode {
    let (_, state) = match running() {
        Ok(found) => found,
        Err(code) => return code,
    };
    let uptime = Duration::from_millis(now_ms().saturating_sub(state.started_at_ms));
    let started = SystemTime::UNIX_EPOCH + Duration::from_millis(state.started_at_ms);
    println!("llm-gateway is running");
    println!("  pid:      {}", state.pid);
    println!("  address:  http://{}", state.address);
    println!("  started:  {}", humantime::format_rfc3339_seconds(started));
    println!(
        "  uptime:   {}",
        humantime::format_duration(Duration::from_secs(uptime.as_secs()))
    );
    if let Some(log) = &state.log {
        println!("  log:      {}", log.display());
    }
    let health = health(state.address);
    println!("  health:   {health}");
    ExitCode::SUCCESS
}

fn health(address: SocketAddr) -> String {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return format!("unknown ({e})"),
    };
    runtime.block_on(async {
        let client = match reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(3))
            .build()
        {
            Ok(client) => client,
            Err(e) => return format!("unknown ({e})"),
        };
        match client
            .get(format!("http://{address}/gateway/health"))
            .send()
            .await
        {
            Ok(response) => response
                .text()
                .await
                .unwrap_or_else(|e| format!("unreadable ({e})")),
            Err(e) => format!("no answer ({e})"),
        }
    })
}

pub(crate) fn credentials(command: &CredentialsCommand) -> ExitCode {
    let store = match CredentialStore::open_default() {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        CredentialsCommand::Store { name, value } => {
            let value = match value {
                Some(value) => value.clone(),
                None => {
                    let mut text = String::new();
                    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                        eprintln!("error: cannot read the value from stdin: {e}");
                        return ExitCode::FAILURE;
                    }
                    text.trim_end_matches(['\n', '\r']).to_owned()
                }
            };
            if value.is_empty() {
                eprintln!("error: the value is empty");
                return ExitCode::FAILURE;
            }
            store
                .set(name, &Secret::new(value))
                .map(|()| println!("stored {name} in {}", store.path().display()))
        }
        CredentialsCommand::Retrieve { name } => match store.get(name) {
            Ok(Some(secret)) => {
                println!("{}", secret.expose());
                Ok(())
            }
            Ok(None) => {
                eprintln!("error: no credential named {name}");
                return ExitCode::FAILURE;
            }
            Err(e) => Err(e),
        },
        CredentialsCommand::List => store.names().map(|names| {
            for name in names {
                println!("{name}");
            }
        }),
        CredentialsCommand::Delete { name } => match store.remove(name) {
            Ok(true) => {
                println!("deleted {name}");
                Ok(())
            }
            Ok(false) => {
                eprintln!("error: no credential named {name}");
                return ExitCode::FAILURE;
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Turn the value of `--config PATH` (or `--config=PATH`) in `args` into an absolute path.
fn absolute_config_arg(args: &mut [String]) {
    let absolute = |path: &str| {
        std::path::absolute(path).map_or_else(|_| path.to_owned(), |p| p.display().to_string())
    };
    let mut next_is_config = false;
    for arg in args.iter_mut() {
        if next_is_config {
            *arg = absolute(arg);
            next_is_config = false;
        } else if arg == "--config" {
            next_is_config = true;
        } else if let Some(path) = arg.strip_prefix("--config=") {
            *arg = format!("--config={}", absolute(path));
        }
    }
}
