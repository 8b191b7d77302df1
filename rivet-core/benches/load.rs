//! How long creating a pipeline takes: loading and validating a script (what the
//! orchestrator and `rivet pipeline check` do for every pipeline), and resolving a
//! launch's inputs against the definition.
//!
//! Run with `cargo bench -p rivet-core --bench load` (or `just bench`).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "support/generated.rs"]
mod generated;
use generated::generated_pipeline;

fn load_validate_50_stages(c: &mut Criterion) {
    let source = generated_pipeline(50, 10);
    let definition = rivet_core::check(&source, "generated.lua").expect("the generated pipeline is valid");
    assert_eq!((definition.stages.len(), definition.inputs.len(), definition.runner.len()), (50, 10, 3));
    c.bench_function("load_validate_50_stages", |b| {
        b.iter(|| rivet_core::check(black_box(&source), "generated.lua").expect("valid"));
    });
}

fn load_seed_example(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/build-and-test.lua");
    let source = std::fs::read_to_string(&path).expect("examples/build-and-test.lua is readable");
    rivet_core::check(&source, "build-and-test.lua").expect("the seed example is valid");
    c.bench_function("load_seed_example", |b| {
        b.iter(|| rivet_core::check(black_box(&source), "build-and-test.lua").expect("valid"));
    });
}

fn resolve_inputs_10(c: &mut Criterion) {
    let definition = rivet_core::check(&generated_pipeline(1, 10), "generated.lua").expect("valid");
    // A launch that sets every input, as text the way a CLI or API call gives them.
    let raw: BTreeMap<String, String> = definition
        .inputs
        .iter()
        .map(|spec| {
            let value = match spec.input_type {
                rivet_core::InputType::String if spec.options.is_empty() => "some text",
                rivet_core::InputType::String => "stable",
                rivet_core::InputType::Number => "8",
                rivet_core::InputType::Bool => "yes",
            };
            (spec.name.clone(), value.to_owned())
        })
        .collect();
    let resolved = rivet_core::resolve(&definition.inputs, &raw).expect("the launch's inputs are valid");
    assert_eq!(resolved.len(), 10);
    c.bench_function("resolve_inputs_10", |b| {
        b.iter(|| rivet_core::resolve(black_box(&definition.inputs), black_box(&raw)).expect("valid"));
    });
}

criterion_group!(benches, load_validate_50_stages, load_seed_example, resolve_inputs_10);
criterion_main!(benches);
