//! The keys that encrypt stored secrets, and the encryption itself.
//!
//! Every value is sealed with XChaCha20-Poly1305 under the current key with a fresh random
//! 24-byte nonce (random nonces of that size never collide in practice, so no counter has
//! to be shared between replicas). The associated data is the secret's scope and name, so
//! a ciphertext copied into another row (another pipeline's secret, another name) fails to
//! open instead of delivering the wrong value. Each row records the id of the key that
//! sealed it; earlier keys stay configured as `previous_keys` while `rotate-key`
//! re-encrypts, which is how a key is rotated without downtime.
//!
//! A key id is the first 16 hex digits of a SHA-256 over a label and the key: it names a
//! key in the table without revealing anything usable about it.

use std::fmt;
use std::path::Path;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::config::SecretsConfig;

/// How many bytes a key has.
const KEY_BYTES: usize = 32;
/// How many bytes a nonce has.
pub const NONCE_BYTES: usize = 24;

/// A value sealed under one key, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The id of the key that sealed it.
    pub key_id: String,
    /// The random nonce.
    pub nonce: Vec<u8>,
    /// The ciphertext with its 16-byte tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// What can go wrong with keys. No message holds a key or a value.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No current key is configured.
    #[error(
        "no secrets key is configured: set secrets.key_file (or secrets.key, RIVET_SECRETS__KEY) \
         to 32 random bytes as 64 hex digits, e.g. from `openssl rand -hex 32`"
    )]
    NoKey,
    /// A configured key is not 32 bytes in hex or base64.
    #[error("{setting}: {message}")]
    Invalid {
        /// The setting that holds it.
        setting: String,
        /// What is wrong with it.
        message: String,
    },
    /// A row was sealed under a key that is not configured.
    #[error(
        "secret `{name}` is encrypted under key {key_id}, which is not configured: \
         add that key to secrets.previous_keys (or previous_key_files)"
    )]
    UnknownKey {
        /// The secret's name.
        name: String,
        /// The key id in its row.
        key_id: String,
    },
    /// A ciphertext did not open under its key: it was altered or moved to another row.
    #[error("secret `{name}` does not decrypt under key {key_id}: its row was altered or moved")]
    Tampered {
        /// The secret's name.
        name: String,
        /// The key id in its row.
        key_id: String,
    },
    /// The operating system gave no random bytes.
    #[error("cannot read random bytes for a nonce: {0}")]
    Random(String),
}

struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The configured keys: the current one seals, every one opens.
pub struct Keyring {
    current: Option<Key>,
    previous: Vec<Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let previous: Vec<&str> = self.previous.iter().map(|key| key.id.as_str()).collect();
        f.debug_struct("Keyring").field("current", &self.current_id()).field("previous", &previous).finish()
    }
}

impl Keyring {
    /// A keyring without keys: nothing can be sealed or opened.
    pub fn empty() -> Keyring {
        Keyring { current: None, previous: Vec::new() }
    }

    /// The keys `config` names, read from their files where given.
    pub fn load(config: &SecretsConfig) -> Result<Keyring, KeyError> {
        let current = match (&config.key_file, &config.key) {
            (Some(_), Some(_)) => {
                return Err(KeyError::Invalid {
                    setting: "secrets.key_file and secrets.key".to_owned(),
                    message: "both give the current key: set only one".to_owned(),
                });
            }
            (Some(path), None) => Some(key_from_file(path, "secrets.key_file")?),
            (None, Some(text)) => Some(Key::new(parse_key(text).map_err(invalid("secrets.key"))?)),
            (None, None) => None,
        };
        let mut previous = Vec::new();
        for (index, path) in config.previous_key_files.iter().enumerate() {
            previous.push(key_from_file(path, &format!("secrets.previous_key_files[{index}]"))?);
        }
        for (index, text) in config.previous_keys.iter().enumerate() {
            let setting = format!("secrets.previous_keys[{index}]");
            previous.push(Key::new(parse_key(text).map_err(invalid(&setting))?));
        }
        Ok(Keyring { current, previous })
    }

    /// The id of the key that seals, when one is configured.
    pub fn current_id(&self) -> Option<&str> {
        self.current.as_ref().map(|key| key.id.as_str())
    }

    /// Seals `value`, the secret `name` of `scope` (a pipeline name, or empty for global).
    pub fn seal(&self, scope: &str, name: &str, value: &str) -> Result<Sealed, KeyError> {
        let key = self.current.as_ref().ok_or(KeyError::NoKey)?;
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|err| KeyError::Random(err.to_string()))?;
        let aad = associated_data(scope, name);
        let ciphertext = key
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: value.as_bytes(), aad: &aad })
            // Encryption fails only for messages past 256 GiB, far above the value limit.
            .map_err(|_| KeyError::Random("encryption failed".to_owned()))?;
        Ok(Sealed { key_id: key.id.clone(), nonce: nonce.to_vec(), ciphertext })
    }

    /// Opens a sealed value of the secret `name` of `scope`, under whichever configured
    /// key sealed it.
    pub fn open(&self, scope: &str, name: &str, sealed: &Sealed) -> Result<Zeroizing<String>, KeyError> {
        let key = self
            .current
            .iter()
            .chain(&self.previous)
            .find(|key| key.id == sealed.key_id)
            .ok_or_else(|| KeyError::UnknownKey { name: name.to_owned(), key_id: sealed.key_id.clone() })?;
        let tampered = || KeyError::Tampered { name: name.to_owned(), key_id: sealed.key_id.clone() };
        let nonce: [u8; NONCE_BYTES] = sealed.nonce.as_slice().try_into().map_err(|_| tampered())?;
        let aad = associated_data(scope, name);
        let plain = key
            .cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: &sealed.ciphertext, aad: &aad })
            .map_err(|_| tampered())?;
        let plain = Zeroizing::new(plain);
        let text = std::str::from_utf8(&plain).map_err(|_| tampered())?;
        Ok(Zeroizing::new(text.to_owned()))
    }
}

impl Key {
    fn new(bytes: Zeroizing<[u8; KEY_BYTES]>) -> Key {
        let mut hasher = Sha256::new();
        hasher.update(b"rivet secrets key id\0");
        hasher.update(bytes.as_slice());
        let id = hex::encode(&hasher.finalize()[..8]);
        Key { id, cipher: XChaCha20Poly1305::new(&chacha20poly1305::Key::from(*bytes)) }
    }
}

fn invalid(setting: &str) -> impl Fn(String) -> KeyError + '_ {
    move |message| KeyError::Invalid { setting: setting.to_owned(), message }
}

fn key_from_file(path: &Path, setting: &str) -> Result<Key, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|err| KeyError::Invalid {
        setting: setting.to_owned(),
        message: format!("cannot read {}: {err}", path.display()),
    })?;
    let text = Zeroizing::new(text);
    let bytes = parse_key(&text).map_err(|message| KeyError::Invalid {
        setting: setting.to_owned(),
        message: format!("{}: {message}", path.display()),
    })?;
    Ok(Key::new(bytes))
}

/// A key from its text: 64 hex digits or the standard base64 of 32 bytes, surrounding
/// whitespace ignored. The error never quotes the text.
pub fn parse_key(text: &str) -> Result<Zeroizing<[u8; KEY_BYTES]>, String> {
    let text = text.trim();
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    if text.len() == 2 * KEY_BYTES && hex::decode_to_slice(text, key.as_mut_slice()).is_ok() {
        return Ok(key);
    }
    let decoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(text).unwrap_or_default());
    if decoded.len() == KEY_BYTES {
        key.copy_from_slice(&decoded);
        return Ok(key);
    }
    Err(format!(
        "is not a key: expected 32 bytes as 64 hex digits or base64 ({} characters given)",
        text.chars().count()
    ))
}

/// A new random key as 64 hex digits.
pub fn generate_key() -> Result<Zeroizing<String>, KeyError> {
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    getrandom::fill(key.as_mut_slice()).map_err(|err| KeyError::Random(err.to_string()))?;
    Ok(Zeroizing::new(hex::encode(key.as_slice())))
}

/// Makes `path` hold a new random key, readable by its owner only, unless it exists: the
/// embedded mode's key, which lives beside its database.
pub fn ensure_key_file(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key = generate_key().map_err(std::io::Error::other)?;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut file) => {
            file.write_all(key.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

/// The associated data of a secret: its scope and name, each prefixed with its length so
/// that no two (scope, name) pairs share one.
fn associated_data(scope: &str, name: &str) -> Vec<u8> {
    format!("rivet-secret/v1/{}:{scope}/{}:{name}", scope.len(), name.len()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(current: Option<&str>, previous: &[&str]) -> Keyring {
        Keyring::load(&SecretsConfig {
            key: current.map(str::to_owned),
            previous_keys: previous.iter().map(|key| (*key).to_owned()).collect(),
            ..SecretsConfig::default()
        })
        .expect("valid keys")
    }

    #[test]
    fn sealed_values_open_only_in_their_own_row_and_under_a_configured_key() {
        let old = generate_key().expect("random");
        let new = generate_key().expect("random");
        let before = keyring(Some(&old), &[]);
        let sealed = before.seal("deploy", "TOKEN", "hunter2-value").expect("sealed");
        assert_eq!(sealed.nonce.len(), NONCE_BYTES);
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"hunter"), "the ciphertext is not the value");
        assert_eq!(before.open("deploy", "TOKEN", &sealed).expect("opens").as_str(), "hunter2-value");
        // Another row: another scope or name.
        assert!(matches!(before.open("", "TOKEN", &sealed), Err(KeyError::Tampered { .. })));
        assert!(matches!(before.open("deploy", "OTHER", &sealed), Err(KeyError::Tampered { .. })));
        assert!(matches!(before.open("deplo", "yTOKEN", &sealed), Err(KeyError::Tampered { .. })));
        // Two seals of one value differ (fresh nonces).
        assert_ne!(before.seal("deploy", "TOKEN", "hunter2-value").expect("sealed"), sealed);
        // After a rotation the old key still opens; without it, the error names the key.
        let during = keyring(Some(&new), &[&old]);
        assert_eq!(during.open("deploy", "TOKEN", &sealed).expect("opens").as_str(), "hunter2-value");
        assert_ne!(during.current_id(), Some(sealed.key_id.as_str()));
        let after = keyring(Some(&new), &[]);
        let err = after.open("deploy", "TOKEN", &sealed).expect_err("unknown key").to_string();
        assert!(err.contains(&sealed.key_id) && err.contains("secrets.previous_keys"), "{err}");
        assert!(matches!(Keyring::empty().seal("", "X", "value!"), Err(KeyError::NoKey)));
    }

    #[test]
    fn keys_are_hex_or_base64_and_errors_never_quote_them() {
        let hex_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let base64_key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(parse_key(hex_key).is_ok());
        assert!(parse_key(&format!(" {base64_key}\n")).is_ok());
        let err = parse_key("not-a-key-but-secret-text").expect_err("too short");
        assert!(!err.contains("secret-text"), "{err}");
        let err = Keyring::load(&SecretsConfig {
            key: Some("short".into()),
            key_file: Some("/nonexistent".into()),
            ..SecretsConfig::default()
        })
        .expect_err("both");
        assert!(err.to_string().contains("set only one"), "{err}");
    }

    #[test]
    fn an_embedded_key_file_is_made_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secrets.key");
        ensure_key_file(&path).expect("made");
        let first = std::fs::read_to_string(&path).expect("read");
        ensure_key_file(&path).expect("kept");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), first);
        assert_eq!(std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777, 0o600);
        assert!(parse_key(&first).is_ok());
    }
}
