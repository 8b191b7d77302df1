//! `PipelineService`: create, validate, get, list and delete pipeline versions.

use rivet_proto::v1::pipeline_service_server::PipelineService;
use rivet_proto::v1::{
    CreatePipelineRequest, CreatePipelineResponse, DeletePipelineRequest, DeletePipelineResponse, GetPipelineRequest,
    GetPipelineResponse, ListPipelinesRequest, ListPipelinesResponse, ValidatePipelineRequest,
    ValidatePipelineResponse,
};
use tonic::{Request, Response, Status};

use crate::api::page_size;
use crate::convert;
use crate::domain::error::Error;
use crate::domain::orchestrator::Orchestrator;

/// The pipeline service.
#[derive(Debug, Clone)]
pub struct Pipelines {
    orchestrator: Orchestrator,
}

impl Pipelines {
    /// Serves pipelines of `orchestrator`.
    pub fn new(orchestrator: Orchestrator) -> Pipelines {
        Pipelines { orchestrator }
    }
}

#[tonic::async_trait]
impl PipelineService for Pipelines {
    async fn create_pipeline(
        &self,
        request: Request<CreatePipelineRequest>,
    ) -> Result<Response<CreatePipelineResponse>, Status> {
        let request = request.into_inner();
        let pipeline = self.orchestrator.create_pipeline(request.source, request.file_name).await?;
        tracing::info!(pipeline = %pipeline.name, version = pipeline.version, "pipeline created");
        Ok(Response::new(CreatePipelineResponse { pipeline: Some(convert::pipeline_to_proto(&pipeline)) }))
    }

    async fn validate_pipeline(
        &self,
        request: Request<ValidatePipelineRequest>,
    ) -> Result<Response<ValidatePipelineResponse>, Status> {
        let request = request.into_inner();
        let response = match self.orchestrator.validate(request.source, request.file_name).await {
            Ok(definition) => ValidatePipelineResponse {
                valid: true,
                definition: Some(convert::definition_to_proto(&definition)),
                diagnostics: Vec::new(),
            },
            Err(Error::InvalidPipeline(diagnostics)) => ValidatePipelineResponse {
                valid: false,
                definition: None,
                diagnostics: diagnostics.iter().map(convert::diagnostic_to_proto).collect(),
            },
            Err(other) => return Err(other.into()),
        };
        Ok(Response::new(response))
    }

    async fn get_pipeline(
        &self,
        request: Request<GetPipelineRequest>,
    ) -> Result<Response<GetPipelineResponse>, Status> {
        let request = request.into_inner();
        let pipeline = self.orchestrator.find_pipeline(&request.pipeline, request.version).await?;
        Ok(Response::new(GetPipelineResponse { pipeline: Some(convert::pipeline_to_proto(&pipeline)) }))
    }

    async fn list_pipelines(
        &self,
        request: Request<ListPipelinesRequest>,
    ) -> Result<Response<ListPipelinesResponse>, Status> {
        let request = request.into_inner();
        let limit = page_size(request.page_size)?;
        let after = (!request.page_token.is_empty()).then_some(request.page_token.as_str());
        let mut pipelines = self.orchestrator.store().list_pipelines(after, limit + 1).await.map_err(Error::from)?;
        let next_page_token = if pipelines.len() as u64 > limit {
            pipelines.truncate(limit as usize);
            pipelines.last().map(|p| p.name.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListPipelinesResponse {
            pipelines: pipelines.iter().map(convert::pipeline_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn delete_pipeline(
        &self,
        request: Request<DeletePipelineRequest>,
    ) -> Result<Response<DeletePipelineResponse>, Status> {
        let request = request.into_inner();
        let pipeline = self.orchestrator.find_pipeline(&request.pipeline, 0).await?;
        let deleted_versions = self.orchestrator.store().delete_pipeline(&pipeline.name).await.map_err(Error::from)?;
        tracing::info!(pipeline = %pipeline.name, deleted_versions, "pipeline deleted");
        Ok(Response::new(DeletePipelineResponse { deleted_versions }))
    }
}
