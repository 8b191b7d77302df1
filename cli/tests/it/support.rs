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

/// Builds the local test images once per test process when missing or stale (the script
/// is quick when they are up to date; the lock keeps parallel test processes apart).
pub fn ensure_test_image() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let script = repo_root().join("deploy/test-image/build.sh");
        let status = std::process::Command::new("flock")
            .arg("/tmp/rivet-test-image.lock")
            .arg(&script)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run deploy/test-image/build.sh");
        assert!(status.success(), "deploy/test-image/build.sh failed");
    });
}

/// A `rivet dev` server for one test: its own HOME, data and config directories, on a free
/// loopback port; stopped with SIGTERM when dropped.
pub struct Server {
    child: std::process::Child,
    /// The URL the server printed.
    pub url: String,
    /// HOME, XDG_DATA_HOME and XDG_CONFIG_HOME live here.
    pub home: TempDir,
}

impl Server {
    /// Starts `rivet dev --listen 127.0.0.1:0` and waits for the line naming its address.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts `rivet dev --listen 127.0.0.1:0 ARGS...`.
    pub fn start_with(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    /// Starts `rivet dev --listen 127.0.0.1:0 ARGS...` with more environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        use std::io::BufRead;

        ensure_test_image();
        let home = temp_dir();
        let log = fs::File::create(home.path().join("dev.log")).expect("create dev.log");
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("rivet"))
            .args(["dev", "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(Server::env(home.path()))
            .envs(env.iter().copied())
            .env_remove("RIVET_SERVER")
            .env_remove("RIVET_TOKEN")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start rivet dev");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(url) = line.strip_prefix("rivet dev: listening on ") {
                    let _ = sender.send(url.trim().to_owned());
                }
            }
        });
        let url = match receiver.recv_timeout(std::time::Duration::from_secs(90)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let log = fs::read_to_string(home.path().join("dev.log")).unwrap_or_default();
                panic!("rivet dev did not start within 90 s; its log:\n{log}");
            }
        };
        Server { child, url, home }
    }

    /// The environment every command of this test runs with.
    fn env(home: &Path) -> Vec<(&'static str, std::ffi::OsString)> {
        vec![
            ("HOME", home.as_os_str().to_owned()),
            ("XDG_DATA_HOME", home.join("data").into_os_string()),
            ("XDG_CONFIG_HOME", home.join("config").into_os_string()),
            ("NO_COLOR", "1".into()),
        ]
    }

    /// The home directory the server and its commands run with.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `rivet` pointed at this server.
    pub fn rivet(&self) -> Command {
        let mut command = rivet();
        command.envs(Server::env(self.home.path())).env("RIVET_SERVER", &self.url).env_remove("RIVET_TOKEN");
        command
    }

    /// `rivet` pointed at this server, as a plain process (for pseudo-terminals).
    pub fn std_command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin!("rivet"));
        command.envs(Server::env(self.home.path())).env("RIVET_SERVER", &self.url).env_remove("RIVET_TOKEN");
        command
    }

    /// Runs `rivet ARGS... --output json` and parses stdout; panics on a failure.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let output = self.rivet().args(args).args(["--output", "json"]).output().expect("rivet runs");
        assert!(
            output.status.success(),
            "rivet {args:?} failed ({:?}):\n{}{}",
            output.status,
            text(&output.stdout),
            text(&output.stderr)
        );
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|err| panic!("not JSON ({err}):\n{}", text(&output.stdout)))
    }

    /// Stores `source` as a pipeline (written to a file named `name`).
    pub fn create(&self, name: &str, source: &str) -> serde_json::Value {
        let file = write(self.home.path(), name, source);
        self.json(&["pipeline", "create", file.to_str().expect("UTF-8 path")])
    }

    /// Waits until the job's state is `state`; panics after 60 s.
    pub fn wait_for_state(&self, job: &str, state: &str) -> serde_json::Value {
        let start = std::time::Instant::now();
        loop {
            let job = self.json(&["job", "show", job]);
            if job["state"] == state {
                return job;
            }
            assert!(start.elapsed() < std::time::Duration::from_secs(60), "job never became {state}: {job:#}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
