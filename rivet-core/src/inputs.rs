//! Input resolution for a launch: raw strings in, typed values out.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{InputSpec, InputType, InputValue, ResolvedInputs};

/// Why one input's value was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputError {
    /// The input's name.
    pub input: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "input `{}`: {}", self.input, self.message)
    }
}

/// Every input problem of one launch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InputErrors(pub Vec<InputError>);

/// Resolves `raw` values against the declared `specs`: parses each by its type, applies
/// defaults, enforces `required` and `options`, and rejects names that are not declared.
/// Reports every problem at once.
pub fn resolve(specs: &[InputSpec], raw: &BTreeMap<String, String>) -> Result<ResolvedInputs, InputErrors> {
    let mut errors = Vec::new();
    for name in raw.keys() {
        if !specs.iter().any(|spec| &spec.name == name) {
            let declared: Vec<&str> = specs.iter().map(|spec| spec.name.as_str()).collect();
            let message = if declared.is_empty() {
                "is not declared: this pipeline takes no inputs".to_owned()
            } else {
                format!("is not declared by the pipeline (its inputs: {})", declared.join(", "))
            };
            errors.push(InputError { input: name.clone(), message });
        }
    }

    let mut resolved = ResolvedInputs::new();
    for spec in specs {
        let value = match raw.get(&spec.name) {
            Some(text) => match parse_value(spec, text) {
                Ok(value) => Some(value),
                Err(message) => {
                    errors.push(InputError { input: spec.name.clone(), message });
                    continue;
                }
            },
            None => spec.default.clone(),
        };
        match value {
            Some(value) => {
                resolved.insert(spec.name.clone(), value);
            }
            None if spec.required => errors.push(InputError {
                input: spec.name.clone(),
                message: format!("is required: give a {} value", spec.input_type),
            }),
            None => {}
        }
    }
    if errors.is_empty() { Ok(resolved) } else { Err(InputErrors(errors)) }
}

/// Parses one raw value by the spec's type and checks it against the spec's options.
pub fn parse_value(spec: &InputSpec, text: &str) -> Result<InputValue, String> {
    let value = parse_typed(spec.input_type, text)?;
    if !spec.options.is_empty() && !spec.options.contains(&value) {
        let options: Vec<String> = spec.options.iter().map(ToString::to_string).collect();
        return Err(format!("`{text}` is not one of the allowed values: {}", options.join(", ")));
    }
    Ok(value)
}

/// Parses `text` as a value of `input_type`. Bools accept true/false, yes/no, on/off and
/// 1/0 in any case; numbers must be finite.
pub fn parse_typed(input_type: InputType, text: &str) -> Result<InputValue, String> {
    match input_type {
        InputType::String => Ok(InputValue::String(text.to_owned())),
        InputType::Number => match text.trim().parse::<f64>() {
            Ok(number) if number.is_finite() => Ok(InputValue::Number(number)),
            Ok(_) => Err(format!("`{text}` is not a finite number")),
            Err(_) => Err(format!("`{text}` is not a number")),
        },
        InputType::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(InputValue::Bool(true)),
            "false" | "no" | "off" | "0" => Ok(InputValue::Bool(false)),
            _ => Err(format!("`{text}` is not a bool: use true or false (yes/no and 1/0 work too)")),
        },
    }
}
