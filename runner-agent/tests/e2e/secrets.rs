//! Secrets end to end: set through `SecretService`, delivered to the job that declares
//! them, read with `secret.get`, and masked in every form a stage prints them (as is,
//! base64 at each alignment in both alphabets with and without padding, hex in both
//! cases, URL-encoded, across the 64 KiB line limit and podman's output chunks, one
//! character per line) in the stored log and the followed one. A pipeline that does not
//! declare the secret cannot read it.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use rivet_proto::v1::secret_service_client::SecretServiceClient;
use rivet_proto::v1::{self as pb};

use super::{PATIENCE, Stack, texts};

/// The lines short enough to show in a failure message.
fn short(lines: &[String]) -> Vec<&str> {
    lines.iter().map(|line| if line.len() > 200 { &line[line.len() - 40..] } else { line.as_str() }).collect()
}

const SECRET: &str = "S3cr3t/e2e+Value_42";

/// Prints the secret in every form the runner masks, from the container's own tools.
const PRINTER: &str = r#"
local function sh(script)
  process.run { cmd = "sh", args = { "-c", script }, env = { T = secret.get("E2E_TOKEN") } }
end
local function url(value, keep)
  return (value:gsub("[^%w" .. keep .. "]", function(c) return string.format("%%%02X", string.byte(c)) end))
end
return pipeline.define {
  name = "printer",
  secrets = { "E2E_TOKEN" },
  stages = { { name = "print", script = function()
    sh('echo "raw: $T"')
    sh('printf %s "$T" | base64')
    sh('printf a%s "$T" | base64')
    sh('printf ab%sXYZ "$T" | base64')
    sh('printf %s "$T" | base64 | tr "+/" "-_"')
    sh('printf a%s "$T" | base64 | tr "+/" "-_" | tr -d =')
    sh('printf ab%s "$T" | base64 | tr -d =')
    sh('printf %s "$T" | xxd -p')
    sh('printf %s "$T" | xxd -p | tr a-f A-F')
    local value = secret.get("E2E_TOKEN")
    process.run { cmd = "echo", args = { "url: " .. url(value, "") } }
    process.run { cmd = "echo", args = { "url: " .. url(value, "%-%._~") } }
    process.run { cmd = "echo", args = { "url: " .. url(value, "%-%._~"):gsub("%%%x%x", string.lower) } }
    for _, before in ipairs({ 65536 - 45, 65536 - 30, 65536 - 20, 65536 - 10, 65536 - 1, 16384 - 7 }) do
      sh('head -c ' .. before .. ' /dev/zero | tr "\\0" x; printf %s "$T"; echo " after"')
    end
    sh('printf %s "$T" | fold -w1')
    sh('printf %s "$T" | fold -w3')
    log.info("done printing")
  end } },
}"#;

const SNOOP: &str = r#"return pipeline.define {
  name = "snoop",
  stages = { { name = "peek", script = function()
    log.info("got " .. secret.get("E2E_TOKEN"))
  end } },
}"#;

/// Every 8-byte window of each form the stage printed whose characters depend on the
/// secret alone.
fn leaked_pieces() -> Vec<String> {
    let mut forms = vec![SECRET.to_owned(), hex::encode(SECRET), hex::encode_upper(SECRET)];
    for (prefix, skip) in [("", 0), ("a", 2), ("ab", 3)] {
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let encoded = engine.encode(format!("{prefix}{SECRET}"));
            forms.push(encoded[skip..encoded.len() - 2].to_owned());
        }
    }
    forms.push("S3cr3t%2Fe2e%2BValue_42".to_owned());
    let mut pieces = Vec::new();
    for form in forms {
        let bytes = form.as_bytes();
        for window in bytes.windows(8) {
            pieces.push(String::from_utf8_lossy(window).into_owned());
        }
    }
    pieces
}

fn assert_masked(what: &str, lines: &[String]) {
    let joined = lines.concat();
    for piece in leaked_pieces() {
        assert!(!joined.contains(&piece), "{what} leaks `{piece}` of the secret");
    }
    for line in lines {
        assert!(!line.contains("S3cr3t"), "{what} holds the secret: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_masked_in_every_form_and_only_its_pipeline_reads_it() {
    let mut stack = Stack::start().await;
    let (stop, agent) = stack.agent().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", stack.addr))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut secrets = SecretServiceClient::new(channel);
    let request = pb::SetSecretRequest { name: "E2E_TOKEN".into(), pipeline: String::new(), value: SECRET.into() };
    secrets.set_secret(request).await.expect("set the secret");
    stack.create(PRINTER, "printer.lua").await;
    stack.create(SNOOP, "snoop.lua").await;

    let id = stack.launch("printer", &[]).await;
    let followed = texts(&stack.follow(&id).await);
    let job = stack.wait_ended(&id).await;
    assert_eq!(job.state(), pb::JobState::Succeeded, "{job:?}\n{:?}", short(&followed));
    assert!(followed.iter().any(|line| line == "done printing"), "{:?}", short(&followed));
    assert!(followed.iter().any(|line| line == "raw: ***"), "{:?}", short(&followed));
    assert!(
        followed.iter().filter(|line| line.starts_with("url: ")).all(|line| line == "url: ***"),
        "{:?}",
        short(&followed)
    );
    // One character per line: the lines are masked, not dropped or merged.
    let stars = followed.iter().filter(|line| *line == "***").count();
    assert!(stars >= SECRET.len(), "{:?}", short(&followed));
    assert_masked("the followed log", &followed);

    let request = pb::StreamLogsRequest { job_id: id.clone(), from_sequence: 0, follow: false };
    let mut stream = stack.logs.stream_logs(request).await.expect("read the stored log").into_inner();
    let mut stored = Vec::new();
    while let Some(batch) = tokio::time::timeout(PATIENCE, stream.message()).await.expect("log").expect("log") {
        stored.extend(batch.lines.into_iter().map(|line| line.text));
    }
    assert_eq!(stored, followed, "the stored log is the followed one");
    assert_masked("the stored log", &stored);
    let record = format!("{:?}", stack.wait_ended(&id).await);
    assert!(!record.contains(SECRET), "the job record holds the secret");

    // A pipeline that did not declare the secret gets none, and is told why.
    let id = stack.launch("snoop", &[]).await;
    let lines = texts(&stack.follow(&id).await);
    let job = stack.wait_ended(&id).await;
    assert_eq!(job.state(), pb::JobState::Failed, "{job:?}");
    assert_eq!(job.failure_reason(), pb::FailureReason::ScriptError, "{job:?}");
    assert!(job.message.contains("secret `E2E_TOKEN` is not declared by this pipeline"), "{}", job.message);
    assert!(!format!("{job:?}{lines:?}").contains(SECRET));

    stop.drain.cancel();
    agent.await.unwrap();
}
