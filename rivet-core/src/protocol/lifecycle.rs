//! The order of messages on a runner stream, checked in one place for both ends.

use super::messages::{FromRunner, ToRunner};

/// Where a runner stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing said yet: the runner speaks first, with a hello.
    AwaitingHello,
    /// The hello is said; the orchestrator's next message is the welcome.
    AwaitingWelcome,
    /// Welcomed: heartbeats, assignments and reports flow both ways until the stream ends.
    Open,
}

/// A message out of order. Its text is what the other end is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The runner sent something before its hello.
    #[error("the first message on a runner stream must be a hello")]
    HelloFirst,
    /// The runner said hello twice.
    #[error("a runner says hello only once per stream")]
    SecondHello,
    /// The runner reported before it was welcomed.
    #[error("a runner reports only once it is welcomed")]
    ReportBeforeWelcome,
    /// The orchestrator spoke before the hello.
    #[error("the orchestrator speaks only after the runner's hello")]
    BeforeHello,
    /// The orchestrator answered the hello with something else than a welcome.
    #[error("the orchestrator did not answer the hello with a welcome")]
    WelcomeFirst,
    /// The orchestrator welcomed the runner twice.
    #[error("the orchestrator welcomes a runner only once per stream")]
    SecondWelcome,
}

/// The lifecycle of one runner stream (see the [module docs](super)): each end keeps one
/// and feeds it every message it sends or receives, in order, before acting on it. A
/// message out of order is a [`Violation`] and leaves the phase as it was.
///
/// ```
/// use rivet_core::protocol::{Lifecycle, Phase, Violation, ToRunner};
///
/// let mut stream = Lifecycle::new();
/// let drain = ToRunner::Drain { reason: "bye".into() };
/// assert_eq!(stream.to_runner(&drain), Err(Violation::BeforeHello));
/// assert_eq!(stream.phase(), Phase::AwaitingHello);
/// ```
#[derive(Debug, Clone)]
pub struct Lifecycle {
    phase: Phase,
}

impl Default for Lifecycle {
    fn default() -> Lifecycle {
        Lifecycle::new()
    }
}

impl Lifecycle {
    /// A stream on which nothing was said yet.
    pub fn new() -> Lifecycle {
        Lifecycle { phase: Phase::AwaitingHello }
    }

    /// Where the stream is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// A message from the runner, sent (runner) or received (orchestrator).
    pub fn from_runner(&mut self, message: &FromRunner) -> Result<(), Violation> {
        match (self.phase, message) {
            (Phase::AwaitingHello, FromRunner::Hello(_)) => self.phase = Phase::AwaitingWelcome,
            (Phase::AwaitingHello, _) => return Err(Violation::HelloFirst),
            (_, FromRunner::Hello(_)) => return Err(Violation::SecondHello),
            (Phase::AwaitingWelcome, _) => return Err(Violation::ReportBeforeWelcome),
            (Phase::Open, _) => {}
        }
        Ok(())
    }

    /// A message to the runner, sent (orchestrator) or received (runner).
    pub fn to_runner(&mut self, message: &ToRunner) -> Result<(), Violation> {
        match (self.phase, message) {
            (Phase::AwaitingHello, _) => return Err(Violation::BeforeHello),
            (Phase::AwaitingWelcome, ToRunner::Welcome(_)) => self.phase = Phase::Open,
            (Phase::AwaitingWelcome, _) => return Err(Violation::WelcomeFirst),
            (Phase::Open, ToRunner::Welcome(_)) => return Err(Violation::SecondWelcome),
            (Phase::Open, _) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use uuid::Uuid;

    use super::*;
    use crate::job::Assignment;
    use crate::protocol::{Heartbeat, Hello, Welcome};

    fn hello() -> FromRunner {
        FromRunner::Hello(Hello {
            protocol_versions: vec![crate::job::PROTOCOL_VERSION],
            runner_id: Uuid::nil(),
            name: String::new(),
            labels: BTreeMap::new(),
            capacity: 1,
            running_jobs: Vec::new(),
            version: String::new(),
        })
    }

    fn welcome() -> ToRunner {
        ToRunner::Welcome(Welcome {
            protocol_version: crate::job::PROTOCOL_VERSION,
            lease_ttl: Duration::from_secs(15),
            heartbeat_interval: Duration::from_secs(3),
            abandon: Vec::new(),
            acks: Vec::new(),
        })
    }

    fn heartbeat() -> FromRunner {
        FromRunner::Heartbeat(Heartbeat { running_jobs: Vec::new(), draining: false })
    }

    fn closed() -> ToRunner {
        ToRunner::Closed(Assignment { job_id: Uuid::nil(), attempt: 1, epoch: 1 })
    }

    #[test]
    fn hello_then_welcome_opens_the_stream() {
        let mut stream = Lifecycle::new();
        assert_eq!(stream.from_runner(&hello()), Ok(()));
        assert_eq!(stream.phase(), Phase::AwaitingWelcome);
        assert_eq!(stream.to_runner(&welcome()), Ok(()));
        assert_eq!(stream.phase(), Phase::Open);
        assert_eq!(stream.from_runner(&heartbeat()), Ok(()));
        assert_eq!(stream.to_runner(&closed()), Ok(()));
        assert_eq!(stream.phase(), Phase::Open);
    }

    #[test]
    fn every_message_out_of_order_is_named_and_changes_nothing() {
        let mut stream = Lifecycle::new();
        assert_eq!(stream.from_runner(&heartbeat()), Err(Violation::HelloFirst));
        assert_eq!(stream.to_runner(&welcome()), Err(Violation::BeforeHello));
        assert_eq!(stream.phase(), Phase::AwaitingHello);
        stream.from_runner(&hello()).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(stream.from_runner(&hello()), Err(Violation::SecondHello));
        assert_eq!(stream.from_runner(&heartbeat()), Err(Violation::ReportBeforeWelcome));
        assert_eq!(stream.to_runner(&closed()), Err(Violation::WelcomeFirst));
        assert_eq!(stream.phase(), Phase::AwaitingWelcome);
        stream.to_runner(&welcome()).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(stream.to_runner(&welcome()), Err(Violation::SecondWelcome));
        assert_eq!(stream.from_runner(&hello()), Err(Violation::SecondHello));
        assert_eq!(stream.phase(), Phase::Open);
    }
}
