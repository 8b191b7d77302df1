//! `ScheduleService`: create, get, list, delete, pause and resume cron schedules. The
//! firing itself is `domain::schedules`' scheduler.

use chrono::Utc;
use rivet_proto::v1::schedule_service_server::ScheduleService;
use rivet_proto::v1::{
    self as pb, CreateScheduleRequest, CreateScheduleResponse, DeleteScheduleRequest, DeleteScheduleResponse,
    GetScheduleRequest, GetScheduleResponse, ListSchedulesRequest, ListSchedulesResponse, PauseScheduleRequest,
    PauseScheduleResponse, ResumeScheduleRequest, ResumeScheduleResponse,
};
use tonic::{Request, Response, Status};

use crate::api::page_size;
use crate::api::tokens::caller;
use crate::convert;
use crate::domain::error::Error;
use crate::domain::orchestrator::Orchestrator;
use crate::domain::schedules::{self, NewSchedule, ScheduleRecord};

/// The schedule service.
#[derive(Debug, Clone)]
pub struct Schedules {
    orchestrator: Orchestrator,
}

impl Schedules {
    /// Serves the schedules of `orchestrator`.
    pub fn new(orchestrator: Orchestrator) -> Schedules {
        Schedules { orchestrator }
    }

    async fn set_paused(&self, id: &str, paused: bool, by: String) -> Result<pb::Schedule, Status> {
        let id = convert::id(id, "schedule_id")?;
        let record = schedules::set_paused(&self.orchestrator, id, paused, Utc::now()).await?;
        tracing::info!(schedule = %id, paused, by, "schedule paused or resumed");
        Ok(schedule_to_proto(&record))
    }
}

#[tonic::async_trait]
impl ScheduleService for Schedules {
    async fn create_schedule(
        &self,
        request: Request<CreateScheduleRequest>,
    ) -> Result<Response<CreateScheduleResponse>, Status> {
        let by = caller(&request);
        let request = request.into_inner();
        let new = NewSchedule {
            pipeline: request.pipeline,
            cron: request.cron,
            time_zone: request.time_zone,
            inputs: request.inputs.into_iter().collect(),
            missed: request.missed,
        };
        let record = schedules::create(&self.orchestrator, new, Utc::now()).await?;
        tracing::info!(schedule = %record.id, pipeline = %record.pipeline, cron = %record.cron, by, "schedule created");
        Ok(Response::new(CreateScheduleResponse { schedule: Some(schedule_to_proto(&record)) }))
    }

    async fn get_schedule(
        &self,
        request: Request<GetScheduleRequest>,
    ) -> Result<Response<GetScheduleResponse>, Status> {
        let id = convert::id(&request.get_ref().schedule_id, "schedule_id")?;
        let record = schedules::get(&self.orchestrator, id).await?;
        Ok(Response::new(GetScheduleResponse { schedule: Some(schedule_to_proto(&record)) }))
    }

    async fn list_schedules(
        &self,
        request: Request<ListSchedulesRequest>,
    ) -> Result<Response<ListSchedulesResponse>, Status> {
        let request = request.into_inner();
        let limit = page_size(request.page_size)?;
        let after = match request.page_token.as_str() {
            "" => None,
            token => Some(convert::id(token, "page_token")?),
        };
        let mut listed = self.orchestrator.store().list_schedules(after, limit + 1).await.map_err(Error::from)?;
        let next_page_token = if listed.len() as u64 > limit {
            listed.truncate(limit as usize);
            listed.last().map(|record| record.id.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        let schedules = listed.iter().map(schedule_to_proto).collect();
        Ok(Response::new(ListSchedulesResponse { schedules, next_page_token }))
    }

    async fn delete_schedule(
        &self,
        request: Request<DeleteScheduleRequest>,
    ) -> Result<Response<DeleteScheduleResponse>, Status> {
        let by = caller(&request);
        let id = convert::id(&request.get_ref().schedule_id, "schedule_id")?;
        schedules::delete(&self.orchestrator, id).await?;
        tracing::info!(schedule = %id, by, "schedule deleted");
        Ok(Response::new(DeleteScheduleResponse {}))
    }

    async fn pause_schedule(
        &self,
        request: Request<PauseScheduleRequest>,
    ) -> Result<Response<PauseScheduleResponse>, Status> {
        let by = caller(&request);
        let schedule = self.set_paused(&request.get_ref().schedule_id, true, by).await?;
        Ok(Response::new(PauseScheduleResponse { schedule: Some(schedule) }))
    }

    async fn resume_schedule(
        &self,
        request: Request<ResumeScheduleRequest>,
    ) -> Result<Response<ResumeScheduleResponse>, Status> {
        let by = caller(&request);
        let schedule = self.set_paused(&request.get_ref().schedule_id, false, by).await?;
        Ok(Response::new(ResumeScheduleResponse { schedule: Some(schedule) }))
    }
}

/// A schedule on the wire, with its next due time from now.
fn schedule_to_proto(record: &ScheduleRecord) -> pb::Schedule {
    pb::Schedule {
        id: record.id.to_string(),
        pipeline: record.pipeline.clone(),
        cron: record.cron.clone(),
        time_zone: record.time_zone.clone(),
        inputs: record.inputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        missed: record.missed.as_str().to_owned(),
        paused: record.paused,
        next_time: record.next_time(Utc::now()).map(convert::time_to_proto),
        last_due_time: Some(convert::time_to_proto(record.last_due)),
        create_time: Some(convert::time_to_proto(record.created_at)),
    }
}
