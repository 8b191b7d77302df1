//! The inputs an event gives the pipelines it starts.
//!
//! Every event offers the same standard names ([`EVENT_INPUTS`]); a pipeline receives those
//! it declares (`inputs = { branch = { type = "string" } }`) and nothing else, so that adding
//! a standard name later breaks no pipeline, and a pipeline that declares none runs as if
//! launched by hand with its defaults.

use std::collections::BTreeMap;

use crate::forge::webhook::ForgeEvent;
use crate::model::InputSpec;

/// The standard input names an event may set, in the order [`event_inputs`] gives them.
pub const EVENT_INPUTS: &[&str] =
    &["ref", "sha", "repository", "event", "branch", "tag", "pr_number", "clone_url", "before", "sender"];

/// The standard inputs of `event`, those it has: `ref` (the full ref), `sha`, `repository`,
/// `event` (`push`, `tag` or `pull_request`), `branch` (for a pull request, its head
/// branch), `tag`, `pr_number`, `clone_url`, `before` and `sender`.
///
/// The orchestrator does not pass these to [`crate::resolve`] as they are: see
/// [`launch_inputs`], which keeps the ones the pipeline declares.
pub fn event_inputs(event: &ForgeEvent) -> Vec<(String, String)> {
    let pairs = [
        ("ref", Some(event.git_ref.clone())),
        ("sha", Some(event.sha.clone())),
        ("repository", Some(event.repository.clone())),
        ("event", Some(event.kind.as_str().to_owned())),
        ("branch", event.branch.clone()),
        ("tag", event.tag.clone()),
        ("pr_number", event.pr_number.map(|n| n.to_string())),
        ("clone_url", Some(event.clone_url.clone())),
        ("before", event.before.clone()),
        ("sender", event.sender.clone()),
    ];
    pairs.into_iter().filter_map(|(name, value)| value.map(|value| (name.to_owned(), value))).collect()
}

/// The raw inputs to launch a pipeline declaring `specs` with, for `event` and a trigger's
/// `fixed` inputs; pass the result to [`crate::resolve`] with the same `specs`.
///
/// The event's inputs are kept only when the pipeline declares them. The fixed inputs are
/// all kept, so that one the pipeline does not declare is reported by `resolve` as the
/// configuration mistake it is. Where both set a name, the event wins: `sha` and `ref` must
/// describe the commit actually being built.
pub fn launch_inputs(
    specs: &[InputSpec],
    event: &ForgeEvent,
    fixed: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut raw = fixed.clone();
    for (name, value) in event_inputs(event) {
        if specs.iter().any(|spec| spec.name == name) {
            raw.insert(name, value);
        }
    }
    raw
}
