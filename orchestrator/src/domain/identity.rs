//! Runner identity: who a runner is, and what it may claim.
//!
//! An operator creates a registration token (or lists one in `auth.registration_tokens`).
//! A new runner presents it once to `RegisterRunner` and receives its own credential: a
//! runner id chosen here and a random secret. Every later `Connect` presents the
//! credential, which binds the session to that runner id and to the labels the
//! registration granted. Only SHA-256 hashes of secrets are stored, compared in constant
//! time. Secrets are 256 bits from the operating system's generator, so a fast hash is
//! enough: there is nothing to brute-force.
//!
//! Token formats (the prefixes let secret scanners find leaked ones):
//! - registration token: `rivet-reg_<token id, 32 hex>_<secret, 64 hex>`;
//! - runner credential: `rivet-runner_<runner id, 32 hex>_<secret, 64 hex>`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::domain::bounds;
use crate::domain::error::{Error, Result};
use crate::domain::metrics::Requeue;
use crate::domain::orchestrator::{Orchestrator, RunnerCommand};
use crate::domain::store::{NewRegistrationToken, Redemption, RunnerCredential, RunnerRecord};
use crate::domain::tokens::TokenDigest;

/// The prefix of registration tokens the orchestrator creates.
pub const REGISTRATION_PREFIX: &str = "rivet-reg_";
/// The prefix of runner credentials.
pub const CREDENTIAL_PREFIX: &str = "rivet-runner_";
/// The bytes of randomness in every secret.
const SECRET_BYTES: usize = 32;
/// Labels a runner may always announce when a token's labels do not name them: they
/// describe the machine, and jobs pick a platform by them.
const MACHINE_LABELS: [&str; 2] = ["os", "arch"];

/// Who is on the other end of a runner stream.
#[derive(Debug, Clone, PartialEq)]
pub enum RunnerIdentity {
    /// A registered runner, proven by its credential.
    Registered {
        /// Its id: the only id its hellos may claim.
        runner_id: Uuid,
        /// The labels its hellos may announce.
        labels: BTreeMap<String, String>,
    },
    /// No runner authentication is configured (the embedded mode on loopback): the hello's
    /// id is taken at its word, except that a registered runner's id needs its credential.
    Unauthenticated,
}

/// A freshly created secret and its public id, rendered as a token.
#[derive(Debug, Clone)]
pub struct IssuedSecret {
    /// The id part.
    pub id: Uuid,
    /// The whole token, shown once.
    pub token: String,
    /// The hash that is stored.
    pub hash: String,
}

/// The SHA-256 of a secret, in hex.
pub fn hash_secret(secret: &str) -> String {
    TokenDigest::of(secret).to_hex()
}

/// Whether a stored hash and a presented one are equal, in time that does not depend on
/// where they differ.
pub fn hashes_match(stored: &str, presented: &str) -> bool {
    bool::from(stored.as_bytes().ct_eq(presented.as_bytes()))
}

/// Whether `presented` equals one of `tokens` (configured in clear text), in constant
/// time per comparison. Both sides are hashed first, so lengths leak nothing either.
pub fn matches_any(tokens: &[String], presented: &str) -> bool {
    let presented = hash_secret(presented);
    tokens.iter().fold(false, |found, token| found | hashes_match(&hash_secret(token), &presented))
}

/// A new random secret, in hex, from the operating system's generator.
pub fn random_secret() -> Result<String> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|err| Error::Internal(format!("no randomness for a secret: {err}")))?;
    Ok(hex::encode(bytes))
}

fn issue(prefix: &str, id: Uuid) -> Result<IssuedSecret> {
    let secret = random_secret()?;
    Ok(IssuedSecret { id, token: format!("{prefix}{}_{secret}", id.simple()), hash: hash_secret(&secret) })
}

/// Splits `<prefix><id>_<secret>` into the id and the secret's hash.
fn parse(prefix: &str, token: &str) -> Option<(Uuid, String)> {
    let (id, secret) = token.strip_prefix(prefix)?.split_once('_')?;
    let id = Uuid::try_parse(id).ok()?;
    (secret.len() == 2 * SECRET_BYTES).then(|| (id, hash_secret(secret)))
}

/// Whether a bearer token has the shape of a runner credential.
pub fn is_credential(token: &str) -> bool {
    token.starts_with(CREDENTIAL_PREFIX)
}

/// The labels a registration grants: a token's own labels (plus the machine labels the
/// runner announces, when the token does not name them), or, for a token without labels,
/// what the runner asks for.
pub fn granted_labels(
    token: &BTreeMap<String, String>,
    requested: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    if token.is_empty() {
        return requested.clone();
    }
    let mut granted = token.clone();
    for key in MACHINE_LABELS {
        if let Some(value) = requested.get(key) {
            granted.entry(key.to_owned()).or_insert_with(|| value.clone());
        }
    }
    granted
}

/// The first announced label that `granted` does not hold with the same value.
pub fn ungranted_label<'a>(
    granted: &BTreeMap<String, String>,
    announced: &'a BTreeMap<String, String>,
) -> Option<(&'a String, &'a String)> {
    announced.iter().find(|(key, value)| granted.get(*key) != Some(*value))
}

/// A registration token to create.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// Labels it grants; empty grants what each runner asks for.
    pub labels: BTreeMap<String, String>,
    /// When it stops being accepted.
    pub expires_at: Option<DateTime<Utc>>,
    /// How many runners may register with it.
    pub uses: Option<u32>,
}

/// Creates and stores a registration token; returns it (the only time it is shown).
pub async fn create_registration_token(orchestrator: &Orchestrator, request: TokenRequest) -> Result<IssuedSecret> {
    bounds::check_runner("token", "", "", &request.labels)?;
    let issued = issue(REGISTRATION_PREFIX, Uuid::new_v4())?;
    let token = NewRegistrationToken {
        id: issued.id,
        secret_hash: issued.hash.clone(),
        labels: request.labels,
        uses: request.uses,
        expires_at: request.expires_at,
    };
    orchestrator.store().create_registration_token(&token).await?;
    tracing::info!(token = %issued.id, "registration token created");
    Ok(issued)
}

/// What a new runner tells about itself when it registers.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Its name.
    pub name: String,
    /// The labels it asks for.
    pub labels: BTreeMap<String, String>,
    /// Its version.
    pub version: String,
}

/// A registered runner's new credential.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The runner's id.
    pub runner_id: Uuid,
    /// The credential, shown once.
    pub credential: String,
    /// The labels it may announce.
    pub labels: BTreeMap<String, String>,
}

/// Checks a registration token (a configured one, or a stored one, counting a use) and
/// registers a new runner with its own credential.
pub async fn register(
    orchestrator: &Orchestrator,
    configured: &[String],
    presented: &str,
    registration: Registration,
) -> Result<Registered> {
    bounds::check_runner("registration", &registration.name, &registration.version, &registration.labels)?;
    let now = Utc::now();
    let token_labels = if matches_any(configured, presented) {
        BTreeMap::new()
    } else {
        let Some((id, hash)) = parse(REGISTRATION_PREFIX, presented) else {
            return Err(Error::RunnerUnauthenticated("invalid registration token".to_owned()));
        };
        match orchestrator.store().redeem_registration_token(id, &hash, now).await? {
            Redemption::Granted(labels) => labels,
            Redemption::Unknown => return Err(Error::RunnerUnauthenticated("invalid registration token".to_owned())),
            Redemption::Expired(at) => {
                return Err(Error::RunnerUnauthenticated(format!(
                    "registration token {} expired at {}",
                    id.simple(),
                    at.to_rfc3339()
                )));
            }
            Redemption::UsedUp => {
                return Err(Error::RunnerUnauthenticated(format!(
                    "registration token {} has no uses left: every runner it admits has registered",
                    id.simple()
                )));
            }
        }
    };
    let issued = issue(CREDENTIAL_PREFIX, Uuid::new_v4())?;
    let labels = granted_labels(&token_labels, &registration.labels);
    let runner = RunnerRecord {
        id: issued.id,
        name: if registration.name.is_empty() { issued.id.to_string() } else { registration.name },
        labels: labels.clone(),
        capacity: 0,
        version: registration.version,
        last_seen: now,
    };
    let credential = RunnerCredential {
        runner_id: issued.id,
        secret_hash: issued.hash,
        labels: labels.clone(),
        registered_at: now,
        revoked_at: None,
    };
    orchestrator.store().register_runner(&runner, &credential).await?;
    tracing::info!(runner = %issued.id, name = %runner.name, "runner registered");
    Ok(Registered { runner_id: issued.id, credential: issued.token, labels })
}

/// Checks a runner credential: the runner it names must be registered, not revoked, and
/// the secret must match.
pub async fn authenticate(orchestrator: &Orchestrator, presented: &str) -> Result<RunnerIdentity> {
    let Some((runner_id, hash)) = parse(CREDENTIAL_PREFIX, presented) else {
        return Err(Error::RunnerUnauthenticated("malformed runner credential".to_owned()));
    };
    let Some(credential) = orchestrator.store().runner_credential(runner_id).await? else {
        return Err(Error::RunnerUnauthenticated(format!("unknown runner credential for runner {runner_id}")));
    };
    if !hashes_match(&credential.secret_hash, &hash) {
        return Err(Error::RunnerUnauthenticated(format!("invalid runner credential for runner {runner_id}")));
    }
    if let Some(at) = credential.revoked_at {
        return Err(Error::RunnerUnauthenticated(format!(
            "the credential of runner {runner_id} was revoked at {}; register the runner again with a new \
             registration token",
            at.to_rfc3339()
        )));
    }
    Ok(RunnerIdentity::Registered { runner_id, labels: credential.labels })
}

/// Revokes a runner's credential: its sessions end at once (on every replica) and the jobs
/// it holds are requeued (or end, when out of attempts or cancelled). Returns those jobs.
pub async fn revoke(orchestrator: &Orchestrator, runner_id: Uuid) -> Result<Vec<Uuid>> {
    if !orchestrator.store().revoke_runner(runner_id, Utc::now()).await? {
        return Err(Error::NotFound { what: "registered runner", id: runner_id.to_string() });
    }
    tracing::warn!(runner = %runner_id, "runner credential revoked");
    // End the session here at once, and take the runner out of this replica's dispatch
    // before its jobs are requeued, so none is handed straight back to it. Other replicas
    // hear it on the runner's topic.
    if let Some(session) = orchestrator.registry().session(runner_id) {
        session.fence.cancel();
        orchestrator.registry().disconnect(runner_id, session.connection);
    }
    orchestrator.send_runner_command(runner_id, &RunnerCommand::Revoke).await;
    let message = format!("runner {runner_id} was revoked");
    let mut requeued = Vec::new();
    for job in orchestrator.store().active_jobs(Some(runner_id)).await? {
        let assignment = job.assignment();
        if orchestrator.requeue_job(None, assignment, Requeue::RunnerRevoked, &message).await?.is_some() {
            orchestrator.coord().release_lease(assignment).await?;
            orchestrator.registry().remove_job(runner_id, job.id);
            orchestrator.job_changed(job.id).await;
            requeued.push(job.id);
        }
    }
    if !requeued.is_empty() {
        orchestrator.announce_dispatch().await;
    }
    Ok(requeued)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn issued_tokens_parse_back_to_their_id_and_hash() {
        let issued = issue(CREDENTIAL_PREFIX, Uuid::new_v4()).expect("randomness");
        assert_eq!(parse(CREDENTIAL_PREFIX, &issued.token), Some((issued.id, issued.hash.clone())));
        assert_eq!(parse(REGISTRATION_PREFIX, &issued.token), None, "the prefix tells the kinds apart");
        assert_eq!(parse(CREDENTIAL_PREFIX, &issued.token[..issued.token.len() - 1]), None);
        let other = issue(CREDENTIAL_PREFIX, issued.id).expect("randomness");
        assert_ne!(other.hash, issued.hash, "secrets are random");
    }

    #[test]
    fn configured_tokens_match_exactly() {
        let tokens = vec!["alpha".to_owned(), "bravo".to_owned()];
        assert!(matches_any(&tokens, "bravo"));
        assert!(!matches_any(&tokens, "brav"));
        assert!(!matches_any(&tokens, "bravo "));
        assert!(!matches_any(&[], "bravo"));
    }

    #[test]
    fn a_token_with_labels_grants_only_those_and_the_machine_labels() {
        let asked = labels(&[("os", "linux"), ("arch", "x86_64"), ("pool", "secure")]);
        assert_eq!(granted_labels(&BTreeMap::new(), &asked), asked);
        let token = labels(&[("pool", "ci"), ("os", "linux")]);
        assert_eq!(granted_labels(&token, &asked), labels(&[("os", "linux"), ("arch", "x86_64"), ("pool", "ci")]));
        let granted = granted_labels(&token, &asked);
        assert_eq!(ungranted_label(&granted, &asked), Some((&"pool".to_owned(), &"secure".to_owned())));
        assert_eq!(ungranted_label(&granted, &labels(&[("pool", "ci")])), None);
    }
}
