//! What a job's processes cannot do to the host: root in the container is an unprivileged
//! id on the host (a user namespace), the workspace is theirs alone and mounted without
//! setuid or device files, and a stage can run without any network.

use rivet_core::LogLevel;

use crate::support::{Env, TEST_IMAGE};

/// A one-stage pipeline whose stage has the extra fields `fields` and runs `body`.
fn stage(fields: &str, body: &str) -> String {
    format!(
        "return pipeline.define {{\n  name = \"t\",\n  stages = {{ {{ name = \"s\", container = \"{TEST_IMAGE}\", {fields} script = function()\n{body}\nend }} }},\n}}\n"
    )
}

fn sh(script: &str) -> String {
    format!("process.run({{ cmd = \"sh\", args = {{ \"-c\", {script:?} }} }})")
}

#[tokio::test]
async fn container_root_is_not_host_root() {
    let env = Env::new().await;
    let run = env.run(&stage("", &sh("echo \"uid_map $(cat /proc/self/uid_map | tr -s ' ')\"; id -u"))).await;
    run.assert_succeeded();
    let base = rivet_runner::config::CONTAINER_UID_BASE;
    let expected = format!("uid_map 0 {base} 65536");
    let normalized = |text: &&str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(run.texts().iter().any(|text| normalized(text) == expected), "{:?}", run.texts());
    assert!(run.logged(LogLevel::Info, "0"), "root inside the container: {:?}", run.texts());
}

#[tokio::test]
async fn the_workspace_is_private_and_mounted_nosuid_nodev() {
    let env = Env::new().await;
    let script = "stat -c 'mode %a' /workspace; grep ' /workspace ' /proc/mounts; \
                  cp /bin/busybox /workspace/sh && chmod u+s /workspace/sh && stat -c 'file %a' /workspace/sh";
    let run = env.run(&stage("", &sh(script))).await;
    run.assert_succeeded();
    let texts = run.texts();
    assert!(texts.contains(&"mode 770"), "the workspace is not world-writable: {texts:?}");
    let mount = texts.iter().find(|text| text.contains(" /workspace ")).expect("the workspace mount");
    assert!(mount.contains("nosuid") && mount.contains("nodev"), "{mount}");
    // The setuid bit is stored, but the mount ignores it, and the file belongs to an
    // unprivileged host id.
    assert!(texts.contains(&"file 4755"), "{texts:?}");
}

#[tokio::test]
async fn a_stage_can_run_without_a_network() {
    let env = Env::new().await;
    let count = "echo \"interfaces $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' ')\"";
    let isolated = env.run(&stage("network = \"none\",", &sh(count))).await;
    isolated.assert_succeeded();
    assert!(isolated.texts().contains(&"interfaces lo "), "{:?}", isolated.texts());

    let connected = env.run(&stage("network = \"default\",", &sh(count))).await;
    connected.assert_succeeded();
    let line = connected.texts().into_iter().find(|text| text.starts_with("interfaces ")).expect("interfaces");
    assert!(line.split_whitespace().count() > 2, "the default network has an interface besides lo: {line}");
}

#[tokio::test]
async fn an_unknown_network_is_a_validation_error() {
    let err = rivet_core::check(&stage("network = \"host\",", ""), "t.lua").expect_err("host networking is refused");
    assert!(err.to_string().contains("network: must be \"none\" or \"default\", got \"host\""), "{err}");
}
