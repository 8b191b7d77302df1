//! Asking for a launch's inputs on a terminal.
//!
//! Every declared input that was not given with `--input` is asked for, one at a time:
//! its description, type and default (Enter accepts it) are shown, inputs with options
//! are a selection list, and an answer is checked locally with the same rules the server
//! applies (`rivet_core::inputs::parse_value`), so a wrong one is asked again at once.

use std::collections::BTreeMap;

use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input, Select};
use rivet_core::{InputSpec, InputType, InputValue};
use rivet_proto::v1 as pb;

use crate::error::Error;
use crate::exit;

/// What an optional input without a default offers in a selection list.
const LEAVE_UNSET: &str = "(leave unset)";

/// A declared input as `rivet-core` knows it, from the wire. `None` for a spec the server
/// should never send (an unknown type).
pub fn input_spec(spec: &pb::InputSpec) -> Option<InputSpec> {
    let input_type = match pb::InputType::try_from(spec.r#type).ok()? {
        pb::InputType::String => InputType::String,
        pb::InputType::Number => InputType::Number,
        pb::InputType::Bool => InputType::Bool,
        pb::InputType::Unspecified => return None,
    };
    Some(InputSpec {
        name: spec.name.clone(),
        input_type,
        description: spec.description.clone(),
        default: spec.default_value.as_ref().and_then(rivet_proto::convert::input_value_from_proto),
        options: spec.options.iter().filter_map(rivet_proto::convert::input_value_from_proto).collect(),
        required: spec.required,
    })
}

/// Asks for each declared input of `definition` missing from `given`, and again for each
/// given value that is invalid, and adds the answers to `given`. Blocking: run it off the
/// async executor.
pub fn ask_inputs(definition: &pb::PipelineDefinition, given: &mut BTreeMap<String, String>) -> Result<(), Error> {
    let specs: Vec<InputSpec> = definition.inputs.iter().filter_map(input_spec).collect();
    let wanted: Vec<&InputSpec> = specs
        .iter()
        .filter(|spec| match given.get(&spec.name) {
            None => true,
            Some(text) => match rivet_core::inputs::parse_value(spec, text) {
                Ok(_) => false,
                Err(message) => {
                    eprintln!("input `{}`: {message}", spec.name);
                    true
                }
            },
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    eprintln!("Inputs of pipeline {} (Enter accepts the default):", definition.name);
    let theme = ColorfulTheme::default();
    for spec in wanted {
        eprintln!("{}", describe(spec));
        match ask(&theme, spec).map_err(prompt_error)? {
            Some(text) => {
                given.insert(spec.name.clone(), text);
            }
            None => {
                given.remove(&spec.name);
            }
        }
    }
    Ok(())
}

/// The line shown above an input's prompt: name, type, whether required, description.
fn describe(spec: &InputSpec) -> String {
    let mut text = format!("  {} ({}", spec.name, spec.input_type);
    if spec.required {
        text.push_str(", required");
    }
    text.push(')');
    if !spec.description.is_empty() {
        text.push_str(": ");
        text.push_str(&spec.description);
    }
    text
}

/// Asks for one input; `None` leaves an optional input without a default unset.
fn ask(theme: &ColorfulTheme, spec: &InputSpec) -> dialoguer::Result<Option<String>> {
    let choices: Vec<InputValue> = match spec.input_type {
        _ if !spec.options.is_empty() => spec.options.clone(),
        InputType::Bool => vec![InputValue::Bool(true), InputValue::Bool(false)],
        InputType::String | InputType::Number => Vec::new(),
    };
    if !choices.is_empty() {
        return select(theme, spec, &choices);
    }
    let optional = !spec.required && spec.default.is_none();
    // An empty answer reaches the validator only when empty answers are allowed: allow
    // them whenever there is no default, so a required input says why it asks again.
    let mut input =
        Input::<String>::with_theme(theme).with_prompt(spec.name.as_str()).allow_empty(spec.default.is_none());
    if let Some(default) = &spec.default {
        input = input.default(default.to_string()).show_default(true);
    }
    let checked = spec.clone();
    let text = input
        .validate_with(move |text: &String| -> Result<(), String> {
            if text.is_empty() {
                return if optional { Ok(()) } else { Err(format!("{} is required", checked.name)) };
            }
            rivet_core::inputs::parse_value(&checked, text).map(|_| ())
        })
        .interact_text()?;
    Ok((!text.is_empty()).then_some(text))
}

/// Offers `choices` as a list, with the default (or the first) selected.
fn select(theme: &ColorfulTheme, spec: &InputSpec, choices: &[InputValue]) -> dialoguer::Result<Option<String>> {
    let optional = !spec.required && spec.default.is_none();
    let mut items: Vec<String> = choices.iter().map(ToString::to_string).collect();
    if optional {
        items.insert(0, LEAVE_UNSET.to_owned());
    }
    let default = spec
        .default
        .as_ref()
        .and_then(|default| choices.iter().position(|choice| choice == default))
        .map_or(0, |index| index + usize::from(optional));
    let index = Select::with_theme(theme).with_prompt(spec.name.as_str()).items(&items).default(default).interact()?;
    if optional && index == 0 { Ok(None) } else { Ok(items.get(index).cloned()) }
}

/// Asks a yes/no question; the default is no.
pub fn confirm(question: &str) -> Result<bool, Error> {
    Confirm::with_theme(&ColorfulTheme::default()).with_prompt(question).default(false).interact().map_err(prompt_error)
}

fn prompt_error(err: dialoguer::Error) -> Error {
    match err {
        dialoguer::Error::IO(err) if err.kind() == std::io::ErrorKind::Interrupted => {
            Error::new(exit::INTERRUPTED, "interrupted")
        }
        dialoguer::Error::IO(err) => {
            Error::new(exit::FAILURE, format!("cannot read the answer from the terminal: {err}"))
                .hint("pass every input with --input NAME=VALUE, and --no-input to never ask")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_come_back_from_the_wire() {
        let core = InputSpec {
            name: "env".to_owned(),
            input_type: InputType::String,
            description: "Where".to_owned(),
            default: Some(InputValue::String("dev".to_owned())),
            options: vec![InputValue::String("dev".to_owned()), InputValue::String("prod".to_owned())],
            required: false,
        };
        let definition = rivet_core::PipelineDefinition {
            name: "p".to_owned(),
            description: String::new(),
            inputs: vec![core.clone()],
            runner: Vec::new(),
            plugins: Vec::new(),
            secrets: Vec::new(),
            stages: Vec::new(),
            http: None,
        };
        let wire = rivet_proto::convert::definition_to_proto(&definition);
        assert_eq!(input_spec(&wire.inputs[0]), Some(core));
    }

    #[test]
    fn the_line_above_a_prompt_names_type_and_need() {
        let spec = InputSpec {
            name: "count".to_owned(),
            input_type: InputType::Number,
            description: "How many".to_owned(),
            default: None,
            options: Vec::new(),
            required: true,
        };
        assert_eq!(describe(&spec), "  count (number, required): How many");
    }
}
