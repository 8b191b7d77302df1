//! Fixtures shared by the storage tests, and the macros that run a test on both backends.

use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use rivet_core::{
    InputSpec, InputType, InputValue, LogLevel, LogLine, PipelineDefinition, ResolvedInputs, StageSpec, Tag,
};
use rivet_orchestrator::domain::store::{JobRecord, NewJob, NewPipeline, PipelineRecord, Store};
use rivet_orchestrator::storage::SeaStore;
use uuid::Uuid;

/// Runs each listed `async fn NAME(store: &SeaStore)` of the calling module as
/// `postgres::NAME` and `sqlite::NAME`, each on a fresh database.
macro_rules! backends {
    ($($test:ident),+ $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let (store, _db) = rivet_orchestrator::storage::testing::fresh_postgres().await;
                    super::$test(&store).await;
                }
            )+
        }

        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let (store, _dir) = rivet_orchestrator::storage::testing::fresh_sqlite().await;
                    super::$test(&store).await;
                }
            )+
        }
    };
}
pub(crate) use backends;

/// Like [`backends!`], for `async fn NAME(stores: &[SeaStore])`: several stores (as
/// separate replicas would open) on one fresh database.
macro_rules! replicas {
    ($count:literal: $($test:ident),+ $(,)?) => {
        mod postgres_replicas {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let (store, db) = rivet_orchestrator::storage::testing::fresh_postgres().await;
                    let stores = crate::support::more_stores(store, db.url(), $count).await;
                    super::$test(&stores).await;
                }
            )+
        }

        mod sqlite_replicas {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let (store, dir) = rivet_orchestrator::storage::testing::fresh_sqlite().await;
                    let url = rivet_orchestrator::storage::testing::sqlite_url(dir.path());
                    let stores = crate::support::more_stores(store, &url, $count).await;
                    super::$test(&stores).await;
                }
            )+
        }
    };
}
pub(crate) use replicas;

/// `first`, and `count - 1` more stores connected to `url`.
pub async fn more_stores(first: SeaStore, url: &str, count: usize) -> Vec<SeaStore> {
    let mut stores = vec![first];
    for _ in 1..count {
        stores.push(SeaStore::connect(url).await.expect("connect another store"));
    }
    stores
}

/// A definition with one input of each type, two stages and the given runner tags.
pub fn definition(name: &str, tags: &[(&str, &str)]) -> PipelineDefinition {
    PipelineDefinition {
        name: name.to_owned(),
        description: format!("the {name} pipeline"),
        inputs: vec![
            InputSpec {
                name: "count".to_owned(),
                input_type: InputType::Number,
                description: "how many".to_owned(),
                default: Some(InputValue::Number(4.0)),
                options: vec![],
                required: false,
            },
            InputSpec {
                name: "target".to_owned(),
                input_type: InputType::String,
                description: String::new(),
                default: None,
                options: vec![InputValue::String("dev".to_owned()), InputValue::String("prod".to_owned())],
                required: true,
            },
        ],
        runner: tags.iter().map(|(key, value)| Tag { key: (*key).to_owned(), value: (*value).to_owned() }).collect(),
        plugins: vec!["git".to_owned()],
        secrets: vec!["token".to_owned()],
        stages: vec![
            StageSpec {
                name: "build".to_owned(),
                container: Some("alpine:3".to_owned()),
                has_condition: false,
                timeout_secs: Some(600),
                network: Some(rivet_core::model::StageNetwork::None),
                line: 4,
            },
            StageSpec {
                name: "test".to_owned(),
                container: None,
                has_condition: true,
                timeout_secs: None,
                network: None,
                line: 9,
            },
        ],
        http: None,
    }
}

/// A new pipeline version to store.
pub fn new_pipeline(name: &str, tags: &[(&str, &str)]) -> NewPipeline {
    NewPipeline {
        name: name.to_owned(),
        source: format!("return pipeline.define {{ name = {name:?} }}"),
        file_name: format!("{name}.lua"),
        definition: definition(name, tags),
        plugins: vec![rivet_core::plugin::PluginPin {
            name: "git".to_owned(),
            version: "1.2.0".to_owned(),
            sha256: "0".repeat(64),
        }],
    }
}

/// Stores a pipeline version.
pub async fn pipeline(store: &SeaStore, name: &str, tags: &[(&str, &str)]) -> PipelineRecord {
    store.create_pipeline(new_pipeline(name, tags)).await.expect("create pipeline")
}

/// Typed inputs of every kind.
pub fn inputs() -> ResolvedInputs {
    BTreeMap::from([
        ("count".to_owned(), InputValue::Number(2.5)),
        ("target".to_owned(), InputValue::String("prod".to_owned())),
        ("verbose".to_owned(), InputValue::Bool(true)),
    ])
}

/// The trace context every test job is launched under.
pub const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A job to create, with ids increasing in creation order.
pub fn new_job(pipeline: &PipelineRecord) -> NewJob {
    NewJob {
        id: Uuid::now_v7(),
        pipeline_id: pipeline.id,
        inputs: inputs(),
        idempotency_key: None,
        max_attempts: 3,
        trace: Some(TRACE.parse().expect("a valid traceparent")),
        origin: rivet_core::JobOrigin::Rerun { of: Uuid::from_u128(7) },
    }
}

/// Creates a queued job.
pub async fn job(store: &SeaStore, pipeline: &PipelineRecord) -> JobRecord {
    let (job, created) = store.create_job(new_job(pipeline)).await.expect("create job");
    assert!(created);
    job
}

/// Runner labels.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
}

/// The runner `claim` claims jobs for.
pub const RUNNER: Uuid = Uuid::from_u128(0x0193_7a6e_0000_7000_8000_0000_0000_0001);

/// Claims a job for [`RUNNER`] with `labels`, expecting one.
pub async fn claim(store: &SeaStore, pairs: &[(&str, &str)]) -> (JobRecord, u64) {
    store.claim_job(RUNNER, &labels(pairs)).await.expect("claim").expect("a job to claim")
}

/// The current time at the precision the stores keep.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A log line of attempt 1.
pub fn line(sequence: u64) -> LogLine {
    LogLine {
        sequence,
        time: now(),
        level: if sequence.is_multiple_of(2) { LogLevel::Info } else { LogLevel::Warning },
        stage: "build".to_owned(),
        text: format!("line {sequence}"),
        attempt: 1,
    }
}

/// Log lines `from..=to`.
pub fn lines(from: u64, to: u64) -> Vec<LogLine> {
    (from..=to).map(line).collect()
}
