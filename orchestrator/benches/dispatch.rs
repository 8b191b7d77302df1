//! How fast the orchestrator dispatches jobs and ingests logs, and what an idle runner
//! connection costs it. Each scenario runs on PostgreSQL + Redis and on SQLite + memory,
//! over real gRPC on loopback, with the production defaults for leases and heartbeats.
//!
//! Run with `cargo bench -p rivet-orchestrator --bench dispatch` (or `just bench`), after
//! `source scripts/test-services.sh`. Arguments after `--`, or `RIVET_BENCH_ONLY`, pick
//! scenarios by name (`latency`, `throughput`, `logs`, `memory`); `RIVET_BENCH_BACKENDS`
//! picks backends (`postgres,sqlite`). Sizes, with their defaults:
//!
//! - latency: `RIVET_BENCH_LAUNCHES` (200), `RIVET_BENCH_WARMUP` (10);
//! - throughput: `RIVET_BENCH_RUNNERS` (100), `RIVET_BENCH_JOBS` (2000), `RIVET_BENCH_LAUNCHERS` (4);
//! - logs: `RIVET_BENCH_LOG_LINES` (200000), `RIVET_BENCH_LOG_BATCH` (500), `RIVET_BENCH_ACK_WINDOW` (8);
//! - memory: `RIVET_BENCH_IDLE_RUNNERS` (1000), `RIVET_BENCH_MUX_CHANNELS` (10), `RIVET_BENCH_IDLE_SECS` (5).
//!
//! `RIVET_BENCH_TELEMETRY=otlp` exports every span to an in-process OTLP sink (`off`, the
//! default, is a server without an endpoint): compare the two for the cost of export.
//!
//! The bench measures and prints; it asserts nothing about speed. The orchestrator and the
//! simulated runners share this process and its CPUs (but in the memory scenario, where the
//! orchestrator is a child process), so read the figures against the load printed with them.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use rivet_proto::v1::{self as pb, connect_request, connect_response};
use tokio::sync::Notify;
use tokio::time::Instant;

use support::measure::{Percentiles, load_context, millis, rate, selected, size, table, thousands};
use support::process::{OrchestratorProcess, Transactions};
use support::{Api, Backend, PATIENCE, Server, SimRunner, channel};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let telemetry = support::otlp::BenchTelemetry::install().await;
    println!("rivet-orchestrator dispatch benchmarks; at the start: {}", load_context());
    let backends = support::selected_backends();
    if selected("latency") {
        latency(&backends).await;
    }
    if selected("throughput") {
        throughput(&backends).await;
    }
    if selected("logs") {
        logs(&backends).await;
    }
    if selected("memory") {
        memory(&backends).await;
    }
    println!("\nat the end: {}", load_context());
    if let Some(spans) = telemetry.exported() {
        println!("spans exported over OTLP before shutdown: {spans}");
    }
    telemetry.telemetry.shutdown().await;
}

/// Launch-to-assignment latency with one idle runner: jobs are launched one at a time; the
/// clock runs from just before `LaunchJob` until the runner holds the `AssignJob`. The runner
/// then accepts and finishes the job, and the next launch waits for the `JobClosed`, so the
/// runner is idle again.
async fn latency(backends: &[Backend]) {
    let (warmup, launches) = (size("RIVET_BENCH_WARMUP", 10), size("RIVET_BENCH_LAUNCHES", 200));
    let mut rows = Vec::new();
    for &backend in backends {
        let server = Server::start(backend).await;
        let mut api = Api::connect(server.addr).await;
        api.create("latency").await;
        let mut runner = SimRunner::connect(channel(server.addr).await, 1).await;
        let (mut to_assign, mut rpc, mut to_close) = (Vec::new(), Vec::new(), Vec::new());
        for index in 0..warmup + launches {
            let start = Instant::now();
            let launch = async {
                api.launch("latency").await;
                start.elapsed()
            };
            let assigned = async {
                let assign = runner.assignment().await;
                (assign, start.elapsed())
            };
            let (launched, (assign, assigned)) = tokio::join!(launch, assigned);
            let finishing = Instant::now();
            runner.accept(&assign).await;
            runner.finish(&assign, assign.first_sequence - 1).await;
            runner.closed(&assign).await;
            if index >= warmup {
                to_assign.push(assigned);
                rpc.push(launched);
                to_close.push(finishing.elapsed());
            }
        }
        for (what, samples) in
            [("launch → AssignJob", &to_assign), ("LaunchJob RPC", &rpc), ("accept+finish → JobClosed", &to_close)]
        {
            let mut row = vec![format!("{} {what}", backend.label())];
            row.extend(Percentiles::of(samples).cells());
            rows.push(row);
        }
    }
    table(
        &format!(
            "Launch-to-assignment latency, one idle runner, {launches} sequential launches after {warmup} warm-up"
        ),
        &["backend / interval", "n", "p50", "p90", "p99", "max", "mean"],
        &rows,
    );
}

/// Dispatch throughput: `RIVET_BENCH_RUNNERS` simulated runners (capacity 1 and 2 in
/// turn, each on its own connection) accept and finish every job at once, while
/// `RIVET_BENCH_LAUNCHERS` clients launch `RIVET_BENCH_JOBS` jobs. The clock runs from the
/// first launch until the last job is closed (its finish stored).
async fn throughput(backends: &[Backend]) {
    let runners = size("RIVET_BENCH_RUNNERS", 100);
    let jobs = size("RIVET_BENCH_JOBS", 2_000);
    let launchers = size("RIVET_BENCH_LAUNCHERS", 4).max(1);
    let mut rows = Vec::new();
    for &backend in backends {
        let server = Server::start(backend).await;
        let mut api = Api::connect(server.addr).await;
        api.create("burst").await;
        let closed = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        let mut slots = 0;
        for index in 0..runners {
            let capacity = 1 + (index % 2) as u32;
            slots += capacity;
            let mut runner = SimRunner::connect(channel(server.addr).await, capacity).await;
            let (closed, done) = (closed.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let mut mine = 0usize;
                while let Some(body) = runner.next().await {
                    match body {
                        connect_response::Body::AssignJob(assign) => {
                            runner.accept(&assign).await;
                            runner.finish(&assign, assign.first_sequence - 1).await;
                        }
                        connect_response::Body::JobClosed(_) => {
                            mine += 1;
                            if closed.fetch_add(1, Ordering::SeqCst) + 1 == jobs {
                                done.notify_one();
                                return mine;
                            }
                        }
                        _ => {}
                    }
                }
                mine
            }));
        }
        let start = Instant::now();
        let mut launching = Vec::new();
        for launcher in 0..launchers {
            let count = jobs / launchers + usize::from(launcher < jobs % launchers);
            let mut api = Api::connect(server.addr).await;
            launching.push(tokio::spawn(async move {
                for _ in 0..count {
                    api.launch("burst").await;
                }
                start.elapsed()
            }));
        }
        let mut launched = Duration::ZERO;
        for task in launching {
            launched = launched.max(task.await.expect("launcher"));
        }
        tokio::time::timeout(PATIENCE, done.notified()).await.expect("every job closes");
        let elapsed = start.elapsed();
        let mut per_runner = Vec::new();
        for task in tasks {
            // Runners that saw the last close return at once; the others wait for messages.
            task.abort();
            if let Ok(count) = task.await {
                per_runner.push(count);
            }
        }
        let closed = closed.load(Ordering::SeqCst);
        rows.push(vec![
            backend.label().to_owned(),
            format!("{runners} ({slots} slots)"),
            jobs.to_string(),
            millis(launched),
            rate(jobs as f64, launched),
            millis(elapsed),
            rate(closed as f64, elapsed),
        ]);
    }
    table(
        &format!("Dispatch throughput: {jobs} jobs launched by {launchers} concurrent clients, runners finish at once"),
        &["backend", "runners", "jobs", "all launched", "launches/s", "first launch → last closed", "jobs/s"],
        &rows,
    );
}

/// Log ingest: one runner streams `RIVET_BENCH_LOG_LINES` lines in batches of
/// `RIVET_BENCH_LOG_BATCH`, keeping at most `RIVET_BENCH_ACK_WINDOW` batches unacknowledged;
/// the clock runs from the first batch until the last line is acknowledged (stored), and,
/// with a follower attached, until the follower holds the last line.
async fn logs(backends: &[Backend]) {
    let lines = size("RIVET_BENCH_LOG_LINES", 200_000) as u64;
    let batch = size("RIVET_BENCH_LOG_BATCH", 500).max(1) as u64;
    let window = size("RIVET_BENCH_ACK_WINDOW", 8).max(1) as u64;
    let mut rows = Vec::new();
    for &backend in backends {
        for follow in [false, true] {
            let run = log_run(backend, lines, batch, window, follow).await;
            let bytes_per_line = run.text_bytes as f64 / lines as f64;
            rows.push(vec![
                backend.label().to_owned(),
                if follow { "1".to_owned() } else { "0".to_owned() },
                millis(run.acked),
                rate(lines as f64, run.acked),
                format!("{:.1}", lines as f64 * bytes_per_line / run.acked.as_secs_f64() / (1 << 20) as f64),
                run.followed.map_or("-".to_owned(), millis),
                run.followed.map_or("-".to_owned(), |followed| rate(lines as f64, followed)),
                run.messages.map_or("-".to_owned(), |messages| thousands(messages as f64)),
            ]);
        }
    }
    table(
        &format!(
            "Log ingest end to end: {} lines (~{} bytes of text each) in batches of {batch}, {window} batches in flight",
            thousands(lines as f64),
            LINE_BYTES
        ),
        &[
            "backend",
            "followers",
            "last ack",
            "lines/s stored",
            "MiB/s",
            "follower has last",
            "lines/s followed",
            "follower msgs",
        ],
        &rows,
    );
}

/// The length of a benchmark log line's text, roughly.
const LINE_BYTES: usize = 72;

struct LogRun {
    acked: Duration,
    followed: Option<Duration>,
    messages: Option<usize>,
    text_bytes: usize,
}

async fn log_run(backend: Backend, lines: u64, batch: u64, window: u64, follow: bool) -> LogRun {
    let server = Server::start(backend).await;
    let mut api = Api::connect(server.addr).await;
    api.create("chatty").await;
    let mut runner = SimRunner::connect(channel(server.addr).await, 1).await;
    let job = api.launch("chatty").await;
    let assign = runner.assignment().await;
    runner.accept(&assign).await;
    let first = assign.first_sequence;
    let last = first + lines - 1;
    // Built before the clock starts, so that it measures the orchestrator, not the encoding.
    let mut text_bytes = 0;
    let batches: Vec<pb::LogBatch> = (first..=last)
        .collect::<Vec<_>>()
        .chunks(batch as usize)
        .map(|chunk| pb::LogBatch {
            assignment: assign.assignment.clone(),
            lines: chunk
                .iter()
                .map(|&sequence| {
                    let text = format!(
                        "{sequence:>8} | compiling unit {:>3} of the benchmark workload ... ok",
                        sequence % 997
                    );
                    text_bytes += text.len();
                    pb::LogLine {
                        sequence,
                        time: Some(prost_types::Timestamp { seconds: 1_800_000_000, nanos: 0 }),
                        level: pb::LogLevel::Info as i32,
                        stage: "build".to_owned(),
                        text,
                        attempt: 0,
                    }
                })
                .collect(),
        })
        .collect();
    let follower = if follow {
        // The call returns once the follower is subscribed, before the first batch goes out.
        let mut stream = api.follow(&job).await;
        Some(tokio::spawn(async move {
            let (mut messages, mut next) = (0usize, first);
            while let Some(response) =
                tokio::time::timeout(PATIENCE, stream.next()).await.expect("the follower stalled")
            {
                let response = response.expect("log stream");
                messages += 1;
                for line in response.lines {
                    assert_eq!(line.sequence, next, "the follower saw a gap or a duplicate");
                    next += 1;
                }
                if next > last {
                    return (Instant::now(), messages);
                }
            }
            panic!("the log stream ended at line {next} of {last}");
        }))
    } else {
        None
    };
    let start = Instant::now();
    let mut acked = first - 1;
    let mut sent = first - 1;
    for message in batches {
        while sent - acked >= window * batch {
            acked = acked.max(ack(&mut runner).await);
        }
        sent = message.lines.last().map_or(sent, |line| line.sequence);
        runner.send(connect_request::Body::LogBatch(message)).await;
    }
    while acked < last {
        acked = acked.max(ack(&mut runner).await);
    }
    let acked = start.elapsed();
    let (followed, messages) = match follower {
        Some(task) => {
            let (at, messages) = task.await.expect("follower");
            (Some(at.saturating_duration_since(start)), Some(messages))
        }
        None => (None, None),
    };
    runner.finish(&assign, last).await;
    runner.closed(&assign).await;
    LogRun { acked, followed, messages, text_bytes }
}

/// The sequence of the next log ack.
async fn ack(runner: &mut SimRunner) -> u64 {
    loop {
        match runner.next().await {
            Some(connect_response::Body::LogAck(ack)) => return ack.sequence,
            Some(connect_response::Body::Refused(refused)) => panic!("log batch refused: {}", refused.reason),
            Some(_) => {}
            None => panic!("the runner stream ended while waiting for an ack"),
        }
    }
}

/// Memory per idle runner connection: the `rivet-orchestrator` binary runs as a child
/// process; `RIVET_BENCH_IDLE_RUNNERS` simulated runners connect from this process (hello,
/// then heartbeats every 3 s, the default) and the child's `VmRSS` is read before and after.
/// Each runner has a TCP connection of its own, as real runners do; with
/// `RIVET_BENCH_MUX_CHANNELS` > 0 the runners are also multiplexed as HTTP/2 streams over
/// that many connections (at most 200 streams each: hyper's default limit), which leaves
/// out the cost of the connections. Then, with every runner idle, the child's CPU use and
/// (on PostgreSQL) the transactions it runs per second are read over `RIVET_BENCH_IDLE_SECS`.
async fn memory(backends: &[Backend]) {
    let count = size("RIVET_BENCH_IDLE_RUNNERS", 1_000).max(1);
    let mux = size("RIVET_BENCH_MUX_CHANNELS", 10);
    let idle = Duration::from_secs(size("RIVET_BENCH_IDLE_SECS", 5) as u64);
    let mut rows = Vec::new();
    let mut samples = Vec::new();
    for &backend in backends {
        let mut layouts = vec![None];
        if mux > 0 && backend == Backend::Postgres {
            layouts.push(Some(mux));
        }
        for channels in layouts {
            let run = idle_connections(backend, count, channels, idle).await;
            let layout = match channels {
                None => format!("{count} connections"),
                Some(c) => format!("{c} connections × {} streams", count.div_ceil(c)),
            };
            let per_runner = (run.rss.last().map_or(0, |s| s.1) as f64 - run.rss[0].1 as f64) / count as f64;
            rows.push(vec![
                backend.label().to_owned(),
                layout.clone(),
                format!("{:.1}", run.rss[0].1 as f64 / 1024.0),
                format!("{:.1}", run.rss.last().map_or(0, |s| s.1) as f64 / 1024.0),
                format!("{per_runner:.1}"),
                rate(count as f64, run.connecting),
                format!("{:.1} %", run.idle_cpu * 100.0),
                run.idle_transactions.map_or("-".to_owned(), |t| format!("{t:.0}")),
            ]);
            let steps: Vec<String> =
                run.rss.iter().map(|(n, kib)| format!("{n}: {:.1} MiB", *kib as f64 / 1024.0)).collect();
            samples.push(format!("  {} / {layout}: {}", backend.label(), steps.join(", ")));
        }
    }
    table(
        &format!("Idle runner connections: {count} simulated runners against a rivet-orchestrator process"),
        &[
            "backend",
            "client side",
            "RSS before MiB",
            "RSS after MiB",
            "KiB per runner",
            "connects/s",
            "idle CPU",
            "idle DB xact/s",
        ],
        &rows,
    );
    println!("RSS as runners connected:\n{}", samples.join("\n"));
}

struct IdleRun {
    /// (connected runners, VmRSS in KiB), from none to all.
    rss: Vec<(usize, u64)>,
    connecting: Duration,
    idle_cpu: f64,
    idle_transactions: Option<f64>,
}

async fn idle_connections(backend: Backend, count: usize, channels: Option<usize>, idle: Duration) -> IdleRun {
    let database = rivet_orchestrator::testing::fresh_database(backend).await;
    let url = database.url.clone();
    let redis = (backend == Backend::Postgres).then(support::redis_url);
    let process = OrchestratorProcess::spawn(&url, redis.as_deref()).await;
    let transactions = match database.postgres_name() {
        Some(name) => Some(Transactions::of(name).await),
        None => None,
    };
    // One runner first and away again, so that one-time allocations (pools, caches) are in
    // the baseline rather than charged to the runners.
    drop(SimRunner::connect(channel(process.addr).await, 1).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut rss = vec![(0, process.rss_kib())];
    let shared = match channels {
        Some(c) => Some(futures_util::future::join_all((0..c).map(|_| channel(process.addr))).await),
        None => None,
    };
    let mut runners = Vec::with_capacity(count);
    let mut connecting = Duration::ZERO;
    for half in 1..=2 {
        let target = count * half / 2;
        let start = Instant::now();
        let addr = process.addr;
        let opened: Vec<SimRunner> = futures_util::stream::iter(runners.len()..target)
            .map(|index| {
                let shared = shared.as_ref().map(|pool| pool[index % pool.len()].clone());
                async move {
                    let channel = match shared {
                        Some(channel) => channel,
                        None => channel(addr).await,
                    };
                    SimRunner::connect(channel, 1).await
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        runners.extend(opened);
        connecting += start.elapsed();
        // Let every new runner send a heartbeat (every 3 s by default) before reading.
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        rss.push((runners.len(), process.rss_kib()));
    }
    let cpu = process.cpu_time();
    let xacts = match &transactions {
        Some(t) => Some(t.count().await),
        None => None,
    };
    let idle_start = Instant::now();
    tokio::time::sleep(idle).await;
    let idle_cpu = (process.cpu_time() - cpu).as_secs_f64() / idle_start.elapsed().as_secs_f64();
    let idle_transactions = match (&transactions, xacts) {
        (Some(t), Some(before)) => Some((t.count().await - before) as f64 / idle_start.elapsed().as_secs_f64()),
        _ => None,
    };
    drop(runners);
    drop(process);
    drop(database);
    IdleRun { rss, connecting, idle_cpu, idle_transactions }
}
