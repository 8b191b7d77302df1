//! Is a webhook request from the forge? Each forge proves it with the secret shared when the
//! webhook was configured: GitHub and Gitea sign the raw body with HMAC-SHA256, GitLab sends
//! the secret itself.
//!
//! Comparisons run in constant time (`subtle`), so that the time a refusal takes tells an
//! attacker nothing about how much of a guessed signature was right. The signature is
//! checked over the body exactly as received: re-serialised JSON would not match.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{Headers, first_of};
use crate::forge::Forge;

type HmacSha256 = Hmac<Sha256>;

/// GitHub's signature header: `sha256=` and the hex HMAC-SHA256 of the body.
const GITHUB_SIGNATURE: &str = "X-Hub-Signature-256";
/// Gitea's signature headers (Forgejo sends both): the bare hex HMAC-SHA256 of the body.
const GITEA_SIGNATURES: &[&str] = &["X-Gitea-Signature", "X-Forgejo-Signature"];
/// GitLab's token header: the secret itself.
const GITLAB_TOKEN: &str = "X-Gitlab-Token";

/// The longest GitLab token accepted, in bytes. GitLab allows secrets of any length, but
/// nobody configures one this long; the bound keeps the comparison's cost in our hands.
const MAX_TOKEN_BYTES: usize = 1024;

/// Why a webhook request was not accepted as coming from the forge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The webhook's secret is empty: anyone could sign with it, so nothing is accepted.
    #[error("the webhook secret is empty; configure a secret before accepting webhooks")]
    EmptySecret,
    /// The request carries no signature or token.
    #[error("missing header `{header}`")]
    MissingHeader {
        /// The header that was expected.
        header: &'static str,
    },
    /// The signature or token header is not in the forge's format.
    #[error("malformed header `{header}`: {reason}")]
    MalformedHeader {
        /// The header.
        header: &'static str,
        /// What is wrong with its value.
        reason: &'static str,
    },
    /// The signature or token is well formed but does not match the secret and body.
    #[error("header `{header}` does not match the webhook secret")]
    Mismatch {
        /// The header.
        header: &'static str,
    },
}

/// Checks that a request with `headers` and the raw `body` was sent by `forge` with the
/// webhook's `secret`.
pub fn verify<H: Headers + ?Sized>(forge: Forge, headers: &H, body: &[u8], secret: &[u8]) -> Result<(), VerifyError> {
    if secret.is_empty() {
        return Err(VerifyError::EmptySecret);
    }
    match forge {
        Forge::Github => {
            let header = GITHUB_SIGNATURE;
            let value = headers.header(header).ok_or(VerifyError::MissingHeader { header })?;
            let hex = value
                .strip_prefix("sha256=")
                .ok_or(VerifyError::MalformedHeader { header, reason: "expected `sha256=` and a hex digest" })?;
            check_hmac(header, hex, body, secret)
        }
        Forge::Gitea => {
            let (header, hex) = first_of(headers, GITEA_SIGNATURES)
                .ok_or(VerifyError::MissingHeader { header: GITEA_SIGNATURES[0] })?;
            check_hmac(header, hex, body, secret)
        }
        Forge::Gitlab => {
            let header = GITLAB_TOKEN;
            let token = headers.header(header).ok_or(VerifyError::MissingHeader { header })?;
            if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
                return Err(VerifyError::MalformedHeader { header, reason: "the token is empty or too long" });
            }
            // `ct_eq` on slices of different lengths is false at once: that leaks the
            // secret's length, which is not the secret.
            if bool::from(token.as_bytes().ct_eq(secret)) { Ok(()) } else { Err(VerifyError::Mismatch { header }) }
        }
    }
}

/// Compares the hex HMAC-SHA256 `hex` sent in `header` with the one of `body` under `secret`.
fn check_hmac(header: &'static str, hex: &str, body: &[u8], secret: &[u8]) -> Result<(), VerifyError> {
    let mut sent = [0u8; 32];
    hex::decode_to_slice(hex.trim(), &mut sent)
        .map_err(|_| VerifyError::MalformedHeader { header, reason: "expected 64 hex digits" })?;
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    if bool::from(expected[..].ct_eq(&sent)) { Ok(()) } else { Err(VerifyError::Mismatch { header }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    /// GitHub's documented example: this secret and body give this signature
    /// (docs.github.com, "Validating webhook deliveries").
    const GITHUB_EXAMPLE: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn check(forge: Forge, headers: &[(&str, &str)], body: &[u8], secret: &[u8], expect: Result<(), VerifyError>) {
        assert_eq!(verify(forge, headers, body, secret), expect, "{forge} {headers:?}");
    }

    #[test]
    fn github_signature_is_hmac_sha256_of_the_body() {
        let good = format!("sha256={GITHUB_EXAMPLE}");
        let header = GITHUB_SIGNATURE;
        check(Forge::Github, &[("x-hub-signature-256", &good)], BODY, SECRET, Ok(()));
        check(Forge::Github, &[(header, &good)], BODY, b"another secret", Err(VerifyError::Mismatch { header }));
        check(Forge::Github, &[(header, &good)], b"Hello, World?", SECRET, Err(VerifyError::Mismatch { header }));
        check(Forge::Github, &[], BODY, SECRET, Err(VerifyError::MissingHeader { header }));
        // The SHA-1 header GitHub also sends is not enough.
        check(
            Forge::Github,
            &[("X-Hub-Signature", "sha1=00")],
            BODY,
            SECRET,
            Err(VerifyError::MissingHeader { header }),
        );
        let no_prefix = VerifyError::MalformedHeader { header, reason: "expected `sha256=` and a hex digest" };
        check(Forge::Github, &[(header, GITHUB_EXAMPLE)], BODY, SECRET, Err(no_prefix));
        let not_hex = VerifyError::MalformedHeader { header, reason: "expected 64 hex digits" };
        check(Forge::Github, &[(header, "sha256=xyz")], BODY, SECRET, Err(not_hex.clone()));
        check(Forge::Github, &[(header, &good[..good.len() - 2])], BODY, SECRET, Err(not_hex));
        check(Forge::Github, &[(header, &good)], BODY, b"", Err(VerifyError::EmptySecret));
    }

    #[test]
    fn gitea_and_forgejo_signatures_are_bare_hex() {
        for header in GITEA_SIGNATURES {
            check(Forge::Gitea, &[(header, GITHUB_EXAMPLE)], BODY, SECRET, Ok(()));
            check(Forge::Gitea, &[(header, &GITHUB_EXAMPLE.to_uppercase())], BODY, SECRET, Ok(()));
            check(
                Forge::Gitea,
                &[(header, GITHUB_EXAMPLE)],
                b"tampered",
                SECRET,
                Err(VerifyError::Mismatch { header }),
            );
            check(Forge::Gitea, &[(header, GITHUB_EXAMPLE)], BODY, b"wrong", Err(VerifyError::Mismatch { header }));
            let malformed = VerifyError::MalformedHeader { header, reason: "expected 64 hex digits" };
            check(Forge::Gitea, &[(header, "sha256=00")], BODY, SECRET, Err(malformed));
        }
        let header = GITEA_SIGNATURES[0];
        check(Forge::Gitea, &[("X-Hub-Signature-256", "x")], BODY, SECRET, Err(VerifyError::MissingHeader { header }));
    }

    #[test]
    fn gitlab_token_is_the_secret() {
        let header = GITLAB_TOKEN;
        let secret = "It's a Secret to Everybody";
        check(Forge::Gitlab, &[("x-gitlab-token", secret)], BODY, SECRET, Ok(()));
        check(
            Forge::Gitlab,
            &[(header, "It's a Secret to Everybodz")],
            BODY,
            SECRET,
            Err(VerifyError::Mismatch { header }),
        );
        check(Forge::Gitlab, &[(header, "It's a Secret")], BODY, SECRET, Err(VerifyError::Mismatch { header }));
        check(Forge::Gitlab, &[], BODY, SECRET, Err(VerifyError::MissingHeader { header }));
        let malformed = VerifyError::MalformedHeader { header, reason: "the token is empty or too long" };
        check(Forge::Gitlab, &[(header, "")], BODY, SECRET, Err(malformed.clone()));
        check(Forge::Gitlab, &[(header, &"a".repeat(MAX_TOKEN_BYTES + 1))], BODY, SECRET, Err(malformed));
        check(Forge::Gitlab, &[(header, "")], BODY, b"", Err(VerifyError::EmptySecret));
    }

    #[test]
    fn errors_name_the_header() {
        let error = VerifyError::MalformedHeader { header: GITHUB_SIGNATURE, reason: "expected 64 hex digits" };
        assert_eq!(error.to_string(), "malformed header `X-Hub-Signature-256`: expected 64 hex digits");
        assert_eq!(
            VerifyError::Mismatch { header: GITLAB_TOKEN }.to_string(),
            "header `X-Gitlab-Token` does not match the webhook secret"
        );
    }
}
