//! `rivet`: the command-line client for Rivet pipelines.

mod commands;
mod exit;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Rivet: CI/CD pipelines as Lua code, every command in a container.
#[derive(Debug, Parser)]
#[command(name = "rivet", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with pipeline definitions.
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// Set up editor support.
    #[command(subcommand)]
    Init(InitCommand),
}

#[derive(Debug, Subcommand)]
enum PipelineCommand {
    /// Validate pipeline scripts without running them; reports every problem at once.
    Check {
        /// The Lua files to check.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// How to print the result.
        #[arg(long, short, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
enum InitCommand {
    /// Write `.luarc.json` and `.rivet/stubs/` so a Lua language server knows Rivet's modules.
    Lua {
        /// The project directory to write into.
        #[arg(long, short = 'o', default_value = ".")]
        dir: std::path::PathBuf,
        /// Overwrite a `.luarc.json` that was edited by hand.
        #[arg(long)]
        force: bool,
    },
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For machines: one JSON document on stdout.
    Json,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // `--help` and `--version` come here too, and are not failures.
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { exit::USAGE } else { exit::OK });
        }
    };
    let result = match cli.command {
        Command::Pipeline(PipelineCommand::Check { files, output }) => commands::check::run(&files, output),
        Command::Init(InitCommand::Lua { dir, force }) => commands::init::run(&dir, force),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit::FAILURE)
        }
    }
}
