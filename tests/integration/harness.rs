//! A small builder around the real binary: a temp run directory, files,
//! explicit mtimes, and runs that report exit code, stdout, stderr and which
//! tasks started.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

pub struct Project {
    pub dir: tempfile::TempDir,
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Names of the tasks that started, in order.
    pub fn started(&self) -> Vec<String> {
        self.stderr
            .lines()
            .filter_map(|l| l.strip_prefix("start  "))
            .map(str::to_string)
            .collect()
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success\n{self:#?}");
        self
    }

    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "expected exit {code}\n{self:#?}");
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n{}",
            self.stdout
        );
        self
    }

    #[track_caller]
    pub fn ran(&self, expected: &[&str]) -> &Self {
        let mut got = self.started();
        got.sort();
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "tasks that ran\n{}", self.stderr);
        self
    }
}

/// Lines of `status` that do not depend on the moment it runs (the
/// `progress` line says how long ago, in seconds).
pub fn timeless(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.starts_with("progress"))
        .collect()
}

/// Erases the `spawned` lines of `p`'s in-flight journal, as a crash
/// between a command's spawn and its journal line leaves it.
#[track_caller]
pub fn forget_spawned(p: &Project) {
    let kept: String = p
        .read(".planexe/inflight")
        .lines()
        .filter(|l| !l.starts_with("{\"spawned\""))
        .map(|l| format!("{l}\n"))
        .collect();
    p.write(".planexe/inflight", &kept);
}

/// Whether process `pid` has ended: gone, or a zombie no one reaped yet.
pub fn ended(pid: impl std::fmt::Display) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty()
        || stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
}

/// `command` run by `program` with `args` before it: its own program and
/// arguments follow them, with its environment and folder.
pub fn wrapped<A: AsRef<std::ffi::OsStr>>(
    program: impl AsRef<std::ffi::OsStr>,
    args: impl IntoIterator<Item = A>,
    command: &Command,
) -> Command {
    let mut wrapper = Command::new(program);
    wrapper
        .args(args)
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapper.env(key, value),
            None => wrapper.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapper.current_dir(dir);
    }
    wrapper
}

/// Waits (bounded) until `cond` holds; the bound is generous, not a timing
/// assertion.
#[track_caller]
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The planexe under test. Every test starts it through here, after the
/// suite's own signal dispositions are set once ([`default_signals`]).
pub fn bin() -> &'static str {
    default_signals();
    env!("CARGO_BIN_EXE_planexe")
}

/// Puts the signals that stop a build back to their default in this
/// process, once, so that every planexe (and make) a test starts inherits
/// them so. A suite started under `nohup` inherits SIGHUP ignored (and one
/// started in the background by a shell that is not interactive, SIGINT
/// and SIGQUIT); an ignored signal stays ignored across `exec`, and
/// planexe keeps an ignored hangup ignored, as make does: the tests of
/// hangups would fail. The one test of an ignored hangup ignores it in its
/// own child.
fn default_signals() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for signal in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM, libc::SIGQUIT] {
            // SAFETY: setting a disposition to the default installs no
            // handler; nothing else in the test process handles these.
            unsafe {
                libc::signal(signal, libc::SIG_DFL);
            }
        }
    });
}

impl Project {
    pub fn new(pipeline: &str) -> Project {
        let project = Project {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        project.write("pipeline.toml", pipeline);
        project
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (creating folders) with a fixed, old mtime, so a later
    /// write with `write_at` is a different stamp without sleeping.
    pub fn write(&self, rel: &str, content: &str) -> &Self {
        self.write_at(rel, content, 1_000_000)
    }

    pub fn write_at(&self, rel: &str, content: &str, mtime_secs: u64) -> &Self {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        self.set_mtime(rel, mtime_secs);
        self
    }

    pub fn set_mtime(&self, rel: &str, secs: u64) {
        let file = std::fs::File::options()
            .write(true)
            .open(self.path(rel))
            .unwrap();
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
            .unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path(rel)).unwrap();
    }

    /// The lines of a JSON-lines file (`.planexe/usage.jsonl`, ...), each
    /// parsed; none when the file does not exist.
    #[track_caller]
    pub fn jsonl(&self, rel: &str) -> Vec<serde_json::Value> {
        if !self.exists(rel) {
            return Vec::new();
        }
        self.read(rel)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    pub fn status_json(&self, task: &str) -> serde_json::Value {
        serde_json::from_str(&self.read(&format!(".planexe/tasks/{task}.status"))).unwrap()
    }

    /// `planexe ARGS` started in the background, its output thrown away.
    #[track_caller]
    pub fn spawn_quiet(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run planexe")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bin());
        command
            .args(args)
            .current_dir(self.root())
            .env_remove("PLANEXE_PIPELINE")
            .env_remove("PLANEXE_MODEL")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_WORKSPACE")
            // A suite run from a recipe of make must not make every build
            // a dry run, nor share make's job slots.
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("CARGO_MAKEFLAGS")
            // Retries without real waiting (Retry-After is still honoured).
            .env("PLANEXE_RETRY_BASE_MS", "1")
            .env("PLANEXE_RETRY_CAP_MS", "5");
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let output = self
            .command(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run planexe");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn build(&self) -> Run {
        self.run(&["build"])
    }

    /// [`Project::run`], killed (and the test failed) if it has not ended
    /// within 30 seconds: for what used to hang.
    #[track_caller]
    pub fn run_bounded(&self, args: &[&str]) -> Run {
        let mut child = self
            .command(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run planexe");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("planexe {args:?} hung");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Makes a FIFO at `rel` (and its folder).
    pub fn mkfifo(&self, rel: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo only creates the file.
        assert_eq!(
            unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
            0,
            "mkfifo {rel}"
        );
    }
}

/// The demo pipeline from the issue: outline from plan.txt, report from
/// outline and notes.
pub const DEMO: &str = r#"
[pipeline]
name = "demo"
jobs = 4
timeout = "10m"

[tasks.outline]
inputs = ["plan.txt"]
outputs = ["outline.md"]
command = "tr a-z A-Z < plan.txt > outline.md"
timeout = "30s"

[tasks.report]
inputs = ["outline.md", "notes/*.md"]
outputs = ["report.md"]
after = ["outline"]
command = "cat {inputs} > {outputs}"
"#;

/// A model table no task of [`DEMO`] asks: what a model override
/// (`--model other`, `$PLANEXE_MODEL`) can name in it.
pub const OTHER_MODEL: &str =
    "[models.other]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n";

pub fn demo() -> Project {
    let p = Project::new(DEMO);
    p.write("plan.txt", "build a house\n");
    p.write("notes/a.md", "note a\n");
    p.write("notes/b.md", "note b\n");
    p
}

/// A build in the background, stopped (SIGTERM: it stops its tasks) if the
/// test panics before it ends.
pub struct Background(pub Option<std::process::Child>);

impl Background {
    pub fn wait(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            // SAFETY: kill(2) on the build this test started.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let _ = child.wait();
        }
    }
}

/// A port on 127.0.0.1 that refuses every connection for as long as this
/// is held: a socket bound to it that does not listen. (A port found free
/// and let go could be taken meanwhile by another test's server, whose
/// answers would then be this test's.)
pub struct RefusedPort {
    /// The socket, closed (the port freed) when this is dropped.
    fd: std::os::fd::OwnedFd,
    pub port: u16,
}

impl RefusedPort {
    pub fn new() -> RefusedPort {
        RefusedPort::at(0)
    }

    /// The port `port` (0: any free one), held refusing.
    pub fn at(port: u16) -> RefusedPort {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket calls on a descriptor this function owns,
        // with a `sockaddr_in` that outlives them and its true size.
        unsafe {
            let raw = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
            let fd = std::os::fd::OwnedFd::from_raw_fd(raw);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
            addr.sin_port = port.to_be();
            // A port a server just let go of may still be held by its
            // closed connections (TIME_WAIT).
            let on: libc::c_int = 1;
            let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            let reuse = &on as *const libc::c_int as *const libc::c_void;
            libc::setsockopt(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, reuse, size);
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let at = &mut addr as *mut libc::sockaddr_in as *mut libc::sockaddr;
            assert_eq!(
                libc::bind(raw, at, len),
                0,
                "bind: {}",
                std::io::Error::last_os_error()
            );
            assert_eq!(libc::getsockname(raw, at, &mut len), 0);
            RefusedPort {
                port: u16::from_be(addr.sin_port),
                fd,
            }
        }
    }

    /// The port, listening from now on (a server that was down, back up).
    pub fn listen(self) -> std::net::TcpListener {
        use std::os::fd::AsRawFd;
        // SAFETY: `listen` on the bound socket this owns.
        let r = unsafe { libc::listen(self.fd.as_raw_fd(), 128) };
        assert_eq!(r, 0, "listen: {}", std::io::Error::last_os_error());
        std::net::TcpListener::from(self.fd)
    }
}

/// A `foreach` fan-out whose instances read `notes/ITEM.md` and write
/// `out/ITEM.md`, over `topics.json`: a source, unless [`TOPICS`] (a task
/// that makes it from the plan) is put beside it. What a new run's seed
/// files are judged against, by both doors (`planexe new --input`,
/// `run_create` `files`).
pub const PER_TOPIC: &str = r#"
[tasks.per]
foreach = { file = "topics.json" }
inputs = ["plan.txt", "notes/{{ item }}.md"]
outputs = ["out/{{ item }}.md"]
command = "cat notes/{{ item }}.md > out/{{ item }}.md"
"#;

/// The task that makes [`PER_TOPIC`]'s list.
pub const TOPICS: &str = r#"
[tasks.topics]
inputs = ["plan.txt"]
outputs = ["topics.json"]
command = "printf '[\"a\"]' > topics.json"
"#;
