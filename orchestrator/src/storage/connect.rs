//! Opening a [`SeaStore`]: the connection pool for each backend, then the migrations.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use sea_orm_migration::MigratorTrait;

use super::codec::db_err;
use super::store::{Backend, SeaStore};
use crate::domain::store::{StoreError, StoreResult};
use crate::migration::Migrator;

/// How long a SQLite writer waits for another process's write lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// SQLite connections: WAL lets readers run beside the one writer.
const SQLITE_CONNECTIONS: u32 = 4;
/// PostgreSQL connections per replica.
const POSTGRES_CONNECTIONS: u32 = 16;
/// How long a query waits for a free pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Serialises migrations across replicas that start together (`pg_advisory_xact_lock`).
const MIGRATION_LOCK_KEY: i64 = 0x7269_7665_745f_6462; // "rivet_db"

impl SeaStore {
    /// Connects to `url` (`postgres://…`, `postgresql://…` or `sqlite:…`), brings the
    /// schema up to date and returns the store.
    ///
    /// A SQLite database file is created when missing (`?mode=rwc` works too), and is
    /// opened in WAL mode with a busy timeout.
    pub async fn connect(url: &str) -> StoreResult<SeaStore> {
        let backend = backend_of(url)?;
        let mut options = ConnectOptions::new(url);
        options.sqlx_logging(false).acquire_timeout(ACQUIRE_TIMEOUT).connect_timeout(CONNECT_TIMEOUT);
        match backend {
            Backend::Postgres => {
                options.max_connections(POSTGRES_CONNECTIONS);
            }
            Backend::Sqlite => {
                // Every connection to an in-memory database opens a database of its own.
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                options.max_connections(if in_memory { 1 } else { SQLITE_CONNECTIONS });
                options.map_sqlx_sqlite_opts(|sqlite| {
                    sqlite
                        .create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .busy_timeout(SQLITE_BUSY_TIMEOUT)
                        .foreign_keys(true)
                });
            }
        }
        let db = Database::connect(options).await.map_err(db_err)?;
        migrate(&db, backend).await?;
        Ok(SeaStore::new(db, backend))
    }
}

/// The backend a URL names.
fn backend_of(url: &str) -> StoreResult<Backend> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else {
        // The URL itself is left out: it may carry a password.
        Err(StoreError::Unavailable("unsupported database URL: expected postgres://, postgresql:// or sqlite:".into()))
    }
}

/// Applies pending migrations. On PostgreSQL they run inside one transaction holding an
/// advisory lock, so replicas starting together apply them once, one after the other.
async fn migrate(db: &DatabaseConnection, backend: Backend) -> StoreResult<()> {
    match backend {
        Backend::Postgres => {
            let txn = db.begin().await.map_err(db_err)?;
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [MIGRATION_LOCK_KEY.into()],
            ))
            .await
            .map_err(db_err)?;
            Migrator::up(&txn, None).await.map_err(migration_err)?;
            txn.commit().await.map_err(db_err)
        }
        Backend::Sqlite => Migrator::up(db, None).await.map_err(migration_err),
    }
}

fn migration_err(err: sea_orm::DbErr) -> StoreError {
    StoreError::Unavailable(format!("failed to migrate the database: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_are_recognised_by_scheme() {
        assert_eq!(backend_of("postgres://u@h/db").ok(), Some(Backend::Postgres));
        assert_eq!(backend_of("postgresql://u@h/db").ok(), Some(Backend::Postgres));
        assert_eq!(backend_of("sqlite:///tmp/x.db?mode=rwc").ok(), Some(Backend::Sqlite));
        assert_eq!(backend_of("sqlite::memory:").ok(), Some(Backend::Sqlite));
        let err = backend_of("mysql://root:secret@h/db").err().map(|err| err.to_string());
        assert!(err.is_some_and(|err| err.contains("unsupported") && !err.contains("secret")));
    }
}
