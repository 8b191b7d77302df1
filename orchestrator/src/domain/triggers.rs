//! Triggers: a pipeline launched by a forge's webhook deliveries (see `crate::webhooks` for
//! the listener, `rivet_core::trigger` for the filter and the inputs an event gives).
//!
//! Promises:
//! - A trigger's webhook secret is 32 random bytes (64 hex digits), made here, returned
//!   once by [`create`] and sealed under the secrets keyring before it reaches the store.
//!   No record, listing, log line or error message holds it; only the webhook listener
//!   opens it, to check a delivery's signature.
//! - A trigger names an existing pipeline, a known forge, a bounded repository and a valid
//!   filter; every problem of a request is reported at once.

use crate::domain::statuses::StatusTarget;
use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use rivet_core::forge::Forge;
use rivet_core::forge::webhook::EventKind;
use rivet_core::limits::MAX_NAME_BYTES;
use rivet_core::trigger::TriggerFilter;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::domain::error::{Error, Result};
use crate::domain::keyring::{KeyError, Keyring, Sealed};
use crate::domain::orchestrator::Orchestrator;
use crate::domain::secrets::Rotation;
use crate::domain::store::Store;

/// The most triggers stored in all.
pub const MAX_TRIGGERS: u64 = 10_000;
/// The longest repository name accepted, in bytes (GitLab nests groups; 256 is plenty).
pub const MAX_REPOSITORY_BYTES: usize = 256;
/// The most fixed inputs one trigger may have.
pub const MAX_FIXED_INPUTS: usize = 64;
/// The longest fixed input value, in bytes.
pub const MAX_INPUT_VALUE_BYTES: usize = 4096;
/// How many random bytes a webhook secret has.
const SECRET_BYTES: usize = 32;
/// The scope webhook secrets are sealed under. A secret's scope is a pipeline name, which
/// never holds a control character, so no secret's sealed value opens as a trigger's (or
/// the other way round): the scope is part of the associated data.
const SECRET_SCOPE: &str = "\u{0}trigger";

/// A stored trigger, without its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerRecord {
    /// Its id: the last segment of its webhook URL.
    pub id: Uuid,
    /// The name of the pipeline it launches.
    pub pipeline: String,
    /// The forge that sends its deliveries.
    pub forge: Forge,
    /// The repository whose deliveries it accepts.
    pub repository: String,
    /// Which events launch.
    pub filter: TriggerFilter,
    /// Inputs every launch gets.
    pub inputs: BTreeMap<String, String>,
    /// Where launched jobs report their state, when they do.
    pub status: Option<StatusReporting>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Commit statuses for a trigger's jobs (see `domain::statuses`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusReporting {
    /// The secret holding the forge API token.
    pub token_secret: String,
    /// The forge's REST API base URL.
    pub api_url: String,
    /// The name the status is shown under.
    pub context: String,
}

impl TriggerRecord {
    /// Where the statuses of a job this trigger launched for `event` go, when it reports;
    /// they link to `link`.
    pub fn status_target(
        &self,
        event: &rivet_core::forge::webhook::ForgeEvent,
        link: Option<String>,
    ) -> Option<StatusTarget> {
        let status = self.status.as_ref()?;
        Some(StatusTarget {
            forge: self.forge,
            api_url: status.api_url.clone(),
            repository: self.repository.clone(),
            sha: event.sha.clone(),
            token_secret: status.token_secret.clone(),
            context: status.context.clone(),
            link,
        })
    }
}

/// Commit statuses as requested.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusSpec {
    /// The secret holding the token; required.
    pub token_secret: String,
    /// The API base URL; the forge's public one when empty.
    pub api_url: String,
    /// The status name; `rivet/<pipeline>` when empty.
    pub context: String,
}

/// A stored trigger with its sealed secret.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerRow {
    /// The trigger.
    pub record: TriggerRecord,
    /// The sealed webhook secret.
    pub sealed: Sealed,
}

/// A trigger as requested, before any check.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriggerSpec {
    /// The pipeline's name.
    pub pipeline: String,
    /// The forge's name.
    pub forge: String,
    /// The repository.
    pub repository: String,
    /// Event kinds by name.
    pub events: Vec<String>,
    /// Branch patterns.
    pub branches: Vec<String>,
    /// Tag patterns.
    pub tags: Vec<String>,
    /// Path patterns.
    pub paths: Vec<String>,
    /// Fixed inputs.
    pub inputs: BTreeMap<String, String>,
    /// Commit statuses, when wanted.
    pub status: Option<StatusSpec>,
}

/// One problem of a request field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The request field, e.g. `branches` or `inputs.target`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Why a trigger was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The request has problems, all of them listed.
    #[error("invalid trigger: {}", .0.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldProblem>),
    /// Anything else: the pipeline is missing, no key, the store failed.
    #[error(transparent)]
    Domain(#[from] Error),
}

impl From<KeyError> for CreateError {
    fn from(err: KeyError) -> CreateError {
        CreateError::Domain(err.into())
    }
}

/// The event kind of its name.
fn event_kind(name: &str) -> Option<EventKind> {
    [EventKind::Push, EventKind::Tag, EventKind::PullRequest].into_iter().find(|kind| kind.as_str() == name)
}

/// Checks every field of `spec` that needs no database, reporting every problem.
pub fn check(spec: &TriggerSpec) -> Result<(Forge, TriggerFilter), Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let mut problem = |field: &str, message: String| problems.push(FieldProblem { field: field.to_owned(), message });
    if spec.pipeline.is_empty() {
        problem("pipeline", "is required: the name of the pipeline to launch".to_owned());
    } else if spec.pipeline.len() > rivet_core::limits::MAX_PIPELINE_NAME_BYTES {
        problem("pipeline", "is not a pipeline name (too long)".to_owned());
    }
    let forge = match spec.forge.parse::<Forge>() {
        Ok(forge) => Some(forge),
        Err(err) => {
            problem("forge", format!("{err}; use github, gitlab or gitea (forgejo)"));
            None
        }
    };
    let repository = spec.repository.as_str();
    if repository.trim().is_empty() {
        problem("repository", "is required: the repository as the forge names it, e.g. `acme/app`".to_owned());
    } else if repository.len() > MAX_REPOSITORY_BYTES {
        problem("repository", format!("is {} bytes; the limit is {MAX_REPOSITORY_BYTES}", repository.len()));
    } else if repository.chars().any(|c| c.is_whitespace() || c.is_control()) {
        problem("repository", "must not contain spaces or control characters".to_owned());
    }
    let mut events = Vec::new();
    for (index, name) in spec.events.iter().enumerate() {
        match event_kind(name) {
            Some(kind) => events.push(kind),
            None => problem(
                &format!("events[{index}]"),
                format!("unknown event `{}`; use push, tag or pull_request", rivet_core::text::truncate(name, 64)),
            ),
        }
    }
    if spec.inputs.len() > MAX_FIXED_INPUTS {
        problem("inputs", format!("{} inputs; the limit is {MAX_FIXED_INPUTS}", spec.inputs.len()));
    } else {
        for (name, value) in &spec.inputs {
            if name.is_empty() || name.len() > MAX_NAME_BYTES {
                problem("inputs", format!("input names have 1 to {MAX_NAME_BYTES} bytes"));
            } else if value.len() > MAX_INPUT_VALUE_BYTES {
                problem(
                    &format!("inputs.{name}"),
                    format!("is {} bytes; the limit is {MAX_INPUT_VALUE_BYTES}", value.len()),
                );
            }
        }
    }
    let filter = match TriggerFilter::new(events, &spec.branches, &spec.tags, &spec.paths) {
        Ok(filter) => Some(filter),
        Err(errors) => {
            for error in errors.0 {
                let field = match &error {
                    rivet_core::trigger::TriggerError::TooManyGlobs { list, .. } => (*list).to_owned(),
                    _ => glob_field(spec, &error),
                };
                problems.push(FieldProblem { field, message: error.to_string() });
            }
            None
        }
    };
    if let (Some(status), Some(forge)) = (&spec.status, forge) {
        check_status(status, forge, &mut problems);
    }
    match (forge, filter) {
        (Some(forge), Some(filter)) if problems.is_empty() => Ok((forge, filter)),
        _ => Err(problems),
    }
}

/// The longest status name (GitHub's context).
const MAX_STATUS_CONTEXT_BYTES: usize = 255;

fn check_status(status: &StatusSpec, forge: Forge, problems: &mut Vec<FieldProblem>) {
    let mut problem = |field: &str, message: String| problems.push(FieldProblem { field: field.to_owned(), message });
    if status.token_secret.is_empty() {
        problem("status.token_secret", "is required: the name of the secret holding the forge's API token".to_owned());
    } else if let Err(err) = crate::domain::secrets::check_name(&status.token_secret) {
        problem("status.token_secret", err.to_string());
    }
    if status.api_url.is_empty() {
        if forge.default_api_url().is_none() {
            problem(
                "status.api_url",
                format!("is required for {forge}: the instance's API, e.g. https://gitea.example/api/v1"),
            );
        }
    } else if status.api_url.len() > MAX_REPOSITORY_BYTES {
        problem("status.api_url", format!("is longer than {MAX_REPOSITORY_BYTES} bytes"));
    } else {
        match url::Url::parse(&status.api_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            _ => problem(
                "status.api_url",
                format!("`{}` is not an http(s) URL", rivet_core::text::truncate(&status.api_url, 64)),
            ),
        }
    }
    if status.context.len() > MAX_STATUS_CONTEXT_BYTES || status.context.chars().any(|c| c.is_control()) {
        problem(
            "status.context",
            format!("must be at most {MAX_STATUS_CONTEXT_BYTES} bytes without control characters"),
        );
    }
}

/// The list a bad glob came from: the first list holding a pattern the error quotes.
fn glob_field(spec: &TriggerSpec, error: &rivet_core::trigger::TriggerError) -> String {
    let text = error.to_string();
    let lists = [("branches", &spec.branches), ("tags", &spec.tags), ("paths", &spec.paths)];
    for (list, patterns) in lists {
        for (index, pattern) in patterns.iter().enumerate() {
            let quoted = !pattern.is_empty() && text.contains(&format!("`{pattern}`"));
            let empty = pattern.is_empty() && matches!(error, rivet_core::trigger::TriggerError::EmptyGlob);
            if quoted || empty {
                return format!("{list}[{index}]");
            }
        }
    }
    "filter".to_owned()
}

/// Creates a trigger: checks the request and the pipeline, makes and seals a secret,
/// stores the trigger. Returns it with the secret, which nothing returns again.
pub async fn create(
    orchestrator: &Orchestrator,
    spec: TriggerSpec,
) -> std::result::Result<(TriggerRecord, Zeroizing<String>), CreateError> {
    let (forge, filter) = check(&spec).map_err(CreateError::Invalid)?;
    let pipeline = orchestrator.find_pipeline(&spec.pipeline, 0).await?;
    if Uuid::parse_str(&spec.pipeline).is_ok() {
        return Err(CreateError::Invalid(vec![FieldProblem {
            field: "pipeline".to_owned(),
            message: format!("name the pipeline (`{}`), not one of its versions", pipeline.name),
        }]));
    }
    let undeclared: Vec<FieldProblem> = spec
        .inputs
        .keys()
        .filter(|name| !pipeline.definition.inputs.iter().any(|input| &input.name == *name))
        .map(|name| FieldProblem {
            field: format!("inputs.{name}"),
            message: format!("pipeline `{}` declares no input `{name}`", pipeline.name),
        })
        .collect();
    if !undeclared.is_empty() {
        return Err(CreateError::Invalid(undeclared));
    }
    let id = Uuid::now_v7();
    let secret = generate_secret()?;
    let sealed = orchestrator.keyring().seal(SECRET_SCOPE, &id.to_string(), &secret)?;
    let record = TriggerRecord {
        id,
        pipeline: pipeline.name.clone(),
        forge,
        repository: spec.repository.trim().to_owned(),
        filter,
        inputs: spec.inputs,
        status: spec.status.map(|status| StatusReporting {
            api_url: match status.api_url.is_empty() {
                true => forge.default_api_url().unwrap_or_default().to_owned(),
                false => status.api_url,
            },
            context: match status.context.is_empty() {
                true => format!("rivet/{}", pipeline.name),
                false => status.context,
            },
            token_secret: status.token_secret,
        }),
        // The stored precision, so that the record returned equals the one read back.
        created_at: Utc::now().trunc_subsecs(6),
    };
    let row = TriggerRow { record, sealed };
    if !orchestrator.store().create_trigger(&row).await.map_err(Error::from)? {
        return Err(CreateError::Domain(Error::ResourceExhausted(format!(
            "{MAX_TRIGGERS} triggers are stored already; delete some before adding more"
        ))));
    }
    Ok((row.record, secret))
}

/// A trigger's id from a request field.
pub fn parse_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| Error::invalid("trigger_id", "is not a trigger id (a UUID)"))
}

/// A trigger by id, without its secret.
pub async fn get(orchestrator: &Orchestrator, id: Uuid) -> Result<TriggerRecord> {
    match orchestrator.store().trigger(id).await? {
        Some(row) => Ok(row.record),
        None => Err(Error::NotFound { what: "trigger", id: id.to_string() }),
    }
}

/// Every trigger, oldest first, without secrets.
pub async fn list(orchestrator: &Orchestrator) -> Result<Vec<TriggerRecord>> {
    Ok(orchestrator.store().list_triggers().await?)
}

/// Deletes a trigger.
pub async fn delete(orchestrator: &Orchestrator, id: Uuid) -> Result<()> {
    if orchestrator.store().delete_trigger(id).await? {
        Ok(())
    } else {
        Err(Error::NotFound { what: "trigger", id: id.to_string() })
    }
}

/// Opens the webhook secret of `row`, for the listener to check a delivery with.
pub fn open_secret(orchestrator: &Orchestrator, row: &TriggerRow) -> std::result::Result<Zeroizing<String>, KeyError> {
    orchestrator.keyring().open(SECRET_SCOPE, &row.record.id.to_string(), &row.sealed)
}

/// Re-encrypts every trigger secret not sealed under the current key (`rotate-key`), as
/// `secrets::rotate` does for secrets: safe while replicas serve.
pub async fn rotate(store: &dyn Store, keyring: &Keyring) -> Result<Rotation> {
    let current = keyring.current_id().ok_or(KeyError::NoKey)?.to_owned();
    let mut rotation = Rotation::default();
    for row in store.trigger_rows().await? {
        if row.sealed.key_id == current {
            rotation.current += 1;
            continue;
        }
        let name = row.record.id.to_string();
        let secret = keyring.open(SECRET_SCOPE, &name, &row.sealed)?;
        let sealed = keyring.seal(SECRET_SCOPE, &name, &secret)?;
        if store.reseal_trigger(row.record.id, &row.sealed, &sealed).await? {
            rotation.resealed += 1;
        } else {
            rotation.raced += 1;
        }
    }
    Ok(rotation)
}

/// A new webhook secret: 32 random bytes as 64 hex digits.
fn generate_secret() -> std::result::Result<Zeroizing<String>, KeyError> {
    let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
    getrandom::fill(bytes.as_mut_slice()).map_err(|err| KeyError::Random(err.to_string()))?;
    Ok(Zeroizing::new(hex::encode(bytes.as_slice())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TriggerSpec {
        TriggerSpec {
            pipeline: "app".into(),
            forge: "github".into(),
            repository: "acme/app".into(),
            events: vec!["push".into()],
            branches: vec!["main".into()],
            ..TriggerSpec::default()
        }
    }

    #[test]
    fn a_good_spec_passes() {
        let (forge, filter) = check(&spec()).expect("valid");
        assert_eq!(forge, Forge::Github);
        assert_eq!(filter.events(), &[EventKind::Push]);
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let bad = TriggerSpec {
            pipeline: String::new(),
            forge: "bitbucket".into(),
            repository: " ".into(),
            events: vec!["push".into(), "release".into()],
            branches: vec!["main".into(), String::new()],
            ..TriggerSpec::default()
        };
        let problems = check(&bad).expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["pipeline", "forge", "repository", "events[1]", "branches[1]"], "{problems:?}");
        let long = TriggerSpec { repository: "a".repeat(MAX_REPOSITORY_BYTES + 1), ..spec() };
        assert_eq!(check(&long).expect_err("long")[0].field, "repository");
    }

    #[test]
    fn secrets_are_64_hex_digits_and_differ() {
        let a = generate_secret().expect("random");
        let b = generate_secret().expect("random");
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
