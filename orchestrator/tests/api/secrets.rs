//! Secrets over real gRPC: set, listed without values, checked at pipeline creation,
//! delivered at dispatch only to the runner assigned the job and only as declared (a
//! pipeline's own secret winning over a global one), stored as ciphertext only (the table
//! read raw), and readable through a key rotation done by `rivet-orchestrator rotate-key`.

use std::collections::HashMap;
use std::process::Command;

use rivet_orchestrator::config::SecretsConfig;
use rivet_orchestrator::domain::keyring::Keyring;
use rivet_orchestrator::storage::SeaStore;
use rivet_proto::v1 as pb;
use rivet_proto::v1::connect_response;
use rivet_proto::v1::secret_service_client::SecretServiceClient;
use sea_orm::{ConnectionTrait, Statement};
use tonic::Code;
use tonic::transport::Channel;

use crate::both_backends;
use crate::support::{Backend, Cluster, FakeRunner, PATIENCE, TEST_SECRETS_KEY, channel};

const GLOBAL_VALUE: &str = "global-deploy-token-4f9c";
const OWN_VALUE: &str = "pipeline-own-token-81ab";
const OTHER_VALUE: &str = "undeclared-other-7d21";
const VALUES: [&str; 3] = [GLOBAL_VALUE, OWN_VALUE, OTHER_VALUE];

/// A second key, for rotations.
const NEW_KEY: &str = "9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";

async fn secrets_client(cluster: &Cluster) -> SecretServiceClient<Channel> {
    SecretServiceClient::new(channel(cluster.addr(0)).await)
}

async fn set(client: &mut SecretServiceClient<Channel>, name: &str, pipeline: &str, value: &str) -> pb::Secret {
    let request = pb::SetSecretRequest { name: name.into(), pipeline: pipeline.into(), value: value.into() };
    let response = client.set_secret(request).await.expect("set secret").into_inner();
    let text = format!("{response:?}");
    assert!(!text.contains(value), "SetSecret answered with the value: {text}");
    response.secret.expect("secret")
}

/// A pipeline declaring `secrets`, run on runners labelled `pool = <pool>`.
fn source(name: &str, pool: &str, secrets: &[&str]) -> String {
    let secrets: Vec<String> = secrets.iter().map(|name| format!("\"{name}\"")).collect();
    format!(
        r#"return pipeline.define {{
  name = "{name}",
  runner = {{ {{ key = "pool", value = "{pool}" }} }},
  secrets = {{ {} }},
  stages = {{ {{ name = "build", script = function() end }} }},
}}"#,
        secrets.join(", ")
    )
}

/// Asserts that `what` holds none of the secret values.
fn holds_no_value(what: &str, text: &str) {
    for value in VALUES {
        assert!(!text.contains(value), "{what} holds the secret value `{value}`: {text}");
    }
}

/// Every message a fake runner receives until (and with) its next assignment.
async fn messages_until_assignment(runner: &mut FakeRunner) -> (Vec<String>, pb::AssignJob) {
    let mut seen = Vec::new();
    loop {
        let body = runner.next_within(PATIENCE).await.expect("the runner receives an assignment");
        seen.push(format!("{body:?}"));
        if let connect_response::Body::AssignJob(assign) = body {
            return (seen, assign);
        }
    }
}

/// Reads the secrets table raw: every column of every row, as bytes.
async fn raw_rows(cluster: &Cluster) -> Vec<HashMap<&'static str, Vec<u8>>> {
    let store = SeaStore::connect(cluster.database_url()).await.expect("store");
    let db = store.connection();
    let columns = ["id", "name", "pipeline", "key_id", "nonce", "ciphertext", "created_at", "updated_at"];
    let casts = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            "CAST(id AS text) AS id, name, pipeline, key_id, nonce, ciphertext, \
                                          CAST(created_at AS text) AS created_at, CAST(updated_at AS text) AS updated_at"
        }
        _ => {
            "CAST(id AS blob) AS id, name, pipeline, key_id, nonce, ciphertext, CAST(created_at AS text) AS created_at, \
              CAST(updated_at AS text) AS updated_at"
        }
    };
    let statement = Statement::from_string(db.get_database_backend(), format!("SELECT {casts} FROM secrets"));
    let rows = db.query_all_raw(statement).await.expect("read the secrets table");
    rows.iter()
        .map(|row| {
            columns
                .iter()
                .map(|column| {
                    let bytes = row
                        .try_get::<Vec<u8>>("", column)
                        .or_else(|_| row.try_get::<String>("", column).map(String::into_bytes))
                        .unwrap_or_else(|err| panic!("secrets.{column}: {err}"));
                    (*column, bytes)
                })
                .collect()
        })
        .collect()
}

fn ciphertext_only(rows: &[HashMap<&'static str, Vec<u8>>]) {
    for row in rows {
        for (column, bytes) in row {
            for value in VALUES {
                let found = bytes.windows(value.len()).any(|window| window == value.as_bytes());
                assert!(!found, "secrets.{column} holds the value `{value}` in the clear");
            }
        }
        assert!(row["ciphertext"].len() > 16, "a value is stored sealed, with its tag");
        assert_eq!(row["nonce"].len(), 24, "each value has its own XChaCha20 nonce");
    }
}

async fn secrets_go_only_where_declared(backend: Backend) {
    let cluster = Cluster::start(backend).await;
    let mut api = cluster.api(0).await;
    let mut secrets = secrets_client(&cluster).await;
    set(&mut secrets, "DEPLOY_TOKEN", "", GLOBAL_VALUE).await;
    let own = set(&mut secrets, "DEPLOY_TOKEN", "deploy", OWN_VALUE).await;
    assert_eq!((own.name.as_str(), own.pipeline.as_str()), ("DEPLOY_TOKEN", "deploy"));
    set(&mut secrets, "OTHER_TOKEN", "", OTHER_VALUE).await;

    let listed = secrets.list_secrets(pb::ListSecretsRequest::default()).await.expect("list").into_inner();
    holds_no_value("ListSecrets", &format!("{listed:?}"));
    let scopes: Vec<(&str, &str)> = listed.secrets.iter().map(|s| (s.pipeline.as_str(), s.name.as_str())).collect();
    assert_eq!(scopes, [("", "DEPLOY_TOKEN"), ("", "OTHER_TOKEN"), ("deploy", "DEPLOY_TOKEN")]);
    let own_only = secrets.list_secrets(pb::ListSecretsRequest { pipeline: "deploy".into() }).await.expect("list");
    assert_eq!(own_only.into_inner().secrets.len(), 1);

    // A pipeline that declares a secret nobody set is refused at creation, naming it.
    let request = pb::CreatePipelineRequest {
        source: source("needs-more", "a", &["DEPLOY_TOKEN", "MISSING_TOKEN"]),
        file_name: "needs-more.lua".into(),
    };
    let status = api.pipelines.create_pipeline(request).await.expect_err("an unset secret is declared");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("needs-more.lua:4: secrets[2]: secret `MISSING_TOKEN` is not set"), "{status:?}");
    assert!(!status.message().contains("DEPLOY_TOKEN"), "a visible secret is not reported: {status:?}");
    // A pipeline's own secret is visible to that pipeline only.
    let request = pb::CreatePipelineRequest {
        source: source("elsewhere", "a", &["MISSING_TOKEN"]),
        file_name: "elsewhere.lua".into(),
    };
    set(&mut secrets, "MISSING_TOKEN", "needs-more", "only-for-needs-more").await;
    let status = api.pipelines.create_pipeline(request).await.expect_err("another pipeline's secret");
    assert!(status.message().contains("secret `MISSING_TOKEN` is not set"), "{status:?}");

    api.create(&source("deploy", "a", &["DEPLOY_TOKEN"])).await;
    api.create(&source("plain", "b", &[])).await;
    let mut assigned = FakeRunner::connect(cluster.addr(0), 1, &[("pool", "a")]).await;
    let mut bystander = FakeRunner::connect(cluster.addr(0), 1, &[("pool", "b")]).await;

    let job = api.launch("deploy", &[]).await.expect("launch");
    holds_no_value("LaunchJob", &format!("{job:?}"));
    let (seen, assign) = messages_until_assignment(&mut assigned).await;
    assert_eq!(assign.assignment.as_ref().expect("assignment").job_id, job.id);
    // Only the declared secret, and the pipeline's own value wins over the global one.
    let delivered: Vec<(&str, &str)> = assign.secrets.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(delivered, [("DEPLOY_TOKEN", OWN_VALUE)]);
    assert!(!seen.iter().any(|message| message.contains(OTHER_VALUE) || message.contains(GLOBAL_VALUE)));
    assigned.accept(&assign).await;
    assigned.finish(&assign, pb::JobState::Succeeded, 0).await;
    let finished = api.wait_for(&job.id, pb::JobState::Succeeded).await;
    holds_no_value("GetJob", &format!("{finished:?}"));
    let jobs = api.jobs.list_jobs(pb::ListJobsRequest::default()).await.expect("list jobs").into_inner();
    holds_no_value("ListJobs", &format!("{jobs:?}"));

    // The other runner saw every message meant for it, up to a job of its own: no value,
    // and its job (whose pipeline declares nothing) carries no secret.
    let plain = api.launch("plain", &[]).await.expect("launch");
    let (seen, assign) = messages_until_assignment(&mut bystander).await;
    assert_eq!(assign.assignment.as_ref().expect("assignment").job_id, plain.id);
    assert!(assign.secrets.is_empty(), "{:?}", assign.secrets.keys());
    for message in &seen {
        holds_no_value("a message to a runner not assigned the job", message);
    }

    ciphertext_only(&raw_rows(&cluster).await);

    // A secret deleted after creation fails the job at dispatch, naming it; nothing is sent.
    secrets
        .delete_secret(pb::DeleteSecretRequest { name: "DEPLOY_TOKEN".into(), pipeline: "deploy".into() })
        .await
        .expect("delete");
    secrets
        .delete_secret(pb::DeleteSecretRequest { name: "DEPLOY_TOKEN".into(), pipeline: String::new() })
        .await
        .expect("delete");
    let status = secrets
        .delete_secret(pb::DeleteSecretRequest { name: "DEPLOY_TOKEN".into(), pipeline: String::new() })
        .await
        .expect_err("already deleted");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let orphan = api.launch("deploy", &[]).await.expect("launch");
    let failed = api.wait_for(&orphan.id, pb::JobState::Failed).await;
    assert!(failed.message.contains("secret `DEPLOY_TOKEN` is not set for pipeline `deploy`"), "{}", failed.message);
}
both_backends!(secrets_go_only_to_the_assigned_runner_as_declared, secrets_go_only_where_declared);

/// `rivet-orchestrator rotate-key` against the cluster's database with `vars`.
fn rotate_key(cluster: &Cluster, vars: &[(&str, &str)]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_rivet-orchestrator"))
        .arg("rotate-key")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RIVET_DATABASE_URL", cluster.database_url())
        .envs(vars.iter().copied())
        .output()
        .expect("rivet-orchestrator runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "rotate-key failed: {}", String::from_utf8_lossy(&output.stderr));
    holds_no_value("rotate-key's output", &format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)));
    stdout
}

fn key_id(key: &str) -> String {
    let keyring = Keyring::load(&SecretsConfig { key: Some(key.to_owned()), ..SecretsConfig::default() });
    keyring.expect("a valid key").current_id().expect("current key").to_owned()
}

async fn delivered_to_a_runner(cluster: &Cluster, pool: &str) -> Vec<(String, String)> {
    let mut api = cluster.api(0).await;
    let mut runner = FakeRunner::connect(cluster.addr(0), 1, &[("pool", pool)]).await;
    let job = api.launch("rotated", &[]).await.expect("launch");
    let assign = runner.assignment().await;
    assert_eq!(assign.assignment.as_ref().expect("assignment").job_id, job.id);
    runner.accept(&assign).await;
    runner.finish(&assign, pb::JobState::Succeeded, 0).await;
    api.wait_for(&job.id, pb::JobState::Succeeded).await;
    let mut secrets: Vec<(String, String)> = assign.secrets.into_iter().collect();
    secrets.sort();
    secrets
}

async fn rotation_keeps_secrets_readable(backend: Backend) {
    let mut cluster = Cluster::start(backend).await;
    let mut secrets = secrets_client(&cluster).await;
    set(&mut secrets, "DEPLOY_TOKEN", "", GLOBAL_VALUE).await;
    set(&mut secrets, "OTHER_TOKEN", "rotated", OTHER_VALUE).await;
    let mut api = cluster.api(0).await;
    api.create(&source("rotated", "r", &["DEPLOY_TOKEN", "OTHER_TOKEN"])).await;
    let expected =
        vec![("DEPLOY_TOKEN".to_owned(), GLOBAL_VALUE.to_owned()), ("OTHER_TOKEN".to_owned(), OTHER_VALUE.to_owned())];
    assert_eq!(delivered_to_a_runner(&cluster, "r").await, expected);
    let old_id = key_id(TEST_SECRETS_KEY);
    assert!(raw_rows(&cluster).await.iter().all(|row| row["key_id"] == old_id.as_bytes()));

    // Step one of a rotation: the new key is current, the old one still opens.
    cluster.kill(0).await;
    cluster.reconfigure(|config| {
        config.secrets = SecretsConfig {
            key: Some(NEW_KEY.to_owned()),
            previous_keys: vec![TEST_SECRETS_KEY.to_owned()],
            ..SecretsConfig::default()
        };
    });
    cluster.restart(0).await;
    assert_eq!(delivered_to_a_runner(&cluster, "r").await, expected, "old rows open under the previous key");
    let mut secrets = secrets_client(&cluster).await;
    set(&mut secrets, "NEW_TOKEN", "", "set-after-the-new-key").await;

    let output = rotate_key(
        &cluster,
        &[("RIVET_SECRETS__KEY", NEW_KEY), ("RIVET_SECRETS__PREVIOUS_KEYS", &format!("[\"{TEST_SECRETS_KEY}\"]"))],
    );
    assert!(output.contains("re-encrypted 2 secret(s)") && output.contains("1 already were"), "{output}");
    let new_id = key_id(NEW_KEY);
    let rows = raw_rows(&cluster).await;
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|row| row["key_id"] == new_id.as_bytes()), "every row is under the new key");
    ciphertext_only(&rows);
    // Running it again finds nothing to do.
    let again = rotate_key(&cluster, &[("RIVET_SECRETS__KEY", NEW_KEY)]);
    assert!(again.contains("re-encrypted 0 secret(s)") && again.contains("3 already were"), "{again}");

    // The old key is gone from the configuration; every secret still reads.
    cluster.kill(0).await;
    cluster.reconfigure(|config| {
        config.secrets = SecretsConfig { key: Some(NEW_KEY.to_owned()), ..SecretsConfig::default() };
    });
    cluster.restart(0).await;
    assert_eq!(delivered_to_a_runner(&cluster, "r").await, expected, "readable under the new key alone");
}
both_backends!(key_rotation_keeps_every_secret_readable, rotation_keeps_secrets_readable);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_secrets_are_refused_without_quoting_them() {
    let cluster = Cluster::start(Backend::Sqlite).await;
    let mut secrets = secrets_client(&cluster).await;
    let cases = [
        ("TOKEN", "", "short", Code::InvalidArgument, "value: is 5 bytes; secrets must be at least 6 bytes"),
        ("1TOKEN", "", "long-enough", Code::InvalidArgument, "is not a secret name"),
        ("TOKEN", "", &"v".repeat(16 * 1024 + 1), Code::InvalidArgument, "secrets may be at most 16384"),
    ];
    for (name, pipeline, value, code, message) in cases {
        let request = pb::SetSecretRequest { name: name.into(), pipeline: pipeline.into(), value: value.to_owned() };
        let status = secrets.set_secret(request).await.expect_err("refused");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(message), "{status:?}");
        if value.len() < 100 {
            assert!(!status.message().contains(value), "the error quotes the value: {status:?}");
        }
    }

    // Without a key, nothing can be stored: the error names the setting.
    let keyless = Cluster::with(Backend::Sqlite, 1, |config| config.secrets = SecretsConfig::default()).await;
    let mut secrets = secrets_client(&keyless).await;
    let request = pb::SetSecretRequest { name: "TOKEN".into(), pipeline: String::new(), value: "long-enough".into() };
    let status = secrets.set_secret(request).await.expect_err("no key");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("secrets.key_file"), "{status:?}");
}
