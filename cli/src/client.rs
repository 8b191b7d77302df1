//! The connection to an orchestrator: one channel, the six service clients, and the
//! bearer token on every call.

use std::time::Duration;

use rivet_proto::endpoint::{ClientTls, endpoint};
use rivet_proto::v1::job_service_client::JobServiceClient;
use rivet_proto::v1::log_service_client::LogServiceClient;
use rivet_proto::v1::pipeline_service_client::PipelineServiceClient;
use rivet_proto::v1::plugin_service_client::PluginServiceClient;
use rivet_proto::v1::runner_service_client::RunnerServiceClient;
use rivet_proto::v1::schedule_service_client::ScheduleServiceClient;
use rivet_proto::v1::secret_service_client::SecretServiceClient;
use rivet_proto::v1::token_service_client::TokenServiceClient;
use rivet_proto::v1::trigger_service_client::TriggerServiceClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::config::Settings;
use crate::error::{self, Error, Subject};
use crate::exit;

/// The largest message accepted from the server (pipeline sources, log batches, lists).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Adds `authorization: Bearer <token>` to every request when a token is configured, and
/// the caller's trace context when `TRACEPARENT` holds one (the convention of CI systems
/// and `otel-cli`): a job launched from a traced script joins the script's trace.
#[derive(Debug, Clone)]
pub struct Auth {
    authorization: Option<AsciiMetadataValue>,
    /// Read from the environment once, when the client is made.
    traceparent: Option<AsciiMetadataValue>,
}

/// The W3C trace context in `TRACEPARENT`, when it is a valid one.
fn traceparent() -> Option<AsciiMetadataValue> {
    let value = std::env::var("TRACEPARENT").ok()?;
    let parsed: rivet_core::trace::TraceParent = value.parse().ok()?;
    parsed.to_string().parse().ok()
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.authorization {
            request.metadata_mut().insert("authorization", value.clone());
        }
        if let Some(parent) = &self.traceparent {
            request.metadata_mut().insert("traceparent", parent.clone());
        }
        Ok(request)
    }
}

pub(crate) type Service = InterceptedService<Channel, Auth>;

/// Clients of every service on one connection. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    /// The server's address, for messages.
    pub server: String,
    /// Pipelines.
    pub pipelines: PipelineServiceClient<Service>,
    /// Jobs.
    pub jobs: JobServiceClient<Service>,
    /// Logs.
    pub logs: LogServiceClient<Service>,
    /// Runners.
    pub runners: RunnerServiceClient<Service>,
    /// API tokens.
    pub tokens: TokenServiceClient<Service>,
    /// Plugins.
    pub plugins: PluginServiceClient<Service>,
    /// Secrets.
    pub secrets: SecretServiceClient<Service>,
    /// Cron schedules.
    pub schedules: ScheduleServiceClient<Service>,
    /// Triggers.
    pub triggers: TriggerServiceClient<Service>,
}

impl Client {
    /// Connects to the configured server; an unreachable one is an error that says how to
    /// start one.
    pub async fn connect(settings: &Settings) -> Result<Client, Error> {
        let server = settings.server.clone();
        let tls = ClientTls { ca_file: settings.ca_file.as_deref(), ..ClientTls::default() };
        let endpoint = endpoint(&server, tls)
            .map_err(|err| {
                Error::new(exit::USAGE, err.to_string()).hint(
                    "use a URL such as http://127.0.0.1:7420 or https://ci.example:7420 (RIVET_SERVER or --server), \
                     and for a private CA its PEM file (RIVET_CA_FILE)",
                )
            })?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        let channel = endpoint.connect().await.map_err(|err| error::from_transport(&err, &server))?;
        let token = match &settings.token {
            Some(token) => Some(format!("Bearer {token}").parse::<AsciiMetadataValue>().map_err(|_| {
                Error::new(exit::USAGE, "the token contains characters that cannot be sent in a header")
                    .hint("check RIVET_TOKEN (or --token); `rivet config show` shows where it comes from")
            })?),
            None => None,
        };
        let auth = Auth { authorization: token, traceparent: traceparent() };
        Ok(Client {
            pipelines: PipelineServiceClient::with_interceptor(channel.clone(), auth.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            jobs: JobServiceClient::with_interceptor(channel.clone(), auth.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            logs: LogServiceClient::with_interceptor(channel.clone(), auth.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            runners: RunnerServiceClient::with_interceptor(channel.clone(), auth.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            tokens: TokenServiceClient::with_interceptor(channel.clone(), auth.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            plugins: PluginServiceClient::with_interceptor(channel.clone(), auth.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            secrets: SecretServiceClient::with_interceptor(channel.clone(), auth.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            schedules: ScheduleServiceClient::with_interceptor(channel.clone(), auth.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            triggers: TriggerServiceClient::with_interceptor(channel, auth)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            server,
        })
    }

    /// Turns a status from this server into an error for the user.
    pub fn error(&self, status: tonic::Status, subject: Subject) -> Error {
        error::from_status(&status, &self.server, subject)
    }

    /// Every API token the server knows, without secrets.
    pub async fn api_tokens(&self) -> Result<Vec<rivet_proto::v1::ApiToken>, Error> {
        let request = rivet_proto::v1::ListTokensRequest {};
        let response =
            self.tokens.clone().list_tokens(request).await.map_err(|status| self.error(status, Subject::Other))?;
        Ok(response.into_inner().tokens)
    }
}
