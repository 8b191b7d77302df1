//! API tokens: their roles, their format, and the hash the store keeps instead of them.
//!
//! A token reads `rivet_<id>_<secret>`: the prefix makes a leaked token recognisable (to a
//! person and to secret scanners), the id (a UUID as 32 hex digits) lets the orchestrator
//! find its row without comparing against every stored hash, and the secret is 32 random
//! bytes from the operating system as 64 hex digits. The store keeps only the SHA-256 of
//! the whole token: 256 random bits need no slow hash, since no dictionary can guess them.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// What every token starts with.
pub const TOKEN_PREFIX: &str = "rivet_";

/// How many random bytes a token's secret has.
const SECRET_BYTES: usize = 32;

/// What a caller may do. Each role may do everything the roles before it may, so roles
/// compare: `Viewer < Operator < Admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads: get, list, watch and follow; validate scripts.
    Viewer,
    /// A viewer that may also launch and cancel jobs.
    Operator,
    /// Everything: pipelines, runners and tokens.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// The role's name: `viewer`, `operator` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| format!("unknown role `{text}`: expected viewer, operator or admin"))
    }
}

/// The SHA-256 of a token: what the store keeps. `==` compares in constant time too, so
/// no comparison of digests can leak where they differ.
#[derive(Clone, Copy, Eq)]
pub struct TokenDigest([u8; 32]);

impl PartialEq for TokenDigest {
    fn eq(&self, other: &TokenDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl TokenDigest {
    /// The digest of `token`.
    pub fn of(token: &str) -> TokenDigest {
        TokenDigest(Sha256::digest(token.as_bytes()).into())
    }

    /// Whether two digests are equal, in time that does not depend on where they differ.
    pub fn matches(&self, other: &TokenDigest) -> bool {
        self == other
    }

    /// The digest as 64 lowercase hex digits, as stored.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A stored digest; `None` when it is not 64 hex digits.
    pub fn from_hex(text: &str) -> Option<TokenDigest> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(TokenDigest(bytes))
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({})", self.to_hex())
    }
}

/// A newly made token: the text handed to its owner once, and what is stored of it.
pub struct IssuedToken {
    /// The token's id, also inside the text.
    pub id: Uuid,
    /// The whole token, `rivet_<id>_<secret>`.
    pub token: String,
    /// Its hash, for the store.
    pub digest: TokenDigest,
}

impl fmt::Debug for IssuedToken {
    // Never the token: debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The operating system could not provide random bytes.
#[derive(Debug, thiserror::Error)]
#[error("cannot read random bytes for a token: {0}")]
pub struct RandomError(String);

/// Makes a new token with a fresh id and secret.
pub fn issue() -> Result<IssuedToken, RandomError> {
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut secret).map_err(|err| RandomError(err.to_string()))?;
    let id = Uuid::new_v4();
    let token = format!("{TOKEN_PREFIX}{}_{}", id.simple(), hex::encode(secret));
    let digest = TokenDigest::of(&token);
    Ok(IssuedToken { id, token, digest })
}

/// The id inside `token` when it has the format of an issued token; `None` otherwise.
pub fn token_id(token: &str) -> Option<Uuid> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let well_formed =
        id.len() == 32 && secret.len() == 2 * SECRET_BYTES && secret.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return None;
    }
    Uuid::try_parse(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_carries_its_id_and_hashes_to_its_digest() {
        let issued = issue().expect("random bytes");
        assert!(issued.token.starts_with("rivet_"), "{}", issued.token);
        assert_eq!(issued.token.len(), TOKEN_PREFIX.len() + 32 + 1 + 64);
        assert_eq!(token_id(&issued.token), Some(issued.id));
        assert!(TokenDigest::of(&issued.token).matches(&issued.digest));
        assert!(!TokenDigest::of(&format!("{}0", issued.token)).matches(&issued.digest));
        let stored = issued.digest.to_hex();
        assert_eq!(stored.len(), 64);
        assert!(!stored.contains(&issued.token[TOKEN_PREFIX.len() + 33..]), "the digest is not the secret");
        assert_eq!(TokenDigest::from_hex(&stored), Some(issued.digest));
        assert!(!format!("{issued:?}").contains(&issued.token), "Debug must not print the token");

        let other = issue().expect("random bytes");
        assert_ne!(other.id, issued.id);
        assert_ne!(other.token, issued.token);
    }

    #[test]
    fn only_well_formed_tokens_have_an_id() {
        let issued = issue().expect("random bytes");
        let secret = &issued.token[TOKEN_PREFIX.len() + 33..];
        for bad in [
            "",
            "rivet_",
            "api-secret",
            &issued.token[1..],
            &issued.token[..issued.token.len() - 1],
            &format!("rivet_{}_{secret}", "z".repeat(32)),
            &format!("rivet_{}_{}", issued.id.simple(), "g".repeat(64)),
        ] {
            assert_eq!(token_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn roles_are_ordered_and_named() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert_eq!("root".parse::<Role>().unwrap_err(), "unknown role `root`: expected viewer, operator or admin");
    }
}
