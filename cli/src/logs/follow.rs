//! Reading a job's log from the server: what is stored, or live until the job ends with
//! its state watched alongside, and Ctrl-C.

use std::io::Write;

use rivet_proto::v1::{self as pb, GetJobRequest, StreamLogsRequest, WatchJobRequest};

use super::printer::{Printer, summary};
use super::spinner::Waiting;
use super::{Format, exit_code, stdout_colors};
use crate::client::Client;
use crate::error::{Error, Subject};
use crate::exit;
use crate::view;

/// What Ctrl-C means while following.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// Stop following and say the job goes on on the server.
    Detach,
    /// Return [`exit::INTERRUPTED`] quietly; the caller deals with the job.
    Return,
}

/// Prints the log of job `job_id` to stdout: with `follow`, live until the job ends;
/// otherwise what is stored now. Returns the exit code for the job's result.
pub async fn show(
    client: &Client,
    job_id: &str,
    follow: bool,
    format: Format,
    interrupt: Interrupt,
) -> Result<u8, Error> {
    let mut printer = Printer::new(format, stdout_colors());
    let job = get_job(client, job_id).await?;
    printer.update(job);
    if !follow {
        let request = StreamLogsRequest { job_id: job_id.to_owned(), from_sequence: 1, follow: false };
        let mut lines = client
            .logs
            .clone()
            .stream_logs(request)
            .await
            .map_err(|status| client.error(status, Subject::Job))?
            .into_inner();
        let mut out = std::io::stdout().lock();
        while let Some(batch) = lines.message().await.map_err(|status| client.error(status, Subject::Job))? {
            for line in &batch.lines {
                printer.line(line, &mut out).map_err(write_error)?;
            }
        }
        return end(&mut printer, &mut out);
    }
    follow_live(client, job_id, printer, interrupt).await
}

async fn get_job(client: &Client, job_id: &str) -> Result<pb::Job, Error> {
    let request = GetJobRequest { job_id: job_id.to_owned() };
    let response = client.jobs.clone().get_job(request).await.map_err(|status| client.error(status, Subject::Job))?;
    response.into_inner().job.ok_or_else(|| Error::new(exit::FAILURE, "the server sent no job"))
}

/// Follows the log and the job's state together until both streams end.
async fn follow_live(client: &Client, job_id: &str, mut printer: Printer, interrupt: Interrupt) -> Result<u8, Error> {
    let to_error = |status: tonic::Status| client.error(status, Subject::Job);
    let request = StreamLogsRequest { job_id: job_id.to_owned(), from_sequence: 1, follow: true };
    let mut lines = client.logs.clone().stream_logs(request).await.map_err(to_error)?.into_inner();
    let request = WatchJobRequest { job_id: job_id.to_owned() };
    let mut states = client.jobs.clone().watch_job(request).await.map_err(to_error)?.into_inner();
    let mut waiting = Waiting::new();
    if let Some(job) = printer.job() {
        waiting.show(job);
    }
    let (mut lines_done, mut states_done) = (false, false);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    while !(lines_done && states_done) {
        tokio::select! {
            batch = lines.message(), if !lines_done => match batch.map_err(to_error)? {
                Some(batch) => {
                    waiting.hide();
                    for line in &batch.lines {
                        // The footer of the stage that ends needs its end time: when the
                        // watch stream has not told it yet, ask.
                        if printer.switches_stage(line) && !printer.current_stage_ended() {
                            printer.update(get_job(client, job_id).await?);
                        }
                        let mut out = std::io::stdout().lock();
                        printer.line(line, &mut out).map_err(write_error)?;
                    }
                }
                None => lines_done = true,
            },
            state = states.message(), if !states_done => match state.map_err(to_error)? {
                Some(response) => {
                    if let Some(job) = response.job {
                        waiting.show(&job);
                        printer.update(job);
                    }
                }
                None => states_done = true,
            },
            _ = &mut interrupted => {
                waiting.hide();
                if interrupt == Interrupt::Detach {
                    eprintln!("stopped following; job {job_id} goes on (`rivet job cancel {job_id}` stops it)");
                }
                return Ok(exit::INTERRUPTED);
            }
        }
    }
    waiting.hide();
    printer.update(get_job(client, job_id).await?);
    let mut out = std::io::stdout().lock();
    end(&mut printer, &mut out)
}

/// Closes the output and returns the exit code of the job's final state.
fn end(printer: &mut Printer, out: &mut impl Write) -> Result<u8, Error> {
    let Some(job) = printer.job().cloned() else { return Ok(exit::OK) };
    if !view::is_terminal(job.state) {
        out.flush().map_err(write_error)?;
        return Ok(exit::OK);
    }
    printer.finish(out).map_err(write_error)?;
    out.flush().map_err(write_error)?;
    if printer.format() != Format::JsonLines {
        eprintln!("{}", summary(&job));
    }
    Ok(exit_code(job.state))
}

fn write_error(err: std::io::Error) -> Error {
    Error::new(exit::FAILURE, format!("cannot write the log: {err}"))
}
