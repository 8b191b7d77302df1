//! Turns the table a pipeline script returned into a [`PipelineDefinition`], reporting
//! every problem at once with its line and field path.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use mlua::{Function, Lua, Table, Value};

use crate::diagnostic::{Diagnostics, LoadError};
use crate::dsl;
use crate::image::ImageReference;
use crate::limits::{
    MAX_DESCRIPTION_BYTES, MAX_INPUTS, MAX_NAME_BYTES, MAX_OPTIONS, MAX_PIPELINE_NAME_BYTES, MAX_PLUGINS,
    MAX_QUOTED_BYTES, MAX_SECRETS, MAX_STAGE_NAME_BYTES, MAX_STAGE_TIMEOUT, MAX_STAGES, MAX_SUGGESTED_KEY_BYTES,
    MAX_TABLE_FIELDS, MAX_TAG_BYTES, MAX_TAGS, MAX_VALUE_BYTES, MIN_STAGE_TIMEOUT,
};
use crate::model::{
    HTTP_METHODS, HttpScope, InputSpec, InputType, InputValue, PipelineDefinition, StageNetwork, StageSpec, Tag,
    is_host_pattern,
};
use crate::plugin::PluginRef;
use crate::text;

const PIPELINE_FIELDS: &[&str] = &["name", "description", "inputs", "runner", "plugins", "secrets", "http", "stages"];
const HTTP_FIELDS: &[&str] = &["hosts", "methods"];
const STAGE_FIELDS: &[&str] = &["name", "container", "condition", "script", "timeout", "network"];
const INPUT_FIELDS: &[&str] = &["name", "type", "description", "default", "options", "required"];
const TAG_FIELDS: &[&str] = &["key", "value"];

/// How far around a table's line `field_line` looks for `key = `.
const FIELD_WINDOW_LINES: usize = 40;
/// How far past the previous stage `stage_line` looks for a stage's `name = `.
const STAGE_WINDOW_LINES: usize = 400;
/// How much of each source line those searches read: assignments start near the
/// beginning of a line, and a megabyte-long line must not be read at every search.
const SCANNED_LINE_BYTES: usize = 512;

/// An offending key or value, shortened for a diagnostic.
fn quote(text: &str) -> Cow<'_, str> {
    text::truncate(text, MAX_QUOTED_BYTES)
}

/// A stage's Lua functions, in the state that loaded the script.
#[derive(Debug, Clone)]
pub struct StageFunctions {
    /// Decides whether the stage runs.
    pub condition: Option<Function>,
    /// The stage's body.
    pub script: Function,
}

/// Validates `spec`, the table given to `pipeline.define`.
pub(crate) fn validate(
    lua: &Lua,
    spec: &Table,
    file: &str,
    source: &str,
) -> Result<(PipelineDefinition, Vec<StageFunctions>), LoadError> {
    let mut validator = Validator { lua, lines: source.lines().collect(), diagnostics: Diagnostics::new(file) };
    let result = validator.pipeline(spec);
    match result {
        Some(result) if validator.diagnostics.is_empty() => Ok(result),
        _ => Err(validator.diagnostics.into_error()),
    }
}

struct Validator<'a> {
    lua: &'a Lua,
    lines: Vec<&'a str>,
    diagnostics: Diagnostics,
}

/// The fields of one Lua table, by name, with the line the table was written at.
struct Fields {
    values: BTreeMap<String, Value>,
    line: u32,
    path: String,
}

impl Fields {
    fn take(&mut self, key: &str) -> Option<Value> {
        self.values.get(key).filter(|value| !value.is_nil()).cloned()
    }

    fn has(&self, key: &str) -> bool {
        self.values.get(key).is_some_and(|value| !value.is_nil())
    }

    fn path(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }
}

impl Validator<'_> {
    fn pipeline(&mut self, spec: &Table) -> Option<(PipelineDefinition, Vec<StageFunctions>)> {
        let line = dsl::line_of(self.lua, spec).unwrap_or(1);
        let mut fields = self.fields(spec, "", line, PIPELINE_FIELDS);

        let name = match self.string(&mut fields, "name") {
            Some(name) if name.trim().is_empty() => {
                self.error_at(&fields, "name", "must not be empty");
                None
            }
            Some(name) if name.len() > MAX_PIPELINE_NAME_BYTES => {
                self.error_at(
                    &fields,
                    "name",
                    format!("is {} bytes; the limit is {MAX_PIPELINE_NAME_BYTES}", name.len()),
                );
                None
            }
            Some(name) => Some(name),
            None => {
                if !fields.has("name") {
                    self.diagnostics.push(line, "name", "is required: give the pipeline a name");
                }
                None
            }
        };
        let description = self.description(&mut fields);
        let inputs = self.inputs(&mut fields);
        let runner = self.tags(&mut fields);
        let plugins = self.plugins(&mut fields);
        let secrets = self.names(
            &mut fields,
            "secrets",
            MAX_SECRETS,
            is_identifier,
            "letters, digits and `_`, not starting with a digit",
        );
        let http = self.http(&mut fields);
        let stages = self.stages(&mut fields, line);

        let name = name?;
        let (stages, functions) = stages.into_iter().unzip();
        Some((PipelineDefinition { name, description, inputs, runner, plugins, secrets, stages, http }, functions))
    }

    /// `plugins = { "git", "git@1.2.0", "git@sha256:..." }`: each names a plugin once.
    fn plugins(&mut self, parent: &mut Fields) -> Vec<String> {
        let line = self.field_line(parent.line, "plugins");
        let refs = self.names(
            parent,
            "plugins",
            MAX_PLUGINS,
            |text| PluginRef::parse(text).is_ok(),
            "letters, digits, `_`, `-` and `.`, then optionally `@version` or `@sha256:<hex>`",
        );
        let mut seen = HashSet::new();
        for (index, text) in refs.iter().enumerate() {
            if let Ok(plugin) = PluginRef::parse(text)
                && !seen.insert(plugin.name.clone())
            {
                self.diagnostics.push(
                    line,
                    format!("plugins[{}]", index + 1),
                    format!("the plugin `{}` is listed twice", quote(&plugin.name)),
                );
            }
        }
        refs
    }

    /// `http = { hosts = { ... }, methods = { ... } }`: how the pipeline narrows the
    /// runner's `http` policy.
    fn http(&mut self, parent: &mut Fields) -> Option<HttpScope> {
        let value = parent.take("http")?;
        let line = self.field_line(parent.line, "http");
        let Value::Table(table) = value else {
            self.diagnostics.push(line, "http", format!("must be a table, got {}", lua_type_name(&value)));
            return None;
        };
        let mut fields = self.fields(&table, "http", line, HTTP_FIELDS);
        let hosts = self.names(&mut fields, "hosts", MAX_PLUGINS, is_host_pattern, "`*`, `*.domain` or a host name");
        let methods = self.names(
            &mut fields,
            "methods",
            HTTP_METHODS.len(),
            |m| HTTP_METHODS.contains(&m),
            "of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
        );
        Some(HttpScope { hosts, methods })
    }

    fn stages(&mut self, parent: &mut Fields, parent_line: u32) -> Vec<(StageSpec, StageFunctions)> {
        let Some(value) = parent.take("stages") else {
            self.diagnostics.push(parent_line, "stages", "is required: a pipeline needs at least one stage");
            return Vec::new();
        };
        let items = self.list(value, "stages", parent_line, MAX_STAGES, "the pipeline", "stages");
        if items.as_ref().is_some_and(Vec::is_empty) {
            self.diagnostics.push(self.field_line(parent_line, "stages"), "stages", "must contain at least one stage");
        }
        let mut seen = HashSet::new();
        let mut stages = Vec::new();
        let mut previous_line = self.field_line(parent_line, "stages");
        for (index, item) in items.unwrap_or_default().into_iter().enumerate() {
            let path = format!("stages[{}]", index + 1);
            let Value::Table(table) = item else {
                self.diagnostics.push(parent_line, path, format!("must be a table, got {}", item.type_name()));
                continue;
            };
            let line = self.stage_line(&table, previous_line);
            previous_line = line;
            if let Some(stage) = self.stage(&table, path.clone(), line) {
                if !seen.insert(stage.0.name.clone()) {
                    self.diagnostics.push(
                        stage.0.line,
                        format!("{path}.name"),
                        format!("duplicate stage name `{}`: stage names must be unique", stage.0.name),
                    );
                }
                stages.push(stage);
            }
        }
        stages
    }

    /// The line a stage is written at: that of its `pipeline.stage` call, else of its
    /// script or condition function (inside the stage's table), else the first `name =`
    /// after the previous stage.
    fn stage_line(&self, table: &Table, previous_line: u32) -> u32 {
        let function_line = |key: &str| match table.raw_get::<Value>(key) {
            Ok(Value::Function(f)) => f.info().line_defined.and_then(|l| u32::try_from(l).ok()),
            _ => None,
        };
        dsl::line_of(self.lua, table)
            .or_else(|| function_line("script"))
            .or_else(|| function_line("condition"))
            .unwrap_or_else(|| {
                let start = previous_line as usize;
                (start..self.lines.len().min(start.saturating_add(STAGE_WINDOW_LINES)))
                    .find(|&index| assigns(self.lines[index], "name"))
                    .and_then(|index| u32::try_from(index + 1).ok())
                    .unwrap_or(previous_line)
            })
    }

    fn stage(&mut self, table: &Table, path: String, line: u32) -> Option<(StageSpec, StageFunctions)> {
        let mut fields = self.fields(table, &path, line, STAGE_FIELDS);

        let name = match self.string(&mut fields, "name") {
            Some(name) if is_stage_name(&name) => Some(name),
            Some(name) => {
                self.error_at(
                    &fields,
                    "name",
                    format!("`{}` is not a valid stage name: use 1 to {MAX_STAGE_NAME_BYTES} letters, digits, `_`, `-` or `.`, starting with a letter or digit", quote(&name)),
                );
                None
            }
            None => {
                if !fields.has("name") {
                    self.diagnostics.push(line, fields.path("name"), "is required");
                }
                None
            }
        };
        let container = match self.string(&mut fields, "container") {
            Some(image) => match ImageReference::parse(&image) {
                Ok(_) => Some(image),
                Err(err) => {
                    let message = format!("`{}` is not a valid image reference: {err}", quote(&image));
                    self.error_at(&fields, "container", message);
                    None
                }
            },
            None => None,
        };
        let condition = self.function(&mut fields, "condition");
        let script = self.function(&mut fields, "script");
        if script.is_none() && !fields.has("script") {
            self.diagnostics.push(line, fields.path("script"), "is required: a function that runs the stage");
        }
        let timeout_secs = self.timeout(&mut fields);
        let network = match self.string(&mut fields, "network") {
            Some(name) => match StageNetwork::parse(&name) {
                Some(network) => Some(network),
                None => {
                    let name = crate::text::truncate(&name, 64);
                    let allowed = StageNetwork::NAMES.map(|n| format!("\"{n}\"")).join(" or ");
                    self.error_at(&fields, "network", format!("must be {allowed}, got \"{name}\""));
                    None
                }
            },
            None => None,
        };

        let (name, script) = (name?, script?);
        let spec = StageSpec { name, container, has_condition: condition.is_some(), timeout_secs, network, line };
        Some((spec, StageFunctions { condition, script }))
    }

    fn timeout(&mut self, fields: &mut Fields) -> Option<u64> {
        let value = fields.take("timeout")?;
        let parsed = match &value {
            Value::Integer(secs) => u64::try_from(*secs).ok().map(Duration::from_secs),
            Value::Number(secs) if secs.is_finite() && *secs >= 0.0 => Some(Duration::from_secs_f64(secs.ceil())),
            Value::String(text) => text.to_str().ok().and_then(|text| parse_duration(&text)),
            _ => None,
        };
        match parsed {
            Some(timeout) if timeout >= MIN_STAGE_TIMEOUT && timeout <= MAX_STAGE_TIMEOUT => Some(timeout.as_secs()),
            _ => {
                self.error_at(
                    fields,
                    "timeout",
                    "must be a positive number of seconds or a duration like \"90s\", \"10m\" or \"1h30m\", at most 7 days",
                );
                None
            }
        }
    }

    fn inputs(&mut self, parent: &mut Fields) -> Vec<InputSpec> {
        let Some(value) = parent.take("inputs") else { return Vec::new() };
        let Value::Table(table) = value else {
            self.error_at(parent, "inputs", format!("must be a table of input specs, got {}", value.type_name()));
            return Vec::new();
        };
        let count = count_pairs(&table);
        if count > MAX_INPUTS {
            self.error_at(parent, "inputs", format!("the pipeline has {count} inputs; the limit is {MAX_INPUTS}"));
            return Vec::new();
        }
        let mut inputs: Vec<InputSpec> = Vec::new();
        let mut seen = HashSet::new();
        for (key, value) in sorted_pairs(&table) {
            // Two forms: `inputs = { branch = {...} }` and, from the builder or
            // `pipeline.input`, a list of specs that carry their own name.
            let (path, key_name) = match &key {
                Value::String(name) => {
                    let name = name.to_string_lossy();
                    (format!("inputs.{}", quote(&name)), Some(name))
                }
                Value::Integer(index) => (format!("inputs[{index}]"), None),
                other => {
                    self.error_at(parent, "inputs", format!("input names must be strings, got {}", other.type_name()));
                    continue;
                }
            };
            let Value::Table(spec) = value else {
                let line = self.field_line(parent.line, "inputs");
                self.diagnostics.push(line, path, format!("must be an input spec table, got {}", value.type_name()));
                continue;
            };
            if let Some(input) = self.input(&spec, path, key_name, parent.line) {
                if !seen.insert(input.name.clone()) {
                    self.error_at(parent, "inputs", format!("input `{}` is declared twice", quote(&input.name)));
                } else {
                    inputs.push(input);
                }
            }
        }
        inputs
    }

    fn input(&mut self, table: &Table, path: String, key_name: Option<String>, parent_line: u32) -> Option<InputSpec> {
        let line = dsl::line_of(self.lua, table)
            .or_else(|| key_name.as_deref().map(|name| self.field_line(parent_line, name)))
            .unwrap_or(parent_line);
        let mut fields = self.fields(table, &path, line, INPUT_FIELDS);
        let spec_name = self.string(&mut fields, "name");
        let name = match (key_name, spec_name) {
            (Some(key), Some(spec)) if key != spec => {
                self.error_at(
                    &fields,
                    "name",
                    format!("`{}` differs from the key `{}` it is declared under", quote(&spec), quote(&key)),
                );
                return None;
            }
            (Some(name), _) | (None, Some(name)) => name,
            (None, None) => {
                self.diagnostics.push(line, fields.path("name"), "is required for an input given in a list");
                return None;
            }
        };
        if !is_identifier_dash(&name) {
            self.diagnostics.push(
                line,
                fields.path("name"),
                format!("`{}` is not a valid input name: use up to {MAX_NAME_BYTES} letters, digits, `_` and `-`, starting with a letter or `_`", quote(&name)),
            );
        }
        let input_type = match self.string(&mut fields, "type") {
            Some(name) => match InputType::parse(&name) {
                Some(input_type) => Some(input_type),
                None => {
                    self.error_at(
                        &fields,
                        "type",
                        format!("`{}` is not an input type: use string, number or bool", quote(&name)),
                    );
                    None
                }
            },
            None => {
                if !fields.has("type") {
                    self.diagnostics.push(line, fields.path("type"), "is required: one of string, number or bool");
                }
                None
            }
        };
        let description = self.description(&mut fields);
        let required = match fields.take("required") {
            None => false,
            Some(Value::Boolean(required)) => required,
            Some(other) => {
                self.error_at(&fields, "required", format!("must be true or false, got {}", other.type_name()));
                false
            }
        };
        let default_value = fields.take("default");
        let options_value = fields.take("options");
        let input_type = input_type?;

        let default = default_value.and_then(|value| self.typed(&fields, "default", value, input_type));
        let mut options = Vec::new();
        if let Some(value) = options_value {
            let items = self.list(value, &fields.path("options"), line, MAX_OPTIONS, "the input", "options");
            let mut seen = HashSet::new();
            for (index, item) in items.unwrap_or_default().into_iter().enumerate() {
                let field = format!("options[{}]", index + 1);
                if let Some(option) = self.typed(&fields, &field, item, input_type) {
                    if !seen.insert(OptionKey::of(&option)) {
                        self.error_at(&fields, &field, format!("`{}` is listed twice", quote(&option.to_string())));
                    }
                    options.push(option);
                }
            }
            if options.is_empty() && !self.diagnostics.mentions(&fields.path("options")) {
                self.error_at(&fields, "options", "must list at least one value when given");
            }
        }
        if let Some(default) = &default
            && !options.is_empty()
            && !options.contains(default)
        {
            // Quote a few options, each shortened: an input may have hundreds.
            const LISTED: usize = 8;
            let mut listed: Vec<String> =
                options.iter().take(LISTED).map(|o| quote(&o.to_string()).into_owned()).collect();
            if options.len() > LISTED {
                listed.push(format!("and {} more", options.len() - LISTED));
            }
            self.error_at(
                &fields,
                "default",
                format!("`{}` is not one of the options ({})", quote(&default.to_string()), listed.join(", ")),
            );
        }
        // An input with a default is optional: the default fills in for a missing value.
        let required = required && default.is_none();
        Some(InputSpec { name, input_type, description, default, options, required })
    }

    /// Checks that `value` has the input's type.
    fn typed(&mut self, fields: &Fields, field: &str, value: Value, input_type: InputType) -> Option<InputValue> {
        if let Value::String(s) = &value
            && s.as_bytes().len() > MAX_VALUE_BYTES
        {
            let length = s.as_bytes().len();
            self.error_at(fields, field, format!("is {length} bytes; the limit is {MAX_VALUE_BYTES}"));
            return None;
        }
        let typed = match (input_type, &value) {
            (InputType::String, Value::String(s)) => Some(InputValue::String(s.to_string_lossy())),
            (InputType::Number, Value::Integer(n)) => Some(InputValue::Number(*n as f64)),
            (InputType::Number, Value::Number(n)) if n.is_finite() => Some(InputValue::Number(*n)),
            (InputType::Bool, Value::Boolean(b)) => Some(InputValue::Bool(*b)),
            _ => None,
        };
        if typed.is_none() {
            let got = match &value {
                Value::Number(n) if !n.is_finite() => "a number that is not finite".to_owned(),
                other => lua_type_name(other).to_owned(),
            };
            self.error_at(fields, field, format!("must be a {input_type} like the input's type, got {got}"));
        }
        typed
    }

    fn tags(&mut self, parent: &mut Fields) -> Vec<Tag> {
        let Some(value) = parent.take("runner") else { return Vec::new() };
        let Value::Table(table) = value else {
            self.error_at(
                parent,
                "runner",
                format!("must be a list of {{ key = .., value = .. }} tags, got {}", value.type_name()),
            );
            return Vec::new();
        };
        let count = count_pairs(&table);
        if count > MAX_TAGS {
            self.error_at(
                parent,
                "runner",
                format!("the pipeline requires {count} runner tags; the limit is {MAX_TAGS}"),
            );
            return Vec::new();
        }
        let mut tags = Vec::new();
        for (key, value) in sorted_pairs(&table) {
            match (key, value) {
                // `runner = { os = "linux" }`
                (Value::String(key), Value::String(value)) => {
                    let tag = Tag { key: key.to_string_lossy(), value: value.to_string_lossy() };
                    let path = format!("runner.{}", quote(&tag.key));
                    if self.tag_fits(parent.line, &path, &tag) {
                        tags.push(tag);
                    }
                }
                // `runner = { { key = "os", value = "linux" } }`
                (Value::Integer(index), Value::Table(tag)) => {
                    let path = format!("runner[{index}]");
                    let line = dsl::line_of(self.lua, &tag).unwrap_or_else(|| self.field_line(parent.line, "runner"));
                    let mut fields = self.fields(&tag, &path, line, TAG_FIELDS);
                    let key = self.string(&mut fields, "key");
                    let value = self.string(&mut fields, "value");
                    match (key, value) {
                        (Some(key), Some(value)) if !key.is_empty() => {
                            let tag = Tag { key, value };
                            if self.tag_fits(line, &path, &tag) {
                                tags.push(tag);
                            }
                        }
                        (Some(_), Some(_)) => self.error_at(&fields, "key", "must not be empty"),
                        (key, value) => {
                            for (field, missing) in [("key", key.is_none()), ("value", value.is_none())] {
                                if missing && !fields.has(field) {
                                    self.diagnostics.push(line, fields.path(field), "is required and must be a string");
                                }
                            }
                        }
                    }
                }
                (key, value) => self.error_at(
                    parent,
                    "runner",
                    format!(
                        "tags are {{ key = \"..\", value = \"..\" }} tables or `key = \"value\"` pairs, got {} = {}",
                        lua_type_name(&key),
                        lua_type_name(&value)
                    ),
                ),
            }
        }
        tags
    }

    /// A list of unique names, such as `plugins` or `secrets`.
    fn names(
        &mut self,
        parent: &mut Fields,
        field: &'static str,
        limit: usize,
        valid: fn(&str) -> bool,
        charset: &str,
    ) -> Vec<String> {
        let Some(value) = parent.take(field) else { return Vec::new() };
        let line = self.field_line(parent.line, field);
        let mut names = Vec::new();
        let mut seen = HashSet::new();
        for (index, item) in
            self.list(value, field, line, limit, "the pipeline", field).unwrap_or_default().into_iter().enumerate()
        {
            let path = format!("{}[{}]", parent.path(field), index + 1);
            match item {
                Value::String(name) => {
                    let name = name.to_string_lossy();
                    if !valid(&name) {
                        self.diagnostics.push(
                            line,
                            path,
                            format!("`{}` is not a valid name: use up to {MAX_NAME_BYTES} {charset}", quote(&name)),
                        );
                    } else if !seen.insert(name.clone()) {
                        self.diagnostics.push(line, path, format!("`{}` is listed twice", quote(&name)));
                    } else {
                        names.push(name);
                    }
                }
                other => self.diagnostics.push(line, path, format!("must be a string, got {}", lua_type_name(&other))),
            }
        }
        names
    }

    /// Reads the fields of `table`, reporting non-string keys and unknown fields.
    fn fields(&mut self, table: &Table, path: &str, line: u32, allowed: &[&str]) -> Fields {
        let mut values = BTreeMap::new();
        let count = count_pairs(table);
        if count > MAX_TABLE_FIELDS {
            // Too many to report one by one: read the allowed fields only.
            let what = if path.is_empty() { "the pipeline" } else { path };
            self.diagnostics.push(
                line,
                path,
                format!(
                    "{what} has {count} fields; the limit is {MAX_TABLE_FIELDS} (expected one of: {})",
                    allowed.join(", ")
                ),
            );
            for key in allowed {
                if let Ok(value) = table.raw_get::<Value>(*key) {
                    values.insert((*key).to_owned(), value);
                }
            }
            return Fields { values, line, path: path.to_owned() };
        }
        for (key, value) in sorted_pairs(table) {
            match key {
                Value::String(key) => {
                    let key = key.to_string_lossy();
                    if allowed.contains(&key.as_str()) {
                        values.insert(key, value);
                    } else if self.diagnostics.is_full() {
                        // Only counted: skip the work of describing it.
                        self.diagnostics.push(line, "", "");
                    } else {
                        let quoted = quote(&key);
                        let field = if path.is_empty() { quoted.to_string() } else { format!("{path}.{quoted}") };
                        let mut message = format!("unknown field `{quoted}`");
                        match suggest(&key, allowed) {
                            Some(suggestion) => message.push_str(&format!(": did you mean `{suggestion}`?")),
                            None => message.push_str(&format!(" (expected one of: {})", allowed.join(", "))),
                        }
                        self.diagnostics.push(self.field_line(line, &key), field, message);
                    }
                }
                other => {
                    let what = if path.is_empty() { "the pipeline" } else { path };
                    self.diagnostics.push(
                        line,
                        path,
                        format!("{what} takes named fields only, found a {} key", lua_type_name(&other)),
                    );
                }
            }
        }
        Fields { values, line, path: path.to_owned() }
    }

    /// The items of a list (a table with keys 1..n) of at most `limit` items; `owner`
    /// has the list and `noun` names its items in the message about the limit.
    fn list(
        &mut self,
        value: Value,
        path: &str,
        line: u32,
        limit: usize,
        owner: &str,
        noun: &str,
    ) -> Option<Vec<Value>> {
        let Value::Table(table) = value else {
            self.diagnostics.push(line, path, format!("must be a list, got {}", lua_type_name(&value)));
            return None;
        };
        let count = count_pairs(&table);
        if count > limit {
            self.diagnostics.push(line, path, format!("{owner} has {count} {noun}; the limit is {limit}"));
            return None;
        }
        let pairs = sorted_pairs(&table);
        let mut items = Vec::with_capacity(pairs.len());
        for (expected, (key, value)) in (1..).zip(pairs) {
            match key {
                Value::Integer(index) if index == expected => items.push(value),
                other => {
                    let key = match &other {
                        Value::String(s) => format!("`{}`", quote(&s.to_string_lossy())),
                        Value::Integer(i) => i.to_string(),
                        other => lua_type_name(other).to_owned(),
                    };
                    self.diagnostics.push(
                        line,
                        path,
                        format!("must be a list {{ a, b, ... }} without gaps, found key {key}"),
                    );
                    return None;
                }
            }
        }
        Some(items)
    }

    /// An optional `description`, at most [`MAX_DESCRIPTION_BYTES`] long.
    fn description(&mut self, fields: &mut Fields) -> String {
        match self.string(fields, "description") {
            Some(text) if text.len() > MAX_DESCRIPTION_BYTES => {
                let length = text.len();
                self.error_at(
                    fields,
                    "description",
                    format!("is {length} bytes; the limit is {MAX_DESCRIPTION_BYTES}"),
                );
                String::new()
            }
            text => text.unwrap_or_default(),
        }
    }

    /// Whether a tag's key and value fit [`MAX_TAG_BYTES`]; reports the ones that do not.
    fn tag_fits(&mut self, line: u32, path: &str, tag: &Tag) -> bool {
        let mut fits = true;
        for (part, text) in [("key", &tag.key), ("value", &tag.value)] {
            if text.len() > MAX_TAG_BYTES {
                self.diagnostics.push(
                    line,
                    path,
                    format!("the tag's {part} is {} bytes; the limit is {MAX_TAG_BYTES}", text.len()),
                );
                fits = false;
            }
        }
        fits
    }

    fn string(&mut self, fields: &mut Fields, key: &str) -> Option<String> {
        match fields.take(key)? {
            Value::String(s) => Some(s.to_string_lossy()),
            other => {
                self.error_at(fields, key, format!("must be a string, got {}", lua_type_name(&other)));
                None
            }
        }
    }

    fn function(&mut self, fields: &mut Fields, key: &str) -> Option<Function> {
        match fields.take(key)? {
            Value::Function(f) => Some(f),
            other => {
                self.error_at(fields, key, format!("must be a function, got {}", lua_type_name(&other)));
                None
            }
        }
    }

    fn error_at(&mut self, fields: &Fields, key: &str, message: impl Into<String>) {
        if self.diagnostics.is_full() {
            // Only counted: skip looking for its line.
            self.diagnostics.push(fields.line, "", "");
            return;
        }
        let base = key.split(['[', '.']).next().unwrap_or(key);
        let line = self.field_line(fields.line, base);
        self.diagnostics.push(line, fields.path(key), message);
    }

    /// The line nearest to `hint` on which `key = ` is written, or `hint`. Lua tables carry
    /// no positions, so this reads the source text around the table's known line.
    fn field_line(&self, hint: u32, key: &str) -> u32 {
        const WINDOW: usize = FIELD_WINDOW_LINES;
        let hint_index = (hint as usize).saturating_sub(1).min(self.lines.len().saturating_sub(1));
        (0..=WINDOW)
            .flat_map(|distance| [hint_index.checked_add(distance), hint_index.checked_sub(distance)])
            .flatten()
            .filter(|&index| index < self.lines.len())
            .find(|&index| assigns(self.lines[index], key))
            .and_then(|index| u32::try_from(index + 1).ok())
            .unwrap_or(hint)
    }
}

/// An input value as a set key: numbers by their bits (options are finite, and `-0.0`
/// and `0.0` count as the same option, as `==` has it).
#[derive(PartialEq, Eq, Hash)]
enum OptionKey {
    String(String),
    Number(u64),
    Bool(bool),
}

impl OptionKey {
    fn of(value: &InputValue) -> Self {
        match value {
            InputValue::String(s) => OptionKey::String(s.clone()),
            InputValue::Number(n) if *n == 0.0 => OptionKey::Number(0),
            InputValue::Number(n) => OptionKey::Number(n.to_bits()),
            InputValue::Bool(b) => OptionKey::Bool(*b),
        }
    }
}

/// Whether `line` contains `key = ` as an assignment (not `==`).
fn assigns(line: &str, key: &str) -> bool {
    let mut end = line.len().min(SCANNED_LINE_BYTES);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let mut rest = &line[..end];
    while let Some(at) = rest.find(key) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + key.len()..].trim_start();
        let starts_word = !before.is_some_and(|c| c.is_alphanumeric() || c == '_');
        if starts_word && after.starts_with('=') && !after.starts_with("==") {
            return true;
        }
        rest = &rest[at + key.len()..];
    }
    false
}

/// How many pairs a table holds.
fn count_pairs(table: &Table) -> usize {
    table.pairs::<Value, Value>().count()
}

/// A table's pairs in a stable order: integer keys ascending, then strings (by bytes),
/// then the rest by type name. Keys are compared in place, without copying them.
fn sorted_pairs(table: &Table) -> Vec<(Value, Value)> {
    let mut pairs: Vec<(Value, Value)> = table.pairs::<Value, Value>().filter_map(Result::ok).collect();
    pairs.sort_by(|(a, _), (b, _)| compare_keys(a, b));
    pairs
}

fn compare_keys(a: &Value, b: &Value) -> Ordering {
    fn rank(value: &Value) -> u8 {
        match value {
            Value::Integer(_) => 0,
            Value::String(_) => 1,
            _ => 2,
        }
    }
    match (a, b) {
        (Value::Integer(a), Value::Integer(b)) => a.cmp(b),
        (Value::String(a), Value::String(b)) => a.as_bytes().cmp(&b.as_bytes()),
        _ => rank(a).cmp(&rank(b)).then_with(|| a.type_name().cmp(b.type_name())),
    }
}

/// Lua's names for types, with integers and floats both called numbers.
pub(crate) fn lua_type_name(value: &Value) -> &'static str {
    match value {
        Value::Integer(_) | Value::Number(_) => "number",
        Value::Boolean(_) => "boolean",
        other => other.type_name(),
    }
}

/// The allowed name closest to a misspelt one, if it is close enough to be a typo.
fn suggest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    if key.len() > MAX_SUGGESTED_KEY_BYTES {
        return None;
    }
    allowed
        .iter()
        .map(|candidate| (strsim::levenshtein(key, candidate), *candidate))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, c)| c)
}

fn is_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_STAGE_NAME_BYTES
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_NAME_BYTES
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_identifier_dash(name: &str) -> bool {
    name.len() <= MAX_NAME_BYTES && is_identifier(&name.replace('-', "_")) && !name.starts_with('-')
}

/// Parses `90`, `90s`, `10m`, `1h30m`, `2h`.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return None,
        };
        let value: u64 = number.parse().ok()?;
        total = total.checked_add(value.checked_mul(unit)?)?;
        number.clear();
    }
    number.is_empty().then_some(Duration::from_secs(total))
}
