//! Forge webhooks through the real orchestrator and real HTTP: triggers made over gRPC,
//! the forges' captured payloads (rivet-core's fixtures) posted signed to the webhook
//! listener, and the jobs they launch read back over gRPC. A delivery launches exactly one
//! job, however often and to whichever replica it comes; an unsigned or tampered one
//! launches nothing.

use std::net::SocketAddr;

use hmac::{Hmac, Mac};
use rivet_orchestrator::config::SecretsConfig;
use rivet_proto::v1 as pb;
use rivet_proto::v1::trigger_service_client::TriggerServiceClient;
use sea_orm::{ConnectionTrait, Statement};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::both_backends;
use crate::support::{Backend, Cluster, PATIENCE, channel};

macro_rules! fixture {
    ($forge:literal, $event:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../rivet-core/tests/fixtures/webhooks/",
            $forge,
            "/",
            $event,
            ".json"
        ))
    };
}

/// The pipeline triggers launch: it declares the standard inputs it wants and one fixed one.
const PIPELINE: &str = r#"return pipeline.define {
  name = "hooked",
  inputs = {
    ref = { type = "string", default = "" },
    sha = { type = "string", default = "" },
    repository = { type = "string", default = "" },
    event = { type = "string", default = "" },
    target = { type = "string", options = { "debug", "release" }, default = "debug" },
  },
  stages = { { name = "build", script = function() end } },
}"#;

/// A cluster whose replicas serve webhooks on a port of their own.
async fn cluster(backend: Backend, replicas: usize) -> Cluster {
    Cluster::with(backend, replicas, |config| {
        config.webhooks.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.webhooks.max_body_bytes = 64 * 1024;
    })
    .await
}

/// Where replica `index` takes webhooks.
fn hooks(cluster: &Cluster, index: usize) -> SocketAddr {
    cluster.replicas[index].as_ref().expect("running").webhooks_addr.expect("the webhook listener is on")
}

async fn triggers(cluster: &Cluster) -> TriggerServiceClient<Channel> {
    TriggerServiceClient::new(channel(cluster.addr(0)).await)
}

/// Creates a trigger of "hooked" for `forge` and `repository`, with the fixed input
/// `target = release`.
async fn create(
    client: &mut TriggerServiceClient<Channel>,
    forge: &str,
    repository: &str,
    branches: &[&str],
) -> pb::CreateTriggerResponse {
    let request = pb::CreateTriggerRequest {
        pipeline: "hooked".into(),
        forge: forge.into(),
        repository: repository.into(),
        branches: branches.iter().map(|b| b.to_string()).collect(),
        inputs: [("target".to_owned(), "release".to_owned())].into(),
        ..Default::default()
    };
    client.create_trigger(request).await.expect("create trigger").into_inner()
}

/// A delivery as a forge sends it.
#[derive(Clone)]
struct Delivery {
    forge: &'static str,
    event: &'static str,
    id: String,
    body: Vec<u8>,
}

impl Delivery {
    fn new(forge: &'static str, event: &'static str, id: &str, body: &str) -> Delivery {
        Delivery { forge, event, id: id.to_owned(), body: body.as_bytes().to_vec() }
    }

    /// Its headers, signed with `secret`.
    fn headers(&self, secret: &str) -> Vec<(String, String)> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
        mac.update(&self.body);
        let signature = hex::encode(mac.finalize().into_bytes());
        let pairs: Vec<(&str, String)> = match self.forge {
            "github" => vec![
                ("X-GitHub-Event", self.event.to_owned()),
                ("X-GitHub-Delivery", self.id.clone()),
                ("X-Hub-Signature-256", format!("sha256={signature}")),
            ],
            "gitea" => vec![
                ("X-Gitea-Event", self.event.to_owned()),
                ("X-Gitea-Delivery", self.id.clone()),
                ("X-Gitea-Signature", signature),
            ],
            "gitlab" => vec![
                ("X-Gitlab-Event", self.event.to_owned()),
                ("X-Gitlab-Event-UUID", self.id.clone()),
                ("X-Gitlab-Token", secret.to_owned()),
            ],
            other => panic!("no forge {other}"),
        };
        pairs.into_iter().map(|(name, value)| (name.to_owned(), value)).collect()
    }
}

/// An HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: serde_json::Value,
}

/// Sends a raw HTTP/1.1 request to `addr` and reads the whole answer.
async fn raw(addr: SocketAddr, head: String, body: &[u8]) -> Answer {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(head.as_bytes()).await.expect("write head");
        // The server may answer (413) and close before it has read everything.
        let _ = stream.write_all(body).await;
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes).await;
        bytes
    };
    let bytes = tokio::time::timeout(PATIENCE, exchange).await.expect("the webhook listener answers");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("{head}"));
    Answer { status, body: serde_json::from_str(body.trim()).unwrap_or(serde_json::Value::String(body.to_owned())) }
}

/// POSTs `body` with `headers` to `path`.
async fn post(addr: SocketAddr, path: &str, headers: &[(String, String)], body: &[u8]) -> Answer {
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    head.push_str("Content-Type: application/json\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    raw(addr, head, body).await
}

/// Delivers `delivery` to `trigger`, signed with `secret`.
async fn deliver(addr: SocketAddr, trigger: &str, secret: &str, delivery: &Delivery) -> Answer {
    post(addr, &format!("/hooks/{trigger}"), &delivery.headers(secret), &delivery.body).await
}

/// Every job of "hooked".
async fn jobs(cluster: &Cluster) -> Vec<pb::Job> {
    let mut api = cluster.api(0).await;
    let request = pb::ListJobsRequest { pipeline: "hooked".into(), ..Default::default() };
    api.jobs.list_jobs(request).await.expect("list jobs").into_inner().jobs
}

fn input(job: &pb::Job, name: &str) -> String {
    match job.inputs.get(name).and_then(|value| value.kind.clone()) {
        Some(pb::input_value::Kind::StringValue(text)) => text,
        other => panic!("input {name} of job {} is {other:?}", job.id),
    }
}

struct Case {
    forge: &'static str,
    repository: &'static str,
    delivery: Delivery,
    event: &'static str,
    git_ref: &'static str,
    sha: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            forge: "github",
            repository: "Codertocat/Hello-World",
            delivery: Delivery::new("github", "push", "gh-push-1", fixture!("github", "push")),
            event: "push",
            git_ref: "refs/heads/main",
            sha: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        },
        Case {
            forge: "github",
            repository: "codertocat/hello-world",
            delivery: Delivery::new("github", "pull_request", "gh-pr-1", fixture!("github", "pull_request_opened")),
            event: "pull_request",
            git_ref: "refs/pull/2/head",
            sha: "",
        },
        Case {
            forge: "gitlab",
            repository: "mike/diaspora",
            delivery: Delivery::new("gitlab", "Push Hook", "gl-push-1", fixture!("gitlab", "push")),
            event: "push",
            git_ref: "refs/heads/master",
            sha: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        },
        Case {
            forge: "gitlab",
            repository: "jsmith/example",
            delivery: Delivery::new("gitlab", "Tag Push Hook", "gl-tag-1", fixture!("gitlab", "tag_push")),
            event: "tag",
            git_ref: "refs/tags/v1.0.0",
            sha: "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
        },
        Case {
            forge: "gitea",
            repository: "gitea/webhooks",
            delivery: Delivery::new("gitea", "push", "gt-push-1", fixture!("gitea", "push")),
            event: "push",
            git_ref: "refs/heads/develop",
            sha: "bffeb74224043ba2feb48d137756c8a9331c449a",
        },
    ]
}

/// Each forge's captured deliveries, signed, launch one job each with the event's inputs
/// and the trigger as origin; the same delivery again is a duplicate of that job.
async fn deliveries_launch_once(backend: Backend) {
    let cluster = cluster(backend, 1).await;
    cluster.api(0).await.create(PIPELINE).await;
    let mut client = triggers(&cluster).await;
    let addr = hooks(&cluster, 0);
    let mut launched = Vec::new();
    for case in cases() {
        let created = create(&mut client, case.forge, case.repository, &[]).await;
        let trigger = created.trigger.expect("trigger");
        assert_eq!(trigger.url, format!("http://{addr}/hooks/{}", trigger.id));
        let answer = deliver(addr, &trigger.id, &created.secret, &case.delivery).await;
        assert_eq!(answer.status, 201, "{} {}: {answer:?}", case.forge, case.event);
        let job_id = answer.body["job_id"].as_str().expect("a job id").to_owned();
        let job = cluster.api(0).await.job(&job_id).await;
        assert_eq!(input(&job, "ref"), case.git_ref, "{}", case.forge);
        assert_eq!(input(&job, "event"), case.event);
        assert!(input(&job, "repository").eq_ignore_ascii_case(case.repository));
        assert_eq!(input(&job, "target"), "release", "the trigger's fixed input");
        let sha = input(&job, "sha");
        if !case.sha.is_empty() {
            assert_eq!(sha, case.sha);
        }
        match job.origin.and_then(|origin| origin.kind) {
            Some(pb::job_origin::Kind::Trigger(origin)) => {
                assert_eq!(origin.trigger_id, trigger.id);
                assert_eq!(origin.delivery_id, case.delivery.id);
                assert_eq!(origin.event, case.event);
                assert_eq!(origin.r#ref, case.git_ref);
                assert_eq!(origin.sha, sha);
            }
            other => panic!("job {job_id} has origin {other:?}"),
        }
        // Redelivered (a retry, or by hand): the same job, nothing new.
        let again = deliver(addr, &trigger.id, &created.secret, &case.delivery).await;
        assert_eq!(again.status, 200, "{again:?}");
        assert_eq!(again.body["job_id"].as_str(), Some(job_id.as_str()));
        assert_eq!(again.body["duplicate"], serde_json::Value::Bool(true));
        launched.push(job_id);
    }
    let mut stored: Vec<String> = jobs(&cluster).await.into_iter().map(|job| job.id).collect();
    stored.sort();
    launched.sort();
    assert_eq!(stored, launched, "exactly one job per delivery");
}

both_backends!(each_forge_delivery_launches_exactly_one_job, deliveries_launch_once);

/// A wrong signature, none, a tampered body or a wrong GitLab token: 401, nothing launched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_unsigned_or_tampered_deliveries_launch_nothing() {
    let cluster = cluster(Backend::Sqlite, 1).await;
    cluster.api(0).await.create(PIPELINE).await;
    let mut client = triggers(&cluster).await;
    let addr = hooks(&cluster, 0);
    for case in cases().into_iter().filter(|case| case.event == "push") {
        let created = create(&mut client, case.forge, case.repository, &[]).await;
        let id = created.trigger.expect("trigger").id;
        let path = format!("/hooks/{id}");
        let wrong = "0".repeat(64);
        let answer = deliver(addr, &id, &wrong, &case.delivery).await;
        assert_eq!(answer.status, 401, "{} wrong secret: {answer:?}", case.forge);
        let text = answer.body.to_string();
        assert!(!text.contains(&created.secret), "the answer holds the secret: {text}");
        let mut unsigned = case.delivery.headers(&created.secret);
        unsigned.retain(|(name, _)| !name.contains("Signature") && !name.contains("Token"));
        let answer = post(addr, &path, &unsigned, &case.delivery.body).await;
        assert_eq!(answer.status, 401, "{} unsigned: {answer:?}", case.forge);
        assert!(answer.body["error"].as_str().is_some_and(|e| e.contains("missing header")), "{answer:?}");
        if case.forge != "gitlab" {
            // GitLab sends its token, not a signature of the body.
            let mut tampered = case.delivery.body.clone();
            let at = tampered.iter().position(|b| *b == b'm').expect("an m");
            tampered[at] = b'n';
            let answer = post(addr, &path, &case.delivery.headers(&created.secret), &tampered).await;
            assert_eq!(answer.status, 401, "{} tampered: {answer:?}", case.forge);
        }
    }
    assert!(jobs(&cluster).await.is_empty(), "a refused delivery launched a job");
}

/// A push to a branch the filter leaves out, a ping, another repository's push: 202, no job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_filtered_and_foreign_events_are_ignored() {
    let cluster = cluster(Backend::Sqlite, 1).await;
    cluster.api(0).await.create(PIPELINE).await;
    let mut client = triggers(&cluster).await;
    let addr = hooks(&cluster, 0);
    let created = create(&mut client, "github", "Codertocat/Hello-World", &["release/*"]).await;
    let id = created.trigger.expect("trigger").id;
    let push = Delivery::new("github", "push", "d-1", fixture!("github", "push"));
    let answer = deliver(addr, &id, &created.secret, &push).await;
    assert_eq!((answer.status, answer.body["ignored"].as_str()), (202, Some("filter")), "{answer:?}");
    let ping = Delivery::new("github", "ping", "d-2", fixture!("github", "ping"));
    let answer = deliver(addr, &id, &created.secret, &ping).await;
    assert_eq!((answer.status, answer.body["ignored"].as_str()), (202, Some("event")), "{answer:?}");
    let other = create(&mut client, "github", "acme/other", &[]).await;
    let other_id = other.trigger.expect("trigger").id;
    let answer = deliver(addr, &other_id, &other.secret, &push).await;
    assert_eq!((answer.status, answer.body["ignored"].as_str()), (202, Some("repository")), "{answer:?}");
    // Signed but without a delivery id, or not JSON: 400.
    let mut headers = push.headers(&created.secret);
    headers.retain(|(name, _)| name != "X-GitHub-Delivery");
    assert_eq!(post(addr, &format!("/hooks/{id}"), &headers, &push.body).await.status, 400);
    let garbage = Delivery { body: b"not json".to_vec(), ..push.clone() };
    assert_eq!(deliver(addr, &id, &created.secret, &garbage).await.status, 400);
    assert!(jobs(&cluster).await.is_empty(), "an ignored event launched a job");
}

/// Unknown triggers and paths are 404, other methods 405, bodies over the limit 413 (told
/// by their length, or found while reading a chunked one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_unknown_triggers_methods_and_oversized_bodies_are_refused() {
    let cluster = cluster(Backend::Sqlite, 1).await;
    cluster.api(0).await.create(PIPELINE).await;
    let mut client = triggers(&cluster).await;
    let addr = hooks(&cluster, 0);
    let created = create(&mut client, "github", "Codertocat/Hello-World", &[]).await;
    let id = created.trigger.expect("trigger").id;
    let push = Delivery::new("github", "push", "d-1", fixture!("github", "push"));
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(deliver(addr, &unknown.to_string(), &created.secret, &push).await.status, 404);
    assert_eq!(deliver(addr, "not-a-uuid", &created.secret, &push).await.status, 404);
    assert_eq!(post(addr, "/metrics", &[], b"").await.status, 404);
    let get = format!("GET /hooks/{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(raw(addr, get, b"").await.status, 405);
    // Declared too long: refused before a byte of the body is read.
    let head = format!(
        "POST /hooks/{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        1024 * 1024 * 1024
    );
    assert_eq!(raw(addr, head, b"{").await.status, 413);
    // Chunked, with no length to tell: refused once the limit is passed.
    let chunk = vec![b' '; 70 * 1024];
    let mut body = format!("{:x}\r\n", chunk.len()).into_bytes();
    body.extend_from_slice(&chunk);
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    let head =
        format!("POST /hooks/{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(raw(addr, head, &body).await.status, 413);
    // The listener still serves.
    assert_eq!(deliver(addr, &id, &created.secret, &push).await.status, 201);
    // A deleted trigger's URL is gone.
    client.delete_trigger(pb::DeleteTriggerRequest { trigger_id: id.clone() }).await.expect("delete");
    let again = Delivery { id: "d-2".into(), ..push };
    assert_eq!(deliver(addr, &id, &created.secret, &again).await.status, 404);
    assert_eq!(jobs(&cluster).await.len(), 1);
}

/// The same delivery posted to two replicas at once launches one job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_delivered_to_two_replicas_launches_one_job() {
    let cluster = cluster(Backend::Postgres, 2).await;
    cluster.api(0).await.create(PIPELINE).await;
    let mut client = triggers(&cluster).await;
    let created = create(&mut client, "gitea", "gitea/webhooks", &[]).await;
    let id = created.trigger.expect("trigger").id;
    for round in 0..5 {
        let delivery = Delivery::new("gitea", "push", &format!("both-{round}"), fixture!("gitea", "push"));
        let (a, b) = tokio::join!(
            deliver(hooks(&cluster, 0), &id, &created.secret, &delivery),
            deliver(hooks(&cluster, 1), &id, &created.secret, &delivery),
        );
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(statuses, [200, 201], "one launch and one duplicate: {a:?} {b:?}");
        assert_eq!(a.body["job_id"], b.body["job_id"]);
    }
    assert_eq!(jobs(&cluster).await.len(), 5, "one job per delivery");
}

/// CreateTrigger reports every problem as a field violation; the pipeline must exist; the
/// inputs must be declared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_create_trigger_is_validated() {
    let cluster = cluster(Backend::Sqlite, 1).await;
    cluster.api(0).await.create(PIPELINE).await;
    let mut client = triggers(&cluster).await;
    let request = pb::CreateTriggerRequest {
        pipeline: "hooked".into(),
        forge: "bitbucket".into(),
        repository: "".into(),
        events: vec!["push".into(), "release".into()],
        branches: vec!["main".into(), "".into()],
        ..Default::default()
    };
    let status = client.create_trigger(request).await.expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let fields: Vec<String> =
        status.get_details_bad_request().expect("details").field_violations.into_iter().map(|v| v.field).collect();
    assert_eq!(fields, ["forge", "repository", "events[1]", "branches[1]"]);
    let missing = pb::CreateTriggerRequest {
        pipeline: "nope".into(),
        forge: "github".into(),
        repository: "acme/app".into(),
        ..Default::default()
    };
    assert_eq!(client.create_trigger(missing.clone()).await.expect_err("no pipeline").code(), Code::NotFound);
    let undeclared = pb::CreateTriggerRequest {
        pipeline: "hooked".into(),
        inputs: [("colour".to_owned(), "red".to_owned())].into(),
        ..missing
    };
    let status = client.create_trigger(undeclared).await.expect_err("undeclared input");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("colour"), "{status:?}");
}

/// Without a secrets key, no trigger: its secret could not be sealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_create_trigger_needs_a_secrets_key() {
    let cluster = Cluster::with(Backend::Sqlite, 1, |config| config.secrets = SecretsConfig::default()).await;
    cluster.api(0).await.create(PIPELINE).await;
    let mut client = triggers(&cluster).await;
    let request = pb::CreateTriggerRequest {
        pipeline: "hooked".into(),
        forge: "github".into(),
        repository: "acme/app".into(),
        ..Default::default()
    };
    let status = client.create_trigger(request).await.expect_err("no key");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("secrets.key_file"), "{status:?}");
}

/// The secret is in the CreateTrigger response and nowhere else: not in GetTrigger, not in
/// ListTriggers, not in the stored row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_trigger_secret_is_shown_once() {
    let cluster = cluster(Backend::Sqlite, 1).await;
    cluster.api(0).await.create(PIPELINE).await;
    let mut client = triggers(&cluster).await;
    let created = create(&mut client, "gitlab", "mike/diaspora", &["main", "release/*"]).await;
    assert_eq!(created.secret.len(), 64);
    let trigger = created.trigger.expect("trigger");
    assert_eq!(trigger.branches, ["main", "release/*"]);
    assert_eq!(trigger.inputs.get("target").map(String::as_str), Some("release"));
    let listed = client.list_triggers(pb::ListTriggersRequest {}).await.expect("list").into_inner();
    assert_eq!(listed.triggers.len(), 1);
    let got = client
        .get_trigger(pb::GetTriggerRequest { trigger_id: trigger.id.clone() })
        .await
        .expect("get")
        .into_inner()
        .trigger
        .expect("trigger");
    assert_eq!(got, trigger);
    for text in [format!("{listed:?}"), format!("{got:?}")] {
        assert!(!text.contains(&created.secret), "a response holds the secret: {text}");
    }
    let store = rivet_orchestrator::storage::SeaStore::connect(cluster.database_url()).await.expect("store");
    let db = store.connection();
    let statement =
        Statement::from_string(db.get_database_backend(), "SELECT key_id, ciphertext FROM triggers".to_owned());
    let rows = db.query_all_raw(statement).await.expect("read triggers");
    assert_eq!(rows.len(), 1);
    let ciphertext: Vec<u8> = rows[0].try_get("", "ciphertext").expect("ciphertext");
    assert_eq!(ciphertext.len(), 64 + 16, "the sealed secret and its tag");
    assert!(!ciphertext.windows(16).any(|w| w == &created.secret.as_bytes()[..16]), "stored in the clear");
    let key_id: String = rows[0].try_get("", "key_id").expect("key id");
    assert_eq!(key_id.len(), 16);
    let status = client
        .get_trigger(pb::GetTriggerRequest { trigger_id: uuid::Uuid::now_v7().to_string() })
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
}

/// `rivet-orchestrator rotate-key` reseals trigger secrets too: after it, a replica with the
/// new key alone still checks deliveries with the secret shown at creation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_trigger_secrets_survive_a_key_rotation() {
    const NEW_KEY: &str = "9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
    let mut cluster = cluster(Backend::Sqlite, 1).await;
    cluster.api(0).await.create(PIPELINE).await;
    let mut client = triggers(&cluster).await;
    let created = create(&mut client, "github", "Codertocat/Hello-World", &[]).await;
    let id = created.trigger.expect("trigger").id;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rivet-orchestrator"))
        .arg("rotate-key")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RIVET_DATABASE_URL", cluster.database_url())
        .env("RIVET_SECRETS__KEY", NEW_KEY)
        .env("RIVET_SECRETS__PREVIOUS_KEYS", format!("[\"{}\"]", crate::support::TEST_SECRETS_KEY))
        .output()
        .expect("rivet-orchestrator runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "rotate-key failed: {}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("re-encrypted 1 trigger secret(s)"), "{stdout}");
    assert!(!stdout.contains(&created.secret), "{stdout}");
    cluster.kill(0).await;
    cluster.reconfigure(|config| {
        config.secrets = SecretsConfig { key: Some(NEW_KEY.to_owned()), ..SecretsConfig::default() };
    });
    cluster.restart(0).await;
    let push = Delivery::new("github", "push", "after-rotation", fixture!("github", "push"));
    let answer = deliver(hooks(&cluster, 0), &id, &created.secret, &push).await;
    assert_eq!(answer.status, 201, "{answer:?}");
}

/// A trigger that reports statuses: the job a push launches reports pending, then success,
/// on the pushed commit, with the token from the secret store; a redelivery reports
/// nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_jobs_report_their_commit_statuses() {
    let forge = crate::statuses::FakeForge::start(Vec::new()).await;
    let cluster = Cluster::with(Backend::Sqlite, 1, |config| {
        config.webhooks.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.webhooks.job_url = Some("https://rivet.example/jobs/{job}".to_owned());
    })
    .await;
    cluster.api(0).await.create(PIPELINE).await;
    let mut secrets = rivet_proto::v1::secret_service_client::SecretServiceClient::new(channel(cluster.addr(0)).await);
    let request = pb::SetSecretRequest { name: "GH_TOKEN".into(), pipeline: String::new(), value: "gh-t0ken".into() };
    secrets.set_secret(request).await.expect("set the token");
    let request = pb::CreateTriggerRequest {
        pipeline: "hooked".into(),
        forge: "github".into(),
        repository: "Codertocat/Hello-World".into(),
        status: Some(pb::StatusReporting {
            token_secret: "GH_TOKEN".into(),
            api_url: forge.url.clone(),
            context: String::new(),
        }),
        ..Default::default()
    };
    let created = triggers(&cluster).await.create_trigger(request).await.expect("create trigger").into_inner();
    let trigger = created.trigger.expect("trigger");
    assert_eq!(trigger.status.as_ref().map(|status| status.context.as_str()), Some("rivet/hooked"));
    let delivery = Delivery::new("github", "push", "gh-status-1", fixture!("github", "push"));
    let addr = hooks(&cluster, 0);
    assert_eq!(deliver(addr, &trigger.id, &created.secret, &delivery).await.status, 201);

    let mut runner = crate::support::FakeRunner::connect(cluster.addr(0), 1, &[]).await;
    let assign = runner.assignment().await;
    runner.accept(&assign).await;
    runner.finish(&assign, pb::JobState::Succeeded, 0).await;
    assert_eq!(deliver(addr, &trigger.id, &created.secret, &delivery).await.status, 200, "a redelivery");

    let received = forge.accepted(2).await;
    let jobs_of: Vec<String> = jobs(&cluster).await.into_iter().map(|job| job.id).collect();
    assert_eq!(jobs_of.len(), 1);
    let states: Vec<String> = received
        .iter()
        .map(|request| {
            assert_eq!(request.path, "/repos/Codertocat/Hello-World/statuses/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
            assert_eq!(request.authorization, "Bearer gh-t0ken");
            let body: serde_json::Value = serde_json::from_str(&request.body).expect("JSON");
            assert_eq!(body["context"], "rivet/hooked");
            assert_eq!(body["target_url"], format!("https://rivet.example/jobs/{}", jobs_of[0]), "the job's page");
            body["state"].as_str().expect("a state").to_owned()
        })
        .collect();
    assert_eq!(states, ["pending", "success"]);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(forge.received.lock().expect("lock").len(), 2, "the redelivery reported nothing");

    // A Gitea trigger must say where its API is.
    let request = pb::CreateTriggerRequest {
        pipeline: "hooked".into(),
        forge: "gitea".into(),
        repository: "gitea/webhooks".into(),
        status: Some(pb::StatusReporting { token_secret: "GH_TOKEN".into(), ..Default::default() }),
        ..Default::default()
    };
    let refused = triggers(&cluster).await.create_trigger(request).await.expect_err("no API URL");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("status.api_url"), "{}", refused.message());
}
