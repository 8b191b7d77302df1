//! The `fs` module through real jobs: files shared with the job's containers, and every way
//! out of the workspace refused (`..`, absolute paths, a link to `/etc` a container made,
//! and a link swapped in while calls run).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rivet_core::{FailureReason, LogLevel};
use tokio_util::sync::CancellationToken;

use crate::support::{Env, TEST_IMAGE};

/// A one-stage pipeline running `body`.
fn stage(body: &str) -> String {
    format!(
        "return pipeline.define {{\n  name = \"t\",\n  stages = {{ {{ name = \"s\", container = \"{TEST_IMAGE}\", script = function()\n{body}\nend }} }},\n}}\n"
    )
}

const SH: &str = r#"
local function sh(script)
  local r = process.run({ cmd = "sh", args = { "-c", script }, capture_stdout = true })
  if r.exit_code ~= 0 then error(script .. " exited " .. r.exit_code) end
  return (r.stdout:gsub("%s+$", ""))
end
"#;

#[tokio::test]
async fn files_are_shared_with_the_jobs_containers() {
    let env = Env::new().await;
    let body = format!(
        r#"{SH}
fs.mkdir("out/deep")
fs.write("out/deep/a.txt", "from lua\n")
fs.append("out/deep/a.txt", "more\n")
-- A container reads what fs wrote, and may change it: the file is the containers' root's.
log.info("container sees: " .. sh("cat /workspace/out/deep/a.txt | tr '\n' '|'"))
sh("echo changed by the container >> out/deep/a.txt; echo made > /workspace/out/b.txt")
log.info("lua sees: " .. fs.read("out/deep/a.txt"):gsub("\n", "|"))
log.info("exists: " .. tostring(fs.exists("out/b.txt")) .. " " .. tostring(fs.exists("nothing")))
log.info("list: " .. table.concat(fs.list("out"), ","))
log.info("glob: " .. table.concat(fs.glob("**/*.txt"), ","))
log.info("removed: " .. tostring(fs.remove("out/deep")) .. " " .. tostring(fs.remove("out/deep")))
log.info("after: " .. table.concat(fs.list("/workspace/out"), ","))
"#
    );
    let run = env.run(&stage(&body)).await;
    run.assert_succeeded();
    for expected in [
        "container sees: from lua|more|",
        "lua sees: from lua|more|changed by the container|",
        "exists: true false",
        "list: b.txt,deep",
        "glob: out/b.txt,out/deep/a.txt",
        "removed: true false",
        "after: b.txt",
    ] {
        assert!(run.logged(LogLevel::Info, expected), "{expected:?} not in {:?}", run.texts());
    }
}

/// Each attempt to leave the workspace fails the call with an error naming the function,
/// the path and the reason; a script may catch it and go on.
#[tokio::test]
async fn every_way_out_of_the_workspace_is_refused() {
    let env = Env::new().await;
    let body = format!(
        r#"{SH}
-- A container can make any link it likes in the workspace.
sh("ln -s /etc etc && ln -s ../../.. up && ln -s /etc/passwd passwd")
local attempts = {{
  function() return fs.read("../../../../etc/passwd") end,
  function() return fs.read("/etc/passwd") end,
  function() return fs.read("etc/passwd") end,
  function() return fs.read("passwd") end,
  function() return fs.list("up") end,
  function() return fs.write("etc/rivet-escape", "x") end,
  function() return fs.mkdir("up/rivet-escape") end,
  function() return fs.glob("../*") end,
}}
for i, attempt in ipairs(attempts) do
  local ok, err = pcall(attempt)
  log.info(i .. ": " .. tostring(ok) .. " " .. tostring(err))
end
fs.read("etc/hostname")
"#
    );
    let run = env.run(&stage(&body)).await;
    let texts = run.texts();
    let expected = [
        "1: false fs.read: `../../../../etc/passwd`: the path leads outside the workspace",
        "2: false fs.read: `/etc/passwd`: absolute paths are outside the workspace",
        "3: false fs.read: `etc/passwd`: the path leads outside the workspace",
        "4: false fs.read: `passwd`: the path leads outside the workspace",
        "5: false fs.list: `up`: the path leads outside the workspace",
        "6: false fs.write: `etc/rivet-escape`: the path leads outside the workspace",
        "7: false fs.mkdir: `up/rivet-escape`: the path leads outside the workspace",
        "8: false fs.glob: `../*`: the path leads outside the workspace",
    ];
    // A caught error reads `runtime error: <message>` followed by a traceback.
    for (line, expected) in expected.iter().enumerate() {
        let (number, message) = expected.split_once(" false ").expect("NUMBER false MESSAGE");
        let found = texts.iter().any(|text| text.starts_with(&format!("{number} false")) && text.contains(message));
        assert!(found, "attempt {}: {expected:?} not in {texts:?}", line + 1);
    }
    // An uncaught refusal fails the stage as a script error, naming the place and the path.
    run.assert_failed(FailureReason::ScriptError, "fs.read: `etc/hostname`: the path leads outside the workspace");
    assert!(run.outcome.message.contains("test.lua:"), "{}", run.outcome.message);
    assert!(!Path::new("/etc/rivet-escape").exists() && !Path::new("/rivet-escape").exists());
}

/// While the script reads a file through `dir/`, something else (standing for a container
/// of the job) keeps replacing `dir` with a link to `/etc` and back. Every read returns the
/// workspace's own file or fails; none returns the host's.
#[tokio::test]
async fn a_link_swapped_in_during_the_calls_never_leads_out() {
    let mut env = Env::new().await;
    env.config.lua_time_budget_ms = 30_000;
    let body = r#"
fs.mkdir("dir")
fs.write("dir/passwd", "inside")
fs.write("ready", "")
local inside, refused, leaked = 0, 0, 0
for i = 1, 1000000 do
  local ok, data = pcall(fs.read, "dir/passwd")
  if ok and data == "inside" then inside = inside + 1
  elseif ok then leaked = leaked + 1
  else refused = refused + 1 end
  if i >= 2000 and inside > 0 and refused > 0 then break end
end
output.set("inside", inside)
output.set("refused", refused)
output.set("leaked", leaked)
fs.write("done", "")
"#;
    let spec = env.spec(&stage(body), &[], &[]);
    let workspace = env.workspace_root().join(format!("{}-{}", spec.assignment.job_id, spec.assignment.attempt));
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !workspace.join("ready").exists() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::yield_now();
            }
            let _ = std::os::unix::fs::symlink("/etc", workspace.join("evil"));
            while !stop.load(Ordering::Relaxed) && !workspace.join("done").exists() {
                let _ = std::fs::rename(workspace.join("dir"), workspace.join("real"));
                let _ = std::fs::rename(workspace.join("evil"), workspace.join("dir"));
                let _ = std::fs::rename(workspace.join("dir"), workspace.join("evil"));
                let _ = std::fs::rename(workspace.join("real"), workspace.join("dir"));
            }
        })
    };
    let run = env.run_spec(spec, CancellationToken::new()).await;
    stop.store(true, Ordering::Relaxed);
    swapper.join().expect("the swapper");
    run.assert_succeeded();
    let count = |name: &str| run.outcome.outputs.get(name).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    assert_eq!(count("leaked"), 0, "a read reached outside the workspace: {:?}", run.outcome.outputs);
    assert!(count("inside") > 0 && count("refused") > 0, "the race did not happen: {:?}", run.outcome.outputs);
}

#[tokio::test]
async fn sizes_are_capped_by_the_runner_configuration() {
    let mut env = Env::new().await;
    env.config.fs_max_read_bytes = 1024;
    env.config.fs_max_write_bytes = 100;
    let body = format!(
        r#"{SH}
sh("head -c 5000 /dev/zero > big")
for i, attempt in ipairs({{
  function() return fs.read("big") end,
  function() return fs.write("w", string.rep("x", 101)) end,
  function() return fs.append("w", string.rep("x", 101)) end,
}}) do
  local ok, err = pcall(attempt)
  log.info(i .. ": " .. tostring(ok) .. " " .. tostring(err))
end
fs.write("w", string.rep("x", 100))
log.info("wrote " .. #fs.read("w"))
"#
    );
    let run = env.run(&stage(&body)).await;
    run.assert_succeeded();
    let texts = run.texts();
    for expected in [
        "1: false fs.read: `big`: is 5000 bytes; fs.read reads at most 1 KiB (executor.fs_max_read_bytes)",
        "2: false fs.write: `w`: 101 bytes given; fs.write writes at most 100 bytes (executor.fs_max_write_bytes)",
        "3: false fs.append: `w`: 101 bytes given; fs.append writes at most 100 bytes (executor.fs_max_write_bytes)",
    ] {
        let (number, message) = expected.split_once(" false ").expect("NUMBER false MESSAGE");
        let found = texts.iter().any(|text| text.starts_with(&format!("{number} false")) && text.contains(message));
        assert!(found, "{expected:?} not in {texts:?}");
    }
    assert!(run.logged(LogLevel::Info, "wrote 100"), "{texts:?}");
}
