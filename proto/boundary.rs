//! Tidy tests for the API boundary that ARCHITECTURE.md states: prost types stop at the
//! edges (`api`, `convert`, the runner's `agent/connection.rs`), and `rivet-core` depends on
//! neither tonic, prost nor sea-orm; and the shipped binaries are built without the features
//! only tests may turn on (`testing`, `fault-injection`). They read the sources, `Cargo.lock`
//! and `cargo tree`, so a change that crosses the boundary fails here, naming the file and
//! line (or the feature).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where wire types must not appear, relative to the workspace root, and whether tonic
/// must not appear either (the orchestrator's domain knows no transport; the runner's
/// session ends on a gRPC status, which `connection::is_fatal` reads).
const DOMAIN_DIRS: &[(&str, bool)] = &[
    ("orchestrator/src/domain", true),
    ("orchestrator/src/storage", true),
    ("orchestrator/src/coord", true),
    ("runner-agent/src/agent", false),
    ("runner-agent/src/executor", false),
    ("runner-agent/src/runtime", false),
    ("runner-agent/src/job.rs", false),
];

/// The edge modules inside those directories: they convert, so they name wire types.
const EDGES: &[&str] = &["runner-agent/src/agent/connection.rs"];

/// What names a wire type: the generated crate, prost itself, and the runner stream's
/// envelopes.
const WIRE_NAMES: &[&str] =
    &["rivet_proto", "prost", "pb::", "ConnectRequest", "ConnectResponse", "connect_request", "connect_response"];

/// Crates that `rivet-core` must not depend on, directly or through another crate.
const NOT_IN_CORE: &[&str] = &["tonic", "prost", "sea-orm", "rivet-proto"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(path: &Path, files: &mut Vec<PathBuf>) {
    if path.is_file() {
        if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path.to_owned());
        }
        return;
    }
    let entries = std::fs::read_dir(path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
        rust_files(&entry.path(), files);
    }
}

/// `FILE:LINE: text` for every line of `text` (comments aside) that names a wire type, or
/// tonic when `no_tonic`.
fn wire_names(file: &str, text: &str, no_tonic: bool) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .filter(|(_, line)| WIRE_NAMES.iter().any(|name| line.contains(name)) || (no_tonic && line.contains("tonic")))
        .map(|(number, line)| format!("{file}:{}: {}", number + 1, line.trim()))
        .collect()
}

#[test]
fn wire_types_stay_at_the_edges() {
    let root = root();
    let mut files = Vec::new();
    for (dir, no_tonic) in DOMAIN_DIRS {
        let mut found = Vec::new();
        rust_files(&root.join(dir), &mut found);
        files.extend(found.into_iter().map(|file| (file, *no_tonic)));
    }
    assert!(files.len() > 20, "only {} files found under {DOMAIN_DIRS:?}", files.len());
    let mut crossings = Vec::new();
    for (file, no_tonic) in files {
        let relative = file.strip_prefix(&root).unwrap_or(&file).to_string_lossy().into_owned();
        if EDGES.contains(&relative.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_else(|err| panic!("cannot read {relative}: {err}"));
        crossings.extend(wire_names(&relative, &text, no_tonic));
    }
    assert!(
        crossings.is_empty(),
        "wire (prost) or transport types outside the edge modules; convert in `api`/`convert`/\
         `agent/connection.rs` and use rivet_core's domain types instead:\n{}",
        crossings.join("\n")
    );
}

#[test]
fn the_check_finds_a_wire_type_and_names_its_line() {
    let text = "use rivet_core::Assignment;\n// rivet_proto in a comment is fine\nuse rivet_proto::v1 as pb;\n";
    assert_eq!(wire_names("x.rs", text, false), ["x.rs:3: use rivet_proto::v1 as pb;"]);
    assert_eq!(wire_names("y.rs", "fn f() -> tonic::Status {}\n", false), Vec::<String>::new());
    assert_eq!(wire_names("y.rs", "fn f() -> tonic::Status {}\n", true), ["y.rs:1: fn f() -> tonic::Status {}"]);
}

/// Each package of `Cargo.lock` with the names of the packages it depends on. Several
/// versions of one package are merged, which can only add dependencies.
fn lock_graph(lock: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for block in lock.split("[[package]]").skip(1) {
        let mut name = None;
        let mut dependencies = BTreeSet::new();
        let mut in_dependencies = false;
        for line in block.lines().map(str::trim) {
            if let Some(value) = line.strip_prefix("name = ") {
                name = Some(value.trim_matches('"').to_owned());
            } else if line.starts_with("dependencies = [") {
                in_dependencies = true;
            } else if in_dependencies && line == "]" {
                in_dependencies = false;
            } else if in_dependencies {
                let entry = line.trim_end_matches(',').trim_matches('"');
                if let Some(dependency) = entry.split(' ').next() {
                    dependencies.insert(dependency.to_owned());
                }
            }
        }
        if let Some(name) = name {
            graph.entry(name).or_default().extend(dependencies);
        }
    }
    graph
}

#[test]
fn rivet_core_depends_on_neither_tonic_nor_prost_nor_sea_orm() {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap_or_else(|err| panic!("Cargo.lock: {err}"));
    let graph = lock_graph(&lock);
    assert!(graph.contains_key("tonic"), "Cargo.lock was not parsed: tonic is missing");
    // Every package reachable from rivet-core (a superset of `cargo tree -p rivet-core`:
    // the lock lists every dependency any feature in the workspace turns on).
    let mut reached = BTreeSet::new();
    let mut path: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = vec!["rivet-core".to_owned()];
    while let Some(package) = queue.pop() {
        if !reached.insert(package.clone()) {
            continue;
        }
        for dependency in graph.get(&package).into_iter().flatten() {
            path.entry(dependency.clone()).or_insert_with(|| package.clone());
            queue.push(dependency.clone());
        }
    }
    assert!(reached.contains("mlua"), "rivet-core's dependencies were not found: {reached:?}");
    let found: Vec<String> = NOT_IN_CORE
        .iter()
        .filter(|name| reached.contains(**name))
        .map(|name| {
            let mut chain = vec![(*name).to_owned()];
            while let Some(parent) = chain.last().and_then(|last| path.get(last)) {
                chain.push(parent.clone());
                if parent == "rivet-core" {
                    break;
                }
            }
            chain.reverse();
            chain.join(" -> ")
        })
        .collect();
    assert!(found.is_empty(), "rivet-core must stay free of the wire and the database:\n{}", found.join("\n"));
}

/// The packages that ship a binary, and the features only their tests may turn on.
const SHIPPED: &[&str] = &["rivet-orchestrator", "rivet-runner", "rivet-cli"];
const TEST_ONLY_FEATURES: &[(&str, &str)] = &[("rivet-orchestrator", "testing"), ("rivet-runner", "fault-injection")];

/// The features each workspace package is built with when `package` is built with the
/// given edge kinds, from `cargo tree`.
fn features_of(package: &str, edges: &str) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = std::process::Command::new(cargo)
        .args(["tree", "--quiet", "--package", package, "--edges", edges, "--prefix", "none", "--format", "{p}|{f}"])
        .current_dir(root())
        .output()
        .unwrap_or_else(|err| panic!("cargo tree -p {package}: {err}"));
    assert!(output.status.success(), "cargo tree -p {package}: {}", String::from_utf8_lossy(&output.stderr));
    let mut features: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some((name_version, list)) = line.split_once('|') else { continue };
        let name = name_version.split(' ').next().unwrap_or_default();
        let list = list.trim_end_matches(" (*)");
        features
            .entry(name.to_owned())
            .or_default()
            .extend(list.split(',').filter(|f| !f.is_empty()).map(str::to_owned));
    }
    features
}

#[test]
fn shipped_binaries_build_without_test_only_features() {
    for package in SHIPPED {
        let shipped = features_of(package, "normal,build");
        assert!(shipped.contains_key(*package), "cargo tree did not list {package}: {shipped:?}");
        for (owner, feature) in TEST_ONLY_FEATURES {
            let on = shipped.get(*owner).is_some_and(|features| features.contains(*feature));
            assert!(!on, "a shipped {package} is built with {owner}'s feature `{feature}`");
        }
    }
    // The check can see them: the runner's tests turn both on.
    let tests = features_of("rivet-runner", "normal,build,dev");
    for (owner, feature) in TEST_ONLY_FEATURES {
        assert!(tests.get(*owner).is_some_and(|features| features.contains(*feature)), "{owner}/{feature} not seen");
    }
}
