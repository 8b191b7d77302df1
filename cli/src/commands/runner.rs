//! `rivet runner list`: the runners the orchestrator knows.

use rivet_proto::v1::ListRunnersRequest;

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
            let mut table = Table::new(&["ID", "NAME", "STATUS", "JOBS", "LABELS", "LAST SEEN", "VERSION"]);
            for runner in &runners {
                let mut labels: Vec<String> = runner.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                labels.sort();
                table.row(vec![
                    runner.id.clone(),
                    runner.name.clone(),
                    if runner.online { "online" } else { "offline" }.to_owned(),
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
