//! The command line: every subcommand, argument and flag, as clap types. `main.rs`
//! dispatches on them; the commands themselves live in `commands/`.
//!
//! A new subcommand is a variant here (with its arguments) and one arm in `main::run`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use rivet_proto::v1 as pb;

use crate::commands::job::parse_input;
use crate::commands::token::RoleArg;
use crate::exit;

/// Rivet: CI/CD pipelines as Lua code, every command in a container.
///
/// The server comes from --server, RIVET_SERVER, `server` in
/// $XDG_CONFIG_HOME/rivet/config.toml, or http://127.0.0.1:7420 (`rivet dev`), in that
/// order; the API token likewise from --token, RIVET_TOKEN or `token`.
#[derive(Debug, Parser)]
#[command(name = "rivet", version, about, propagate_version = true, after_long_help = exit::HELP)]
pub struct Cli {
    /// The Rivet server's gRPC address [env: RIVET_SERVER] [default: http://127.0.0.1:7420].
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// The API token to present [env: RIVET_TOKEN].
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// How list and show commands print: a table for people, or JSON for machines.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// Set, list and delete the secrets pipelines declare.
    #[command(subcommand)]
    Secret(crate::commands::secret::SecretCommand),
    /// Launch pipelines on cron schedules: create, list, delete, pause and resume them.
    #[command(subcommand)]
    Schedule(crate::commands::schedule::ScheduleCommand),
    /// Create, list and delete triggers: forge webhooks that launch a pipeline.
    #[command(subcommand)]
    Trigger(crate::commands::trigger::TriggerCommand),
    /// Publish and list Lua plugins, which pipelines name in `plugins = { "git@1.2.0" }`.
    #[command(subcommand)]
    Plugin(crate::commands::plugin::PluginCommand),
    /// See the client's settings.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run a pipeline once on an embedded server and runner, following its log; exits
    /// with the job's result. Nothing needs to be running (but podman).
    Run {
        /// The Lua file.
        file: PathBuf,
        /// An input value; repeat for each input.
        #[arg(long = "input", short, value_name = "NAME=VALUE", value_parser = parse_input)]
        inputs: Vec<(String, String)>,
        /// Never ask for inputs, even on a terminal: fail listing every missing one.
        #[arg(long)]
        no_input: bool,
        /// A secret the pipeline declares, its value taken from the environment variable of
        /// the same name (never from the command line); repeat for each secret.
        #[arg(long = "secret", short = 's', value_name = "NAME")]
        secrets: Vec<String>,
        /// A file of secrets, one `NAME=VALUE` per line (`#` starts a comment line).
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
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
pub enum PipelineCommand {
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
pub enum JobCommand {
    /// Launch a job of a pipeline. On a terminal, asks for every input not given.
    Launch {
        /// A pipeline name, a version id, or the start of one.
        pipeline: String,
        /// An input value; repeat for each input.
        #[arg(long = "input", short, value_name = "NAME=VALUE", value_parser = parse_input)]
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
    /// Run a job again: the same pipeline version with the same inputs. The new job
    /// records which one it reruns.
    Rerun {
        /// A job id or the start of one.
        job: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunnerCommand {
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
pub enum RunnerTokenCommand {
    /// Create a registration token (shown once): a new runner presents it once to receive
    /// its own credential.
    Create {
        /// A label runners registering with the token get, instead of the ones they ask
        /// for (`os` and `arch` still come from the machine unless given); repeatable.
        #[arg(long = "label", short, value_name = "KEY=VALUE", value_parser = parse_input)]
        labels: Vec<(String, String)>,
        /// How long the token stays valid, e.g. `30m`, `12h`, `7d`; no expiry when unset.
        #[arg(long, value_name = "DURATION", value_parser = parse_expiry)]
        expires: Option<Duration>,
        /// How many runners may register with it; no limit when unset.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        uses: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token. It is printed once, on stdout, and cannot be shown again.
    Create {
        /// What the token may do: viewer (read), operator (also launch and cancel jobs),
        /// admin (everything).
        #[arg(long, value_enum)]
        role: RoleArg,
        /// What it is for, e.g. `ci` or a person's name.
        #[arg(long)]
        name: Option<String>,
        /// How long it works, e.g. `30d` or `12h`; without it, until revoked.
        #[arg(long, value_name = "DURATION", value_parser = parse_expiry)]
        expires: Option<Duration>,
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
pub enum ConfigCommand {
    /// Print each effective setting and where it came from.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum InitCommand {
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
pub enum StateArg {
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
    pub fn to_proto(self) -> pb::JobState {
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

/// Parses `--expires`: `90s`, `30m`, `12h`, `7d`, `1w 2d` (humantime's units). Shorter
/// than a second is refused: such a token would be dead before anyone could use it.
pub fn parse_expiry(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|err| format!("`{text}` is not a duration like 30m, 12h or 7d: {err}"))?;
    if duration < Duration::from_secs(1) {
        return Err(format!("`{text}` is shorter than one second"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// clap's own consistency checks, which otherwise only run when a command is built.
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn expiries_read_like_durations() {
        assert_eq!(parse_expiry("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_expiry("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_expiry("1w 2d"), Ok(Duration::from_secs(9 * 86_400)));
        assert_eq!(parse_expiry("1h 30m"), Ok(Duration::from_secs(5400)));
        let err = parse_expiry("soon").unwrap_err();
        assert!(err.starts_with("`soon` is not a duration like 30m, 12h or 7d"), "{err}");
        assert_eq!(parse_expiry("500ms").unwrap_err(), "`500ms` is shorter than one second");
    }
}
