//! The runner registry.

use rivet_orchestrator::domain::store::{RunnerRecord, Store};
use rivet_orchestrator::storage::SeaStore;
use uuid::Uuid;

use crate::support::{backends, labels, now};

backends! {
    runners_are_inserted_then_updated,
}

async fn runners_are_inserted_then_updated(store: &SeaStore) {
    assert_eq!(store.runners().await.unwrap(), vec![]);
    let mut alpha = RunnerRecord {
        id: Uuid::new_v4(),
        name: "alpha".to_owned(),
        labels: labels(&[("os", "linux")]),
        capacity: 2,
        version: "0.1.0".to_owned(),
        last_seen: now(),
    };
    let beta = RunnerRecord {
        id: Uuid::new_v4(),
        name: "beta".to_owned(),
        labels: labels(&[]),
        capacity: 1,
        version: "0.1.0".to_owned(),
        last_seen: now(),
    };
    store.upsert_runner(&beta).await.unwrap();
    store.upsert_runner(&alpha).await.unwrap();
    assert_eq!(store.runners().await.unwrap(), vec![alpha.clone(), beta.clone()]);

    alpha.labels = labels(&[("os", "linux"), ("gpu", "true")]);
    alpha.capacity = 8;
    alpha.version = "0.2.0".to_owned();
    alpha.last_seen = now() + chrono::Duration::seconds(5);
    store.upsert_runner(&alpha).await.unwrap();
    assert_eq!(store.runners().await.unwrap(), vec![alpha, beta]);
}
