//! `http`: requests from the runner host, under a policy.
//!
//! `http.request{method, url, headers, body, timeout}` and the shorthands `http.get(url,
//! options)` and `http.post(url, body, options)` return `{status, headers, body}`. A status
//! of 404 or 500 is a result, not an error; a request the policy refuses, a network failure,
//! a timeout or a body over its limit raises an error naming the URL and the reason.
//!
//! # The policy
//!
//! The runner's `[executor.http]` settings ([`HttpPolicy`]) say which hosts (patterns),
//! methods, body sizes, timeouts and redirects are allowed; a pipeline's `http = { hosts,
//! methods }` narrows them (a request must pass both). The checks sit where they cannot be
//! raced:
//! * A host name is resolved by this module's own resolver ([`Guard`]), which drops private,
//!   loopback, link-local and other non-public addresses *after* resolution: the connection
//!   only ever goes to an address that passed, so a name that resolves differently the
//!   second time (DNS rebinding) gains nothing. An IP address written in the URL is checked
//!   the same way before the request.
//! * Redirects are followed by a policy that checks every hop against the hosts, and counts
//!   them.
//! * The system's proxy settings are ignored: a proxy would resolve names itself.
//!
//! Requests run on the runner's runtime while the stage's Lua budget is suspended: they
//! count against the stage's wall-clock timeout, not its Lua time. A job's stop ends them.
//! Header values never appear in an error or a log line; the usual credential headers are
//! also marked sensitive for the HTTP stack. A request carries at most
//! [`MAX_REQUEST_HEADERS`] headers of at most [`MAX_REQUEST_HEADER_BYTES`] in all (names and
//! values), checked before anything is sent.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mlua::{Lua, Table, Value};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rivet_core::model::{HTTP_METHODS, HttpScope, host_matches};
use serde::{Deserialize, Serialize};

use super::{check_driven, on_host, text_of};
use crate::config::human_bytes;
use crate::executor::Error;
use crate::executor::context::JobContext;

/// What the `http` module may do on a runner (`[executor.http]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpPolicy {
    /// Host patterns requests may go to: `*` (any), `*.example.com` (names under it), or a
    /// host name. Redirects must stay within them too.
    pub allowed_hosts: Vec<String>,
    /// The methods requests may use.
    pub allowed_methods: Vec<String>,
    /// The largest request body, in bytes.
    pub max_request_body_bytes: u64,
    /// The largest response body, in bytes.
    pub max_response_body_bytes: u64,
    /// The longest a request may take, in seconds, and the timeout of one that names none.
    pub timeout_secs: u64,
    /// How many redirects one request follows.
    pub max_redirects: usize,
    /// Allow private, loopback, link-local and other non-public addresses. Off, a host that
    /// resolves only to such addresses is refused (no requests into the runner's network).
    pub allow_private_addresses: bool,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            allowed_hosts: vec!["*".to_owned()],
            allowed_methods: HTTP_METHODS.iter().map(|method| (*method).to_owned()).collect(),
            max_request_body_bytes: 10 * 1024 * 1024,
            max_response_body_bytes: 16 * 1024 * 1024,
            timeout_secs: 30,
            max_redirects: 5,
            allow_private_addresses: false,
        }
    }
}

/// The runner's policy narrowed by the pipeline's scope.
#[derive(Debug, Clone)]
pub(crate) struct Effective {
    policy: HttpPolicy,
    scope: HttpScope,
}

impl Effective {
    pub(crate) fn new(policy: HttpPolicy, scope: Option<HttpScope>) -> Self {
        Effective { policy, scope: scope.unwrap_or_default() }
    }

    /// Why a request to `url` may not be made; `None` when it may.
    pub(crate) fn refuse_url(&self, url: &reqwest::Url) -> Option<String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Some(format!("the scheme `{}` is not allowed: use http or https", url.scheme()));
        }
        let Some(host) = url.host_str() else { return Some("the URL has no host".to_owned()) };
        if !self.policy.allowed_hosts.iter().any(|pattern| host_matches(pattern, host)) {
            return Some(format!("the host `{host}` is not in the runner's executor.http.allowed_hosts"));
        }
        if !self.scope.hosts.is_empty() && !self.scope.hosts.iter().any(|pattern| host_matches(pattern, host)) {
            return Some(format!("the host `{host}` is not in the pipeline's http.hosts"));
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        literal.and_then(|ip| self.refuse_address(ip))
    }

    fn refuse_method(&self, method: &str) -> Option<String> {
        if !self.policy.allowed_methods.iter().any(|allowed| allowed.eq_ignore_ascii_case(method)) {
            return Some(format!("the method {method} is not in the runner's executor.http.allowed_methods"));
        }
        if !self.scope.methods.is_empty() && !self.scope.methods.iter().any(|allowed| allowed == method) {
            return Some(format!("the method {method} is not in the pipeline's http.methods"));
        }
        None
    }

    fn refuse_address(&self, ip: IpAddr) -> Option<String> {
        (!self.policy.allow_private_addresses && !is_public(ip)).then(|| {
            format!(
                "{ip} is a private, loopback, link-local or otherwise non-public address, which the runner \
                 refuses (executor.http.allow_private_addresses = false)"
            )
        })
    }
}

/// Whether `ip` is a public unicast address.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            !(ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_documentation()
                || ip.is_multicast()
                || a == 0
                // Carrier-grade NAT (100.64.0.0/10) and benchmarking (198.18.0.0/15).
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                !(ip.is_loopback()
                    || ip.is_unspecified()
                    || ip.is_multicast()
                    || ip.is_unique_local()
                    || ip.is_unicast_link_local()
                    // Documentation (2001:db8::/32) and the NAT64 prefix, which embeds IPv4.
                    || (ip.segments()[0] == 0x2001 && ip.segments()[1] == 0x0db8)
                    || (ip.segments()[0] == 0x0064 && ip.segments()[1] == 0xff9b))
            }
        },
    }
}

/// The resolver of a job's client: the system's, with refused addresses dropped.
struct Guard(Arc<Effective>);

impl Resolve for Guard {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusals = Vec::new();
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match policy.refuse_address(addr.ip()) {
                    Some(why) => {
                        refusals.push(why);
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                let why = refusals.into_iter().next().unwrap_or_else(|| "it has no address".to_owned());
                return Err(format!("`{host}` resolves to {why}").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// One job's HTTP client.
pub(crate) struct Http {
    client: reqwest::Client,
    policy: Arc<Effective>,
}

impl Http {
    pub(crate) fn new(policy: Effective) -> Result<Http, String> {
        let policy = Arc::new(policy);
        let redirects = policy.clone();
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > redirects.policy.max_redirects {
                let limit = redirects.policy.max_redirects;
                return attempt.error(format!("more than {limit} redirects (executor.http.max_redirects)"));
            }
            match redirects.refuse_url(attempt.url()) {
                Some(why) => {
                    let why = format!("a redirect to {} was refused: {why}", without_query(attempt.url()));
                    attempt.error(why)
                }
                None => attempt.follow(),
            }
        });
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(redirect)
            .dns_resolver(Arc::new(Guard(policy.clone())))
            .connect_timeout(Duration::from_secs(policy.policy.timeout_secs.clamp(1, 30)))
            .user_agent(concat!("rivet-runner/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| format!("cannot build the HTTP client: {err}"))?;
        Ok(Http { client, policy })
    }
}

/// A checked request.
struct Request {
    method: reqwest::Method,
    url: reqwest::Url,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    timeout: Duration,
}

/// A response, read whole within the size limit.
struct Response {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// Header names whose values the HTTP stack must treat as secret.
const SENSITIVE: [&str; 5] = ["authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token"];

const FIELDS: &[&str] = &["method", "url", "headers", "body", "timeout"];

/// The most headers one request may set.
pub const MAX_REQUEST_HEADERS: usize = 100;
/// The most bytes of header names and values one request may set.
pub const MAX_REQUEST_HEADER_BYTES: usize = 64 * 1024;

pub(super) fn install(lua: &Lua, ctx: &Arc<JobContext>, scope: Option<HttpScope>) -> mlua::Result<()> {
    let http = Http::new(Effective::new(ctx.config.http.clone(), scope)).map_err(mlua::Error::runtime)?;
    let http = Arc::new(http);
    let module = lua.create_table()?;

    let (c, h) = (ctx.clone(), http.clone());
    module.raw_set(
        "request",
        lua.create_async_function(move |lua, options: Value| {
            let (ctx, http) = (c.clone(), h.clone());
            async move {
                let Value::Table(options) = options else {
                    let got = options.type_name();
                    return Err(mlua::Error::runtime(format!(
                        "http.request: expected a table of options, got a {got}"
                    )));
                };
                send(&lua, &ctx, &http, "http.request", &options).await
            }
        })?,
    )?;
    for (name, method) in [("get", "GET"), ("post", "POST")] {
        let (c, h) = (ctx.clone(), http.clone());
        module.raw_set(
            name,
            lua.create_async_function(move |lua, args: mlua::MultiValue| {
                let (ctx, http) = (c.clone(), h.clone());
                async move {
                    let call = format!("http.{name}");
                    let options =
                        shorthand(&lua, method, args).map_err(|err| mlua::Error::runtime(format!("{call}: {err}")))?;
                    send(&lua, &ctx, &http, &call, &options).await
                }
            })?,
        )?;
    }
    lua.globals().raw_set("http", module)
}

/// The options table of `http.get(url, options)` / `http.post(url, body, options)`.
fn shorthand(lua: &Lua, method: &str, args: mlua::MultiValue) -> Result<Table, String> {
    let mut args = args.into_iter();
    let url = args.next().unwrap_or(Value::Nil);
    let body = if method == "POST" { args.next().unwrap_or(Value::Nil) } else { Value::Nil };
    let options = match args.next() {
        None | Some(Value::Nil) => lua.create_table().map_err(|err| err.to_string())?,
        Some(Value::Table(options)) => options,
        Some(other) => return Err(format!("the options must be a table, got a {}", other.type_name())),
    };
    for field in ["method", "url", "body"] {
        if !options.raw_get::<Value>(field).map_err(|err| err.to_string())?.is_nil() {
            return Err(format!("`{field}` is an argument here, not an option"));
        }
    }
    let set = |key: &str, value: Value| options.raw_set(key, value).map_err(|err| err.to_string());
    set("method", Value::String(lua.create_string(method).map_err(|err| err.to_string())?))?;
    set("url", url)?;
    set("body", body)?;
    Ok(options)
}

async fn send(lua: &Lua, ctx: &Arc<JobContext>, http: &Arc<Http>, call: &str, options: &Table) -> mlua::Result<Table> {
    check_driven(ctx, lua, call)?;
    let request = request(&http.policy, options).map_err(|err| mlua::Error::runtime(format!("{call}: {err}")))?;
    let target = format!("{} {}", request.method, without_query(&request.url));
    let response = {
        let _waiting = ctx.budget.suspended(lua);
        let (client, limit, stop) = (http.client.clone(), http.policy.policy.max_response_body_bytes, ctx.stop.clone());
        on_host(ctx, async move {
            tokio::select! {
                response = fetch(client, request, limit) => Ok(response),
                () = stop.cancelled() => Err(Error::Stopped(rivet_core::FailureReason::Cancelled)),
            }
        })
        .await
    };
    let response = match response {
        Ok(Ok(response)) => response,
        Ok(Err(why)) => return Err(mlua::Error::runtime(ctx.message(&format!("{call}: {target}: {why}")))),
        Err(err) => return Err(mlua::Error::external(err)),
    };
    let table = lua.create_table()?;
    table.raw_set("status", response.status)?;
    let headers = lua.create_table()?;
    for (name, value) in response.headers {
        headers.raw_set(name, value)?;
    }
    table.raw_set("headers", headers)?;
    table.raw_set("body", lua.create_string(&response.body)?)?;
    Ok(table)
}

/// Sends `request` and reads the response within `limit` bytes of body. The error is a
/// reason, with no header value in it.
async fn fetch(client: reqwest::Client, request: Request, limit: u64) -> Result<Response, String> {
    let timeout = request.timeout;
    let work = async move {
        let mut builder = client.request(request.method, request.url).headers(request.headers).timeout(timeout);
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let mut response = builder.send().await.map_err(reason)?;
        let too_big =
            || format!("the response body exceeds {} (executor.http.max_response_body_bytes)", human_bytes(limit));
        if response.content_length().is_some_and(|length| length > limit) {
            return Err(too_big());
        }
        let status = response.status().as_u16();
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in response.headers() {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            headers.entry(name.as_str().to_owned()).and_modify(|old| *old = format!("{old}, {value}")).or_insert(value);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(reason)? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response { status, headers, body })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(format!("timed out after {timeout:?}")),
    }
}

/// An error of the HTTP stack, with its causes, without the URL it repeats.
fn reason(err: reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out".to_owned();
    }
    let mut parts = Vec::new();
    let causes = err.without_url();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&causes);
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    let head = causes.to_string();
    if parts.is_empty() { head } else { format!("{head}: {}", parts.join(": ")) }
}

/// A URL for messages: its query may hold a token, so it is left out.
fn without_query(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    let _ = url.set_password(None);
    url.to_string()
}

/// Checks the options of a request against the policy.
fn request(policy: &Effective, options: &Table) -> Result<Request, String> {
    for pair in options.pairs::<Value, Value>() {
        let (key, _) = pair.map_err(|err| err.to_string())?;
        if !matches!(&key, Value::String(name) if FIELDS.contains(&name.to_string_lossy().as_str())) {
            let name = text_of(&key).unwrap_or_else(|| format!("a {} key", key.type_name()));
            return Err(format!("unknown option `{name}` (options: {})", FIELDS.join(", ")));
        }
    }
    let get = |field: &str| options.raw_get::<Value>(field).map_err(|err| err.to_string());
    let method = match get("method")? {
        Value::Nil => "GET".to_owned(),
        Value::String(method) => method.to_string_lossy().to_ascii_uppercase(),
        other => return Err(format!("`method` must be a string, got a {}", other.type_name())),
    };
    if !HTTP_METHODS.contains(&method.as_str()) {
        return Err(format!("`method` must be one of {}, got {method}", HTTP_METHODS.join(", ")));
    }
    if let Some(why) = policy.refuse_method(&method) {
        return Err(why);
    }
    let url = match get("url")? {
        Value::String(url) => url.to_string_lossy(),
        Value::Nil => return Err("`url` is required".to_owned()),
        other => return Err(format!("`url` must be a string, got a {}", other.type_name())),
    };
    let url = reqwest::Url::parse(&url).map_err(|err| format!("`url` is not a URL: {err}"))?;
    if let Some(why) = policy.refuse_url(&url) {
        return Err(format!("{}: {why}", without_query(&url)));
    }
    let body = match get("body")? {
        Value::Nil => None,
        Value::String(body) => Some(body.as_bytes().to_vec()),
        other => return Err(format!("`body` must be a string, got a {}", other.type_name())),
    };
    let limit = policy.policy.max_request_body_bytes;
    if let Some(body) = &body
        && body.len() as u64 > limit
    {
        return Err(format!(
            "the body is {} bytes; requests may send at most {} (executor.http.max_request_body_bytes)",
            body.len(),
            human_bytes(limit)
        ));
    }
    let most = policy.policy.timeout_secs;
    let timeout = match get("timeout")? {
        Value::Nil => Duration::from_secs(most),
        Value::Integer(secs) if secs > 0 && secs as u64 <= most => Duration::from_secs(secs as u64),
        Value::Number(secs) if secs > 0.0 && secs <= most as f64 => Duration::from_secs_f64(secs),
        other => {
            let got = text_of(&other).unwrap_or_else(|| format!("a {}", other.type_name()));
            return Err(format!(
                "`timeout` must be a number of seconds above 0 and at most {most} (executor.http.timeout_secs), got {got}"
            ));
        }
    };
    Ok(Request {
        method: method.parse().map_err(|_| format!("bad method {method}"))?,
        url,
        headers: headers(&get("headers")?)?,
        body,
        timeout,
    })
}

fn headers(value: &Value) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    let table = match value {
        Value::Nil => return Ok(map),
        Value::Table(table) => table,
        other => return Err(format!("`headers` must be a table of strings by name, got a {}", other.type_name())),
    };
    let mut bytes = 0;
    for pair in table.pairs::<Value, Value>() {
        if map.len() >= MAX_REQUEST_HEADERS {
            return Err(format!("`headers` may hold at most {MAX_REQUEST_HEADERS} headers"));
        }
        let (name, value) = pair.map_err(|err| err.to_string())?;
        let Value::String(name) = name else {
            return Err(format!("`headers` names must be strings, got a {}", name.type_name()));
        };
        let name = name.to_string_lossy();
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("`{name}` is not a header name"))?;
        // The value is never quoted: it may be a credential.
        let text = text_of(&value).ok_or_else(|| format!("the value of header `{name}` must be a string"))?;
        let mut value = HeaderValue::from_str(&text)
            .map_err(|_| format!("the value of header `{name}` is not a valid header value"))?;
        bytes += header.as_str().len() + value.len();
        if bytes > MAX_REQUEST_HEADER_BYTES {
            return Err(format!("`headers` may hold at most {MAX_REQUEST_HEADER_BYTES} bytes of names and values"));
        }
        if SENSITIVE.contains(&header.as_str()) {
            value.set_sensitive(true);
        }
        map.append(header, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_sets_a_bounded_number_and_size_of_headers() {
        let lua = Lua::new();
        let table = |count: usize, value: &str| {
            let table = lua.create_table().expect("a table");
            for i in 0..count {
                table.raw_set(format!("x-h{i}"), value).expect("a header");
            }
            Value::Table(table)
        };
        assert_eq!(headers(&table(MAX_REQUEST_HEADERS, "v")).expect("within the caps").len(), MAX_REQUEST_HEADERS);
        let why = headers(&table(MAX_REQUEST_HEADERS + 1, "v")).expect_err("too many");
        assert_eq!(why, format!("`headers` may hold at most {MAX_REQUEST_HEADERS} headers"));
        let why = headers(&table(3, &"v".repeat(MAX_REQUEST_HEADER_BYTES / 2))).expect_err("too big");
        assert!(why.contains("at most 65536 bytes"), "{why}");
    }

    #[test]
    fn public_addresses_are_told_apart() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(ip.parse().expect("an address")), "{ip} counted as public");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(ip.parse().expect("an address")), "{ip} counted as private");
        }
    }

    #[test]
    fn urls_are_checked_against_runner_and_pipeline() {
        let runner =
            HttpPolicy { allowed_hosts: vec!["*.example.com".into(), "127.0.0.1".into()], ..HttpPolicy::default() };
        let scope = HttpScope { hosts: vec!["api.example.com".into()], methods: vec!["GET".into()] };
        let policy = Effective::new(runner, Some(scope));
        let check = |url: &str| policy.refuse_url(&reqwest::Url::parse(url).expect("a URL"));
        assert_eq!(check("https://api.example.com/x"), None);
        assert!(check("https://other.example.com/x").expect("refused").contains("pipeline's http.hosts"));
        assert!(check("https://example.org/").expect("refused").contains("executor.http.allowed_hosts"));
        assert!(check("ftp://api.example.com/").expect("refused").contains("scheme"));
        assert!(policy.refuse_method("POST").expect("refused").contains("pipeline's http.methods"));
        let loopback = Effective::new(HttpPolicy { allowed_hosts: vec!["*".into()], ..HttpPolicy::default() }, None);
        let why = loopback.refuse_url(&reqwest::Url::parse("http://127.0.0.1:9/").expect("a URL")).expect("refused");
        assert!(why.contains("allow_private_addresses"), "{why}");
    }
}
