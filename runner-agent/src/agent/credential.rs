//! The runner's own credential, kept in its state directory.
//!
//! A new runner with a registration token trades it once (`RegisterRunner`) for a
//! credential: its runner id, a secret, and the labels it was granted. The credential is
//! written to `<state_dir>/credential.json` with mode 0600 (only the runner's user may read
//! it), atomically (a crash leaves the old file or the new one), and every later connection
//! presents it. Losing the file means registering again with a new token.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The credential file's name in the state directory.
pub const FILE_NAME: &str = "credential.json";

/// A runner's credential, as `RegisterRunner` returned it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Credential {
    /// The runner's id, chosen by the orchestrator.
    pub runner_id: Uuid,
    /// The secret token presented as `authorization: Bearer <credential>`.
    pub credential: String,
    /// The labels the runner may announce.
    pub labels: BTreeMap<String, String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("Credential").field("runner_id", &self.runner_id).field("labels", &self.labels).finish()
    }
}

/// Why the credential file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Reading or writing it failed.
    #[error("cannot use {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// It is not a credential.
    #[error("{path} is not a runner credential: {source}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: serde_json::Error,
    },
}

/// The credential file of the state directory `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Reads the credential; `None` when the runner has not registered yet.
pub fn load(state_dir: &Path) -> Result<Option<Credential>, CredentialError> {
    let path = path(state_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CredentialError::Io { path, source }),
    };
    serde_json::from_str(&text).map(Some).map_err(|source| CredentialError::Malformed { path, source })
}

/// Writes the credential with mode 0600, replacing the file atomically.
pub fn store(state_dir: &Path, credential: &Credential) -> Result<PathBuf, CredentialError> {
    let path = path(state_dir);
    let temporary = state_dir.join(format!(".{FILE_NAME}.tmp"));
    let io = |source| CredentialError::Io { path: path.clone(), source };
    let text = serde_json::to_vec_pretty(credential)
        .map_err(|source| CredentialError::Malformed { path: path.clone(), source })?;
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary).map_err(io)?;
    file.write_all(&text).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&temporary, &path).map_err(io)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_stored_credential_is_private_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(load(dir.path()).expect("no file is fine").is_none());
        let credential = Credential {
            runner_id: Uuid::new_v4(),
            credential: "rivet-runner_secret".to_owned(),
            labels: BTreeMap::from([("os".to_owned(), "linux".to_owned())]),
        };
        let path = store(dir.path(), &credential).expect("stored");
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "only the runner's user may read the credential");
        assert_eq!(load(dir.path()).expect("readable"), Some(credential.clone()));
        assert!(!format!("{credential:?}").contains("secret"), "Debug hides the secret");
        std::fs::write(&path, "{").expect("write");
        assert!(matches!(load(dir.path()), Err(CredentialError::Malformed { .. })));
    }
}
