//! The `http` and `json` modules through real jobs, against a loopback server: every field
//! of the runner's policy and of a pipeline's `http` scope is honoured, private addresses
//! are refused by default naming the rule, and header values never show in errors.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rivet_core::LogLevel;
use rivet_runner::config::HttpPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{Env, TEST_IMAGE};

/// A small HTTP/1.1 server on loopback with a few fixed routes:
/// `/echo` (200, the method and body back, and whether an `authorization` header came),
/// `/big` (2000 bytes), `/hook` (204, the body recorded), `/hang` (never answers), `/to-echo` (302 to `/echo`), `/to-other`
/// (302 to the same server by the name `localhost`) and `/loop` (302 to itself).
struct Server {
    addr: SocketAddr,
    /// The `authorization` header values received.
    seen: Arc<Mutex<Vec<String>>>,
    /// The bodies posted to `/hook`, with their content type.
    hooks: Arc<Mutex<Vec<(String, String)>>>,
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (seen, hooks) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        let recorded = (seen.clone(), hooks.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, addr, recorded.clone()));
            }
        });
        Server { addr, seen, hooks }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

type Records = (Arc<Mutex<Vec<String>>>, Arc<Mutex<Vec<(String, String)>>>);

async fn serve(mut stream: TcpStream, addr: SocketAddr, (seen, hooks): Records) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut request_line = lines.next().unwrap_or_default().split_whitespace();
    let (method, path) =
        (request_line.next().unwrap_or_default().to_owned(), request_line.next().unwrap_or_default().to_owned());
    let mut length = 0;
    let mut authorized = false;
    let mut content_type = String::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "content-type" => content_type = value.trim().to_owned(),
                "authorization" => {
                    authorized = true;
                    seen.lock().expect("seen").push(value.trim().to_owned());
                }
                _ => {}
            }
        }
    }
    while data.len() < head_end + length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    let body = String::from_utf8_lossy(&data[head_end..head_end + length]).into_owned();
    let (status, location, content) = match path.as_str() {
        "/echo" => ("200 OK", None, format!("{method} {body} authorized={authorized}")),
        "/big" => ("200 OK", None, "x".repeat(2000)),
        "/hook" => {
            hooks.lock().expect("hooks").push((content_type, body.clone()));
            ("204 No Content", None, String::new())
        }
        "/hang" => return std::future::pending().await,
        "/to-echo" => ("302 Found", Some(format!("http://{addr}/echo")), String::new()),
        "/to-other" => ("302 Found", Some(format!("http://localhost:{}/echo", addr.port())), String::new()),
        "/loop" => ("302 Found", Some(format!("http://{addr}/loop")), String::new()),
        _ => ("404 Not Found", None, "no such route".to_owned()),
    };
    let location = location.map(|to| format!("location: {to}\r\n")).unwrap_or_default();
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nx-route: {path}\r\n{location}connection: close\r\n\r\n{content}",
        content.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
}

/// A pipeline with the extra top-level fields `fields`, one stage running `body` that logs
/// each attempt of `ATTEMPT` as `NAME: ok STATUS BODY` or `NAME: error MESSAGE`.
fn pipeline(fields: &str, body: &str) -> String {
    format!(
        r#"local function attempt(name, f)
  local ok, r = pcall(f)
  if ok then log.info(name .. ": ok " .. r.status .. " " .. r.body) else log.info(name .. ": error " .. tostring(r)) end
end
return pipeline.define {{
  name = "t", {fields}
  stages = {{ {{ name = "s", container = "{TEST_IMAGE}", script = function()
{body}
end }} }},
}}
"#
    )
}

/// A policy for the loopback server: every field narrower than the default.
fn policy() -> HttpPolicy {
    HttpPolicy {
        allowed_hosts: vec!["127.0.0.1".to_owned()],
        allowed_methods: vec!["GET".to_owned(), "POST".to_owned()],
        max_request_body_bytes: 100,
        max_response_body_bytes: 1000,
        timeout_secs: 5,
        max_redirects: 2,
        allow_private_addresses: true,
    }
}

/// The log line that starts with `NAME: `.
fn result<'a>(texts: &[&'a str], name: &str) -> &'a str {
    let prefix = format!("{name}: ");
    texts.iter().find_map(|text| text.strip_prefix(prefix.as_str())).unwrap_or_else(|| panic!("no {name} in {texts:?}"))
}

#[tokio::test]
async fn every_policy_field_is_honoured() {
    let server = Server::start().await;
    let mut env = Env::new().await;
    env.config.http = policy();
    let url = |path: &str| server.url(path);
    let body = format!(
        r#"
attempt("get", function() return http.get("{echo}") end)
attempt("post", function() return http.post("{echo}", "hello", {{ headers = {{ ["content-type"] = "text/plain" }} }}) end)
attempt("request", function() return http.request({{ method = "post", url = "{echo}", body = "b" }}) end)
attempt("headers", function() local r = http.get("{echo}") return {{ status = r.status, body = r.headers["x-route"] }} end)
attempt("not-found", function() return http.get("{missing}") end)
attempt("method", function() return http.request({{ method = "PUT", url = "{echo}" }}) end)
attempt("host", function() return http.get("http://localhost:{port}/echo") end)
attempt("request-body", function() return http.post("{echo}", string.rep("x", 101)) end)
attempt("response-body", function() return http.get("{big}") end)
attempt("timeout", function() return http.get("{hang}", {{ timeout = 0.5 }}) end)
attempt("timeout-too-long", function() return http.get("{echo}", {{ timeout = 6 }}) end)
attempt("redirect", function() return http.get("{to_echo}") end)
attempt("redirect-out", function() return http.get("{to_other}") end)
attempt("redirects", function() return http.get("{loop}") end)
attempt("scheme", function() return http.get("file:///etc/passwd") end)
attempt("option", function() return http.request({{ url = "{echo}", verb = "GET" }}) end)
"#,
        echo = url("/echo"),
        missing = url("/missing"),
        big = url("/big"),
        hang = url("/hang"),
        to_echo = url("/to-echo"),
        to_other = url("/to-other"),
        loop = url("/loop"),
        port = server.addr.port(),
    );
    let run = env.run(&pipeline("", &body)).await;
    run.assert_succeeded();
    let texts = run.texts();
    let expect = |name: &str, part: &str| {
        let got = result(&texts, name);
        assert!(got.contains(part), "{name}: {got:?} lacks {part:?}");
    };
    expect("get", "ok 200 GET  authorized=false");
    expect("post", "ok 200 POST hello authorized=false");
    expect("request", "ok 200 POST b");
    expect("headers", "ok 200 /echo");
    expect("not-found", "ok 404 no such route");
    expect("method", "the method PUT is not in the runner's executor.http.allowed_methods");
    expect("host", "the host `localhost` is not in the runner's executor.http.allowed_hosts");
    expect(
        "request-body",
        "the body is 101 bytes; requests may send at most 100 bytes (executor.http.max_request_body_bytes)",
    );
    expect("response-body", "the response body exceeds 1000 bytes (executor.http.max_response_body_bytes)");
    expect("timeout", "timed out");
    expect("timeout-too-long", "at most 5 (executor.http.timeout_secs), got 6");
    expect("redirect", "ok 200 GET  authorized=false");
    expect("redirect-out", "a redirect to http://localhost");
    expect("redirect-out", "is not in the runner's executor.http.allowed_hosts");
    expect("redirects", "more than 2 redirects (executor.http.max_redirects)");
    expect("scheme", "the scheme `file` is not allowed");
    expect("option", "unknown option `verb`");
    // Every error names the call and the URL.
    assert!(result(&texts, "method").contains("error: http.request: the method"), "{texts:?}");
    assert!(result(&texts, "timeout").contains(&format!("GET {}", url("/hang"))), "{texts:?}");
}

#[tokio::test]
async fn a_pipeline_narrows_the_runner_policy() {
    let server = Server::start().await;
    let mut env = Env::new().await;
    env.config.http = HttpPolicy { allowed_hosts: vec!["*".to_owned()], ..policy() };
    let body = format!(
        r#"
attempt("get", function() return http.get("{echo}") end)
attempt("post", function() return http.post("{echo}", "x") end)
"#,
        echo = server.url("/echo"),
    );
    // Allowed by the pipeline's scope too: only GET.
    let run = env.run(&pipeline(r#"http = { hosts = { "127.0.0.1" }, methods = { "GET" } },"#, &body)).await;
    run.assert_succeeded();
    let texts = run.texts();
    assert!(result(&texts, "get").starts_with("ok 200"), "{texts:?}");
    assert!(result(&texts, "post").contains("the method POST is not in the pipeline's http.methods"), "{texts:?}");
    // A scope cannot widen: a host the pipeline names but the runner refuses stays refused,
    // and one the runner allows but the pipeline does not name is refused.
    env.config.http = policy();
    let body = r#"
attempt("elsewhere", function() return http.get("http://example.com/") end)
"#;
    let run = env.run(&pipeline(r#"http = { hosts = { "example.com" } },"#, body)).await;
    assert!(result(&run.texts(), "elsewhere").contains("executor.http.allowed_hosts"), "{:?}", run.texts());
    let body = format!(r#"attempt("loopback", function() return http.get("{}") end)"#, server.url("/echo"));
    let run = env.run(&pipeline(r#"http = { hosts = { "*.example.com" } },"#, &body)).await;
    assert!(result(&run.texts(), "loopback").contains("not in the pipeline's http.hosts"), "{:?}", run.texts());
}

#[tokio::test]
async fn private_addresses_are_refused_by_default_naming_the_rule() {
    let server = Server::start().await;
    let mut env = Env::new().await;
    env.config.http = HttpPolicy::default();
    let body = format!(
        r#"
attempt("literal", function() return http.get("{echo}") end)
attempt("name", function() return http.get("http://localhost:{port}/echo") end)
attempt("metadata", function() return http.get("http://169.254.169.254/latest/meta-data/") end)
attempt("mapped", function() return http.get("http://[::ffff:127.0.0.1]:{port}/echo") end)
"#,
        echo = server.url("/echo"),
        port = server.addr.port(),
    );
    let run = env.run(&pipeline("", &body)).await;
    run.assert_succeeded();
    let texts = run.texts();
    let rule = "which the runner refuses (executor.http.allow_private_addresses = false)";
    for name in ["literal", "name", "metadata", "mapped"] {
        let got = result(&texts, name);
        assert!(got.starts_with("error ") && got.contains(rule), "{name}: {got:?}");
    }
    // The name was refused after it resolved, on the address it resolved to.
    assert!(result(&texts, "name").contains("`localhost` resolves to 127.0.0.1"), "{texts:?}");
    assert!(server.seen.lock().expect("seen").is_empty());
}

#[tokio::test]
async fn header_values_never_show_in_errors() {
    let server = Server::start().await;
    let mut env = Env::new().await;
    env.config.http = policy();
    let token = "Bearer hunter2-not-a-declared-secret";
    let body = format!(
        r#"
attempt("sent", function() return http.get("{echo}", {{ headers = {{ authorization = "{token}" }} }}) end)
attempt("failed", function() return http.get("{hang}", {{ timeout = 0.5, headers = {{ authorization = "{token}", ["x-api-key"] = "k3y-value" }} }}) end)
attempt("bad", function() return http.get("{echo}", {{ headers = {{ authorization = "{token}\n" }} }}) end)
"#,
        echo = server.url("/echo"),
        hang = server.url("/hang"),
    );
    let run = env.run(&pipeline("", &body)).await;
    run.assert_succeeded();
    let texts = run.texts();
    assert!(result(&texts, "sent").contains("authorized=true"), "{texts:?}");
    assert!(result(&texts, "failed").contains("timed out"), "{texts:?}");
    assert!(
        result(&texts, "bad").contains("the value of header `authorization` is not a valid header value"),
        "{texts:?}"
    );
    for text in &texts {
        assert!(!text.contains("hunter2") && !text.contains("k3y-value"), "a header value was logged: {text}");
    }
    assert_eq!(server.seen.lock().expect("seen").first().map(String::as_str), Some(token));
}

#[tokio::test]
async fn json_round_trips_within_bounds() {
    let env = Env::new().await;
    let body = r#"
local text = json.encode({ name = "rivet", list = { 1, 2.5, "three", true }, empty = {}, none = json.null })
local back = json.decode(text)
log.info("name=" .. back.name .. " n=" .. #back.list .. " third=" .. back.list[3] .. " null=" .. tostring(back.none == json.null))
log.info("nested=" .. json.decode('{"a":{"b":[1,{"c":"d"}]}}').a.b[2].c)
local t = {} t.self = t
for i, f in ipairs({
  function() return json.encode(t) end,
  function() return json.encode({ f = print }) end,
  function() return json.decode("{not json") end,
  function() return json.decode(string.rep("[", 200) .. string.rep("]", 200)) end,
  function() return json.encode(0/0) end,
}) do
  local ok, err = pcall(f)
  log.info(i .. ": " .. tostring(ok) .. " " .. tostring(err))
end
"#;
    let run = env.run(&pipeline("", body)).await;
    run.assert_succeeded();
    let texts = run.texts();
    assert!(run.logged(LogLevel::Info, "name=rivet n=4 third=three null=true"), "{texts:?}");
    assert!(run.logged(LogLevel::Info, "nested=d"), "{texts:?}");
    for (i, part) in [
        "nested deeper than 100 levels",
        "a function has no JSON form",
        "json.decode: key must be a string",
        "recursion limit",
        "no JSON form (NaN",
    ]
    .iter()
    .enumerate()
    {
        let prefix = format!("{}: false", i + 1);
        assert!(texts.iter().any(|t| t.starts_with(&prefix) && t.contains(part)), "{prefix} {part:?} not in {texts:?}");
    }
}

/// The example `notify` plugin posts its JSON through `http`, as a pinned plugin of the job.
#[tokio::test]
async fn the_notify_plugin_posts_a_webhook() {
    let server = Server::start().await;
    let mut env = Env::new().await;
    env.config.http = policy();
    let source = crate::support::example("plugins/notify.lua");
    let body = format!(
        r#"
local notify = require("notify")
log.info("status " .. notify.webhook("{hook}", "job done", {{ job = "t", attempt = 1 }}))
attempt("failing", function() return {{ status = notify.webhook("{missing}", "x"), body = "" }} end)
"#,
        hook = server.url("/hook"),
        missing = server.url("/missing"),
    );
    let mut spec = env.spec(&pipeline(r#"plugins = { "notify@1.0.0" },"#, &body), &[], &[]);
    let pin = rivet_core::plugin::PluginPin {
        name: "notify".to_owned(),
        version: "1.0.0".to_owned(),
        sha256: rivet_core::plugin::sha256(&source),
    };
    spec.plugins = vec![rivet_core::plugin::PinnedPlugin { pin, source }];
    let run = env.run_spec(spec, tokio_util::sync::CancellationToken::new()).await;
    run.assert_succeeded();
    assert!(run.logged(LogLevel::Info, "status 204"), "{:?}", run.texts());
    assert!(result(&run.texts(), "failing").contains("the webhook answered 404"), "{:?}", run.texts());
    let hooks = server.hooks.lock().expect("hooks").clone();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0].0, "application/json");
    let posted: serde_json::Value = serde_json::from_str(&hooks[0].1).expect("JSON");
    assert_eq!(posted, serde_json::json!({ "text": "job done", "job": "t", "attempt": 1 }));
}
