//! `rivet plugin publish|list`: Lua plugins that pipelines name in `plugins = { ... }`.

use std::path::PathBuf;

use clap::Subcommand;
use rivet_proto::v1::{ListPluginsRequest, Plugin, PublishPluginRequest};
use serde_json::json;

use crate::client::Client;
use crate::error::{Error, Subject};
use crate::view::{self, Table};
use crate::{Format, exit};

/// The plugin subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Publish a version of a plugin from a Lua file. Pipelines created later pin it by the
    /// SHA-256 of its content; publishing never changes what existing pipelines run.
    // `--version` names the plugin's version here, not rivet's.
    #[command(disable_version_flag = true)]
    Publish {
        /// The plugin's Lua source (one file that returns its module table).
        file: PathBuf,
        /// The name `require` takes, e.g. `git`.
        #[arg(long)]
        name: String,
        /// The version, e.g. `1.2.0`.
        #[arg(long)]
        version: String,
    },
    /// List the published versions, of one plugin or of every plugin.
    List {
        /// Only this plugin's versions.
        name: Option<String>,
    },
}

/// Runs a plugin subcommand.
pub async fn run(client: &Client, command: PluginCommand, format: Format) -> Result<u8, Error> {
    match command {
        PluginCommand::Publish { file, name, version } => publish(client, &file, name, version, format).await,
        PluginCommand::List { name } => list(client, name.unwrap_or_default(), format).await,
    }
}

async fn publish(client: &Client, file: &PathBuf, name: String, version: String, format: Format) -> Result<u8, Error> {
    let source = std::fs::read_to_string(file)
        .map_err(|err| Error::new(exit::USAGE, format!("cannot read {}: {err}", file.display())))?;
    let response = client
        .plugins
        .clone()
        .publish_plugin(PublishPluginRequest { name, version, source })
        .await
        .map_err(|status| client.error(status, Subject::Other))?
        .into_inner();
    let plugin = response.plugin.ok_or_else(|| Error::new(exit::FAILURE, "the server sent no plugin"))?;
    match format {
        Format::Json => view::print_json(&plugin_json(&plugin)),
        Format::Table => println!("published plugin {}@{} (sha256:{})", plugin.name, plugin.version, plugin.sha256),
    }
    Ok(exit::OK)
}

async fn list(client: &Client, name: String, format: Format) -> Result<u8, Error> {
    let plugins = client
        .plugins
        .clone()
        .list_plugins(ListPluginsRequest { name })
        .await
        .map_err(|status| client.error(status, Subject::Other))?
        .into_inner()
        .plugins;
    match format {
        Format::Json => view::print_json(&serde_json::Value::Array(plugins.iter().map(plugin_json).collect())),
        Format::Table if plugins.is_empty() => {
            eprintln!("no plugins: publish one with `rivet plugin publish FILE --name NAME --version VERSION`");
        }
        Format::Table => {
            let mut table = Table::new(&["NAME", "VERSION", "SHA256", "BYTES", "PUBLISHED"]);
            for plugin in &plugins {
                table.row(vec![
                    plugin.name.clone(),
                    plugin.version.clone(),
                    plugin.sha256.clone(),
                    plugin.size_bytes.to_string(),
                    view::local_time(plugin.publish_time.as_ref()),
                ]);
            }
            print!("{}", table.render());
        }
    }
    Ok(exit::OK)
}

fn plugin_json(plugin: &Plugin) -> serde_json::Value {
    json!({
        "name": plugin.name,
        "version": plugin.version,
        "sha256": plugin.sha256,
        "size_bytes": plugin.size_bytes,
        "published": view::local_time(plugin.publish_time.as_ref()),
    })
}
