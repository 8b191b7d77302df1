//! Gitea's and Forgejo's webhook payloads, which follow GitHub's shapes (Gitea's
//! `modules/structs/hook.go`): `push` for branches and tags, `pull_request` for pull
//! requests, whose new commits are the action `synchronized`.

use super::event::{ForgeEvent, ParseError, PullRequestAction, payload};
use super::github::{PullRequestPayload, PushPayload};

/// The event of a Gitea webhook named `event` (its `X-Gitea-Event`).
pub(super) fn parse(event: &str, body: &[u8]) -> Result<Option<ForgeEvent>, ParseError> {
    match event {
        "push" => payload::<PushPayload>("push", body)?.into_push().into_event(),
        "pull_request" => {
            let pr: PullRequestPayload = payload("pull_request", body)?;
            let action = match pr.action.as_str() {
                "opened" => PullRequestAction::Opened,
                "reopened" => PullRequestAction::Reopened,
                "synchronized" => PullRequestAction::Synchronize,
                _ => return Ok(None),
            };
            pr.into_pull_request(action).into_event().map(Some)
        }
        // Gitea sends `create` beside the `push` of a new branch or tag; the push is enough.
        _ => Ok(None),
    }
}
