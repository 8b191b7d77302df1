//! GitLab's webhook payloads (docs.gitlab.com, "Webhook events"): `Push Hook`, `Tag Push
//! Hook` and `Merge Request Hook`.

use serde::Deserialize;

use super::event::{CommitFiles, ForgeEvent, ParseError, PullRequest, PullRequestAction, Push, payload};

#[derive(Deserialize)]
struct Project {
    path_with_namespace: String,
    git_http_url: String,
    web_url: Option<String>,
}

/// A push or tag push payload.
#[derive(Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    before: String,
    after: String,
    /// The commit checked out: for a tag, the tagged commit (`after` is the tag object of
    /// an annotated tag); `null` for a deletion.
    checkout_sha: Option<String>,
    #[serde(default)]
    commits: Vec<CommitFiles>,
    /// GitLab lists at most 20 commits; this counts them all.
    total_commits_count: Option<u64>,
    user_username: Option<String>,
    project: Project,
}

impl PushPayload {
    fn into_push(self, tag: bool) -> Push {
        let built = if tag { self.checkout_sha.as_deref().unwrap_or(&self.after) } else { &self.after };
        let web_url = self.project.web_url.map(|url| format!("{}/-/commit/{built}", url.trim_end_matches('/')));
        Push {
            git_ref: self.git_ref,
            before: self.before,
            head_commit: if tag { self.checkout_sha } else { None },
            after: self.after,
            repository: self.project.path_with_namespace,
            clone_url: self.project.git_http_url,
            commits: self.commits,
            total_commits: self.total_commits_count,
            sender: self.user_username,
            web_url,
        }
    }
}

#[derive(Deserialize)]
struct User {
    username: String,
}

#[derive(Deserialize)]
struct LastCommit {
    id: String,
}

#[derive(Deserialize)]
struct MergeRequest {
    iid: u64,
    /// Absent from payloads sent before the first action (GitLab's "test" button).
    action: Option<String>,
    /// The head before an `update` that pushed commits; absent from updates that changed
    /// only the title, labels or other metadata.
    oldrev: Option<String>,
    source_branch: String,
    target_branch: String,
    last_commit: LastCommit,
    url: Option<String>,
}

#[derive(Deserialize)]
struct MergeRequestPayload {
    user: Option<User>,
    project: Project,
    object_attributes: MergeRequest,
}

/// The event of a GitLab webhook named `event` (its `X-Gitlab-Event`).
pub(super) fn parse(event: &str, body: &[u8]) -> Result<Option<ForgeEvent>, ParseError> {
    match event {
        "Push Hook" => payload::<PushPayload>("Push Hook", body)?.into_push(false).into_event(),
        "Tag Push Hook" => payload::<PushPayload>("Tag Push Hook", body)?.into_push(true).into_event(),
        "Merge Request Hook" => {
            let mr: MergeRequestPayload = payload("Merge Request Hook", body)?;
            let attributes = mr.object_attributes;
            let action = match attributes.action.as_deref() {
                Some("open") => PullRequestAction::Opened,
                Some("reopen") => PullRequestAction::Reopened,
                // An update without `oldrev` edited the description or labels: nothing to build.
                Some("update") if attributes.oldrev.is_some() => PullRequestAction::Synchronize,
                _ => return Ok(None),
            };
            let number = attributes.iid;
            let pull_request = PullRequest {
                number,
                action,
                git_ref: format!("refs/merge-requests/{number}/head"),
                head_branch: attributes.source_branch,
                base_branch: attributes.target_branch,
                head_sha: attributes.last_commit.id,
                repository: mr.project.path_with_namespace,
                clone_url: mr.project.git_http_url,
                sender: mr.user.map(|u| u.username),
                web_url: attributes.url,
            };
            pull_request.into_event().map(Some)
        }
        // System hooks, issues, notes, pipelines and the rest start nothing.
        _ => Ok(None),
    }
}
