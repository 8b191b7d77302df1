//! Test and bench support shared by this crate's integration tests and benches: which
//! backends to run on, a fresh database of each, the test Redis, and a gRPC channel.
//! Storage-level helpers live in `storage::testing`.

use std::net::SocketAddr;

use tonic::transport::Channel;

use crate::storage::testing::{TestDb, fresh_postgres, fresh_sqlite, sqlite_url};

/// Which backends an orchestrator runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL + Redis: the distributed mode.
    Postgres,
    /// SQLite + memory: the embedded mode.
    Sqlite,
}

impl Backend {
    /// How tables and messages name it.
    pub fn label(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres+redis",
            Backend::Sqlite => "sqlite+memory",
        }
    }
}

/// A fresh, migrated database; dropped (PostgreSQL) or deleted (SQLite) with this value.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its URL, for as many stores (replicas) as a test wants.
    pub url: String,
    _postgres: Option<TestDb>,
    _sqlite: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// The PostgreSQL database's name; `None` for SQLite.
    pub fn postgres_name(&self) -> Option<&str> {
        self._postgres.as_ref().map(TestDb::name)
    }
}

/// A fresh database of `backend`.
pub async fn fresh_database(backend: Backend) -> TestDatabase {
    match backend {
        Backend::Postgres => {
            let (store, db) = fresh_postgres().await;
            drop(store);
            TestDatabase { url: db.url().to_owned(), _postgres: Some(db), _sqlite: None }
        }
        Backend::Sqlite => {
            let (store, dir) = fresh_sqlite().await;
            drop(store);
            TestDatabase { url: sqlite_url(dir.path()), _postgres: None, _sqlite: Some(dir) }
        }
    }
}

/// The Redis server tests and benches use: `RIVET_TEST_REDIS_URL`, else the local one.
pub fn redis_url() -> String {
    std::env::var("RIVET_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A gRPC channel (one HTTP/2 connection) to an orchestrator at `addr`. Panics when it
/// cannot connect: this is test support.
pub async fn channel(addr: SocketAddr) -> Channel {
    match tonic::transport::Endpoint::from_shared(format!("http://{addr}")) {
        Ok(endpoint) => endpoint.connect().await.unwrap_or_else(|err| panic!("cannot connect to {addr}: {err}")),
        Err(err) => panic!("bad address {addr}: {err}"),
    }
}
