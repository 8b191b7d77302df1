//! Helpers shared by the tests.

use rivet_core::{LoadError, PipelineDefinition};

/// Loads `source` as `test.lua` and expects it to be valid.
pub fn valid(source: &str) -> PipelineDefinition {
    match rivet_core::check(source, "test.lua") {
        Ok(definition) => definition,
        Err(err) => panic!("expected a valid pipeline, got:\n{err}"),
    }
}

/// Loads `source` as `test.lua` and returns its diagnostics as `LINE: field: message`.
pub fn errors(source: &str) -> Vec<String> {
    match rivet_core::check(source, "test.lua") {
        Ok(definition) => panic!("expected errors, got a valid pipeline: {definition:?}"),
        Err(LoadError::Invalid(diagnostics)) => {
            assert!(diagnostics.iter().all(|d| d.file == "test.lua"), "{diagnostics:?}");
            diagnostics.iter().map(|d| format!("{}: {}: {}", d.line, d.field, d.message)).collect()
        }
        Err(other) => panic!("expected diagnostics, got {other}"),
    }
}

/// Asserts that some diagnostic contains every one of `parts`.
pub fn assert_error(errors: &[String], parts: &[&str]) {
    assert!(
        errors.iter().any(|error| parts.iter().all(|part| error.contains(part))),
        "no error contains {parts:?}; errors:\n{}",
        errors.join("\n")
    );
}

/// A minimal valid pipeline with `extra` spliced into its table.
pub fn pipeline_with(extra: &str) -> String {
    format!(
        "return pipeline.define {{\n  name = \"p\",\n  {extra}\n  stages = {{ {{ name = \"s\", script = function() end }} }},\n}}\n"
    )
}

/// A pipeline whose only input is `spec`, declared as `x`.
pub fn input_pipeline(spec: &str) -> String {
    pipeline_with(&format!("inputs = {{ x = {spec} }},"))
}
