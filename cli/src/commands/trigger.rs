//! `rivet trigger create|list|delete`: forge webhooks that launch a pipeline. `create`
//! prints the webhook URL and its secret, once: the server keeps the secret sealed and
//! never sends it again.

use rivet_proto::v1::{self as pb, CreateTriggerRequest, DeleteTriggerRequest, ListTriggersRequest};
use serde_json::json;

use crate::client::Client;
use crate::commands::job::{collect_inputs, parse_input};
use crate::error::{Error, Subject};
use crate::view::{self, Table};
use crate::{Format, exit};

/// Forges, for `trigger create --forge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ForgeArg {
    /// GitHub (github.com or GitHub Enterprise Server).
    Github,
    /// GitLab (gitlab.com or self-managed).
    Gitlab,
    /// Gitea or Forgejo.
    Gitea,
}

impl ForgeArg {
    fn as_str(self) -> &'static str {
        match self {
            ForgeArg::Github => "github",
            ForgeArg::Gitlab => "gitlab",
            ForgeArg::Gitea => "gitea",
        }
    }
}

/// Events, for `trigger create --event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventArg {
    /// Commits pushed to a branch.
    Push,
    /// A tag pushed.
    Tag,
    /// A pull request (GitLab: merge request) opened, reopened or given new commits.
    PullRequest,
}

impl EventArg {
    fn as_str(self) -> &'static str {
        match self {
            EventArg::Push => "push",
            EventArg::Tag => "tag",
            EventArg::PullRequest => "pull_request",
        }
    }
}

/// The `rivet trigger` subcommands.
// Parsed once per invocation: the size of `Create` costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
pub enum TriggerCommand {
    /// Create a trigger (admins only): prints its webhook URL and secret, once. A pipeline
    /// that declares inputs named `ref`, `sha`, `repository`, `event`, `branch`, `tag`,
    /// `pr_number`, `clone_url`, `before` or `sender` receives them from each event.
    Create {
        /// The pipeline to launch (by name; each delivery launches its latest version).
        #[arg(long, short, value_name = "PIPELINE")]
        pipeline: String,
        /// The forge that sends the webhooks.
        #[arg(long, value_enum)]
        forge: ForgeArg,
        /// The repository, as the forge names it: `owner/name` (GitLab: `group/subgroup/name`).
        #[arg(long, short, value_name = "OWNER/NAME")]
        repository: String,
        /// Only these kinds of event launch; repeat for several. All when unset.
        #[arg(long = "event", value_enum, value_name = "EVENT")]
        events: Vec<EventArg>,
        /// Only pushes to (and pull requests into) branches matching this glob; repeat.
        #[arg(long = "branch", value_name = "GLOB")]
        branches: Vec<String>,
        /// Only tags matching this glob; repeat.
        #[arg(long = "tag", value_name = "GLOB")]
        tags: Vec<String>,
        /// Only pushes changing a path matching this glob; repeat.
        #[arg(long = "path", value_name = "GLOB")]
        paths: Vec<String>,
        /// An input every launch gets, `NAME=VALUE`; repeat. The event's inputs win.
        #[arg(long = "input", short, value_name = "NAME=VALUE", value_parser = parse_input)]
        inputs: Vec<(String, String)>,
        /// Report each job's state on the commit, with the forge API token held by this
        /// secret (`rivet secret set NAME`).
        #[arg(long, value_name = "SECRET")]
        status_token_secret: Option<String>,
        /// The forge's REST API for commit statuses; the public instance's by default
        /// (required for Gitea and Forgejo, e.g. https://gitea.example/api/v1).
        #[arg(long, value_name = "URL", requires = "status_token_secret")]
        status_api_url: Option<String>,
        /// The name the status is shown under; `rivet/<pipeline>` by default.
        #[arg(long, value_name = "NAME", requires = "status_token_secret")]
        status_context: Option<String>,
    },
    /// List triggers, never with their secrets.
    List,
    /// Delete a trigger (admins only); later deliveries to its URL get 404.
    Delete {
        /// The trigger's id.
        id: String,
    },
}

/// Runs a `rivet trigger` command.
pub async fn run(client: &Client, command: TriggerCommand, format: Format) -> Result<u8, Error> {
    match command {
        TriggerCommand::Create {
            pipeline,
            forge,
            repository,
            events,
            branches,
            tags,
            paths,
            inputs,
            status_token_secret,
            status_api_url,
            status_context,
        } => {
            let request = CreateTriggerRequest {
                pipeline,
                forge: forge.as_str().to_owned(),
                repository,
                events: events.iter().map(|event| event.as_str().to_owned()).collect(),
                branches,
                tags,
                paths,
                inputs: collect_inputs(inputs)?.into_iter().collect(),
                status: status_token_secret.map(|token_secret| rivet_proto::v1::StatusReporting {
                    token_secret,
                    api_url: status_api_url.unwrap_or_default(),
                    context: status_context.unwrap_or_default(),
                }),
            };
            create(client, request, format).await
        }
        TriggerCommand::List => list(client, format).await,
        TriggerCommand::Delete { id } => delete(client, id).await,
    }
}

async fn create(client: &Client, request: CreateTriggerRequest, format: Format) -> Result<u8, Error> {
    let response = client
        .triggers
        .clone()
        .create_trigger(request)
        .await
        .map_err(|status| client.error(status, Subject::Pipeline))?
        .into_inner();
    let trigger = response.trigger.ok_or_else(|| Error::new(exit::FAILURE, "the server sent no trigger"))?;
    match format {
        Format::Json => {
            let mut value = trigger_json(&trigger);
            value["secret"] = serde_json::Value::String(response.secret);
            view::print_json(&value);
        }
        Format::Table => {
            println!(
                "created trigger {} for {} ({} {})",
                trigger.id, trigger.pipeline, trigger.forge, trigger.repository
            );
            if trigger.url.is_empty() {
                println!("webhook URL: none: the server's webhook listener is off (set webhooks.listen)");
            } else {
                println!("webhook URL: {}", trigger.url);
            }
            println!("secret:      {}", response.secret);
            println!();
            println!("Paste these into the forge's webhook settings (content type application/json).");
            println!("The secret is not shown again.");
        }
    }
    Ok(exit::OK)
}

async fn list(client: &Client, format: Format) -> Result<u8, Error> {
    let triggers = client
        .triggers
        .clone()
        .list_triggers(ListTriggersRequest {})
        .await
        .map_err(|status| client.error(status, Subject::Other))?
        .into_inner()
        .triggers;
    match format {
        Format::Json => view::print_json(&serde_json::Value::Array(triggers.iter().map(trigger_json).collect())),
        Format::Table if triggers.is_empty() => {
            eprintln!("no triggers: create one with `rivet trigger create --pipeline P --forge F --repository R`")
        }
        Format::Table => {
            let mut table = Table::new(&["ID", "PIPELINE", "FORGE", "REPOSITORY", "FILTER", "CREATED"]);
            for trigger in &triggers {
                table.row(vec![
                    trigger.id.clone(),
                    trigger.pipeline.clone(),
                    trigger.forge.clone(),
                    trigger.repository.clone(),
                    filter(trigger),
                    view::local_time(trigger.create_time.as_ref()),
                ]);
            }
            print!("{}", table.render());
        }
    }
    Ok(exit::OK)
}

async fn delete(client: &Client, id: String) -> Result<u8, Error> {
    client
        .triggers
        .clone()
        .delete_trigger(DeleteTriggerRequest { trigger_id: id.clone() })
        .await
        .map_err(|status| client.error(status, Subject::Other))?;
    println!("deleted trigger {id}");
    Ok(exit::OK)
}

/// The filter in one cell: `events=push branches=main,release/*`, or `any`.
fn filter(trigger: &pb::Trigger) -> String {
    let lists = [
        ("events", &trigger.events),
        ("branches", &trigger.branches),
        ("tags", &trigger.tags),
        ("paths", &trigger.paths),
    ];
    let parts: Vec<String> = lists
        .iter()
        .filter(|(_, items)| !items.is_empty())
        .map(|(name, items)| format!("{name}={}", items.join(",")))
        .collect();
    if parts.is_empty() { "any".to_owned() } else { parts.join(" ") }
}

/// A trigger as JSON: never its secret (only `create` adds it).
fn trigger_json(trigger: &pb::Trigger) -> serde_json::Value {
    let inputs: serde_json::Map<String, serde_json::Value> =
        trigger.inputs.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    json!({
        "id": trigger.id,
        "pipeline": trigger.pipeline,
        "forge": trigger.forge,
        "repository": trigger.repository,
        "events": trigger.events,
        "branches": trigger.branches,
        "tags": trigger.tags,
        "paths": trigger.paths,
        "inputs": inputs,
        "url": trigger.url,
        "created": view::time(trigger.create_time.as_ref()).map(|t| t.to_rfc3339()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_cell_names_each_list() {
        let trigger = pb::Trigger {
            events: vec!["push".into()],
            branches: vec!["main".into(), "release/*".into()],
            ..pb::Trigger::default()
        };
        assert_eq!(filter(&trigger), "events=push branches=main,release/*");
        assert_eq!(filter(&pb::Trigger::default()), "any");
        let json = trigger_json(&trigger);
        assert!(json.get("secret").is_none());
    }
}
