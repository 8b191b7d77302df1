//! Glob patterns for branch, tag and path filters, checked when the filter is built.
//!
//! `*` and `?` stay within one `/`-separated segment and `**` crosses segments, as in
//! GitHub Actions' filters: `release/*` matches `release/1.0` but not `release/1.0/rc`,
//! `docs/**` matches everything under `docs/`.

use std::fmt;
use std::str::FromStr;

use glob::{MatchOptions, Pattern};

use super::TriggerError;

/// The longest glob pattern, in bytes.
pub const MAX_GLOB_BYTES: usize = 256;

const OPTIONS: MatchOptions =
    MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: false };

/// A validated glob pattern.
#[derive(Debug, Clone)]
pub struct Glob {
    pattern: Pattern,
}

impl Glob {
    /// Parses `pattern`, refusing empty, over-long and malformed ones with an error naming it.
    pub fn new(pattern: &str) -> Result<Glob, TriggerError> {
        if pattern.is_empty() {
            return Err(TriggerError::EmptyGlob);
        }
        if pattern.len() > MAX_GLOB_BYTES {
            let quoted = crate::text::truncate(pattern, 64).into_owned();
            return Err(TriggerError::GlobTooLong { pattern: quoted, len: pattern.len() });
        }
        let pattern = Pattern::new(pattern)
            .map_err(|e| TriggerError::InvalidGlob { pattern: pattern.to_owned(), reason: e.msg.to_owned() })?;
        Ok(Glob { pattern })
    }

    /// Whether `text` (a branch, a tag, a path) matches.
    pub fn matches(&self, text: &str) -> bool {
        self.pattern.matches_with(text, OPTIONS)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.pattern.as_str()
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Glob) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Glob {}

impl FromStr for Glob {
    type Err = TriggerError;
    fn from_str(pattern: &str) -> Result<Glob, TriggerError> {
        Glob::new(pattern)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, matching: &[&str], not_matching: &[&str]) {
        let glob = Glob::new(pattern).unwrap();
        for text in matching {
            assert!(glob.matches(text), "`{pattern}` should match `{text}`");
        }
        for text in not_matching {
            assert!(!glob.matches(text), "`{pattern}` should not match `{text}`");
        }
    }

    #[test]
    fn star_stays_in_a_segment_and_double_star_crosses() {
        check("main", &["main"], &["main2", "Main", "x/main"]);
        check("release/*", &["release/1.0", "release/"], &["release/1.0/rc", "release"]);
        check("release/**", &["release/1.0", "release/1.0/rc"], &["releases/1.0"]);
        check("*.md", &["README.md"], &["docs/README.md"]);
        check("**/*.md", &["README.md", "docs/README.md", "a/b/c.md"], &["README.txt"]);
        check("docs/**", &["docs/a", "docs/a/b/c"], &["doc/a", "src/docs/a"]);
        check("src/**/*.rs", &["src/main.rs", "src/a/b/lib.rs"], &["main.rs", "src/main.c"]);
        check("v[0-9]*", &["v1.2.0", "v10"], &["version", "v"]);
        check("feature/?", &["feature/a"], &["feature/ab", "feature//"]);
    }

    #[test]
    fn bad_patterns_are_named() {
        let error = Glob::new("a**b").unwrap_err();
        assert_eq!(error.to_string(), "invalid glob `a**b`: recursive wildcards must form a single path component");
        assert!(matches!(Glob::new("[a-"), Err(TriggerError::InvalidGlob { .. })));
        assert_eq!(Glob::new("").unwrap_err(), TriggerError::EmptyGlob);
        let long = "a".repeat(MAX_GLOB_BYTES + 1);
        assert!(matches!(Glob::new(&long), Err(TriggerError::GlobTooLong { len: 257, .. })));
        assert!(Glob::new(&long[1..]).is_ok());
    }
}
