//! Which environment variables name a setting: the check behind "a setting the
//! documentation shows is a setting, and a typo is not silently ignored".
//!
//! Every binary layers defaults < TOML file < `PREFIX_*` environment (`__` between nesting
//! levels, `RIVET_AUTH__API_TOKENS`). This module is the pure part, shared by the three
//! binaries: given the names of the variables that carry the prefix and the key paths the
//! configuration has, it says which variables set a key and which are unknown, and for an
//! unknown one whether it looks like a mistyped setting (close to a known variable, or
//! nested under a known section). Reading the environment stays in the binaries.

use std::collections::BTreeSet;

/// What `--print-config` shows instead of a secret (plain letters, so that it stays
/// readable where a URL's password was).
pub const REDACTED: &str = "REDACTED";

/// `url` with its password replaced by [`REDACTED`]; unchanged when it has none or does
/// not parse as a URL.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => match parsed.set_password(Some(REDACTED)) {
            Ok(()) => parsed.to_string(),
            Err(()) => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

/// The key paths of a configuration, from its serialized defaults: `auth.api_tokens`.
///
/// A key whose default is an empty object (a map such as the runner's `labels`) accepts
/// any key below it.
#[derive(Debug, Clone, Default)]
pub struct KeyPaths {
    leaves: BTreeSet<String>,
    open_maps: BTreeSet<String>,
    sections: BTreeSet<String>,
}

impl KeyPaths {
    /// The key paths of `defaults`, a configuration serialized to JSON.
    pub fn from_defaults(defaults: &serde_json::Value) -> Self {
        let mut paths = KeyPaths::default();
        paths.walk("", defaults);
        paths
    }

    fn walk(&mut self, prefix: &str, value: &serde_json::Value) {
        let serde_json::Value::Object(map) = value else {
            self.leaves.insert(prefix.to_owned());
            return;
        };
        if map.is_empty() {
            self.open_maps.insert(prefix.to_owned());
            return;
        }
        if !prefix.is_empty() {
            self.sections.insert(prefix.to_owned());
        }
        for (key, value) in map {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            self.walk(&path, value);
        }
    }

    /// Adds `paths` (lowercase, dotted) as settable leaves: settings the serialized
    /// defaults leave out, such as an old name kept readable but skipped when empty.
    pub fn with_leaves<'a>(mut self, paths: impl IntoIterator<Item = &'a str>) -> Self {
        self.leaves.extend(paths.into_iter().map(str::to_owned));
        self
    }

    /// Whether `path` (lowercase, dotted) sets a key.
    pub fn contains(&self, path: &str) -> bool {
        self.leaves.contains(path)
            || self.open_maps.contains(path)
            || self
                .open_maps
                .iter()
                .any(|map| path.strip_prefix(map.as_str()).is_some_and(|rest| rest.starts_with('.')))
    }

    /// Every settable path: the leaves, and the maps that take any key.
    pub fn all(&self) -> impl Iterator<Item = &String> {
        self.leaves.iter().chain(&self.open_maps)
    }
}

/// What the check found in one environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvReport {
    /// Variables that name no setting and look like a mistyped one, with the variable
    /// meant when one is close enough. A binary refuses to start over these.
    pub typos: Vec<(String, Option<String>)>,
    /// Variables with the prefix that name no setting and resemble none: another
    /// program's, most likely. A binary mentions them at start.
    pub unknown: Vec<String>,
}

/// The dotted, lowercase key path a variable sets: `RIVET_AUTH__API_TOKENS` with prefix
/// `RIVET_` is `auth.api_tokens`. `None` without the prefix.
pub fn key_path(prefix: &str, var: &str) -> Option<String> {
    let rest =
        var.get(..prefix.len()).filter(|head| head.eq_ignore_ascii_case(prefix)).map(|_| &var[prefix.len()..])?;
    Some(rest.to_ascii_lowercase().split("__").collect::<Vec<_>>().join("."))
}

/// The variable that sets `path`: the inverse of [`key_path`].
pub fn var_name(prefix: &str, path: &str) -> String {
    format!("{prefix}{}", path.to_ascii_uppercase().replace('.', "__"))
}

/// Checks the names of the environment's variables. `foreign` lists variables (or,
/// ending in `*`, prefixes of variables) that carry the prefix but belong to someone else
/// (`RIVET_SERVER` is the CLI's); they are neither settings nor unknown.
pub fn check_env<'a>(
    prefix: &str,
    vars: impl IntoIterator<Item = &'a str>,
    keys: &KeyPaths,
    foreign: &[&str],
) -> EnvReport {
    let mut report = EnvReport::default();
    for var in vars {
        let Some(path) = key_path(prefix, var) else { continue };
        if keys.contains(&path) || is_foreign(var, foreign) {
            continue;
        }
        let suggestion = suggest(&path, keys).map(|path| var_name(prefix, &path));
        let in_section = path.split_once('.').is_some_and(|(section, _)| keys.sections.contains(section));
        if suggestion.is_some() || in_section {
            report.typos.push((var.to_owned(), suggestion));
        } else {
            report.unknown.push(var.to_owned());
        }
    }
    report
}

fn is_foreign(var: &str, foreign: &[&str]) -> bool {
    foreign.iter().any(|name| match name.strip_suffix('*') {
        Some(prefix) => var.len() >= prefix.len() && var[..prefix.len()].eq_ignore_ascii_case(prefix),
        None => var.eq_ignore_ascii_case(name),
    })
}

/// The known path closest to `path`, when it is close enough to be a typo of it. A
/// single `_` for the `__` between levels (`AUTH_API_TOKENS`) counts as close.
fn suggest(path: &str, keys: &KeyPaths) -> Option<String> {
    let flat = |p: &str| p.replace('.', "_");
    let allowed = (path.len() / 6).clamp(1, 3);
    keys.all()
        .map(|known| (strsim::damerau_levenshtein(&flat(path), &flat(known)), known))
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known.clone())
}

/// The keys a TOML configuration reference documents, commented-out ones (`# key = ...`)
/// included, as dotted paths under their `[section]`: what the environment tests of each
/// binary hold against the configuration.
pub fn documented_keys(text: &str) -> Vec<String> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in text.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(name) = line.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, _)) = line.split_once(" = ")
            && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            keys.push(if section.is_empty() { key.to_owned() } else { format!("{section}.{key}") });
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> KeyPaths {
        KeyPaths::from_defaults(&serde_json::json!({
            "listen": "127.0.0.1:7420",
            "lease_ttl_ms": 15000,
            "redis_url": null,
            "labels": {},
            "auth": { "api_tokens": [], "runner_tokens": [] },
        }))
    }

    fn check(vars: &[&str]) -> EnvReport {
        check_env("RIVET_", vars.iter().copied(), &keys(), &["RIVET_SERVER", "RIVET_TEST_*"])
    }

    #[test]
    fn nested_variables_name_nested_keys() {
        assert_eq!(key_path("RIVET_", "RIVET_AUTH__API_TOKENS").as_deref(), Some("auth.api_tokens"));
        assert_eq!(var_name("RIVET_", "auth.api_tokens"), "RIVET_AUTH__API_TOKENS");
        assert_eq!(key_path("RIVET_", "OTHER"), None);
        let report = check(&["RIVET_AUTH__API_TOKENS", "RIVET_LISTEN", "RIVET_REDIS_URL", "RIVET_LABELS__ZONE"]);
        assert_eq!(report, EnvReport::default());
    }

    #[test]
    fn typos_are_reported_with_the_variable_meant() {
        let report = check(&["RIVET_LEASE_TLL_MS", "RIVET_AUTH_API_TOKENS", "RIVET_AUTH__API_TOKEN"]);
        assert_eq!(
            report.typos,
            vec![
                ("RIVET_LEASE_TLL_MS".to_owned(), Some("RIVET_LEASE_TTL_MS".to_owned())),
                ("RIVET_AUTH_API_TOKENS".to_owned(), Some("RIVET_AUTH__API_TOKENS".to_owned())),
                ("RIVET_AUTH__API_TOKEN".to_owned(), Some("RIVET_AUTH__API_TOKENS".to_owned())),
            ]
        );
        let report = check(&["RIVET_AUTH__SOMETHING_ELSE"]);
        assert_eq!(report.typos, vec![("RIVET_AUTH__SOMETHING_ELSE".to_owned(), None)]);
    }

    #[test]
    fn documented_keys_include_commented_ones_under_their_section() {
        let text =
            "# A setting.\nlisten = \"x\"\n# redis_url = \"redis://\"\n[auth]\n# Tokens = 3, prose\napi_tokens = []\n";
        assert_eq!(documented_keys(text), vec!["listen", "redis_url", "auth.api_tokens"]);
    }

    #[test]
    fn other_programs_variables_are_not_typos() {
        let report = check(&["RIVET_SERVER", "RIVET_TEST_DATABASE_URL", "RIVET_SOMETHING_UNRELATED_ENTIRELY"]);
        assert!(report.typos.is_empty(), "{report:?}");
        assert_eq!(report.unknown, vec!["RIVET_SOMETHING_UNRELATED_ENTIRELY".to_owned()]);
    }

    #[test]
    fn extra_leaves_are_settings_too() {
        let defaults = serde_json::json!({ "auth": { "registration_tokens": [] }, "registration_token": null });
        let plain = KeyPaths::from_defaults(&defaults);
        let report = check_env("RIVET_", ["RIVET_AUTH__RUNNER_TOKENS"], &plain, &[]);
        assert_eq!(report.typos, vec![("RIVET_AUTH__RUNNER_TOKENS".to_owned(), None)]);
        let keys = KeyPaths::from_defaults(&defaults).with_leaves(["auth.runner_tokens", "token"]);
        assert!(keys.contains("auth.runner_tokens") && keys.contains("token"));
        let report = check_env("RIVET_", ["RIVET_AUTH__RUNNER_TOKENS", "RIVET_TOKEN"], &keys, &[]);
        assert_eq!(report, EnvReport::default());
    }
}
