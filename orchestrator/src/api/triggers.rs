//! `TriggerService`: create, get, list and delete forge webhook triggers. The webhook
//! secret goes out once, in the `CreateTrigger` response; nothing else carries it.

use rivet_proto::v1::trigger_service_server::TriggerService;
use rivet_proto::v1::{
    self as pb, CreateTriggerRequest, CreateTriggerResponse, DeleteTriggerRequest, DeleteTriggerResponse,
    GetTriggerRequest, GetTriggerResponse, ListTriggersRequest, ListTriggersResponse,
};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::api::tokens::caller;
use crate::convert;
use crate::domain::orchestrator::Orchestrator;
use crate::domain::triggers::{self, CreateError, TriggerRecord, TriggerSpec};

/// The trigger service.
#[derive(Debug, Clone)]
pub struct Triggers {
    orchestrator: Orchestrator,
    /// The webhook listener's public base URL (`http://host:port`, no trailing `/`); `None`
    /// when the listener is off.
    webhook_base: Option<String>,
}

impl Triggers {
    /// Serves the triggers of `orchestrator`, whose webhooks arrive under `webhook_base`.
    pub fn new(orchestrator: Orchestrator, webhook_base: Option<String>) -> Triggers {
        Triggers { orchestrator, webhook_base }
    }

    /// A trigger on the wire: never its secret.
    fn to_proto(&self, record: &TriggerRecord) -> pb::Trigger {
        let filter = &record.filter;
        let text = |globs: &[rivet_core::trigger::Glob]| globs.iter().map(|g| g.as_str().to_owned()).collect();
        pb::Trigger {
            id: record.id.to_string(),
            pipeline: record.pipeline.clone(),
            forge: record.forge.as_str().to_owned(),
            repository: record.repository.clone(),
            events: filter.events().iter().map(|kind| kind.as_str().to_owned()).collect(),
            branches: text(filter.branches()),
            tags: text(filter.tags()),
            paths: text(filter.paths()),
            inputs: record.inputs.clone().into_iter().collect(),
            create_time: Some(convert::time_to_proto(record.created_at)),
            url: self.webhook_base.as_ref().map(|base| format!("{base}/hooks/{}", record.id)).unwrap_or_default(),
            status: record.status.as_ref().map(|status| pb::StatusReporting {
                token_secret: status.token_secret.clone(),
                api_url: status.api_url.clone(),
                context: status.context.clone(),
            }),
        }
    }
}

impl From<CreateError> for Status {
    fn from(err: CreateError) -> Status {
        match err {
            CreateError::Invalid(problems) => {
                let summary: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect();
                let violations =
                    problems.into_iter().map(|p| FieldViolation::new(p.field, p.message)).collect::<Vec<_>>();
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("invalid trigger: {}", summary.join("; ")),
                    ErrorDetails::with_bad_request(violations),
                )
            }
            CreateError::Domain(err) => err.into(),
        }
    }
}

#[tonic::async_trait]
impl TriggerService for Triggers {
    async fn create_trigger(
        &self,
        request: Request<CreateTriggerRequest>,
    ) -> Result<Response<CreateTriggerResponse>, Status> {
        let by = caller(&request);
        let request = request.into_inner();
        let spec = TriggerSpec {
            pipeline: request.pipeline,
            forge: request.forge,
            repository: request.repository,
            events: request.events,
            branches: request.branches,
            tags: request.tags,
            paths: request.paths,
            inputs: request.inputs.into_iter().collect(),
            status: request.status.map(|status| triggers::StatusSpec {
                token_secret: status.token_secret,
                api_url: status.api_url,
                context: status.context,
            }),
        };
        let (record, secret) = triggers::create(&self.orchestrator, spec).await?;
        tracing::info!(
            trigger = %record.id,
            pipeline = %record.pipeline,
            forge = %record.forge,
            repository = %record.repository,
            by,
            "trigger created"
        );
        Ok(Response::new(CreateTriggerResponse { trigger: Some(self.to_proto(&record)), secret: secret.to_string() }))
    }

    async fn get_trigger(&self, request: Request<GetTriggerRequest>) -> Result<Response<GetTriggerResponse>, Status> {
        let id = triggers::parse_id(&request.get_ref().trigger_id)?;
        let record = triggers::get(&self.orchestrator, id).await?;
        Ok(Response::new(GetTriggerResponse { trigger: Some(self.to_proto(&record)) }))
    }

    async fn list_triggers(
        &self,
        _request: Request<ListTriggersRequest>,
    ) -> Result<Response<ListTriggersResponse>, Status> {
        let listed = triggers::list(&self.orchestrator).await?;
        Ok(Response::new(ListTriggersResponse { triggers: listed.iter().map(|t| self.to_proto(t)).collect() }))
    }

    async fn delete_trigger(
        &self,
        request: Request<DeleteTriggerRequest>,
    ) -> Result<Response<DeleteTriggerResponse>, Status> {
        let by = caller(&request);
        let id = triggers::parse_id(&request.get_ref().trigger_id)?;
        triggers::delete(&self.orchestrator, id).await?;
        tracing::info!(trigger = %id, by, "trigger deleted");
        Ok(Response::new(DeleteTriggerResponse {}))
    }
}
