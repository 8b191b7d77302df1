//! How long validating a pipeline takes through the backstop: the 50-stage pipeline of
//! `rivet-core`'s `load` bench, evaluated in-process (what `rivet_core::check` costs) and
//! through a warm worker of the pool (what the orchestrator and the CLI pay per script).
//! The difference is the hop: two pipe writes and the definition's JSON round trip.
//!
//! Run with `cargo bench -p rivet-evaluator` (or `just bench`).

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use rivet_evaluator::{Pool, PoolConfig};

/// The generated pipeline of `rivet-core/benches/load.rs` (benches cannot share code across
/// crates): `inputs` typed inputs, three runner tags, and `stages` stages with a container,
/// a timeout, a script and, for every fifth, a condition.
fn generated_pipeline(stages: usize, inputs: usize) -> String {
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
    source.push_str("    },\n    runner = {\n");
    for (key, value) in [("os", "linux"), ("arch", "x86_64"), ("capability", "docker")] {
        let _ = writeln!(source, "        {{ key = \"{key}\", value = \"{value}\" }},");
    }
    source.push_str("    },\n    stages = {\n");
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

fn validate_50_stages(c: &mut Criterion) {
    let source = generated_pipeline(50, 10);
    let mut group = c.benchmark_group("validate_50_stages");
    group.bench_function("in_process", |b| {
        b.iter(|| rivet_core::check(black_box(&source), "generated.lua").expect("valid"));
    });

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let program = PathBuf::from(env!("CARGO_BIN_EXE_rivet-evaluate-worker"));
    let pool = Pool::new(PoolConfig::new(program, rivet_core::Limits::DEFINITION));
    let check = || runtime.block_on(pool.check(source.clone(), "generated.lua".to_owned()));
    let definition = check().expect("the pool evaluates").expect("the generated pipeline is valid");
    assert_eq!(definition.stages.len(), 50);
    group.bench_function("through_pool", |b| {
        b.iter(|| check().expect("the pool evaluates").expect("valid"));
    });
    group.finish();
}

/// The hop alone: the smallest pipeline, whose evaluation costs next to nothing.
fn validate_one_stage(c: &mut Criterion) {
    let source = r#"return pipeline.define { name = "tiny", stages = { { name = "only", script = function() end } } }"#;
    let mut group = c.benchmark_group("validate_1_stage");
    group.bench_function("in_process", |b| {
        b.iter(|| rivet_core::check(black_box(source), "tiny.lua").expect("valid"));
    });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let program = PathBuf::from(env!("CARGO_BIN_EXE_rivet-evaluate-worker"));
    let pool = Pool::new(PoolConfig::new(program, rivet_core::Limits::DEFINITION));
    group.bench_function("through_pool", |b| {
        b.iter(|| {
            runtime
                .block_on(pool.check(source.to_owned(), "tiny.lua".to_owned()))
                .expect("the pool evaluates")
                .expect("valid")
        });
    });
    group.finish();
}

criterion_group!(benches, validate_50_stages, validate_one_stage);
criterion_main!(benches);
