//! `JobService`: launch, get, list, cancel and watch jobs.

use std::pin::Pin;
use std::time::Duration;

use chrono::DateTime;
use futures_util::{Stream, StreamExt};
use rivet_core::JobOrigin;
use rivet_proto::v1::job_service_server::JobService;
use rivet_proto::v1::{
    self as pb, CancelJobRequest, CancelJobResponse, GetJobRequest, GetJobResponse, LaunchJobRequest,
    LaunchJobResponse, ListJobsRequest, ListJobsResponse, RerunJobRequest, RerunJobResponse, WatchJobRequest,
    WatchJobResponse,
};
use tonic::{Request, Response, Status};

use crate::api::page_size;
use crate::convert;
use crate::domain::access::Caller;
use crate::domain::coord::Topic;
use crate::domain::error::{Error, Result};
use crate::domain::orchestrator::{Launch, Orchestrator};
use crate::domain::store::{JobCursor, JobFilter, JobRecord};

/// How often a watcher re-reads its job when no event arrives (events are at most once).
const WATCH_POLL: Duration = Duration::from_secs(2);
/// Job snapshots that may wait for a slow watcher before the watch stops reading.
const WATCH_IN_FLIGHT: usize = 2;

/// The job service.
#[derive(Debug, Clone)]
pub struct Jobs {
    orchestrator: Orchestrator,
}

impl Jobs {
    /// Serves jobs of `orchestrator`.
    pub fn new(orchestrator: Orchestrator) -> Jobs {
        Jobs { orchestrator }
    }
}

/// A job with its stages and transitions, on the wire.
pub async fn job_proto(orchestrator: &Orchestrator, job: &JobRecord) -> Result<pb::Job> {
    let stages = orchestrator.store().stages(job.id).await?;
    let transitions = orchestrator.store().transitions(job.id).await?;
    Ok(convert::job_to_proto(job, &stages, &transitions))
}

fn encode_cursor(job: &JobRecord) -> String {
    format!("{}|{}", job.created_at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true), job.id)
}

fn decode_cursor(token: &str) -> Result<JobCursor> {
    let invalid = || Error::invalid("page_token", "is not a token from a previous page");
    let (time, id) = token.split_once('|').ok_or_else(invalid)?;
    let created_at = DateTime::parse_from_rfc3339(time).map_err(|_| invalid())?.to_utc();
    let id = uuid::Uuid::parse_str(id).map_err(|_| invalid())?;
    Ok(JobCursor { created_at, id })
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchJobResponse, Status>> + Send>>;

#[tonic::async_trait]
impl JobService for Jobs {
    async fn launch_job(&self, request: Request<LaunchJobRequest>) -> Result<Response<LaunchJobResponse>, Status> {
        let caller =
            request.extensions().get::<Caller>().filter(|caller| **caller != Caller::Open).map(Caller::describe);
        let request = request.into_inner();
        let launch = Launch {
            pipeline: request.pipeline,
            inputs: request.inputs.into_iter().collect(),
            idempotency_key: (!request.idempotency_key.is_empty()).then_some(request.idempotency_key),
            origin: JobOrigin::Api { caller },
        };
        let job = self.orchestrator.launch(launch).await?;
        tracing::info!(job = %job.id, pipeline = %job.pipeline_name, "job launched");
        Ok(Response::new(LaunchJobResponse { job: Some(job_proto(&self.orchestrator, &job).await?) }))
    }

    async fn get_job(&self, request: Request<GetJobRequest>) -> Result<Response<GetJobResponse>, Status> {
        let id = convert::id(&request.get_ref().job_id, "job_id")?;
        let job = self.orchestrator.job(id).await?;
        Ok(Response::new(GetJobResponse { job: Some(job_proto(&self.orchestrator, &job).await?) }))
    }

    async fn list_jobs(&self, request: Request<ListJobsRequest>) -> Result<Response<ListJobsResponse>, Status> {
        let request = request.into_inner();
        let limit = page_size(request.page_size)?;
        let pipeline_name = match request.pipeline.as_str() {
            "" => None,
            reference => Some(self.orchestrator.find_pipeline(reference, 0).await?.name),
        };
        let states = request
            .states
            .into_iter()
            .map(convert::job_state_from_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::from)?;
        let cursor = match request.page_token.as_str() {
            "" => None,
            token => Some(decode_cursor(token)?),
        };
        let filter = JobFilter { pipeline_name, states };
        let mut jobs =
            self.orchestrator.store().list_jobs(&filter, cursor.as_ref(), limit + 1).await.map_err(Error::from)?;
        let next_page_token = if jobs.len() as u64 > limit {
            jobs.truncate(limit as usize);
            jobs.last().map(encode_cursor).unwrap_or_default()
        } else {
            String::new()
        };
        let mut out = Vec::with_capacity(jobs.len());
        for job in &jobs {
            out.push(job_proto(&self.orchestrator, job).await?);
        }
        Ok(Response::new(ListJobsResponse { jobs: out, next_page_token }))
    }

    async fn cancel_job(&self, request: Request<CancelJobRequest>) -> Result<Response<CancelJobResponse>, Status> {
        let id = convert::id(&request.get_ref().job_id, "job_id")?;
        let job = self.orchestrator.cancel(id).await?;
        tracing::info!(job = %job.id, state = %job.state, "cancel requested");
        Ok(Response::new(CancelJobResponse { job: Some(job_proto(&self.orchestrator, &job).await?) }))
    }

    async fn rerun_job(&self, request: Request<RerunJobRequest>) -> Result<Response<RerunJobResponse>, Status> {
        let id = convert::id(&request.get_ref().job_id, "job_id")?;
        let job = self.orchestrator.rerun(id).await?;
        tracing::info!(job = %job.id, rerun_of = %id, "job rerun");
        Ok(Response::new(RerunJobResponse { job: Some(job_proto(&self.orchestrator, &job).await?) }))
    }

    type WatchJobStream = WatchStream;

    async fn watch_job(&self, request: Request<WatchJobRequest>) -> Result<Response<Self::WatchJobStream>, Status> {
        let id = convert::id(&request.get_ref().job_id, "job_id")?;
        let orchestrator = self.orchestrator.clone();
        // Subscribe before the first read, so no change between the two is missed.
        let mut events = orchestrator.coord().subscribe(&Topic::JobEvents(id)).await.map_err(Error::from)?;
        let first = orchestrator.job(id).await?;
        // A watcher needs only the latest state: few snapshots wait for a slow one.
        let stream = async_stream(WATCH_IN_FLIGHT, move |sender| async move {
            let mut last: Option<pb::Job> = None;
            let mut job = first;
            loop {
                let proto = job_proto(&orchestrator, &job).await?;
                if last.as_ref() != Some(&proto) {
                    if sender.send(Ok(WatchJobResponse { job: Some(proto.clone()) })).await.is_err() {
                        return Ok(());
                    }
                    last = Some(proto);
                }
                if job.state.is_terminal() {
                    return Ok(());
                }
                tokio::select! {
                    _ = events.next() => {}
                    _ = tokio::time::sleep(WATCH_POLL) => {}
                    _ = sender.closed() => return Ok(()),
                }
                job = orchestrator.job(id).await?;
            }
        });
        Ok(Response::new(stream))
    }
}

/// Runs `body` on a task that sends into a channel, and returns the channel as a stream;
/// an error from `body` ends the stream with that error's status. At most `capacity` items
/// wait for the client: `body` waits when the client reads slowly.
pub(crate) fn async_stream<T, F, Fut>(capacity: usize, body: F) -> Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(capacity);
    let error_sender = sender.clone();
    let task = body(sender);
    tokio::spawn(async move {
        if let Err(err) = task.await {
            let _ = error_sender.send(Err(err.into())).await;
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))
}
