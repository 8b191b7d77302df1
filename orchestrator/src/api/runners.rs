//! `RunnerService`: the runner stream and the runner registry.

use std::pin::Pin;

use futures_util::Stream;
use rivet_proto::v1::runner_service_server::RunnerService;
use rivet_proto::v1::{self as pb, ConnectRequest, ConnectResponse, ListRunnersRequest, ListRunnersResponse};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::api::auth::Auth;
use crate::convert;
use crate::domain::error::Error;
use crate::domain::orchestrator::Orchestrator;
use crate::domain::session;

/// The runner service.
#[derive(Debug, Clone)]
pub struct Runners {
    orchestrator: Orchestrator,
    auth: Auth,
}

impl Runners {
    /// Serves runners of `orchestrator`; `auth` checks runner tokens.
    pub fn new(orchestrator: Orchestrator, auth: Auth) -> Runners {
        Runners { orchestrator, auth }
    }
}

#[tonic::async_trait]
impl RunnerService for Runners {
    type ConnectStream = Pin<Box<dyn Stream<Item = Result<ConnectResponse, Status>> + Send>>;

    async fn connect(
        &self,
        request: Request<Streaming<ConnectRequest>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        self.auth.check_runner(request.metadata())?;
        if self.orchestrator.config().tls.require_runner_certificate
            && request.peer_certs().is_none_or(|certs| certs.is_empty())
        {
            return Err(Status::unauthenticated(
                "this orchestrator requires runners to present a client certificate (mutual TLS)",
            ));
        }
        if self.orchestrator.shutdown_token().is_cancelled() {
            return Err(Error::ShuttingDown.into());
        }
        let receiver = session::open(self.orchestrator.clone(), request.into_inner()).await?;
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver).map(Ok))))
    }

    async fn list_runners(
        &self,
        request: Request<ListRunnersRequest>,
    ) -> Result<Response<ListRunnersResponse>, Status> {
        // Users are checked by `api::guard` against the role table, like every call.
        let include_offline = request.get_ref().include_offline;
        let online = self.orchestrator.coord().online_runners().await.map_err(Error::from)?;
        let active = self.orchestrator.store().active_jobs().await.map_err(Error::from)?;
        let mut runners = Vec::new();
        for runner in self.orchestrator.store().runners().await.map_err(Error::from)? {
            let is_online = online.contains(&runner.id);
            if !is_online && !include_offline {
                continue;
            }
            let running_job_ids =
                active.iter().filter(|job| job.runner_id == Some(runner.id)).map(|job| job.id.to_string()).collect();
            runners.push(pb::Runner {
                id: runner.id.to_string(),
                name: runner.name,
                labels: runner.labels.into_iter().collect(),
                capacity: runner.capacity,
                online: is_online,
                running_job_ids,
                last_seen_time: Some(convert::time_to_proto(runner.last_seen)),
                version: runner.version,
            });
        }
        Ok(Response::new(ListRunnersResponse { runners }))
    }
}
