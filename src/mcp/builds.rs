//! Builds the server starts, and any build running in a run: starting one,
//! knowing whether one runs, stopping it, waiting for it to end.
//!
//! A build is the same `planexe build -C RUN` a person would run, started
//! from the server's own binary as a process of its own: in a new session
//! (`setsid`, so neither a Ctrl-C in the client's terminal nor the client
//! killing the server's process group reaches it), stdin from /dev/null,
//! stdout and stderr to `.planexe/build.log`. It outlives the server. A
//! thread per build waits for it, so no zombie is left behind.
//!
//! Whether a build runs in a run is decided as everywhere else, by the run
//! record and the run directory's lock ([`RunRecord::running_build`]: a
//! pid the record names counts only while that process holds the lock, so
//! a crashed build's pid given to another process is no build), and before
//! that record names it, by the server's own knowledge of the child it
//! started. The lock keeps two builds apart, as for any two commands:
//! starting one first checks that nothing holds it. Stopping sends
//! SIGTERM, which a build takes as it takes a Ctrl-C (`exec::interrupt`):
//! it stops its tasks, records them and the run as `stopped`, and exits
//! 130. Not SIGINT, which a build a script started in the background
//! ignores, as such jobs do. A pid read from the run
//! record is signalled only while that process holds the run's lock, so a
//! recycled pid is never signalled.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::exec::Env;
use crate::store::lock::is_busy;
use crate::store::run_record::{BuildOutcome, RunRecord};
use crate::store::{files, RunDir};

/// The longest `wait`, in seconds: below the 60 s most clients allow a
/// request.
pub const WAIT_MAX_S: u64 = 50;

/// How long `build` waits for the build it started to record itself in the
/// run record (or to end) before it answers.
pub const START_WAIT: Duration = Duration::from_secs(5);

/// How long `stop` waits for the build to end after signalling it.
pub const STOP_WAIT: Duration = Duration::from_secs(20);

/// How often waits look again.
const POLL: Duration = Duration::from_millis(50);

/// The variables a build started by the server does not inherit: make's
/// jobserver, whose pipes a detached build does not have.
const NOT_INHERITED: [&str; 3] = ["MAKEFLAGS", "MFLAGS", "CARGO_MAKEFLAGS"];

/// A build the server started.
struct Child {
    pid: u32,
    /// Its exit status once it ended (a signal `N` as 128 + N).
    exit: Mutex<Option<i32>>,
}

impl Child {
    fn exit(&self) -> Option<i32> {
        *lock(&self.exit)
    }
}

/// What a build to start is asked to do.
#[derive(Debug, Default)]
pub struct Request {
    /// The pipeline file, given with `-f`: the server's choice for the
    /// run (`super::pipelines::of_run`), so that the build's own rules
    /// (a `pipeline.toml` beside the plan) never pick one.
    pub pipeline: PathBuf,
    pub targets: Vec<String>,
    pub model: Option<String>,
    pub force: bool,
}

/// How a build stood when `build` answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Started {
    /// It has not yet recorded itself in the run record.
    Starting,
    /// It runs, and the run record says so.
    Running,
    /// It ended already: its run record outcome and exit status.
    Ended(&'static str, i32),
}

/// The builds the server started, by run directory (canonical).
#[derive(Default)]
pub struct Builds {
    children: Mutex<HashMap<PathBuf, Arc<Child>>>,
    /// Held while a build starts, so two `build` calls for one run cannot
    /// both pass the check.
    starting: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Builds {
    /// The server's own build in `run_dir`, while it runs.
    fn ours(&self, run_dir: &RunDir) -> Option<Arc<Child>> {
        lock(&self.children)
            .get(run_dir.root())
            .filter(|c| c.exit().is_none())
            .cloned()
    }

    /// The pid of the build running in `run_dir`: the server's own, or the
    /// one the run record names (started by anyone).
    pub fn running(&self, run_dir: &RunDir) -> Option<u32> {
        self.ours(run_dir).map(|c| c.pid).or_else(|| {
            RunRecord::load(run_dir)
                .as_ref()
                .and_then(|r| r.running_build(run_dir))
                .map(|b| b.pid)
        })
    }

    /// Starts a build in `run_dir` (named `name` in messages) with the
    /// binary `exe` and the environment `env`; answers once it recorded
    /// itself, ended, or [`START_WAIT`] passed. Refuses while a build or
    /// another command works there.
    pub fn start(
        &self,
        exe: &Path,
        env: &Env,
        run_dir: &RunDir,
        name: &str,
        request: &Request,
    ) -> Result<(u32, Started)> {
        let starting = lock(&self.starting);
        if let Some(pid) = self.running(run_dir) {
            return Err(Error::usage(format!(
                "a build (pid {pid}) is already running in run `{name}`"
            ))
            .hint("wait for it with wait, or stop it with stop; status works meanwhile"));
        }
        // A server starting a build holds the log until its build has ended
        // (the build inherits it), from before it looks at the run's lock:
        // the log of a build is never rewritten by one another server
        // started a moment later, which the run's lock would then refuse,
        // and no server's look at the run's lock keeps another's build from
        // taking it.
        let log = files::open_update(&run_dir.build_log_path())?;
        if let Err(std::fs::TryLockError::WouldBlock) = log.try_lock() {
            return Err(Error::usage(format!(
                "run `{name}` is busy: a build another planexe mcp started there has not ended"
            ))
            .hint("wait for it to end (the wait tool), then call the build tool again"));
        }
        // Whatever else works there (a clean, a build from a terminal that
        // has not recorded itself yet) holds the lock.
        match run_dir.lock("mcp") {
            Ok(held) => drop(held),
            Err(e) if !is_busy(&e) => return Err(e),
            Err(e) => {
                return Err(Error::usage(format!("run `{name}` is busy: {e}"))
                    .hint("wait for it to end (the wait tool), then call the build tool again"))
            }
        }
        log.set_len(0)
            .map_err(|e| Error::io_at(&run_dir.build_log_path(), e))?;
        let err = log
            .try_clone()
            .map_err(|e| Error::io_at(&run_dir.build_log_path(), e))?;
        let mut command = Command::new(exe);
        command
            .arg("build")
            .arg("--color=never")
            // What it says in its log, which clients read, in the tools'
            // terms (super::advice).
            .arg("--advice=mcp")
            // The lock was free a moment ago; a command that took it since
            // refuses this build (in its log) rather than leave it waiting
            // unseen: the wait tool is how a client waits.
            .arg("--no-wait")
            .arg("-C")
            .arg(run_dir.root())
            .arg("-f")
            .arg(&request.pipeline);
        if let Some(model) = &request.model {
            command.arg(format!("--model={model}"));
        }
        if request.force {
            command.arg("-B");
        }
        // Targets are data, never options.
        command.arg("--").args(&request.targets);
        command
            .current_dir(run_dir.root())
            .env_clear()
            .envs(
                env.vars()
                    .iter()
                    .filter(|(k, _)| !NOT_INHERITED.iter().any(|n| k.as_os_str() == *n))
                    .map(|(k, v)| (k, v)),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        // SAFETY: setsid is async-signal-safe and touches no memory of the
        // parent; it makes the child the leader of a new session.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut spawned = command.spawn().map_err(|e| {
            // The targets, bounded (`super::limits`), fit a command line;
            // should they not, the binary is not what to fix.
            if e.raw_os_error() == Some(libc::E2BIG) {
                return Error::usage(format!(
                    "cannot start the build: its targets ({}) are too long for one command line ({e})",
                    request.targets.len()
                ))
                .hint("name fewer targets, or none to build everything");
            }
            Error::usage(format!("cannot start {}: {e}", exe.display()))
                .hint("the server runs builds with its own binary; reinstall planexe")
        })?;
        let child = Arc::new(Child {
            pid: spawned.id(),
            exit: Mutex::new(None),
        });
        lock(&self.children).insert(run_dir.root().to_path_buf(), Arc::clone(&child));
        // From here on the child counts as running: another start refuses.
        drop(starting);
        let reaped = Arc::clone(&child);
        let reaper = std::thread::Builder::new()
            .name("mcp-build".into())
            .spawn(move || {
                use std::os::unix::process::ExitStatusExt;
                let code = match spawned.wait() {
                    Ok(status) => status
                        .code()
                        .or(status.signal().map(|s| 128 + s))
                        .unwrap_or(-1),
                    Err(_) => -1,
                };
                *lock(&reaped.exit) = Some(code);
            });
        if reaper.is_err() {
            // No thread to wait for it (the system is out of them): the
            // build still runs, and the run record alone says how it goes.
            lock(&self.children).remove(run_dir.root());
        }
        let pid = child.pid;
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Some(code) = child.exit() {
                return Ok((pid, Started::Ended(ended_as(run_dir, pid, code), code)));
            }
            let recorded = RunRecord::load(run_dir)
                .is_some_and(|r| r.builds.last().is_some_and(|b| b.pid == pid));
            if recorded {
                return Ok((pid, Started::Running));
            }
            if Instant::now() >= deadline {
                return Ok((pid, Started::Starting));
            }
            std::thread::sleep(POLL / 2);
        }
    }

    /// Sends SIGTERM to the build running in `run_dir`, which stops it as
    /// Ctrl-C would (and which, unlike SIGINT, it never ignores);
    /// returns its pid, or none when no build runs.
    pub fn stop(&self, run_dir: &RunDir, name: &str) -> Result<Option<u32>> {
        let pid = match self.ours(run_dir) {
            Some(child) => child.pid,
            None => {
                let Some(pid) = RunRecord::load(run_dir)
                    .as_ref()
                    .and_then(|r| r.running_build(run_dir))
                    .map(|b| b.pid)
                else {
                    return Ok(None);
                };
                // When the kernel's list of locks cannot be read, the run
                // record alone names it: not enough to send a signal.
                if run_dir.lock_holder() != Some(pid) {
                    return Err(Error::usage(format!(
                        "the run record of `{name}` names pid {pid} as its running build, but that \
                         process does not hold the run's lock; not signalling a process that may not be planexe"
                    ))
                    .hint("the build has likely ended; call status"));
                }
                pid
            }
        };
        let Ok(signalled) = i32::try_from(pid) else {
            return Ok(None);
        };
        // SAFETY: kill only sends a signal.
        if unsafe { libc::kill(signalled, libc::SIGTERM) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(Error::usage(format!(
                    "cannot stop the build (pid {pid}) of `{name}`: {e}"
                )));
            }
        }
        Ok(Some(pid))
    }

    /// Waits until no build runs in `run_dir`, or `deadline`, or one of
    /// `cut` is set (the client cancelled its request, or its input
    /// ended); whether none runs.
    pub fn wait(&self, run_dir: &RunDir, deadline: Instant, cut: [&AtomicBool; 2]) -> bool {
        loop {
            if self.running(run_dir).is_none() {
                return true;
            }
            if Instant::now() >= deadline || cut.iter().any(|c| c.load(Ordering::SeqCst)) {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }
}

/// How a build that ended with `code` went: its run record's outcome when
/// the record names it, else what its exit status says.
fn ended_as(run_dir: &RunDir, pid: u32, code: i32) -> &'static str {
    let recorded = RunRecord::load(run_dir).and_then(|r| {
        r.builds
            .last()
            .filter(|b| b.pid == pid && b.outcome != BuildOutcome::Running)
            .map(|b| b.outcome.as_str())
    });
    recorded.unwrap_or(match code {
        0 => "completed",
        130 => "stopped",
        _ => "failed",
    })
}

/// The last lines of `.planexe/build.log`, for a build that refused to
/// start.
pub fn log_tail(run_dir: &RunDir) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = files::open_read(&run_dir.build_log_path()) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut tail = Vec::new();
    let _ = file.read_to_end(&mut tail);
    let text = String::from_utf8_lossy(&tail);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
