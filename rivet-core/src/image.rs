//! Container image references: the one parser that both pipeline validation and the
//! runner's executor use, so a reference accepted at creation is the one the runner pulls.
//!
//! The grammar is the OCI distribution reference grammar (the one `docker` and `podman`
//! follow, from `distribution/reference`):
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [ domain "/" ] path
//! domain           := host [ ":" port ]
//! host             := domain-component ( "." domain-component )* | "[" IPv6 "]"
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9] [a-zA-Z0-9-]* [a-zA-Z0-9]
//! port             := [0-9]+
//! path             := path-component ( "/" path-component )*
//! path-component   := alpha-numeric ( separator alpha-numeric )*
//! alpha-numeric    := [a-z0-9]+
//! separator        := [_.] | "__" | "-"+
//! tag              := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! digest           := algorithm ":" hex
//! algorithm        := component ( [+._-] component )*
//! component        := [A-Za-z] [A-Za-z0-9]*
//! hex              := [0-9a-fA-F]{32,}
//! ```
//!
//! As in `docker`, the first `/`-separated part of a name is its domain when it contains a
//! `.` or a `:`, has an upper-case letter, or is `localhost`; otherwise it is the first path
//! component (`library/alpine`). The name is at most 255 bytes (the registries' limit).
//! Nothing in the grammar bounds a digest, so this module does: an algorithm of at most
//! [`MAX_DIGEST_ALGORITHM_BYTES`] and at most [`MAX_DIGEST_HEX_BYTES`] hex digits (SHA-512's
//! 128), which bounds a whole reference by [`MAX_REFERENCE_BYTES`].

use std::fmt;

/// The longest name (domain and path), in bytes: the limit registries enforce.
pub const MAX_NAME_BYTES: usize = 255;
/// The longest tag, in bytes (the grammar's own bound).
pub const MAX_TAG_BYTES: usize = 128;
/// The longest digest algorithm, in bytes.
pub const MAX_DIGEST_ALGORITHM_BYTES: usize = 32;
/// The most hex digits a digest may have: a SHA-512 digest's 128.
pub const MAX_DIGEST_HEX_BYTES: usize = 128;
/// The fewest hex digits a digest may have (128 bits), from the grammar.
pub const MIN_DIGEST_HEX_BYTES: usize = 32;
/// The longest reference, in bytes: a name, a tag and a digest, each at its longest.
pub const MAX_REFERENCE_BYTES: usize =
    MAX_NAME_BYTES + 1 + MAX_TAG_BYTES + 1 + MAX_DIGEST_ALGORITHM_BYTES + 1 + MAX_DIGEST_HEX_BYTES;

/// A parsed image reference, borrowing from the text it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageReference<'a> {
    /// The registry, with its port: `ghcr.io`, `localhost:5000`; `None` for a short name.
    pub domain: Option<&'a str>,
    /// The repository path: `library/alpine`, `org/image`.
    pub path: &'a str,
    /// The tag, without its `:`.
    pub tag: Option<&'a str>,
    /// The digest, `algorithm:hex`, without its `@`.
    pub digest: Option<&'a str>,
}

/// Why a text is not an image reference; the message says which part is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// Nothing was given.
    #[error("it is empty")]
    Empty,
    /// The whole text is longer than any reference can be.
    #[error("it is {0} bytes; the limit is {MAX_REFERENCE_BYTES}")]
    TooLong(usize),
    /// The name (domain and path) is over the registries' limit.
    #[error("its name is {0} bytes; the limit is {MAX_NAME_BYTES}")]
    NameTooLong(usize),
    /// The domain is not a host name, IPv4 or bracketed IPv6 address, with an optional port.
    #[error("`{0}` is not a registry host[:port]")]
    Domain(String),
    /// A path component breaks the grammar (upper case, a leading separator, `+`, ...).
    #[error("the repository part `{0}` must be lower-case letters and digits, separated by `.`, `_`, `__` or dashes")]
    PathComponent(String),
    /// The tag breaks the grammar.
    #[error(
        "the tag `{0}` must be 1 to {MAX_TAG_BYTES} letters, digits, `_`, `.` or `-`, not starting with `.` or `-`"
    )]
    Tag(String),
    /// The digest breaks the grammar.
    #[error(
        "the digest `{0}` must be `algorithm:hex` (e.g. `sha256:` and {MIN_DIGEST_HEX_BYTES} to {MAX_DIGEST_HEX_BYTES} hex digits)"
    )]
    Digest(String),
}

impl<'a> ImageReference<'a> {
    /// Parses `text` by the grammar in the module documentation.
    pub fn parse(text: &'a str) -> Result<ImageReference<'a>, ImageError> {
        if text.is_empty() {
            return Err(ImageError::Empty);
        }
        if text.len() > MAX_REFERENCE_BYTES {
            return Err(ImageError::TooLong(text.len()));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (text, None),
        };
        if let Some(digest) = digest
            && !is_digest(digest)
        {
            return Err(ImageError::Digest(digest.to_owned()));
        }
        // A tag's `:` is the last one after the last `/`; an earlier one is a port's.
        let last_slash = rest.rfind('/').map_or(0, |at| at + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(at) => (&rest[..last_slash + at], Some(&rest[last_slash + at + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !is_tag(tag)
        {
            return Err(ImageError::Tag(tag.to_owned()));
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(ImageError::NameTooLong(name.len()));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, path)) if looks_like_domain(first) => (Some(first), path),
            _ => (None, name),
        };
        if let Some(domain) = domain
            && !is_domain(domain)
        {
            return Err(ImageError::Domain(domain.to_owned()));
        }
        if let Some(bad) = path.split('/').find(|component| !is_path_component(component)) {
            return Err(ImageError::PathComponent(bad.to_owned()));
        }
        Ok(ImageReference { domain, path, tag, digest })
    }
}

impl fmt::Display for ImageReference<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(domain) = self.domain {
            write!(f, "{domain}/")?;
        }
        f.write_str(self.path)?;
        if let Some(tag) = self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Whether the first part of a name is a registry rather than a path component.
fn looks_like_domain(first: &str) -> bool {
    first.contains(['.', ':']) || first == "localhost" || first.bytes().any(|b| b.is_ascii_uppercase())
}

/// `host [":" port]`, the host a name, an IPv4 address or a bracketed IPv6 address.
fn is_domain(domain: &str) -> bool {
    let (host, port) = if let Some(inner) = domain.strip_prefix('[') {
        let Some((address, after)) = inner.split_once(']') else { return false };
        if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        }
    };
    let host_ok = domain.starts_with('[') || (!host.is_empty() && host.split('.').all(is_domain_component));
    let port_ok = port.is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

fn is_domain_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

/// `alpha-numeric (separator alpha-numeric)*`, separators `.`, `_`, `__` or dashes.
fn is_path_component(component: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else { return false };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Between alpha-numeric runs: exactly one `.`, one or two `_`, or any number of `-`.
    let mut separator_start = None;
    for (at, b) in bytes.iter().enumerate() {
        if alnum(b) {
            if let Some(start) = separator_start.take() {
                let separator_ok = match &bytes[start..at] {
                    b"." | b"_" | b"__" => true,
                    dashes => dashes.iter().all(|d| *d == b'-'),
                };
                if !separator_ok {
                    return false;
                }
            }
        } else if matches!(b, b'.' | b'_' | b'-') {
            separator_start.get_or_insert(at);
        } else {
            return false;
        }
    }
    true
}

fn is_tag(tag: &str) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let bytes = tag.as_bytes();
    bytes.len() <= MAX_TAG_BYTES
        && bytes.first().is_some_and(word)
        && bytes.iter().all(|b| word(b) || matches!(b, b'.' | b'-'))
}

fn is_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else { return false };
    let component = |part: &str| {
        let bytes = part.as_bytes();
        bytes.first().is_some_and(u8::is_ascii_alphabetic) && bytes.iter().all(u8::is_ascii_alphanumeric)
    };
    algorithm.len() <= MAX_DIGEST_ALGORITHM_BYTES
        && algorithm.split(['+', '.', '_', '-']).all(component)
        && (MIN_DIGEST_HEX_BYTES..=MAX_DIGEST_HEX_BYTES).contains(&hex.len())
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// A reference's parts: domain, path, tag, digest.
    type Parts<'a> = (Option<&'a str>, &'a str, Option<&'a str>, Option<&'a str>);

    /// Parses `text` and checks its parts, or checks that it is refused with `expect`.
    fn check(text: &str, expect: Result<Parts<'_>, ImageError>) {
        let parsed = ImageReference::parse(text).map(|r| (r.domain, r.path, r.tag, r.digest));
        assert_eq!(parsed, expect, "{text}");
        if let Ok(reference) = ImageReference::parse(text) {
            assert_eq!(reference.to_string(), text, "a reference prints as it was written");
        }
    }

    #[test]
    fn names_tags_and_digests_split_as_docker_splits_them() {
        check("alpine", Ok((None, "alpine", None, None)));
        check("library/alpine:3.20", Ok((None, "library/alpine", Some("3.20"), None)));
        check("localhost/rivet-test:latest", Ok((Some("localhost"), "rivet-test", Some("latest"), None)));
        check("localhost:5000/a/b", Ok((Some("localhost:5000"), "a/b", None, None)));
        check(
            "registry.example:5000/team/app:v1_2-rc.3",
            Ok((Some("registry.example:5000"), "team/app", Some("v1_2-rc.3"), None)),
        );
        check("[::1]:5000/app:1", Ok((Some("[::1]:5000"), "app", Some("1"), None)));
        check("10.0.0.1/app", Ok((Some("10.0.0.1"), "app", None, None)));
        let pinned = format!("ghcr.io/org/img:1.2@{SHA256}");
        check(&pinned, Ok((Some("ghcr.io"), "org/img", Some("1.2"), Some(SHA256))));
        check("a__b/c---d/e.f_g", Ok((None, "a__b/c---d/e.f_g", None, None)));
    }

    /// Validation and the executor used to disagree here: the executor allowed `+`
    /// anywhere and 512 bytes in all, validation no `+` and 255 bytes in all.
    #[test]
    fn plus_is_only_a_digest_algorithm_separator() {
        let hex = "0123456789abcdef0123456789abcdef";
        let digest = format!("sha256+b64u:{hex}");
        check(&format!("app@{digest}"), Ok((None, "app", None, Some(digest.as_str()))));
        check("a+b", Err(ImageError::PathComponent("a+b".into())));
        check("app:1+2", Err(ImageError::Tag("1+2".into())));
        check("reg+istry.io/app", Err(ImageError::Domain("reg+istry.io".into())));
    }

    #[test]
    fn lengths_follow_the_registries_limits() {
        let name = "a".repeat(MAX_NAME_BYTES);
        check(&name, Ok((None, name.as_str(), None, None)));
        let long = "a".repeat(MAX_NAME_BYTES + 1);
        check(&long, Err(ImageError::NameTooLong(MAX_NAME_BYTES + 1)));
        // A longest name still takes a longest tag and digest: the limit is the name's.
        let tag = "t".repeat(MAX_TAG_BYTES);
        let sha512 = format!("sha512:{}", "f".repeat(MAX_DIGEST_HEX_BYTES));
        let longest = format!("{name}:{tag}@{sha512}");
        assert!(longest.len() > 512, "longer than either old limit");
        check(&longest, Ok((None, name.as_str(), Some(tag.as_str()), Some(sha512.as_str()))));
        check(&format!("{name}:{tag}t"), Err(ImageError::Tag(format!("{tag}t"))));
        let huge = "x".repeat(1_000_000);
        check(&huge, Err(ImageError::TooLong(1_000_000)));
    }

    #[test]
    fn bad_references_name_the_part_that_is_wrong() {
        check("", Err(ImageError::Empty));
        check("rust latest", Err(ImageError::PathComponent("rust latest".into())));
        check("Rust", Err(ImageError::PathComponent("Rust".into())));
        check("MyRegistry/app", Ok((Some("MyRegistry"), "app", None, None)));
        check("-app", Err(ImageError::PathComponent("-app".into())));
        check("app-", Err(ImageError::PathComponent("app-".into())));
        check("a...b", Err(ImageError::PathComponent("a...b".into())));
        check("a___b", Err(ImageError::PathComponent("a___b".into())));
        check("a//b", Err(ImageError::PathComponent("".into())));
        check("/app", Err(ImageError::PathComponent("".into())));
        check("app:", Err(ImageError::Tag("".into())));
        check("app:.x", Err(ImageError::Tag(".x".into())));
        check("app@sha256:abc", Err(ImageError::Digest("sha256:abc".into())));
        check("app@sha256", Err(ImageError::Digest("sha256".into())));
        check(
            "app@1sha:0123456789abcdef0123456789abcdef",
            Err(ImageError::Digest("1sha:0123456789abcdef0123456789abcdef".into())),
        );
        check("host.io:port/app", Err(ImageError::Domain("host.io:port".into())));
        check("-host.io/app", Err(ImageError::Domain("-host.io".into())));
        check("[::1/app", Err(ImageError::Domain("[::1".into())));
    }

    #[test]
    fn errors_read_as_sentences() {
        let err = ImageReference::parse("app:1+2").expect_err("a bad tag");
        assert_eq!(
            err.to_string(),
            "the tag `1+2` must be 1 to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`"
        );
    }
}
