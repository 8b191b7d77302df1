//! `rivet`: the command-line client for Rivet pipelines.
//!
//! `args.rs` declares the command line; [`run`] is the one place that maps each command
//! to the function that does it. Commands that need a server go through [`remote`], which
//! loads the configuration and connects first; the others run here.

mod args;
mod client;
mod commands;
mod config;
mod embedded;
mod error;
mod exit;
mod logs;
mod prompt;
mod resolve;
mod view;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use rivet_proto::v1 as pb;

pub use crate::args::Format;
use crate::args::{
    Cli, Command, ConfigCommand, InitCommand, JobCommand, PipelineCommand, RunnerCommand, RunnerTokenCommand,
    TokenCommand,
};
use crate::client::Client;
use crate::commands::job::Launch;

fn main() -> ExitCode {
    // An evaluation worker is this binary started by an evaluation pool (of `pipeline
    // check`, `run`, or the embedded orchestrator) with a hidden argument.
    if let Some(code) = rivet_evaluator::run_if_requested() {
        return code;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // `--help` and `--version` come here too, and are not failures.
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { exit::USAGE } else { exit::OK });
        }
    };
    let format = cli.output.unwrap_or(Format::Table);
    let overrides = config::Overrides { server: cli.server, token: cli.token };
    match run(cli.command, &overrides, format) {
        Ok(code) => ExitCode::from(code),
        Err(err) => match err.downcast_ref::<error::Error>() {
            Some(error) => {
                eprintln!("error: {error}");
                ExitCode::from(error.code)
            }
            None => {
                eprintln!("error: {err:#}");
                ExitCode::from(exit::FAILURE)
            }
        },
    }
}

/// Runs `command` and returns the process's exit code.
fn run(command: Command, overrides: &config::Overrides, format: Format) -> anyhow::Result<u8> {
    match command {
        Command::Pipeline(command) => match command {
            PipelineCommand::Check { files, output_short } => {
                commands::check::run(&files, output_short.unwrap_or(format))
            }
            PipelineCommand::Create { file } => {
                remote(overrides, async |client| commands::pipeline::create(client, &file, format).await)
            }
            PipelineCommand::List => remote(overrides, async |client| commands::pipeline::list(client, format).await),
            PipelineCommand::Show { pipeline, version, source } => remote(overrides, async |client| {
                commands::pipeline::show(client, &pipeline, version.unwrap_or(0), source, format).await
            }),
            PipelineCommand::Delete { pipeline, yes } => {
                remote(overrides, async |client| commands::pipeline::delete(client, &pipeline, yes).await)
            }
        },
        Command::Job(command) => match command {
            JobCommand::Launch { pipeline, inputs, follow, no_input, idempotency_key } => {
                let launch =
                    Launch { inputs: commands::job::collect_inputs(inputs)?, no_input, follow, idempotency_key };
                remote(overrides, async |client| commands::job::launch(client, &pipeline, &launch, format).await)
            }
            JobCommand::List { pipeline, states, limit } => {
                let states: Vec<pb::JobState> = states.into_iter().map(args::StateArg::to_proto).collect();
                remote(overrides, async |client| {
                    commands::job::list(client, pipeline.as_deref(), &states, limit, format).await
                })
            }
            JobCommand::Show { job } => {
                remote(overrides, async |client| commands::job::show(client, &job, format).await)
            }
            JobCommand::Logs { job, follow, timestamps } => {
                remote(overrides, async |client| commands::job::logs(client, &job, follow, timestamps, format).await)
            }
            JobCommand::Cancel { job } => {
                remote(overrides, async |client| commands::job::cancel(client, &job, format).await)
            }
            JobCommand::Rerun { job } => {
                remote(overrides, async |client| commands::job::rerun(client, &job, format).await)
            }
        },
        Command::Runner(command) => match command {
            RunnerCommand::List { online } => {
                remote(overrides, async |client| commands::runner::list(client, online, format).await)
            }
            RunnerCommand::Token(RunnerTokenCommand::Create { labels, expires, uses }) => {
                let labels = commands::runner::collect_labels(labels)?;
                remote(overrides, async |client| {
                    commands::runner::create_token(client, labels, expires, uses, format).await
                })
            }
            RunnerCommand::Revoke { id } => {
                remote(overrides, async |client| commands::runner::revoke(client, &id, format).await)
            }
        },
        Command::Secret(command) => {
            remote(overrides, async |client| commands::secret::run(client, command, format).await)
        }
        Command::Schedule(command) => {
            remote(overrides, async |client| commands::schedule::run(client, command, format).await)
        }
        Command::Trigger(command) => {
            remote(overrides, async |client| commands::trigger::run(client, command, format).await)
        }
        Command::Plugin(command) => {
            remote(overrides, async |client| commands::plugin::run(client, command, format).await)
        }
        Command::Token(command) => match command {
            TokenCommand::Create { role, name, expires } => {
                remote(overrides, async |client| commands::token::create(client, role, name, expires, format).await)
            }
            TokenCommand::List => remote(overrides, async |client| commands::token::list(client, format).await),
            TokenCommand::Revoke { id } => {
                remote(overrides, async |client| commands::token::revoke(client, &id, format).await)
            }
        },
        Command::Config(ConfigCommand::Show) => {
            let loaded = config::load(overrides)?;
            Ok(commands::settings::show(&loaded, format))
        }
        Command::Run { file, inputs, no_input, secrets, secret_file } => {
            let launch = Launch {
                inputs: commands::job::collect_inputs(inputs)?,
                no_input,
                follow: true,
                idempotency_key: None,
            };
            let secrets = commands::run::collect_secrets(&secrets, secret_file.as_deref())?;
            block_on(commands::run::run(&file, launch, secrets, format))
        }
        Command::Dev { listen, api_tokens, insecure } => block_on(commands::dev::run(listen, api_tokens, insecure)),
        Command::Init(InitCommand::Lua { dir, force }) => commands::init::run(&dir, force),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "rivet", &mut std::io::stdout());
            Ok(exit::OK)
        }
    }
}

/// Runs `command` against the configured server: loads the client settings, connects,
/// and hands `command` the client.
fn remote(
    overrides: &config::Overrides,
    command: impl AsyncFnOnce(&Client) -> Result<u8, error::Error>,
) -> anyhow::Result<u8> {
    block_on(async {
        let settings = config::load(overrides)?.settings;
        let client = Client::connect(&settings).await?;
        command(&client).await
    })
}

/// Runs `future` on a multi-threaded runtime.
fn block_on(future: impl Future<Output = Result<u8, error::Error>>) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| anyhow::Error::from(err).context("cannot start the async runtime"))?;
    runtime.block_on(future).map_err(anyhow::Error::from)
}
