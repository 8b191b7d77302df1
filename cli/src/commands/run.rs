//! `rivet run FILE`: runs a pipeline once on an embedded orchestrator and runner, like
//! `act` does for GitHub Actions, and exits with the job's result.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use rivet_core::LoadError;
use rivet_evaluator::Pool;
use rivet_proto::v1::SetSecretRequest;
use zeroize::Zeroizing;

use crate::client::Client;
use crate::commands::check;
use crate::commands::job::{self, Launch};
use crate::commands::pipeline;
use crate::embedded::{self, Embedded, Options};
use crate::error::{Error, plural};
use crate::{Format, exit, logs};

/// Checks the script locally first, in an evaluation worker as `pipeline check` does, so
/// a broken or runaway one fails before anything starts. Returns the pipeline's name.
async fn check(file: &Path) -> Result<String, Error> {
    let source = pipeline::read_script(file)?;
    let failed = |err: anyhow::Error| Error::new(exit::FAILURE, format!("{err:#}"));
    let pool = Pool::new(check::evaluation_pool(1).map_err(failed)?);
    match check::evaluate(&pool, source, &file.display().to_string()).await.map_err(failed)? {
        Ok(definition) => Ok(definition.name),
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

/// The most bytes read of a `--secret-file`.
const MAX_SECRET_FILE_BYTES: u64 = 1024 * 1024;

/// Secret values by name, for the embedded server's store.
pub type Secrets = BTreeMap<String, Zeroizing<String>>;

/// The secrets of `--secret NAME` (from the environment) and `--secret-file FILE`; a name
/// given by both takes the environment's value.
pub fn collect_secrets(names: &[String], file: Option<&Path>) -> Result<Secrets, Error> {
    let mut secrets = Secrets::new();
    if let Some(file) = file {
        let shown = file.display();
        let opened = std::fs::File::open(file)
            .map_err(|err| Error::new(exit::USAGE, format!("cannot read the secret file {shown}: {err}")))?;
        let mut bytes = Zeroizing::new(Vec::new());
        opened
            .take(MAX_SECRET_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|err| Error::new(exit::USAGE, format!("cannot read the secret file {shown}: {err}")))?;
        if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
            return Err(Error::new(
                exit::USAGE,
                format!("the secret file {shown} is over {MAX_SECRET_FILE_BYTES} bytes"),
            ));
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Error::new(exit::USAGE, format!("the secret file {shown} is not UTF-8")))?;
        for (index, line) in text.lines().enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            // The value is never quoted in an error: it may be the secret.
            let Some((name, value)) = line.split_once('=') else {
                return Err(Error::new(exit::USAGE, format!("{shown}:{}: expected NAME=VALUE", index + 1)));
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(Error::new(exit::USAGE, format!("{shown}:{}: the name is empty", index + 1)));
            }
            secrets.insert(name.to_owned(), Zeroizing::new(value.to_owned()));
        }
    }
    for name in names {
        let value = std::env::var(name).map_err(|_| {
            Error::new(exit::USAGE, format!("--secret {name}: the environment variable {name} is not set"))
                .hint(format!("export {name}=… first, or put {name}=… in a --secret-file"))
        })?;
        secrets.insert(name.clone(), Zeroizing::new(value));
    }
    Ok(secrets)
}

/// `rivet run FILE [--input NAME=VALUE]... [--no-input] [--secret NAME]... [--secret-file FILE]`.
pub async fn run(file: &Path, launch: Launch, secrets: Secrets, format: Format) -> Result<u8, Error> {
    let name = check(file).await?;
    let _telemetry = embedded::init_tracing("error");
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
    let result = run_job(&server.url(), file, &name, &launch, &secrets, format).await;
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

async fn run_job(
    url: &str,
    file: &Path,
    pipeline_name: &str,
    launch: &Launch,
    secrets: &Secrets,
    format: Format,
) -> Result<u8, Error> {
    let settings = crate::config::Settings { server: url.to_owned(), token: None, ca_file: None };
    let client = Client::connect(&settings).await?;
    // Scoped to the pipeline, on a store that lives as long as this run; set before the
    // pipeline is created, which checks that its declared secrets exist.
    for (name, value) in secrets {
        let request =
            SetSecretRequest { name: name.clone(), pipeline: pipeline_name.to_owned(), value: value.to_string() };
        client.secrets.clone().set_secret(request).await.map_err(|status| {
            let mut err = client.error(status, crate::error::Subject::Other);
            err.message = format!("secret {name}: {}", err.message);
            err
        })?;
    }
    let pipeline = pipeline::create_pipeline(&client, file).await?;
    let job = job::launch_job(&client, &pipeline, launch).await?;
    logs::show(&client, &job.id, true, job::log_format(format, false), logs::Interrupt::Return).await
}
