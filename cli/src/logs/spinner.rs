//! The spinner on stderr while a followed job waits for a runner.

use std::io::IsTerminal;
use std::time::Duration;

use dialoguer::console::Term;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use rivet_proto::v1 as pb;

/// A spinner on stderr while the job waits for a runner; nothing when stderr is not a
/// terminal.
pub(super) struct Waiting {
    bar: Option<ProgressBar>,
}

impl Waiting {
    pub(super) fn new() -> Waiting {
        Waiting { bar: None }
    }

    /// Shows, updates or hides the spinner for the job's state.
    pub(super) fn show(&mut self, job: &pb::Job) {
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

    pub(super) fn hide(&mut self) {
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
