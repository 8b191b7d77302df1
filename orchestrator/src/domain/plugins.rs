//! Plugins: publishing versions, pinning the plugins a pipeline names when it is created,
//! and handing the pinned sources to runners.
//!
//! A pipeline version keeps, for each plugin it names, the SHA-256 of the content it was
//! created with (see `rivet_core::plugin`). Dispatch sends the content with that hash, so a
//! later publish (even of the same version number, which is refused with other content)
//! cannot change what an existing pipeline version runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rivet_core::PipelineDefinition;
use rivet_core::plugin::{MAX_PLUGIN_BYTES, Pin, PinnedPlugin, PluginPin, PluginRef, is_plugin_name, is_version};

use crate::domain::error::{Error, Result};
use crate::domain::orchestrator::Orchestrator;
use crate::domain::store::{NewPlugin, PluginRecord, PluginVersion};

/// The most versions one listing returns.
pub const MAX_LISTED: u64 = 1000;
/// The most versions one plugin may have.
pub const MAX_VERSIONS_PER_PLUGIN: u64 = 1000;
/// The most plugin versions the store may hold in all.
pub const MAX_VERSIONS: u64 = 10_000;

/// Plugin sources by content hash: they never change, so dispatch reads each once.
#[derive(Debug, Default)]
pub struct SourceCache(Mutex<HashMap<String, Arc<str>>>);

/// How many sources the cache holds before it starts over.
const CACHED_SOURCES: usize = 256;

impl Orchestrator {
    /// Publishes a version of a plugin. Publishing a version again with the same content
    /// returns it; with other content, it is refused.
    pub async fn publish_plugin(&self, name: String, version: String, source: String) -> Result<PluginRecord> {
        if !is_plugin_name(&name) {
            return Err(Error::invalid("name", "must be up to 64 letters, digits, `_`, `-` and `.`"));
        }
        if !is_version(&version) {
            return Err(Error::invalid("version", "must be up to 64 letters, digits, `.`, `-`, `+` and `_`"));
        }
        if source.trim().is_empty() {
            return Err(Error::invalid("source", "is empty"));
        }
        if source.len() > MAX_PLUGIN_BYTES {
            return Err(Error::invalid(
                "source",
                format!("is {} bytes; plugins may be at most {MAX_PLUGIN_BYTES}", source.len()),
            ));
        }
        let sha256 = rivet_core::plugin::sha256(&source);
        // A version published again is answered below; only a new one counts against the
        // caps. Two replicas publishing at once may each pass the check: the caps bound the
        // store, they are not exact.
        if self.store().plugin(&name, Some(&version), None).await?.is_none() {
            self.check_plugin_room(&name).await?;
        }
        let (record, _created) = self.store().publish_plugin(NewPlugin { name, version, source }).await?;
        if record.sha256 != sha256 {
            return Err(Error::AlreadyExists(format!(
                "plugin {}@{} is already published with other content (sha256:{}); publish a new version",
                record.name, record.version, record.sha256
            )));
        }
        Ok(record)
    }

    /// A plugin version: by version, by `sha256:<hex>`, or the latest (`""`).
    pub async fn find_plugin(&self, name: &str, version: &str) -> Result<PluginRecord> {
        if !is_plugin_name(name) {
            return Err(Error::invalid("name", "must be a plugin name"));
        }
        let found = match version.strip_prefix("sha256:") {
            Some(hex) => self.store().plugin(name, None, Some(hex)).await?,
            None if version.is_empty() => self.store().plugin(name, None, None).await?,
            None => self.store().plugin(name, Some(version), None).await?,
        };
        let what = if version.is_empty() { name.to_owned() } else { format!("{name}@{version}") };
        found.ok_or(Error::NotFound { what: "plugin", id: what })
    }

    /// Refuses a new version of `name` when it or the store is full.
    async fn check_plugin_room(&self, name: &str) -> Result<()> {
        if self.store().count_plugins(Some(name)).await? >= MAX_VERSIONS_PER_PLUGIN {
            return Err(Error::ResourceExhausted(format!(
                "plugin {name} has {MAX_VERSIONS_PER_PLUGIN} versions, the most one plugin may have"
            )));
        }
        if self.store().count_plugins(None).await? >= MAX_VERSIONS {
            return Err(Error::ResourceExhausted(format!(
                "the store holds {MAX_VERSIONS} plugin versions, the most it may hold"
            )));
        }
        Ok(())
    }

    /// Plugin versions, of `name` or of every plugin, without their sources.
    pub async fn list_plugins(&self, name: &str) -> Result<Vec<PluginVersion>> {
        let name = (!name.is_empty()).then_some(name);
        Ok(self.store().list_plugins(name, MAX_LISTED).await?)
    }

    /// Pins every plugin `definition` names to the content it means now. Every reference
    /// that resolves to nothing is reported, at once.
    pub async fn pin_plugins(&self, definition: &PipelineDefinition) -> Result<Vec<PluginPin>> {
        let mut pins = Vec::new();
        let mut missing = Vec::new();
        for text in &definition.plugins {
            let reference =
                PluginRef::parse(text).map_err(|why| Error::invalid("plugins", format!("`{text}`: {why}")))?;
            let found = match &reference.pin {
                Pin::Latest => self.store().plugin(&reference.name, None, None).await?,
                Pin::Version(version) => self.store().plugin(&reference.name, Some(version), None).await?,
                Pin::Sha256(hex) => self.store().plugin(&reference.name, None, Some(hex)).await?,
            };
            match found {
                Some(record) => {
                    pins.push(PluginPin { name: record.name, version: record.version, sha256: record.sha256 })
                }
                None => missing.push(reference.to_string()),
            }
        }
        if !missing.is_empty() {
            return Err(Error::invalid(
                "plugins",
                format!("no published plugin matches {} (publish it with `rivet plugin publish`)", missing.join(", ")),
            ));
        }
        Ok(pins)
    }

    /// The sources of `pins`, for an assignment.
    pub async fn pinned_sources(&self, pins: &[PluginPin]) -> Result<Vec<PinnedPlugin>> {
        let mut plugins = Vec::with_capacity(pins.len());
        for pin in pins {
            let cached =
                self.plugin_sources().0.lock().unwrap_or_else(PoisonError::into_inner).get(&pin.sha256).cloned();
            let source = match cached {
                Some(source) => source,
                None => {
                    let record = self.store().plugin(&pin.name, None, Some(&pin.sha256)).await?.ok_or_else(|| {
                        Error::Internal(format!("the source of plugin {} sha256:{} is gone", pin.name, pin.sha256))
                    })?;
                    let source: Arc<str> = record.source.into();
                    let mut cache = self.plugin_sources().0.lock().unwrap_or_else(PoisonError::into_inner);
                    if cache.len() >= CACHED_SOURCES {
                        cache.clear();
                    }
                    cache.insert(pin.sha256.clone(), source.clone());
                    source
                }
            };
            plugins.push(PinnedPlugin { pin: pin.clone(), source: source.to_string() });
        }
        Ok(plugins)
    }
}
