//! Pipeline versions.

use std::collections::BTreeSet;

use rivet_orchestrator::domain::store::Store;
use rivet_orchestrator::storage::SeaStore;
use uuid::Uuid;

use crate::support::{self, backends, definition, new_pipeline, pipeline};

backends! {
    versions_are_numbered_per_name,
    concurrent_creates_get_distinct_versions,
    list_returns_the_latest_version_of_each_name_in_pages,
    delete_removes_every_version_and_keeps_jobs,
    unknown_pipelines_are_none,
}

async fn versions_are_numbered_per_name(store: &SeaStore) {
    let first = pipeline(store, "build", &[("os", "linux")]).await;
    let second = pipeline(store, "build", &[("os", "linux"), ("arch", "arm64")]).await;
    let other = pipeline(store, "deploy", &[]).await;
    assert_eq!((first.version, second.version, other.version), (1, 2, 1));
    assert_ne!(first.id, second.id);
    assert_eq!(first.definition, definition("build", &[("os", "linux")]));
    assert_eq!(first.source, new_pipeline("build", &[]).source);
    assert_eq!(first.file_name, "build.lua");

    // Each version is readable by id and by (name, version), exactly as returned.
    assert_eq!(store.pipeline(first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(store.pipeline(second.id).await.unwrap(), Some(second.clone()));
    assert_eq!(store.pipeline_by_name("build", Some(1)).await.unwrap(), Some(first));
    assert_eq!(store.pipeline_by_name("build", Some(2)).await.unwrap(), Some(second.clone()));
    assert_eq!(store.pipeline_by_name("build", None).await.unwrap(), Some(second));
    assert_eq!(store.pipeline_by_name("deploy", None).await.unwrap(), Some(other));
}

async fn concurrent_creates_get_distinct_versions(store: &SeaStore) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.create_pipeline(new_pipeline("race", &[])).await })
        })
        .collect();
    let mut versions = BTreeSet::new();
    for task in tasks {
        versions.insert(task.await.unwrap().unwrap().version);
    }
    assert_eq!(versions, (1..=8).collect());
    assert_eq!(store.pipeline_by_name("race", None).await.unwrap().map(|p| p.version), Some(8));
}

async fn list_returns_the_latest_version_of_each_name_in_pages(store: &SeaStore) {
    pipeline(store, "charlie", &[]).await;
    pipeline(store, "alpha", &[]).await;
    let alpha = pipeline(store, "alpha", &[]).await;
    let bravo = pipeline(store, "bravo", &[]).await;
    pipeline(store, "delta", &[]).await;
    let delta = pipeline(store, "delta", &[]).await;
    let charlie = store.pipeline_by_name("charlie", None).await.unwrap().unwrap();

    let page = store.list_pipelines(None, 2).await.unwrap();
    assert_eq!(page, vec![alpha.clone(), bravo.clone()]);
    let page = store.list_pipelines(Some("bravo"), 2).await.unwrap();
    assert_eq!(page, vec![charlie.clone(), delta.clone()]);
    assert_eq!(store.list_pipelines(Some("delta"), 2).await.unwrap(), vec![]);
    // `after_name` need not be a stored name.
    assert_eq!(store.list_pipelines(Some("b"), 10).await.unwrap(), vec![bravo.clone(), charlie.clone(), delta.clone()]);
    assert_eq!(store.list_pipelines(None, 100).await.unwrap(), vec![alpha, bravo, charlie, delta]);
    assert_eq!(store.list_pipelines(None, 0).await.unwrap(), vec![]);
}

async fn delete_removes_every_version_and_keeps_jobs(store: &SeaStore) {
    pipeline(store, "gone", &[]).await;
    pipeline(store, "gone", &[]).await;
    let last = pipeline(store, "gone", &[("os", "linux")]).await;
    let kept = pipeline(store, "kept", &[]).await;
    let job = support::job(store, &last).await;

    assert_eq!(store.delete_pipeline("gone").await.unwrap(), 3);
    assert_eq!(store.pipeline_by_name("gone", None).await.unwrap(), None);
    assert_eq!(store.pipeline(last.id).await.unwrap(), None);
    assert_eq!(store.list_pipelines(None, 10).await.unwrap(), vec![kept]);
    assert_eq!(store.delete_pipeline("gone").await.unwrap(), 0);

    // The job keeps what it needs to run and to be shown.
    let stored = store.job(job.id).await.unwrap().unwrap();
    assert_eq!(stored, job);
    assert_eq!((stored.pipeline_name.as_str(), stored.pipeline_version), ("gone", 3));

    // A new version after a delete starts again at 1.
    assert_eq!(pipeline(store, "gone", &[]).await.version, 1);
}

async fn unknown_pipelines_are_none(store: &SeaStore) {
    pipeline(store, "known", &[]).await;
    assert_eq!(store.pipeline(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(store.pipeline_by_name("unknown", None).await.unwrap(), None);
    assert_eq!(store.pipeline_by_name("known", Some(2)).await.unwrap(), None);
    assert_eq!(store.pipeline_by_name("known", Some(u32::MAX)).await.unwrap(), None);
}
