//! `rivet-orchestrator`: Rivet's control plane.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rivet_orchestrator::config::Config;
use rivet_orchestrator::domain::{keyring, secrets, triggers};
use rivet_orchestrator::server;
use rivet_telemetry::LogOutput;
use tracing_subscriber::EnvFilter;

/// Rivet's orchestrator: gRPC API, storage, dispatch, leases and live logs.
#[derive(Debug, Parser)]
#[command(name = "rivet-orchestrator", version, about)]
struct Args {
    /// A TOML configuration file; `RIVET_*` environment variables override it.
    #[arg(long, short, env = "RIVET_CONFIG")]
    config: Option<PathBuf>,
    /// Print the effective configuration (secrets redacted) as JSON and exit.
    #[arg(long)]
    print_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Maintenance commands; without one, the orchestrator serves.
#[derive(Debug, Subcommand)]
enum Command {
    /// Re-encrypt every stored secret and trigger webhook secret under the current key (`secrets.key_file` or
    /// `secrets.key`), opening each with whichever configured key sealed it. Safe while
    /// replicas serve, once each of them has both keys configured.
    RotateKey,
    /// Print a new random secrets key (64 hex digits) for `secrets.key_file`.
    GenerateKey,
}

fn main() -> ExitCode {
    // An evaluation worker is this binary started by the pool with a hidden argument: it
    // must not parse the command line or start a runtime.
    if let Some(code) = rivet_evaluator::run_if_requested() {
        return code;
    }
    match serve() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err:?}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn serve() -> anyhow::Result<()> {
    let args = Args::parse();
    // Parse the configuration before binding anything: an invalid one exits clearly. What
    // it warns about is logged before the telemetry it configures is installed.
    let early = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .finish();
    let config = tracing::subscriber::with_default(early, || Config::load(args.config.as_deref()))
        .context("invalid configuration")?;
    if args.print_config {
        println!("{}", serde_json::to_string_pretty(&config.redacted())?);
        return Ok(());
    }
    let telemetry = rivet_telemetry::trace::init(&config.telemetry, "rivet-orchestrator", "info", LogOutput::Stdout)?;
    match args.command {
        Some(Command::GenerateKey) => {
            println!("{}", keyring::generate_key()?.as_str());
            return Ok(());
        }
        Some(Command::RotateKey) => return rotate_key(&config).await,
        None => {}
    }
    let (store, coord) = server::connect_backends(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let running = server::start(config, store, coord, listener).await?;
    shutdown_signal().await;
    tracing::info!("shutting down: draining runners");
    running.shutdown().await;
    telemetry.shutdown().await;
    Ok(())
}

/// `rivet-orchestrator rotate-key`.
async fn rotate_key(config: &Config) -> anyhow::Result<()> {
    let keys = keyring::Keyring::load(&config.secrets).context("cannot load the secrets keys")?;
    let (store, _coord) = server::connect_backends(config).await?;
    let rotation = secrets::rotate(store.as_ref(), &keys).await.context("cannot re-encrypt the secrets")?;
    println!(
        "re-encrypted {} secret(s) under key {}; {} already were; {} changed while this ran (already under the \
         current key, or deleted)",
        rotation.resealed,
        keys.current_id().unwrap_or_default(),
        rotation.current,
        rotation.raced
    );
    let triggers = triggers::rotate(store.as_ref(), &keys).await.context("cannot re-encrypt the trigger secrets")?;
    println!(
        "re-encrypted {} trigger secret(s); {} already were; {} deleted while this ran",
        triggers.resealed, triggers.current, triggers.raced
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
