//! Secrets: what pipelines declare and read with `secret.get`, stored encrypted (see
//! `keyring`), scoped globally or to one pipeline.
//!
//! Promises:
//! - A value is sealed before it reaches the store and opened only to build the assignment
//!   of a job whose pipeline declares it; it is sent to that job's runner alone, in that
//!   one message. No record, response, log line or error message holds a value.
//! - A pipeline's own secret wins over a global one of the same name.
//! - Creating a pipeline that declares a secret its scope cannot see is a validation
//!   error naming it; a secret deleted later fails the job at dispatch, naming it.
//! - Values are at least [`MIN_VALUE_BYTES`] long: the runner masks every occurrence of a
//!   value (and its encodings) in logs, and masking a two-character value would mask
//!   everything.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rivet_core::limits::MAX_NAME_BYTES;
use rivet_core::{Diagnostic, FailureReason, JobState, PipelineDefinition};
use uuid::Uuid;

use crate::domain::error::{Error, Result};
use crate::domain::keyring::{KeyError, Keyring, Sealed};
use crate::domain::orchestrator::Orchestrator;
use crate::domain::store::{Finish, JobRecord, PipelineRecord, Store, StoreResult};

/// The shortest value accepted, in bytes.
pub const MIN_VALUE_BYTES: usize = 6;
/// The longest value accepted, in bytes (a PEM key or a kubeconfig fits).
pub const MAX_VALUE_BYTES: usize = 16 * 1024;
/// The most secrets stored in all.
pub const MAX_SECRETS: u64 = 10_000;
/// The longest pipeline name a scope may have (the pipeline name limit).
const MAX_PIPELINE_BYTES: usize = rivet_core::limits::MAX_PIPELINE_NAME_BYTES;

/// Where a secret is visible: to every pipeline, or to one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Every pipeline may declare it.
    Global,
    /// Only the pipeline of this name.
    Pipeline(String),
}

impl Scope {
    /// The scope of a request's `pipeline` field: empty for global.
    pub fn from_field(pipeline: &str) -> Scope {
        if pipeline.is_empty() { Scope::Global } else { Scope::Pipeline(pipeline.to_owned()) }
    }

    /// The pipeline name, empty for global: how the scope is stored and sent.
    pub fn as_field(&self) -> &str {
        match self {
            Scope::Global => "",
            Scope::Pipeline(name) => name,
        }
    }
}

/// A secret as listed: never its value.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretInfo {
    /// Its name.
    pub name: String,
    /// Where it is visible.
    pub scope: Scope,
    /// When it was first set.
    pub created_at: DateTime<Utc>,
    /// When its value was last set.
    pub updated_at: DateTime<Utc>,
}

/// A stored secret with its sealed value.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretRow {
    /// The row's id.
    pub id: Uuid,
    /// The name, scope and times.
    pub info: SecretInfo,
    /// The sealed value.
    pub sealed: Sealed,
}

/// The storage of secrets: a part of [`Store`]. It sees sealed values only.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Stores a sealed value under `(scope, name)` at `at`, replacing one that is there.
    /// Returns the secret and whether it replaced one, or `None` when it is new and
    /// [`MAX_SECRETS`] are stored already.
    async fn put_secret(
        &self,
        name: &str,
        scope: &Scope,
        sealed: &Sealed,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(SecretInfo, bool)>>;
    /// The secrets of `scope`, or every secret: global first, then by pipeline and name.
    async fn list_secrets(&self, scope: Option<&Scope>) -> StoreResult<Vec<SecretInfo>>;
    /// Deletes a secret; `false` when there was none.
    async fn delete_secret(&self, name: &str, scope: &Scope) -> StoreResult<bool>;
    /// The secrets among `names` that the pipeline `pipeline` can see: global ones and
    /// its own.
    async fn visible_secrets(&self, pipeline: &str, names: &[String]) -> StoreResult<Vec<SecretRow>>;
    /// Every stored secret, for re-encryption.
    async fn secret_rows(&self) -> StoreResult<Vec<SecretRow>>;
    /// Replaces the sealed value of row `id` if it still holds `old`; `false` when the row
    /// changed (set again, or deleted) since it was read.
    async fn reseal_secret(&self, id: Uuid, old: &Sealed, new: &Sealed) -> StoreResult<bool>;
}

impl From<KeyError> for Error {
    fn from(err: KeyError) -> Error {
        match err {
            KeyError::NoKey => Error::SecretsRefused(err.to_string()),
            KeyError::Invalid { .. }
            | KeyError::UnknownKey { .. }
            | KeyError::Tampered { .. }
            | KeyError::Random(_) => Error::Internal(err.to_string()),
        }
    }
}

/// Checks a secret's name: an identifier, as pipelines declare them.
pub fn check_name(name: &str) -> Result<()> {
    let identifier = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if identifier {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            format!(
                "`{}` is not a secret name: use 1 to {MAX_NAME_BYTES} letters, digits and `_`, not starting with a digit",
                rivet_core::text::truncate(name, 64)
            ),
        ))
    }
}

/// Checks a scope's pipeline name.
pub fn check_scope(scope: &Scope) -> Result<()> {
    match scope {
        Scope::Pipeline(name) if name.len() > MAX_PIPELINE_BYTES || name.chars().any(char::is_control) => {
            Err(Error::invalid("pipeline", format!("is not a pipeline name (at most {MAX_PIPELINE_BYTES} bytes)")))
        }
        _ => Ok(()),
    }
}

/// Checks a value's size; the message never quotes it.
pub fn check_value(value: &str) -> Result<()> {
    if value.len() < MIN_VALUE_BYTES {
        return Err(Error::invalid(
            "value",
            format!(
                "is {} bytes; secrets must be at least {MIN_VALUE_BYTES} bytes, since every occurrence of a value is \
                 masked in logs",
                value.len()
            ),
        ));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::invalid(
            "value",
            format!("is {} bytes; secrets may be at most {MAX_VALUE_BYTES}", value.len()),
        ));
    }
    Ok(())
}

/// Seals and stores a secret.
pub async fn set(orchestrator: &Orchestrator, name: &str, scope: &Scope, value: &str) -> Result<(SecretInfo, bool)> {
    check_name(name)?;
    check_scope(scope)?;
    check_value(value)?;
    let sealed = orchestrator.keyring().seal(scope.as_field(), name, value)?;
    orchestrator.store().put_secret(name, scope, &sealed, Utc::now()).await?.ok_or_else(|| {
        Error::invalid("name", format!("{MAX_SECRETS} secrets are stored already; delete some before adding more"))
    })
}

/// Lists secrets, never their values.
pub async fn list(orchestrator: &Orchestrator, scope: Option<&Scope>) -> Result<Vec<SecretInfo>> {
    if let Some(scope) = scope {
        check_scope(scope)?;
    }
    Ok(orchestrator.store().list_secrets(scope).await?)
}

/// Deletes a secret.
pub async fn delete(orchestrator: &Orchestrator, name: &str, scope: &Scope) -> Result<()> {
    check_name(name)?;
    check_scope(scope)?;
    if orchestrator.store().delete_secret(name, scope).await? {
        Ok(())
    } else {
        let id = match scope {
            Scope::Global => format!("{name} (global)"),
            Scope::Pipeline(pipeline) => format!("{name} (pipeline {pipeline})"),
        };
        Err(Error::NotFound { what: "secret", id })
    }
}

/// Fails when `definition` declares a secret its pipeline cannot see: one diagnostic per
/// missing secret, on the line that names it.
pub async fn check_declared(
    store: &dyn Store,
    definition: &PipelineDefinition,
    source: &str,
    file_name: &str,
) -> Result<()> {
    if definition.secrets.is_empty() {
        return Ok(());
    }
    let visible = store.visible_secrets(&definition.name, &definition.secrets).await?;
    let missing: Vec<Diagnostic> = definition
        .secrets
        .iter()
        .enumerate()
        .filter(|(_, name)| !visible.iter().any(|row| &row.info.name == *name))
        .map(|(index, name)| Diagnostic {
            file: file_name.to_owned(),
            line: line_naming(source, name),
            field: format!("secrets[{}]", index + 1),
            message: format!(
                "secret `{name}` is not set: set it with `rivet secret set {name} --pipeline {}` (or globally, \
                 without --pipeline) before creating the pipeline",
                definition.name
            ),
        })
        .collect();
    if missing.is_empty() { Ok(()) } else { Err(Error::InvalidPipeline(missing)) }
}

/// The first line of `source` that quotes `name`; 0 when none does.
fn line_naming(source: &str, name: &str) -> u32 {
    let quoted = [format!("\"{name}\""), format!("'{name}'")];
    source
        .lines()
        .position(|line| quoted.iter().any(|q| line.contains(q.as_str())))
        .map_or(0, |index| u32::try_from(index + 1).unwrap_or(0))
}

/// The declared secrets of `pipeline`, opened, for the assignment of `job` to `runner`:
/// each name resolved in the pipeline's scope first, then globally. When one cannot be
/// delivered (deleted since the pipeline was created, or sealed under a key that is gone),
/// the job fails naming it, nothing is sent, and `None` is returned.
pub async fn for_assignment(
    orchestrator: &Orchestrator,
    runner: Uuid,
    job: &JobRecord,
    pipeline: &PipelineRecord,
) -> Result<Option<BTreeMap<String, String>>> {
    let declared = &pipeline.definition.secrets;
    if declared.is_empty() {
        return Ok(Some(BTreeMap::new()));
    }
    match resolve(orchestrator, pipeline, declared).await? {
        Ok(values) => Ok(Some(values)),
        Err((reason, message)) => {
            tracing::warn!(job = %job.id, %message, "a job's secrets cannot be delivered; failing it");
            let assignment = job.assignment();
            orchestrator.registry().remove_job(runner, job.id);
            let finish =
                Finish { state: JobState::Failed, failure_reason: Some(reason), message, outputs: BTreeMap::new() };
            orchestrator.finish_job(None, assignment, finish).await?;
            orchestrator.coord().release_lease(assignment).await?;
            orchestrator.job_changed(job.id).await;
            Ok(None)
        }
    }
}

/// Opens the declared secrets, or says which one cannot be delivered and why.
async fn resolve(
    orchestrator: &Orchestrator,
    pipeline: &PipelineRecord,
    declared: &[String],
) -> Result<Result<BTreeMap<String, String>, (FailureReason, String)>> {
    let config = orchestrator.config();
    if !config.tls.enabled() && !config.listen.ip().is_loopback() {
        return Ok(Err((
            FailureReason::Internal,
            "secrets are not sent to runners over plain text off loopback: configure [tls]".to_owned(),
        )));
    }
    let rows = orchestrator.store().visible_secrets(&pipeline.name, declared).await?;
    let mut values = BTreeMap::new();
    for name in declared {
        let Some(row) = visible(&rows, name) else {
            return Ok(Err((
                FailureReason::InvalidInput,
                format!("secret `{name}` is not set for pipeline `{}` or globally (was it deleted?)", pipeline.name),
            )));
        };
        match orchestrator.keyring().open(row.info.scope.as_field(), name, &row.sealed) {
            Ok(value) => {
                values.insert(name.clone(), value.to_string());
            }
            Err(err) => return Ok(Err((FailureReason::Internal, err.to_string()))),
        }
    }
    Ok(Ok(values))
}

/// The row a pipeline sees under `name`: its own, else the global one.
fn visible<'a>(rows: &'a [SecretRow], name: &str) -> Option<&'a SecretRow> {
    let own = rows.iter().find(|row| row.info.name == name && row.info.scope != Scope::Global);
    own.or_else(|| rows.iter().find(|row| row.info.name == name))
}

/// The value `pipeline` sees under `name` (its own secret, else the global one), for the
/// orchestrator's own use (a forge token); `None` when neither is set.
pub async fn open_visible(orchestrator: &Orchestrator, pipeline: &str, name: &str) -> Result<Option<String>> {
    let rows = orchestrator.store().visible_secrets(pipeline, &[name.to_owned()]).await?;
    let Some(row) = visible(&rows, name) else { return Ok(None) };
    let value = orchestrator.keyring().open(row.info.scope.as_field(), name, &row.sealed)?;
    Ok(Some(value.to_string()))
}

/// What a re-encryption did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Secrets now sealed under the current key that were not before.
    pub resealed: usize,
    /// Secrets already under the current key.
    pub current: usize,
    /// Secrets set or deleted while the rotation ran (they are under the current key, or
    /// gone, anyway).
    pub raced: usize,
}

/// Re-encrypts every secret not sealed under the current key. Safe while replicas serve:
/// each row is replaced only if it still holds what was read, and every replica opens
/// values under the old and the new key alike.
pub async fn rotate(store: &dyn Store, keyring: &Keyring) -> Result<Rotation> {
    let current = keyring.current_id().ok_or(KeyError::NoKey)?.to_owned();
    let mut rotation = Rotation::default();
    for row in store.secret_rows().await? {
        if row.sealed.key_id == current {
            rotation.current += 1;
            continue;
        }
        let scope = row.info.scope.as_field();
        let value = keyring.open(scope, &row.info.name, &row.sealed)?;
        let sealed = keyring.seal(scope, &row.info.name, &value)?;
        if store.reseal_secret(row.id, &row.sealed, &sealed).await? {
            rotation.resealed += 1;
        } else {
            rotation.raced += 1;
        }
    }
    Ok(rotation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_values_and_scopes_are_checked_without_quoting_values() {
        for good in ["DEPLOY_TOKEN", "_x", "a1"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1A", "has-dash", "sp ace", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        let err = check_value("abc12").expect_err("short").to_string();
        assert!(err.contains("at least 6 bytes") && !err.contains("abc12"), "{err}");
        assert!(check_value("abc123").is_ok());
        let err = check_value(&"v".repeat(MAX_VALUE_BYTES + 1)).expect_err("long").to_string();
        assert!(err.contains("at most 16384"), "{err}");
        assert!(check_scope(&Scope::Pipeline("x".repeat(201))).is_err());
        assert_eq!(Scope::from_field(""), Scope::Global);
        assert_eq!(Scope::from_field("deploy").as_field(), "deploy");
    }

    #[test]
    fn a_missing_secret_is_reported_on_the_line_that_names_it() {
        let source = "pipeline.define{\n  name = 'x',\n  secrets = { \"A_TOKEN\", 'B_TOKEN' },\n}";
        assert_eq!(line_naming(source, "A_TOKEN"), 3);
        assert_eq!(line_naming(source, "B_TOKEN"), 3);
        assert_eq!(line_naming(source, "C_TOKEN"), 0);
    }
}
