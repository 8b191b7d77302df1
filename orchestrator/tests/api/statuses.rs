//! Commit statuses: a tracked job's states reach a loopback fake forge in order (pending,
//! then the final state), with the token from the secret store, through the forge's own
//! REST shape; a forge that fails is retried with backoff, and a status that cannot be
//! delivered never touches the job.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rivet_core::forge::Forge;
use rivet_orchestrator::config::SecretsConfig;
use rivet_orchestrator::domain::statuses::StatusTarget;
use rivet_proto::v1::secret_service_client::SecretServiceClient;
use rivet_proto::v1::{self as pb};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::both_backends;
use crate::support::{Backend, Cluster, FakeRunner, channel, pipeline_source};

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const SHA: &str = "9fceb02d0ae598e95dc970b74767f19372d61af8";
const TOKEN: &str = "forge-t0ken";

/// One request the fake forge received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub path: String,
    pub authorization: String,
    pub private_token: String,
    pub body: String,
}

/// A forge on loopback: records every request and answers with the next status of
/// `answers` (201 once they run out).
#[derive(Clone)]
pub(crate) struct FakeForge {
    pub received: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<Vec<u16>>>,
    pub url: String,
}

impl FakeForge {
    pub async fn start(answers: Vec<u16>) -> FakeForge {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let forge = FakeForge {
            received: Arc::default(),
            answers: Arc::new(Mutex::new(answers)),
            url: format!("http://{}", listener.local_addr().unwrap()),
        };
        let serving = forge.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let forge = serving.clone();
                tokio::spawn(async move { forge.answer(stream).await });
            }
        });
        forge
    }

    async fn answer(&self, stream: tokio::net::TcpStream) {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
        let (mut length, mut authorization, mut private_token) = (0usize, String::new(), String::new());
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).await.unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "authorization" => authorization = value.trim().to_owned(),
                "private-token" => private_token = value.trim().to_owned(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await.unwrap();
        let body = String::from_utf8(body).unwrap();
        let status = {
            let mut answers = self.answers.lock().unwrap();
            if answers.is_empty() { 201 } else { answers.remove(0) }
        };
        if status == 201 {
            self.received.lock().unwrap().push(Received { path, authorization, private_token, body });
        }
        let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}");
        let _ = reader.get_mut().write_all(reply.as_bytes()).await;
    }

    /// Waits until `count` statuses were accepted, and returns them.
    pub async fn accepted(&self, count: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let received = self.received.lock().unwrap().clone();
            if received.len() >= count {
                return received;
            }
            assert!(tokio::time::Instant::now() < deadline, "the forge got {received:?}, not {count} statuses");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn cluster_with_token(backend: Backend, secret: &str) -> Cluster {
    let cluster = Cluster::with(backend, 1, |config| {
        config.secrets = SecretsConfig { key: Some(KEY.to_owned()), ..SecretsConfig::default() };
    })
    .await;
    let mut secrets = SecretServiceClient::new(channel(cluster.addr(0)).await);
    let request = pb::SetSecretRequest { name: secret.into(), pipeline: String::new(), value: TOKEN.into() };
    secrets.set_secret(request).await.expect("set the token");
    cluster
}

fn target(forge: Forge, api_url: &str, repository: &str, secret: &str) -> StatusTarget {
    StatusTarget {
        forge,
        api_url: api_url.to_owned(),
        repository: repository.to_owned(),
        sha: SHA.to_owned(),
        token_secret: secret.to_owned(),
        context: "rivet/build".to_owned(),
        link: Some("https://rivet.example/jobs/1".to_owned()),
    }
}

async fn github_statuses(backend: Backend) {
    // The forge fails twice (a 502 and a rate limit) before it takes the first status.
    let forge = FakeForge::start(vec![502, 429]).await;
    let cluster = cluster_with_token(backend, "GITHUB_TOKEN").await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("built", &[])).await;
    let job = api.launch("built", &[("image", "x")]).await.unwrap();
    let orchestrator = &cluster.replicas[0].as_ref().unwrap().orchestrator;
    let record = orchestrator.job(job.id.parse().unwrap()).await.unwrap();
    orchestrator.track_status(&record, target(Forge::Github, &forge.url, "acme/app", "GITHUB_TOKEN")).await.unwrap();

    let mut runner = FakeRunner::connect(cluster.addr(0), 1, &[]).await;
    let assign = runner.assignment().await;
    runner.accept(&assign).await;
    runner.finish(&assign, pb::JobState::Succeeded, 0).await;
    api.wait_for(&job.id, pb::JobState::Succeeded).await;

    let received = forge.accepted(2).await;
    let states: Vec<String> = received
        .iter()
        .map(|request| {
            let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
            assert_eq!(body["context"], "rivet/build");
            assert_eq!(body["target_url"], "https://rivet.example/jobs/1");
            assert!(body["description"].as_str().unwrap().starts_with("Rivet: "), "{body}");
            body["state"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(states, ["pending", "success"], "in order, after the retries");
    for request in &received {
        assert_eq!(request.path, format!("/repos/acme/app/statuses/{SHA}"));
        assert_eq!(request.authorization, format!("Bearer {TOKEN}"));
    }
    // Nothing more is sent.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(forge.received.lock().unwrap().len(), 2);
}
both_backends!(a_tracked_job_reports_pending_then_success_to_github_after_retries, github_statuses);

async fn gitlab_statuses(backend: Backend) {
    let forge = FakeForge::start(Vec::new()).await;
    let cluster = cluster_with_token(backend, "GITLAB_TOKEN").await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("built", &[])).await;
    let job = api.launch("built", &[("image", "x")]).await.unwrap();
    let orchestrator = &cluster.replicas[0].as_ref().unwrap().orchestrator;
    let record = orchestrator.job(job.id.parse().unwrap()).await.unwrap();
    let target = target(Forge::Gitlab, &format!("{}/api/v4", forge.url), "group/sub/app", "GITLAB_TOKEN");
    orchestrator.track_status(&record, target).await.unwrap();
    // Cancelled while queued: GitLab's word is `canceled`.
    let request = pb::CancelJobRequest { job_id: job.id.clone() };
    api.jobs.cancel_job(request).await.unwrap();

    let received = forge.accepted(2).await;
    for request in &received {
        assert_eq!(request.path, format!("/api/v4/projects/group%2Fsub%2Fapp/statuses/{SHA}"));
        assert_eq!(request.private_token, TOKEN);
        assert!(request.body.contains("name=rivet%2Fbuild"), "{}", request.body);
    }
    assert!(received[0].body.contains("state=pending"), "{}", received[0].body);
    assert!(received[1].body.contains("state=canceled"), "{}", received[1].body);
}
both_backends!(a_cancelled_job_reports_canceled_to_gitlab, gitlab_statuses);

async fn undeliverable(backend: Backend) {
    // The token secret is not set: the status is given up, the job runs as ever.
    let forge = FakeForge::start(Vec::new()).await;
    let cluster = cluster_with_token(backend, "OTHER").await;
    let mut api = cluster.api(0).await;
    api.create(&pipeline_source("built", &[])).await;
    let job = api.launch("built", &[("image", "x")]).await.unwrap();
    let orchestrator = &cluster.replicas[0].as_ref().unwrap().orchestrator;
    let record = orchestrator.job(job.id.parse().unwrap()).await.unwrap();
    orchestrator.track_status(&record, target(Forge::Gitea, &forge.url, "acme/app", "MISSING")).await.unwrap();
    let mut runner = FakeRunner::connect(cluster.addr(0), 1, &[]).await;
    let assign = runner.assignment().await;
    runner.accept(&assign).await;
    runner.finish(&assign, pb::JobState::Succeeded, 0).await;
    let ended = api.wait_for(&job.id, pb::JobState::Succeeded).await;
    assert_eq!(ended.state(), pb::JobState::Succeeded);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(forge.received.lock().unwrap().is_empty(), "nothing can be sent without the token");
}
both_backends!(a_status_without_its_token_is_given_up_and_the_job_is_untouched, undeliverable);
