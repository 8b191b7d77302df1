//! `rivet`: the command-line client for Rivet pipelines.

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

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use rivet_proto::v1 as pb;

use crate::client::Client;
use crate::commands::job::Launch;

/// Rivet: CI/CD pipelines as Lua code, every command in a container.
///
/// The server comes from --server, RIVET_SERVER, `server` in
/// $XDG_CONFIG_HOME/rivet/config.toml, or http://127.0.0.1:7420 (`rivet dev`), in that
/// order; the API token likewise from --token, RIVET_TOKEN or `token`.
#[derive(Debug, Parser)]
#[command(name = "rivet", version, about, propagate_version = true, after_long_help = exit::HELP)]
struct Cli {
    /// The Rivet server's gRPC address [env: RIVET_SERVER] [default: http://127.0.0.1:7420].
    #[arg(long, global = true, value_name = "URL")]
    server: Option<String>,
    /// The API token to present [env: RIVET_TOKEN].
    #[arg(long, global = true, value_name = "TOKEN")]
    token: Option<String>,
    /// How list and show commands print: a table for people, or JSON for machines.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    output: Option<Format>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with pipeline definitions.
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// Launch, inspect, follow and cancel jobs.
    #[command(subcommand)]
    Job(JobCommand),
    /// See the runners.
    #[command(subcommand)]
    Runner(RunnerCommand),
    /// Create, list and revoke API tokens, each with a role (admins only).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Publish and list Lua plugins, which pipelines name in `plugins = { "git@1.2.0" }`.
    #[command(subcommand)]
    Plugin(commands::plugin::PluginCommand),
    /// See the client's settings.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run a pipeline once on an embedded server and runner, following its log; exits
    /// with the job's result. Nothing needs to be running (but podman).
    Run {
        /// The Lua file.
        file: PathBuf,
        /// An input value; repeat for each input.
        #[arg(long = "input", short, value_name = "NAME=VALUE", value_parser = commands::job::parse_input)]
        inputs: Vec<(String, String)>,
        /// Never ask for inputs, even on a terminal: fail listing every missing one.
        #[arg(long)]
        no_input: bool,
    },
    /// Keep an embedded server and runner up for other `rivet` commands, until Ctrl-C.
    Dev {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:7420", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Require this API token from clients (a bootstrap token with the admin role);
        /// repeat for several. Without one, anyone who can reach the address may use the
        /// server until the first `rivet token create`.
        #[arg(long = "api-token", value_name = "TOKEN")]
        api_tokens: Vec<String>,
        /// Allow a --listen address off loopback. The embedded server speaks plain text and
        /// accepts any runner, so anyone who can reach the address can use it.
        #[arg(long)]
        insecure: bool,
    },
    /// Set up editor support.
    #[command(subcommand)]
    Init(InitCommand),
    /// Print a shell completion script, e.g. `rivet completions bash > ~/.local/share/bash-completion/completions/rivet`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum PipelineCommand {
    /// Validate pipeline scripts without running them; reports every problem at once.
    Check {
        /// The Lua files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The short form of --output.
        #[arg(short = 'o', value_enum, hide = true)]
        output_short: Option<Format>,
    },
    /// Store a pipeline script on the server (a new version when its name exists).
    Create {
        /// The Lua file.
        file: PathBuf,
    },
    /// List the pipelines, each at its latest version.
    List,
    /// Show a pipeline: its inputs, stages and runner tags.
    #[command(disable_version_flag = true)]
    Show {
        /// A pipeline name, a version id, or the start of one.
        pipeline: String,
        /// The version to show, with a name; the latest by default.
        #[arg(long, value_name = "N")]
        version: Option<u32>,
        /// Print the Lua source too.
        #[arg(long)]
        source: bool,
    },
    /// Delete a pipeline and all its versions; its jobs stay readable.
    Delete {
        /// A pipeline name, a version id, or the start of one.
        pipeline: String,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long, short)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// Launch a job of a pipeline. On a terminal, asks for every input not given.
    Launch {
        /// A pipeline name, a version id, or the start of one.
        pipeline: String,
        /// An input value; repeat for each input.
        #[arg(long = "input", short, value_name = "NAME=VALUE", value_parser = commands::job::parse_input)]
        inputs: Vec<(String, String)>,
        /// Follow the job's log until it ends, and exit with its result.
        #[arg(long, short)]
        follow: bool,
        /// Never ask for inputs, even on a terminal: fail listing every missing one.
        #[arg(long)]
        no_input: bool,
        /// A retried launch with the same key returns the first job instead of a new one.
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
    },
    /// List jobs, newest first.
    List {
        /// Only jobs of this pipeline (a name, a version id, or the start of one).
        #[arg(long, short)]
        pipeline: Option<String>,
        /// Only jobs in this state; repeat for several.
        #[arg(long = "state", short, value_enum, value_name = "STATE")]
        states: Vec<StateArg>,
        /// The most jobs to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show a job: its state, stages with durations, and why it failed.
    Show {
        /// A job id or the start of one.
        job: String,
    },
    /// Print a job's log, coloured by level, with a header per stage.
    Logs {
        /// A job id or the start of one.
        job: String,
        /// Keep printing new lines until the job ends, and exit with its result.
        #[arg(long, short)]
        follow: bool,
        /// Prefix each line with its time.
        #[arg(long, short)]
        timestamps: bool,
    },
    /// Cancel a job.
    Cancel {
        /// A job id or the start of one.
        job: String,
    },
}

#[derive(Debug, Subcommand)]
enum RunnerCommand {
    /// List the runners, online, offline and revoked.
    List {
        /// Only the runners connected now.
        #[arg(long)]
        online: bool,
    },
    /// Registration tokens for new runners.
    #[command(subcommand)]
    Token(RunnerTokenCommand),
    /// Revoke a runner's credential: its session ends at once and its jobs are requeued.
    Revoke {
        /// The runner's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum RunnerTokenCommand {
    /// Create a registration token (shown once): a new runner presents it once to receive
    /// its own credential.
    Create {
        /// A label runners registering with the token get, instead of the ones they ask
        /// for (`os` and `arch` still come from the machine unless given); repeatable.
        #[arg(long = "label", short, value_name = "KEY=VALUE", value_parser = commands::job::parse_input)]
        labels: Vec<(String, String)>,
        /// How long the token stays valid, e.g. `30m`, `12h`, `7d`; no expiry when unset.
        #[arg(long, value_name = "DURATION", value_parser = commands::runner::parse_duration)]
        expires: Option<std::time::Duration>,
        /// How many runners may register with it; no limit when unset.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        uses: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create an API token. It is printed once, on stdout, and cannot be shown again.
    Create {
        /// What the token may do: viewer (read), operator (also launch and cancel jobs),
        /// admin (everything).
        #[arg(long, value_enum)]
        role: commands::token::RoleArg,
        /// What it is for, e.g. `ci` or a person's name.
        #[arg(long)]
        name: Option<String>,
        /// How long it works, e.g. `30d` or `12h`; without it, until revoked.
        #[arg(long, value_name = "DURATION", value_parser = commands::token::parse_expiry)]
        expires: Option<std::time::Duration>,
    },
    /// List the tokens (never their secrets), revoked and expired ones included.
    List,
    /// Revoke a token: it stops working at once.
    Revoke {
        /// A token id or the start of one.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print each effective setting and where it came from.
    Show,
}

#[derive(Debug, Subcommand)]
enum InitCommand {
    /// Write `.luarc.json` and `.rivet/stubs/` so a Lua language server knows Rivet's modules.
    Lua {
        /// The project directory to write into.
        #[arg(long, short = 'o', default_value = ".")]
        dir: PathBuf,
        /// Overwrite a `.luarc.json` that was edited by hand.
        #[arg(long)]
        force: bool,
    },
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people (`text` works too).
    #[value(alias = "text")]
    Table,
    /// For machines: one JSON document on stdout (JSON lines for logs).
    Json,
}

/// Job states, for `job list --state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StateArg {
    Queued,
    Assigned,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
    Lost,
}

impl StateArg {
    fn to_proto(self) -> pb::JobState {
        match self {
            StateArg::Queued => pb::JobState::Queued,
            StateArg::Assigned => pb::JobState::Assigned,
            StateArg::Running => pb::JobState::Running,
            StateArg::Succeeded => pb::JobState::Succeeded,
            StateArg::Failed => pb::JobState::Failed,
            StateArg::Cancelled => pb::JobState::Cancelled,
            StateArg::TimedOut => pb::JobState::TimedOut,
            StateArg::Lost => pb::JobState::Lost,
        }
    }
}

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
    let result: anyhow::Result<u8> = match cli.command {
        Command::Pipeline(PipelineCommand::Check { files, output_short }) => {
            commands::check::run(&files, output_short.unwrap_or(format))
        }
        Command::Init(InitCommand::Lua { dir, force }) => commands::init::run(&dir, force),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "rivet", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::Config(ConfigCommand::Show) => config::load(&overrides)
            .map(|loaded| commands::settings::show(&loaded, format))
            .map_err(anyhow::Error::from),
        Command::Run { file, inputs, no_input } => {
            commands::job::collect_inputs(inputs).map_err(anyhow::Error::from).and_then(|inputs| {
                let launch = Launch { inputs, no_input, follow: true, idempotency_key: None };
                block_on(commands::run::run(&file, launch, format))
            })
        }
        Command::Dev { listen, api_tokens, insecure } => block_on(commands::dev::run(listen, api_tokens, insecure)),
        command => block_on(remote(command, &overrides, format)),
    };
    match result {
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

/// Runs `future` on a multi-threaded runtime.
fn block_on(future: impl Future<Output = Result<u8, error::Error>>) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| anyhow::Error::from(err).context("cannot start the async runtime"))?;
    runtime.block_on(future).map_err(anyhow::Error::from)
}

/// Runs a command that talks to a server.
async fn remote(command: Command, overrides: &config::Overrides, format: Format) -> Result<u8, error::Error> {
    let settings = config::load(overrides)?.settings;
    let client = Client::connect(&settings).await?;
    match command {
        Command::Pipeline(command) => match command {
            PipelineCommand::Create { file } => commands::pipeline::create(&client, &file, format).await,
            PipelineCommand::List => commands::pipeline::list(&client, format).await,
            PipelineCommand::Show { pipeline, version, source } => {
                commands::pipeline::show(&client, &pipeline, version.unwrap_or(0), source, format).await
            }
            PipelineCommand::Delete { pipeline, yes } => commands::pipeline::delete(&client, &pipeline, yes).await,
            PipelineCommand::Check { .. } => unreachable!("`pipeline check` runs locally"),
        },
        Command::Job(command) => match command {
            JobCommand::Launch { pipeline, inputs, follow, no_input, idempotency_key } => {
                let launch =
                    Launch { inputs: commands::job::collect_inputs(inputs)?, no_input, follow, idempotency_key };
                commands::job::launch(&client, &pipeline, &launch, format).await
            }
            JobCommand::List { pipeline, states, limit } => {
                let states: Vec<pb::JobState> = states.into_iter().map(StateArg::to_proto).collect();
                commands::job::list(&client, pipeline.as_deref(), &states, limit, format).await
            }
            JobCommand::Show { job } => commands::job::show(&client, &job, format).await,
            JobCommand::Logs { job, follow, timestamps } => {
                commands::job::logs(&client, &job, follow, timestamps, format).await
            }
            JobCommand::Cancel { job } => commands::job::cancel(&client, &job, format).await,
        },
        Command::Runner(RunnerCommand::List { online }) => commands::runner::list(&client, online, format).await,
        Command::Runner(RunnerCommand::Token(RunnerTokenCommand::Create { labels, expires, uses })) => {
            let labels = commands::runner::collect_labels(labels)?;
            commands::runner::create_token(&client, labels, expires, uses, format).await
        }
        Command::Runner(RunnerCommand::Revoke { id }) => commands::runner::revoke(&client, &id, format).await,
        Command::Token(command) => match command {
            TokenCommand::Create { role, name, expires } => {
                commands::token::create(&client, role, name, expires, format).await
            }
            TokenCommand::List => commands::token::list(&client, format).await,
            TokenCommand::Revoke { id } => commands::token::revoke(&client, &id, format).await,
        },
        Command::Plugin(command) => commands::plugin::run(&client, command, format).await,
        Command::Config(_)
        | Command::Init(_)
        | Command::Completions { .. }
        | Command::Run { .. }
        | Command::Dev { .. } => {
            unreachable!("runs locally")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own consistency checks, which otherwise only run when a command is built.
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
