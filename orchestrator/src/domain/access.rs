//! Who is calling, and whether they may: authenticates a call's bearer token and checks
//! its role; creates, lists and revokes API tokens.
//!
//! A caller presents `authorization: Bearer <token>`. The token is either a bootstrap
//! token from the configuration (`auth.api_tokens`, role `admin`), compared by SHA-256
//! digest in constant time, or an API token issued through `TokenService`, found by the
//! id inside it and compared with its stored digest in constant time. A revoked or
//! expired token is refused with the reason, but only once its secret matched.
//!
//! With no bootstrap token configured and no API token ever created, the API is open and
//! every caller acts as `admin`: that is the embedded mode on loopback, where the first
//! `rivet token create` closes it. Revoked tokens keep their row, so revoking the last
//! token never reopens the API.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use uuid::Uuid;

use crate::domain::error::{Error, Result};
use crate::domain::store::{ApiTokenRecord, Store};
use crate::domain::tokens::{self, Role, TokenDigest};

/// How stale a token's "last used" time may get before a call updates it: a write per
/// call would make every read a database write.
pub const LAST_USE_PRECISION: TimeDelta = TimeDelta::seconds(60);

/// The longest token name accepted, in bytes.
pub const MAX_TOKEN_NAME_BYTES: usize = 200;

/// The longest lifetime a token may be created with, in days.
pub const MAX_TOKEN_TTL_DAYS: i64 = 3650;

/// Who made a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Nobody needs to say: no token is configured or stored (embedded mode).
    Open,
    /// A bootstrap token from the configuration.
    Bootstrap,
    /// An API token from the store.
    Token {
        /// The token's id.
        id: Uuid,
        /// Its role.
        role: Role,
    },
}

impl Caller {
    /// What the caller may do.
    pub fn role(&self) -> Role {
        match self {
            Caller::Open | Caller::Bootstrap => Role::Admin,
            Caller::Token { role, .. } => *role,
        }
    }

    /// The caller, for messages.
    pub fn describe(&self) -> String {
        match self {
            Caller::Open => "an anonymous caller".to_owned(),
            Caller::Bootstrap => "a bootstrap token".to_owned(),
            Caller::Token { id, .. } => format!("API token {id}"),
        }
    }
}

/// Why a call is not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum Unauthenticated {
    /// No `authorization` metadata.
    #[error("missing `authorization: Bearer <token>` metadata")]
    Missing,
    /// `authorization` metadata that is not `Bearer <token>`.
    #[error("the authorization metadata must be `Bearer <token>`")]
    Malformed,
    /// A token that is neither a bootstrap token nor a stored one.
    #[error("invalid API token")]
    Invalid,
    /// A stored token that was revoked.
    #[error("API token {id} was revoked at {at}")]
    Revoked {
        /// The token's id.
        id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// A stored token past its expiry.
    #[error("API token {id} expired at {at}")]
    Expired {
        /// The token's id.
        id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
}

/// Authentication, authorization and token management. Cheap to clone.
#[derive(Clone)]
pub struct Access {
    store: Arc<dyn Store>,
    bootstrap: Arc<[TokenDigest]>,
    /// Set once a token is known to exist; it never goes back, so only an open API pays
    /// for asking the store on every call.
    closed: Arc<AtomicBool>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").field("bootstrap_tokens", &self.bootstrap.len()).finish_non_exhaustive()
    }
}

impl Access {
    /// Checks tokens against `store` and the configured `bootstrap` tokens (role `admin`).
    pub fn new(store: Arc<dyn Store>, bootstrap: &[String]) -> Access {
        let bootstrap: Vec<TokenDigest> = bootstrap.iter().map(|token| TokenDigest::of(token)).collect();
        let closed = !bootstrap.is_empty();
        Access { store, bootstrap: bootstrap.into(), closed: Arc::new(AtomicBool::new(closed)) }
    }

    /// Whether the API is open: no bootstrap token and no API token ever created.
    pub async fn is_open(&self) -> Result<bool> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(false);
        }
        if self.store.any_api_token().await? {
            self.closed.store(true, Ordering::Release);
            return Ok(false);
        }
        Ok(true)
    }

    /// Authenticates a call by its `authorization` metadata and checks that its role is at
    /// least `needed` for `method`.
    pub async fn authorize(&self, method: &str, needed: Role, authorization: Option<&[u8]>) -> Result<Caller> {
        let caller = self.authenticate(authorization).await?;
        let has = caller.role();
        if has < needed {
            return Err(Error::PermissionDenied { method: method.to_owned(), needed, caller: caller.describe(), has });
        }
        Ok(caller)
    }

    /// Who presents `authorization`.
    pub async fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Caller> {
        if self.is_open().await? {
            return Ok(Caller::Open);
        }
        let header = authorization.ok_or(Unauthenticated::Missing)?;
        let token = std::str::from_utf8(header)
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(Unauthenticated::Malformed)?;
        let digest = TokenDigest::of(token);
        // Every bootstrap digest is compared, without stopping at a match.
        let mut bootstrap = false;
        for known in self.bootstrap.iter() {
            bootstrap |= known.matches(&digest);
        }
        if bootstrap {
            return Ok(Caller::Bootstrap);
        }
        let id = tokens::token_id(token).ok_or(Unauthenticated::Invalid)?;
        let record = self.store.api_token(id).await?.ok_or(Unauthenticated::Invalid)?;
        if !record.digest.matches(&digest) {
            return Err(Unauthenticated::Invalid.into());
        }
        if let Some(at) = record.revoked_at {
            return Err(Unauthenticated::Revoked { id, at }.into());
        }
        let now = Utc::now();
        if let Some(at) = record.expires_at.filter(|at| *at <= now) {
            return Err(Unauthenticated::Expired { id, at }.into());
        }
        if record.last_used_at.is_none_or(|at| now - at >= LAST_USE_PRECISION) {
            // A failed bookkeeping write must not fail the call it records.
            if let Err(err) = self.store.touch_api_token(id, now).await {
                tracing::warn!(token = %id, error = %err, "cannot record the use of an API token");
            }
        }
        Ok(Caller::Token { id, role: record.role })
    }

    /// Creates a token; returns its record and the token, which is not stored.
    pub async fn create(&self, role: Role, name: &str, ttl: Option<TimeDelta>) -> Result<(ApiTokenRecord, String)> {
        if name.len() > MAX_TOKEN_NAME_BYTES {
            return Err(Error::invalid(
                "name",
                format!("{} bytes exceed the {MAX_TOKEN_NAME_BYTES}-byte token name limit", name.len()),
            ));
        }
        if let Some(ttl) = ttl {
            if ttl <= TimeDelta::zero() {
                return Err(Error::invalid("ttl", "must be positive"));
            }
            if ttl > TimeDelta::days(MAX_TOKEN_TTL_DAYS) {
                return Err(Error::invalid(
                    "ttl",
                    format!("exceeds the {MAX_TOKEN_TTL_DAYS}-day token lifetime limit"),
                ));
            }
        }
        let issued = tokens::issue().map_err(|err| Error::Internal(err.to_string()))?;
        let created_at = Utc::now().trunc_subsecs(6);
        let record = ApiTokenRecord {
            id: issued.id,
            name: name.to_owned(),
            role,
            digest: issued.digest,
            created_at,
            last_used_at: None,
            expires_at: ttl.map(|ttl| created_at + ttl),
            revoked_at: None,
        };
        self.store.create_api_token(&record).await?;
        self.closed.store(true, Ordering::Release);
        Ok((record, issued.token))
    }

    /// Every token, oldest first.
    pub async fn list(&self) -> Result<Vec<ApiTokenRecord>> {
        Ok(self.store.api_tokens().await?)
    }

    /// Revokes a token; revoking a revoked one changes nothing.
    pub async fn revoke(&self, id: Uuid) -> Result<ApiTokenRecord> {
        let record = self
            .store
            .revoke_api_token(id, Utc::now())
            .await?
            .ok_or_else(|| Error::NotFound { what: "API token", id: id.to_string() })?;
        Ok(record)
    }
}
