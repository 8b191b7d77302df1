//! Writing log lines for people or machines: a header when the stage changes, the stage's
//! outcome and duration when it ends, levels as colours, and the one summary line.

use std::collections::HashSet;
use std::io::Write;

use dialoguer::console::Style;
use rivet_proto::v1 as pb;

use super::Format;
use crate::view;

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

    /// How it writes.
    pub fn format(&self) -> Format {
        self.format
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
        self.show_silent(Some(stage), out)?;
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
        self.show_silent(None, out)
    }

    /// Shows, header and footer, the stages that ended without a line and were not shown
    /// yet: those before `until`, or all of them.
    fn show_silent(&mut self, until: Option<&str>, out: &mut impl Write) -> std::io::Result<()> {
        let silent: Vec<String> = match &self.job {
            Some(job) => job
                .stages
                .iter()
                .take_while(|run| until.is_none_or(|until| run.name != until))
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
}
