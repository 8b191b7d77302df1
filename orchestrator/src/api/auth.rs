//! Bearer-token authentication. Users and clients present an API token; runners a runner
//! token. An empty token list leaves that side open (the embedded mode on loopback).

use std::sync::Arc;

use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

/// Which tokens a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A user or client.
    Api,
    /// A runner agent.
    Runner,
}

/// The tokens the orchestrator accepts. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    api: Arc<Vec<String>>,
    runner: Arc<Vec<String>>,
}

impl Auth {
    /// Accepts `api` tokens for users and `runner` tokens for runners.
    pub fn new(api: Vec<String>, runner: Vec<String>) -> Auth {
        Auth { api: Arc::new(api), runner: Arc::new(runner) }
    }

    /// Checks the call's `authorization: Bearer <token>` header.
    pub fn check(&self, metadata: &MetadataMap, role: Role) -> Result<(), Status> {
        let tokens = match role {
            Role::Api => &self.api,
            Role::Runner => &self.runner,
        };
        if tokens.is_empty() {
            return Ok(());
        }
        let Some(header) = metadata.get("authorization") else {
            return Err(Status::unauthenticated("missing `authorization: Bearer <token>` metadata"));
        };
        let presented = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("the authorization metadata must be `Bearer <token>`"))?;
        if tokens.iter().any(|token| constant_time_eq(token.as_bytes(), presented.as_bytes())) {
            Ok(())
        } else {
            Err(Status::unauthenticated(match role {
                Role::Api => "invalid API token",
                Role::Runner => "invalid runner token",
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

/// Compares without an early exit, so the time taken does not reveal a matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
