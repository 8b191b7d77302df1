//! Loads a pipeline script: runs it in the sandbox, takes the definition it returns, and
//! validates it.

use mlua::chunk::ChunkMode;
use mlua::{Lua, Value};

use crate::diagnostic::{Diagnostic, Diagnostics, LoadError};
use crate::dsl;
use crate::limits::MAX_DIAGNOSTIC_BYTES;
use crate::model::PipelineDefinition;
use crate::sandbox::{self, Limits};
use crate::text;
use crate::validate::{self, StageFunctions};

/// A loaded pipeline: its definition, plus the Lua state that holds its stage functions so
/// a runner can call them.
#[derive(Debug)]
pub struct LoadedPipeline {
    lua: Lua,
    definition: PipelineDefinition,
    functions: Vec<StageFunctions>,
}

impl LoadedPipeline {
    /// The validated definition.
    pub fn definition(&self) -> &PipelineDefinition {
        &self.definition
    }

    /// Takes the definition, dropping the Lua state.
    pub fn into_definition(self) -> PipelineDefinition {
        self.definition
    }

    /// The Lua state the script ran in; a runner installs its runtime modules here.
    pub fn lua(&self) -> &Lua {
        &self.lua
    }

    /// The functions of the stage named `name`.
    pub fn stage_functions(&self, name: &str) -> Option<&StageFunctions> {
        let index = self.definition.stages.iter().position(|stage| stage.name == name)?;
        self.functions.get(index)
    }
}

/// Loads and validates the pipeline script `source`; `file` names it in diagnostics.
pub fn load(source: &str, file: &str, limits: Limits) -> Result<LoadedPipeline, LoadError> {
    let lua = sandbox::new_state(limits).map_err(|err| LoadError::Sandbox(err.to_string()))?;
    dsl::install(&lua).map_err(|err| LoadError::Sandbox(err.to_string()))?;
    crate::plugin::install_definition_require(&lua).map_err(|err| LoadError::Sandbox(err.to_string()))?;
    sandbox::arm(&lua).map_err(|err| LoadError::Sandbox(err.to_string()))?;

    let returned = lua
        .load(source)
        .set_name(format!("@{file}"))
        .set_mode(ChunkMode::Text)
        .eval::<Value>()
        .map_err(|err| LoadError::Invalid(vec![script_error(&err, file, limits)]))?;

    let spec = match dsl::definition_spec(&lua, &returned) {
        Ok(Some(spec)) => spec,
        Ok(None) => {
            let mut diagnostics = Diagnostics::new(file);
            let last_line = u32::try_from(source.lines().count()).unwrap_or(u32::MAX);
            diagnostics.push(
                last_line,
                "",
                format!(
                    "the script must return a pipeline, got {}: end it with `return pipeline.define{{...}}` or `return pipeline.builder()...:build()`",
                    describe(&returned)
                ),
            );
            return Err(diagnostics.into_error());
        }
        Err(err) => return Err(LoadError::Sandbox(err.to_string())),
    };
    let (definition, functions) = validate::validate(&lua, &spec, file, source)?;
    // Validation is done; the deadline no longer applies until the runner re-arms it.
    sandbox::clock(&lua).disarm();
    Ok(LoadedPipeline { lua, definition, functions })
}

/// Loads `source` with the default limits and returns only its definition: what
/// `rivet pipeline check` and the orchestrator need.
pub fn check(source: &str, file: &str) -> Result<PipelineDefinition, LoadError> {
    load(source, file, Limits::DEFINITION).map(LoadedPipeline::into_definition)
}

fn describe(value: &Value) -> String {
    match value {
        Value::Nil => "nothing".to_owned(),
        Value::Table(_) => "a plain table (wrap it in pipeline.define)".to_owned(),
        other => format!("a {}", validate::lua_type_name(other)),
    }
}

/// Turns a Lua error into a diagnostic, taking the line from Lua's `file:line:` prefix.
fn script_error(err: &mlua::Error, file: &str, limits: Limits) -> Diagnostic {
    let message = match err {
        mlua::Error::MemoryError(_) => {
            format!("script ran out of memory (limit {} MiB)", limits.memory / (1024 * 1024))
        }
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => root_message(other),
    };
    // Keep the first line: the rest is a traceback.
    let first = message.lines().next().unwrap_or_default().trim().to_owned();
    let prefix = format!("{file}:");
    let (line, text) = match line_after(&first, &prefix) {
        Some((line, rest)) => (line, rest.trim_start_matches(':').trim().to_owned()),
        // Errors raised by Rust functions carry no position; the traceback has the caller.
        None => (traceback_line(err, &prefix).unwrap_or(0), first.clone()),
    };
    let text = if matches!(err, mlua::Error::SyntaxError { .. }) { format!("syntax error: {text}") } else { text };
    // A script chooses its error messages, and their length.
    let message = text::truncate_owned(text, MAX_DIAGNOSTIC_BYTES);
    let file = text::truncate(file, MAX_DIAGNOSTIC_BYTES).into_owned();
    Diagnostic { file, line, field: String::new(), message }
}

/// The line number right after `prefix` in `text`, and what follows it.
fn line_after<'a>(text: &'a str, prefix: &str) -> Option<(u32, &'a str)> {
    let at = text.find(prefix)?;
    let rest = &text[at + prefix.len()..];
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    Some((rest[..digits].parse().ok()?, &rest[digits..]))
}

fn traceback_line(err: &mlua::Error, prefix: &str) -> Option<u32> {
    match err {
        mlua::Error::CallbackError { traceback, cause } => {
            traceback_line(cause, prefix).or_else(|| line_after(traceback, prefix).map(|(line, _)| line))
        }
        _ => None,
    }
}

/// The innermost message of an error that crossed Rust callbacks.
fn root_message(err: &mlua::Error) -> String {
    match err {
        mlua::Error::CallbackError { cause, .. } => root_message(cause),
        mlua::Error::RuntimeError(message) => message.clone(),
        mlua::Error::MemoryError(_) => "script ran out of memory".to_owned(),
        other => other.to_string(),
    }
}
