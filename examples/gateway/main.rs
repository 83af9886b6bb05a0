//! Run with
//!
//! ```sh
//! cargo run --example gateway                      # 127.0.0.1:8788, one anthropic provider
//! cargo run --example gateway -- --config gateway.toml --listen 127.0.0.1:0
//! cargo run --example gateway -- start | status | stop      # as a background daemon
//! cargo run --example gateway -- logs --follow              # tail the audit store
//! cargo run --example gateway -- credentials store ANTHROPIC_API_KEY   # value from stdin
//! ```
//!
//! The daemon: reads the config, installs tracing and the Prometheus exporter (as the
//! global `metrics` recorder, rendered at `/metrics`), serves the library's router and
//! drains open streams on SIGTERM/Ctrl-C. The library does the work.

use clap::{Parser, Subcommand};
use llm_gateway::audit::{AuditQuery, AuditReader, AuditRecord};
use llm_gateway::config::SecretRef;
use llm_gateway::credentials::CredentialStore;
use llm_gateway::{Config, Gateway};
use opentelemetry_sdk::trace::SdkTracer;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Registry;

mod daemon;
mod exporter;

#[derive(Parser)]
#[command(
    name = "llm-gateway",
    version,
    about = "A streaming LLM gateway",
    after_help = "The background daemon (start/status/stop) keeps its state file and gateway.log in \
        its home: $LLM_GATEWAY_HOME, else ~/.config/llm-gateway. Exit codes: 0 ok, 1 a failure at run time, 2 a bad config or \
        command line, 3 `status`: no gateway is running."
)]
struct Cli {
    /// Log the gateway's own debug lines (each request's usage and cost), without the
    /// HTTP libraries' noise; `RUST_LOG` still wins when set.
    #[arg(short, long, global = true)]
    verbose: bool,
    /// TOML configuration file (every key: docs/configuration.md), for serving, `start`
    /// and `logs` (give it before the command: `--config gateway.toml start`).
    #[arg(long, env = "LLM_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides the config), for serving and `start`; port 0
    /// picks a free port.
    #[arg(long)]
    listen: Option<SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve in the foreground (the default).
    Serve {
        /// Write the state file `status` and `stop` read (set by `start`).
        #[arg(long, hide = true)]
        write_state: bool,
    },
    /// Start the gateway in the background, in its home directory (relative paths in the
    /// config resolve there); its output goes to `gateway.log` in that directory.
    Start,
    /// Stop the background gateway (SIGTERM, then wait for it to drain).
    Stop,
    /// Say whether the background gateway runs: pid, address, uptime, health.
    Status,
    /// Manage the credential store (`api_key = "credential:NAME"`).
    Credentials {
        #[command(subcommand)]
        command: CredentialsCommand,
    },
    /// Print recent audit records from the store at `[audit] path`, newest last.
    Logs {
        /// How many records.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Keep printing new records as they are written.
        #[arg(long)]
        follow: bool,
        /// Only this request.
        #[arg(long)]
        request_id: Option<String>,
        /// Only this model (requested or served).
        #[arg(long)]
        model: Option<String>,
        /// Only this provider.
        #[arg(long)]
        provider: Option<String>,
        /// Only records since this time (RFC 3339 or unix milliseconds).
        #[arg(long)]
        since: Option<String>,
        /// Print each record as one JSON line instead.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum CredentialsCommand {
    /// Store a secret; the value is read from stdin when not given (preferred: an
    /// argument shows in the process list).
    Store { name: String, value: Option<String> },
    /// Print a secret.
    Retrieve { name: String },
    /// List the stored names (never the values).
    List,
    /// Delete a secret.
    Delete { name: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = cli.verbose;
    // `serve` installs the subscriber itself, once its runtime can carry the OTLP export.
    if !matches!(cli.command, None | Some(Command::Serve { .. })) {
        init_tracing(verbose, None);
    }
    // These need no configuration.
    match &cli.command {
        Some(Command::Credentials { command }) => return daemon::credentials(command),
        Some(Command::Stop) => return daemon::stop(),
        Some(Command::Status) => return daemon::status(),
        _ => {}
    }
    let config = match load_config(&cli) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve { write_state: false }) {
        Command::Serve { write_state } => serve(config, write_state, verbose),
        Command::Start => daemon::start(&config),
        Command::Stop | Command::Status | Command::Credentials { .. } => {
            unreachable!("handled above")
        }
        Command::Logs {
            limit,
            follow,
            request_id,
            model,
            provider,
            since,
            json,
        } => {
            let query = AuditQuery {
                limit: Some(limit),
                request_id,
                model,
                provider,
                since,
                ..AuditQuery::default()
            };
            logs(&config, query, follow, json)
        }
    }
}

fn logs(config: &Config, query: AuditQuery, follow: bool, json: bool) -> ExitCode {
    // A relative path is where the foreground gateway ran (here), else in the home,
    // where the background one (`start`) runs.
    let in_home = llm_gateway::credentials::gateway_home()
        .ok()
        .map(|home| home.join(&config.audit.path));
    let path = match in_home {
        Some(in_home) if !config.audit.path.exists() && in_home.exists() => in_home,
        _ => config.audit.path.clone(),
    };
    let path = &path;
    if !path.exists() {
        eprintln!(
            "error: no audit store at {} (nor in the gateway's home; set [audit] path, or run \
             from the directory the gateway ran in)",
            path.display()
        );
        return ExitCode::FAILURE;
    }
    let reader = AuditReader::new(path);
    let mut last_seq = match reader.query_with_seq(&query) {
        Ok(records) => {
            let last = records.first().map_or(0, |(seq, _)| *seq);
            for (_, record) in records.iter().rev() {
                print_record(record, json);
            }
            last
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !follow {
        return ExitCode::SUCCESS;
    }
    loop {
        std::thread::sleep(Duration::from_millis(500));
        match reader.query_after(last_seq, 1000) {
            Ok(records) => {
                for (seq, record) in records {
                    last_seq = seq;
                    print_record(&record, json);
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
}

fn print_record(record: &AuditRecord, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(record) {
            println!("{line}");
        }
        return;
    }
    let tokens = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    println!(
        "{} {} {:>3} {:<19} {:<10} {:<28} in={} out={} cache_w={} cache_r={} cost={} {}ms{}{}",
        record.timestamp,
        record.request_id,
        record.status,
        serde_json::to_value(record.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        record.provider.as_deref().unwrap_or("-"),
        record
            .served_model
            .as_deref()
            .or(record.requested_model.as_deref())
            .unwrap_or("-"),
        tokens(record.usage.input_tokens),
        tokens(record.usage.output_tokens),
        tokens(record.usage.cache_creation_input_tokens),
        tokens(record.usage.cache_read_input_tokens),
        record
            .cost_usd
            .as_deref()
            .map_or_else(|| "unpriced".to_owned(), |c| format!("${c}")),
        record.latency_ms,
        if record.attempts.len() > 1 {
            format!(" attempts={}", record.attempts.len())
        } else {
            String::new()
        },
        record
            .error
            .as_deref()
            .map_or_else(String::new, |e| format!(" error={e:?}")),
    );
}

fn load_config(cli: &Cli) -> Result<Config, String> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => {
            let mut config = Config::default();
            // No config: the key comes from the environment, else the credential store,
            // else the client's own is passed through (`/gateway/health` says which).
            let key = if std::env::var_os("ANTHROPIC_API_KEY").is_some_and(|v| !v.is_empty()) {
                Some(SecretRef::Env("ANTHROPIC_API_KEY".into()))
            } else {
                CredentialStore::open_default()
                    .and_then(|store| store.get("ANTHROPIC_API_KEY"))
                    .ok()
                    .flatten()
                    .map(|_| SecretRef::Credential("ANTHROPIC_API_KEY".into()))
            };
            if let Some(provider) = config.providers.get_mut("anthropic") {
                provider.api_key = key;
            }
            config
        }
    };
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    config.check_exposure().map_err(|e| e.to_string())?;
    Ok(config)
}

/// The daemon's subscriber: its log lines on stderr and, with `[telemetry]`, the OTLP
/// span export.
fn init_tracing(verbose: bool, otlp: Option<OpenTelemetryLayer<Registry, SdkTracer>>) {
    let default_filter = if verbose {
        "info,llm_gateway=debug"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    let log = tracing_subscriber::fmt::layer()
        // Plain text in gateway.log and pipes; colours only on a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    tracing_subscriber::registry()
        .with(otlp)
        .with(filter)
        .with(log)
        .init();
}

fn serve(config: Config, write_state: bool, verbose: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let otlp = {
        let _runtime = runtime.enter();
        match llm_gateway::telemetry::otlp_layer(&config.telemetry) {
            Ok(otlp) => otlp,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let (otlp_layer, tracer) = match otlp {
        Some(otlp) => (Some(otlp.layer), Some(otlp.provider)),
        None => (None, None),
    };
    init_tracing(verbose, otlp_layer);
    let code = runtime.block_on(async move {
        let grace = Duration::from_millis(config.timeouts.shutdown_grace_ms);
        let listen = config.listen;
        // Before the gateway is built, so the series get their help texts.
        let prometheus = match exporter::install() {
            Ok(handle) => handle,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        tokio::spawn(exporter::upkeep(prometheus.clone()));
        let providers = config_providers(&config);
        let audit = if config.audit.enabled {
            config.audit.path.display().to_string()
        } else {
            "off".to_owned()
        };
        let gateway = match Gateway::builder(config)
            .serve_metrics(move || prometheus.render())
            .build()
        {
            Ok(gateway) => gateway,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("error: cannot listen on {listen}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let address = listener.local_addr().unwrap_or(listen);
        println!("listening on http://{address}");
        tracing::info!(
            address = %address,
            config = %cli_config_name(),
            providers = %providers,
            audit = %audit,
            "llm-gateway {} started",
            env!("CARGO_PKG_VERSION")
        );
        let _ = std::io::stdout().flush();
        let state = if write_state {
            match daemon::write_state(address) {
                Ok(path) => Some(path),
                Err(e) => {
                    eprintln!("error: cannot write the state file: {e}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            None
        };
        let served = gateway.serve(listener, shutdown_signal(), grace).await;
        if let Some(path) = state {
            daemon::remove_state(&path);
        }
        match served {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    });
    // Spans still queued go out now (the runtime still runs the export).
    if let Some(tracer) = tracer {
        if let Err(e) = tracer.shutdown() {
            eprintln!("warning: telemetry: {e}");
        }
    }
    code
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// The config file named on the command line or in `LLM_GATEWAY_CONFIG`, for the
/// start-up line.
fn cli_config_name() -> String {
    let mut args = std::env::args().skip_while(|a| a != "--config");
    args.nth(1)
        .or_else(|| std::env::var("LLM_GATEWAY_CONFIG").ok())
        .unwrap_or_else(|| "(none: defaults)".to_owned())
}

/// `name (kind)` of every configured provider.
fn config_providers(config: &Config) -> String {
    let names: Vec<String> = config
        .providers
        .iter()
        .map(|(name, provider)| format!("{name} ({:?})", provider.kind))
        .collect();
    names.join(", ")
}
