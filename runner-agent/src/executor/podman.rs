//! Running one process in one container through the Podman API, pulling images when they
//! are missing, and removing what a job or a crashed runner left behind.
//!
//! Every `process.run` is its own container, `podman run`-style: create it with the argv as
//! its command (the image's entrypoint is cleared, nothing goes through a shell), attach to
//! its output, start it, stream the output into the log, read the exit status, remove it.
//! See the executor's module documentation for why.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use podman_api::Podman;
use podman_api::conn::TtyChunk;
use podman_api::models::{ContainerMount, IdMap, IdMappingOptions, LinuxResources, Namespace};
use podman_api::opts::{
    ContainerAttachOpts, ContainerCreateOpts, ContainerDeleteOpts, ContainerListFilter, ContainerListOpts,
    ContainerStopOpts, ImageVolumeMode, PullOpts, PullPolicy,
};
use rivet_core::image::ImageReference;
use rivet_core::model::StageNetwork;
use rivet_core::{FailureReason, LogLevel};

use super::context::JobContext;
use super::error::{Error, podman_message};
use super::mask::{HOLD_QUIET, LineHold};
use super::output::StreamLines;
use super::workspace::{self, CONTAINER_WORKSPACE};
use crate::config::{CONTAINER_ID_COUNT, ExecutorConfig};
use crate::metrics::{self, PodmanCall};

/// A process to run, checked and resolved by `process.run`.
#[derive(Debug, Clone)]
pub(crate) struct ProcessRequest {
    pub cmd: String,
    pub args: Vec<String>,
    /// The working directory inside the container, under `/workspace`.
    pub cwd: String,
    pub env: BTreeMap<String, String>,
    pub capture_stdout: bool,
    pub capture_stderr: bool,
    pub stdout_level: LogLevel,
    pub stderr_level: LogLevel,
    /// The image to run in: the top of the container stack when `process.run` was called.
    pub image: String,
    /// The stage its output is logged under.
    pub stage: String,
}

/// What a finished process gave back.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProcessResult {
    pub exit_code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Makes sure `image` is on the host, pulling it when it is not (pull policy "if not
/// present"). Each image is checked once per job.
pub(crate) async fn ensure_image(ctx: Arc<JobContext>, image: String, stage: String) -> Result<(), Error> {
    if ctx.image_known(&image) {
        return Ok(());
    }
    check_reference(&image)?;
    let images = ctx.podman.images();
    let exists = images.get(image.as_str()).exists().await.map_err(Error::podman("look up an image"))?;
    if !exists {
        ctx.log_to(&stage, LogLevel::Info, &format!("pulling image `{image}`"));
        let pull = async {
            let opts = PullOpts::builder().reference(&image).policy(PullPolicy::Missing).quiet(true).build();
            let mut reports = images.pull(&opts);
            let mut pulled = false;
            while let Some(report) = reports.next().await {
                let report = report.map_err(|err| pull_error(&image, podman_message(&err)))?;
                if let Some(message) = report.error.filter(|message| !message.is_empty()) {
                    return Err(pull_error(&image, message));
                }
                pulled |= report.id.is_some() || report.images.is_some_and(|images| !images.is_empty());
            }
            if pulled { Ok(()) } else { Err(pull_error(&image, "the registry sent no image".to_owned())) }
        };
        let started = std::time::Instant::now();
        tokio::select! {
            result = pull => result?,
            () = ctx.stop.cancelled() => return Err(stopped(&ctx)),
        }
        metrics::get().podman_call(PodmanCall::Pull, started.elapsed());
    }
    ctx.remember_image(&image);
    Ok(())
}

fn pull_error(image: &str, message: String) -> Error {
    Error::ImagePull { image: image.to_owned(), message }
}

/// Refuses references that are not image references (by the grammar validation uses
/// too, `rivet_core::image`): they end up in API paths.
fn check_reference(image: &str) -> Result<(), Error> {
    ImageReference::parse(image)
        .map(|_| ())
        .map_err(|err| pull_error(image, format!("not a valid image reference: {err}")))
}

fn stopped(ctx: &JobContext) -> Error {
    Error::Stopped(ctx.stop_reason().unwrap_or(FailureReason::Cancelled))
}

/// Runs one process to its end, logging its output live. When the job is asked to stop,
/// the process gets SIGTERM, then SIGKILL after the grace period. Its container is removed
/// in the background whatever happens.
pub(crate) async fn run_process(ctx: Arc<JobContext>, request: ProcessRequest) -> Result<ProcessResult, Error> {
    if ctx.stop.is_cancelled() {
        return Err(stopped(&ctx));
    }
    let started = std::time::Instant::now();
    let created = ctx
        .podman
        .containers()
        .create(&create_opts(&ctx, &request))
        .await
        .map_err(Error::podman("create a container"))?;
    metrics::get().podman_call(PodmanCall::Create, started.elapsed());
    let _remove = RemoveOnDrop { ctx: ctx.clone(), id: created.id.clone() };
    let container = ctx.podman.containers().get(created.id.as_str());

    // Attach before starting, so that no output is missed.
    let attach = ContainerAttachOpts::builder().stdout(true).stderr(true).build();
    // Attaching already prepares the container (`runc create`), so a program that does not
    // exist can fail here as well as at start.
    let (reader, _writer) =
        container.attach(&attach).await.map_err(|err| start_error(&request, err, "attach to a container"))?.split();

    let run = async {
        let started = std::time::Instant::now();
        container.start(None).await.map_err(|err| start_error(&request, err, "start a container"))?;
        metrics::get().podman_call(PodmanCall::Start, started.elapsed());
        let (stdout, stderr) = stream_output(&ctx, &request, reader).await?;
        let state = wait_for_exit(&container).await?;
        if state.oom_killed {
            return Err(Error::Oom {
                cmd: request.cmd.clone(),
                limit_mib: ctx.config.container_memory_bytes.unwrap_or(0) / (1024 * 1024),
            });
        }
        if state.exit_code == 137
            && let Some(limit) = ctx.config.container_memory_bytes
        {
            // Podman reports OOM kills only where conmon sees the cgroup's OOM event (not on
            // every cgroup v1 host); a SIGKILL the runner did not send is worth a hint.
            let hint = format!(
                "`{}` was killed by SIGKILL; if it ran out of memory, note the container limit of {} MiB",
                request.cmd,
                limit / (1024 * 1024)
            );
            ctx.log_to(&request.stage, LogLevel::Warning, &hint);
        }
        Ok(ProcessResult { exit_code: state.exit_code, stdout, stderr })
    };
    tokio::select! {
        result = run => result,
        () = ctx.stop.cancelled() => {
            let grace = usize::try_from(ctx.config.cancel_grace_secs).unwrap_or(usize::MAX);
            if let Err(err) = container.stop(&ContainerStopOpts::builder().timeout(grace).build()).await {
                tracing::warn!(container = %created.id, error = %err, "failed to stop a container");
            }
            Err(stopped(&ctx))
        }
    }
}

/// Tells the runtime refusing to start the process (the script's fault: a missing
/// program, a directory as the program...) from Podman failing.
fn start_error(request: &ProcessRequest, err: podman_api::Error, action: &'static str) -> Error {
    let message = podman_message(&err);
    let Some(at) = message.find("OCI runtime") else {
        return Error::Podman { action, source: err };
    };
    // "… unable to start container process: exec: "x": executable file not found in $PATH:
    // OCI runtime attempted to invoke a command that was not found" → the part about `x`.
    const START: &str = "unable to start container process: ";
    let head = &message[..at];
    let reason = match head.rfind(START) {
        Some(from) => &head[from + START.len()..],
        None => head,
    };
    Error::Start {
        cmd: request.cmd.clone(),
        image: request.image.clone(),
        message: reason.trim().trim_end_matches(':').to_owned(),
    }
}

/// Logs the process's output as it arrives and returns what was captured.
async fn stream_output(
    ctx: &JobContext,
    request: &ProcessRequest,
    reader: impl futures_util::Stream<Item = Result<TtyChunk, podman_api::conn::Error>>,
) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let limit = ctx.config.max_captured_output_bytes;
    let max_line = ctx.config.max_log_line_bytes;
    let masker = ctx.masker();
    let mut stdout = StreamLines::new(max_line, request.capture_stdout.then_some(limit)).with_masker(masker.clone());
    let mut stderr = StreamLines::new(max_line, request.capture_stderr.then_some(limit)).with_masker(masker.clone());
    let out = |line: &str| ctx.log_to(&request.stage, request.stdout_level, line);
    let err = |line: &str| ctx.log_to(&request.stage, request.stderr_level, line);
    // A secret printed across lines is masked over each stream's lines (see `mask`).
    let (mut out_held, mut err_held) = (LineHold::new(masker), LineHold::new(masker));

    let mut reader = std::pin::pin!(reader);
    loop {
        let holding = out_held.holding() || err_held.holding();
        let chunk = tokio::select! {
            chunk = reader.next() => chunk,
            () = tokio::time::sleep(HOLD_QUIET), if holding => {
                out_held.flush(out);
                err_held.flush(err);
                continue;
            }
        };
        let Some(chunk) = chunk else { break };
        match chunk.map_err(|err| Error::Podman { action: "read process output", source: err.into() })? {
            TtyChunk::StdOut(bytes) => stdout.push(&bytes, |line| out_held.push(line, out)),
            TtyChunk::StdErr(bytes) => stderr.push(&bytes, |line| err_held.push(line, err)),
            TtyChunk::StdIn(_) => {}
        }
    }
    stdout.finish(|line| out_held.push(line, out));
    stderr.finish(|line| err_held.push(line, err));
    out_held.flush(out);
    err_held.flush(err);

    let mut captured = Vec::with_capacity(2);
    for (name, stream) in [("stdout", stdout), ("stderr", stderr)] {
        let (bytes, truncated) = stream.captured();
        if truncated {
            ctx.log_to(
                &request.stage,
                LogLevel::Warning,
                &format!("`{}`: captured {name} stops at {limit} bytes; the rest was only logged", request.cmd),
            );
        }
        captured.push(bytes);
    }
    let stderr = captured.pop().unwrap_or_default();
    let stdout = captured.pop().unwrap_or_default();
    Ok((stdout, stderr))
}

struct ExitState {
    exit_code: i64,
    oom_killed: bool,
}

/// Waits for the container to stop. Podman's wait endpoint reports only after the
/// container is cleaned up, a quarter of a second later; polling the state is faster.
async fn wait_for_exit(container: &podman_api::api::Container) -> Result<ExitState, Error> {
    let mut delay = Duration::from_millis(5);
    loop {
        let inspect = container.inspect().await.map_err(Error::podman("inspect a container"))?;
        if let Some(state) = inspect.state {
            let status = state.status.as_deref().unwrap_or_default();
            if state.running != Some(true) && matches!(status, "stopped" | "exited" | "dead") {
                return Ok(ExitState {
                    exit_code: i64::from(state.exit_code.unwrap_or(-1)),
                    oom_killed: state.oom_killed.unwrap_or(false),
                });
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// Removes a process's container in the background when its run ends, however it ends.
struct RemoveOnDrop {
    ctx: Arc<JobContext>,
    id: String,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let podman = self.ctx.podman.clone();
        let id = std::mem::take(&mut self.id);
        self.ctx.tasks.spawn_on(
            async move {
                let started = std::time::Instant::now();
                match podman.containers().get(id.as_str()).delete(&force_delete()).await {
                    Ok(_) => metrics::get().podman_call(PodmanCall::Remove, started.elapsed()),
                    Err(err) => tracing::warn!(container = %id, error = %err, "failed to remove a container"),
                }
            },
            &self.ctx.handle,
        );
    }
}

fn force_delete() -> ContainerDeleteOpts {
    ContainerDeleteOpts::builder().force(true).volumes(true).build()
}

/// The container of one process: the workspace is its only mount, it runs without
/// privileges and with few capabilities, within the configured limits, and carries the
/// job's labels.
fn create_opts(ctx: &JobContext, request: &ProcessRequest) -> ContainerCreateOpts {
    let config = &ctx.config;
    let workspace = ContainerMount {
        destination: Some(CONTAINER_WORKSPACE.to_owned()),
        // No setuid binary or device node a job writes there works from the mount.
        options: Some(["rw", "nosuid", "nodev"].map(str::to_owned).to_vec()),
        source: Some(ctx.workspace.display().to_string()),
        _type: Some("bind".to_owned()),
        uid_mappings: None,
        gid_mappings: None,
    };
    let command = std::iter::once(request.cmd.clone()).chain(request.args.iter().cloned());
    let mut builder = ContainerCreateOpts::builder()
        .name(ctx.next_container_name())
        .image(&request.image)
        // An empty entrypoint makes the command the whole argv (podman's convention).
        .entrypoint([""])
        .command(command)
        .env(request.env.iter().map(|(key, value)| (key.as_str(), value.as_str())))
        .work_dir(&request.cwd)
        .mounts([workspace])
        .image_volume_mode(ImageVolumeMode::Tmpfs)
        // No init process: with one (catatonit), a program that does not exist becomes an
        // exit status of 1 instead of an error at start. The cost is that a program that
        // ignores SIGTERM as PID 1 is stopped by SIGKILL after the grace period.
        .labels(ctx.labels())
        .privileged(false)
        .no_new_privilages(true)
        .drop_capabilities(["ALL"])
        .add_capabilities(config.container_capabilities.iter().cloned())
        .stop_timeout(config.cancel_grace_secs)
        .terminal(false)
        .stdin(false);
    if let Some(limits) = resource_limits(config) {
        builder = builder.resource_limits(limits);
    }
    if let Some(base) = workspace::mapped_root(config) {
        // A private user namespace with these mappings (what `podman run --uidmap` asks for).
        let private = Namespace { nsmode: Some("private".to_owned()), value: None };
        builder = builder.user_namespace(private).id_mappings(user_namespace(base));
    }
    if ctx.current_network() == StageNetwork::None {
        builder = builder.net_namespace(Namespace { nsmode: Some("none".to_owned()), value: None });
    }
    builder.build()
}

/// Root in the container is host id `base`, and so on for 65536 ids: nothing a job runs is
/// root on the host.
fn user_namespace(base: u32) -> IdMappingOptions {
    let map = || {
        vec![IdMap { container_id: Some(0), host_id: Some(i64::from(base)), size: Some(i64::from(CONTAINER_ID_COUNT)) }]
    };
    IdMappingOptions {
        uid_map: Some(map()),
        gid_map: Some(map()),
        auto_user_ns: Some(false),
        auto_user_ns_opts: None,
        host_gid_mapping: Some(false),
        host_uid_mapping: Some(false),
    }
}

fn resource_limits(config: &ExecutorConfig) -> Option<LinuxResources> {
    const PERIOD: u64 = 100_000;
    let mut limits = serde_json::Map::new();
    if let Some(bytes) = config.container_memory_bytes {
        limits.insert("memory".into(), serde_json::json!({ "limit": bytes }));
    }
    if let Some(nano_cpus) = config.container_nano_cpus {
        let quota = u128::from(nano_cpus) * u128::from(PERIOD) / 1_000_000_000;
        limits.insert("cpu".into(), serde_json::json!({ "period": PERIOD, "quota": quota.max(1000) as u64 }));
    }
    if let Some(pids) = config.container_pids_limit {
        limits.insert("pids".into(), serde_json::json!({ "limit": pids }));
    }
    // Every field of LinuxResources is optional, so this map always decodes.
    serde_json::from_value(serde_json::Value::Object(limits)).ok()
}

/// Removes every container of one job attempt that is still there.
pub(crate) async fn remove_job_containers(ctx: &JobContext) -> Result<usize, Error> {
    let filters =
        ctx.labels().into_iter().map(|(key, value)| ContainerListFilter::LabelKeyVal(key, value)).collect::<Vec<_>>();
    remove_containers(&ctx.podman, filters).await
}

/// Removes every container that carries all `filters`.
pub(crate) async fn remove_containers(podman: &Podman, filters: Vec<ContainerListFilter>) -> Result<usize, Error> {
    let opts = ContainerListOpts::builder().all(true).filter(filters).build();
    let containers = podman.containers().list(&opts).await.map_err(Error::podman("list containers"))?;
    let mut removed = 0;
    for id in containers.into_iter().filter_map(|container| container.id) {
        let mut busy = 0;
        loop {
            match podman.containers().get(id.as_str()).delete(&force_delete()).await {
                Ok(()) => removed += 1,
                // Removed meanwhile, e.g. by the job's own clean-up.
                Err(err) if podman_message(&err).contains("no such container") => {}
                // A container whose process was just killed (a runner killed mid-job) can
                // still hold its shared-memory mount for a moment; removing it then fails
                // with EBUSY. Wait a little and try again, a bounded number of times.
                Err(err) if podman_message(&err).contains("device or resource busy") && busy < REMOVE_BUSY_RETRIES => {
                    busy += 1;
                    tracing::debug!(container = %id, attempt = busy, "container still busy; retrying its removal");
                    tokio::time::sleep(REMOVE_BUSY_DELAY * busy).await;
                    continue;
                }
                Err(err) => return Err(Error::Podman { action: "remove a container", source: err }),
            }
            break;
        }
    }
    Ok(removed)
}

/// How many times removing a container that is still busy is retried.
const REMOVE_BUSY_RETRIES: u32 = 5;
/// The first wait before such a retry; each further one waits longer (3.75 s in all).
const REMOVE_BUSY_DELAY: std::time::Duration = std::time::Duration::from_millis(250);
