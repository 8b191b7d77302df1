//! Commit statuses: a job started from a forge reports its state back on the commit
//! (pending → success, failure or error) through the forge's REST API, with a token from
//! the secret store.
//!
//! Reports go through an outbox in the store (`status_reports`): a job's report is written
//! when it is tracked (pending) and when it ends, on whichever replica sees it; every
//! replica delivers due reports. A job's reports are delivered strictly in order (only its
//! oldest undelivered one is ever due), each under a claim that outlives the request, so two
//! replicas never post one concurrently and a late "pending" cannot land after the final
//! state. A failed delivery is retried with exponential backoff up to [`MAX_ATTEMPTS`];
//! a status that cannot be delivered is logged and given up, and never fails the job.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rivet_core::JobState;
use rivet_core::forge::Forge;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::error::Result;
use crate::domain::orchestrator::Orchestrator;
use crate::domain::store::{JobRecord, StoreResult};

/// How often the outbox is looked at.
const TICK: Duration = Duration::from_millis(500);
/// How many reports one tick delivers at most.
const BATCH: u64 = 32;
/// How long one request to a forge may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed report is someone's: longer than a request may take.
const CLAIM: Duration = Duration::from_secs(30);
/// Attempts before a report is given up.
pub const MAX_ATTEMPTS: u32 = 8;
/// The first retry's ceiling, doubling up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);
/// The longest description a forge is sent (GitHub's limit is 140 characters).
const MAX_DESCRIPTION: usize = 140;

/// Where a job's statuses go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusTarget {
    /// The forge.
    pub forge: Forge,
    /// Its REST API's base URL (`https://api.github.com`, `https://gitlab.example/api/v4`,
    /// `https://gitea.example/api/v1`).
    pub api_url: String,
    /// `owner/name` (GitLab: the project's path with its namespace).
    pub repository: String,
    /// The commit.
    pub sha: String,
    /// The secret (global or the pipeline's) holding the API token.
    pub token_secret: String,
    /// The name the status is shown under, e.g. `rivet/build`.
    pub context: String,
    /// Where the status links to, when there is a page for the job.
    pub link: Option<String>,
}

/// A commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitState {
    /// Queued or running.
    Pending,
    /// Succeeded.
    Success,
    /// Failed or timed out.
    Failure,
    /// Cancelled.
    Cancelled,
    /// Lost, or anything Rivet could not run.
    Error,
}

impl CommitState {
    /// The status of a job in `state`.
    pub fn of(state: JobState) -> CommitState {
        match state {
            JobState::Queued | JobState::Assigned | JobState::Running => CommitState::Pending,
            JobState::Succeeded => CommitState::Success,
            JobState::Failed | JobState::TimedOut => CommitState::Failure,
            JobState::Cancelled => CommitState::Cancelled,
            JobState::Lost => CommitState::Error,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CommitState::Pending => "pending",
            CommitState::Success => "success",
            CommitState::Failure => "failure",
            CommitState::Cancelled => "cancelled",
            CommitState::Error => "error",
        }
    }

    /// The forge's word for it.
    fn on(self, forge: Forge) -> &'static str {
        match (forge, self) {
            (_, CommitState::Pending) => "pending",
            (_, CommitState::Success) => "success",
            (Forge::Gitlab, CommitState::Failure) => "failed",
            (Forge::Gitlab, CommitState::Cancelled) => "canceled",
            (Forge::Gitlab, CommitState::Error) => "failed",
            (_, CommitState::Failure) => "failure",
            // GitHub and Gitea have no "cancelled" status.
            (_, CommitState::Cancelled | CommitState::Error) => "error",
        }
    }
}

/// One report in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    /// Its id; a job's reports are delivered in id order.
    pub id: Uuid,
    /// The job.
    pub job_id: Uuid,
    /// Where it goes.
    pub target: StatusTarget,
    /// What it says.
    pub state: CommitState,
    /// The description shown beside it.
    pub description: String,
    /// Failed deliveries so far.
    pub attempts: u32,
}

/// The outbox of commit statuses.
#[async_trait]
pub trait StatusStore: Send + Sync {
    /// Queues a report after the job's earlier ones.
    async fn add_status_report(
        &self,
        job_id: Uuid,
        target: &StatusTarget,
        state: CommitState,
        description: &str,
    ) -> StoreResult<()>;
    /// Where the job's statuses go, when it is tracked.
    async fn status_target(&self, job_id: Uuid) -> StoreResult<Option<StatusTarget>>;
    /// Claims up to `limit` due reports until `claim_until`: for each job, only its oldest
    /// undelivered report, and only when no one else holds it.
    async fn claim_status_reports(
        &self,
        now: DateTime<Utc>,
        claim_until: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<StatusReport>>;
    /// The report was delivered, or given up (`error` says why).
    async fn close_status_report(&self, id: Uuid, at: DateTime<Utc>, error: Option<&str>) -> StoreResult<()>;
    /// The delivery failed: retry at `next_at`.
    async fn retry_status_report(
        &self,
        id: Uuid,
        attempts: u32,
        next_at: DateTime<Utc>,
        error: &str,
    ) -> StoreResult<()>;
}

/// Starts reporting `job`'s statuses to `target`: the job's current state now, its final
/// state when it ends.
pub async fn track(orchestrator: &Orchestrator, job: &JobRecord, target: StatusTarget) -> Result<()> {
    let state = CommitState::of(job.state);
    orchestrator.store().add_status_report(job.id, &target, state, &description(job)).await?;
    Ok(())
}

/// A job ended: queue its final status when it is tracked. Failing to queue it is logged,
/// never the job's failure.
pub async fn job_ended(orchestrator: &Orchestrator, job: &JobRecord) {
    let store = orchestrator.store();
    let queued = match store.status_target(job.id).await {
        Ok(Some(target)) => {
            store.add_status_report(job.id, &target, CommitState::of(job.state), &description(job)).await.map(|()| true)
        }
        Ok(None) => Ok(false),
        Err(err) => Err(err),
    };
    if let Err(err) = queued {
        tracing::warn!(job = %job.id, error = %err, "cannot queue the job's final commit status");
    }
}

fn description(job: &JobRecord) -> String {
    let text = match job.state {
        JobState::Queued | JobState::Assigned => {
            format!("Rivet: {} #{} is queued", job.pipeline_name, job.pipeline_version)
        }
        JobState::Running => format!("Rivet: {} is running", job.pipeline_name),
        state => match job.message.is_empty() {
            true => format!("Rivet: {state}"),
            false => format!("Rivet: {state}: {}", job.message),
        },
    };
    rivet_core::text::truncate(&text, MAX_DESCRIPTION).into_owned()
}

/// Delivers due reports until `shutdown`.
pub async fn run(orchestrator: Orchestrator, shutdown: CancellationToken) {
    let client = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("rivet/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(err) => return tracing::error!(error = %err, "cannot build the HTTP client: no commit statuses"),
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(err) = deliver_due(&orchestrator, &client).await {
            tracing::warn!(error = %err, "cannot read the commit status outbox");
        }
    }
}

/// One round: claims the due reports and posts each.
pub async fn deliver_due(orchestrator: &Orchestrator, client: &reqwest::Client) -> Result<usize> {
    let now = Utc::now();
    let claim_until = now + chrono::Duration::from_std(CLAIM).unwrap_or_default();
    let reports = orchestrator.store().claim_status_reports(now, claim_until, BATCH).await?;
    let count = reports.len();
    for report in reports {
        let outcome = post(orchestrator, client, &report).await;
        let store = orchestrator.store();
        match outcome {
            Ok(()) => {
                tracing::info!(job = %report.job_id, state = report.state.as_str(), "commit status reported");
                store.close_status_report(report.id, Utc::now(), None).await?;
            }
            Err(Failure::Permanent(why)) => {
                tracing::warn!(job = %report.job_id, %why, "commit status given up");
                store.close_status_report(report.id, Utc::now(), Some(&why)).await?;
            }
            Err(Failure::Retry(why)) if report.attempts + 1 >= MAX_ATTEMPTS => {
                tracing::warn!(job = %report.job_id, %why, attempts = report.attempts + 1, "commit status given up");
                store.close_status_report(report.id, Utc::now(), Some(&why)).await?;
            }
            Err(Failure::Retry(why)) => {
                let mut backoff = rivet_core::backoff::Backoff::new(RETRY_MIN, RETRY_MAX);
                let mut delay = RETRY_MIN;
                for _ in 0..=report.attempts {
                    delay = backoff.next_delay();
                }
                // Full jitter may draw zero: wait at least the floor.
                let delay = delay.max(Duration::from_millis(200));
                let next = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                tracing::info!(job = %report.job_id, %why, retry_in_ms = delay.as_millis() as u64, "commit status failed; retrying");
                store.retry_status_report(report.id, report.attempts + 1, next, &why).await?;
            }
        }
    }
    Ok(count)
}

/// Why a delivery failed.
enum Failure {
    /// Worth another attempt: the network, a 5xx, a rate limit.
    Retry(String),
    /// Not: no token, a refused token, an unknown repository.
    Permanent(String),
}

async fn post(
    orchestrator: &Orchestrator,
    client: &reqwest::Client,
    report: &StatusReport,
) -> std::result::Result<(), Failure> {
    let target = &report.target;
    let pipeline = match orchestrator.store().job(report.job_id).await {
        Ok(Some(job)) => job.pipeline_name,
        Ok(None) => return Err(Failure::Permanent("the job is gone".to_owned())),
        Err(err) => return Err(Failure::Retry(format!("cannot read the job: {err}"))),
    };
    let token = match crate::domain::secrets::open_visible(orchestrator, &pipeline, &target.token_secret).await {
        Ok(Some(token)) => token,
        Ok(None) => return Err(Failure::Permanent(format!("the token secret `{}` is not set", target.token_secret))),
        Err(err) => return Err(Failure::Retry(format!("cannot open the token secret: {err}"))),
    };
    let request = request(client, report, &token).map_err(Failure::Permanent)?;
    let response = request.send().await.map_err(|err| Failure::Retry(format!("cannot reach the forge: {err}")))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let why = format!("the forge answered {status}");
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        Err(Failure::Retry(why))
    } else {
        Err(Failure::Permanent(why))
    }
}

/// The forge's "create a commit status" request.
fn request(
    client: &reqwest::Client,
    report: &StatusReport,
    token: &str,
) -> std::result::Result<reqwest::RequestBuilder, String> {
    let target = &report.target;
    let base = target.api_url.trim_end_matches('/');
    let sha = &target.sha;
    if !sha.bytes().all(|b| b.is_ascii_hexdigit()) || !(7..=64).contains(&sha.len()) {
        return Err(format!("`{sha}` is not a commit id"));
    }
    let state = report.state.on(target.forge);
    let request = match target.forge {
        Forge::Github | Forge::Gitea => {
            let (owner, name) = target
                .repository
                .split_once('/')
                .filter(|(owner, name)| !owner.is_empty() && !name.is_empty() && !name.contains('/'))
                .ok_or_else(|| format!("`{}` is not owner/name", target.repository))?;
            let url = format!("{base}/repos/{}/{}/statuses/{sha}", segment(owner), segment(name));
            let body = serde_json::json!({
                "state": state,
                "target_url": target.link,
                "description": report.description,
                "context": target.context,
            });
            let auth = match target.forge {
                Forge::Github => format!("Bearer {token}"),
                _ => format!("token {token}"),
            };
            client.post(url).header("authorization", auth).header("accept", "application/json").json(&body)
        }
        Forge::Gitlab => {
            let url = format!("{base}/projects/{}/statuses/{sha}", segment(&target.repository));
            let mut form = vec![
                ("state", state.to_owned()),
                ("name", target.context.clone()),
                ("description", report.description.clone()),
            ];
            if let Some(link) = &target.link {
                form.push(("target_url", link.clone()));
            }
            client.post(url).header("private-token", token).form(&form)
        }
    };
    Ok(request)
}

/// What a path segment escapes: everything but RFC 3986's unreserved characters (so
/// GitLab's project path keeps its `/` as `%2F`).
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A path segment, percent-encoded.
fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_state_has_a_status_on_every_forge() {
        assert_eq!(CommitState::of(JobState::Running).on(Forge::Github), "pending");
        assert_eq!(CommitState::of(JobState::TimedOut).on(Forge::Github), "failure");
        assert_eq!(CommitState::of(JobState::Cancelled).on(Forge::Gitlab), "canceled");
        assert_eq!(CommitState::of(JobState::Cancelled).on(Forge::Gitea), "error");
        assert_eq!(CommitState::of(JobState::Failed).on(Forge::Gitlab), "failed");
    }

    #[test]
    fn paths_are_encoded() {
        assert_eq!(segment("group/sub/project"), "group%2Fsub%2Fproject");
        assert_eq!(segment("a.b-c_d~e f"), "a.b-c_d~e%20f");
    }
}
