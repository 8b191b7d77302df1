//! The transport to the orchestrator, and the edge of the runner protocol on this side:
//! the gRPC endpoint (TLS, keep-alives), `RegisterRunner`, and the `Connect` stream, whose
//! wire messages are encoded and decoded here so that the session sees only
//! `rivet_core::protocol`'s messages. A broken stream is reopened with the one backoff
//! (`rivet_core::backoff`, full jitter); whether to retry at all is decided from the
//! status code in [`is_fatal`].

use std::time::Duration;
use tracing::Instrument;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use rivet_core::backoff::Backoff;
use rivet_core::protocol::{FromRunner, ToRunner};
use rivet_proto::endpoint::{ClientTls, endpoint};
use rivet_proto::v1::runner_service_client::RunnerServiceClient;
use rivet_proto::v1::{self as pb};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

use crate::agent::credential::{self, Credential};
use crate::agent::{Agent, AgentConfig, AgentError, Ended, Stop};

/// How many messages may wait to be sent before the session waits.
const OUTGOING: usize = 64;

/// Where the orchestrator is and how to reach it.
pub(super) struct Transport {
    endpoint: Endpoint,
    url: String,
    max_message_bytes: usize,
}

/// One open `Connect` stream, in domain messages both ways.
pub(super) struct Link {
    /// Messages to the orchestrator.
    pub(super) outgoing: mpsc::Sender<FromRunner>,
    /// Messages from the orchestrator; the stream's error ends it.
    pub(super) incoming: BoxStream<'static, Result<Inbound, tonic::Status>>,
}

/// One message from the orchestrator, as this edge decoded it. Each lives only while it is
/// handled, so the size of an assignment costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub(super) enum Inbound {
    /// A well-formed message.
    Message(ToRunner),
    /// A message with a required field missing or malformed, and what is wrong.
    Malformed(String),
}

impl Transport {
    /// The endpoint of the configured orchestrator.
    pub(super) fn new(config: &AgentConfig) -> Result<Transport, AgentError> {
        let tls = &config.tls;
        let files = ClientTls {
            ca_file: tls.ca_file.as_deref(),
            cert_file: tls.cert_file.as_deref(),
            key_file: tls.key_file.as_deref(),
        };
        let endpoint = endpoint(&config.orchestrator_url, files)
            .map_err(|err| AgentError::InvalidUrl { url: config.orchestrator_url.clone(), message: err.to_string() })?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(15))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        Ok(Transport { endpoint, url: config.orchestrator_url.clone(), max_message_bytes: config.max_message_bytes })
    }

    /// Opens the stream: `hello` goes first (the orchestrator answers only once it has it),
    /// with the runner's credential in the metadata.
    async fn open(
        &self,
        channel: Channel,
        credential: Option<&Credential>,
        hello: FromRunner,
    ) -> Result<Link, tonic::Status> {
        let mut client = RunnerServiceClient::new(channel)
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes);
        let (outgoing, receiver) = mpsc::channel::<FromRunner>(OUTGOING);
        outgoing.send(hello).await.map_err(|_| tonic::Status::internal("outgoing channel closed"))?;
        let mut request = tonic::Request::new(ReceiverStream::new(receiver).map(pb::ConnectRequest::from));
        if let Some(credential) = credential {
            request.metadata_mut().insert("authorization", bearer(&credential.credential, "the runner credential")?);
        }
        let span = rivet_telemetry::rpc::client_span("/rivet.v1.RunnerService/Connect");
        traced(&mut request, &span);
        let incoming = client
            .connect(request)
            .instrument(span)
            .await?
            .into_inner()
            .map(|item| {
                item.map(|message| match ToRunner::try_from(message) {
                    Ok(message) => Inbound::Message(message),
                    Err(err) => Inbound::Malformed(err.to_string()),
                })
            })
            .boxed();
        Ok(Link { outgoing, incoming })
    }

    /// Trades a registration token for the runner's own credential.
    async fn register(&self, config: &AgentConfig, token: &str) -> Result<pb::RegisterRunnerResponse, tonic::Status> {
        let channel = self.endpoint.connect().await.map_err(|err| tonic::Status::unavailable(err.to_string()))?;
        let mut client = RunnerServiceClient::new(channel);
        let mut request = tonic::Request::new(pb::RegisterRunnerRequest {
            name: config.runner_name(),
            labels: config.announced_labels().into_iter().collect(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        });
        request.metadata_mut().insert("authorization", bearer(token, "the registration token")?);
        let span = rivet_telemetry::rpc::client_span("/rivet.v1.RunnerService/RegisterRunner");
        traced(&mut request, &span);
        client.register_runner(request).instrument(span).await.map(tonic::Response::into_inner)
    }
}

/// Sends `span`'s trace context with `request`, so that the server's span is its child.
fn traced<T>(request: &mut tonic::Request<T>, span: &tracing::Span) {
    if let Some(value) = rivet_telemetry::rpc::inject(span)
        && let Ok(value) = tonic::metadata::MetadataValue::try_from(value.as_bytes())
    {
        request.metadata_mut().insert("traceparent", value);
    }
}

/// An `authorization: Bearer` value; `what` names the secret when it cannot be one.
fn bearer(secret: &str, what: &str) -> Result<tonic::metadata::MetadataValue<tonic::metadata::Ascii>, tonic::Status> {
    format!("Bearer {secret}")
        .parse()
        .map_err(|_| tonic::Status::invalid_argument(format!("{what} has characters not allowed in metadata")))
}

impl Agent {
    /// Trades the registration token for the runner's own credential and stores it,
    /// retrying while the orchestrator is unreachable. `false` when told to stop first.
    pub(super) async fn register(
        &mut self,
        transport: &Transport,
        token: &str,
        stop: &Stop,
    ) -> Result<bool, AgentError> {
        let mut backoff = self.backoff();
        loop {
            match transport.register(&self.config, token).await {
                Ok(registered) => {
                    let runner_id = Uuid::parse_str(&registered.runner_id).map_err(|err| {
                        AgentError::RegistrationRefused(tonic::Status::internal(format!(
                            "the orchestrator answered with a malformed runner id: {err}"
                        )))
                    })?;
                    let credential = Credential {
                        runner_id,
                        credential: registered.credential,
                        labels: registered.labels.into_iter().collect(),
                    };
                    let path = credential::store(&self.config.state_dir, &credential)?;
                    tracing::info!(runner = %credential.runner_id, path = %path.display(), labels = ?credential.labels, "registered: the credential is stored");
                    self.runner_id = credential.runner_id;
                    self.credential = Some(credential);
                    return Ok(true);
                }
                Err(status) if is_fatal(&status) => {
                    tracing::error!(status = %status, "the orchestrator refused the registration token");
                    return Err(AgentError::RegistrationRefused(status));
                }
                Err(status) => tracing::warn!(status = %status, url = %transport.url, "cannot register yet"),
            }
            tokio::select! {
                _ = stop.drain.cancelled() => return Ok(false),
                _ = stop.now.cancelled() => return Ok(false),
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    /// Connects and serves, reconnecting with backoff whenever the stream breaks, until
    /// `stop` says so and every job is reported, or the orchestrator refuses the runner.
    pub(super) async fn serve_reconnecting(&self, transport: &Transport, stop: &Stop) -> Result<(), AgentError> {
        let mut backoff = self.backoff();
        loop {
            match transport.endpoint.connect().await {
                Ok(channel) => {
                    let (lifecycle, hello) = self.greeting();
                    let served = match transport.open(channel, self.credential.as_ref(), hello).await {
                        Ok(link) => self.serve(link, lifecycle, stop).await,
                        Err(status) => Err(status),
                    };
                    match served {
                        Ok(Ended::Done) => return Ok(()),
                        Ok(Ended::Reconnect) => backoff.reset(),
                        Err(status) if is_fatal(&status) && self.credential.is_some() => {
                            let path = credential::path(&self.config.state_dir);
                            tracing::error!(status = %status, path = %path.display(), "the orchestrator refused this runner's credential");
                            return Err(AgentError::CredentialRefused { path, status });
                        }
                        Err(status) if is_fatal(&status) => return Err(AgentError::Refused(status)),
                        Err(status) => tracing::warn!(status = %status, "connection to the orchestrator failed"),
                    }
                }
                Err(err) => tracing::warn!(error = %err, url = %transport.url, "cannot reach the orchestrator"),
            }
            if self.stopped_while_away(stop) {
                return Ok(());
            }
            let delay = backoff.next_delay();
            crate::metrics::get().reconnected();
            tracing::info!(delay_ms = delay.as_millis() as u64, "reconnecting");
            // A stop that comes while waiting is acted on now, not after the delay.
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.drain.cancelled() => {}
                _ = stop.now.cancelled() => {}
            }
            if self.stopped_while_away(stop) {
                return Ok(());
            }
        }
    }

    /// The configured reconnect delays, with full jitter: a fleet of runners does not
    /// reconnect in lockstep.
    fn backoff(&self) -> Backoff {
        let (min, max) = self.config.reconnect_bounds();
        Backoff::new(min, max)
    }
}

/// Whether a status means retrying cannot help (linkerd's `Recover`, in one place): a
/// malformed request, a protocol or precondition refusal, or a refused credential is
/// fatal and said loudly; anything else (unavailable, aborted, deadline exceeded, ...) is
/// retried with backoff.
fn is_fatal(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::InvalidArgument | Code::FailedPrecondition | Code::Unauthenticated | Code::PermissionDenied
    )
}
