//! Forge webhooks, from raw request to event: is the request genuine ([`verify`]), has it
//! been seen before ([`delivery_id`]), and what happened ([`parse`]).
//!
//! The orchestrator's HTTP listener calls these in that order on the raw body, before it
//! touches the database: a request that fails [`verify`] is refused without being parsed,
//! a delivery id already recorded is a redelivery and starts nothing, and [`parse`] turns
//! the rest into a [`ForgeEvent`] or into `None` for events Rivet ignores (`ping`, issues,
//! closed pull requests, branch deletions). Nothing here does I/O.
//!
//! Everything a sender controls is bounded: the body by [`MAX_BODY`], each string field by
//! [`MAX_FIELD_BYTES`], the delivery id by [`MAX_DELIVERY_ID_BYTES`], the list of changed
//! paths by [`MAX_CHANGED_PATHS`] (past it the list is unknown, which path filters treat as
//! matching).

mod delivery;
mod event;
mod gitea;
mod github;
mod gitlab;
mod verify;

pub use delivery::{DeliveryError, MAX_DELIVERY_ID_BYTES, delivery_id};
pub use event::{
    EventKind, ForgeEvent, MAX_BODY, MAX_CHANGED_PATHS, MAX_FIELD_BYTES, ParseError, PullRequestAction, parse,
};
pub use verify::{VerifyError, verify};

/// The headers of a webhook request, looked up by name without regard to case (HTTP header
/// names are case-insensitive).
///
/// Implemented for slices and vectors of `(name, value)` pairs; the orchestrator converts its
/// `http::HeaderMap` into pairs (skipping values that are not UTF-8, which no forge sends for
/// the headers read here), so that this crate needs no HTTP library.
pub trait Headers {
    /// The value of the first header called `name`, if there is one.
    fn header(&self, name: &str) -> Option<&str>;
}

impl<N: AsRef<str>, V: AsRef<str>> Headers for [(N, V)] {
    fn header(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| n.as_ref().eq_ignore_ascii_case(name)).map(|(_, v)| v.as_ref())
    }
}

impl<N: AsRef<str>, V: AsRef<str>> Headers for Vec<(N, V)> {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl<N: AsRef<str>, V: AsRef<str>, const K: usize> Headers for [(N, V); K] {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

/// The first of `names` present in `headers`, with the name it was found under.
fn first_of<'h, H: Headers + ?Sized>(headers: &'h H, names: &[&'static str]) -> Option<(&'static str, &'h str)> {
    names.iter().find_map(|name| headers.header(name).map(|value| (*name, value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_compare_without_case() {
        let headers = [("x-github-event", "push"), ("Content-Type", "application/json")];
        assert_eq!(headers.header("X-GitHub-Event"), Some("push"));
        assert_eq!(headers.header("content-type"), Some("application/json"));
        assert_eq!(headers.header("X-Gitea-Event"), None);
        let owned = vec![("X-A".to_owned(), "1".to_owned()), ("x-a".to_owned(), "2".to_owned())];
        assert_eq!(owned.header("x-A"), Some("1"), "the first of repeated headers wins");
        assert_eq!(first_of(&headers, &["X-Gitea-Event", "x-github-event"]), Some(("x-github-event", "push")));
    }
}
