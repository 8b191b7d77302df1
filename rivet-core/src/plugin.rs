//! Plugins: Lua modules a pipeline names in `plugins = { ... }` and loads with
//! `require("name")` inside a stage.
//!
//! A pipeline refers to a plugin as `name` (its latest version when the pipeline is
//! created), `name@version` or `name@sha256:<hex>` ([`PluginRef`]). The orchestrator
//! resolves each reference to a content hash when it stores the pipeline version
//! ([`PluginPin`]), so a later publish cannot change what an existing version runs, and
//! hands the pinned sources to the runner with each assignment ([`PinnedPlugin`]).
//!
//! [`install_require`] gives a Lua state a `require` that serves only those sources, in the
//! same sandbox as the pipeline: a plugin reaches the world only through the core modules,
//! like the pipeline itself. Modules are loaded once and cached; a cycle is an error naming
//! it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use mlua::chunk::ChunkMode;
use mlua::{Lua, RegistryKey, Value};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::limits::MAX_NAME_BYTES;

/// The largest plugin source, in bytes: it is compiled in one C call.
pub const MAX_PLUGIN_BYTES: usize = crate::sandbox::MAX_LOAD_CHUNK;
/// The longest plugin version, in bytes.
pub const MAX_VERSION_BYTES: usize = 64;

/// How a pipeline names a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRef {
    /// The plugin's name, as `require` takes it.
    pub name: String,
    /// Which of its contents.
    pub pin: Pin,
}

/// Which content of a plugin a reference means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// The latest version when the pipeline is created.
    Latest,
    /// A published version.
    Version(String),
    /// The content with this SHA-256 (lowercase hex).
    Sha256(String),
}

impl PluginRef {
    /// Parses `name`, `name@version` or `name@sha256:<64 hex digits>`.
    pub fn parse(text: &str) -> Result<PluginRef, String> {
        let (name, pin) = match text.split_once('@') {
            None => (text, Pin::Latest),
            Some((name, rest)) => match rest.strip_prefix("sha256:") {
                Some(hex) if is_sha256(hex) => (name, Pin::Sha256(hex.to_owned())),
                Some(_) => return Err("a sha256 pin is 64 lowercase hexadecimal digits".to_owned()),
                None if is_version(rest) => (name, Pin::Version(rest.to_owned())),
                None => {
                    return Err(format!(
                        "the version must be up to {MAX_VERSION_BYTES} letters, digits, `.`, `-`, `+` or `_`"
                    ));
                }
            },
        };
        if !is_plugin_name(name) {
            return Err(format!("the name must be up to {MAX_NAME_BYTES} letters, digits, `_`, `-` and `.`"));
        }
        Ok(PluginRef { name: name.to_owned(), pin })
    }
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pin {
            Pin::Latest => f.write_str(&self.name),
            Pin::Version(version) => write!(f, "{}@{version}", self.name),
            Pin::Sha256(hex) => write!(f, "{}@sha256:{hex}", self.name),
        }
    }
}

/// Whether `name` is a plugin name.
pub fn is_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.starts_with(['.', '-'])
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Whether `version` is a plugin version.
pub fn is_version(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= MAX_VERSION_BYTES
        && version.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
}

/// Whether `hex` is a SHA-256 in lowercase hex.
pub fn is_sha256(hex: &str) -> bool {
    hex.len() == 64 && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
}

/// The SHA-256 of a plugin's source, in lowercase hex.
pub fn sha256(source: &str) -> String {
    hex::encode(Sha256::digest(source.as_bytes()))
}

/// A reference resolved at creation: what a pipeline version runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginPin {
    /// The plugin's name.
    pub name: String,
    /// The version that had this content when the pipeline was created.
    pub version: String,
    /// The SHA-256 of its source.
    pub sha256: String,
}

/// A pinned plugin with its source: what a runner receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedPlugin {
    /// The pin.
    pub pin: PluginPin,
    /// The Lua source, whose SHA-256 is `pin.sha256`.
    pub source: String,
}

/// A module's state in one Lua state.
enum Slot {
    Unloaded(Arc<PinnedPlugin>),
    Loading,
    Loaded(RegistryKey),
}

/// Installs `require(name)` serving `plugins` and nothing else. A source whose hash does not
/// match its pin is refused when required.
pub fn install_require(lua: &Lua, plugins: Vec<PinnedPlugin>) -> mlua::Result<()> {
    let declared: Vec<String> = plugins.iter().map(|plugin| plugin.pin.name.clone()).collect();
    let slots: BTreeMap<String, Slot> =
        plugins.into_iter().map(|plugin| (plugin.pin.name.clone(), Slot::Unloaded(Arc::new(plugin)))).collect();
    let slots = Arc::new(Mutex::new(slots));
    // The names being loaded, outermost first, to name a cycle.
    let loading = Arc::new(Mutex::new(Vec::<String>::new()));
    let require = lua.create_function(move |lua, name: String| {
        let fail = |why: String| mlua::Error::runtime(format!("require(\"{name}\"): {why}"));
        let plugin = {
            let mut slots = slots.lock().unwrap_or_else(PoisonError::into_inner);
            match slots.get(&name) {
                None => {
                    let listed = if declared.is_empty() { "none".to_owned() } else { declared.join(", ") };
                    return Err(fail(format!(
                        "`{name}` is not a plugin this pipeline declares (its plugins: {listed}); \
                         add it to the pipeline's `plugins`"
                    )));
                }
                Some(Slot::Loaded(key)) => return lua.registry_value::<Value>(key),
                Some(Slot::Loading) => {
                    let mut chain = loading.lock().unwrap_or_else(PoisonError::into_inner).clone();
                    chain.push(name.clone());
                    return Err(fail(format!("plugins require each other in a cycle: {}", chain.join(" → "))));
                }
                Some(Slot::Unloaded(plugin)) => {
                    let plugin = plugin.clone();
                    slots.insert(name.clone(), Slot::Loading);
                    plugin
                }
            }
        };
        loading.lock().unwrap_or_else(PoisonError::into_inner).push(name.clone());
        let loaded = load(lua, &plugin);
        loading.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut slots = slots.lock().unwrap_or_else(PoisonError::into_inner);
        match loaded {
            Ok(value) => {
                slots.insert(name.clone(), Slot::Loaded(lua.create_registry_value(value.clone())?));
                Ok(value)
            }
            Err(err) => {
                // A later `require` tries again and fails the same way, with the same message.
                slots.insert(name.clone(), Slot::Unloaded(plugin.clone()));
                Err(fail(format!("the plugin {}@{} failed to load: {err}", plugin.pin.name, plugin.pin.version)))
            }
        }
    })?;
    lua.globals().raw_set("require", require)
}

/// Runs a plugin's chunk in the pipeline's sandbox and returns its module (`true` when the
/// chunk returns nothing, as Lua's `require` does).
fn load(lua: &Lua, plugin: &PinnedPlugin) -> mlua::Result<Value> {
    if plugin.source.len() > MAX_PLUGIN_BYTES {
        return Err(mlua::Error::runtime(format!("its source exceeds {MAX_PLUGIN_BYTES} bytes")));
    }
    if sha256(&plugin.source) != plugin.pin.sha256 {
        return Err(mlua::Error::runtime(format!("its source does not match its pin sha256:{}", plugin.pin.sha256)));
    }
    let chunk = lua
        .load(plugin.source.as_str())
        .set_name(format!("@plugin {}", plugin.pin.name))
        .set_mode(ChunkMode::Text)
        .into_function()?;
    match chunk.call::<Value>(plugin.pin.name.as_str())? {
        Value::Nil => Ok(Value::Boolean(true)),
        value => Ok(value),
    }
}

/// A `require` for the definition: plugins are only loaded when a job runs.
pub(crate) fn install_definition_require(lua: &Lua) -> mlua::Result<()> {
    let require = lua.create_function(|_, name: Value| -> mlua::Result<()> {
        let name = match &name {
            Value::String(name) => name.to_string_lossy(),
            other => format!("a {}", other.type_name()),
        };
        Err(mlua::Error::runtime(format!(
            "require(\"{name}\"): plugins are loaded inside a stage's script, not while the pipeline is defined"
        )))
    })?;
    lua.globals().raw_set("require", require)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{Limits, arm, new_state};

    fn plugin(name: &str, source: &str) -> PinnedPlugin {
        PinnedPlugin {
            pin: PluginPin { name: name.to_owned(), version: "1.0.0".to_owned(), sha256: sha256(source) },
            source: source.to_owned(),
        }
    }

    fn run(plugins: Vec<PinnedPlugin>, script: &str) -> Result<String, String> {
        let lua = new_state(Limits::DEFINITION).expect("a sandbox");
        install_require(&lua, plugins).expect("require");
        arm(&lua).expect("arm");
        lua.load(script).set_name("=test").eval::<String>().map_err(|err| err.to_string())
    }

    #[test]
    fn references_parse() {
        let parse = |text: &str| PluginRef::parse(text).map(|r| r.to_string());
        assert_eq!(parse("git"), Ok("git".to_owned()));
        assert_eq!(PluginRef::parse("git@1.2.0").map(|r| r.pin), Ok(Pin::Version("1.2.0".to_owned())));
        let hex = "a".repeat(64);
        assert_eq!(PluginRef::parse(&format!("git@sha256:{hex}")).map(|r| r.pin), Ok(Pin::Sha256(hex)));
        assert!(parse("git@sha256:abc").expect_err("short").contains("64 lowercase"));
        assert!(parse("git@").expect_err("empty version").contains("version"));
        assert!(parse("g it").expect_err("space").contains("name"));
        assert!(parse("@1.0").expect_err("no name").contains("name"));
    }

    #[test]
    fn require_serves_declared_plugins_once() {
        let counter = plugin("counter", "count = (count or 0) + 1 return { n = function() return count end }");
        let script =
            "local a = require('counter') local b = require('counter') return tostring(a == b) .. ' ' .. a.n()";
        assert_eq!(run(vec![counter.clone()], script), Ok("true 1".to_owned()));
        let err = run(vec![counter], "return require('git')").expect_err("undeclared");
        assert!(err.contains("`git` is not a plugin this pipeline declares (its plugins: counter)"), "{err}");
    }

    #[test]
    fn cycles_and_bad_sources_are_errors() {
        let a = plugin("a", "return require('b')");
        let b = plugin("b", "return require('a')");
        let err = run(vec![a, b], "return require('a')").expect_err("a cycle");
        assert!(err.contains("cycle: a → b → a"), "{err}");
        let mut tampered = plugin("t", "return 1");
        tampered.source = "return 2".to_owned();
        let err = run(vec![tampered], "return require('t')").expect_err("tampered");
        assert!(err.contains("does not match its pin"), "{err}");
        let sandboxed = plugin("s", "return io.open('/etc/passwd')");
        let err = run(vec![sandboxed], "return require('s')").expect_err("no io");
        assert!(err.contains("plugin s:1") && err.contains("io"), "{err}");
    }
}
