//! Which delivery a webhook request is. Forges retry a delivery that timed out and let users
//! redeliver by hand, with the same id each time: the orchestrator records the ids it has
//! acted on and starts nothing for one it has seen. An id is unique only within one forge
//! instance, so it is recorded together with the webhook it came to.

use super::{Headers, first_of};
use crate::forge::Forge;

/// The longest delivery id accepted, in bytes. The forges send UUIDs (36 bytes).
pub const MAX_DELIVERY_ID_BYTES: usize = 128;

/// The headers that carry each forge's delivery id, the preferred first.
///
/// GitLab's `Idempotency-Key` (GitLab 17.4 and later) is the one that stays the same across
/// retries, which is what redelivery detection needs, so it comes first; older GitLab sends
/// only the per-event UUIDs.
fn delivery_headers(forge: Forge) -> &'static [&'static str] {
    match forge {
        Forge::Github => &["X-GitHub-Delivery"],
        Forge::Gitea => &["X-Gitea-Delivery", "X-Forgejo-Delivery"],
        Forge::Gitlab => &["Idempotency-Key", "X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"],
    }
}

/// Why a request has no usable delivery id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// None of the forge's delivery headers is present.
    #[error("missing header `{header}`")]
    Missing {
        /// The forge's main delivery header.
        header: &'static str,
    },
    /// The id is empty or longer than [`MAX_DELIVERY_ID_BYTES`].
    #[error("header `{header}` is {len} bytes long; a delivery id has 1 to {MAX_DELIVERY_ID_BYTES}")]
    BadLength {
        /// The header.
        header: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The id has a byte that is not printable ASCII.
    #[error("header `{header}` has characters other than printable ASCII")]
    NotPrintable {
        /// The header.
        header: &'static str,
    },
}

/// The id of the delivery `headers` belong to, as sent by `forge`.
pub fn delivery_id<H: Headers + ?Sized>(forge: Forge, headers: &H) -> Result<String, DeliveryError> {
    let names = delivery_headers(forge);
    let (header, value) = first_of(headers, names).ok_or(DeliveryError::Missing { header: names[0] })?;
    let value = value.trim();
    if value.is_empty() || value.len() > MAX_DELIVERY_ID_BYTES {
        return Err(DeliveryError::BadLength { header, len: value.len() });
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(DeliveryError::NotPrintable { header });
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(forge: Forge, headers: &[(&str, &str)], expect: Result<&str, DeliveryError>) {
        assert_eq!(delivery_id(forge, headers), expect.map(str::to_owned), "{forge} {headers:?}");
    }

    #[test]
    fn each_forge_names_its_delivery() {
        let id = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
        check(Forge::Github, &[("x-github-delivery", id)], Ok(id));
        check(Forge::Github, &[("X-Gitea-Delivery", id)], Err(DeliveryError::Missing { header: "X-GitHub-Delivery" }));
        check(Forge::Gitea, &[("X-Gitea-Delivery", id)], Ok(id));
        check(Forge::Gitea, &[("X-Forgejo-Delivery", id)], Ok(id));
        check(Forge::Gitea, &[], Err(DeliveryError::Missing { header: "X-Gitea-Delivery" }));
        check(Forge::Gitlab, &[("X-Gitlab-Event-UUID", id)], Ok(id));
        check(Forge::Gitlab, &[("X-Gitlab-Webhook-UUID", id)], Ok(id));
        check(Forge::Gitlab, &[("X-Gitlab-Event-UUID", "event"), ("Idempotency-Key", id)], Ok(id));
        check(Forge::Gitlab, &[("X-GitHub-Delivery", id)], Err(DeliveryError::Missing { header: "Idempotency-Key" }));
    }

    #[test]
    fn delivery_ids_are_short_printable_ascii() {
        let header = "X-GitHub-Delivery";
        let long = "a".repeat(MAX_DELIVERY_ID_BYTES + 1);
        check(Forge::Github, &[(header, &long)], Err(DeliveryError::BadLength { header, len: 129 }));
        check(Forge::Github, &[(header, &long[1..])], Ok(&long[1..]));
        check(Forge::Github, &[(header, " ")], Err(DeliveryError::BadLength { header, len: 0 }));
        check(Forge::Github, &[(header, "a b")], Err(DeliveryError::NotPrintable { header }));
        check(Forge::Github, &[(header, "a\u{7f}")], Err(DeliveryError::NotPrintable { header }));
        check(Forge::Github, &[(header, "é")], Err(DeliveryError::NotPrintable { header }));
        assert_eq!(
            DeliveryError::BadLength { header, len: 129 }.to_string(),
            "header `X-GitHub-Delivery` is 129 bytes long; a delivery id has 1 to 128"
        );
    }
}
