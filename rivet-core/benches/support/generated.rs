//! The pipeline the validation benchmarks measure, shared by `rivet-core`'s `load` bench
//! and `rivet-evaluator`'s bench so that both measure the same script.

use std::fmt::Write as _;

/// A large but realistic pipeline: `inputs` typed inputs cycling through string, number
/// and bool (each with options and a default, or required), three runner tags, and
/// `stages` stages with a container, a timeout, a script and, for every fifth, a condition.
pub fn generated_pipeline(stages: usize, inputs: usize) -> String {
    let mut source = String::from("return pipeline.define({\n");
    source.push_str("    name = \"generated\",\n");
    source.push_str("    description = \"A generated pipeline for benchmarks\",\n");
    source.push_str("    inputs = {\n");
    for index in 0..inputs {
        let input = match index % 4 {
            0 => {
                r#"{ type = "string", description = "a choice", options = { "alpha", "beta", "stable" }, default = "beta" }"#
            }
            1 => r#"{ type = "number", description = "a count", options = { 1, 2, 4, 8, 16 }, default = 4 }"#,
            2 => r#"{ type = "bool", description = "a switch", default = false }"#,
            _ => r#"{ type = "string", description = "a free text", required = true }"#,
        };
        let _ = writeln!(source, "        input_{index:02} = {input},");
    }
    source.push_str("    },\n");
    source.push_str("    runner = {\n");
    for (key, value) in [("os", "linux"), ("arch", "x86_64"), ("capability", "docker")] {
        let _ = writeln!(source, "        {{ key = \"{key}\", value = \"{value}\" }},");
    }
    source.push_str("    },\n");
    source.push_str("    stages = {\n");
    for index in 0..stages {
        let _ = writeln!(source, "        {{");
        let _ = writeln!(source, "            name = \"stage-{index:02}\",");
        let _ = writeln!(source, "            container = \"localhost/rivet-test:latest\",");
        let _ = writeln!(source, "            timeout = {},", 60 * (index + 1));
        if index % 5 == 0 {
            let _ =
                writeln!(source, "            condition = function() return input.get(\"input_02\") ~= \"true\" end,");
        }
        let _ = writeln!(source, "            script = function()");
        let _ = writeln!(source, "                log.info(\"stage {index}\")");
        let _ = writeln!(source, "                process.run({{ cmd = \"make\", args = {{ \"step-{index}\" }} }})");
        let _ = writeln!(source, "            end,");
        let _ = writeln!(source, "        }},");
    }
    source.push_str("    },\n})\n");
    source
}
