//! `RunnerService`: the runner stream, runner registration and the runner registry.

use std::pin::Pin;

use futures_util::Stream;
use rivet_core::protocol::FromRunner;
use rivet_proto::v1::runner_service_server::RunnerService;
use rivet_proto::v1::{
    self as pb, ConnectRequest, ConnectResponse, CreateRegistrationTokenRequest, CreateRegistrationTokenResponse,
    ListRunnersRequest, ListRunnersResponse, RegisterRunnerRequest, RegisterRunnerResponse, RevokeRunnerRequest,
    RevokeRunnerResponse,
};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use crate::api::auth::{Auth, bearer};
use crate::convert;
use crate::domain::error::Error;
use crate::domain::identity::{self, Registration, RunnerIdentity, TokenRequest};
use crate::domain::orchestrator::Orchestrator;
use crate::domain::session::{self, Inbound};

/// The longest a registration token may stay valid: ten years, so an expiry is always a
/// representable time.
const MAX_TOKEN_LIFETIME_SECS: u64 = 10 * 365 * 24 * 60 * 60;

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

    /// Refuses a runner call without a client certificate when the configuration requires
    /// one (`tls.require_runner_certificate`): registration as much as the stream.
    fn check_certificate<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if self.orchestrator.config().tls.require_runner_certificate
            && request.peer_certs().is_none_or(|certs| certs.is_empty())
        {
            return Err(Status::unauthenticated(
                "this orchestrator requires runners to present a client certificate (mutual TLS)",
            ));
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl RunnerService for Runners {
    type ConnectStream = Pin<Box<dyn Stream<Item = Result<ConnectResponse, Status>> + Send>>;

    async fn connect(
        &self,
        request: Request<Streaming<ConnectRequest>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        self.check_certificate(&request)?;
        let identity = match bearer(request.metadata())? {
            Some(token) if identity::is_credential(token) => identity::authenticate(&self.orchestrator, token).await?,
            _ if self.auth.runners_open() => RunnerIdentity::Unauthenticated,
            Some(_) => {
                return Err(Status::unauthenticated(
                    "invalid runner credential: a runner connects with the credential RegisterRunner gave it \
                     (registration tokens are only for RegisterRunner)",
                ));
            }
            None => {
                return Err(Status::unauthenticated(
                    "missing `authorization: Bearer <runner credential>` metadata: register the runner with a \
                     registration token first",
                ));
            }
        };
        if self.orchestrator.shutdown_token().is_cancelled() {
            return Err(Error::ShuttingDown.into());
        }
        // The edge of the runner protocol: wire messages are decoded here, once, and the
        // session's domain messages encoded on the way out.
        let incoming = request.into_inner().map(|item| match item {
            Ok(message) => match FromRunner::try_from(message) {
                Ok(message) => Inbound::Message(message),
                Err(err) => Inbound::Malformed(err.into()),
            },
            Err(status) => Inbound::Broken(status.message().to_owned()),
        });
        let receiver = session::open(self.orchestrator.clone(), identity, incoming).await?;
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver).map(|message| Ok(ConnectResponse::from(message))))))
    }

    async fn list_runners(
        &self,
        request: Request<ListRunnersRequest>,
    ) -> Result<Response<ListRunnersResponse>, Status> {
        // Users are checked by `api::guard` against the role table, like every call.
        let include_offline = request.get_ref().include_offline;
        let online = self.orchestrator.coord().online_runners().await.map_err(Error::from)?;
        let active = self.orchestrator.store().active_jobs(None).await.map_err(Error::from)?;
        let credentials: std::collections::HashMap<Uuid, _> = self
            .orchestrator
            .store()
            .runner_credentials()
            .await
            .map_err(Error::from)?
            .into_iter()
            .map(|credential| (credential.runner_id, credential))
            .collect();
        let mut runners = Vec::new();
        for runner in self.orchestrator.store().runners().await.map_err(Error::from)? {
            let credential = credentials.get(&runner.id);
            let revoked = credential.is_some_and(|credential| credential.revoked_at.is_some());
            let is_online = online.contains(&runner.id) && !revoked;
            if !is_online && !include_offline {
                continue;
            }
            let state = match (revoked, is_online) {
                (true, _) => pb::RunnerState::Revoked,
                (false, true) => pb::RunnerState::Online,
                (false, false) => pb::RunnerState::Offline,
            };
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
                state: state as i32,
                registered: credential.is_some(),
            });
        }
        Ok(Response::new(ListRunnersResponse { runners }))
    }

    async fn register_runner(
        &self,
        request: Request<RegisterRunnerRequest>,
    ) -> Result<Response<RegisterRunnerResponse>, Status> {
        self.check_certificate(&request)?;
        let Some(token) = bearer(request.metadata())?.map(str::to_owned) else {
            return Err(Status::unauthenticated("missing `authorization: Bearer <registration token>` metadata"));
        };
        let request = request.into_inner();
        let registration =
            Registration { name: request.name, labels: request.labels.into_iter().collect(), version: request.version };
        let registered =
            identity::register(&self.orchestrator, self.auth.registration_tokens(), &token, registration).await?;
        Ok(Response::new(RegisterRunnerResponse {
            runner_id: registered.runner_id.to_string(),
            credential: registered.credential,
            labels: registered.labels.into_iter().collect(),
        }))
    }

    async fn create_registration_token(
        &self,
        request: Request<CreateRegistrationTokenRequest>,
    ) -> Result<Response<CreateRegistrationTokenResponse>, Status> {
        let request = request.into_inner();
        if let Some(key) = request.labels.keys().find(|key| key.is_empty()) {
            return Err(Error::invalid("labels", format!("a label key must not be empty (`{key}`)")).into());
        }
        if request.expires_in_seconds > MAX_TOKEN_LIFETIME_SECS {
            return Err(Error::invalid(
                "expires_in_seconds",
                format!("must be at most {MAX_TOKEN_LIFETIME_SECS} (ten years), got {}", request.expires_in_seconds),
            )
            .into());
        }
        let expires_at = match request.expires_in_seconds {
            0 => None,
            // Bounded above, so the conversion and the addition cannot fail.
            secs => Some(chrono::Utc::now() + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))),
        };
        let token = TokenRequest {
            labels: request.labels.into_iter().collect(),
            expires_at,
            uses: (request.uses > 0).then_some(request.uses),
        };
        let issued = identity::create_registration_token(&self.orchestrator, token).await?;
        Ok(Response::new(CreateRegistrationTokenResponse {
            token_id: issued.id.simple().to_string(),
            token: issued.token,
            expire_time: expires_at.map(convert::time_to_proto),
        }))
    }

    async fn revoke_runner(
        &self,
        request: Request<RevokeRunnerRequest>,
    ) -> Result<Response<RevokeRunnerResponse>, Status> {
        let id = Uuid::parse_str(&request.get_ref().runner_id)
            .map_err(|err| Error::invalid("runner_id", format!("is not a UUID: {err}")))?;
        let requeued = identity::revoke(&self.orchestrator, id).await?;
        Ok(Response::new(RevokeRunnerResponse {
            requeued_job_ids: requeued.into_iter().map(|job| job.to_string()).collect(),
        }))
    }
}
