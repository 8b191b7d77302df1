//! The runners connected to this replica, with the channel to send them messages.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use rivet_core::protocol::ToRunner;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A runner connected to this replica.
#[derive(Debug, Clone)]
pub struct ConnectedRunner {
    /// Its id.
    pub id: Uuid,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// How many jobs it runs at once.
    pub capacity: u32,
    /// The jobs it runs now.
    pub running: HashSet<Uuid>,
    /// Distinguishes this connection from a later one of the same runner.
    pub connection: Uuid,
    /// Whether it was asked to drain (takes no new jobs).
    pub draining: bool,
    sender: mpsc::Sender<ToRunner>,
    /// The connection's session ends when this is cancelled (fenced): the runner
    /// connected again, or was revoked.
    fence: CancellationToken,
    /// Cancelled by the session once it has stopped handling messages.
    ended: CancellationToken,
}

/// A handle on one connection's session, to fence it and wait until it has stopped.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    /// The connection's id.
    pub connection: Uuid,
    /// Cancel to end the session.
    pub fence: CancellationToken,
    /// Cancelled once the session has stopped handling messages.
    pub ended: CancellationToken,
}

impl ConnectedRunner {
    /// How many more jobs it can take.
    pub fn free(&self) -> u32 {
        if self.draining { 0 } else { self.capacity.saturating_sub(self.running.len() as u32) }
    }
}

/// The runners connected to this replica. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    runners: Arc<Mutex<HashMap<Uuid, ConnectedRunner>>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, ConnectedRunner>> {
        // A panic while holding this lock cannot leave the map half-updated (every update
        // is a single insert or field write), so a poisoned lock is still usable.
        self.runners.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers `connection`, replacing an older connection of the same runner (which the
    /// caller has fenced first: see [`Registry::session`]).
    pub fn connect(
        &self,
        id: Uuid,
        labels: BTreeMap<String, String>,
        capacity: u32,
        running: HashSet<Uuid>,
        sender: mpsc::Sender<ToRunner>,
        session: SessionHandle,
    ) {
        let runner = ConnectedRunner {
            id,
            labels,
            capacity,
            running,
            connection: session.connection,
            draining: false,
            sender,
            fence: session.fence,
            ended: session.ended,
        };
        self.lock().insert(id, runner);
    }

    /// The session of the runner's current connection here, if it has one.
    pub fn session(&self, id: Uuid) -> Option<SessionHandle> {
        self.lock().get(&id).map(|runner| SessionHandle {
            connection: runner.connection,
            fence: runner.fence.clone(),
            ended: runner.ended.clone(),
        })
    }

    /// Removes a connection, unless a newer one of the same runner replaced it.
    pub fn disconnect(&self, id: Uuid, connection: Uuid) {
        let mut runners = self.lock();
        if runners.get(&id).is_some_and(|runner| runner.connection == connection) {
            runners.remove(&id);
        }
    }

    /// A copy of every connected runner.
    pub fn snapshot(&self) -> Vec<ConnectedRunner> {
        self.lock().values().cloned().collect()
    }

    /// Whether the runner is connected here.
    pub fn contains(&self, id: Uuid) -> bool {
        self.lock().contains_key(&id)
    }

    /// Records that the runner took a job.
    pub fn add_job(&self, id: Uuid, job: Uuid) {
        if let Some(runner) = self.lock().get_mut(&id) {
            runner.running.insert(job);
        }
    }

    /// Records that the runner no longer runs a job.
    pub fn remove_job(&self, id: Uuid, job: Uuid) {
        if let Some(runner) = self.lock().get_mut(&id) {
            runner.running.remove(&job);
        }
    }

    /// Replaces the runner's running jobs, as its heartbeat reports them.
    pub fn set_jobs(&self, id: Uuid, jobs: HashSet<Uuid>) {
        if let Some(runner) = self.lock().get_mut(&id) {
            runner.running = jobs;
        }
    }

    /// Sends a message to a runner; `false` when it is not connected or its stream closed.
    pub async fn send(&self, id: Uuid, message: ToRunner) -> bool {
        let sender = self.lock().get(&id).map(|runner| runner.sender.clone());
        match sender {
            Some(sender) => sender.send(message).await.is_ok(),
            None => false,
        }
    }

    /// Marks one runner draining (it said so), so it gets no new jobs.
    pub fn set_draining(&self, id: Uuid) {
        if let Some(runner) = self.lock().get_mut(&id) {
            runner.draining = true;
        }
    }

    /// Marks every runner draining and returns their ids.
    pub fn drain_all(&self) -> Vec<Uuid> {
        let mut runners = self.lock();
        runners.values_mut().for_each(|runner| runner.draining = true);
        runners.keys().copied().collect()
    }
}
