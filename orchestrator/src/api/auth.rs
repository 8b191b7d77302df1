//! Runner tokens: what `RunnerService.Connect` checks itself (the role table marks it
//! "runner credential"). Users and clients are checked by `api::guard` against
//! `api::roles`, with `domain::access`. An empty runner token list leaves runners
//! unchecked (the embedded mode on loopback).

use std::sync::Arc;

use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::domain::tokens::TokenDigest;

/// The runner tokens the orchestrator accepts, as digests. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    runner: Arc<[TokenDigest]>,
}

impl Auth {
    /// Accepts `runner` tokens from runners.
    pub fn new(runner: &[String]) -> Auth {
        Auth { runner: runner.iter().map(|token| TokenDigest::of(token)).collect() }
    }

    /// Checks a runner's `authorization: Bearer <token>` header.
    pub fn check_runner(&self, metadata: &MetadataMap) -> Result<(), Status> {
        if self.runner.is_empty() {
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
        // Digests have one length, so the comparison reveals neither a matching prefix
        // nor the tokens' lengths; every token is compared.
        let presented = TokenDigest::of(presented);
        let mut known = false;
        for token in self.runner.iter() {
            known |= token.matches(&presented);
        }
        if known { Ok(()) } else { Err(Status::unauthenticated("invalid runner token")) }
    }
}
