//! `rivet runner list`: the runners the orchestrator knows; `rivet runner token create`:
//! registration tokens for new runners; `rivet runner revoke`: end a runner's credential.

use std::collections::BTreeMap;
use std::time::Duration;

use rivet_proto::v1::{CreateRegistrationTokenRequest, ListRunnersRequest, RevokeRunnerRequest};

use crate::client::Client;
use crate::error::Subject;
use crate::view::{self, Table};
use crate::{Format, exit};

/// `rivet runner list [--online]`.
pub async fn list(client: &Client, online_only: bool, format: Format) -> Result<u8, crate::error::Error> {
    let request = ListRunnersRequest { include_offline: !online_only };
    let response =
        client.runners.clone().list_runners(request).await.map_err(|status| client.error(status, Subject::Other))?;
    let mut runners = response.into_inner().runners;
    runners.sort_by(|a, b| b.online.cmp(&a.online).then_with(|| a.name.cmp(&b.name)));
    match format {
        Format::Json => view::print_json(&serde_json::Value::Array(runners.iter().map(view::runner_json).collect())),
        Format::Table if runners.is_empty() => {
            eprintln!("no runners: start one with `rivet-runner`, or run `rivet dev` for a server with its own runner");
        }
        Format::Table => {
            let mut table = Table::new(&["ID", "NAME", "STATE", "JOBS", "LABELS", "LAST SEEN", "VERSION"]);
            for runner in &runners {
                let mut labels: Vec<String> = runner.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                labels.sort();
                table.row(vec![
                    runner.id.clone(),
                    runner.name.clone(),
                    view::runner_state(runner).to_owned(),
                    format!("{}/{}", runner.running_job_ids.len(), runner.capacity),
                    labels.join(","),
                    view::local_time(runner.last_seen_time.as_ref()),
                    runner.version.clone(),
                ]);
            }
            print!("{}", table.render());
        }
    }
    Ok(exit::OK)
}

/// Collects `--label` pairs, refusing a key given twice.
pub fn collect_labels(pairs: Vec<(String, String)>) -> Result<BTreeMap<String, String>, crate::error::Error> {
    let mut labels = BTreeMap::new();
    for (key, value) in pairs {
        if labels.insert(key.clone(), value).is_some() {
            return Err(crate::error::Error::new(exit::USAGE, format!("label `{key}` is given twice")));
        }
    }
    Ok(labels)
}

/// `rivet runner token create [--label K=V]... [--expires DURATION] [--uses N]`.
pub async fn create_token(
    client: &Client,
    labels: BTreeMap<String, String>,
    expires: Option<Duration>,
    uses: Option<u32>,
    format: Format,
) -> Result<u8, crate::error::Error> {
    let request = CreateRegistrationTokenRequest {
        labels: labels.clone().into_iter().collect(),
        // Rounded up, so `--expires 1500ms` does not expire sooner than asked.
        expires_in_seconds: expires.map_or(0, |expires| expires.as_secs() + u64::from(expires.subsec_nanos() > 0)),
        uses: uses.unwrap_or(0),
    };
    let response = client
        .runners
        .clone()
        .create_registration_token(request)
        .await
        .map_err(|status| client.error(status, Subject::Other))?
        .into_inner();
    let expires_at = response.expire_time.as_ref().map(|time| view::local_time(Some(time)));
    match format {
        Format::Json => view::print_json(&serde_json::json!({
            "token_id": response.token_id,
            "token": response.token,
            "labels": labels,
            "uses": uses,
            "expire_time": response.expire_time.as_ref().map(|time| view::local_time(Some(time))),
        })),
        Format::Table => {
            println!("{}", response.token);
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            eprintln!(
                "registration token {} (shown once): labels {}, {}, {}",
                response.token_id,
                if labels.is_empty() { "as each runner asks".to_owned() } else { labels.join(",") },
                expires_at.map_or("no expiry".to_owned(), |at| format!("expires {at}")),
                uses.map_or("no use limit".to_owned(), |uses| format!("{uses} use(s)")),
            );
            eprintln!("give it to a new runner as `registration_token` (RIVET_RUNNER_REGISTRATION_TOKEN)");
        }
    }
    Ok(exit::OK)
}

/// `rivet runner revoke ID`.
pub async fn revoke(client: &Client, id: &str, format: Format) -> Result<u8, crate::error::Error> {
    let request = RevokeRunnerRequest { runner_id: id.to_owned() };
    let response = client
        .runners
        .clone()
        .revoke_runner(request)
        .await
        .map_err(|status| client.error(status, Subject::Other))?
        .into_inner();
    match format {
        Format::Json => view::print_json(&serde_json::json!({
            "runner_id": id,
            "requeued_job_ids": response.requeued_job_ids,
        })),
        Format::Table => {
            eprintln!("runner {id} revoked: its session is closed and it cannot connect again");
            for job in &response.requeued_job_ids {
                eprintln!("  job {job} requeued");
            }
        }
    }
    Ok(exit::OK)
}
