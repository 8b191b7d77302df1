//! `fs`: files in the job's workspace, and nowhere else.
//!
//! `fs.read(path)`, `fs.write(path, data)`, `fs.append(path, data)`, `fs.exists(path)`,
//! `fs.list(dir)`, `fs.mkdir(path)` (with parents), `fs.remove(path)` and
//! `fs.glob(pattern)` take paths relative to the workspace (`/workspace/...`, the path the
//! job's containers see, is accepted too).
//!
//! # The jail
//!
//! Every path is resolved by `cap-std` beneath a directory handle of the workspace, never by
//! string checks: on Linux it uses `openat2` with `RESOLVE_BENEATH` where the kernel has it,
//! else it walks the path one component at a time with `O_NOFOLLOW`. `..` that climbs out,
//! an absolute path, and a symbolic link pointing outside (`ln -s /etc x` in a container)
//! all fail, and so does a link a container swaps in while a call runs: the kernel resolves
//! each component against the handle, so there is no window between a check and the use.
//! Files are opened non-blocking and must be regular files, so a FIFO a container leaves
//! in the workspace cannot hang the job's thread.
//!
//! # Bounds and ownership
//!
//! Reads and writes are capped by `executor.fs_max_read_bytes` and
//! `executor.fs_max_write_bytes`; listings and globs return at most [`MAX_ENTRIES`] names
//! and a glob looks at most at [`MAX_WALK`] entries. What the runner creates belongs to the
//! host id that root in the job's containers maps to (see `workspace::mapped_root`), so the
//! job's processes can change or remove it like their own files.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use mlua::{Lua, Value};

use crate::config::human_bytes;
use crate::executor::context::JobContext;
use crate::executor::workspace::{CONTAINER_WORKSPACE, mapped_root};

/// Files are opened non-blocking, so a FIFO cannot hang the job's thread.
const NONBLOCK: i32 = rustix::fs::OFlags::NONBLOCK.bits() as i32;

/// The most names `fs.list` and `fs.glob` return.
pub(crate) const MAX_ENTRIES: usize = 10_000;
/// The most directory entries one `fs.glob` looks at.
pub(crate) const MAX_WALK: usize = 100_000;

/// Why an `fs` call failed; the Lua error names the function and the path too.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FsError {
    /// The path is empty or absolute outside `/workspace`.
    #[error("{0}")]
    BadPath(&'static str),
    /// The path leads outside the workspace (`..`, an absolute symbolic link...).
    #[error("the path leads outside the workspace")]
    Escape,
    /// A size limit.
    #[error("{0}")]
    Limit(String),
    /// Not what the call needs (a directory where a file is expected...).
    #[error("{0}")]
    Kind(&'static str),
    /// The system's answer.
    #[error("{}", describe(.0))]
    Io(io::Error),
}

/// An I/O error as a reason, in the words of the other reasons.
fn describe(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        io::ErrorKind::IsADirectory => "is a directory".to_owned(),
        io::ErrorKind::NotADirectory => "a part of the path is not a directory".to_owned(),
        io::ErrorKind::AlreadyExists => "already exists".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::DirectoryNotEmpty => "the directory is not empty".to_owned(),
        _ => err.to_string(),
    }
}

impl From<io::Error> for FsError {
    fn from(err: io::Error) -> Self {
        // cap-std reports every attempt to leave its directory as this PermissionDenied.
        if err.kind() == io::ErrorKind::PermissionDenied && err.to_string().contains("outside of the filesystem") {
            FsError::Escape
        } else {
            FsError::Io(err)
        }
    }
}

/// The workspace of one job, seen through a directory handle.
pub(crate) struct Jail {
    dir: Dir,
    owner: Option<u32>,
    max_read: u64,
    max_write: u64,
}

impl Jail {
    /// Opens the workspace at `path`; files the jail creates belong to `owner` when given.
    pub(crate) fn open(path: &Path, owner: Option<u32>, max_read: u64, max_write: u64) -> io::Result<Jail> {
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority())?;
        Ok(Jail { dir, owner, max_read, max_write })
    }

    /// The contents of the regular file at `path`.
    pub(crate) fn read(&self, path: &str) -> Result<Vec<u8>, FsError> {
        let path = relative(path)?;
        let mut options = OpenOptions::new();
        options.read(true).custom_flags(NONBLOCK);
        let file = self.dir.open_with(&path, &options)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(FsError::Kind(if meta.is_dir() { "is a directory" } else { "is not a regular file" }));
        }
        let too_big = |size: u64| {
            FsError::Limit(format!(
                "is {size} bytes; fs.read reads at most {} (executor.fs_max_read_bytes)",
                human_bytes(self.max_read)
            ))
        };
        if meta.len() > self.max_read {
            return Err(too_big(meta.len()));
        }
        // The file may grow while it is read: read one byte past the cap to notice.
        let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.into_std().take(self.max_read + 1).read_to_end(&mut data)?;
        if data.len() as u64 > self.max_read {
            return Err(too_big(data.len() as u64));
        }
        Ok(data)
    }

    /// Writes `data` to the file at `path`, replacing it, or appending to it.
    pub(crate) fn write(&self, path: &str, data: &[u8], append: bool) -> Result<(), FsError> {
        let path = relative(path)?;
        if data.len() as u64 > self.max_write {
            let call = if append { "fs.append" } else { "fs.write" };
            return Err(FsError::Limit(format!(
                "{} bytes given; {call} writes at most {} (executor.fs_max_write_bytes)",
                data.len(),
                human_bytes(self.max_write)
            )));
        }
        let mut options = OpenOptions::new();
        options.write(true).mode(0o666).custom_flags(NONBLOCK);
        if append {
            options.append(true);
        }
        // A file the runner creates is handed to the containers' root; one that exists keeps
        // its owner.
        let (file, created) = match self.dir.open_with(&path, options.clone().create_new(true)) {
            Ok(file) => (file, true),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => (self.dir.open_with(&path, &options)?, false),
            Err(err) => return Err(err.into()),
        };
        let mut file = file.into_std();
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(FsError::Kind(if meta.is_dir() { "is a directory" } else { "is not a regular file" }));
        }
        if created && let Some(owner) = self.owner {
            std::os::unix::fs::fchown(&file, Some(owner), Some(owner))?;
        }
        if !append {
            file.set_len(0)?;
        }
        file.write_all(data)?;
        Ok(())
    }

    /// Whether something is at `path` (following links inside the workspace).
    pub(crate) fn exists(&self, path: &str) -> Result<bool, FsError> {
        let path = relative(path)?;
        match self.dir.metadata(&path) {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// The names in the directory at `path`, sorted.
    pub(crate) fn list(&self, path: &str) -> Result<Vec<String>, FsError> {
        let path = relative(path)?;
        let mut names = Vec::new();
        for entry in self.dir.read_dir(&path)? {
            if names.len() == MAX_ENTRIES {
                return Err(FsError::Limit(format!("holds more than {MAX_ENTRIES} entries, the most fs.list returns")));
            }
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Creates the directory at `path` and its missing parents.
    pub(crate) fn mkdir(&self, path: &str) -> Result<(), FsError> {
        let path = relative(path)?;
        let mut prefix = PathBuf::new();
        for component in path.components() {
            prefix.push(component);
            if matches!(component, Component::CurDir | Component::ParentDir) {
                continue;
            }
            match self.dir.create_dir(&prefix) {
                Ok(()) => {
                    if let Some(owner) = self.owner {
                        self.chown_created(&prefix, owner)?;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    if !self.dir.metadata(&prefix)?.is_dir() {
                        return Err(FsError::Kind("a part of the path is not a directory"));
                    }
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// Hands the directory just created at `path` to `owner`, through a handle of its
    /// parent (cap-std's directory handles are `O_PATH`, which `fchown` refuses), never
    /// following a link that may have replaced it.
    fn chown_created(&self, path: &Path, owner: u32) -> Result<(), FsError> {
        let name = path.file_name().ok_or(FsError::BadPath("the path names no directory"))?;
        let id = (Some(rustix::fs::Uid::from_raw(owner)), Some(rustix::fs::Gid::from_raw(owner)));
        let flags = rustix::fs::AtFlags::SYMLINK_NOFOLLOW;
        match path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            Some(parent) => rustix::fs::chownat(&self.dir.open_dir(parent)?, name, id.0, id.1, flags),
            None => rustix::fs::chownat(&self.dir, name, id.0, id.1, flags),
        }
        .map_err(|err| FsError::Io(err.into()))
    }

    /// Removes the file, link or directory tree at `path` (a link itself, never what it
    /// points to); `false` when nothing was there.
    pub(crate) fn remove(&self, path: &str) -> Result<bool, FsError> {
        let path = relative(path)?;
        if path.components().all(|component| matches!(component, Component::CurDir)) {
            return Err(FsError::BadPath("the workspace itself cannot be removed"));
        }
        let meta = match self.dir.symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(err) => return Err(err.into()),
        };
        if meta.is_dir() {
            self.dir.remove_dir_all(&path)?
        } else {
            self.dir.remove_file(&path)?
        }
        Ok(true)
    }

    /// The paths in the workspace that match `pattern` (`*` and `?` within one path
    /// component, `**` across them), sorted. Links are listed, never followed.
    pub(crate) fn glob(&self, pattern: &str) -> Result<Vec<String>, FsError> {
        let relative_pattern = relative(pattern)?;
        let text = relative_pattern.to_string_lossy();
        if relative_pattern.components().any(|component| matches!(component, Component::ParentDir)) {
            return Err(FsError::Escape);
        }
        let matcher = glob::Pattern::new(&text).map_err(|err| FsError::Limit(format!("is not a pattern: {err}")))?;
        let options = glob::MatchOptions { require_literal_separator: true, ..glob::MatchOptions::new() };
        let (mut found, mut walked) = (Vec::new(), 0usize);
        let mut pending = vec![PathBuf::new()];
        while let Some(dir) = pending.pop() {
            let entries = if dir.as_os_str().is_empty() { self.dir.entries()? } else { self.dir.read_dir(&dir)? };
            for entry in entries {
                let entry = entry?;
                walked += 1;
                if walked > MAX_WALK {
                    return Err(FsError::Limit(format!(
                        "fs.glob looks at most at {MAX_WALK} entries of the workspace"
                    )));
                }
                let path = dir.join(entry.file_name());
                if entry.file_type()?.is_dir() {
                    pending.push(path.clone());
                }
                if matcher.matches_path_with(&path, options) {
                    if found.len() == MAX_ENTRIES {
                        return Err(FsError::Limit(format!("matches more than {MAX_ENTRIES} paths")));
                    }
                    found.push(path.to_string_lossy().into_owned());
                }
            }
        }
        found.sort();
        Ok(found)
    }
}

/// `path` as the jail takes it: relative, with `/workspace/` (the containers' view) taken
/// off. The jail itself refuses what leaves the workspace; this only gives the common
/// mistakes a clearer message.
fn relative(path: &str) -> Result<PathBuf, FsError> {
    if path.is_empty() {
        return Err(FsError::BadPath("the path is empty"));
    }
    if path.contains('\0') {
        return Err(FsError::BadPath("the path contains a NUL byte"));
    }
    if let Some(rest) = path.strip_prefix(CONTAINER_WORKSPACE)
        && (rest.is_empty() || rest.starts_with('/'))
    {
        let rest = rest.trim_start_matches('/');
        return Ok(PathBuf::from(if rest.is_empty() { "." } else { rest }));
    }
    if path.starts_with('/') {
        return Err(FsError::BadPath(
            "absolute paths are outside the workspace: use a path relative to it (or under /workspace)",
        ));
    }
    Ok(PathBuf::from(path))
}

/// One of the `fs` calls that take a path and return little.
type PathCall = fn(&Jail, &str) -> Result<Reply, FsError>;

/// What such a call returns to Lua.
enum Reply {
    Nothing,
    Flag(bool),
    Names(Vec<String>),
}

pub(super) fn install(lua: &Lua, ctx: &Arc<JobContext>) -> mlua::Result<()> {
    let config = &ctx.config;
    let jail = Jail::open(&ctx.workspace, mapped_root(config), config.fs_max_read_bytes, config.fs_max_write_bytes)
        .map_err(|err| mlua::Error::runtime(format!("cannot open the workspace {}: {err}", ctx.workspace.display())))?;
    let jail = Arc::new(jail);
    let fs = lua.create_table()?;
    let fail = |call: &str, path: &str, err: FsError| {
        mlua::Error::runtime(format!("fs.{call}: `{}`: {err}", rivet_core::text::truncate(path, 256)))
    };

    let j = jail.clone();
    fs.raw_set(
        "read",
        lua.create_function(move |lua, path: String| {
            let data = j.read(&path).map_err(|err| fail("read", &path, err))?;
            lua.create_string(data)
        })?,
    )?;
    for (name, append) in [("write", false), ("append", true)] {
        let j = jail.clone();
        fs.raw_set(
            name,
            lua.create_function(move |_, (path, data): (String, Value)| {
                let data = match &data {
                    Value::String(data) => data.as_bytes().to_vec(),
                    other => match super::text_of(other) {
                        Some(text) => text.into_bytes(),
                        None => {
                            let reason = format!("the data must be a string, got a {}", other.type_name());
                            return Err(mlua::Error::runtime(format!("fs.{name}: `{path}`: {reason}")));
                        }
                    },
                };
                j.write(&path, &data, append).map_err(|err| fail(name, &path, err))
            })?,
        )?;
    }
    // The calls that take one path; `fs.list` lists the workspace without one.
    let calls: [(&'static str, PathCall); 5] = [
        ("exists", |jail, path| jail.exists(path).map(Reply::Flag)),
        ("mkdir", |jail, path| jail.mkdir(path).map(|()| Reply::Nothing)),
        ("remove", |jail, path| jail.remove(path).map(Reply::Flag)),
        ("list", |jail, path| jail.list(path).map(Reply::Names)),
        ("glob", |jail, path| jail.glob(path).map(Reply::Names)),
    ];
    for (name, call) in calls {
        let j = jail.clone();
        fs.raw_set(
            name,
            lua.create_function(move |lua, path: Option<String>| {
                let path = path.unwrap_or_else(|| if name == "list" { ".".to_owned() } else { String::new() });
                match call(&j, &path).map_err(|err| fail(name, &path, err))? {
                    Reply::Nothing => Ok(Value::Nil),
                    Reply::Flag(flag) => Ok(Value::Boolean(flag)),
                    Reply::Names(names) => lua.create_sequence_from(names).map(Value::Table),
                }
            })?,
        )?;
    }
    lua.globals().raw_set("fs", fs)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    fn jail() -> (tempfile::TempDir, Jail) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir(dir.path().join("ws")).expect("ws");
        let jail = Jail::open(&dir.path().join("ws"), None, 1024, 512).expect("open");
        (dir, jail)
    }

    fn refused(result: Result<impl std::fmt::Debug, FsError>, reason: &str) {
        match result {
            Err(err) => assert!(err.to_string().contains(reason), "{err} lacks {reason:?}"),
            Ok(value) => panic!("expected a refusal ({reason}), got {value:?}"),
        }
    }

    #[test]
    fn normal_use_works() {
        let (_tmp, jail) = jail();
        jail.mkdir("a/b/c").expect("mkdir");
        jail.mkdir("a/b").expect("mkdir of an existing directory");
        jail.write("a/b/c/file.txt", b"one\n", false).expect("write");
        jail.write("a/b/c/file.txt", b"two\n", true).expect("append");
        assert_eq!(jail.read("a/b/c/file.txt").expect("read"), b"one\ntwo\n");
        assert_eq!(jail.read("/workspace/a/b/c/file.txt").expect("read"), b"one\ntwo\n");
        jail.write("a/b/c/file.txt", b"short", false).expect("overwrite");
        assert_eq!(jail.read("a/./b/../b/c/file.txt").expect("read"), b"short");
        jail.write("top.txt", b"x", false).expect("write");
        assert!(jail.exists("top.txt").expect("exists"));
        assert!(!jail.exists("missing").expect("exists"));
        assert_eq!(jail.list(".").expect("list"), ["a", "top.txt"]);
        assert_eq!(jail.glob("**/*.txt").expect("glob"), ["a/b/c/file.txt", "top.txt"]);
        assert_eq!(jail.glob("*.txt").expect("glob"), ["top.txt"]);
        assert!(jail.remove("a").expect("remove"));
        assert!(!jail.remove("a").expect("remove again"));
        assert_eq!(jail.list("/workspace").expect("list"), ["top.txt"]);
    }

    #[test]
    fn escapes_are_refused() {
        let (tmp, jail) = jail();
        std::fs::write(tmp.path().join("outside.txt"), "secret").expect("outside");
        jail.mkdir("a").expect("mkdir");
        refused(jail.read("../outside.txt"), "leads outside the workspace");
        refused(jail.read("a/../../outside.txt"), "leads outside the workspace");
        refused(jail.write("../outside.txt", b"x", false), "leads outside the workspace");
        refused(jail.read("/etc/passwd"), "absolute paths are outside the workspace");
        refused(jail.list("/"), "absolute paths are outside the workspace");
        refused(jail.list(".."), "leads outside the workspace");
        refused(jail.glob("../*"), "leads outside the workspace");
        symlink("/etc", tmp.path().join("ws/etc")).expect("symlink");
        symlink("../outside.txt", tmp.path().join("ws/up")).expect("symlink");
        refused(jail.read("etc/passwd"), "leads outside the workspace");
        refused(jail.read("up"), "leads outside the workspace");
        refused(jail.write("etc/rivet-was-here", b"x", false), "leads outside the workspace");
        refused(jail.mkdir("etc/rivet"), "leads outside the workspace");
        refused(jail.list("etc"), "leads outside the workspace");
        refused(jail.exists("etc/passwd"), "leads outside the workspace");
        // Removing the link removes the link, not what it points to.
        assert!(jail.remove("up").expect("remove the link"));
        assert_eq!(std::fs::read_to_string(tmp.path().join("outside.txt")).expect("still there"), "secret");
        // A glob lists links without following them.
        assert_eq!(jail.glob("etc/*").expect("glob"), Vec::<String>::new());
        assert!(!Path::new("/etc/rivet-was-here").exists());
    }

    #[test]
    fn sizes_and_kinds_are_checked() {
        let (tmp, jail) = jail();
        refused(jail.write("big", &[b'x'; 513], false), "fs.write writes at most 512 bytes");
        std::fs::write(tmp.path().join("ws/large"), [b'x'; 2000]).expect("large");
        refused(jail.read("large"), "is 2000 bytes; fs.read reads at most 1 KiB");
        jail.mkdir("d").expect("mkdir");
        refused(jail.read("d"), "is a directory");
        refused(jail.write("d", b"x", false), "is a directory");
        refused(jail.remove("."), "cannot be removed");
        refused(jail.read(""), "empty");
        jail.write("f", b"x", false).expect("write");
        refused(jail.mkdir("f/sub"), "not a directory");
        // A FIFO does not block a read.
        let fifo = tmp.path().join("ws/fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
        refused(jail.read("fifo"), "is not a regular file");
    }

    /// A symbolic link swapped in while calls run (as a container could) never lets a call
    /// reach outside: every call either sees the workspace's own directory or fails.
    #[test]
    fn a_link_swapped_in_during_calls_cannot_escape() {
        let (tmp, jail) = jail();
        let ws = tmp.path().join("ws");
        std::fs::create_dir(ws.join("real")).expect("real");
        std::fs::write(ws.join("real/passwd"), "inside").expect("inside");
        symlink("/etc", ws.join("evil")).expect("evil");
        std::fs::rename(ws.join("real"), ws.join("dir")).expect("dir");
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (ws, stop) = (ws.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Atomically exchange the directory and the link (renameat2 would be
                    // tighter; two renames leave moments with either or neither).
                    let _ = std::fs::rename(ws.join("dir"), ws.join("real"));
                    let _ = std::fs::rename(ws.join("evil"), ws.join("dir"));
                    let _ = std::fs::rename(ws.join("dir"), ws.join("evil"));
                    let _ = std::fs::rename(ws.join("real"), ws.join("dir"));
                    swaps += 1;
                }
                swaps
            })
        };
        // Calls go on until both outcomes were seen, so the race really happened.
        let (mut inside, mut refusals, mut calls) = (0u64, 0u64, 0u64);
        while (inside == 0 || refusals == 0 || calls < 10_000) && calls < 10_000_000 {
            calls += 1;
            match jail.read("dir/passwd") {
                Ok(data) => {
                    assert_eq!(data, b"inside", "a read reached outside the workspace");
                    inside += 1;
                }
                Err(_) => refusals += 1,
            }
            let _ = jail.write("dir/rivet-swap-test", b"x", false);
        }
        stop.store(true, Ordering::Relaxed);
        let swaps = swapper.join().expect("the swapper");
        assert!(inside > 0 && refusals > 0, "swaps {swaps}, inside {inside}, refusals {refusals}");
        assert!(!Path::new("/etc/rivet-swap-test").exists());
    }
}
