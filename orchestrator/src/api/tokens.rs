//! `TokenService`: create, list and revoke API tokens. Only admins get here (see
//! `api::roles`); the secret leaves the orchestrator once, in the create response.

use chrono::TimeDelta;
use rivet_proto::v1::token_service_server::TokenService;
use rivet_proto::v1::{
    self as pb, CreateTokenRequest, CreateTokenResponse, ListTokensRequest, ListTokensResponse, RevokeTokenRequest,
    RevokeTokenResponse,
};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::domain::access::{Access, Caller};
use crate::domain::error::Error;
use crate::domain::store::ApiTokenRecord;
use crate::domain::tokens::Role;

/// The token service.
#[derive(Debug, Clone)]
pub struct Tokens {
    access: Access,
}

impl Tokens {
    /// Manages the tokens `access` checks.
    pub fn new(access: Access) -> Tokens {
        Tokens { access }
    }
}

#[tonic::async_trait]
impl TokenService for Tokens {
    async fn create_token(
        &self,
        request: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        let by = caller(&request);
        let request = request.into_inner();
        let role = role_from_proto(request.role)?;
        let ttl = request.ttl.map(ttl_from_proto).transpose()?;
        let (record, secret) = self.access.create(role, &request.name, ttl).await?;
        tracing::info!(token = %record.id, %role, name = %record.name, by, "API token created");
        Ok(Response::new(CreateTokenResponse { token: Some(token_to_proto(&record)), secret }))
    }

    async fn list_tokens(&self, _request: Request<ListTokensRequest>) -> Result<Response<ListTokensResponse>, Status> {
        let tokens = self.access.list().await?;
        Ok(Response::new(ListTokensResponse { tokens: tokens.iter().map(token_to_proto).collect() }))
    }

    async fn revoke_token(
        &self,
        request: Request<RevokeTokenRequest>,
    ) -> Result<Response<RevokeTokenResponse>, Status> {
        let id = convert::id(&request.get_ref().token_id, "token_id")?;
        let record = self.access.revoke(id).await?;
        tracing::info!(token = %id, by = caller(&request), "API token revoked");
        Ok(Response::new(RevokeTokenResponse { token: Some(token_to_proto(&record)) }))
    }
}

/// Who made a call, as `api::guard` established it, for the audit log.
pub(crate) fn caller<T>(request: &Request<T>) -> String {
    request.extensions().get::<Caller>().map_or_else(|| "an unknown caller".to_owned(), Caller::describe)
}

/// A role from the wire; unspecified or unknown is an invalid argument.
fn role_from_proto(value: i32) -> Result<Role, Error> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Viewer) => Ok(Role::Viewer),
        Ok(pb::Role::Operator) => Ok(Role::Operator),
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        Ok(pb::Role::Unspecified) | Err(_) => Err(Error::invalid("role", "required: viewer, operator or admin")),
    }
}

/// A role on the wire.
fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::Viewer => pb::Role::Viewer,
        Role::Operator => pb::Role::Operator,
        Role::Admin => pb::Role::Admin,
    }
}

/// A lifetime from the wire.
fn ttl_from_proto(ttl: prost_types::Duration) -> Result<TimeDelta, Error> {
    let nanos = u32::try_from(ttl.nanos).map_err(|_| Error::invalid("ttl", "must be positive"))?;
    TimeDelta::new(ttl.seconds, nanos).ok_or_else(|| Error::invalid("ttl", "is out of range"))
}

/// A token's description on the wire: never its secret or its hash.
fn token_to_proto(record: &ApiTokenRecord) -> pb::ApiToken {
    pb::ApiToken {
        id: record.id.to_string(),
        name: record.name.clone(),
        role: role_to_proto(record.role) as i32,
        create_time: Some(convert::time_to_proto(record.created_at)),
        last_use_time: record.last_used_at.map(convert::time_to_proto),
        expire_time: record.expires_at.map(convert::time_to_proto),
        revoke_time: record.revoked_at.map(convert::time_to_proto),
    }
}
