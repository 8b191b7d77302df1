//! `rivet-runner`: the runner agent. Connects out to the orchestrator, runs the jobs it is
//! given in Podman containers, and streams their logs back.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use rivet_runner::agent::{Agent, AgentConfig, Stop};
use rivet_runner::executor::PodmanRunner;
use rivet_telemetry::LogOutput;
use rivet_telemetry::metrics::MetricsServer;

/// Rivet's runner agent.
#[derive(Debug, Parser)]
#[command(name = "rivet-runner", version, about)]
struct Args {
    /// A TOML configuration file; `RIVET_RUNNER_*` environment variables override it.
    #[arg(long, short, env = "RIVET_RUNNER_CONFIG")]
    config: Option<PathBuf>,
    /// Print the effective configuration (secrets redacted) as JSON and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> ExitCode {
    // An evaluation worker is this binary started by an evaluation pool with a hidden
    // argument: any Rivet binary serves, so a host with only the runner can validate too.
    if let Some(code) = rivet_evaluator::run_if_requested() {
        return code;
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err:?}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = AgentConfig::load(args.config.as_deref()).context("invalid configuration")?;
    if args.print_config {
        println!("{}", serde_json::to_string_pretty(&config.redacted())?);
        return Ok(());
    }
    let telemetry = rivet_telemetry::trace::init(&config.telemetry, "rivet-runner", "info", LogOutput::Stdout)?;
    let metrics_listen = config.metrics.listen;
    let runner = PodmanRunner::connect(config.executor.clone()).await.context("cannot use podman")?;
    let agent = Agent::new(config, Arc::new(runner)).context("cannot start the agent")?;
    match agent.credential() {
        Some(credential) => tracing::info!(runner = %credential.runner_id, "runner starting with its credential"),
        None if agent.registration_pending() => tracing::info!("runner starting: it registers first"),
        None => tracing::info!(runner = %agent.runner_id(), "runner starting without a credential"),
    }
    let metrics = match metrics_listen {
        Some(listen) => Some(MetricsServer::bind(listen, agent.metrics_render()).await?),
        None => None,
    };
    let stop = Stop::default();
    tokio::spawn(watch_signals(stop.clone()));
    let ran = agent.run(stop).await;
    if let Some(metrics) = metrics {
        metrics.shutdown().await;
    }
    tracing::info!("runner stopped");
    telemetry.shutdown().await;
    Ok(ran?)
}

/// SIGTERM or Ctrl-C drains: running jobs finish, no new ones are taken. A second one, or
/// SIGQUIT, stops now: running jobs are cancelled and reported as failed.
async fn watch_signals(stop: Stop) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut quit)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::quit()))
    else {
        tracing::error!("cannot listen for signals; stop the runner with SIGKILL");
        return;
    };
    let mut drains = 0;
    loop {
        tokio::select! {
            _ = term.recv() => drains += 1,
            _ = int.recv() => drains += 1,
            _ = quit.recv() => drains = 2,
        }
        if drains == 1 {
            tracing::info!("draining: finishing running jobs, taking no new ones (signal again to stop now)");
            stop.drain.cancel();
        } else {
            tracing::warn!("stopping now: cancelling running jobs");
            stop.now.cancel();
        }
    }
}
