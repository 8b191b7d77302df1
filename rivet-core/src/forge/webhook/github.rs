//! GitHub's webhook payloads (docs.github.com, "Webhook events and payloads"): `push` for
//! branches and tags, `pull_request` for pull requests.

use serde::Deserialize;

use super::event::{CommitFiles, ForgeEvent, ParseError, PullRequest, PullRequestAction, Push, payload};

/// GitHub includes at most this many commits in a push payload.
const MAX_LISTED_COMMITS: usize = 2048;

#[derive(Deserialize)]
pub(super) struct Repository {
    pub full_name: String,
    pub clone_url: String,
}

#[derive(Deserialize)]
pub(super) struct User {
    pub login: String,
}

#[derive(Deserialize)]
pub(super) struct HeadCommit {
    pub id: String,
}

/// A push payload. Gitea's is the same shape, with `total_commits` and `compare_url`.
#[derive(Deserialize)]
pub(super) struct PushPayload {
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub before: String,
    pub after: String,
    #[serde(default)]
    pub commits: Vec<CommitFiles>,
    pub head_commit: Option<HeadCommit>,
    pub repository: Repository,
    pub sender: Option<User>,
    /// GitHub's compare view.
    pub compare: Option<String>,
    /// Gitea's compare view.
    pub compare_url: Option<String>,
    /// Gitea: how many commits were pushed.
    pub total_commits: Option<u64>,
}

impl PushPayload {
    pub(super) fn into_push(self) -> Push {
        // GitHub says nothing of commits past the ones it lists.
        let total_commits = self
            .total_commits
            .or_else(|| (self.commits.len() >= MAX_LISTED_COMMITS).then_some(self.commits.len() as u64 + 1));
        Push {
            git_ref: self.git_ref,
            before: self.before,
            after: self.after,
            head_commit: self.head_commit.map(|c| c.id),
            repository: self.repository.full_name,
            clone_url: self.repository.clone_url,
            commits: self.commits,
            total_commits,
            sender: self.sender.map(|u| u.login),
            web_url: self.compare.or(self.compare_url),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct Branch {
    #[serde(rename = "ref")]
    pub branch: String,
    pub sha: String,
}

#[derive(Deserialize)]
pub(super) struct PullRequestObject {
    pub number: u64,
    pub html_url: Option<String>,
    pub head: Branch,
    pub base: Branch,
}

/// A pull request payload. Gitea's is the same shape.
#[derive(Deserialize)]
pub(super) struct PullRequestPayload {
    pub action: String,
    pub pull_request: PullRequestObject,
    pub repository: Repository,
    pub sender: Option<User>,
}

impl PullRequestPayload {
    /// The pull request, for the actions that change what would be built.
    pub(super) fn into_pull_request(self, action: PullRequestAction) -> PullRequest {
        let number = self.pull_request.number;
        PullRequest {
            number,
            action,
            git_ref: format!("refs/pull/{number}/head"),
            head_branch: self.pull_request.head.branch,
            base_branch: self.pull_request.base.branch,
            head_sha: self.pull_request.head.sha,
            repository: self.repository.full_name,
            clone_url: self.repository.clone_url,
            sender: self.sender.map(|u| u.login),
            web_url: self.pull_request.html_url,
        }
    }
}

/// The event of a GitHub webhook named `event` (its `X-GitHub-Event`).
pub(super) fn parse(event: &str, body: &[u8]) -> Result<Option<ForgeEvent>, ParseError> {
    parse_events(event, body, "synchronize")
}

/// The events of GitHub's shapes (Gitea's follow them), where a pull request's new commits
/// are the action named `synchronize`.
pub(super) fn parse_events(event: &str, body: &[u8], synchronize: &str) -> Result<Option<ForgeEvent>, ParseError> {
    match event {
        "push" => payload::<PushPayload>("push", body)?.into_push().into_event(),
        "pull_request" => {
            let pr: PullRequestPayload = payload("pull_request", body)?;
            let action = match pr.action.as_str() {
                "opened" => PullRequestAction::Opened,
                "reopened" => PullRequestAction::Reopened,
                action if action == synchronize => PullRequestAction::Synchronize,
                _ => return Ok(None),
            };
            pr.into_pull_request(action).into_event().map(Some)
        }
        // `ping` when a webhook is created, and every event Rivet does not act on.
        _ => Ok(None),
    }
}
