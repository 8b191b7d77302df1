//! `rivet init lua`: writes the stubs and `.luarc.json`, is idempotent, and never
//! overwrites a `.luarc.json` edited by hand unless told to.

use std::fs;
use std::path::Path;

use predicates::prelude::*;
use predicates::str::contains;
use serde_json::Value;

use crate::support::{lua_files, read, repo_root, rivet, temp_dir, text, write};

/// The names of the files of `lua-stubs/`, sorted.
fn stub_names() -> Vec<String> {
    lua_files(&repo_root().join("lua-stubs"))
        .iter()
        .map(|path| path.file_name().expect("a file name").to_string_lossy().into_owned())
        .collect()
}

/// What `rivet init lua -o PROJECT` prints when every file got `outcome`, then `summary`.
fn expected_stdout(project: &Path, outcome: &str, summary: &str) -> String {
    let mut lines: Vec<String> = stub_names()
        .iter()
        .map(|name| format!("{outcome:>9} {}", project.join(".rivet/stubs").join(name).display()))
        .collect();
    lines.push(format!("{outcome:>9} {}", project.join(".luarc.json").display()));
    lines.push(summary.to_owned());
    lines.join("\n") + "\n"
}

fn init(project: &Path) -> assert_cmd::assert::Assert {
    rivet().args(["init", "lua", "-o"]).arg(project).assert()
}

/// Asserts that `project` holds a copy of every stub and a `.luarc.json` naming them.
fn assert_set_up(project: &Path) {
    for name in stub_names() {
        let written = project.join(".rivet/stubs").join(&name);
        assert_eq!(read(&written), read(&repo_root().join("lua-stubs").join(&name)), "{}", written.display());
    }
    let written: Vec<String> = lua_files(&project.join(".rivet/stubs"))
        .iter()
        .map(|path| path.file_name().expect("a file name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, stub_names());

    let luarc: Value = serde_json::from_str(&read(&project.join(".luarc.json"))).expect(".luarc.json is JSON");
    assert_eq!(luarc["runtime"]["version"], "Lua 5.4");
    assert_eq!(luarc["workspace"]["library"], serde_json::json!([".rivet/stubs"]));
}

#[test]
fn creates_the_stubs_and_luarc() {
    let dir = temp_dir();
    let project = dir.path().join("project");
    let count = stub_names().len() + 1;
    init(&project).code(0).stdout(expected_stdout(&project, "created", &format!("{count} created"))).stderr("");
    assert_set_up(&project);
}

#[test]
fn second_run_changes_nothing_and_says_so() {
    let dir = temp_dir();
    init(dir.path()).code(0);
    let luarc = dir.path().join(".luarc.json");
    let modified = fs::metadata(&luarc).and_then(|meta| meta.modified()).expect("mtime");

    let summary = "nothing to do: everything was already up to date";
    init(dir.path()).code(0).stdout(expected_stdout(dir.path(), "unchanged", summary)).stderr("");
    assert_eq!(fs::metadata(&luarc).and_then(|meta| meta.modified()).expect("mtime"), modified);
    assert_set_up(dir.path());
}

#[test]
fn writes_into_the_current_directory_by_default() {
    let dir = temp_dir();
    let output = rivet().current_dir(dir.path()).args(["init", "lua"]).assert().code(0).get_output().clone();
    // Paths are shown relative to the current directory.
    assert!(text(&output.stdout).contains("  created .luarc.json\n"), "{}", text(&output.stdout));
    assert!(text(&output.stdout).contains("  created .rivet/stubs/pipeline.lua\n"));
    assert_set_up(dir.path());
}

#[test]
fn edited_luarc_is_kept_without_force() {
    let dir = temp_dir();
    init(dir.path()).code(0);
    let edited = "{ \"runtime\": { \"version\": \"Lua 5.4\" }, \"hint\": { \"enable\": true } }\n";
    let luarc = write(dir.path(), ".luarc.json", edited);

    init(dir.path())
        .code(1)
        .stdout(contains(format!("     kept {}\n", luarc.display())))
        .stdout(contains(format!("{} unchanged, 1 kept\n", stub_names().len())))
        .stderr(contains(format!("error: {} differs", luarc.display())).and(contains("edited by hand")))
        .stderr(contains(format!("hint: run `rivet init lua -o {} --force`", dir.path().display())));
    assert_eq!(read(&luarc), edited);
}

#[test]
fn edited_luarc_is_overwritten_with_force() {
    let dir = temp_dir();
    init(dir.path()).code(0);
    let luarc = write(dir.path(), ".luarc.json", "{}\n");

    rivet()
        .args(["init", "lua", "--force", "-o"])
        .arg(dir.path())
        .assert()
        .code(0)
        .stdout(contains(format!("  updated {}\n", luarc.display())))
        .stderr("");
    assert_set_up(dir.path());
    init(dir.path()).code(0).stdout(contains("nothing to do"));
}

#[test]
fn stubs_are_refreshed_even_when_luarc_is_kept() {
    let dir = temp_dir();
    init(dir.path()).code(0);
    let stubs = dir.path().join(".rivet/stubs");
    write(&stubs, "log.lua", "-- an old version\n");
    write(&stubs, "retired.lua", "-- a module rivet no longer has\n");
    write(&stubs, "notes.txt", "not a stub: left alone\n");
    write(dir.path(), ".luarc.json", "{}\n");

    init(dir.path())
        .code(1)
        .stdout(contains(format!("  updated {}\n", stubs.join("log.lua").display())))
        .stdout(contains(format!("  removed {}\n", stubs.join("retired.lua").display())))
        .stdout(contains("1 updated, 1 removed"));
    assert_eq!(read(&stubs.join("log.lua")), read(&repo_root().join("lua-stubs/log.lua")));
    assert!(!stubs.join("retired.lua").exists());
    assert!(stubs.join("notes.txt").exists());
}

#[test]
fn missing_luarc_is_written_again() {
    let dir = temp_dir();
    init(dir.path()).code(0);
    fs::remove_file(dir.path().join(".luarc.json")).expect("remove .luarc.json");
    init(dir.path()).code(0).stdout(contains("  created ").and(contains("1 created")));
    assert_set_up(dir.path());
}

#[test]
fn unwritable_target_is_an_error() {
    let dir = temp_dir();
    // `.rivet` is a file, so the stubs folder cannot be created.
    write(dir.path(), ".rivet", "");
    init(dir.path()).code(1).stderr(contains("error: failed to create").and(contains(".rivet/stubs")));
}

/// The written configuration works with a real language server's checker: with the
/// stubs excluded from the workspace, they are found only through `.luarc.json`. Skipped
/// when `emmylua_check` is not installed, except on CI (`CI=true`), which installs it (see
/// scripts/lua-check.sh): there a missing checker fails the test rather than hiding it.
#[test]
fn emmylua_check_finds_the_stubs_through_luarc() {
    let Ok(status) = std::process::Command::new("emmylua_check").arg("--version").output() else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "emmylua_check is not installed, and CI=true forbids skipping (cargo install --locked emmylua_check)"
        );
        eprintln!("skipped: emmylua_check is not installed");
        return;
    };
    assert!(status.status.success());

    let dir = temp_dir();
    init(dir.path()).code(0);
    fs::copy(repo_root().join("examples/build-and-test.lua"), dir.path().join("good.lua")).expect("copy example");
    write(dir.path(), "bad.lua", "log.inf(\"x\")\nreturn pipeline.define({ name = \"x\", stages = {} })\n");

    let run = |files: &str| {
        let output = std::process::Command::new("emmylua_check")
            .args(["--ignore", ".rivet/**", "--ignore", files])
            .arg(dir.path())
            .output()
            .expect("emmylua_check runs");
        text(&output.stdout) + &text(&output.stderr)
    };
    let good = run("bad.lua");
    assert!(!good.contains("undefined-global") && !good.contains("warning"), "{good}");
    let bad = run("good.lua");
    assert!(bad.contains("undefined-field") && !bad.contains("undefined-global"), "{bad}");
}
