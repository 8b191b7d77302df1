//! `PluginService`: publish, get and list plugin versions.

use rivet_proto::v1::plugin_service_server::PluginService;
use rivet_proto::v1::{
    GetPluginRequest, GetPluginResponse, ListPluginsRequest, ListPluginsResponse, Plugin, PublishPluginRequest,
    PublishPluginResponse,
};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::domain::orchestrator::Orchestrator;
use crate::domain::store::PluginVersion;

/// The plugin service.
#[derive(Debug, Clone)]
pub struct Plugins {
    orchestrator: Orchestrator,
}

impl Plugins {
    /// Serves plugins of `orchestrator`.
    pub fn new(orchestrator: Orchestrator) -> Plugins {
        Plugins { orchestrator }
    }
}

fn plugin_to_proto(record: &PluginVersion) -> Plugin {
    Plugin {
        name: record.name.clone(),
        version: record.version.clone(),
        sha256: record.sha256.clone(),
        size_bytes: record.size_bytes,
        publish_time: Some(convert::time_to_proto(record.created_at)),
    }
}

#[tonic::async_trait]
impl PluginService for Plugins {
    async fn publish_plugin(
        &self,
        request: Request<PublishPluginRequest>,
    ) -> Result<Response<PublishPluginResponse>, Status> {
        let request = request.into_inner();
        let record = self.orchestrator.publish_plugin(request.name, request.version, request.source).await?;
        tracing::info!(plugin = %record.name, version = %record.version, sha256 = %record.sha256, "plugin published");
        Ok(Response::new(PublishPluginResponse { plugin: Some(plugin_to_proto(&PluginVersion::from(&record))) }))
    }

    async fn get_plugin(&self, request: Request<GetPluginRequest>) -> Result<Response<GetPluginResponse>, Status> {
        let request = request.into_inner();
        let record = self.orchestrator.find_plugin(&request.name, &request.version).await?;
        Ok(Response::new(GetPluginResponse {
            plugin: Some(plugin_to_proto(&PluginVersion::from(&record))),
            source: record.source,
        }))
    }

    async fn list_plugins(
        &self,
        request: Request<ListPluginsRequest>,
    ) -> Result<Response<ListPluginsResponse>, Status> {
        let records = self.orchestrator.list_plugins(&request.into_inner().name).await?;
        Ok(Response::new(ListPluginsResponse { plugins: records.iter().map(plugin_to_proto).collect() }))
    }
}
