//! Job, pipeline and API token references: full ids, names, and unique id prefixes.
//!
//! The server only knows full ids and names, so a prefix is resolved here by listing and
//! matching. No match and more than one match are both errors that say what to do.

use rivet_proto::v1::{self as pb, GetPipelineRequest, ListJobsRequest, ListPipelinesRequest};
use tonic::Code;

use crate::client::Client;
use crate::error::{Error, Subject};
use crate::exit;
use crate::view;

/// The most candidates an ambiguity error lists.
const MAX_CANDIDATES: usize = 10;

/// The biggest page the server hands out.
const PAGE_SIZE: u32 = 500;

/// Whether `text` can be (the start of) an id: hex digits and dashes.
fn looks_like_id(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// Whether `id` starts with `prefix`, ignoring case.
fn id_matches(id: &str, prefix: &str) -> bool {
    id.len() >= prefix.len() && id[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Picks the one candidate among `matches`, or explains why there is not exactly one.
fn one<T>(
    mut matches: Vec<T>,
    reference: &str,
    what: &str,
    describe: impl Fn(&T) -> String,
    list: &str,
) -> Result<T, Error> {
    match matches.len() {
        1 => Ok(matches.remove(0)),
        0 => Err(Error::new(exit::NOT_FOUND, format!("no {what} matches `{reference}`"))
            .hint(format!("`{list}` shows the {what}s; give a name, an id or the start of an id"))),
        count => {
            let mut details: Vec<String> = matches.iter().take(MAX_CANDIDATES).map(describe).collect();
            if count > MAX_CANDIDATES {
                details.push(format!("… and {} more", count - MAX_CANDIDATES));
            }
            Err(Error::new(exit::NOT_FOUND, format!("`{reference}` is ambiguous: it starts {count} {what} ids"))
                .details(details)
                .hint("give more characters of the id"))
        }
    }
}

/// The id of the job `reference` names: a full id, or a unique prefix of one.
pub async fn job_id(client: &Client, reference: &str) -> Result<String, Error> {
    let reference = reference.trim();
    if !looks_like_id(reference) {
        return Err(Error::new(exit::NOT_FOUND, format!("`{reference}` is not a job id"))
            .hint("`rivet job list` shows the jobs; give an id or the start of one"));
    }
    if reference.len() == 36 {
        return Ok(reference.to_ascii_lowercase());
    }
    let mut matches: Vec<pb::Job> = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListJobsRequest { page_size: PAGE_SIZE, page_token, ..Default::default() };
        let page = client.jobs.clone().list_jobs(request).await.map_err(|status| client.error(status, Subject::Job))?;
        let page = page.into_inner();
        matches.extend(page.jobs.into_iter().filter(|job| id_matches(&job.id, reference)));
        if page.next_page_token.is_empty() || matches.len() > MAX_CANDIDATES {
            break;
        }
        page_token = page.next_page_token;
    }
    let describe = |job: &pb::Job| {
        format!(
            "{}  {} v{}  {}  {}",
            job.id,
            job.pipeline_name,
            job.pipeline_version,
            view::job_state(job.state),
            view::local_time(job.create_time.as_ref())
        )
    };
    one(matches, reference, "job", describe, "rivet job list").map(|job| job.id)
}

/// The id of the API token `reference` names: a full id, or a unique prefix of one.
pub async fn token_id(client: &Client, reference: &str) -> Result<String, Error> {
    let reference = reference.trim();
    if !looks_like_id(reference) {
        return Err(Error::new(exit::NOT_FOUND, format!("`{reference}` is not a token id"))
            .hint("`rivet token list` shows the tokens; give an id or the start of one"));
    }
    if reference.len() == 36 {
        return Ok(reference.to_ascii_lowercase());
    }
    let tokens = client.api_tokens().await?;
    let matches: Vec<pb::ApiToken> = tokens.into_iter().filter(|token| id_matches(&token.id, reference)).collect();
    let describe = |token: &pb::ApiToken| {
        format!(
            "{}  {}  {}  {}",
            token.id,
            view::role(token.role),
            token.name,
            view::local_time(token.create_time.as_ref())
        )
    };
    one(matches, reference, "token", describe, "rivet token list").map(|token| token.id)
}

/// The pipeline version `reference` names, fetched: a name (its latest version, or
/// `version`), a full version id, or a unique prefix of the id of a latest version.
pub async fn pipeline(client: &Client, reference: &str, version: u32) -> Result<pb::Pipeline, Error> {
    let reference = reference.trim();
    let request = GetPipelineRequest { pipeline: reference.to_owned(), version };
    match client.pipelines.clone().get_pipeline(request).await {
        Ok(response) => {
            return response
                .into_inner()
                .pipeline
                .ok_or_else(|| Error::new(exit::FAILURE, "the server sent no pipeline"));
        }
        Err(status) if status.code() == Code::NotFound && looks_like_id(reference) && reference.len() < 36 => {}
        Err(status) => return Err(client.error(status, Subject::Pipeline)),
    }
    let mut matches: Vec<pb::Pipeline> = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = ListPipelinesRequest { page_size: PAGE_SIZE, page_token };
        let page = client
            .pipelines
            .clone()
            .list_pipelines(request)
            .await
            .map_err(|status| client.error(status, Subject::Pipeline))?;
        let page = page.into_inner();
        matches.extend(page.pipelines.into_iter().filter(|pipeline| id_matches(&pipeline.id, reference)));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let describe = |pipeline: &pb::Pipeline| format!("{}  {} v{}", pipeline.id, pipeline.name, pipeline.version);
    let found = one(matches, reference, "pipeline", describe, "rivet pipeline list")?;
    if version == 0 || version == found.version {
        return Ok(found);
    }
    // A prefix names a pipeline; `--version` then picks one of its versions by name.
    let request = GetPipelineRequest { pipeline: found.name, version };
    let response = client
        .pipelines
        .clone()
        .get_pipeline(request)
        .await
        .map_err(|status| client.error(status, Subject::Pipeline))?;
    response.into_inner().pipeline.ok_or_else(|| Error::new(exit::FAILURE, "the server sent no pipeline"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_by_prefix_ignoring_case() {
        assert!(id_matches("0192ab-ff", "0192AB"));
        assert!(!id_matches("0192", "01925"));
        assert!(looks_like_id("0192ab-f"));
        assert!(!looks_like_id("hello"));
    }

    #[test]
    fn ambiguity_lists_the_candidates() {
        let error =
            one(vec!["abc1", "abc2"], "abc", "job", |id| (*id).to_owned(), "rivet job list").expect_err("ambiguous");
        assert_eq!(
            error.to_string(),
            "`abc` is ambiguous: it starts 2 job ids\n  abc1\n  abc2\nhint: give more characters of the id"
        );
        let error = one(Vec::<&str>::new(), "abc", "job", |id| (*id).to_owned(), "rivet job list").expect_err("none");
        assert_eq!(error.code, exit::NOT_FOUND);
    }
}
