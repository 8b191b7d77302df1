//! `SecretService`: set, list and delete secrets. Values come in (over TLS or from
//! loopback only) and never go out: responses carry names, scopes and times.

use rivet_proto::v1::secret_service_server::SecretService;
use rivet_proto::v1::{
    self as pb, DeleteSecretRequest, DeleteSecretResponse, ListSecretsRequest, ListSecretsResponse, SetSecretRequest,
    SetSecretResponse,
};
use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

use crate::api::tokens::caller;
use crate::convert;
use crate::domain::error::Error;
use crate::domain::orchestrator::Orchestrator;
use crate::domain::secrets::{self, Scope, SecretInfo};

/// The secret service.
#[derive(Debug, Clone)]
pub struct Secrets {
    orchestrator: Orchestrator,
}

impl Secrets {
    /// Serves the secrets of `orchestrator`.
    pub fn new(orchestrator: Orchestrator) -> Secrets {
        Secrets { orchestrator }
    }

    /// Refuses a value that came over plain text from off loopback: it has been seen on
    /// the network already, and storing it would make that look fine.
    fn check_transport<T>(&self, request: &Request<T>) -> Result<(), Error> {
        if self.orchestrator.config().tls.enabled() {
            return Ok(());
        }
        match request.remote_addr() {
            Some(addr) if addr.ip().is_loopback() => Ok(()),
            _ => Err(Error::SecretsRefused(
                "secret values are accepted only over TLS or from loopback: configure [tls] (tls.cert_file and \
                 tls.key_file)"
                    .to_owned(),
            )),
        }
    }
}

#[tonic::async_trait]
impl SecretService for Secrets {
    async fn set_secret(&self, request: Request<SetSecretRequest>) -> Result<Response<SetSecretResponse>, Status> {
        self.check_transport(&request)?;
        let by = caller(&request);
        let request = request.into_inner();
        let value = Zeroizing::new(request.value);
        let scope = Scope::from_field(&request.pipeline);
        let (info, replaced) = secrets::set(&self.orchestrator, &request.name, &scope, &value).await?;
        tracing::info!(secret = %info.name, pipeline = %scope.as_field(), replaced, by, "secret set");
        Ok(Response::new(SetSecretResponse { secret: Some(secret_to_proto(&info)), replaced }))
    }

    async fn list_secrets(
        &self,
        request: Request<ListSecretsRequest>,
    ) -> Result<Response<ListSecretsResponse>, Status> {
        let pipeline = &request.get_ref().pipeline;
        let scope = (!pipeline.is_empty()).then(|| Scope::from_field(pipeline));
        let listed = secrets::list(&self.orchestrator, scope.as_ref()).await?;
        Ok(Response::new(ListSecretsResponse { secrets: listed.iter().map(secret_to_proto).collect() }))
    }

    async fn delete_secret(
        &self,
        request: Request<DeleteSecretRequest>,
    ) -> Result<Response<DeleteSecretResponse>, Status> {
        let by = caller(&request);
        let request = request.into_inner();
        let scope = Scope::from_field(&request.pipeline);
        secrets::delete(&self.orchestrator, &request.name, &scope).await?;
        tracing::info!(secret = %request.name, pipeline = %scope.as_field(), by, "secret deleted");
        Ok(Response::new(DeleteSecretResponse {}))
    }
}

/// A secret on the wire: never its value.
fn secret_to_proto(info: &SecretInfo) -> pb::Secret {
    pb::Secret {
        name: info.name.clone(),
        pipeline: info.scope.as_field().to_owned(),
        create_time: Some(convert::time_to_proto(info.created_at)),
        update_time: Some(convert::time_to_proto(info.updated_at)),
    }
}
