//! Opening stores: URLs, pragmas, migrations, failures.

use rivet_orchestrator::domain::store::{Store, StoreError};
use rivet_orchestrator::migration::Migrator;
use rivet_orchestrator::storage::testing::{empty_postgres, fresh_postgres, fresh_sqlite, sqlite_url};
use rivet_orchestrator::storage::{Backend, SeaStore};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::MigratorTrait;

use crate::support::pipeline;

#[tokio::test]
async fn postgres_reconnects_to_a_migrated_database() {
    let (store, db) = fresh_postgres().await;
    assert_eq!(store.backend(), Backend::Postgres);
    assert_eq!(store.backend().to_string(), "postgres");
    let stored = pipeline(&store, "kept", &[]).await;
    // Migrations already applied are not applied again.
    let again = SeaStore::connect(db.url()).await.unwrap();
    assert_eq!(again.pipeline(stored.id).await.unwrap(), Some(stored));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_migrate_once() {
    let db = empty_postgres().await;
    let url = db.url().to_owned();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { SeaStore::connect(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for task in tasks {
        stores.push(task.await.unwrap().unwrap());
    }
    let row = stores[0]
        .connection()
        .query_one_raw(Statement::from_string(DbBackend::Postgres, "SELECT COUNT(*) AS n FROM seaql_migrations"))
        .await
        .unwrap()
        .unwrap();
    // Each migration is recorded once, however many replicas raced to apply it.
    let migrations = i64::try_from(Migrator::migrations().len()).unwrap();
    assert_eq!(row.try_get::<i64>("", "n").unwrap(), migrations);
}

#[tokio::test]
async fn sqlite_opens_a_new_file_in_wal_mode() {
    let (store, dir) = fresh_sqlite().await;
    assert_eq!(store.backend(), Backend::Sqlite);
    assert_eq!(store.backend().to_string(), "sqlite");
    assert!(dir.path().join("rivet.db").is_file());
    let pragma = |name: &str| {
        let statement = Statement::from_string(DbBackend::Sqlite, format!("PRAGMA {name}"));
        let db = store.connection().clone();
        let name = name.to_owned();
        async move { db.query_one_raw(statement).await.unwrap().unwrap().try_get_by_index::<String>(0).map_err(|_| name) }
    };
    assert_eq!(pragma("journal_mode").await.unwrap(), "wal");
    let busy = store
        .connection()
        .query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA busy_timeout"))
        .await
        .unwrap()
        .unwrap();
    assert!(busy.try_get_by_index::<i64>(0).unwrap() >= 1000);

    let stored = pipeline(&store, "kept", &[]).await;
    drop(store);
    let again = SeaStore::connect(&sqlite_url(dir.path())).await.unwrap();
    assert_eq!(again.pipeline(stored.id).await.unwrap(), Some(stored));
}

#[tokio::test]
async fn sqlite_urls_without_a_mode_and_in_memory_work() {
    let dir = tempfile::tempdir().unwrap();
    let plain = format!("sqlite://{}", dir.path().join("plain.db").display());
    let store = SeaStore::connect(&plain).await.unwrap();
    pipeline(&store, "p", &[]).await;
    assert!(dir.path().join("plain.db").is_file());

    let memory = SeaStore::connect("sqlite::memory:").await.unwrap();
    let stored = pipeline(&memory, "p", &[]).await;
    assert_eq!(memory.pipeline(stored.id).await.unwrap(), Some(stored));
}

#[tokio::test]
async fn unreachable_or_unsupported_databases_are_unavailable() {
    // (A refused connection is retried until the pool's acquire timeout; a missing database
    // fails at once.)
    let db = empty_postgres().await;
    let missing = SeaStore::connect(&db.url().replace(db.name(), &format!("{}_missing", db.name()))).await;
    assert!(matches!(missing, Err(StoreError::Unavailable(_))), "{missing:?}");
    let unsupported = SeaStore::connect("mysql://root:secret@127.0.0.1/rivet").await;
    let Err(StoreError::Unavailable(message)) = unsupported else { panic!("{unsupported:?}") };
    assert!(!message.contains("secret"), "{message}");
    let missing_dir = SeaStore::connect("sqlite:///nonexistent-dir/rivet.db?mode=rwc").await;
    assert!(matches!(missing_dir, Err(StoreError::Unavailable(_))), "{missing_dir:?}");
}
