//! Helpers shared by the tests.

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

/// A command running the `rivet` binary built for these tests.
pub fn rivet() -> Command {
    assert_cmd::cargo::cargo_bin_cmd!("rivet")
}

/// The repository's root, where `examples/` and `lua-stubs/` live.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("cli/ has a parent").to_owned()
}

/// The `.lua` files of `dir`, sorted by name.
pub fn lua_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "lua"))
        .collect();
    files.sort();
    files
}

/// A fresh temporary directory, removed when dropped.
pub fn temp_dir() -> TempDir {
    tempfile::tempdir().expect("can create a temporary directory")
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, contents).unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
    path
}

/// Reads `path` as text.
pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// The text a command wrote to stdout or stderr.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_owned()).expect("rivet writes UTF-8")
}
