//! The client's settings: defaults < `$XDG_CONFIG_HOME/rivet/config.toml` (or
//! `~/.config/rivet/config.toml`) < `RIVET_SERVER`/`RIVET_TOKEN` < `--server`/`--token`.
//!
//! Each layer is a named figment provider, so `rivet config show` can say where every
//! effective value came from.

use std::path::PathBuf;

use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::exit;

/// The server a fresh install talks to: the one `rivet dev` starts.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7420";

/// Everything the client can be told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The orchestrator's gRPC address, e.g. `http://127.0.0.1:7420`; `http://` is
    /// assumed when no scheme is given.
    pub server: String,
    /// An API token, sent as `authorization: Bearer <token>`; unset for a server without
    /// authentication (such as `rivet dev`).
    #[serde(default)]
    pub token: Option<String>,
    /// A PEM file of CA certificates to trust for an `https://` server with a private CA
    /// (`RIVET_CA_FILE`); the public web roots are always trusted.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// The keys the client reads, and the variable of each is `RIVET_` + the key.
const KEYS: [&str; 3] = ["server", "token", "ca_file"];

/// `RIVET_*` variables that are the orchestrator's or the runner's, not the client's.
const FOREIGN_VARIABLES: &[&str] = &["RIVET_CONFIG", "RIVET_RUNNER_*", "RIVET_TEST_*"];

/// The settings given on the command line, which override everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--server`.
    pub server: Option<String>,
    /// `--token`.
    pub token: Option<String>,
}

/// Loaded settings and the figment that knows where each came from.
#[derive(Debug)]
pub struct Loaded {
    /// The effective settings.
    pub settings: Settings,
    /// The configuration file looked at, whether or not it exists.
    pub file: Option<PathBuf>,
    figment: Figment,
}

/// The configuration file: `$XDG_CONFIG_HOME/rivet/config.toml`, else
/// `$HOME/.config/rivet/config.toml`; none when neither variable is set.
pub fn config_file() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|dir| !dir.is_empty())?).join(".config"),
    };
    Some(base.join("rivet").join("config.toml"))
}

/// Loads the settings; an unreadable or invalid file is an error naming it.
pub fn load(overrides: &Overrides) -> Result<Loaded, Error> {
    let file = config_file();
    let mut figment = Figment::from(Layer::new("default", [("server", Some(DEFAULT_SERVER.to_owned()))]));
    if let Some(file) = &file {
        figment = figment.merge(Toml::file(file));
    }
    check_environment()?;
    figment = figment
        .merge(Env::prefixed("RIVET_").only(&KEYS))
        .merge(Layer::new("flag", [("server", overrides.server.clone()), ("token", overrides.token.clone())]));
    let mut settings: Settings = figment.extract().map_err(|err| {
        let place = file.as_ref().map(|file| format!(" (file {})", file.display())).unwrap_or_default();
        Error::new(exit::USAGE, format!("invalid configuration{place}: {err}"))
            .hint("the file takes `server = \"http://host:port\"` and `token = \"...\"`")
    })?;
    settings.server = rivet_proto::endpoint::normalize(&settings.server);
    if settings.token.as_deref().is_some_and(str::is_empty) {
        settings.token = None;
    }
    Ok(Loaded { settings, file, figment })
}

/// Refuses a `RIVET_*` variable that looks like a mistyped client setting
/// (`RIVET_SEVER`): silently talking to the default server instead is worse.
fn check_environment() -> Result<(), Error> {
    let defaults = serde_json::json!({ "server": "", "token": "", "ca_file": "" });
    let keys = rivet_core::settings::KeyPaths::from_defaults(&defaults);
    let vars: Vec<String> = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()).collect();
    let report = rivet_core::settings::check_env("RIVET_", vars.iter().map(String::as_str), &keys, FOREIGN_VARIABLES);
    // Variables resembling no client setting are most likely the orchestrator's.
    let Some((var, meant)) = report.typos.first() else { return Ok(()) };
    let error = Error::new(exit::USAGE, format!("the environment variable {var} names no setting"));
    Err(match meant {
        Some(meant) => error.hint(format!("did you mean {meant}?")),
        None => error.hint("the client reads RIVET_SERVER, RIVET_TOKEN and RIVET_CA_FILE"),
    })
}

impl Loaded {
    /// Where the effective value of `key` came from, for `rivet config show`.
    pub fn source_of(&self, key: &str) -> String {
        let Some(metadata) = self.figment.find_metadata(key) else { return "not set".to_owned() };
        match &metadata.source {
            Some(Source::File(path)) => format!("config file {}", path.display()),
            _ if metadata.name.contains("environment") => format!("environment variable RIVET_{}", key.to_uppercase()),
            _ if metadata.name == "flag" => format!("flag --{key}"),
            _ => metadata.name.to_string(),
        }
    }
}

/// A provider of a few optional string values under one name: the defaults, the flags.
struct Layer {
    name: &'static str,
    values: Dict,
}

impl Layer {
    fn new<const N: usize>(name: &'static str, values: [(&str, Option<String>); N]) -> Layer {
        let values =
            values.into_iter().filter_map(|(key, value)| Some((key.to_owned(), Value::from(value?)))).collect();
        Layer { name, values }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error.
mod tests {
    use super::*;

    #[test]
    fn layers_are_named_by_their_source() {
        figment::Jail::expect_with(|jail| {
            let dir = jail.directory().display().to_string();
            jail.set_env("XDG_CONFIG_HOME", dir);
            jail.create_dir("rivet")?;
            jail.create_file("rivet/config.toml", "server = \"http://file:1\"\ntoken = \"from-file\"")?;
            jail.set_env("RIVET_TOKEN", "from-env");
            let loaded = load(&Overrides { server: Some("flag:2".to_owned()), token: None }).expect("valid settings");
            assert_eq!(loaded.settings.server, "http://flag:2");
            assert_eq!(loaded.settings.token.as_deref(), Some("from-env"));
            assert_eq!(loaded.source_of("server"), "flag --server");
            assert_eq!(loaded.source_of("token"), "environment variable RIVET_TOKEN");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        figment::Jail::expect_with(|jail| {
            let dir = jail.directory().display().to_string();
            jail.set_env("XDG_CONFIG_HOME", dir);
            jail.create_dir("rivet")?;
            jail.create_file("rivet/config.toml", "sever = \"typo\"")?;
            let error = load(&Overrides::default()).expect_err("unknown key");
            assert!(error.message.contains("sever"), "{error}");
            Ok(())
        });
    }
}
