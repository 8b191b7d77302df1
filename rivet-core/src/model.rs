//! The plain data a pipeline script defines: what the orchestrator stores and the runner
//! uses to run stages by name. Produced by [`crate::load`]; no Lua in here.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A validated pipeline definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineDefinition {
    /// Human-readable name; also the key under which pipelines are versioned.
    pub name: String,
    /// What the pipeline does.
    #[serde(default)]
    pub description: String,
    /// Typed inputs, sorted by name.
    #[serde(default)]
    pub inputs: Vec<InputSpec>,
    /// Labels a runner must carry to run this pipeline.
    #[serde(default)]
    pub runner: Vec<Tag>,
    /// Lua plugins the pipeline uses, by name.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Names of the secrets the pipeline may read.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Stages, in the order they run.
    pub stages: Vec<StageSpec>,
    /// How the pipeline narrows the runner's `http` policy; absent, the runner's holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpScope>,
}

/// What a pipeline lets its `http` calls reach, within the runner's policy: a request must
/// pass both. Narrowing can only restrict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpScope {
    /// Host patterns (see [`host_matches`]); empty: every host the runner allows.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Methods, upper case; empty: every method the runner allows.
    #[serde(default)]
    pub methods: Vec<String>,
}

/// The methods an `http` policy may name.
pub const HTTP_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Whether `pattern` is a host pattern: `*` (any host), `*.example.com` (any name under
/// `example.com`, not the name itself), or one host name or IP address.
pub fn is_host_pattern(pattern: &str) -> bool {
    let name = pattern.strip_prefix("*.").unwrap_or(pattern);
    pattern == "*"
        || (!name.is_empty()
            && name.len() <= 253
            && !name.starts_with(['.', '-'])
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')))
}

/// Whether `host` (a URL's host, IPv6 addresses in brackets) matches `pattern`,
/// ignoring case.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let (pattern, host) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    match pattern.strip_prefix("*.") {
        _ if pattern == "*" => true,
        Some(domain) => host.strip_suffix(domain).is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        None => pattern == host.trim_end_matches('.'),
    }
}

impl PipelineDefinition {
    /// The input named `name`.
    pub fn input(&self, name: &str) -> Option<&InputSpec> {
        self.inputs.iter().find(|input| input.name == name)
    }

    /// The stage named `name`.
    pub fn stage(&self, name: &str) -> Option<&StageSpec> {
        self.stages.iter().find(|stage| stage.name == name)
    }
}

/// The type of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// Any text.
    String,
    /// A finite number.
    Number,
    /// `true` or `false`.
    Bool,
}

impl InputType {
    /// The name used in pipeline scripts.
    pub fn as_str(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Number => "number",
            InputType::Bool => "bool",
        }
    }

    /// Parses the name used in pipeline scripts.
    pub fn parse(name: &str) -> Option<InputType> {
        match name {
            "string" => Some(InputType::String),
            "number" => Some(InputType::Number),
            "bool" | "boolean" => Some(InputType::Bool),
            _ => None,
        }
    }
}

impl fmt::Display for InputType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed input value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InputValue {
    /// A `bool` input's value.
    Bool(bool),
    /// A `number` input's value; always finite.
    Number(f64),
    /// A `string` input's value.
    String(String),
}

impl InputValue {
    /// The type of this value.
    pub fn input_type(&self) -> InputType {
        match self {
            InputValue::Bool(_) => InputType::Bool,
            InputValue::Number(_) => InputType::Number,
            InputValue::String(_) => InputType::String,
        }
    }
}

/// Renders values the way pipeline scripts read them through `input.get`: integral numbers
/// without a fraction (`4`, not `4.0`), bools as `true`/`false`.
impl fmt::Display for InputValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputValue::Bool(value) => write!(f, "{value}"),
            InputValue::Number(value) if value.fract() == 0.0 && value.abs() < 1e15 => write!(f, "{}", *value as i64),
            InputValue::Number(value) => write!(f, "{value}"),
            InputValue::String(value) => f.write_str(value),
        }
    }
}

/// One declared input of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// The input's name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub input_type: InputType,
    /// What it is for; shown when prompting.
    #[serde(default)]
    pub description: String,
    /// Used when the launch gives no value.
    #[serde(default)]
    pub default: Option<InputValue>,
    /// When not empty, the only values allowed.
    #[serde(default)]
    pub options: Vec<InputValue>,
    /// Whether a launch must give a value. Never true for an input with a default.
    #[serde(default)]
    pub required: bool,
}

/// A runner label the pipeline requires, e.g. `os = linux`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tag {
    /// The label's key.
    pub key: String,
    /// The value the runner's label must have.
    pub value: String,
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// One stage of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSpec {
    /// Unique within the pipeline; `[A-Za-z0-9][A-Za-z0-9_.-]*`.
    pub name: String,
    /// The image the stage's processes run in; the runner's default when absent.
    #[serde(default)]
    pub container: Option<String>,
    /// Whether the stage has a `condition` function deciding if it runs.
    #[serde(default)]
    pub has_condition: bool,
    /// The longest the stage may run, in seconds; the runner's default when absent.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// The network the stage's containers get; the runner's default when absent.
    #[serde(default)]
    pub network: Option<StageNetwork>,
    /// The line of the script that defines the stage.
    #[serde(default)]
    pub line: u32,
}

/// The network a stage's containers are attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageNetwork {
    /// No network at all: only a loopback interface.
    None,
    /// The runner's container network (Podman's default bridge, or the one the runner
    /// configures).
    Default,
}

impl StageNetwork {
    /// Every value, as a pipeline writes it.
    pub const NAMES: [&'static str; 2] = ["none", "default"];

    /// The value a pipeline writes for `name`.
    pub fn parse(name: &str) -> Option<StageNetwork> {
        match name {
            "none" => Some(StageNetwork::None),
            "default" => Some(StageNetwork::Default),
            _ => None,
        }
    }
}

/// Typed input values of one job, by input name.
pub type ResolvedInputs = BTreeMap<String, InputValue>;
