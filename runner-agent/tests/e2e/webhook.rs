//! The end-to-end example of issue 15: a bare git repository on this machine whose
//! post-receive hook (`examples/webhooks/post-receive`) sends Gitea-shaped push webhooks
//! to a trigger; each push launches `examples/push-tests.lua`, which checks out exactly the
//! pushed commit in a container with git (cloned over `git daemon` from the host) and runs
//! the repository's own tests. A passing push succeeds, a breaking one fails, and each job
//! records the delivery that started it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rivet_proto::v1::trigger_service_client::TriggerServiceClient;
use rivet_proto::v1::{self as pb};

use super::{PATIENCE, Stack, texts};

const PIPELINE: &str = include_str!("../../../examples/push-tests.lua");
const HOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/webhooks/post-receive");

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=Dev", "-c", "user.email=dev@example.invalid", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // A push's hook speaks on stderr ("remote: ...").
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// `git daemon` serving `base` on every interface (containers reach the host at
/// `host.containers.internal`), killed when dropped.
struct Daemon {
    child: std::process::Child,
    port: u16,
}

impl Daemon {
    fn start(base: &Path) -> Daemon {
        let port = TcpListener::bind("0.0.0.0:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new("git")
            .arg("daemon")
            .arg("--export-all")
            .arg("--reuseaddr")
            .arg("--listen=0.0.0.0")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start git daemon (Debian's git)");
        let deadline = std::time::Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "git daemon did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon { child, port }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The jobs of `push-tests`, newest first, once there are `count`.
async fn jobs(stack: &mut Stack, count: usize) -> Vec<pb::Job> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let request = pb::ListJobsRequest { pipeline: "push-tests".into(), ..Default::default() };
        let jobs = stack.jobs.list_jobs(request).await.expect("list jobs").into_inner().jobs;
        if jobs.len() >= count {
            return jobs;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {} push-tests job(s), not {count}", jobs.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn origin_sha(job: &pb::Job) -> String {
    match job.origin.as_ref().and_then(|origin| origin.kind.as_ref()) {
        Some(pb::job_origin::Kind::Trigger(trigger)) => trigger.sha.clone(),
        other => panic!("job {} was not started by a trigger: {other:?}", job.id),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_a_local_repository_runs_its_tests_at_the_pushed_commit() {
    let mut stack = Stack::start().await;
    let (stop, agent) = stack.agent().await;
    stack.create(PIPELINE, "push-tests.lua").await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", stack.addr))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let request = pb::CreateTriggerRequest {
        pipeline: "push-tests".into(),
        forge: "gitea".into(),
        repository: "demo/app".into(),
        events: vec!["push".into()],
        branches: vec!["main".into()],
        ..Default::default()
    };
    let created = TriggerServiceClient::new(channel).create_trigger(request).await.expect("trigger").into_inner();
    let trigger = created.trigger.expect("a trigger");
    let hooks: SocketAddr = stack.server.as_ref().expect("serving").webhooks_addr.expect("the webhook listener");

    // The forge: a bare repository, served by git daemon, whose hook calls the trigger.
    let forge = tempfile::tempdir().expect("a directory");
    let bare = forge.path().join("app.git");
    std::fs::create_dir(&bare).expect("mkdir");
    git(&bare, &["init", "--quiet", "--bare"]);
    let hook = bare.join("hooks/post-receive");
    std::fs::copy(HOOK, &hook).expect("install the hook");
    let daemon = Daemon::start(forge.path());
    git(&bare, &["config", "rivet.url", &format!("http://{hooks}/hooks/{}", trigger.id)]);
    git(&bare, &["config", "rivet.secret", &created.secret]);
    git(&bare, &["config", "rivet.repository", "demo/app"]);
    git(&bare, &["config", "rivet.cloneUrl", &format!("git://host.containers.internal:{}/app.git", daemon.port)]);

    // A developer's clone: tests that pass, pushed to main.
    let work = tempfile::tempdir().expect("a directory");
    git(work.path(), &["init", "--quiet"]);
    std::fs::write(work.path().join("greeting.txt"), "hello\n").unwrap();
    std::fs::write(
        work.path().join("run-tests.sh"),
        "grep -q hello greeting.txt && echo \"tests passed at $(cat greeting.txt)\"\n",
    )
    .unwrap();
    git(work.path(), &["add", "."]);
    git(work.path(), &["commit", "--quiet", "-m", "first"]);
    git(work.path(), &["remote", "add", "origin", bare.to_str().expect("utf-8")]);
    let pushed = git(work.path(), &["push", "origin", "HEAD:refs/heads/main"]);
    assert!(pushed.contains("rivet: refs/heads/main: 201"), "the hook's answer: {pushed}");
    let first_sha = git(work.path(), &["rev-parse", "HEAD"]).trim().to_owned();

    let first = jobs(&mut stack, 1).await.remove(0);
    assert_eq!(origin_sha(&first), first_sha);
    let ended = stack.wait_ended(&first.id).await;
    let log = texts(&stack.follow(&first.id).await);
    assert_eq!(ended.state(), pb::JobState::Succeeded, "{}: {log:?}", ended.message);
    assert!(log.iter().any(|line| line.contains("tests passed at hello")), "{log:?}");
    let delivery = match first.origin.as_ref().and_then(|origin| origin.kind.as_ref()) {
        Some(pb::job_origin::Kind::Trigger(trigger)) => trigger.delivery_id.clone(),
        other => panic!("not a trigger's job: {other:?}"),
    };
    assert!(log.contains(&format!("started by webhook delivery {delivery}")), "the stage reads its origin: {log:?}");
    assert_eq!(ended.outputs.get("tested"), Some(&first_sha), "it tested the pushed commit");

    // A push that breaks the tests fails; a push to another branch starts nothing.
    std::fs::write(work.path().join("greeting.txt"), "goodbye\n").unwrap();
    git(work.path(), &["commit", "--quiet", "-am", "break"]);
    git(work.path(), &["push", "origin", "HEAD:refs/heads/experiment"]);
    let pushed = git(work.path(), &["push", "origin", "HEAD:refs/heads/main"]);
    assert!(pushed.contains("rivet: refs/heads/main: 201"), "the hook's answer: {pushed}");
    let second_sha = git(work.path(), &["rev-parse", "HEAD"]).trim().to_owned();
    let listed = jobs(&mut stack, 2).await;
    assert_eq!(listed.len(), 2, "the push to `experiment` launched nothing");
    let second = listed.iter().find(|job| job.id != first.id).expect("the second job").clone();
    assert_eq!(origin_sha(&second), second_sha);
    let ended = stack.wait_ended(&second.id).await;
    assert_eq!(ended.state(), pb::JobState::Failed);
    assert!(ended.message.contains("the tests failed"), "{}", ended.message);

    stop.drain.cancel();
    let _ = tokio::time::timeout(PATIENCE, agent).await;
}
