//! Gitea's and Forgejo's webhook payloads, which follow GitHub's shapes (Gitea's
//! `modules/structs/hook.go`): `push` for branches and tags, `pull_request` for pull
//! requests, whose new commits are the action `synchronized`.

use super::event::{ForgeEvent, ParseError};

/// The event of a Gitea webhook named `event` (its `X-Gitea-Event`). Gitea sends `create`
/// beside the `push` of a new branch or tag; the push is enough, so that is ignored with
/// every other event.
pub(super) fn parse(event: &str, body: &[u8]) -> Result<Option<ForgeEvent>, ParseError> {
    super::github::parse_events(event, body, "synchronized")
}
