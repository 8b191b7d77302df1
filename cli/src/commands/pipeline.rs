//! `rivet pipeline create|list|show|delete`: pipelines stored on the server.

use std::io::IsTerminal;
use std::path::Path;

use rivet_proto::v1::{self as pb, CreatePipelineRequest, DeletePipelineRequest, ListPipelinesRequest};

use crate::client::Client;
use crate::error::{Error, Subject, plural};
use crate::view::{self, Table};
use crate::{Format, exit, prompt, resolve};

/// Pipeline scripts larger than this are refused before they are sent.
const MAX_SCRIPT_BYTES: u64 = 1024 * 1024;

/// Reads a pipeline script, refusing one that is too large or unreadable.
pub fn read_script(path: &Path) -> Result<String, Error> {
    let unreadable = |err: std::io::Error| Error::new(exit::FAILURE, format!("cannot read {}: {err}", path.display()));
    let size = std::fs::metadata(path).map_err(unreadable)?.len();
    if size > MAX_SCRIPT_BYTES {
        return Err(Error::new(
            exit::INVALID_PIPELINE,
            format!("{} is {size} bytes; pipeline scripts may be at most {MAX_SCRIPT_BYTES}", path.display()),
        ));
    }
    std::fs::read_to_string(path).map_err(unreadable)
}

/// Stores the pipeline in `file` (a new version when its name exists) and returns it.
pub async fn create_pipeline(client: &Client, file: &Path) -> Result<pb::Pipeline, Error> {
    let source = read_script(file)?;
    let request = CreatePipelineRequest { source, file_name: file.display().to_string() };
    let response = client
        .pipelines
        .clone()
        .create_pipeline(request)
        .await
        .map_err(|status| client.error(status, Subject::Pipeline))?;
    response.into_inner().pipeline.ok_or_else(|| Error::new(exit::FAILURE, "the server sent no pipeline"))
}

/// `rivet pipeline create FILE`.
pub async fn create(client: &Client, file: &Path, format: Format) -> Result<u8, Error> {
    let pipeline = create_pipeline(client, file).await?;
    match format {
        Format::Json => view::print_json(&view::pipeline_json(&pipeline, false)),
        Format::Table => {
            println!("created pipeline {} version {} ({})", pipeline.name, pipeline.version, pipeline.id);
            eprintln!("launch it with `rivet job launch {}`", view::shell_word(&pipeline.name));
        }
    }
    Ok(exit::OK)
}

/// `rivet pipeline list`.
pub async fn list(client: &Client, format: Format) -> Result<u8, Error> {
    let mut pipelines = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListPipelinesRequest { page_size: 500, page_token };
        let page = client
            .pipelines
            .clone()
            .list_pipelines(request)
            .await
            .map_err(|status| client.error(status, Subject::Pipeline))?;
        let page = page.into_inner();
        pipelines.extend(page.pipelines);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    match format {
        Format::Json => view::print_json(&serde_json::Value::Array(
            pipelines.iter().map(|pipeline| view::pipeline_json(pipeline, false)).collect(),
        )),
        Format::Table if pipelines.is_empty() => {
            eprintln!("no pipelines yet: `rivet pipeline create FILE` stores one");
        }
        Format::Table => {
            let mut table = Table::new(&["NAME", "VERSION", "ID", "STAGES", "CREATED", "DESCRIPTION"]);
            for pipeline in &pipelines {
                let definition = pipeline.definition.clone().unwrap_or_default();
                table.row(vec![
                    pipeline.name.clone(),
                    pipeline.version.to_string(),
                    pipeline.id.clone(),
                    definition.stages.len().to_string(),
                    view::local_time(pipeline.create_time.as_ref()),
                    definition.description,
                ]);
            }
            print!("{}", table.render());
        }
    }
    Ok(exit::OK)
}

/// `rivet pipeline show NAME|ID [--version N] [--source]`.
pub async fn show(client: &Client, reference: &str, version: u32, source: bool, format: Format) -> Result<u8, Error> {
    let pipeline = resolve::pipeline(client, reference, version).await?;
    match format {
        Format::Json => view::print_json(&view::pipeline_json(&pipeline, source)),
        Format::Table => {
            print!("{}", describe(&pipeline));
            if source {
                println!("\n--- {} ---", pipeline.file_name);
                print!("{}", pipeline.source);
                if !pipeline.source.ends_with('\n') {
                    println!();
                }
            }
        }
    }
    Ok(exit::OK)
}

/// A pipeline version's summary, as `pipeline show` prints it.
fn describe(pipeline: &pb::Pipeline) -> String {
    let definition = pipeline.definition.clone().unwrap_or_default();
    let mut out = String::new();
    let mut field = |name: &str, value: &str| out.push_str(&format!("{name:<12}{value}\n"));
    field("pipeline", &pipeline.name);
    field("version", &pipeline.version.to_string());
    field("id", &pipeline.id);
    field("file", &pipeline.file_name);
    field("created", &view::local_time(pipeline.create_time.as_ref()));
    if !definition.description.is_empty() {
        field("description", &definition.description);
    }
    if !definition.runner_tags.is_empty() {
        let tags: Vec<String> = definition.runner_tags.iter().map(|tag| format!("{}={}", tag.key, tag.value)).collect();
        field("runner", &tags.join(", "));
    }
    if !definition.secrets.is_empty() {
        field("secrets", &definition.secrets.join(", "));
    }
    if !definition.plugins.is_empty() {
        let pins: Vec<String> = pipeline
            .plugin_pins
            .iter()
            .map(|pin| format!("{}@{} (sha256:{})", pin.name, pin.version, pin.sha256.get(..12).unwrap_or(&pin.sha256)))
            .collect();
        let shown = if pins.is_empty() { definition.plugins.join(", ") } else { pins.join(", ") };
        field("plugins", &shown);
    }
    if let Some(http) = &definition.http {
        let all = |list: &[String], what: &str| if list.is_empty() { what.to_owned() } else { list.join(", ") };
        let hosts = all(&http.hosts, "every host the runner allows");
        field("http", &format!("{} ({})", hosts, all(&http.methods, "any method")));
    }
    if definition.inputs.is_empty() {
        field("inputs", "none");
    } else {
        out.push_str("inputs\n");
        let mut table = Table::new(&["  NAME", "TYPE", "REQUIRED", "DEFAULT", "OPTIONS", "DESCRIPTION"]);
        for input in &definition.inputs {
            table.row(vec![
                format!("  {}", input.name),
                view::input_type(input.r#type),
                if input.required { "yes" } else { "no" }.to_owned(),
                input.default_value.as_ref().map_or_else(|| "-".to_owned(), view::input_value),
                if input.options.is_empty() {
                    "-".to_owned()
                } else {
                    input.options.iter().map(view::input_value).collect::<Vec<_>>().join("|")
                },
                input.description.clone(),
            ]);
        }
        out.push_str(&table.render());
    }
    out.push_str("stages\n");
    let mut table = Table::new(&["  NAME", "CONTAINER", "CONDITION", "TIMEOUT", "NETWORK"]);
    for stage in &definition.stages {
        table.row(vec![
            format!("  {}", stage.name),
            if stage.container.is_empty() { "(runner default)".to_owned() } else { stage.container.clone() },
            if stage.has_condition { "yes" } else { "no" }.to_owned(),
            if stage.timeout_seconds == 0 { "-".to_owned() } else { format!("{}s", stage.timeout_seconds) },
            if stage.network.is_empty() { "(runner default)".to_owned() } else { stage.network.clone() },
        ]);
    }
    out.push_str(&table.render());
    out
}

/// `rivet pipeline delete NAME|ID [--yes]`.
pub async fn delete(client: &Client, reference: &str, yes: bool) -> Result<u8, Error> {
    let pipeline = resolve::pipeline(client, reference, 0).await?;
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::new(
                exit::USAGE,
                format!("refusing to delete pipeline {} without confirmation", pipeline.name),
            )
            .hint("pass --yes to delete without asking"));
        }
        let question = format!(
            "Delete pipeline {} and all its {} version{}? Its jobs stay readable.",
            pipeline.name,
            pipeline.version,
            plural(pipeline.version as usize)
        );
        let confirmed = tokio::task::spawn_blocking(move || prompt::confirm(&question))
            .await
            .map_err(|err| Error::new(exit::FAILURE, format!("the prompt failed: {err}")))??;
        if !confirmed {
            eprintln!("nothing deleted");
            return Ok(exit::FAILURE);
        }
    }
    let request = DeletePipelineRequest { pipeline: pipeline.name.clone() };
    let response = client
        .pipelines
        .clone()
        .delete_pipeline(request)
        .await
        .map_err(|status| client.error(status, Subject::Pipeline))?;
    let deleted = response.into_inner().deleted_versions;
    println!("deleted pipeline {} ({deleted} version{})", pipeline.name, plural(deleted as usize));
    Ok(exit::OK)
}
