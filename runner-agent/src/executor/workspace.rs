//! The job's workspace: a directory on the host, `<root>/<job id>-<attempt>`, mounted at
//! `/workspace` in every container of the job; and the jail that keeps a process's working
//! directory inside it.

use crate::config::ExecutorConfig;
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use rivet_core::Assignment;

use super::error::Error;

/// Where the workspace is mounted in containers.
pub(crate) const CONTAINER_WORKSPACE: &str = "/workspace";

/// The workspace directory of `assignment` under `root`.
pub(crate) fn path(root: &Path, assignment: &Assignment) -> PathBuf {
    root.join(format!("{}-{}", assignment.job_id, assignment.attempt))
}

/// Whether `name` is the name of a workspace directory (`<uuid>-<attempt>`).
pub(crate) fn is_workspace_name(name: &str) -> bool {
    match name.rsplit_once('-') {
        Some((id, attempt)) => uuid::Uuid::parse_str(id).is_ok() && attempt.parse::<u32>().is_ok(),
        None => false,
    }
}

/// Creates an empty workspace at `dir`, replacing what an earlier run of the same attempt
/// left there.
///
/// With a user namespace (`owner` is the host id that root in the job's containers maps
/// to), the workspace belongs to that unprivileged id and is closed to everyone else
/// (`0770`). Without one, it is writable by every user, because an image may run its
/// processes as any user. Either way, a workspace root that the runner creates is closed
/// to other users of the host (`0700`): containers reach their workspace through the
/// mount, never through the host path.
pub(crate) fn create(dir: &Path, owner: Option<u32>) -> Result<(), Error> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Workspace { path, source }
    };
    if let Some(root) = dir.parent()
        && !root.exists()
    {
        std::fs::create_dir_all(root).map_err(io(root))?;
        std::fs::set_permissions(root, Permissions::from_mode(0o700)).map_err(io(root))?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::create_dir(dir).map_err(io(dir))?;
    match owner {
        Some(id) => {
            std::os::unix::fs::chown(dir, Some(id), Some(id)).map_err(io(dir))?;
            std::fs::set_permissions(dir, Permissions::from_mode(0o770)).map_err(io(dir))
        }
        None => std::fs::set_permissions(dir, Permissions::from_mode(0o777)).map_err(io(dir)),
    }
}

/// The host id that root in the job's containers maps to: the configured base when the
/// runner runs as root (a rootless Podman maps ids through `/etc/subuid` itself).
pub(crate) fn mapped_root(config: &ExecutorConfig) -> Option<u32> {
    config.container_uid_base.filter(|_| runs_as_root())
}

/// Whether this process runs as root, read once: it is asked for every container.
fn runs_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOT.get_or_init(|| std::fs::metadata("/proc/self").is_ok_and(|process| process.uid() == 0))
}

/// Removes a workspace.
pub(crate) fn remove(dir: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::Workspace { path: dir.to_owned(), source: err })
        }
        _ => Ok(()),
    }
}

/// Resolves `process.run`'s `cwd` to a directory inside the container's workspace.
///
/// A relative `cwd` is taken from `/workspace`; an absolute one must lie under it. `..` may
/// not climb out of it. The directory must exist in the host's copy of the workspace (the
/// check does not follow symbolic links: a link is resolved inside the container, where it
/// cannot reach the host).
pub(crate) fn resolve_cwd(workspace: &Path, cwd: Option<&str>) -> Result<String, String> {
    let Some(cwd) = cwd else {
        return Ok(CONTAINER_WORKSPACE.to_owned());
    };
    let relative = if cwd.starts_with('/') {
        match cwd.strip_prefix(CONTAINER_WORKSPACE) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.trim_start_matches('/'),
            _ => return Err(format!("cwd `{cwd}` is outside the workspace: use a path relative to /workspace")),
        }
    } else {
        cwd
    };
    let mut parts: Vec<&str> = Vec::new();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str().unwrap_or_default()),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(format!("cwd `{cwd}` leaves the workspace"));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("cwd `{cwd}` is outside the workspace"));
            }
        }
    }
    let mut host = workspace.to_owned();
    for part in &parts {
        host.push(part);
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => break,
            Ok(meta) if meta.is_dir() => {}
            _ => return Err(format!("cwd `{cwd}` is not a directory in the workspace")),
        }
    }
    let mut resolved = CONTAINER_WORKSPACE.to_owned();
    for part in parts {
        resolved.push('/');
        resolved.push_str(part);
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cwd: Option<&str>, expect: Result<&str, &str>) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir_all(dir.path().join("a/b")).expect("a/b");
        let got = resolve_cwd(dir.path(), cwd);
        match expect {
            Ok(path) => assert_eq!(got, Ok(path.to_owned()), "{cwd:?}"),
            Err(part) => {
                let err = got.expect_err("an error");
                assert!(err.contains(part), "{cwd:?}: {err}");
            }
        }
    }

    #[test]
    fn cwd_stays_in_the_workspace() {
        check(None, Ok("/workspace"));
        check(Some("."), Ok("/workspace"));
        check(Some("a/b"), Ok("/workspace/a/b"));
        check(Some("a/./b/../b"), Ok("/workspace/a/b"));
        check(Some("/workspace"), Ok("/workspace"));
        check(Some("/workspace/a/"), Ok("/workspace/a"));
        check(Some("../etc"), Err("leaves the workspace"));
        check(Some("a/../../x"), Err("leaves the workspace"));
        check(Some("/etc"), Err("outside the workspace"));
        check(Some("/workspace2"), Err("outside the workspace"));
        check(Some("/workspace/../etc"), Err("leaves the workspace"));
        check(Some("missing"), Err("not a directory"));
    }

    #[test]
    fn recognises_workspace_names() {
        assert!(is_workspace_name("0191e5c4-7d3f-7c2e-9a55-0a1b2c3d4e5f-1"));
        assert!(!is_workspace_name("lost+found"));
        assert!(!is_workspace_name("notes-1"));
    }
}
