//! `LogService`: replay a job's stored log from a sequence number, then follow it live
//! until the job ends. Live lines come through the coordinator's fan-out (from whichever
//! replica stored them); the store fills any gap, so a follower sees every line once, in
//! order, with no gap and no duplicate at the hand-over.
//!
//! Memory per follower is bounded whatever the job logs and however slowly the client
//! reads: the store is read a page at a time, bounded by lines and by bytes; responses are
//! cut to the same bounds; at most [`RESPONSES_IN_FLIGHT`] responses wait for the client;
//! and the live fan-out buffer of a follower that falls behind is dropped by the
//! coordinator, after which the follower reads the store again from its last sent line.

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use rivet_core::LogLine;
use rivet_proto::v1::log_service_server::LogService;
use rivet_proto::v1::{StreamLogsRequest, StreamLogsResponse};
use tokio::sync::mpsc::Sender;
use tonic::{Request, Response, Status};

use crate::api::jobs::async_stream;
use crate::convert;
use crate::domain::bounds;
use crate::domain::coord::Topic;
use crate::domain::error::{Error, Result};
use crate::domain::orchestrator::Orchestrator;

/// Lines per read from the store, and per response message.
const PAGE_LINES: usize = 1_000;
/// Bytes of text and stage names per read from the store, and per response message: well
/// under the 4 MiB a gRPC client accepts by default. A longer single line (up to the
/// store's 64 KiB line cap) still goes, alone.
pub const PAGE_BYTES: usize = 1024 * 1024;
/// Responses that may wait for a slow client before the follower stops reading.
const RESPONSES_IN_FLIGHT: usize = 2;

/// The log service.
#[derive(Debug, Clone)]
pub struct Logs {
    orchestrator: Orchestrator,
}

impl Logs {
    /// Serves logs of `orchestrator`.
    pub fn new(orchestrator: Orchestrator) -> Logs {
        Logs { orchestrator }
    }
}

type Out = Sender<Result<StreamLogsResponse, Status>>;

/// Sends `lines` (all with sequence >= `next`, consecutive) in responses of at most
/// [`PAGE_LINES`] lines and [`PAGE_BYTES`] bytes; returns the next sequence, or `None` when
/// the client went away.
async fn send(out: &Out, lines: &[LogLine], mut next: u64) -> Option<u64> {
    let mut rest = lines;
    while !rest.is_empty() {
        let mut bytes = 0;
        let mut count = 0;
        for line in rest.iter().take(PAGE_LINES) {
            let size = bounds::log_line_bytes(line);
            if count > 0 && bytes + size > PAGE_BYTES {
                break;
            }
            bytes += size;
            count += 1;
        }
        let (page, after) = rest.split_at(count);
        let response = StreamLogsResponse { lines: page.iter().map(convert::log_line_to_proto).collect() };
        out.send(Ok(response)).await.ok()?;
        next = page.last().map_or(next, |line| line.sequence + 1);
        rest = after;
    }
    Some(next)
}

/// Sends everything stored from `next` on, a page at a time; returns the next sequence to
/// send.
async fn replay(orchestrator: &Orchestrator, job: uuid::Uuid, mut next: u64, out: &Out) -> Result<Option<u64>> {
    loop {
        let lines = orchestrator.store().read_logs(job, next, PAGE_LINES as u64, PAGE_BYTES as u64).await?;
        // A page can be short because of its byte bound: only an empty one ends the log.
        if lines.is_empty() {
            return Ok(Some(next));
        }
        match send(out, &lines, next).await {
            Some(after) => next = after,
            None => return Ok(None),
        }
    }
}

/// Subscribes to `topic`; while the coordinator cannot be reached, a stream that never
/// yields, so the follower reads the store every [`FOLLOW_POLL`] instead of failing.
async fn subscribe_or_poll(orchestrator: &Orchestrator, topic: Topic) -> BoxStream<'static, bytes::Bytes> {
    match orchestrator.coord().subscribe(&topic).await {
        Ok(stream) => stream,
        Err(err) => {
            tracing::warn!(topic = %topic.channel(), error = %err, "following from the store only: no live fan-out");
            futures_util::stream::pending().boxed()
        }
    }
}

#[tonic::async_trait]
impl LogService for Logs {
    type StreamLogsStream =
        std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<StreamLogsResponse, Status>> + Send>>;

    async fn stream_logs(
        &self,
        request: Request<StreamLogsRequest>,
    ) -> Result<Response<Self::StreamLogsStream>, Status> {
        let request = request.into_inner();
        let job = convert::id(&request.job_id, "job_id")?;
        let orchestrator = self.orchestrator.clone();
        orchestrator.job(job).await?;
        // Subscribe before replaying: a line stored during the replay then arrives live.
        let mut live = match request.follow {
            true => Some(subscribe_or_poll(&orchestrator, Topic::JobLogs(job)).await),
            false => None,
        };
        let mut events = match request.follow {
            true => Some(subscribe_or_poll(&orchestrator, Topic::JobEvents(job)).await),
            false => None,
        };
        let start = request.from_sequence.max(1);
        let poll = orchestrator.config().log_follow_poll();
        let stream = async_stream(RESPONSES_IN_FLIGHT, move |out| async move {
            let Some(mut next) = replay(&orchestrator, job, start, &out).await? else { return Ok(()) };
            let (Some(live), Some(events)) = (live.as_mut(), events.as_mut()) else { return Ok(()) };
            // A job ends only after all its lines are stored: once it has, a last replay
            // completes the log. The state is read at the start and on every event or poll.
            let mut ended = orchestrator.job(job).await?.state.is_terminal();
            loop {
                if ended {
                    replay(&orchestrator, job, next, &out).await?;
                    return Ok(());
                }
                tokio::select! {
                    payload = live.next() => {
                        let Some(payload) = payload else { return Ok(()) };
                        let lines: Vec<LogLine> = serde_json::from_slice(&payload)
                            .map_err(|err| Error::Internal(format!("malformed log fan-out message: {err}")))?;
                        let fresh: Vec<LogLine> = lines.into_iter().filter(|line| line.sequence >= next).collect();
                        let contiguous = fresh.first().is_none_or(|line| line.sequence == next)
                            && fresh.windows(2).all(|pair| pair[1].sequence == pair[0].sequence + 1);
                        let after = if contiguous {
                            send(&out, &fresh, next).await
                        } else {
                            // A message was missed: the store has it.
                            replay(&orchestrator, job, next, &out).await?
                        };
                        match after { Some(after) => next = after, None => return Ok(()) }
                        continue;
                    }
                    _ = events.next() => {}
                    _ = tokio::time::sleep(poll) => {}
                    _ = out.closed() => return Ok(()),
                }
                ended = orchestrator.job(job).await?.state.is_terminal();
                match replay(&orchestrator, job, next, &out).await? {
                    Some(after) => next = after,
                    None => return Ok(()),
                }
            }
        });
        Ok(Response::new(stream))
    }
}
