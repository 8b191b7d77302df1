use std::collections::BTreeMap;

use super::*;
use crate::forge::webhook::PullRequestAction;
use crate::model::{InputSpec, InputType, InputValue};

fn push(branch: &str, paths: Option<&[&str]>) -> ForgeEvent {
    ForgeEvent {
        kind: EventKind::Push,
        repository: "acme/app".into(),
        clone_url: "https://forge.example/acme/app.git".into(),
        git_ref: format!("refs/heads/{branch}"),
        branch: Some(branch.into()),
        base_branch: None,
        tag: None,
        sha: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".into(),
        before: Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246".into()),
        pr_number: None,
        pr_action: None,
        changed_paths: paths.map(|paths| paths.iter().map(|p| p.to_string()).collect()),
        sender: Some("alice".into()),
        web_url: None,
    }
}

fn tag(name: &str) -> ForgeEvent {
    ForgeEvent {
        kind: EventKind::Tag,
        git_ref: format!("refs/tags/{name}"),
        branch: None,
        tag: Some(name.into()),
        before: None,
        changed_paths: None,
        ..push("x", None)
    }
}

fn pull_request(head: &str, base: &str) -> ForgeEvent {
    ForgeEvent {
        kind: EventKind::PullRequest,
        git_ref: "refs/pull/7/head".into(),
        branch: Some(head.into()),
        base_branch: Some(base.into()),
        before: None,
        pr_number: Some(7),
        pr_action: Some(PullRequestAction::Opened),
        changed_paths: None,
        ..push(head, None)
    }
}

fn filter(events: &[EventKind], branches: &[&str], tags: &[&str], paths: &[&str]) -> TriggerFilter {
    TriggerFilter::new(events.to_vec(), branches, tags, paths).unwrap()
}

#[test]
fn an_empty_filter_matches_everything() {
    let any = TriggerFilter::default();
    for event in [push("main", Some(&[])), tag("v1"), pull_request("fix", "main")] {
        assert!(any.matches(&event), "{:?}", event.kind);
    }
}

#[test]
fn events_filter_by_kind() {
    let pushes = filter(&[EventKind::Push], &[], &[], &[]);
    assert!(pushes.matches(&push("main", None)));
    assert!(!pushes.matches(&tag("v1")));
    assert!(!pushes.matches(&pull_request("fix", "main")));
    let releases = filter(&[EventKind::Tag], &[], &["v*"], &[]);
    assert!(releases.matches(&tag("v1.2.0")));
    assert!(!releases.matches(&tag("nightly")));
}

#[test]
fn pull_requests_match_branches_by_their_target() {
    let main = filter(&[], &["main", "release/*"], &[], &[]);
    assert!(main.matches(&push("main", None)));
    assert!(main.matches(&push("release/1.0", None)));
    assert!(!main.matches(&push("release/1.0/rc", None)));
    assert!(!main.matches(&push("feature", None)));
    assert!(main.matches(&pull_request("feature", "main")));
    assert!(!main.matches(&pull_request("main", "feature")));
    // `branches` says nothing about tags; `events` keeps them out.
    assert!(main.matches(&tag("v1")));
    assert!(!filter(&[EventKind::Push, EventKind::PullRequest], &["main"], &[], &[]).matches(&tag("v1")));
}

#[test]
fn paths_match_when_any_changed_path_matches_or_changes_are_unknown() {
    let docs = filter(&[], &[], &[], &["docs/**", "*.md"]);
    assert!(docs.matches(&push("main", Some(&["src/main.rs", "docs/guide/intro.md"]))));
    assert!(docs.matches(&push("main", Some(&["README.md"]))));
    assert!(!docs.matches(&push("main", Some(&["src/README.md", "src/main.rs"]))));
    assert!(!docs.matches(&push("main", Some(&[]))));
    assert!(docs.matches(&push("main", None)), "unknown changes match");
    assert!(docs.matches(&pull_request("fix", "main")), "pull requests list no paths");
}

#[test]
fn every_bad_pattern_is_reported_at_once() {
    let errors = TriggerFilter::new(vec![], &["ok", "a**"], &[""], &["[z-"]).unwrap_err();
    assert_eq!(errors.0.len(), 3, "{errors}");
    assert!(matches!(&errors.0[0], TriggerError::InvalidGlob { pattern, .. } if pattern == "a**"));
    assert_eq!(errors.0[1], TriggerError::EmptyGlob);
    assert!(matches!(&errors.0[2], TriggerError::InvalidGlob { pattern, .. } if pattern == "[z-"));
    let many = vec!["*"; MAX_GLOBS + 1];
    let errors = TriggerFilter::new(vec![], &many, &[], &[]).unwrap_err();
    assert_eq!(errors.to_string(), "branches: 65 patterns; the limit is 64");
    assert!(TriggerFilter::new(vec![], &many[1..], &[], &[]).is_ok());
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn event_inputs_are_the_standard_names_present() {
    assert_eq!(
        event_inputs(&push("main", None)),
        pairs(&[
            ("ref", "refs/heads/main"),
            ("sha", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"),
            ("repository", "acme/app"),
            ("event", "push"),
            ("branch", "main"),
            ("clone_url", "https://forge.example/acme/app.git"),
            ("before", "6113728f27ae82c7b1a177c8d03f9e96e0adf246"),
            ("sender", "alice"),
        ])
    );
    let names = |event: &ForgeEvent| event_inputs(event).into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(names(&tag("v1")), ["ref", "sha", "repository", "event", "tag", "clone_url", "sender"]);
    let pr = event_inputs(&pull_request("fix", "main"));
    assert!(pr.contains(&("event".into(), "pull_request".into())));
    assert!(pr.contains(&("pr_number".into(), "7".into())));
    assert!(pr.contains(&("branch".into(), "fix".into())));
    for (name, _) in event_inputs(&pull_request("fix", "main")).iter().chain(&event_inputs(&tag("v1"))) {
        assert!(EVENT_INPUTS.contains(&name.as_str()), "{name}");
    }
}

fn spec(name: &str, required: bool) -> InputSpec {
    InputSpec {
        name: name.into(),
        input_type: InputType::String,
        description: String::new(),
        default: None,
        options: Vec::new(),
        required,
    }
}

#[test]
fn launch_inputs_keep_what_the_pipeline_declares_and_the_fixed_ones() {
    let specs = [spec("branch", true), spec("sha", false), spec("target", false)];
    let fixed = BTreeMap::from([("target".to_owned(), "staging".to_owned())]);
    let raw = launch_inputs(&specs, &push("main", None), &fixed);
    let expect = BTreeMap::from([
        ("branch".to_owned(), "main".to_owned()),
        ("sha".to_owned(), "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".to_owned()),
        ("target".to_owned(), "staging".to_owned()),
    ]);
    assert_eq!(raw, expect);
    let resolved = crate::resolve(&specs, &raw).unwrap();
    assert_eq!(resolved.get("branch"), Some(&InputValue::String("main".into())));

    // A required input the event does not have is the resolver's to report.
    let errors = crate::resolve(&specs, &launch_inputs(&specs, &tag("v1"), &fixed)).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert_eq!(errors.0[0].input, "branch");

    // The event's value wins over a fixed one of the same name.
    let fixed = BTreeMap::from([("sha".to_owned(), "deadbeef".to_owned())]);
    assert_eq!(launch_inputs(&specs, &push("main", None), &fixed)["sha"], "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
}

#[test]
fn filters_serialise_as_their_patterns() {
    let filter = filter(&[EventKind::Push, EventKind::Push, EventKind::Tag], &["main"], &[], &["src/**"]);
    assert_eq!(filter.events(), [EventKind::Push, EventKind::Tag]);
    let json = serde_json::to_string(&filter).unwrap();
    assert_eq!(json, r#"{"events":["push","tag"],"branches":["main"],"paths":["src/**"]}"#);
    assert_eq!(serde_json::from_str::<TriggerFilter>(&json).unwrap(), filter);
    assert_eq!(serde_json::from_str::<TriggerFilter>("{}").unwrap(), TriggerFilter::default());
    let error = serde_json::from_str::<TriggerFilter>(r#"{"tags": ["v**x"]}"#).unwrap_err();
    assert!(error.to_string().starts_with("invalid glob `v**x`"), "{error}");
    assert!(serde_json::from_str::<TriggerFilter>(r#"{"branch": ["main"]}"#).is_err());
}
