//! The fluent `pipeline.builder()` and the `pipeline.input/stage/tag` helpers.

use rivet_core::InputType;

use crate::support::{assert_error, errors, valid};

#[test]
fn builder_builds_the_same_definition_as_define() {
    let source = r#"return pipeline.builder()
    :name("Docker Build Pipeline")
    :description("Builds and pushes a Docker image")
    :input("image_name", { type = "string", description = "Docker image name", required = true })
    :input("push_image", { type = "bool", default = true })
    :tag({ key = "capability", value = "docker" })
    :tag("os", "linux")
    :plugin("git")
    :secret("REGISTRY_TOKEN")
    :stage({ name = "build", container = "docker:latest", script = function() end })
    :stage({ name = "push", script = function() end })
    :build()"#;
    let def = valid(source);
    assert_eq!(def.name, "Docker Build Pipeline");
    assert_eq!(def.description, "Builds and pushes a Docker image");
    // The builder keeps declaration order.
    let names: Vec<&str> = def.inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["image_name", "push_image"]);
    assert_eq!(def.inputs[1].input_type, InputType::Bool);
    assert_eq!(def.runner.len(), 2);
    assert_eq!(def.plugins, ["git"]);
    assert_eq!(def.secrets, ["REGISTRY_TOKEN"]);
    assert_eq!(def.stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["build", "push"]);
    assert_eq!(def.stages[1].line, 11);
}

#[test]
fn builder_errors_point_at_the_call() {
    let source = r#"return pipeline.builder()
    :name("p")
    :input("n", { type = "number", default = "x" })
    :stage({ name = "ok", script = function() end })
    :stage({ name = "bad stage", script = function() end })
    :build()"#;
    let e = errors(source);
    assert_error(&e, &["3: inputs[1].default: must be a number"]);
    assert_error(&e, &["5: stages[2].name: `bad stage` is not a valid stage name"]);
}

#[test]
fn builder_needs_a_colon() {
    let e = errors("return pipeline.builder().name('x'):build()");
    assert_error(&e, &["builder:name(...) must be called with a colon"]);
}

#[test]
fn builder_without_stages_is_invalid() {
    assert_error(&errors("return pipeline.builder():name('p'):build()"), &["stages: is required"]);
}

#[test]
fn helpers_record_lines_and_names() {
    let source = r#"local build = pipeline.stage {
  name = "build",
  script = function() end,
}
return pipeline.define {
  name = "helpers",
  inputs = { pipeline.input("target", { type = "string", options = { "debug", "release" }, default = "debug" }) },
  runner = { pipeline.tag("os", "linux") },
  stages = { build, pipeline.stage { name = "bad name!", script = function() end } },
}"#;
    let e = errors(source);
    assert_error(&e, &["9: stages[2].name: `bad name!`"]);
    let def = valid(&source.replace("bad name!", "test"));
    assert_eq!(def.inputs[0].name, "target");
    assert_eq!(def.stages[0].line, 1);
    assert_eq!(def.runner[0].to_string(), "os=linux");
}
