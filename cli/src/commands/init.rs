//! `rivet init lua [-o DIR] [--force]`: sets a project up so that a Lua language server
//! (lua-language-server or EmmyLua) knows Rivet's modules.
//!
//! It writes the annotation stubs of `lua-stubs/`, which are compiled into the binary, to
//! `DIR/.rivet/stubs/`, and a `DIR/.luarc.json` that both servers read, naming that folder
//! as a library. Running it again changes nothing unless the stubs of this `rivet` differ
//! from the ones on disk.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::exit;

/// Where the stubs go, relative to the project directory. `.luarc.json` names this path,
/// and both servers resolve it against the directory that holds `.luarc.json`.
const STUBS_DIR: &str = ".rivet/stubs";

/// The configuration file that lua-language-server reads, and EmmyLua too when the project
/// has no `.emmyrc.json`.
const LUARC: &str = ".luarc.json";

/// Every file of `lua-stubs/`, by name. The test `every_stub_is_embedded` fails when a file
/// is added to `lua-stubs/` but not here.
const STUBS: &[(&str, &str)] = &[
    ("container.lua", include_str!("../../../lua-stubs/container.lua")),
    ("fs.lua", include_str!("../../../lua-stubs/fs.lua")),
    ("git.lua", include_str!("../../../lua-stubs/git.lua")),
    ("http.lua", include_str!("../../../lua-stubs/http.lua")),
    ("input.lua", include_str!("../../../lua-stubs/input.lua")),
    ("job.lua", include_str!("../../../lua-stubs/job.lua")),
    ("json.lua", include_str!("../../../lua-stubs/json.lua")),
    ("log.lua", include_str!("../../../lua-stubs/log.lua")),
    ("notify.lua", include_str!("../../../lua-stubs/notify.lua")),
    ("output.lua", include_str!("../../../lua-stubs/output.lua")),
    ("pipeline.lua", include_str!("../../../lua-stubs/pipeline.lua")),
    ("process.lua", include_str!("../../../lua-stubs/process.lua")),
    ("secret.lua", include_str!("../../../lua-stubs/secret.lua")),
];

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Updated,
    Unchanged,
    /// A stub that this `rivet` no longer ships, deleted from `.rivet/stubs/`.
    Removed,
    /// A `.luarc.json` with other content than ours, left as it is.
    Kept,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::Removed => "removed",
            Outcome::Kept => "kept",
        }
    }
}

/// Writes `dir/.rivet/stubs/*.lua` and `dir/.luarc.json`, creating `dir` if needed, and
/// prints one line per file saying whether it was created, updated or unchanged.
///
/// The stubs are always brought up to date: that folder belongs to Rivet, so a stub this
/// `rivet` no longer ships is removed from it too. `.luarc.json` is written when it is
/// missing; when it exists with exactly our content it is left alone; when it differs it
/// was edited by hand, so it is kept unless `force` is set.
///
/// Returns [`exit::OK`] when everything is in place, and [`exit::FAILURE`] with an
/// explanation on stderr when a differing `.luarc.json` was kept (the stubs are refreshed
/// all the same). Fails on I/O errors.
pub fn run(dir: &Path, force: bool) -> anyhow::Result<u8> {
    let mut report: Vec<(PathBuf, Outcome)> = Vec::new();

    let stubs_dir = dir.join(STUBS_DIR);
    fs::create_dir_all(&stubs_dir).with_context(|| format!("failed to create {}", stubs_dir.display()))?;
    for (name, contents) in STUBS {
        let outcome = write_if_changed(&stubs_dir.join(name), contents.as_bytes())?;
        report.push((Path::new(STUBS_DIR).join(name), outcome));
    }
    for name in stale_stubs(&stubs_dir)? {
        let path = stubs_dir.join(&name);
        fs::remove_file(&path).with_context(|| format!("failed to remove {}", path.display()))?;
        report.push((Path::new(STUBS_DIR).join(name), Outcome::Removed));
    }

    let luarc = dir.join(LUARC);
    let wanted = luarc_json();
    let outcome = match read_if_exists(&luarc)? {
        Some(existing) if existing != wanted.as_bytes() && !force => Outcome::Kept,
        _ => write_if_changed(&luarc, wanted.as_bytes())?,
    };
    report.push((PathBuf::from(LUARC), outcome));

    for (path, outcome) in &report {
        println!("{:>9} {}", outcome.as_str(), shown(dir, path).display());
    }
    println!("{}", summary(&report));

    if outcome == Outcome::Kept {
        let again = if dir == Path::new(".") { String::new() } else { format!(" -o {}", dir.display()) };
        eprintln!(
            "error: {} differs from what `rivet init lua` writes (edited by hand?), so it was left as it is\n\
             hint: run `rivet init lua{again} --force` to replace it, or keep yours and add \"{STUBS_DIR}\" to its \
             workspace.library",
            shown(dir, Path::new(LUARC)).display(),
        );
        return Ok(exit::FAILURE);
    }
    Ok(exit::OK)
}

/// The `.luarc.json` we write. lua-language-server and EmmyLua both accept this nested
/// form and the version spelled `Lua 5.4`. It declares no `diagnostics.globals`: the stubs
/// declare every global a pipeline can use.
fn luarc_json() -> String {
    let config = serde_json::json!({
        "$schema": "https://raw.githubusercontent.com/LuaLS/vscode-lua/master/setting/schema.json",
        "runtime": { "version": "Lua 5.4" },
        "workspace": { "library": [STUBS_DIR] },
    });
    // Keys come out sorted (serde_json's map is a BTreeMap), so the text is stable from
    // one version to the next and a byte comparison tells whether the user changed it.
    let mut text = format!("{config:#}");
    text.push('\n');
    text
}

/// Writes `contents` to `path` unless it already holds exactly that.
fn write_if_changed(path: &Path, contents: &[u8]) -> anyhow::Result<Outcome> {
    let outcome = match read_if_exists(path)? {
        Some(existing) if existing == contents => return Ok(Outcome::Unchanged),
        Some(_) => Outcome::Updated,
        None => Outcome::Created,
    };
    fs::write(path, contents).with_context(|| format!("failed to write {}", path.display()))?;
    Ok(outcome)
}

fn read_if_exists(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("failed to read {}", path.display())),
    }
}

/// The `.lua` files in the stubs folder that this `rivet` does not ship, sorted. Other
/// files are left alone, in case a user keeps something there.
fn stale_stubs(stubs_dir: &Path) -> anyhow::Result<Vec<String>> {
    let entries = fs::read_dir(stubs_dir).with_context(|| format!("failed to list {}", stubs_dir.display()))?;
    let mut stale = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list {}", stubs_dir.display()))?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        let is_file = entry.file_type().is_ok_and(|kind| kind.is_file());
        if is_file && name.ends_with(".lua") && !STUBS.iter().any(|(stub, _)| *stub == name) {
            stale.push(name);
        }
    }
    stale.sort();
    Ok(stale)
}

/// `path` (relative to the project) as the user will recognise it: bare when the project
/// is the current directory.
fn shown(dir: &Path, path: &Path) -> PathBuf {
    if dir == Path::new(".") { path.to_owned() } else { dir.join(path) }
}

fn summary(report: &[(PathBuf, Outcome)]) -> String {
    let count = |wanted: Outcome| report.iter().filter(|(_, outcome)| *outcome == wanted).count();
    let changed = count(Outcome::Created) + count(Outcome::Updated) + count(Outcome::Removed);
    if changed == 0 && count(Outcome::Kept) == 0 {
        return "nothing to do: everything was already up to date".to_owned();
    }
    let parts: Vec<String> = [Outcome::Created, Outcome::Updated, Outcome::Removed, Outcome::Unchanged, Outcome::Kept]
        .into_iter()
        .filter(|outcome| count(*outcome) > 0)
        .map(|outcome| format!("{} {}", count(outcome), outcome.as_str()))
        .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails when `lua-stubs/` holds a file that `STUBS` does not embed, or the reverse.
    #[test]
    fn every_stub_is_embedded() {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lua-stubs");
        let mut on_disk: Vec<String> = fs::read_dir(&source)
            .expect("lua-stubs/ is readable")
            .map(|entry| entry.expect("lua-stubs/ is readable").file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = STUBS.iter().map(|(name, _)| (*name).to_owned()).collect();
        assert_eq!(on_disk, embedded, "embed every file of lua-stubs/ in STUBS (cli/src/commands/init.rs), sorted");
    }

    #[test]
    fn luarc_names_the_stubs_and_lua_5_4() {
        let config: serde_json::Value = serde_json::from_str(&luarc_json()).expect("valid JSON");
        assert_eq!(config["runtime"]["version"], "Lua 5.4");
        assert_eq!(config["workspace"]["library"], serde_json::json!([STUBS_DIR]));
        assert!(luarc_json().ends_with("}\n"));
    }

    #[test]
    fn summary_counts_changes() {
        let report = |outcomes: &[Outcome]| -> Vec<(PathBuf, Outcome)> {
            outcomes.iter().map(|outcome| (PathBuf::from("f"), *outcome)).collect()
        };
        use Outcome::*;
        assert_eq!(summary(&report(&[Unchanged, Unchanged])), "nothing to do: everything was already up to date");
        assert_eq!(summary(&report(&[Created, Created, Unchanged])), "2 created, 1 unchanged");
        assert_eq!(summary(&report(&[Updated, Removed, Kept])), "1 updated, 1 removed, 1 kept");
        assert_eq!(summary(&report(&[Unchanged, Kept])), "1 unchanged, 1 kept");
    }
}
