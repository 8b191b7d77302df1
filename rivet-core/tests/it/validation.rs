//! Every validation rule of `pipeline.define`, each reported with line and field.

use std::time::{Duration, Instant};

use rivet_core::limits::{MAX_DIAGNOSTIC_BYTES, MAX_DIAGNOSTICS, MAX_STAGES};
use rivet_core::{InputType, InputValue, Tag};

use crate::support::{assert_error, errors, input_pipeline, pipeline_with, valid};

#[test]
fn seed_examples_are_valid() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let build = valid(&std::fs::read_to_string(format!("{root}/build-and-test.lua")).unwrap());
    assert_eq!(build.name, "Build and Test");
    assert_eq!(build.stages.len(), 2);
    assert!(build.stages[1].has_condition);
    assert_eq!(build.stages[0].container.as_deref(), Some("rust:latest"));
    let jobs = build.input("parallel_jobs").unwrap();
    assert_eq!(jobs.input_type, InputType::Number);
    assert_eq!(jobs.default, Some(InputValue::Number(4.0)));
    assert_eq!(jobs.options.len(), 5);
    assert_eq!(
        build.runner,
        vec![Tag { key: "os".into(), value: "linux".into() }, Tag { key: "arch".into(), value: "x86_64".into() }]
    );
    let docker = valid(&std::fs::read_to_string(format!("{root}/docker-build.lua")).unwrap());
    assert!(docker.input("image_name").unwrap().required);
    assert!(!docker.input("push_image").unwrap().required);
}

#[test]
fn every_example_is_valid() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut count = 0;
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "lua") {
            let source = std::fs::read_to_string(&path).unwrap();
            if let Err(err) = rivet_core::check(&source, &path.display().to_string()) {
                panic!("{} is invalid:\n{err}", path.display());
            }
            count += 1;
        }
    }
    assert!(count >= 3, "expected the examples directory to hold pipelines, found {count}");
}

#[test]
fn name_is_required_and_not_empty() {
    let e = errors("return pipeline.define { stages = { { name = 's', script = function() end } } }");
    assert_error(&e, &["1: name: is required"]);
    let e = errors("return pipeline.define {\n name = '  ',\n stages = { { name = 's', script = function() end } } }");
    assert_error(&e, &["2: name: must not be empty"]);
    let e = errors("return pipeline.define { name = 42, stages = { { name = 's', script = function() end } } }");
    assert_error(&e, &["name: must be a string, got number"]);
}

#[test]
fn at_least_one_stage() {
    assert_error(&errors("return pipeline.define { name = 'p' }"), &["stages: is required"]);
    assert_error(
        &errors("return pipeline.define { name = 'p', stages = {} }"),
        &["stages: must contain at least one stage"],
    );
    assert_error(
        &errors("return pipeline.define { name = 'p', stages = 'build' }"),
        &["stages: must be a list, got string"],
    );
    assert_error(
        &errors("return pipeline.define { name = 'p', stages = { build = { name = 'b', script = function() end } } }"),
        &["stages: must be a list", "`build`"],
    );
}

#[test]
fn stage_names_are_unique_and_safe() {
    let source = r#"return pipeline.define {
  name = "p",
  stages = {
    { name = "build", script = function() end },
    { name = "build", script = function() end },
    { name = "has space", script = function() end },
    { name = "-dash", script = function() end },
    { script = function() end },
  },
}"#;
    let e = errors(source);
    assert_error(&e, &["5: stages[2].name: duplicate stage name `build`"]);
    assert_error(&e, &["6: stages[3].name: `has space` is not a valid stage name"]);
    assert_error(&e, &["7: stages[4].name: `-dash` is not a valid stage name"]);
    assert_error(&e, &["8: stages[5].name: is required"]);
    assert_eq!(e.len(), 4, "{e:?}");
    valid(&pipeline_with("").replace("name = \"s\"", "name = \"build.linux-x86_64_v2\""));
}

#[test]
fn script_and_condition_are_functions() {
    let source = r#"return pipeline.define {
  name = "p",
  stages = {
    { name = "a", script = "make" },
    { name = "b" },
    { name = "c", script = function() end, condition = true },
  },
}"#;
    let e = errors(source);
    assert_error(&e, &["4: stages[1].script: must be a function, got string"]);
    assert_error(&e, &["5: stages[2].script: is required"]);
    assert_error(&e, &["6: stages[3].condition: must be a function, got boolean"]);
}

#[test]
fn container_is_an_image_reference() {
    let e = errors(
        "return pipeline.define { name = 'p', stages = { { name = 's', container = 3, script = function() end } } }",
    );
    assert_error(&e, &["stages[1].container: must be a string, got number"]);
    let e = errors(
        "return pipeline.define { name = 'p', stages = { { name = 's', container = 'rust latest', script = function() end } } }",
    );
    assert_error(&e, &["stages[1].container: `rust latest` is not a valid image reference: the repository part"]);
    let pinned = format!("ghcr.io/org/img:1.2@sha256:{}", "ab".repeat(32));
    let ok = valid(&format!(
        "return pipeline.define {{ name = 'p', stages = {{ {{ name = 's', container = '{pinned}', script = function() end }} }} }}",
    ));
    assert_eq!(ok.stages[0].container.as_deref(), Some(pinned.as_str()));
    // A digest must have at least 128 bits of hex, as registries require.
    let e = errors(
        "return pipeline.define { name = 'p', stages = { { name = 's', container = 'img@sha256:abc', script = function() end } } }",
    );
    assert_error(
        &e,
        &["stages[1].container: `img@sha256:abc` is not a valid image reference: the digest `sha256:abc`"],
    );
}

#[test]
fn unknown_fields_are_errors_with_a_suggestion() {
    let source = r#"return pipeline.define {
  name = "p",
  stagse = {},
  stages = {
    {
      name = "build",
      contianer = "rust:latest",
      script = function() end,
    },
  },
  inputs = { x = { type = "string", defualt = "a" } },
  runner = { { key = "os", value = "linux", extra = 1 } },
}"#;
    let e = errors(source);
    assert_error(&e, &["3: stagse: unknown field `stagse`: did you mean `stages`?"]);
    assert_error(&e, &["7: stages[1].contianer: unknown field `contianer`: did you mean `container`?"]);
    assert_error(&e, &["11: inputs.x.defualt: unknown field `defualt`: did you mean `default`?"]);
    assert_error(&e, &["runner[1].extra: unknown field `extra`"]);
}

#[test]
fn timeouts_are_positive_durations() {
    let def = valid(&pipeline_with("").replace("script =", "timeout = \"1h30m\", script ="));
    assert_eq!(def.stages[0].timeout_secs, Some(5400));
    let def = valid(&pipeline_with("").replace("script =", "timeout = 90, script ="));
    assert_eq!(def.stages[0].timeout_secs, Some(90));
    for bad in ["0", "-5", "\"soon\"", "\"10x\"", "true", "1e12"] {
        let e = errors(&pipeline_with("").replace("script =", &format!("timeout = {bad}, script =")));
        assert_error(&e, &["stages[1].timeout: must be a positive number of seconds"]);
    }
}

#[test]
fn input_types() {
    let e = errors(&input_pipeline("{ type = 'integer' }"));
    assert_error(&e, &["inputs.x.type: `integer` is not an input type: use string, number or bool"]);
    let e = errors(&input_pipeline("{ description = 'no type' }"));
    assert_error(&e, &["inputs.x.type: is required"]);
    let def = valid(&input_pipeline("{ type = 'bool' }"));
    assert_eq!(def.inputs[0].input_type, InputType::Bool);
}

#[test]
fn defaults_and_options_have_the_input_type() {
    assert_error(
        &errors(&input_pipeline("{ type = 'number', default = '4' }")),
        &["inputs.x.default: must be a number like the input's type, got string"],
    );
    assert_error(
        &errors(&input_pipeline("{ type = 'bool', default = 'true' }")),
        &["inputs.x.default: must be a bool like the input's type, got string"],
    );
    assert_error(
        &errors(&input_pipeline("{ type = 'string', default = 1 }")),
        &["inputs.x.default: must be a string like the input's type, got number"],
    );
    assert_error(&errors(&input_pipeline("{ type = 'number', default = 0/0 }")), &["not finite"]);
    assert_error(
        &errors(&input_pipeline("{ type = 'number', options = { 1, 'two' } }")),
        &["inputs.x.options[2]: must be a number like the input's type, got string"],
    );
    assert_error(
        &errors(&input_pipeline("{ type = 'string', options = {} }")),
        &["inputs.x.options: must list at least one value"],
    );
    assert_error(&errors(&input_pipeline("{ type = 'string', options = { 'a', 'a' } }")), &["`a` is listed twice"]);
}

#[test]
fn default_must_be_one_of_the_options() {
    let e = errors(&input_pipeline("{ type = 'number', default = 3, options = { 1, 2, 4 } }"));
    assert_error(&e, &["inputs.x.default: `3` is not one of the options (1, 2, 4)"]);
}

#[test]
fn an_input_with_a_default_is_optional() {
    let def = valid(&input_pipeline("{ type = 'string', default = 'main', required = true }"));
    assert!(!def.inputs[0].required);
    let def = valid(&input_pipeline("{ type = 'string', required = true }"));
    assert!(def.inputs[0].required);
    let def = valid(&input_pipeline("{ type = 'string' }"));
    assert!(!def.inputs[0].required);
    assert_error(
        &errors(&input_pipeline("{ type = 'string', required = 'yes' }")),
        &["inputs.x.required: must be true or false, got string"],
    );
}

#[test]
fn input_names_are_checked() {
    let e = errors(&pipeline_with("inputs = { ['my input'] = { type = 'string' } },"));
    assert_error(&e, &["`my input` is not a valid input name"]);
    let e = errors(&pipeline_with("inputs = { x = { name = 'y', type = 'string' } },"));
    assert_error(&e, &["inputs.x.name: `y` differs from the key `x`"]);
    let e = errors(&pipeline_with("inputs = { x = 'string' },"));
    assert_error(&e, &["inputs.x: must be an input spec table, got string"]);
}

#[test]
fn tags_are_string_pairs() {
    let def = valid(&pipeline_with("runner = { os = 'linux', arch = 'arm64' },"));
    assert_eq!(def.runner.len(), 2);
    assert_error(
        &errors(&pipeline_with("runner = { { key = 'os', value = 1 } },")),
        &["runner[1].value: must be a string, got number"],
    );
    assert_error(&errors(&pipeline_with("runner = { { key = 'os' } },")), &["runner[1].value: is required"]);
    assert_error(&errors(&pipeline_with("runner = { os = 1 },")), &["runner: tags are"]);
    assert_error(&errors(&pipeline_with("runner = 'linux',")), &["runner: must be a list"]);
}

#[test]
fn plugins_and_secrets_are_unique_names() {
    let def = valid(&pipeline_with("plugins = { 'git' }, secrets = { 'DEPLOY_KEY' },"));
    assert_eq!(def.plugins, vec!["git"]);
    assert_eq!(def.secrets, vec!["DEPLOY_KEY"]);
    assert_error(&errors(&pipeline_with("secrets = { 'BAD-NAME' },")), &["secrets[1]: `BAD-NAME` is not a valid name"]);
    assert_error(&errors(&pipeline_with("secrets = { 'A', 'A' },")), &["secrets[2]: `A` is listed twice"]);
    assert_error(&errors(&pipeline_with("plugins = { 7 },")), &["plugins[1]: must be a string, got number"]);
}

#[test]
fn plugin_references_pin_a_version_or_a_hash() {
    let hash = "ab".repeat(32);
    let def = valid(&pipeline_with(&format!("plugins = {{ 'git', 'notify@1.2.0', 'cache@sha256:{hash}' }},")));
    assert_eq!(def.plugins, vec!["git".to_owned(), "notify@1.2.0".to_owned(), format!("cache@sha256:{hash}")]);
    let found = errors(&pipeline_with("plugins = { 'git@1.0', 'git@2.0', 'x@sha256:abc', 'y@', '@1' },"));
    assert_error(&found, &["plugins[2]", "the plugin `git` is listed twice"]);
    for index in [3, 4, 5] {
        assert_error(&found, &[&format!("plugins[{index}]"), "is not a valid name"]);
    }
}

#[test]
fn an_http_scope_names_host_patterns_and_methods() {
    let def =
        valid(&pipeline_with("http = { hosts = { 'api.example.com', '*.hooks.example' }, methods = { 'POST' } },"));
    let scope = def.http.expect("a scope");
    assert_eq!(scope.hosts, ["api.example.com", "*.hooks.example"]);
    assert_eq!(scope.methods, ["POST"]);
    assert_eq!(valid(&pipeline_with("")).http, None);
    let found = errors(&pipeline_with("http = { hosts = { 'a b', 'x.*' }, methods = { 'FETCH' }, ports = { 80 } },"));
    assert_error(&found, &["http.hosts[1]", "`a b` is not a valid name"]);
    assert_error(&found, &["http.hosts[2]", "`x.*` is not a valid name"]);
    assert_error(&found, &["http.methods[1]", "`FETCH`"]);
    assert_error(&found, &["http.ports", "unknown"]);
    assert_error(&errors(&pipeline_with("http = 'open',")), &["http: must be a table, got string"]);
}

#[test]
fn all_errors_are_reported_at_once_in_line_order() {
    let source = r#"return pipeline.define {
  name = "",
  inputs = { n = { type = "number", default = "x" } },
  stages = {
    { name = "a b", script = 1 },
  },
}"#;
    let e = errors(source);
    assert_eq!(e.len(), 4, "{e:?}");
    let lines: Vec<u32> = e.iter().map(|e| e.split(':').next().unwrap().parse().unwrap()).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
}

#[test]
fn the_script_must_return_a_definition() {
    assert_error(&errors("local x = 1"), &["the script must return a pipeline, got nothing"]);
    assert_error(&errors("return { name = 'p' }"), &["got a plain table (wrap it in pipeline.define)"]);
    assert_error(&errors("return 42"), &["got a number"]);
    assert_error(
        &errors("return pipeline.define('p')"),
        &["1: : pipeline.define{...}: the definition must be a table, got string"],
    );
}

#[test]
fn lua_errors_carry_their_line() {
    assert_error(&errors("local a = 1\nlocal b = = 2\n"), &["2: : syntax error:"]);
    assert_error(&errors("local a = 1\nlocal b = nil + 1\n"), &["2: : attempt to perform arithmetic on a nil value"]);
    assert_error(&errors("\n\nerror('custom failure')"), &["3: : custom failure"]);
}

#[test]
fn diagnostics_render_as_file_line_field_message() {
    let err = rivet_core::check("return pipeline.define { name = 'p', stages = {} }", "ci/build.lua").unwrap_err();
    assert_eq!(err.to_string(), "ci/build.lua:1: stages: must contain at least one stage");
}

#[test]
fn stage_functions_are_kept_for_the_runner() {
    let loaded = rivet_core::load(
        "return pipeline.define { name = 'p', stages = { { name = 's', condition = function() return false end, script = function() return 7 end } } }",
        "test.lua",
        rivet_core::Limits::DEFINITION,
    )
    .unwrap();
    let functions = loaded.stage_functions("s").unwrap();
    assert_eq!(functions.script.call::<i64>(()).unwrap(), 7);
    assert!(!functions.condition.as_ref().unwrap().call::<bool>(()).unwrap());
    assert!(loaded.stage_functions("missing").is_none());
}

#[test]
fn definition_round_trips_through_json() {
    let def = valid(&input_pipeline("{ type = 'number', default = 2, options = { 1, 2 } }"));
    let json = serde_json::to_string(&def).unwrap();
    let back: rivet_core::PipelineDefinition = serde_json::from_str(&json).unwrap();
    assert_eq!(def, back);
}

/// Validation outside Lua takes time linear in the definition's size: these definitions
/// are as large as the sandbox's memory allows, and each is refused within this bound.
const VALIDATION_BOUND: Duration = Duration::from_secs(5);

/// Checks `source` and returns its diagnostics, asserting that it took less than
/// [`VALIDATION_BOUND`] and that no diagnostic is longer than the limit.
fn errors_quickly(source: &str) -> Vec<String> {
    let started = Instant::now();
    let e = errors(source);
    let elapsed = started.elapsed();
    assert!(elapsed < VALIDATION_BOUND, "validation took {elapsed:?}");
    assert!(e.len() <= MAX_DIAGNOSTICS + 1, "{} diagnostics", e.len());
    for error in &e {
        assert!(error.len() <= 2 * MAX_DIAGNOSTIC_BYTES + 16, "a diagnostic of {} bytes", error.len());
    }
    e
}

#[test]
fn counts_over_their_limits_are_one_diagnostic_each() {
    let stages = "local s = {} for i = 1, 100000 do s[i] = { name = 's' .. i, script = function() end } end\n\
                  return pipeline.define { name = 'p', stages = s }";
    let e = errors_quickly(stages);
    assert_eq!(e, vec![format!("2: stages: the pipeline has 100000 stages; the limit is {MAX_STAGES}")]);

    let options = "local o = {} for i = 1, 100000 do o[i] = 'v' .. i end\n\
                   return pipeline.define { name = 'p', inputs = { x = { type = 'string', options = o } },\n\
                   stages = { { name = 's', script = function() end } } }";
    assert_error(&errors_quickly(options), &["inputs.x.options: the input has 100000 options; the limit is 256"]);

    let inputs = "local i = {} for n = 1, 100000 do i['in' .. n] = { type = 'bool' } end\n\
                  return pipeline.define { name = 'p', inputs = i, stages = { { name = 's', script = function() end } } }";
    assert_error(&errors_quickly(inputs), &["inputs: the pipeline has 100000 inputs; the limit is 256"]);

    let tags = "local r = {} for n = 1, 100000 do r['k' .. n] = 'v' end\n\
                return pipeline.define { name = 'p', runner = r, stages = { { name = 's', script = function() end } } }";
    assert_error(&errors_quickly(tags), &["runner: the pipeline requires 100000 runner tags; the limit is 64"]);

    for field in ["plugins", "secrets"] {
        let source = format!(
            "local l = {{}} for n = 1, 100000 do l[n] = 'n' .. n end\n\
             return pipeline.define {{ name = 'p', {field} = l, stages = {{ {{ name = 's', script = function() end }} }} }}"
        );
        assert_error(
            &errors_quickly(&source),
            &[&format!("{field}: the pipeline has 100000 {field}; the limit is 64")],
        );
    }
}

#[test]
fn long_keys_and_values_are_quoted_shortened() {
    let key = "local spec = { name = 'p', stages = { { name = 's', script = function() end } } }\n\
               for i = 1, 20 do spec[string.rep('k', 1000000) .. i] = true end\n\
               return pipeline.define(spec)";
    let e = errors_quickly(key);
    assert_eq!(e.len(), 20, "{e:?}");
    assert_error(&e, &["unknown field `kkkk", "[truncated", "(expected one of: name, description"]);

    let values = "local long = string.rep('x', 1000000)\n\
                  return pipeline.define { name = long, description = long,\n\
                  inputs = { x = { type = 'string', default = long, options = { long, 'a' } } },\n\
                  runner = { os = long },\n\
                  stages = { { name = long, container = long, script = function() end } } }";
    let e = errors_quickly(values);
    assert_error(&e, &["name: is 1000000 bytes; the limit is 200"]);
    assert_error(&e, &["description: is 1000000 bytes; the limit is 4096"]);
    assert_error(&e, &["inputs.x.default: is 1000000 bytes; the limit is 1024"]);
    assert_error(&e, &["inputs.x.options[1]: is 1000000 bytes; the limit is 1024"]);
    assert_error(&e, &["runner.os: the tag's value is 1000000 bytes; the limit is 128"]);
    assert_error(&e, &["stages[1].name: `xxxx", "[truncated", "is not a valid stage name"]);
    assert_error(&e, &["stages[1].container: `xxxx", "[truncated", "is not a valid image reference"]);
}

#[test]
fn only_the_first_problems_are_reported() {
    let source = "local spec = { name = 'p', stages = { { name = 's', script = function() end } } }\n\
                  for i = 1, 200 do spec['unknown' .. i] = true end\n\
                  return pipeline.define(spec)";
    let e = errors_quickly(source);
    assert_eq!(e.len(), MAX_DIAGNOSTICS + 1);
    assert_error(&e, &[&format!("and {} more problems (only the first 50 are reported)", 200 - MAX_DIAGNOSTICS)]);

    // Past the field limit, unknown fields are one diagnostic and the known ones still count.
    let source = "local spec = { name = 'p', stages = { { name = 's', script = function() end } } }\n\
                  for i = 1, 100000 do spec['unknown' .. i] = true end\n\
                  return pipeline.define(spec)";
    let e = errors_quickly(source);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_error(&e, &["the pipeline has 100002 fields; the limit is 256 (expected one of: name, description"]);

    let stages = "local s = {} for i = 1, 200 do s[i] = { name = 'bad name ' .. i, scrpt = 1 } end\n\
                  return pipeline.define { name = 'p', stages = s }";
    let e = errors_quickly(stages);
    assert_eq!(e.len(), MAX_DIAGNOSTICS + 1);
    assert!(e.last().unwrap().contains("more problems (only the first 50 are reported)"), "{e:?}");
}

#[test]
fn long_source_lines_do_not_slow_the_line_search() {
    // Each diagnostic looks for its field's line around the table; those lines are long.
    let filler = format!("local _ = '{}'\n", "y".repeat(1_000_000));
    let mut source = String::from("return pipeline.define {\n  name = 'p',\n  stages = {\n");
    for i in 0..40 {
        source.push_str(&format!("    {{ name = 'bad name {i}', script = function() end }},\n"));
        source.push_str("    -- ");
        source.push_str(&"z".repeat(200_000));
        source.push('\n');
    }
    source.push_str("  },\n}\n");
    let e = errors_quickly(&format!("{filler}{source}"));
    assert_error(&e, &["stages[1].name: `bad name 0` is not a valid stage name"]);
}

#[test]
fn stage_timeouts_have_a_range() {
    let e = errors(&pipeline_with("").replace("script =", "timeout = 0, script ="));
    assert_error(&e, &["timeout: must be a positive number of seconds"]);
    let e = errors(&pipeline_with("").replace("script =", "timeout = '8d', script ="));
    assert_error(&e, &["timeout: must be a positive number of seconds", "at most 7 days"]);
    valid(&pipeline_with("").replace("script =", "timeout = '7d', script ="));
}
