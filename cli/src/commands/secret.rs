//! `rivet secret set|list|delete`: secrets for pipelines. A value is read from a prompt
//! that does not echo, or from stdin when that is not a terminal; never from the command
//! line, where it would end up in shell history and in every process listing.

use std::io::{IsTerminal, Read};

use rivet_proto::v1::secret_service_client::SecretServiceClient;
use rivet_proto::v1::{self as pb, DeleteSecretRequest, ListSecretsRequest, SetSecretRequest};
use tonic::transport::Uri;
use zeroize::Zeroizing;

use crate::client::Client;
use crate::error::{Error, Subject};
use crate::view::{self, Table};
use crate::{Format, exit};

/// The most bytes read from stdin for a value (the server's limit is 16 KiB; more is
/// refused there with the limit named, without reading an endless stream here).
const MAX_STDIN_BYTES: u64 = 64 * 1024;

/// The `rivet secret` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SecretCommand {
    /// Set a secret (admins only). The value is read from a prompt that does not echo, or
    /// from stdin: `rivet secret set TOKEN < token.txt`. A trailing newline is dropped.
    Set {
        /// The secret's name, as pipelines declare it.
        name: String,
        /// Make it visible to this pipeline only (it wins over a global one); global when unset.
        #[arg(long, short, value_name = "PIPELINE")]
        pipeline: Option<String>,
    },
    /// List secrets: names, scopes and update times, never values.
    List {
        /// Only this pipeline's own secrets.
        #[arg(long, short, value_name = "PIPELINE")]
        pipeline: Option<String>,
    },
    /// Delete a secret (admins only).
    Delete {
        /// The secret's name.
        name: String,
        /// The pipeline it belongs to; a global secret when unset.
        #[arg(long, short, value_name = "PIPELINE")]
        pipeline: Option<String>,
    },
}

/// Runs a `rivet secret` command.
pub async fn run(client: &Client, command: SecretCommand, format: Format) -> Result<u8, Error> {
    match command {
        SecretCommand::Set { name, pipeline } => set(client, name, pipeline.unwrap_or_default(), format).await,
        SecretCommand::List { pipeline } => list(client, pipeline.unwrap_or_default(), format).await,
        SecretCommand::Delete { name, pipeline } => delete(client, name, pipeline.unwrap_or_default()).await,
    }
}

fn service(client: &Client) -> SecretServiceClient<crate::client::Service> {
    client.secrets.clone()
}

/// Refuses to send a value in plain text off this machine: only `https://` or loopback.
fn check_transport(server: &str) -> Result<(), Error> {
    let uri: Uri = server.parse().map_err(|_| Error::new(exit::USAGE, format!("`{server}` is not a URL")))?;
    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if uri.scheme_str() == Some("https") || loopback {
        Ok(())
    } else {
        Err(Error::new(exit::USAGE, format!("refusing to send a secret to {server} in plain text"))
            .hint("use an https:// server URL (RIVET_SERVER or --server), or a loopback address"))
    }
}

/// The value: from a no-echo prompt on a terminal, else all of stdin.
fn read_value(name: &str) -> Result<Zeroizing<String>, Error> {
    if std::io::stdin().is_terminal() {
        let value = dialoguer::Password::new()
            .with_prompt(format!("value of {name}"))
            .interact()
            .map_err(|err| Error::new(exit::FAILURE, format!("cannot read the value: {err}")))?;
        return Ok(Zeroizing::new(value));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    std::io::stdin()
        .take(MAX_STDIN_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|err| Error::new(exit::FAILURE, format!("cannot read the value from stdin: {err}")))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::new(exit::USAGE, "the value on stdin is not UTF-8"))?;
    let text = text.strip_suffix('\n').map(|rest| rest.strip_suffix('\r').unwrap_or(rest)).unwrap_or(text);
    Ok(Zeroizing::new(text.to_owned()))
}

async fn set(client: &Client, name: String, pipeline: String, format: Format) -> Result<u8, Error> {
    check_transport(&client.server)?;
    let value = read_value(&name)?;
    let request = SetSecretRequest { name, pipeline, value: value.to_string() };
    let response =
        service(client).set_secret(request).await.map_err(|status| client.error(status, Subject::Other))?.into_inner();
    let secret = response.secret.ok_or_else(|| Error::new(exit::FAILURE, "the server sent no secret"))?;
    match format {
        Format::Json => view::print_json(&secret_json(&secret)),
        Format::Table => {
            let verb = if response.replaced { "updated" } else { "set" };
            println!("{verb} secret {} ({})", secret.name, scope(&secret));
        }
    }
    Ok(exit::OK)
}

async fn list(client: &Client, pipeline: String, format: Format) -> Result<u8, Error> {
    let secrets = service(client)
        .list_secrets(ListSecretsRequest { pipeline })
        .await
        .map_err(|status| client.error(status, Subject::Other))?
        .into_inner()
        .secrets;
    match format {
        Format::Json => view::print_json(&serde_json::Value::Array(secrets.iter().map(secret_json).collect())),
        Format::Table if secrets.is_empty() => eprintln!("no secrets: set one with `rivet secret set NAME`"),
        Format::Table => {
            let mut table = Table::new(&["NAME", "SCOPE", "UPDATED", "CREATED"]);
            for secret in &secrets {
                table.row(vec![
                    secret.name.clone(),
                    scope(secret),
                    view::local_time(secret.update_time.as_ref()),
                    view::local_time(secret.create_time.as_ref()),
                ]);
            }
            print!("{}", table.render());
        }
    }
    Ok(exit::OK)
}

async fn delete(client: &Client, name: String, pipeline: String) -> Result<u8, Error> {
    let described = if pipeline.is_empty() { "global".to_owned() } else { format!("pipeline {pipeline}") };
    service(client)
        .delete_secret(DeleteSecretRequest { name: name.clone(), pipeline })
        .await
        .map_err(|status| client.error(status, Subject::Other))?;
    println!("deleted secret {name} ({described})");
    Ok(exit::OK)
}

fn scope(secret: &pb::Secret) -> String {
    if secret.pipeline.is_empty() { "global".to_owned() } else { format!("pipeline {}", secret.pipeline) }
}

fn secret_json(secret: &pb::Secret) -> serde_json::Value {
    serde_json::json!({
        "name": secret.name,
        "pipeline": (!secret.pipeline.is_empty()).then_some(&secret.pipeline),
        "create_time": view::local_time(secret.create_time.as_ref()),
        "update_time": view::local_time(secret.update_time.as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_go_only_over_tls_or_loopback() {
        for ok in ["https://ci.example:7420", "http://127.0.0.1:7420", "http://localhost:7420", "http://[::1]:7420"] {
            assert!(check_transport(ok).is_ok(), "{ok}");
        }
        let err = check_transport("http://ci.example:7420").expect_err("plain text off loopback");
        assert!(err.to_string().contains("in plain text"), "{err}");
    }
}
