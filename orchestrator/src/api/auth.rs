//! Bearer-token authentication. Users and clients present an API token; runners their own
//! credential (see `domain::identity`), or, once, a registration token. With no API token
//! and no registration token configured, both sides are open (the embedded mode on
//! loopback).

use std::sync::Arc;

use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

/// Which tokens a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A user or client.
    Api,
}

/// The tokens the orchestrator accepts. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    api: Arc<Vec<String>>,
    registration: Arc<Vec<String>>,
}

impl Auth {
    /// Accepts `api` tokens for users, and `registration` tokens (besides the stored ones)
    /// for new runners.
    pub fn new(api: Vec<String>, registration: Vec<String>) -> Auth {
        Auth { api: Arc::new(api), registration: Arc::new(registration) }
    }

    /// The registration tokens from the configuration.
    pub fn registration_tokens(&self) -> &[String] {
        &self.registration
    }

    /// Whether runners may connect without a credential: only when no authentication is
    /// configured at all (the embedded mode on loopback). Even then, a registered runner's
    /// id needs its credential.
    pub fn runners_open(&self) -> bool {
        self.api.is_empty() && self.registration.is_empty()
    }

    /// Checks the call's `authorization: Bearer <token>` header.
    pub fn check(&self, metadata: &MetadataMap, role: Role) -> Result<(), Status> {
        let tokens = match role {
            Role::Api => &self.api,
        };
        if tokens.is_empty() {
            return Ok(());
        }
        let Some(presented) = bearer(metadata)? else {
            return Err(Status::unauthenticated("missing `authorization: Bearer <token>` metadata"));
        };
        if tokens.iter().any(|token| constant_time_eq(token.as_bytes(), presented.as_bytes())) {
            Ok(())
        } else {
            Err(Status::unauthenticated(match role {
                Role::Api => "invalid API token",
            }))
        }
    }

    /// An interceptor for services that only users call.
    pub fn api_interceptor(
        &self,
    ) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static {
        let auth = self.clone();
        move |request: Request<()>| {
            auth.check(request.metadata(), Role::Api)?;
            Ok(request)
        }
    }
}

/// The call's bearer token, if it has an `authorization` header.
pub fn bearer(metadata: &MetadataMap) -> Result<Option<&str>, Status> {
    let Some(header) = metadata.get("authorization") else { return Ok(None) };
    header
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(Some)
        .ok_or_else(|| Status::unauthenticated("the authorization metadata must be `Bearer <token>`"))
}

/// Compares without an early exit, so the time taken does not reveal a matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
