//! `rivet token create|list|revoke`: API tokens and their roles (admins only).

use std::time::Duration;

use rivet_proto::v1::{self as pb, CreateTokenRequest, RevokeTokenRequest};

use crate::client::Client;
use crate::error::{Error, Subject};
use crate::view::{self, Table};
use crate::{Format, exit, resolve};

/// Roles, for `token create --role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// Read: get, list, watch and follow pipelines, jobs, logs and runners.
    Viewer,
    /// A viewer that may also launch and cancel jobs.
    Operator,
    /// Everything: pipelines, runners and tokens.
    Admin,
}

impl RoleArg {
    fn to_proto(self) -> pb::Role {
        match self {
            RoleArg::Viewer => pb::Role::Viewer,
            RoleArg::Operator => pb::Role::Operator,
            RoleArg::Admin => pb::Role::Admin,
        }
    }
}

/// `rivet token create --role ROLE [--name NAME] [--expires DURATION]`: prints the token
/// once on stdout (alone, so scripts can capture it), and the warning on stderr.
pub async fn create(
    client: &Client,
    role: RoleArg,
    name: Option<String>,
    expires: Option<Duration>,
    format: Format,
) -> Result<u8, Error> {
    let ttl = expires
        .map(prost_types::Duration::try_from)
        .transpose()
        .map_err(|_| Error::new(exit::USAGE, "--expires is too long"))?;
    let request = CreateTokenRequest { role: role.to_proto() as i32, name: name.unwrap_or_default(), ttl };
    let response = client
        .tokens
        .clone()
        .create_token(request)
        .await
        .map_err(|status| client.error(status, Subject::Other))?
        .into_inner();
    let token = response.token.ok_or_else(|| Error::new(exit::FAILURE, "the server sent no token"))?;
    let expiry = match token.expire_time.as_ref() {
        Some(_) => format!("expires {}", view::local_time(token.expire_time.as_ref())),
        None => "does not expire".to_owned(),
    };
    eprintln!(
        "created API token {} with role {} ({expiry}). It is not shown again: store it now.",
        token.id,
        view::role(token.role)
    );
    match format {
        Format::Json => {
            let mut json = view::token_json(&token);
            json["token"] = serde_json::Value::String(response.secret);
            view::print_json(&json);
        }
        Format::Table => println!("{}", response.secret),
    }
    Ok(exit::OK)
}

/// `rivet token list`: every token, without secrets.
pub async fn list(client: &Client, format: Format) -> Result<u8, Error> {
    let tokens = client.api_tokens().await?;
    match format {
        Format::Json => view::print_json(&serde_json::Value::Array(tokens.iter().map(view::token_json).collect())),
        Format::Table if tokens.is_empty() => {
            eprintln!("no API tokens: create one with `rivet token create --role viewer|operator|admin`");
        }
        Format::Table => {
            let mut table = Table::new(&["ID", "NAME", "ROLE", "STATUS", "CREATED", "LAST USED", "EXPIRES"]);
            for token in &tokens {
                table.row(vec![
                    token.id.clone(),
                    token.name.clone(),
                    view::role(token.role),
                    view::token_status(token).to_owned(),
                    view::local_time(token.create_time.as_ref()),
                    view::local_time(token.last_use_time.as_ref()),
                    view::local_time(token.expire_time.as_ref()),
                ]);
            }
            print!("{}", table.render());
        }
    }
    Ok(exit::OK)
}

/// `rivet token revoke ID`: the token stops working at once.
pub async fn revoke(client: &Client, reference: &str, format: Format) -> Result<u8, Error> {
    let id = resolve::token_id(client, reference).await?;
    let response = client
        .tokens
        .clone()
        .revoke_token(RevokeTokenRequest { token_id: id.clone() })
        .await
        .map_err(|status| client.error(status, Subject::Other))?;
    let token = response.into_inner().token.ok_or_else(|| Error::new(exit::FAILURE, "the server sent no token"))?;
    match format {
        Format::Json => view::print_json(&view::token_json(&token)),
        Format::Table => println!("revoked API token {id} ({}, role {})", token.name, view::role(token.role)),
    }
    Ok(exit::OK)
}
