//! `rivet run FILE`: runs a pipeline once on an embedded orchestrator and runner, like
//! `act` does for GitHub Actions, and exits with the job's result.

use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use rivet_core::LoadError;
use rivet_evaluator::Pool;

use crate::client::Client;
use crate::commands::check;
use crate::commands::job::{self, Launch};
use crate::commands::pipeline;
use crate::embedded::{self, Embedded, Options};
use crate::error::{Error, plural};
use crate::{Format, exit, logs};

/// Checks the script locally first, in an evaluation worker as `pipeline check` does, so
/// a broken or runaway one fails before anything starts.
async fn check(file: &Path) -> Result<(), Error> {
    let source = pipeline::read_script(file)?;
    let failed = |err: anyhow::Error| Error::new(exit::FAILURE, format!("{err:#}"));
    let pool = Pool::new(check::evaluation_pool(1).map_err(failed)?);
    match check::evaluate(&pool, source, &file.display().to_string()).await.map_err(failed)? {
        Ok(_) => Ok(()),
        Err(LoadError::Invalid(diagnostics)) => {
            let count = diagnostics.len();
            Err(Error::new(
                exit::INVALID_PIPELINE,
                format!("the pipeline is invalid: {count} problem{}", plural(count)),
            )
            .details(diagnostics.iter().map(ToString::to_string).collect()))
        }
        Err(err @ LoadError::Sandbox(_)) => {
            Err(Error::new(exit::INVALID_PIPELINE, format!("the pipeline is invalid: {err}")))
        }
    }
}

/// `rivet run FILE [--input NAME=VALUE]... [--no-input]`.
pub async fn run(file: &Path, launch: Launch, format: Format) -> Result<u8, Error> {
    check(file).await?;
    embedded::init_tracing("error");
    let dir = tempfile::Builder::new()
        .prefix("rivet-run-")
        .tempdir()
        .map_err(|err| Error::new(exit::FAILURE, format!("cannot create a temporary directory: {err}")))?;
    let options = Options {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        database: dir.path().join("rivet.db"),
        state_dir: dir.path().join("state"),
        runner_name: "rivet run".to_owned(),
        capacity: 1,
        api_tokens: Vec::new(),
        insecure: false,
    };
    let server = Embedded::start(options).await?;
    let result = run_job(&server.url(), file, &launch, format).await;
    // A job that is still running (Ctrl-C, or an error while following) dies with us.
    let unfinished = !matches!(result, Ok(code) if code != exit::INTERRUPTED);
    if matches!(result, Ok(exit::INTERRUPTED)) {
        // After the `^C` the terminal echoed, start a line of our own.
        let newline = if std::io::stderr().is_terminal() { "\n" } else { "" };
        eprintln!("{newline}interrupted: cancelling the job and removing its containers");
    }
    server.shutdown(unfinished).await;
    result
}

async fn run_job(url: &str, file: &Path, launch: &Launch, format: Format) -> Result<u8, Error> {
    let settings = crate::config::Settings { server: url.to_owned(), token: None, ca_file: None };
    let client = Client::connect(&settings).await?;
    let pipeline = pipeline::create_pipeline(&client, file).await?;
    let job = job::launch_job(&client, &pipeline, launch).await?;
    logs::show(&client, &job.id, true, job::log_format(format, false), logs::Interrupt::Return).await
}
