//! Plugins end to end: published to the orchestrator, pinned by content hash when a
//! pipeline is created, carried to the runner with the assignment, and loaded by `require`
//! in the pipeline's sandbox.

use rivet_proto::v1::plugin_service_client::PluginServiceClient;
use rivet_proto::v1::{self as pb};
use tonic::Code;
use tonic::transport::Channel;

use crate::{Stack, support, texts};

impl Stack {
    async fn plugins(&self) -> PluginServiceClient<Channel> {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.unwrap();
        PluginServiceClient::new(channel)
    }

    async fn publish(&self, name: &str, version: &str, source: &str) -> Result<pb::Plugin, tonic::Status> {
        let request =
            pb::PublishPluginRequest { name: name.to_owned(), version: version.to_owned(), source: source.to_owned() };
        Ok(self.plugins().await.publish_plugin(request).await?.into_inner().plugin.unwrap())
    }

    /// Launches `pipeline`, follows it to its end, and returns the job and its log.
    async fn run_job(&mut self, pipeline: &str, inputs: &[(&str, &str)]) -> (pb::Job, Vec<String>) {
        let id = self.launch(pipeline, inputs).await;
        let lines = self.follow(&id).await;
        (self.wait_ended(&id).await, texts(&lines))
    }
}

fn say(word: &str) -> String {
    format!("return {{ say = function() return \"{word}\" end }}")
}

fn pipeline(name: &str, plugin: &str) -> String {
    format!(
        r#"return pipeline.define {{
  name = "{name}",
  plugins = {{ "{plugin}" }},
  stages = {{ {{ name = "s", container = "{image}", script = function()
    log.info("plugin says " .. require("pin").say())
  end }} }},
}}"#,
        image = support::TEST_IMAGE
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_keeps_the_plugin_content_it_was_created_with() {
    let mut stack = Stack::start().await;
    let (stop, agent) = stack.agent().await;
    let one = stack.publish("pin", "1.0.0", &say("one")).await.unwrap();
    assert_eq!(one.sha256, rivet_core::plugin::sha256(&say("one")));
    // Publishing the same version again with the same content is a no-op; other content is
    // refused.
    assert_eq!(stack.publish("pin", "1.0.0", &say("one")).await.unwrap().sha256, one.sha256);
    let refused = stack.publish("pin", "1.0.0", &say("changed")).await.unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists, "{refused:?}");
    assert!(refused.message().contains("already published with other content"), "{}", refused.message());

    // Created while 1.0.0 is the latest: pinned to its content.
    stack.create(&pipeline("latest", "pin"), "latest.lua").await;
    stack.create(&pipeline("by-version", "pin@1.0.0"), "by-version.lua").await;
    stack.create(&pipeline("by-hash", &format!("pin@sha256:{}", one.sha256)), "by-hash.lua").await;
    stack.publish("pin", "2.0.0", &say("two")).await.unwrap();

    for name in ["latest", "by-version", "by-hash"] {
        let (job, texts) = stack.run_job(name, &[]).await;
        assert_eq!(job.state(), pb::JobState::Succeeded, "{name}: {job:?}");
        assert!(texts.contains(&"plugin says one".to_owned()), "{name}: {texts:?}");
    }
    // A new version of the pipeline takes the new latest.
    stack.create(&pipeline("latest", "pin"), "latest.lua").await;
    let (job, texts) = stack.run_job("latest", &[]).await;
    assert_eq!(job.state(), pb::JobState::Succeeded, "{job:?}");
    assert!(texts.contains(&"plugin says two".to_owned()), "{texts:?}");

    // A reference nothing matches is refused at creation, naming it.
    let request = pb::CreatePipelineRequest { source: pipeline("missing", "pin@9.9.9"), file_name: "m.lua".to_owned() };
    let err = stack.pipelines.create_pipeline(request).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("no published plugin matches pin@9.9.9"), "{}", err.message());
    stop.drain.cancel();
    agent.await.unwrap();
}

/// A plugin runs in the pipeline's sandbox: what a pipeline cannot do, it cannot either,
/// and it fails the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_is_sandboxed_like_a_pipeline() {
    let mut stack = Stack::start().await;
    let (stop, agent) = stack.agent().await;
    let attempts = r#"
local attempts = {}
attempts.io = function() return io.open("/etc/passwd") end
attempts.execute = function() return os.execute("id") end
attempts.host_path = function() return fs.read("/etc/passwd") end
attempts.package = function() return package.loadlib("x", "y") end
return attempts
"#;
    stack.publish("attempts", "1.0.0", attempts).await.unwrap();
    let source = format!(
        r#"return pipeline.define {{
  name = "sandboxed",
  plugins = {{ "attempts@1.0.0" }},
  stages = {{ {{ name = "s", container = "{image}", script = function()
    local direct = {{
      io = function() return io.open("/etc/passwd") end,
      execute = function() return os.execute("id") end,
      host_path = function() return fs.read("/etc/passwd") end,
      package = function() return package.loadlib("x", "y") end,
    }}
    local plugin = require("attempts")
    for _, name in ipairs({{ "io", "execute", "host_path", "package" }}) do
      local _, from_plugin = pcall(plugin[name])
      local _, from_pipeline = pcall(direct[name])
      log.info(name .. " plugin: " .. tostring(from_plugin):match("^[^\n]*"))
      log.info(name .. " pipeline: " .. tostring(from_pipeline):match("^[^\n]*"))
    end
    local ok, undeclared = pcall(require, "git")
    log.info("undeclared: " .. tostring(ok) .. " " .. tostring(undeclared):match("^[^\n]*"))
  end }} }},
}}"#,
        image = support::TEST_IMAGE
    );
    stack.create(&source, "sandboxed.lua").await;
    let (job, texts) = stack.run_job("sandboxed", &[]).await;
    assert_eq!(job.state(), pb::JobState::Succeeded, "{job:?}");
    let line = |prefix: &str| {
        texts.iter().find_map(|text| text.strip_prefix(prefix)).unwrap_or_else(|| panic!("no {prefix} in {texts:?}"))
    };
    for (name, reason) in [
        ("io", "attempt to index a nil value (global 'io')"),
        ("execute", "attempt to call a nil value (field 'execute')"),
        ("host_path", "fs.read: `/etc/passwd`: absolute paths are outside the workspace"),
        ("package", "attempt to index a nil value (global 'package')"),
    ] {
        let (plugin, direct) = (line(&format!("{name} plugin: ")), line(&format!("{name} pipeline: ")));
        assert!(plugin.contains(reason), "{name} from the plugin: {plugin}");
        assert!(direct.contains(reason), "{name} from the pipeline: {direct}");
        // Lua's own errors name the place: the plugin's line, not the pipeline's.
        if name != "host_path" {
            assert!(plugin.contains("plugin attempts:"), "the error names the plugin's line: {plugin}");
        }
    }
    let undeclared = line("undeclared: ");
    assert!(
        undeclared.starts_with("false")
            && undeclared.contains("`git` is not a plugin this pipeline declares (its plugins: attempts)"),
        "{undeclared}"
    );
    stop.drain.cancel();
    agent.await.unwrap();
}

/// Builds localhost/rivet-git (deploy/test-image/build-git.sh) when it is missing or stale;
/// the lock keeps parallel test processes from building at once.
fn build_git_image() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/test-image/build-git.sh");
    let status = std::process::Command::new("flock")
        .arg("/tmp/rivet-test-image.lock")
        .arg(&script)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run deploy/test-image/build-git.sh");
    assert!(status.success(), "deploy/test-image/build-git.sh failed");
}

/// The example pipeline: the `git` plugin checks out a repository (a bare one in the
/// workspace) at a tag or a branch, and a container builds from the checkout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_git_example_checks_out_and_builds() {
    build_git_image();
    let mut stack = Stack::start().await;
    let (stop, agent) = stack.agent().await;
    let git = support::example("plugins/git.lua");
    stack.publish("git", "1.0.0", &git).await.unwrap();
    stack.create(&support::example("git-build.lua"), "git-build.lua").await;
    for (reference, built) in [("v1", "built: hello from v1"), ("main", "built: hello from main")] {
        let (job, texts) = stack.run_job("git-build", &[("ref", reference)]).await;
        assert_eq!(job.state(), pb::JobState::Succeeded, "{reference}: {job:?}\n{texts:?}");
        assert_eq!(job.outputs.get("result").map(String::as_str), Some(built), "{texts:?}");
        let commit = job.outputs.get("commit").cloned().unwrap_or_default();
        assert!(commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()), "{commit}");
        assert!(texts.contains(&format!("checked out {commit}")), "{texts:?}");
    }
    stop.drain.cancel();
    agent.await.unwrap();
}
