//! `rivet dev`: an embedded orchestrator and runner kept up for other `rivet` commands,
//! with its SQLite database under `$XDG_DATA_HOME/rivet/` (or `~/.local/share/rivet/`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::embedded::{self, Embedded, Options};
use crate::error::Error;
use crate::exit;

/// `$XDG_DATA_HOME/rivet`, else `$HOME/.local/share/rivet`.
fn data_dir() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(dir).join("rivet"));
    }
    match std::env::var_os("HOME").filter(|dir| !dir.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/rivet")),
        None => {
            Err(Error::new(exit::USAGE, "cannot tell where to keep the dev database").hint("set XDG_DATA_HOME or HOME"))
        }
    }
}

/// `rivet dev [--listen ADDR] [--api-token TOKEN]... [--insecure]`: serves until Ctrl-C or SIGTERM.
pub async fn run(listen: SocketAddr, api_tokens: Vec<String>, insecure: bool) -> Result<u8, Error> {
    let telemetry = embedded::init_tracing("warn,rivet_orchestrator=info,rivet_runner=info");
    let data = data_dir()?;
    let database = data.join("dev.db");
    let options = Options {
        listen,
        database: database.clone(),
        state_dir: data.join("dev"),
        runner_name: "rivet dev".to_owned(),
        capacity: 2,
        api_tokens: api_tokens.clone(),
        insecure,
    };
    let server = Embedded::start(options).await?;
    let url = server.url();
    let default = url == crate::config::DEFAULT_SERVER;
    println!("rivet dev: listening on {url}");
    println!("  database: {} (SQLite), one runner with 2 slots", database.display());
    if default {
        println!("  the CLI uses this server by default; elsewhere set RIVET_SERVER={url}");
    } else {
        println!("  point the CLI at it: export RIVET_SERVER={url}  (or pass --server {url})");
    }
    if !api_tokens.is_empty() {
        println!("  clients must present an API token: export RIVET_TOKEN=<one of the --api-token values>");
    }
    println!("  try: rivet pipeline create examples/hello.lua && rivet job launch hello --follow");
    println!("  stop with Ctrl-C");
    let _ = std::io::stdout().flush();

    wait_for_stop().await;
    eprintln!("rivet dev: shutting down");
    server.shutdown(true).await;
    if let Some(telemetry) = telemetry {
        telemetry.shutdown().await;
    }
    Ok(exit::OK)
}

/// Waits for Ctrl-C or SIGTERM.
async fn wait_for_stop() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
