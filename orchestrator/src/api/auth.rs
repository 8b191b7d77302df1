//! What `RunnerService` checks itself (the role table marks `Connect` and `RegisterRunner`
//! "runner credential"): runners present their own credential (see `domain::identity`),
//! or, once, a registration token. Users and clients are checked by `api::guard` against
//! `api::roles`, with `domain::access`. With no bootstrap API token and no registration
//! token configured, runners connect without a credential (the embedded mode on loopback).

use std::sync::Arc;

use tonic::Status;
use tonic::metadata::MetadataMap;

/// What the runner side of the orchestrator accepts. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// Whether the configuration has a bootstrap API token.
    api_configured: bool,
    registration: Arc<Vec<String>>,
}

impl Auth {
    /// Accepts `registration` tokens (besides the stored ones) from new runners;
    /// `api_tokens` are the configured bootstrap tokens, which only decide whether the
    /// orchestrator is open.
    pub fn new(api_tokens: &[String], registration: Vec<String>) -> Auth {
        Auth { api_configured: !api_tokens.is_empty(), registration: Arc::new(registration) }
    }

    /// The registration tokens from the configuration.
    pub fn registration_tokens(&self) -> &[String] {
        &self.registration
    }

    /// Whether runners may connect without a credential: only when no authentication is
    /// configured at all, neither a bootstrap API token nor a registration token (the
    /// embedded mode on loopback). Even then, a registered runner's id needs its credential.
    pub fn runners_open(&self) -> bool {
        !self.api_configured && self.registration.is_empty()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runners_are_open_only_without_any_configured_token() {
        assert!(Auth::new(&[], Vec::new()).runners_open());
        assert!(!Auth::new(&["api".to_owned()], Vec::new()).runners_open());
        assert!(!Auth::new(&[], vec!["registration".to_owned()]).runners_open());
        let auth = Auth::new(&["api".to_owned()], vec!["registration".to_owned()]);
        assert!(!auth.runners_open());
        assert_eq!(auth.registration_tokens(), ["registration"]);
    }

    #[test]
    fn the_bearer_token_is_read_or_refused() {
        let mut metadata = MetadataMap::new();
        assert_eq!(bearer(&metadata).map_err(|status| status.code()), Ok(None));
        metadata.insert("authorization", "Bearer secret".parse().expect("ASCII"));
        assert_eq!(bearer(&metadata).map_err(|status| status.code()), Ok(Some("secret")));
        metadata.insert("authorization", "Basic secret".parse().expect("ASCII"));
        let refused = bearer(&metadata).expect_err("not a bearer token");
        assert_eq!(refused.message(), "the authorization metadata must be `Bearer <token>`");
    }
}
