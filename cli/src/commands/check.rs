//! `rivet pipeline check FILE...`: validates pipeline scripts without running them.
//!
//! Each script is evaluated in a worker process (this binary, started again with a hidden
//! argument) that is killed when it overruns its time budget, as the orchestrator does: a
//! script stuck where the sandbox cannot stop it still ends with an error naming the limit.

use std::path::Path;

use anyhow::Context;
use rivet_core::{Diagnostic, InputSpec, LoadError, PipelineDefinition};
use rivet_evaluator::{Pool, PoolConfig};
use serde::Serialize;

use crate::Format;
use crate::exit;

/// Scripts larger than this are refused before Lua sees them.
const MAX_SCRIPT_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Serialize)]
struct Report {
    file: String,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pipeline: Option<PipelineDefinition>,
    errors: Vec<Diagnostic>,
}

pub fn run(files: &[std::path::PathBuf], output: Format) -> anyhow::Result<u8> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    let pool = Pool::new(evaluation_pool(files.len())?);
    let checks = files.iter().map(|file| check_file(&pool, file));
    let reports: Vec<Report> =
        runtime.block_on(futures_util::future::join_all(checks)).into_iter().collect::<anyhow::Result<_>>()?;
    let invalid = reports.iter().filter(|report| !report.valid).count();
    match output {
        Format::Json => println!("{}", serde_json::to_string_pretty(&reports)?),
        Format::Table => {
            for report in &reports {
                print_text(report);
            }
            if files.len() > 1 {
                println!("{} of {} pipelines valid", reports.len() - invalid, reports.len());
            }
        }
    }
    Ok(if invalid == 0 { exit::OK } else { exit::INVALID_PIPELINE })
}

/// Workers of this very program with the definition limits, one per CPU, and a queue
/// that holds every file given: the command checks them all, however many.
pub fn evaluation_pool(files: usize) -> anyhow::Result<PoolConfig> {
    let mut config = PoolConfig::current_exe().context("cannot find this program to start evaluation workers")?;
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    config.workers = cpus.min(files).max(1);
    config.queue = files;
    Ok(config)
}

/// Evaluates `source` in `pool`: the script's own result, a limit that stopped it as a
/// diagnostic, or an error when no worker could be started.
pub async fn evaluate(
    pool: &Pool,
    source: String,
    file: &str,
) -> anyhow::Result<Result<PipelineDefinition, LoadError>> {
    pool.evaluate(source, file.to_owned())
        .await
        .map_err(|err| anyhow::Error::from(err).context(format!("cannot evaluate {file}")))
}

async fn check_file(pool: &Pool, path: &Path) -> anyhow::Result<Report> {
    let file = path.display().to_string();
    let invalid = |message: String| Report {
        file: file.clone(),
        valid: false,
        pipeline: None,
        errors: vec![Diagnostic { file: file.clone(), line: 0, field: String::new(), message }],
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > MAX_SCRIPT_BYTES => {
            return Ok(invalid(format!(
                "file is {} bytes; pipeline scripts may be at most {MAX_SCRIPT_BYTES}",
                meta.len()
            )));
        }
        Ok(_) => {}
        Err(err) => return Ok(invalid(format!("cannot read file: {err}"))),
    }
    let source = match std::fs::read_to_string(path) {
        Ok(source) => source,
        Err(err) => return Ok(invalid(format!("cannot read file: {err}"))),
    };
    Ok(match evaluate(pool, source, &file).await? {
        Ok(pipeline) => Report { file, valid: true, pipeline: Some(pipeline), errors: Vec::new() },
        Err(LoadError::Invalid(errors)) => Report { file, valid: false, pipeline: None, errors },
        Err(err @ LoadError::Sandbox(_)) => invalid(err.to_string()),
    })
}

fn print_text(report: &Report) {
    match &report.pipeline {
        Some(pipeline) => {
            println!("{}: valid pipeline \"{}\"", report.file, pipeline.name);
            if !pipeline.inputs.is_empty() {
                let inputs: Vec<String> = pipeline.inputs.iter().map(describe_input).collect();
                println!("  inputs: {}", inputs.join(", "));
            }
            if !pipeline.runner.is_empty() {
                let tags: Vec<String> = pipeline.runner.iter().map(ToString::to_string).collect();
                println!("  runner: {}", tags.join(", "));
            }
            let stages: Vec<String> = pipeline
                .stages
                .iter()
                .map(|stage| {
                    let mut text = stage.name.clone();
                    if let Some(image) = &stage.container {
                        text.push_str(&format!(" [{image}]"));
                    }
                    if stage.has_condition {
                        text.push_str(" (conditional)");
                    }
                    text
                })
                .collect();
            println!("  stages: {}", stages.join(" → "));
        }
        None => {
            for error in &report.errors {
                eprintln!("{error}");
            }
            let count = report.errors.len();
            eprintln!("{}: invalid, {count} error{}", report.file, if count == 1 { "" } else { "s" });
        }
    }
}

fn describe_input(input: &InputSpec) -> String {
    let mut parts = vec![input.input_type.to_string()];
    if input.required {
        parts.push("required".to_owned());
    }
    if let Some(default) = &input.default {
        parts.push(format!("default {default}"));
    }
    if !input.options.is_empty() {
        let options: Vec<String> = input.options.iter().map(ToString::to_string).collect();
        parts.push(format!("one of {}", options.join("|")));
    }
    format!("{} ({})", input.name, parts.join(", "))
}
