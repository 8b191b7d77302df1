//! The forge webhook listener: `POST /hooks/<trigger-id>` over HTTP/1, which launches the
//! trigger's pipeline for each genuine delivery that its filter matches.
//!
//! Promises:
//! - Nothing is parsed, and nothing launched, before the raw body has passed
//!   `webhook::verify` with the trigger's secret; a request that fails gets 401 with a short
//!   reason (which header is missing, malformed or does not match), never more.
//! - A delivery launches at most one job, on any replica, however often it is delivered:
//!   the job's idempotency key is `webhook:<trigger-id>:<delivery-id>`, and the store's
//!   unique index on it returns the first job to every later launch (200 `duplicate`).
//! - Every size is bounded: the body by `webhooks.max_body_bytes` (413 without reading the
//!   rest), the request head by the HTTP parser's buffer, connections by
//!   `webhooks.max_connections`, each connection's life by `webhooks.request_timeout_secs`.
//! - Each outcome is logged with the trigger and delivery ids; never the secret or the body.
//!
//! Answers: 201 `{"job_id"}` for a new job, 200 `{"job_id", "duplicate": true}` for a
//! redelivery, 202 `{"ignored"}` for an event that starts nothing (a ping, another
//! repository, filtered out), 400 for a malformed delivery, 404 for an unknown trigger or
//! path, 405 for a method other than POST, 413 for an oversized body, 422 when the inputs
//! do not fit the pipeline, 503 while the orchestrator is shutting down or its database is
//! unreachable (forges retry those), 500 otherwise.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use rivet_core::JobOrigin;
use rivet_core::forge::webhook;
use rivet_telemetry::http::{HttpServer, Limits};
use serde_json::json;
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::config::WebhooksConfig;
use crate::domain::error::Error as DomainError;
use crate::domain::orchestrator::{Launch, Orchestrator};
use crate::domain::store::StoreError;
use crate::domain::triggers;

/// The path prefix of trigger webhooks.
pub const HOOKS_PREFIX: &str = "/hooks/";
/// The largest request head (request line and headers) read, in bytes.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Errors of the listener.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address cannot be bound.
    #[error("cannot listen for webhooks on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running webhook listener.
#[derive(Debug)]
pub struct WebhookServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    server: HttpServer,
}

/// What the listener serves with.
struct Shared {
    orchestrator: Orchestrator,
    max_body_bytes: usize,
}

impl WebhookServer {
    /// Binds `addr` (before the orchestrator starts, so that the bound address is known).
    pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
        TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })
    }

    /// Serves the triggers of `orchestrator` on `listener` until stopped.
    pub fn serve(listener: TcpListener, orchestrator: Orchestrator, config: &WebhooksConfig) -> WebhookServer {
        let shared = Arc::new(Shared { orchestrator, max_body_bytes: config.max_body_bytes });
        let limits = Limits {
            max_connections: config.max_connections,
            connection_timeout: config.request_timeout(),
            max_head_bytes: MAX_HEAD_BYTES,
        };
        let server = HttpServer::serve(listener, limits, "webhooks", move |request| {
            let shared = shared.clone();
            async move { respond(&shared, request).await }
        });
        WebhookServer { addr: server.addr, server }
    }

    /// Stops accepting, and waits for the requests under way (each within its timeout).
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }

    /// Stops accepting at once, like a crash (connections under way are left to their
    /// timeout). For tests of failover.
    pub fn abort(&self) {
        self.server.abort();
    }
}

/// An answer: a status and a JSON body.
struct Answer {
    status: StatusCode,
    body: serde_json::Value,
    /// Close the connection after answering (the rest of the body was not read).
    close: bool,
}

impl Answer {
    fn new(status: StatusCode, body: serde_json::Value) -> Answer {
        Answer { status, body, close: false }
    }

    fn error(status: StatusCode, message: impl Into<String>) -> Answer {
        Answer::new(status, json!({ "error": message.into() }))
    }

    fn ignored(reason: &str) -> Answer {
        Answer::new(StatusCode::ACCEPTED, json!({ "ignored": reason }))
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut text = self.body.to_string();
        text.push('\n');
        let mut response = Response::new(Full::new(Bytes::from(text)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

async fn respond(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(id) = req.uri().path().strip_prefix(HOOKS_PREFIX).map(str::to_owned) else {
        return Answer::error(StatusCode::NOT_FOUND, "not found; webhooks go to POST /hooks/<trigger-id>")
            .into_response();
    };
    if req.method() != Method::POST {
        return Answer::error(StatusCode::METHOD_NOT_ALLOWED, "only POST").into_response();
    }
    deliver(shared, &id, req).await.into_response()
}

/// Handles one delivery to the trigger `id`.
async fn deliver(shared: &Shared, id: &str, req: Request<Incoming>) -> Answer {
    let max = shared.max_body_bytes;
    let (parts, body) = req.into_parts();
    let too_large = || Answer {
        close: true,
        ..Answer::error(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {max} bytes"))
    };
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return too_large();
    }
    let body = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.downcast_ref::<http_body_util::LengthLimitError>().is_some() => return too_large(),
        Err(err) => return Answer::error(StatusCode::BAD_REQUEST, format!("cannot read the body: {err}")),
    };
    let Ok(trigger_id) = Uuid::parse_str(id) else {
        return Answer::error(StatusCode::NOT_FOUND, "no such trigger");
    };
    let row = match shared.orchestrator.store().trigger(trigger_id).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            tracing::info!(trigger = %trigger_id, outcome = "unknown_trigger", "webhook refused");
            return Answer::error(StatusCode::NOT_FOUND, "no such trigger");
        }
        Err(err) => return failed(trigger_id, None, err.into()),
    };
    let secret = match triggers::open_secret(&shared.orchestrator, &row) {
        Ok(secret) => secret,
        Err(err) => return failed(trigger_id, None, err.into()),
    };
    let trigger = row.record;
    let forge = trigger.forge;
    // Header values that are not UTF-8 are skipped: no forge sends one in a header read here.
    let headers: Vec<(&str, &str)> =
        parts.headers.iter().filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))).collect();
    if let Err(err) = webhook::verify(forge, &headers, &body, secret.as_bytes()) {
        tracing::warn!(trigger = %trigger_id, outcome = "unauthenticated", reason = %err, "webhook refused");
        return Answer::error(StatusCode::UNAUTHORIZED, err.to_string());
    }
    drop(secret);
    let delivery = match webhook::delivery_id(forge, &headers) {
        Ok(delivery) => delivery,
        Err(err) => {
            tracing::info!(trigger = %trigger_id, outcome = "no_delivery_id", reason = %err, "webhook refused");
            return Answer::error(StatusCode::BAD_REQUEST, err.to_string());
        }
    };
    let event = match webhook::parse(forge, &headers, &body) {
        Ok(Some(event)) => event,
        Ok(None) => return ignored(trigger_id, &delivery, "event"),
        Err(err) => {
            tracing::info!(trigger = %trigger_id, %delivery, outcome = "malformed", reason = %err, "webhook refused");
            return Answer::error(StatusCode::BAD_REQUEST, err.to_string());
        }
    };
    if !event.repository.eq_ignore_ascii_case(&trigger.repository) {
        return ignored(trigger_id, &delivery, "repository");
    }
    if !trigger.filter.matches(&event) {
        return ignored(trigger_id, &delivery, "filter");
    }
    let pipeline = match shared.orchestrator.find_pipeline(&trigger.pipeline, 0).await {
        Ok(pipeline) => pipeline,
        Err(DomainError::NotFound { .. }) => {
            tracing::warn!(trigger = %trigger_id, %delivery, outcome = "no_pipeline", "webhook refused");
            return Answer::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("pipeline `{}` no longer exists", trigger.pipeline),
            );
        }
        Err(err) => return failed(trigger_id, Some(&delivery), err),
    };
    let inputs = rivet_core::trigger::launch_inputs(&pipeline.definition.inputs, &event, &trigger.inputs);
    let launch = Launch {
        // The version just read: the inputs were chosen for its declarations.
        pipeline: pipeline.id.to_string(),
        inputs,
        idempotency_key: Some(format!("webhook:{trigger_id}:{delivery}")),
        origin: JobOrigin::Trigger {
            trigger_id,
            delivery_id: delivery.clone(),
            event: event.kind.as_str().to_owned(),
            sha: event.sha.clone(),
            git_ref: event.git_ref.clone(),
        },
    };
    match shared.orchestrator.launch_created(launch).await {
        Ok((job, true)) => {
            tracing::info!(trigger = %trigger_id, %delivery, job = %job.id, outcome = "launched", "webhook launched a job");
            let link = shared.orchestrator.config().webhooks.job_link(job.id);
            if let Some(target) = trigger.status_target(&event, link)
                && let Err(err) = shared.orchestrator.track_status(&job, target).await
            {
                // The job runs whatever happens to its statuses.
                tracing::warn!(trigger = %trigger_id, job = %job.id, error = %err, "cannot track the job's commit status");
            }
            Answer::new(StatusCode::CREATED, json!({ "job_id": job.id.to_string() }))
        }
        Ok((job, false)) => {
            tracing::info!(trigger = %trigger_id, %delivery, job = %job.id, outcome = "duplicate", "webhook redelivered");
            Answer::new(StatusCode::OK, json!({ "job_id": job.id.to_string(), "duplicate": true }))
        }
        Err(DomainError::InvalidInputs(errors)) => {
            tracing::warn!(trigger = %trigger_id, %delivery, outcome = "invalid_inputs", %errors, "webhook refused");
            let inputs: Vec<_> =
                errors.0.iter().map(|e| json!({ "input": e.input.clone(), "message": e.message.clone() })).collect();
            Answer::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "error": format!("invalid inputs: {errors}"), "inputs": inputs }),
            )
        }
        Err(err) => failed(trigger_id, Some(&delivery), err),
    }
}

/// Logs and answers an event that starts nothing.
fn ignored(trigger: Uuid, delivery: &str, reason: &str) -> Answer {
    tracing::info!(%trigger, %delivery, outcome = "ignored", reason, "webhook ignored");
    Answer::ignored(reason)
}

/// Logs and answers a failure of the orchestrator itself; the body says no more than the
/// gRPC API would.
fn failed(trigger: Uuid, delivery: Option<&str>, err: DomainError) -> Answer {
    let retry = matches!(
        err,
        DomainError::ShuttingDown
            | DomainError::Store(StoreError::Unavailable(_))
            | DomainError::Coord(crate::domain::coord::CoordError::Unavailable(_))
    );
    let error_id = Uuid::new_v4();
    tracing::error!(%trigger, delivery, outcome = "failed", error = %err, %error_id, "webhook failed");
    if retry {
        Answer::error(StatusCode::SERVICE_UNAVAILABLE, format!("unavailable; retry shortly (error id {error_id})"))
    } else {
        Answer::error(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error (error id {error_id})"))
    }
}
