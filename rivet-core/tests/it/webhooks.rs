//! Forge webhooks as the forges send them: fixtures in `tests/fixtures/webhooks/<forge>/`
//! trimmed from the forges' documented example payloads, parsed field by field.

use rivet_core::forge::Forge;
use rivet_core::forge::webhook::{EventKind, ForgeEvent, ParseError, PullRequestAction, parse, verify};

macro_rules! fixture {
    ($forge:literal, $event:literal) => {
        include_str!(concat!("../fixtures/webhooks/", $forge, "/", $event, ".json"))
    };
}

fn event(forge: Forge, header: &str, name: &str, body: &str) -> ForgeEvent {
    parse(forge, &[(header, name)], body.as_bytes()).unwrap().expect("an event that starts pipelines")
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn github_push() {
    let event = event(Forge::Github, "X-GitHub-Event", "push", fixture!("github", "push"));
    assert_eq!(
        event,
        ForgeEvent {
            kind: EventKind::Push,
            repository: "Codertocat/Hello-World".into(),
            clone_url: "https://github.com/Codertocat/Hello-World.git".into(),
            git_ref: "refs/heads/main".into(),
            branch: Some("main".into()),
            base_branch: None,
            tag: None,
            sha: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".into(),
            before: Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246".into()),
            pr_number: None,
            pr_action: None,
            changed_paths: Some(strings(&["README.md", "ci/build.lua", "main.rs", "src/lib/main.rs"])),
            sender: Some("Codertocat".into()),
            web_url: Some("https://github.com/Codertocat/Hello-World/compare/6113728f27ae...0d1a26e67d8f".into()),
        }
    );
}

#[test]
fn github_tag_push_builds_the_tagged_commit() {
    let event = event(Forge::Github, "X-GitHub-Event", "push", fixture!("github", "tag_push"));
    assert_eq!(
        event,
        ForgeEvent {
            kind: EventKind::Tag,
            repository: "Codertocat/Hello-World".into(),
            clone_url: "https://github.com/Codertocat/Hello-World.git".into(),
            git_ref: "refs/tags/v1.2.0".into(),
            branch: None,
            base_branch: None,
            tag: Some("v1.2.0".into()),
            sha: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".into(),
            before: None,
            pr_number: None,
            pr_action: None,
            changed_paths: None,
            sender: Some("Codertocat".into()),
            web_url: Some("https://github.com/Codertocat/Hello-World/compare/v1.2.0".into()),
        }
    );
}

#[test]
fn github_pull_request_opened() {
    let event = event(Forge::Github, "x-github-event", "pull_request", fixture!("github", "pull_request_opened"));
    assert_eq!(
        event,
        ForgeEvent {
            kind: EventKind::PullRequest,
            repository: "Codertocat/Hello-World".into(),
            clone_url: "https://github.com/Codertocat/Hello-World.git".into(),
            git_ref: "refs/pull/2/head".into(),
            branch: Some("changes".into()),
            base_branch: Some("master".into()),
            tag: None,
            sha: "ec26c3e57ca3a959ca5aad62de7213c562f8c821".into(),
            before: None,
            pr_number: Some(2),
            pr_action: Some(PullRequestAction::Opened),
            changed_paths: None,
            sender: Some("Codertocat".into()),
            web_url: Some("https://github.com/Codertocat/Hello-World/pull/2".into()),
        }
    );
}

#[test]
fn github_pull_request_actions_that_change_nothing_are_ignored() {
    let opened = fixture!("github", "pull_request_opened");
    for (action, expect) in [
        ("reopened", Some(PullRequestAction::Reopened)),
        ("synchronize", Some(PullRequestAction::Synchronize)),
        ("closed", None),
        ("edited", None),
        ("labeled", None),
    ] {
        let body = opened.replace(r#""action": "opened""#, &format!(r#""action": "{action}""#));
        let parsed = parse(Forge::Github, &[("X-GitHub-Event", "pull_request")], body.as_bytes()).unwrap();
        assert_eq!(parsed.and_then(|e| e.pr_action), expect, "{action}");
    }
}

#[test]
fn github_ping_and_other_events_are_ignored() {
    let ping = fixture!("github", "ping");
    assert_eq!(parse(Forge::Github, &[("X-GitHub-Event", "ping")], ping.as_bytes()).unwrap(), None);
    assert_eq!(parse(Forge::Github, &[("X-GitHub-Event", "issues")], b"{}").unwrap(), None);
}

#[test]
fn branch_deletions_are_ignored() {
    let zero = "0000000000000000000000000000000000000000";
    let deleted = fixture!("github", "push")
        .replace(r#""after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c""#, &format!(r#""after": "{zero}""#));
    assert_eq!(parse(Forge::Github, &[("X-GitHub-Event", "push")], deleted.as_bytes()).unwrap(), None);
    let deleted = fixture!("gitlab", "push")
        .replace(r#""after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7""#, &format!(r#""after": "{zero}""#));
    assert_eq!(parse(Forge::Gitlab, &[("X-Gitlab-Event", "Push Hook")], deleted.as_bytes()).unwrap(), None);
}

#[test]
fn a_new_branch_has_no_before_and_unknown_changes() {
    let created = fixture!("github", "push").replace("6113728f27ae82c7b1a177c8d03f9e96e0adf246", &"0".repeat(40));
    let event = event(Forge::Github, "X-GitHub-Event", "push", &created);
    assert_eq!((event.before, event.changed_paths), (None, None));
}

#[test]
fn pushes_to_other_refs_are_ignored() {
    let notes = fixture!("github", "push").replace("refs/heads/main", "refs/notes/commits");
    assert_eq!(parse(Forge::Github, &[("X-GitHub-Event", "push")], notes.as_bytes()).unwrap(), None);
}

#[test]
fn a_payload_with_a_bad_commit_id_is_an_error() {
    let bad = fixture!("github", "push").replace("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "HEAD");
    let error = parse(Forge::Github, &[("X-GitHub-Event", "push")], bad.as_bytes()).unwrap_err();
    assert!(matches!(error, ParseError::InvalidCommit { field: "after" }), "{error}");
    let error = parse(Forge::Github, &[("X-GitHub-Event", "push")], b"{\"ref\": 1}").unwrap_err();
    assert!(error.to_string().starts_with("invalid `push` payload: "), "{error}");
}

#[test]
fn gitlab_push() {
    let event = event(Forge::Gitlab, "X-Gitlab-Event", "Push Hook", fixture!("gitlab", "push"));
    assert_eq!(
        event,
        ForgeEvent {
            kind: EventKind::Push,
            repository: "mike/diaspora".into(),
            clone_url: "http://example.com/mike/diaspora.git".into(),
            git_ref: "refs/heads/master".into(),
            branch: Some("master".into()),
            base_branch: None,
            tag: None,
            sha: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7".into(),
            before: Some("95790bf891e76fee5e1747ab589903a6a1f80f22".into()),
            pr_number: None,
            pr_action: None,
            changed_paths: Some(strings(&["CHANGELOG", "README", "app/controller/application.rb"])),
            sender: Some("jsmith".into()),
            web_url: Some("http://example.com/mike/diaspora/-/commit/da1560886d4f094c3e6c9ef40349f7d38b5d27d7".into()),
        }
    );
}

#[test]
fn gitlab_push_with_more_commits_than_listed_has_unknown_changes() {
    let truncated = fixture!("gitlab", "push").replace(r#""total_commits_count": 2"#, r#""total_commits_count": 40"#);
    let event = event(Forge::Gitlab, "X-Gitlab-Event", "Push Hook", &truncated);
    assert_eq!(event.changed_paths, None);
}

#[test]
fn gitlab_tag_push() {
    let event = event(Forge::Gitlab, "X-Gitlab-Event", "Tag Push Hook", fixture!("gitlab", "tag_push"));
    assert_eq!(
        event,
        ForgeEvent {
            kind: EventKind::Tag,
            repository: "jsmith/example".into(),
            clone_url: "http://example.com/jsmith/example.git".into(),
            git_ref: "refs/tags/v1.0.0".into(),
            branch: None,
            base_branch: None,
            tag: Some("v1.0.0".into()),
            sha: "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7".into(),
            before: None,
            pr_number: None,
            pr_action: None,
            changed_paths: None,
            sender: Some("jsmith".into()),
            web_url: Some("http://example.com/jsmith/example/-/commit/82b3d5ae55f7080f1e6022629cdb57bfae7cccc7".into()),
        }
    );
}

#[test]
fn gitlab_merge_request_update_with_new_commits() {
    let event = event(Forge::Gitlab, "X-Gitlab-Event", "Merge Request Hook", fixture!("gitlab", "merge_request"));
    assert_eq!(
        event,
        ForgeEvent {
            kind: EventKind::PullRequest,
            repository: "gitlabhq/gitlab-test".into(),
            clone_url: "http://example.com/gitlabhq/gitlab-test.git".into(),
            git_ref: "refs/merge-requests/1/head".into(),
            branch: Some("ms-viewport".into()),
            base_branch: Some("master".into()),
            tag: None,
            sha: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7".into(),
            before: None,
            pr_number: Some(1),
            pr_action: Some(PullRequestAction::Synchronize),
            changed_paths: None,
            sender: Some("root".into()),
            web_url: Some("http://example.com/diaspora/merge_requests/1".into()),
        }
    );
}

#[test]
fn gitlab_merge_request_actions() {
    let update = fixture!("gitlab", "merge_request");
    let without_oldrev = update.replace(r#""oldrev": "95790bf891e76fee5e1747ab589903a6a1f80f22","#, "");
    let with_action = |action: &str| update.replace(r#""action": "update""#, &format!(r#""action": "{action}""#));
    for (body, expect) in [
        (with_action("open"), Some(PullRequestAction::Opened)),
        (with_action("reopen"), Some(PullRequestAction::Reopened)),
        (with_action("close"), None),
        (with_action("merge"), None),
        (with_action("approved"), None),
        // An update without `oldrev` edited metadata only.
        (without_oldrev, None),
    ] {
        let parsed = parse(Forge::Gitlab, &[("X-Gitlab-Event", "Merge Request Hook")], body.as_bytes()).unwrap();
        assert_eq!(parsed.and_then(|e| e.pr_action), expect);
    }
    assert_eq!(parse(Forge::Gitlab, &[("X-Gitlab-Event", "Note Hook")], b"{}").unwrap(), None);
}

#[test]
fn gitea_push() {
    let event = event(Forge::Gitea, "X-Gitea-Event", "push", fixture!("gitea", "push"));
    assert_eq!(
        event,
        ForgeEvent {
            kind: EventKind::Push,
            repository: "gitea/webhooks".into(),
            clone_url: "http://localhost:3000/gitea/webhooks.git".into(),
            git_ref: "refs/heads/develop".into(),
            branch: Some("develop".into()),
            base_branch: None,
            tag: None,
            sha: "bffeb74224043ba2feb48d137756c8a9331c449a".into(),
            before: Some("28e1879d029cb852e4844d9c718537df08844e03".into()),
            pr_number: None,
            pr_action: None,
            changed_paths: Some(strings(&["docs/webhooks.md", "go.mod", "routers/web/repo/webhook.go"])),
            sender: Some("gitea".into()),
            web_url: Some("http://localhost:3000/gitea/webhooks/compare/28e1879d029cb852e4844d9c718537df08844e03...bffeb74224043ba2feb48d137756c8a9331c449a".into()),
        }
    );
    // Forgejo names the same header after itself.
    let forgejo = parse(Forge::Gitea, &[("X-Forgejo-Event", "push")], fixture!("gitea", "push").as_bytes()).unwrap();
    assert_eq!(forgejo, Some(event));
}

#[test]
fn gitea_pull_request_synchronized_from_a_fork() {
    let event = event(Forge::Gitea, "X-Gitea-Event", "pull_request", fixture!("gitea", "pull_request"));
    assert_eq!(
        event,
        ForgeEvent {
            kind: EventKind::PullRequest,
            repository: "gitea/webhooks".into(),
            clone_url: "http://localhost:3000/gitea/webhooks.git".into(),
            git_ref: "refs/pull/12/head".into(),
            branch: Some("retry".into()),
            base_branch: Some("master".into()),
            tag: None,
            sha: "3cd0c2f7e7d1c7a5d1b0a3e1b8e5f3c2a1d0e9f8".into(),
            before: None,
            pr_number: Some(12),
            pr_action: Some(PullRequestAction::Synchronize),
            changed_paths: None,
            sender: Some("alice".into()),
            web_url: Some("http://localhost:3000/gitea/webhooks/pulls/12".into()),
        }
    );
}

#[test]
fn a_signed_fixture_verifies_and_a_tampered_one_does_not() {
    use hmac::{Hmac, Mac};
    let body = fixture!("gitea", "push").as_bytes();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(body);
    let signature = hex::encode(mac.finalize().into_bytes());
    let headers = [("X-Gitea-Signature", signature.as_str()), ("X-Gitea-Event", "push")];
    assert_eq!(verify(Forge::Gitea, &headers, body, b"s3cret"), Ok(()));
    let tampered = fixture!("gitea", "push").replace("refs/heads/develop", "refs/heads/master");
    assert!(verify(Forge::Gitea, &headers, tampered.as_bytes(), b"s3cret").is_err());
}
