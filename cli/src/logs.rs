//! Showing a job's log: lines coloured by level, a header when the stage changes, the
//! stage's outcome and duration when it ends, a spinner while the job waits for a runner,
//! and an exit code that reflects the job's result.
//!
//! Lines come from `LogService.StreamLogs`; stage outcomes and the job's state from
//! `JobService.WatchJob` (or `GetJob`). The two streams are not ordered with each other,
//! so headers follow the lines (a stage's header comes with its first line) and a stage's
//! footer is printed when the next stage's lines start or the job ends.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use dialoguer::console::{Style, Term};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use rivet_proto::v1::{self as pb, GetJobRequest, StreamLogsRequest, WatchJobRequest};

use crate::client::Client;
use crate::error::{Error, Subject};
use crate::exit;
use crate::view;

/// How the lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// For people: headers, footers, colours when stdout is a terminal.
    Text {
        /// Prefix each line with its time.
        timestamps: bool,
    },
    /// One JSON object per line, nothing else on stdout.
    JsonLines,
}

/// Whether to colour what goes to stdout: only on a terminal, and never with `NO_COLOR`.
pub fn stdout_colors() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty()) && std::io::stdout().is_terminal()
}

/// The exit code for a job in `state`.
pub fn exit_code(state: i32) -> u8 {
    match pb::JobState::try_from(state) {
        Ok(pb::JobState::Succeeded) => exit::OK,
        Ok(pb::JobState::Cancelled) => exit::JOB_CANCELLED,
        Ok(pb::JobState::TimedOut) => exit::JOB_TIMED_OUT,
        Ok(pb::JobState::Failed | pb::JobState::Lost) => exit::JOB_FAILED,
        // Still running (a log read without --follow): nothing failed.
        _ => exit::OK,
    }
}

/// Writes log lines and stage headers to stdout.
pub struct Printer {
    format: Format,
    styles: Styles,
    /// The stage whose lines are being printed.
    current: Option<String>,
    /// Stages whose header was printed.
    shown: HashSet<String>,
    /// Stages whose footer was printed.
    closed: HashSet<String>,
    /// The latest known state of the job.
    job: Option<pb::Job>,
}

struct Styles {
    header: Style,
    ok: Style,
    bad: Style,
    dim: Style,
    warning: Style,
    error: Style,
}

impl Styles {
    fn new(colors: bool) -> Styles {
        let style = |style: Style| if colors { style.force_styling(true) } else { Style::new() };
        Styles {
            header: style(Style::new().bold().cyan()),
            ok: style(Style::new().green()),
            bad: style(Style::new().red().bold()),
            dim: style(Style::new().dim()),
            warning: style(Style::new().yellow()),
            error: style(Style::new().red()),
        }
    }
}

impl Printer {
    /// A printer in `format`, coloured when `colors`.
    pub fn new(format: Format, colors: bool) -> Printer {
        Printer {
            format,
            styles: Styles::new(colors),
            current: None,
            shown: HashSet::new(),
            closed: HashSet::new(),
            job: None,
        }
    }

    /// Takes the latest state of the job, for stage outcomes.
    pub fn update(&mut self, job: pb::Job) {
        self.job = Some(job);
    }

    /// The latest known state of the job.
    pub fn job(&self) -> Option<&pb::Job> {
        self.job.as_ref()
    }

    /// Whether the stage being printed has ended as far as the latest state knows.
    pub fn current_stage_ended(&self) -> bool {
        match &self.current {
            None => true,
            Some(name) => self.stage(name).is_none_or(|stage| stage.end_time.is_some()),
        }
    }

    /// Whether printing `line` would switch stages.
    pub fn switches_stage(&self, line: &pb::LogLine) -> bool {
        !line.stage.is_empty() && self.current.as_deref() != Some(line.stage.as_str())
    }

    fn stage(&self, name: &str) -> Option<&pb::StageRun> {
        self.job.as_ref()?.stages.iter().find(|stage| stage.name == name)
    }

    /// Prints one line, with the stage's header first when the stage changes.
    pub fn line(&mut self, line: &pb::LogLine, out: &mut impl Write) -> std::io::Result<()> {
        if let Format::JsonLines = self.format {
            let value = serde_json::json!({
                "sequence": line.sequence,
                "time": view::time(line.time.as_ref()).map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                "level": level_name(line.level),
                "stage": line.stage,
                "text": line.text,
                "attempt": line.attempt,
            });
            return writeln!(out, "{value}");
        }
        if self.switches_stage(line) {
            self.enter(&line.stage.clone(), out)?;
        }
        let mut text = String::new();
        if let Format::Text { timestamps: true } = self.format {
            let time = view::time(line.time.as_ref())
                .map(|time| time.with_timezone(&chrono::Local).format("%H:%M:%S%.3f ").to_string())
                .unwrap_or_default();
            text.push_str(&self.styles.dim.apply_to(time).to_string());
        }
        let body = match pb::LogLevel::try_from(line.level) {
            Ok(pb::LogLevel::Debug) => self.styles.dim.apply_to(format!("debug: {}", line.text)).to_string(),
            Ok(pb::LogLevel::Warning) => self.styles.warning.apply_to(format!("warning: {}", line.text)).to_string(),
            Ok(pb::LogLevel::Error) => self.styles.error.apply_to(format!("error: {}", line.text)).to_string(),
            _ => line.text.clone(),
        };
        text.push_str(&body);
        writeln!(out, "{text}")
    }

    /// Closes the current stage and opens `stage`, showing the stages in between that
    /// ended without a line (skipped ones, say).
    fn enter(&mut self, stage: &str, out: &mut impl Write) -> std::io::Result<()> {
        self.close_current(out)?;
        let silent: Vec<String> = match &self.job {
            Some(job) => job
                .stages
                .iter()
                .take_while(|run| run.name != stage)
                .filter(|run| !self.shown.contains(&run.name) && run.end_time.is_some())
                .map(|run| run.name.clone())
                .collect(),
            None => Vec::new(),
        };
        for name in silent {
            self.header(&name, out)?;
            self.footer(&name, out)?;
        }
        self.header(stage, out)?;
        self.current = Some(stage.to_owned());
        Ok(())
    }

    fn header(&mut self, stage: &str, out: &mut impl Write) -> std::io::Result<()> {
        self.shown.insert(stage.to_owned());
        writeln!(out, "{}", self.styles.header.apply_to(format!("▶ stage {stage}")))
    }

    fn close_current(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        match self.current.take() {
            Some(stage) => self.footer(&stage, out),
            None => Ok(()),
        }
    }

    /// The line that says how a stage ended, when the latest state knows.
    fn footer(&mut self, name: &str, out: &mut impl Write) -> std::io::Result<()> {
        let Some(stage) = self.stage(name).cloned() else { return Ok(()) };
        if stage.end_time.is_none() || !self.closed.insert(name.to_owned()) {
            return Ok(());
        }
        let took = view::elapsed(stage.start_time.as_ref(), stage.end_time.as_ref()).map(view::duration);
        let state = view::stage_state(stage.state);
        let text = match pb::StageState::try_from(stage.state) {
            Ok(pb::StageState::Succeeded) => {
                self.styles.ok.apply_to(format!("✔ {name} succeeded in {}", took.unwrap_or_default())).to_string()
            }
            Ok(pb::StageState::Skipped) => self.styles.dim.apply_to(format!("○ {name} skipped")).to_string(),
            _ => {
                let mut text = format!("✘ {name} {state}");
                if let Some(took) = took {
                    text.push_str(&format!(" after {took}"));
                }
                if let Some(reason) = view::failure_reason(stage.failure_reason).filter(|reason| *reason != state) {
                    text.push_str(&format!(" ({reason})"));
                }
                if !stage.message.is_empty() {
                    text.push_str(&format!(": {}", stage.message));
                }
                self.styles.bad.apply_to(text).to_string()
            }
        };
        writeln!(out, "{text}")
    }

    /// Closes the last stage and shows the stages that ended without a line, once the
    /// job's final state is known.
    pub fn finish(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.format == Format::JsonLines {
            return Ok(());
        }
        self.close_current(out)?;
        let silent: Vec<String> = match &self.job {
            Some(job) => job
                .stages
                .iter()
                .filter(|run| !self.shown.contains(&run.name) && run.end_time.is_some())
                .map(|run| run.name.clone())
                .collect(),
            None => Vec::new(),
        };
        for name in silent {
            self.header(&name, out)?;
            self.footer(&name, out)?;
        }
        Ok(())
    }
}

fn level_name(level: i32) -> &'static str {
    match pb::LogLevel::try_from(level) {
        Ok(pb::LogLevel::Debug) => "debug",
        Ok(pb::LogLevel::Warning) => "warning",
        Ok(pb::LogLevel::Error) => "error",
        _ => "info",
    }
}

/// The one line on stderr that says how the job ended.
pub fn summary(job: &pb::Job) -> String {
    let state = view::job_state(job.state);
    let mut text = format!("job {} {state}", job.id);
    if let Some(took) = view::elapsed(job.start_time.as_ref(), job.end_time.as_ref()).filter(|_| job.end_time.is_some())
    {
        text.push_str(&format!(" in {}", view::duration(took)));
    }
    if let Some(reason) = view::failure_reason(job.failure_reason).filter(|reason| *reason != state) {
        text.push_str(&format!(" ({reason})"));
    }
    if !job.message.is_empty() && job.state != pb::JobState::Succeeded as i32 {
        text.push_str(&format!(": {}", job.message));
    }
    text
}

/// A spinner on stderr while the job waits for a runner; nothing when stderr is not a
/// terminal.
struct Waiting {
    bar: Option<ProgressBar>,
}

impl Waiting {
    fn new() -> Waiting {
        Waiting { bar: None }
    }

    /// Shows, updates or hides the spinner for the job's state.
    fn show(&mut self, job: &pb::Job) {
        let message = match pb::JobState::try_from(job.state) {
            Ok(pb::JobState::Queued) => "waiting for a runner",
            Ok(pb::JobState::Assigned) => "starting on a runner",
            _ => return self.hide(),
        };
        if self.bar.is_none() && std::io::stderr().is_terminal() {
            let target = ProgressDrawTarget::term_like_with_hz(Box::new(Narrow(Term::stderr())), 10);
            let bar = ProgressBar::with_draw_target(None, target);
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(100));
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_message(message);
        }
    }

    fn hide(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// stderr, two columns narrower than it is. indicatif pads its line to the terminal's
/// width, which leaves the cursor waiting to wrap: the `^C` a terminal echoes would then
/// land on the next line, and clearing the spinner would clear that one instead.
#[derive(Debug)]
struct Narrow(Term);

impl TermLike for Narrow {
    fn width(&self) -> u16 {
        self.0.size().1.saturating_sub(2).max(1)
    }

    fn height(&self) -> u16 {
        self.0.size().0
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_up(n)
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_down(n)
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_right(n)
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_left(n)
    }

    fn write_line(&self, line: &str) -> std::io::Result<()> {
        self.0.write_line(line)
    }

    fn write_str(&self, text: &str) -> std::io::Result<()> {
        self.0.write_str(text)
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.0.clear_line()
    }

    fn flush(&self) -> std::io::Result<()> {
        self.0.flush()
    }
}

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
    if printer.format != Format::JsonLines {
        eprintln!("{}", summary(&job));
    }
    Ok(exit_code(job.state))
}

fn write_error(err: std::io::Error) -> Error {
    Error::new(exit::FAILURE, format!("cannot write the log: {err}"))
}

#[cfg(test)]
mod tests {
    use prost_types::Timestamp;

    use super::*;

    fn line(sequence: u64, stage: &str, level: pb::LogLevel, text: &str) -> pb::LogLine {
        pb::LogLine {
            sequence,
            time: None,
            level: level as i32,
            stage: stage.to_owned(),
            text: text.to_owned(),
            attempt: 1,
        }
    }

    fn stage(name: &str, state: pb::StageState, start: i64, end: Option<i64>) -> pb::StageRun {
        pb::StageRun {
            name: name.to_owned(),
            state: state as i32,
            start_time: Some(Timestamp { seconds: start, nanos: 0 }),
            end_time: end.map(|seconds| Timestamp { seconds, nanos: 0 }),
            failure_reason: if state == pb::StageState::Failed { pb::FailureReason::ExitCode as i32 } else { 0 },
            message: if state == pb::StageState::Failed { "exit code 2".to_owned() } else { String::new() },
        }
    }

    #[test]
    fn stages_get_headers_footers_and_skipped_stages_show() {
        let mut printer = Printer::new(Format::Text { timestamps: false }, false);
        let mut out = Vec::new();
        printer.update(pb::Job {
            state: pb::JobState::Failed as i32,
            stages: vec![
                stage("build", pb::StageState::Succeeded, 100, Some(102)),
                stage("lint", pb::StageState::Skipped, 102, Some(102)),
                stage("test", pb::StageState::Failed, 102, Some(105)),
                stage("deploy", pb::StageState::Skipped, 105, Some(105)),
            ],
            ..Default::default()
        });
        printer.line(&line(1, "", pb::LogLevel::Info, "job starts"), &mut out).unwrap();
        printer.line(&line(2, "build", pb::LogLevel::Info, "compiling"), &mut out).unwrap();
        printer.line(&line(3, "build", pb::LogLevel::Warning, "slow"), &mut out).unwrap();
        printer.line(&line(4, "test", pb::LogLevel::Error, "boom"), &mut out).unwrap();
        printer.finish(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "job starts\n▶ stage build\ncompiling\nwarning: slow\n✔ build succeeded in 2.0s\n▶ stage lint\n○ lint skipped\n\
             ▶ stage test\nerror: boom\n✘ test failed after 3.0s (exit_code): exit code 2\n▶ stage deploy\n○ deploy skipped\n"
        );
    }

    #[test]
    fn json_lines_carry_only_the_lines() {
        let mut printer = Printer::new(Format::JsonLines, false);
        let mut out = Vec::new();
        printer.line(&line(7, "build", pb::LogLevel::Warning, "slow"), &mut out).unwrap();
        printer.finish(&mut out).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["sequence"], 7);
        assert_eq!(value["level"], "warning");
        assert_eq!(value["stage"], "build");
    }

    #[test]
    fn exit_codes_follow_the_job() {
        assert_eq!(exit_code(pb::JobState::Succeeded as i32), exit::OK);
        assert_eq!(exit_code(pb::JobState::Failed as i32), exit::JOB_FAILED);
        assert_eq!(exit_code(pb::JobState::Lost as i32), exit::JOB_FAILED);
        assert_eq!(exit_code(pb::JobState::Cancelled as i32), exit::JOB_CANCELLED);
        assert_eq!(exit_code(pb::JobState::TimedOut as i32), exit::JOB_TIMED_OUT);
    }
}
