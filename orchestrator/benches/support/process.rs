//! The `rivet-orchestrator` binary run as a child process, so that its memory and CPU can
//! be read from `/proc` apart from the bench's own (the simulated runners live in the bench).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use tokio::time::Instant;

/// A running `rivet-orchestrator` process, killed when dropped.
pub struct OrchestratorProcess {
    child: Child,
    pub addr: SocketAddr,
    _log: tempfile::NamedTempFile,
}

impl OrchestratorProcess {
    /// Starts the binary on `database_url` (and Redis, when given) with the default
    /// settings, and waits until it accepts connections.
    pub async fn spawn(database_url: &str, redis_url: Option<&str>) -> OrchestratorProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = tempfile::NamedTempFile::new().expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_rivet-orchestrator"));
        // The configuration reads every `RIVET_*` variable, and refuses unknown ones such
        // as the `RIVET_TEST_*` that `scripts/test-services.sh` exports.
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("RIVET_")) {
            command.env_remove(name);
        }
        command
            .env("RIVET_DATABASE_URL", database_url)
            .env("RIVET_LISTEN", addr.to_string())
            .env("RIVET_REPLICA_ID", "bench-process")
            .env("RIVET_REDIS_NAMESPACE", format!("rivet-bench-{}", uuid::Uuid::new_v4().simple()))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("log file"));
        if let Some(redis) = redis_url {
            command.env("RIVET_REDIS_URL", redis);
        }
        let child = command.spawn().expect("start rivet-orchestrator");
        let mut process = OrchestratorProcess { child, addr, _log: log };
        let start = Instant::now();
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Ok(Some(status)) = process.child.try_wait() {
                let log = std::fs::read_to_string(process._log.path()).unwrap_or_default();
                panic!("rivet-orchestrator exited with {status}:\n{log}");
            }
            assert!(start.elapsed() < Duration::from_secs(30), "rivet-orchestrator did not listen within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        process
    }

    /// The process's resident set size (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc/<pid>/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// The CPU time (user + system) the process has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("/proc/<pid>/stat");
        // Fields after the command name (which may hold spaces) start at the state, field 3;
        // utime and stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
    }
}

impl Drop for OrchestratorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`, 100 when unknown).
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// Counts the transactions PostgreSQL has finished in one database (`pg_stat_database`),
/// to show what an idle orchestrator asks of it.
pub struct Transactions {
    admin: DatabaseConnection,
    database: String,
}

impl Transactions {
    pub async fn of(database: &str) -> Transactions {
        let admin = Database::connect(rivet_orchestrator::storage::testing::postgres_admin_url()).await.expect("admin");
        Transactions { admin, database: database.to_owned() }
    }

    /// Committed plus rolled-back transactions so far. PostgreSQL publishes the counts about
    /// once a second, so read them over windows of several seconds.
    pub async fn count(&self) -> i64 {
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT (xact_commit + xact_rollback)::bigint AS n FROM pg_stat_database WHERE datname = $1",
            [self.database.clone().into()],
        );
        let row = self.admin.query_one_raw(statement).await.expect("pg_stat_database").expect("a row");
        row.try_get::<i64>("", "n").expect("n")
    }
}
