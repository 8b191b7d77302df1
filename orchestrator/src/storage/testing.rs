//! Test support: fresh, migrated stores on a throw-away PostgreSQL database or SQLite file.
//! Used by this crate's storage tests and by other crates' integration tests.
//!
//! PostgreSQL is found at `RIVET_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, which `scripts/test-services.sh` starts);
//! each test gets a database of its own, so tests can run in parallel. An unreachable
//! server fails the test with a message saying so: it is never skipped.

use std::path::Path;

use sea_orm::{ConnectionTrait, Database};
use tempfile::TempDir;
use uuid::Uuid;

use super::SeaStore;

/// The variable naming the PostgreSQL server tests use.
pub const DATABASE_URL_VAR: &str = "RIVET_TEST_DATABASE_URL";
/// The server tests use when the variable is unset.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A test's own PostgreSQL database, dropped (best effort) when this guard is.
#[derive(Debug)]
pub struct TestDb {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDb {
    /// The URL of the test's database, e.g. to connect a second store (a second replica).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // Drop may run inside a runtime, which cannot be blocked on: use a thread with a
        // runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let admin = Database::connect(&admin_url).await.map_err(|e| e.to_string())?;
                admin.execute_unprepared(&statement).await.map_err(|e| e.to_string())?;
                admin.close().await.map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(err)) = dropped {
            eprintln!("warning: failed to drop test database {}: {err}", self.name);
        }
    }
}

/// The PostgreSQL server tests use.
pub fn postgres_admin_url() -> String {
    std::env::var(DATABASE_URL_VAR).unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// A migrated store on a new, empty PostgreSQL database. Panics, saying why, when the
/// server cannot be reached.
pub async fn fresh_postgres() -> (SeaStore, TestDb) {
    let db = empty_postgres().await;
    let store = SeaStore::connect(db.url())
        .await
        .unwrap_or_else(|err| panic!("failed to open test database {}: {err}", db.name));
    (store, db)
}

/// A new PostgreSQL database without any table, for tests of connecting and migrating.
/// Panics, saying why, when the server cannot be reached.
pub async fn empty_postgres() -> TestDb {
    let admin_url = postgres_admin_url();
    let name = format!("rivet_test_{}", Uuid::new_v4().simple());
    let admin = Database::connect(&admin_url).await.unwrap_or_else(|err| {
        panic!(
            "PostgreSQL is unreachable at {admin_url} ({err}). Start it with `source scripts/test-services.sh`, \
             or point {DATABASE_URL_VAR} at a server"
        )
    });
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|err| panic!("failed to create test database {name} at {admin_url}: {err}"));
    // Best effort: the pool closes when dropped anyway.
    let _ = admin.close().await;
    TestDb { url: with_database(&admin_url, &name), admin_url, name }
}

/// A migrated store on a new SQLite file in a temporary directory, removed with it.
pub async fn fresh_sqlite() -> (SeaStore, TempDir) {
    let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("failed to create a temporary directory: {err}"));
    let url = sqlite_url(dir.path());
    let store = SeaStore::connect(&url).await.unwrap_or_else(|err| panic!("failed to open {url}: {err}"));
    (store, dir)
}

/// The URL of the database file [`fresh_sqlite`] creates in `dir`.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("rivet.db").display())
}

/// `url` with its database name replaced by `name`, keeping credentials, host and query.
/// Panics on a URL that does not parse: this is test support, and the URL is the tester's.
fn with_database(url: &str, name: &str) -> String {
    let mut parsed =
        url::Url::parse(url).unwrap_or_else(|err| panic!("{DATABASE_URL_VAR} `{url}` is not a URL: {err}"));
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced() {
        let check = |url: &str, expected: &str| assert_eq!(with_database(url, "t"), expected, "{url}");
        check("postgres://postgres@127.0.0.1:5432/postgres", "postgres://postgres@127.0.0.1:5432/t");
        check("postgres://u:p@h/db?sslmode=disable", "postgres://u:p@h/t?sslmode=disable");
        check("postgres://u@h:5432", "postgres://u@h:5432/t");
        check("postgresql://h/", "postgresql://h/t");
    }
}
