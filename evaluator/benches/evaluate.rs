//! How long validating a pipeline takes through the backstop: the 50-stage pipeline of
//! `rivet-core`'s `load` bench, evaluated in-process (what `rivet_core::check` costs) and
//! through a warm worker of the pool (what the orchestrator and the CLI pay per script).
//! The difference is the hop: two pipe writes and the definition's JSON round trip.
//!
//! Run with `cargo bench -p rivet-evaluator` (or `just bench`).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "../../rivet-core/benches/support/generated.rs"]
mod generated;
use generated::generated_pipeline;
use rivet_evaluator::{Pool, PoolConfig};

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
