//! The real processes a fault test starts, owns and kills: a private PostgreSQL cluster
//! (`initdb`/`pg_ctl`), a private `redis-server`, `rivet-orchestrator` replicas and
//! `rivet-runner` agents, all on loopback ports of their own. Every process writes its log
//! into the test's directory, which is kept (and named) when the test fails.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use rivet_proto::v1::job_service_client::JobServiceClient;
use rivet_proto::v1::{self as pb};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::PATIENCE;

/// The directory of the PostgreSQL server programs: Debian's layout, the newest version
/// installed (as `scripts/test-services.sh` picks it).
fn postgres_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is not installed: apt-get install postgresql")
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version = entry.file_name().to_str()?.parse().ok()?;
                let bin = entry.path().join("bin");
                bin.join("initdb").exists().then_some((version, bin))
            })
            .collect();
        versions.sort();
        versions.pop().expect("no PostgreSQL server under /usr/lib/postgresql: apt-get install postgresql").1
    })
}

/// A free loopback port (bound, then released for the process that will use it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port").port()
}

/// Waits until `condition` holds, polling; panics naming `what` after [`PATIENCE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether we are root: PostgreSQL then runs as the `postgres` user.
fn root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        let output = Command::new("id").arg("-u").output().expect("run id -u");
        String::from_utf8_lossy(&output.stdout).trim() == "0"
    })
}

/// A command of the PostgreSQL server, run as `postgres` when we are root.
fn postgres_command(program: &str) -> Command {
    let program = postgres_bin().join(program);
    if root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) {
    let output = command.output().unwrap_or_else(|err| panic!("cannot run {what}: {err}"));
    assert!(
        output.status.success(),
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A child process of the test, SIGKILLed (and reaped) when killed or dropped.
#[derive(Default)]
pub struct Process(Option<Child>);

impl Process {
    /// Kills it with SIGKILL, as the OOM killer or a power cut would: no drain, no
    /// goodbye, nothing it held survives but what it had written to disk.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            child.kill().expect("SIGKILL a child process");
            child.wait().expect("reap a child process");
        }
    }

    /// Whether it runs (was started and not killed).
    pub fn running(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL cluster of this test's own.
pub struct Postgres {
    data: PathBuf,
    port: u16,
}

impl Postgres {
    /// Creates and starts a cluster in `dir` (trust authentication, loopback only).
    pub fn start(dir: &Path) -> Postgres {
        let home = dir.join("postgres");
        std::fs::create_dir_all(&home).expect("create the postgres directory");
        if root() {
            let mut chown = Command::new("chown");
            chown.arg("-R").arg("postgres:").arg(&home);
            run(chown, "chown");
            // Let `postgres` reach its directory inside the test's (0700) one.
            let mut chmod = Command::new("chmod");
            chmod.arg("o+x").arg(dir);
            run(chmod, "chmod");
        }
        let data = home.join("data");
        let mut initdb = postgres_command("initdb");
        initdb.arg("-D").arg(&data).args(["-U", "postgres", "--auth=trust", "-N", "-E", "UTF8"]);
        run(initdb, "initdb");
        let postgres = Postgres { data, port: free_port() };
        postgres.pg_ctl("start");
        postgres
    }

    /// The database URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Restarts the server (fast shutdown: open transactions are rolled back and every
    /// connection is closed, as in a failover).
    pub fn restart(&self) {
        self.pg_ctl("restart");
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.data.parent().expect("the cluster's directory").display()
        );
        let mut command = postgres_command("pg_ctl");
        command
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.data.parent().expect("the cluster's directory").join("server.log"))
            .args(["-w", "-m", "fast", "-o", &options, action]);
        run(command, &format!("pg_ctl {action}"));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut command = postgres_command("pg_ctl");
        command.arg("-D").arg(&self.data).args(["-w", "-m", "immediate", "stop"]);
        let _ = command.stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// A `redis-server` of this test's own that keeps nothing on disk: a restart starts empty.
pub struct Redis {
    port: u16,
    dir: PathBuf,
    process: Process,
}

impl Redis {
    /// Starts it.
    pub fn start(dir: &Path) -> Redis {
        let mut redis = Redis { port: free_port(), dir: dir.to_owned(), process: Process::default() };
        redis.restart();
        redis
    }

    /// The Redis URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it with SIGKILL: everything it held is gone.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        assert!(!self.process.running(), "redis-server is already running");
        let log = std::fs::File::create(self.dir.join(format!("redis-{}.log", self.port))).expect("redis log");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server)");
        self.process = Process(Some(child));
        let deadline = std::time::Instant::now() + PATIENCE;
        while !redis_answers(self.port) {
            assert!(std::time::Instant::now() < deadline, "redis-server did not answer on port {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn redis_answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let mut reply = [0u8; 5];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG"
}

/// How the orchestrator replicas of a test are configured.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    pub database_url: String,
    pub redis_url: String,
    pub lease_ttl_ms: u64,
    pub heartbeat_interval_ms: u64,
    /// More variables for every replica (telemetry, say).
    pub env: Vec<(String, String)>,
}

/// One `rivet-orchestrator` process.
pub struct Replica {
    pub addr: SocketAddr,
    process: Process,
}

impl Replica {
    /// Starts replica `name` and waits until it serves.
    pub async fn start(config: &ReplicaConfig, name: &str, dir: &Path) -> Replica {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let log = std::fs::File::create(dir.join(format!("orchestrator-{name}.log"))).expect("orchestrator log");
        let child = Command::new(orchestrator_binary())
            .env("RIVET_LISTEN", addr.to_string())
            .env("RIVET_DATABASE_URL", &config.database_url)
            .env("RIVET_REDIS_URL", &config.redis_url)
            .env("RIVET_REPLICA_ID", name)
            .env("RIVET_LEASE_TTL_MS", config.lease_ttl_ms.to_string())
            .env("RIVET_HEARTBEAT_INTERVAL_MS", config.heartbeat_interval_ms.to_string())
            .env("RUST_LOG", "info")
            .envs(config.env.iter().map(|(name, value)| (name, value)))
            .stdout(log.try_clone().expect("orchestrator log"))
            .stderr(log)
            .spawn()
            .expect("start rivet-orchestrator");
        let replica = Replica { addr, process: Process(Some(child)) };
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while replica.health("").await != Some(ServingStatus::Serving) {
            assert!(tokio::time::Instant::now() < deadline, "replica {name} did not start serving");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        replica
    }

    /// A channel to it.
    pub async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("an endpoint")
            .connect()
            .await
            .expect("connect to the replica")
    }

    /// The job service.
    pub async fn jobs(&self) -> JobServiceClient<Channel> {
        JobServiceClient::new(self.channel().await)
    }

    /// What the health service says of `service`; `None` when the replica does not answer.
    pub async fn health(&self, service: &str) -> Option<ServingStatus> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .ok()?
            .connect_timeout(Duration::from_secs(1))
            .connect()
            .await
            .ok()?;
        let request = HealthCheckRequest { service: service.to_owned() };
        let response = HealthClient::new(channel).check(request).await.ok()?;
        Some(response.into_inner().status())
    }

    /// Kills it with SIGKILL: no drain, no goodbye.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// The `rivet-orchestrator` binary, next to the runner's. `cargo nextest run --workspace`
/// (`just test`) builds every binary of the workspace first; `cargo nextest run -p
/// rivet-runner` does not build this one: run `cargo build -p rivet-orchestrator` before.
/// (The test does not build it itself: a cargo started from a test sees another
/// environment, reruns build scripts and rebuilds half the workspace every time.)
fn orchestrator_binary() -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_rivet-runner")).with_file_name("rivet-orchestrator");
    assert!(binary.exists(), "{} is missing: run `cargo build -p rivet-orchestrator` first", binary.display());
    binary
}

/// One `rivet-runner` process; SIGKILLed when dropped.
pub struct Runner {
    process: Process,
}

/// How a runner process is started.
pub struct RunnerConfig<'a> {
    pub orchestrator: SocketAddr,
    pub state_dir: &'a Path,
    pub executor: &'a rivet_runner::config::ExecutorConfig,
    pub log: PathBuf,
    /// More variables for the runner (telemetry, say).
    pub env: Vec<(String, String)>,
}

impl Runner {
    /// Starts it, configured through its environment.
    pub fn start(config: &RunnerConfig<'_>) -> Runner {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&config.log).expect("runner log");
        let child = Command::new(env!("CARGO_BIN_EXE_rivet-runner"))
            .env("RIVET_RUNNER_ORCHESTRATOR_URL", format!("http://{}", config.orchestrator))
            .env("RIVET_RUNNER_STATE_DIR", config.state_dir)
            .env("RIVET_RUNNER_RECONNECT_MIN_MS", "50")
            .env("RIVET_RUNNER_RECONNECT_MAX_MS", "500")
            .env("RIVET_RUNNER_EXECUTOR__PODMAN_SOCKET", &config.executor.podman_socket)
            .env("RIVET_RUNNER_EXECUTOR__WORKSPACE_ROOT", &config.executor.workspace_root)
            .env("RIVET_RUNNER_EXECUTOR__INSTANCE", format!("\"{}\"", config.executor.instance))
            .env("RIVET_RUNNER_EXECUTOR__CANCEL_GRACE_SECS", "1")
            .env("RUST_LOG", "info")
            .envs(config.env.iter().map(|(name, value)| (name, value)))
            .stdout(log.try_clone().expect("runner log"))
            .stderr(log)
            .spawn()
            .expect("start rivet-runner");
        Runner { process: Process(Some(child)) }
    }

    /// Kills it with SIGKILL; its watcher outlives it.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// The job's record, read from `replica`'s API.
pub async fn job(jobs: &mut JobServiceClient<Channel>, id: &str) -> pb::Job {
    jobs.get_job(pb::GetJobRequest { job_id: id.to_owned() })
        .await
        .expect("get the job")
        .into_inner()
        .job
        .expect("a job")
}
