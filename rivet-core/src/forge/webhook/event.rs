//! What a webhook says happened, the same for every forge: [`ForgeEvent`].
//!
//! Each forge module deserialises its own payloads into small private structs holding only
//! the fields read here, and builds the event through the checks below, so that every event
//! leaving this module has a full ref, a hex commit id and strings of bounded length.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Headers, first_of, gitea, github, gitlab};
use crate::forge::Forge;

/// The largest webhook body parsed, in bytes. GitHub caps its payloads at 25 MB, but a push
/// of that size is a push of thousands of commits whose details nothing here needs; the HTTP
/// listener should refuse larger bodies before reading them.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// The longest string field of an event (a ref, a URL, a name), in bytes.
pub const MAX_FIELD_BYTES: usize = 4096;
/// The most changed paths an event lists. A push that changes more has `changed_paths`
/// `None`: unknown, which path filters treat as matching.
pub const MAX_CHANGED_PATHS: usize = 10_000;

/// What kind of change an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Commits pushed to a branch.
    Push,
    /// A tag pushed.
    Tag,
    /// A pull request (GitLab: merge request) opened, reopened or given new commits.
    PullRequest,
}

impl EventKind {
    /// The name pipelines see in their `event` input.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Push => "push",
            EventKind::Tag => "tag",
            EventKind::PullRequest => "pull_request",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a pull request, in GitHub's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullRequestAction {
    /// Opened (GitLab: `open`).
    Opened,
    /// Reopened after being closed (GitLab: `reopen`).
    Reopened,
    /// New commits pushed to its head (Gitea: `synchronized`; GitLab: `update` with an
    /// `oldrev`).
    Synchronize,
}

impl PullRequestAction {
    /// GitHub's name for the action.
    pub fn as_str(self) -> &'static str {
        match self {
            PullRequestAction::Opened => "opened",
            PullRequestAction::Reopened => "reopened",
            PullRequestAction::Synchronize => "synchronize",
        }
    }
}

impl fmt::Display for PullRequestAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change on a forge that may start pipelines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgeEvent {
    /// Push, tag or pull request.
    pub kind: EventKind,
    /// The repository's full name: `owner/name` (GitLab: the path with its namespace). For a
    /// pull request, the repository it targets.
    pub repository: String,
    /// The URL to clone the repository from over HTTP(S).
    pub clone_url: String,
    /// The full ref to check out: `refs/heads/main`, `refs/tags/v1.0`, or for a pull request
    /// the forge's ref of its head in the target repository (`refs/pull/7/head`, GitLab's
    /// `refs/merge-requests/7/head`), which exists even when the head is in a fork.
    pub git_ref: String,
    /// The branch pushed to; for a pull request, its head (source) branch.
    pub branch: Option<String>,
    /// For a pull request, the branch it targets.
    pub base_branch: Option<String>,
    /// The tag pushed.
    pub tag: Option<String>,
    /// The commit to build: the pushed head, the tagged commit, the pull request's head.
    pub sha: String,
    /// The commit the branch pointed to before the push; `None` for a new branch.
    pub before: Option<String>,
    /// The pull request's number (GitLab: the merge request's iid).
    pub pr_number: Option<u64>,
    /// What happened to the pull request.
    pub pr_action: Option<PullRequestAction>,
    /// Every path added, modified or removed by the pushed commits, sorted; `None` when the
    /// payload does not say (pull requests, tags, new branches, pushes with more commits or
    /// paths than the payload lists).
    pub changed_paths: Option<Vec<String>>,
    /// The user who pushed or acted, by login.
    pub sender: Option<String>,
    /// The web page of the change: the compare view, the commit, the pull request.
    pub web_url: Option<String>,
}

/// How much of serde's description of a bad payload an error keeps, in bytes: serde quotes
/// the offending value, which the sender chose.
const MAX_REASON_BYTES: usize = 256;

/// Why a webhook body could not be read as an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is larger than [`MAX_BODY`].
    #[error("the webhook body is {size} bytes; the limit is {MAX_BODY}")]
    BodyTooLarge {
        /// The body's size.
        size: usize,
    },
    /// The header naming the event is missing.
    #[error("missing header `{header}`")]
    MissingEventHeader {
        /// The header expected.
        header: &'static str,
    },
    /// The body is not the JSON the forge sends for the event.
    #[error("invalid `{event}` payload: {reason}")]
    InvalidPayload {
        /// The event, as the forge names it.
        event: &'static str,
        /// What serde found wrong, with its line and column, truncated.
        reason: String,
    },
    /// A field is longer than [`MAX_FIELD_BYTES`].
    #[error("field `{field}` is {len} bytes long; the limit is {MAX_FIELD_BYTES}")]
    FieldTooLong {
        /// The field, as a JSON path.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A commit id is not 40 or 64 hex digits.
    #[error("field `{field}` is not a commit id (40 or 64 hex digits)")]
    InvalidCommit {
        /// The field, as a JSON path.
        field: &'static str,
    },
}

/// Reads the webhook `body` that `forge` sent with `headers`. Events that start no pipeline
/// (`ping`, issues, closed or edited pull requests, branch and tag deletions, refs other than
/// branches and tags) are `Ok(None)`.
///
/// Call [`verify`](super::verify) first: an unverified body is an attacker's input.
pub fn parse<H: Headers + ?Sized>(forge: Forge, headers: &H, body: &[u8]) -> Result<Option<ForgeEvent>, ParseError> {
    if body.len() > MAX_BODY {
        return Err(ParseError::BodyTooLarge { size: body.len() });
    }
    let names: &[&'static str] = match forge {
        Forge::Github => &["X-GitHub-Event"],
        Forge::Gitea => &["X-Gitea-Event", "X-Forgejo-Event"],
        Forge::Gitlab => &["X-Gitlab-Event"],
    };
    let (_, event) = first_of(headers, names).ok_or(ParseError::MissingEventHeader { header: names[0] })?;
    match forge {
        Forge::Github => github::parse(event.trim(), body),
        Forge::Gitea => gitea::parse(event.trim(), body),
        Forge::Gitlab => gitlab::parse(event.trim(), body),
    }
}

/// Deserialises the payload of `event`.
pub(super) fn payload<'a, T: Deserialize<'a>>(event: &'static str, body: &'a [u8]) -> Result<T, ParseError> {
    serde_json::from_slice(body).map_err(|e| ParseError::InvalidPayload {
        event,
        reason: crate::text::truncate_owned(e.to_string(), MAX_REASON_BYTES),
    })
}

/// `value` if it is at most [`MAX_FIELD_BYTES`] long.
pub(super) fn bounded(field: &'static str, value: String) -> Result<String, ParseError> {
    if value.len() > MAX_FIELD_BYTES {
        return Err(ParseError::FieldTooLong { field, len: value.len() });
    }
    Ok(value)
}

/// The same for an optional field; an empty string counts as absent.
pub(super) fn bounded_opt(field: &'static str, value: Option<String>) -> Result<Option<String>, ParseError> {
    value.filter(|v| !v.is_empty()).map(|v| bounded(field, v)).transpose()
}

/// `value` if it is a commit id: 40 (SHA-1) or 64 (SHA-256) hex digits, kept lowercase.
pub(super) fn commit(field: &'static str, value: String) -> Result<String, ParseError> {
    let hex = value.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex || !(value.len() == 40 || value.len() == 64) {
        return Err(ParseError::InvalidCommit { field });
    }
    Ok(value.to_ascii_lowercase())
}

/// Whether `sha` is the all-zero id forges send for a ref that did not exist (before a
/// creation) or no longer exists (after a deletion).
pub(super) fn is_zero(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

/// What a pushed ref is.
pub(super) enum PushedRef {
    /// `refs/heads/<name>`.
    Branch(String),
    /// `refs/tags/<name>`.
    Tag(String),
}

/// Splits a full ref into branch or tag; other refs (notes, pull request refs) are `None`.
pub(super) fn pushed_ref(git_ref: &str) -> Option<PushedRef> {
    if let Some(branch) = git_ref.strip_prefix("refs/heads/").filter(|b| !b.is_empty()) {
        Some(PushedRef::Branch(branch.to_owned()))
    } else {
        git_ref.strip_prefix("refs/tags/").filter(|t| !t.is_empty()).map(|tag| PushedRef::Tag(tag.to_owned()))
    }
}

/// The files one pushed commit touched, as the forges list them.
#[derive(Debug, Default, Deserialize)]
pub(super) struct CommitFiles {
    #[serde(default)]
    added: Vec<String>,
    #[serde(default)]
    modified: Vec<String>,
    #[serde(default)]
    removed: Vec<String>,
}

/// The union of the paths `commits` touched, sorted, or `None` (unknown) when the payload
/// lists no commits, fewer than `total` were pushed, there are more than
/// [`MAX_CHANGED_PATHS`], or one is longer than [`MAX_FIELD_BYTES`] (a path filter is not
/// going to be asked about it, and matching costs grow with length).
pub(super) fn changed_paths(commits: &[CommitFiles], total: Option<u64>) -> Option<Vec<String>> {
    if commits.is_empty() || total.is_some_and(|total| total > commits.len() as u64) {
        return None;
    }
    let mut paths = BTreeSet::new();
    for commit in commits {
        for path in commit.added.iter().chain(&commit.modified).chain(&commit.removed) {
            paths.insert(path.as_str());
            if paths.len() > MAX_CHANGED_PATHS || path.len() > MAX_FIELD_BYTES {
                return None;
            }
        }
    }
    Some(paths.into_iter().map(str::to_owned).collect())
}

/// A push payload's fields, read the same way for GitHub and Gitea (Gitea's payloads follow
/// GitHub's); GitLab builds one from its own names.
pub(super) struct Push {
    pub git_ref: String,
    pub before: String,
    pub after: String,
    /// The tagged commit when it differs from `after` (an annotated tag's object).
    pub head_commit: Option<String>,
    pub repository: String,
    pub clone_url: String,
    pub commits: Vec<CommitFiles>,
    /// How many commits were pushed, when the payload says and may list fewer.
    pub total_commits: Option<u64>,
    pub sender: Option<String>,
    pub web_url: Option<String>,
}

impl Push {
    /// The event of a push, `None` for a deletion or a ref that is neither branch nor tag.
    pub(super) fn into_event(self) -> Result<Option<ForgeEvent>, ParseError> {
        if is_zero(&self.after) {
            return Ok(None);
        }
        let Some(pushed) = pushed_ref(&self.git_ref) else { return Ok(None) };
        let new_ref = is_zero(&self.before);
        let before = if new_ref || self.before.is_empty() { None } else { Some(commit("before", self.before)?) };
        let (kind, branch, tag, sha, changed_paths) = match pushed {
            PushedRef::Branch(branch) => {
                // A new branch's commits are those new to the repository, not its changes
                // from any base: what it changed is unknown.
                let paths = if new_ref { None } else { changed_paths(&self.commits, self.total_commits) };
                (EventKind::Push, Some(branch), None, commit("after", self.after)?, paths)
            }
            PushedRef::Tag(tag) => {
                let sha = match self.head_commit {
                    Some(head) => commit("head_commit.id", head)?,
                    None => commit("after", self.after)?,
                };
                (EventKind::Tag, None, Some(tag), sha, None)
            }
        };
        Ok(Some(ForgeEvent {
            kind,
            repository: bounded("repository", self.repository)?,
            clone_url: bounded("clone_url", self.clone_url)?,
            git_ref: bounded("ref", self.git_ref)?,
            branch: branch.map(|b| bounded("ref", b)).transpose()?,
            base_branch: None,
            tag: tag.map(|t| bounded("ref", t)).transpose()?,
            sha,
            before,
            pr_number: None,
            pr_action: None,
            changed_paths,
            sender: bounded_opt("sender", self.sender)?,
            web_url: bounded_opt("web_url", self.web_url)?,
        }))
    }
}

/// A pull request's fields, the same way for every forge.
pub(super) struct PullRequest {
    pub number: u64,
    pub action: PullRequestAction,
    /// The pull request's head ref in the target repository.
    pub git_ref: String,
    pub head_branch: String,
    pub base_branch: String,
    pub head_sha: String,
    pub repository: String,
    pub clone_url: String,
    pub sender: Option<String>,
    pub web_url: Option<String>,
}

impl PullRequest {
    /// The event of the pull request.
    pub(super) fn into_event(self) -> Result<ForgeEvent, ParseError> {
        Ok(ForgeEvent {
            kind: EventKind::PullRequest,
            repository: bounded("repository", self.repository)?,
            clone_url: bounded("clone_url", self.clone_url)?,
            git_ref: self.git_ref,
            branch: Some(bounded("head.ref", self.head_branch)?),
            base_branch: Some(bounded("base.ref", self.base_branch)?),
            tag: None,
            sha: commit("head.sha", self.head_sha)?,
            before: None,
            pr_number: Some(self.number),
            pr_action: Some(self.action),
            changed_paths: None,
            sender: bounded_opt("sender", self.sender)?,
            web_url: bounded_opt("web_url", self.web_url)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(added: &[&str], modified: &[&str], removed: &[&str]) -> CommitFiles {
        let owned = |paths: &[&str]| paths.iter().map(|p| p.to_string()).collect();
        CommitFiles { added: owned(added), modified: owned(modified), removed: owned(removed) }
    }

    #[test]
    fn changed_paths_are_the_union_or_unknown() {
        let commits = [files(&["b", "a"], &["c"], &[]), files(&[], &["a"], &["d"])];
        assert_eq!(changed_paths(&commits, None), Some(vec!["a".into(), "b".into(), "c".into(), "d".into()]));
        assert_eq!(changed_paths(&commits, Some(2)), changed_paths(&commits, None));
        assert_eq!(changed_paths(&commits, Some(3)), None, "the payload lists fewer commits than were pushed");
        assert_eq!(changed_paths(&[], None), None);
        let many: Vec<String> = (0..=MAX_CHANGED_PATHS).map(|i| i.to_string()).collect();
        let huge = [CommitFiles { added: many, ..CommitFiles::default() }];
        assert_eq!(changed_paths(&huge, None), None);
        let at_limit = [CommitFiles { added: huge[0].added[1..].to_vec(), ..CommitFiles::default() }];
        assert_eq!(changed_paths(&at_limit, None).map(|p| p.len()), Some(MAX_CHANGED_PATHS));
        let long = [files(&["a", &"x".repeat(MAX_FIELD_BYTES + 1)], &[], &[])];
        assert_eq!(changed_paths(&long, None), None);
    }

    #[test]
    fn commits_are_hex_of_a_hash_length() {
        let sha1 = "A94A8FE5CCB19BA61C4C0873D391E987982FBBD3";
        assert_eq!(commit("after", sha1.into()).ok(), Some(sha1.to_ascii_lowercase()));
        assert!(commit("after", "ab".repeat(32)).is_ok());
        for bad in ["", "a94a8fe", "g".repeat(40).as_str(), "../../../../../../../../../../etc/passwd"] {
            let error = commit("after", bad.into()).unwrap_err();
            assert_eq!(error.to_string(), "field `after` is not a commit id (40 or 64 hex digits)");
        }
        assert!(is_zero("0000000000000000000000000000000000000000"));
        assert!(!is_zero(""));
    }

    #[test]
    fn large_bodies_and_missing_event_headers_are_errors() {
        let body = vec![b' '; MAX_BODY + 1];
        let error = parse(Forge::Github, &[("X-GitHub-Event", "push")], &body).unwrap_err();
        assert_eq!(error.to_string(), format!("the webhook body is {} bytes; the limit is {MAX_BODY}", MAX_BODY + 1));
        let error = parse(Forge::Gitea, &[("X-GitHub-Event", "push")], b"{}").unwrap_err();
        assert!(matches!(error, ParseError::MissingEventHeader { header: "X-Gitea-Event" }), "{error}");
        let error = parse(Forge::Github, &[("X-GitHub-Event", "push")], b"{").unwrap_err();
        assert!(matches!(error, ParseError::InvalidPayload { event: "push", .. }), "{error}");
        // serde quotes a string found where a struct belongs.
        let huge = format!(r#"{{"ref": "a", "after": "b", "repository": "{}"}}"#, "x".repeat(100_000));
        let error = parse(Forge::Github, &[("X-GitHub-Event", "push")], huge.as_bytes()).unwrap_err();
        let ParseError::InvalidPayload { reason, .. } = &error else { panic!("{error}") };
        assert!(reason.len() <= MAX_REASON_BYTES && reason.contains("[truncated"), "{reason}");
        let long = format!(
            r#"{{"ref":"refs/heads/{}","before":"","after":"{}","repository":{{"full_name":"a/b","clone_url":"u"}}}}"#,
            "x".repeat(MAX_FIELD_BYTES),
            "a".repeat(40)
        );
        let error = parse(Forge::Github, &[("X-GitHub-Event", "push")], long.as_bytes()).unwrap_err();
        assert!(matches!(error, ParseError::FieldTooLong { field: "ref", .. }), "{error}");
    }
}
