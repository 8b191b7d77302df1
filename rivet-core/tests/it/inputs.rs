//! Input resolution: raw strings in, typed values out.

use std::collections::BTreeMap;

use rivet_core::{InputValue, resolve};

use crate::support::valid;

fn specs() -> Vec<rivet_core::InputSpec> {
    valid(
        r#"return pipeline.define {
  name = "inputs",
  inputs = {
    branch = { type = "string", default = "main" },
    jobs = { type = "number", default = 4, options = { 1, 2, 4, 8 } },
    skip = { type = "bool", default = false },
    image = { type = "string", required = true },
    ratio = { type = "number" },
    mode = { type = "string", options = { "fast", "safe" } },
  },
  stages = { { name = "s", script = function() end } },
}"#,
    )
    .inputs
}

fn raw(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn error_for(pairs: &[(&str, &str)], input: &str) -> String {
    let errors = resolve(&specs(), &raw(pairs)).unwrap_err();
    errors
        .0
        .iter()
        .find(|e| e.input == input)
        .map(|e| e.message.clone())
        .unwrap_or_else(|| panic!("no error for {input}: {errors}"))
}

#[test]
fn defaults_are_applied_and_values_typed() {
    let resolved = resolve(&specs(), &raw(&[("image", "app"), ("jobs", "8"), ("ratio", "0.5")])).unwrap();
    assert_eq!(resolved["branch"], InputValue::String("main".into()));
    assert_eq!(resolved["jobs"], InputValue::Number(8.0));
    assert_eq!(resolved["skip"], InputValue::Bool(false));
    assert_eq!(resolved["image"], InputValue::String("app".into()));
    assert_eq!(resolved["ratio"], InputValue::Number(0.5));
    // An optional input without a default and without a value stays absent.
    assert!(!resolved.contains_key("mode"));
}

#[test]
fn required_inputs_are_enforced() {
    assert!(error_for(&[], "image").contains("is required: give a string value"));
}

#[test]
fn bools_accept_common_spellings() {
    for (text, expected) in [("true", true), ("FALSE", false), ("yes", true), ("No", false), ("1", true), ("0", false)]
    {
        let resolved = resolve(&specs(), &raw(&[("image", "a"), ("skip", text)])).unwrap();
        assert_eq!(resolved["skip"], InputValue::Bool(expected), "{text}");
    }
    assert!(error_for(&[("image", "a"), ("skip", "maybe")], "skip").contains("`maybe` is not a bool"));
}

#[test]
fn numbers_must_be_finite() {
    assert!(error_for(&[("image", "a"), ("ratio", "abc")], "ratio").contains("`abc` is not a number"));
    assert!(error_for(&[("image", "a"), ("ratio", "inf")], "ratio").contains("not a finite number"));
    assert!(error_for(&[("image", "a"), ("ratio", "NaN")], "ratio").contains("not a finite number"));
}

#[test]
fn options_are_enforced() {
    assert!(
        error_for(&[("image", "a"), ("jobs", "3")], "jobs")
            .contains("`3` is not one of the allowed values: 1, 2, 4, 8")
    );
    assert!(error_for(&[("image", "a"), ("mode", "slow")], "mode").contains("fast, safe"));
    // Numbers compare by value, not by spelling.
    let resolved = resolve(&specs(), &raw(&[("image", "a"), ("jobs", "2.0")])).unwrap();
    assert_eq!(resolved["jobs"], InputValue::Number(2.0));
}

#[test]
fn unknown_inputs_are_rejected() {
    assert!(error_for(&[("image", "a"), ("brnach", "dev")], "brnach").contains("is not declared by the pipeline"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let errors = resolve(&specs(), &raw(&[("jobs", "x"), ("skip", "?"), ("nope", "1")])).unwrap_err();
    let mut inputs: Vec<&str> = errors.0.iter().map(|e| e.input.as_str()).collect();
    inputs.sort();
    assert_eq!(inputs, ["image", "jobs", "nope", "skip"]);
    assert!(errors.to_string().contains("input `jobs`"));
}

#[test]
fn values_render_as_scripts_read_them() {
    assert_eq!(InputValue::Number(4.0).to_string(), "4");
    assert_eq!(InputValue::Number(0.25).to_string(), "0.25");
    assert_eq!(InputValue::Bool(true).to_string(), "true");
}
