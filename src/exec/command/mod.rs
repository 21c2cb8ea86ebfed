//! Running one shell command: `sh -c` in the run directory, in a process
//! group of its own, stdout and stderr into the task's log file, with a
//! deadline.
//!
//! Output comes through a pipe that the job thread copies into the log
//! file, which is made at the first byte: a command that prints nothing
//! leaves no log (and no inode to allocate, which on a busy file system
//! costs more than the rest of a trivial task), and a stale log of an
//! earlier run is removed. The job thread waits on the pipe, and after
//! 20 ms (most commands are over by then) on a pidfd of the child too: once
//! the child has ended, what it wrote is drained and the pipe closed, so a
//! background process it left holding the pipe cannot keep the task
//! running. Where
//! pidfds do not exist (Linux before 5.3), the output goes straight to
//! the log file, as it always did. One [`Watchdog`] thread per build
//! enforces deadlines and interrupts by signalling whole process groups:
//! SIGTERM first, SIGKILL after a grace period.
//!
//! Commands start as `posix_spawn` starts them, but on a stack each thread
//! keeps (`spawn`), with an environment built once per build
//! ([`Environment`]): `std::process::Command` copies and sorts the whole
//! environment of planexe again for every command that sets a variable,
//! which costs more than the rest of starting a trivial task.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::env::Env;
use super::interrupt::Interrupt;
use crate::store::files;

mod output;
pub mod scrub;
mod spawn;

/// How long a timed-out process group has between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);
/// The same after Ctrl-C: a user's stop must take under a second.
const INTERRUPT_GRACE: Duration = Duration::from_millis(500);
/// How often the watchdog looks at the interrupt flag.
const TICK: Duration = Duration::from_millis(50);

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Success,
    Code(i32),
    Signal(i32),
    Timeout(Duration),
    Interrupted,
    SpawnFailed(String),
}

/// What to run.
pub struct Spec<'a> {
    pub script: &'a str,
    pub cwd: &'a Path,
    /// planexe's environment and the build's variables.
    pub env: &'a Environment,
    /// This command's own variables, added to `env`.
    pub vars: &'a [(&'a str, &'a str)],
    /// The script's positional parameters (`$1`...; `$0` is `sh`).
    pub args: &'a [&'a str],
    pub log: &'a Path,
    pub timeout: Option<Duration>,
}

/// The variables planexe sets per command (the task's name, its outputs
/// for a check, a judge's feedback for a command run again): never
/// inherited from planexe's own environment.
pub const TASK_VARS: &[&str] = &[
    "PLANEXE_TASK",
    "PLANEXE_OUTPUTS",
    "PLANEXE_JUDGE_SCORE",
    "PLANEXE_JUDGE_REASON",
];

/// The environment commands run with, as `NAME=value` strings: the
/// build's, with `set` replacing or adding variables. Built once per build.
pub struct Environment {
    vars: Vec<CString>,
}

impl Environment {
    /// `base` with `set` applied; `unset` names variables each command
    /// sets itself (see [`Spec::vars`]), dropped here.
    pub fn new(base: &Env, set: &[(&str, &OsStr)], unset: &[&str]) -> Environment {
        let keep = |name: &OsStr| {
            !set.iter().any(|(k, _)| OsStr::new(k) == name)
                && !unset.iter().any(|k| OsStr::new(k) == name)
        };
        let mut vars: Vec<CString> = base
            .vars()
            .iter()
            .filter(|(k, _)| keep(k))
            .filter_map(|(k, v)| pair(k.as_bytes(), v.as_bytes()))
            .collect();
        vars.extend(
            set.iter()
                .filter_map(|(k, v)| pair(k.as_bytes(), v.as_bytes())),
        );
        Environment { vars }
    }
}

/// `NAME=value` as a C string; `None` if either holds a NUL byte.
fn pair(name: &[u8], value: &[u8]) -> Option<CString> {
    let mut bytes = Vec::with_capacity(name.len() + value.len() + 1);
    bytes.extend_from_slice(name);
    bytes.push(b'=');
    bytes.extend_from_slice(value);
    CString::new(bytes).ok()
}

/// Runs `spec`, calling `spawned` with the pid once the process exists.
pub fn run(spec: &Spec, watchdog: &Watchdog, spawned: impl FnOnce(u32)) -> Exit {
    let starting = crate::phases::phase("task: command started");
    let (sink, pipe) = match output::pipe() {
        Ok(pipe) => match output::clear(spec.log) {
            Ok(()) => (pipe.1, Some(pipe.0)),
            Err(e) => return Exit::SpawnFailed(e),
        },
        Err(_) => match open_log(spec.log) {
            Ok(f) => (f, None),
            Err(e) => return Exit::SpawnFailed(e),
        },
    };
    let pid = match spawn(spec, &sink) {
        Ok(pid) => pid,
        Err(e) => return Exit::SpawnFailed(format!("cannot start sh: {e}")),
    };
    drop(sink);
    let guard = watchdog.watch(pid, spec.timeout);
    spawned(pid);
    drop(starting);
    let running = crate::phases::phase("task: command ran");
    let status = match pipe {
        Some(pipe) => match output::copy_until_exit(pipe, pid, spec.log) {
            Ok(()) => wait(pid),
            Err(e) => {
                // The output could not be kept: the command still runs to
                // its end (or its deadline), and its failure says why.
                let _ = wait(pid);
                guard.finish();
                return Exit::SpawnFailed(format!("cannot keep the command's output: {e}"));
            }
        },
        None => wait(pid),
    };
    drop(running);
    let killed = guard.finish();
    match (killed, status) {
        (Some(Kill::Timeout(d)), _) => Exit::Timeout(d),
        (Some(Kill::Interrupt), _) => Exit::Interrupted,
        (None, Err(e)) => Exit::SpawnFailed(format!("cannot wait for the command: {e}")),
        (None, Ok(status)) => {
            if libc::WIFEXITED(status) {
                match libc::WEXITSTATUS(status) {
                    0 => Exit::Success,
                    code => Exit::Code(code),
                }
            } else {
                Exit::Signal(libc::WTERMSIG(status))
            }
        }
    }
}

/// Starts `/bin/sh -c SCRIPT` (an absolute path: no search of `$PATH`) in
/// `spec.cwd`, in a process group of its own, stdin from `/dev/null`,
/// stdout and stderr to `log` (the pipe's writing end, or the log file),
/// with SIGPIPE back to its default (planexe ignores it) and no signal
/// blocked.
fn spawn(spec: &Spec, log: &std::fs::File) -> std::io::Result<u32> {
    let nul = |e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let script = CString::new(spec.script).map_err(|_| nul("the command contains a NUL byte"))?;
    let cwd = CString::new(spec.cwd.as_os_str().as_bytes())
        .map_err(|_| nul("the run directory's path contains a NUL byte"))?;
    let own: Vec<CString> = spec
        .vars
        .iter()
        .filter_map(|(k, v)| pair(k.as_bytes(), v.as_bytes()))
        .collect();
    let mut envp: Vec<*const libc::c_char> = spec
        .env
        .vars
        .iter()
        .chain(&own)
        .map(|v| v.as_ptr())
        .collect();
    envp.push(std::ptr::null());
    let args: Vec<CString> = spec
        .args
        .iter()
        .map(|a| CString::new(*a).map_err(|_| nul("an argument contains a NUL byte")))
        .collect::<std::io::Result<_>>()?;
    let mut argv: Vec<*const libc::c_char> =
        vec![c"/bin/sh".as_ptr(), c"-c".as_ptr(), script.as_ptr()];
    if !args.is_empty() {
        argv.push(c"sh".as_ptr());
        argv.extend(args.iter().map(|a| a.as_ptr()));
    }
    argv.push(std::ptr::null());
    // SAFETY: argv and envp end with a null pointer, and every string
    // they point to (the script, the arguments, the environment) lives
    // until the function returns.
    unsafe { spawn::start(&argv, &envp, &cwd, log.as_raw_fd()) }
}

/// Waits for the child `pid` to end; its raw wait status.
fn wait(pid: u32) -> std::io::Result<libc::c_int> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waitpid writes the status of our own child into `status`.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        if r != -1 {
            return Ok(status);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Creates the task's log, never through a symlink.
fn open_log(path: &Path) -> Result<std::fs::File, String> {
    files::create(path).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    Timeout(Duration),
    Interrupt,
}

#[derive(Debug)]
struct Entry {
    deadline: Option<Instant>,
    timeout: Duration,
    killed: Option<Kill>,
    term_sent: Option<Instant>,
}

#[derive(Debug)]
struct Shared {
    entries: HashMap<u32, Entry>,
    /// When the watchdog looks next, unless woken.
    next_wake: Instant,
    shutdown: bool,
}

impl Default for Shared {
    fn default() -> Shared {
        Shared {
            entries: HashMap::new(),
            next_wake: Instant::now(),
            shutdown: false,
        }
    }
}

/// Kills process groups that overrun their deadline or outlive an interrupt.
pub struct Watchdog {
    shared: Arc<(Mutex<Shared>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub fn start(interrupt: Interrupt) -> Watchdog {
        let shared: Arc<(Mutex<Shared>, Condvar)> = Arc::default();
        let inner = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("planexe-watchdog".into())
            .spawn(move || watch_loop(&inner, &interrupt))
            .ok();
        Watchdog { shared, thread }
    }

    fn watch(&self, pid: u32, timeout: Option<Duration>) -> Guard<'_> {
        let (lock, cvar) = &*self.shared;
        let mut shared = lock.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = timeout.map(|t| Instant::now() + t);
        shared.entries.insert(
            pid,
            Entry {
                deadline,
                timeout: timeout.unwrap_or_default(),
                killed: None,
                term_sent: None,
            },
        );
        // Wake the watchdog only for a deadline before its next look: most
        // tasks end long before theirs, and a wake-up per task is a thread
        // switch per task.
        if deadline.is_some_and(|d| d < shared.next_wake) {
            cvar.notify_all();
        }
        Guard {
            watchdog: self,
            pid,
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        {
            let (lock, cvar) = &*self.shared;
            let mut shared = lock.lock().unwrap_or_else(|p| p.into_inner());
            shared.shutdown = true;
            cvar.notify_all();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Guard<'a> {
    watchdog: &'a Watchdog,
    pid: u32,
}

impl Guard<'_> {
    /// Stops watching; says whether the watchdog killed the process.
    fn finish(self) -> Option<Kill> {
        let (lock, _) = &*self.watchdog.shared;
        let mut shared = lock.lock().unwrap_or_else(|p| p.into_inner());
        let entry = shared.entries.remove(&self.pid);
        if let Some(Entry {
            killed: Some(_), ..
        }) = &entry
        {
            // The shell is gone; make sure nothing it started lingers.
            signal_group(self.pid, libc::SIGKILL);
        }
        entry.and_then(|e| e.killed)
    }
}

fn signal_group(pid: u32, signal: i32) {
    let Ok(pgid) = i32::try_from(pid) else { return };
    // SAFETY: kill(2) with a negative pid signals a process group; it has
    // no memory effects. The group is one we created for this task.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

fn watch_loop(shared: &(Mutex<Shared>, Condvar), interrupt: &Interrupt) {
    let (lock, cvar) = shared;
    let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if state.shutdown {
            return;
        }
        let now = Instant::now();
        let interrupted = interrupt.requested();
        let mut next_wake = now + TICK;
        for (&pid, entry) in state.entries.iter_mut() {
            if entry.killed.is_none() {
                if interrupted {
                    entry.killed = Some(Kill::Interrupt);
                } else if entry.deadline.is_some_and(|d| d <= now) {
                    entry.killed = Some(Kill::Timeout(entry.timeout));
                } else if let Some(d) = entry.deadline {
                    next_wake = next_wake.min(d);
                }
                if entry.killed.is_some() {
                    signal_group(pid, libc::SIGTERM);
                    entry.term_sent = Some(now);
                }
            }
            if let Some(sent) = entry.term_sent {
                let grace = if entry.killed == Some(Kill::Interrupt) {
                    INTERRUPT_GRACE
                } else {
                    KILL_GRACE
                };
                if now.duration_since(sent) >= grace {
                    signal_group(pid, libc::SIGKILL);
                } else {
                    next_wake = next_wake.min(sent + grace);
                }
            }
        }
        state.next_wake = next_wake;
        let wait = next_wake.saturating_duration_since(Instant::now());
        state = match cvar.wait_timeout(state, wait) {
            Ok((s, _)) => s,
            Err(p) => p.into_inner().0,
        };
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Success => write!(f, "exit status 0"),
            Exit::Code(c) => write!(f, "exit status {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
            Exit::Timeout(d) => write!(f, "timeout after {}", humantime::format_duration(*d)),
            Exit::Interrupted => write!(f, "interrupted"),
            Exit::SpawnFailed(m) => write!(f, "{m}"),
        }
    }
}

/// Expands `{inputs}`, `{outputs}` and `{pipeline_dir}` in a command into
/// shell-quoted, space-separated paths. Other braces are left alone, so
/// shell syntax such as `${HOME}` passes through.
pub fn expand(command: &str, inputs: &[&str], outputs: &[&str], pipeline_dir: &Path) -> String {
    let quote = |items: &[&str]| {
        items
            .iter()
            .map(|s| {
                shlex::try_quote(s)
                    .map(|q| q.into_owned())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let dir = pipeline_dir.to_string_lossy();
    // One pass, so a path that contains `{outputs}` is not expanded again.
    let mut out = String::with_capacity(command.len());
    let mut rest = command;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (text, len) = if tail.starts_with("{inputs}") {
            (quote(inputs), "{inputs}".len())
        } else if tail.starts_with("{outputs}") {
            (quote(outputs), "{outputs}".len())
        } else if tail.starts_with("{pipeline_dir}") {
            (quote(&[dir.as_ref()]), "{pipeline_dir}".len())
        } else {
            ("{".to_string(), 1)
        };
        out.push_str(&text);
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_quotes_paths() {
        let got = expand(
            "cat {inputs} > {outputs}; echo ${HOME} {other}",
            &["a.md", "my notes/b.md"],
            &["out.md"],
            Path::new("/p q"),
        );
        assert_eq!(
            got,
            "cat a.md 'my notes/b.md' > out.md; echo ${HOME} {other}"
        );
        assert_eq!(
            expand("{pipeline_dir}/x", &[], &[], Path::new("/p q")),
            "'/p q'/x"
        );
        assert_eq!(
            expand("cat {inputs}", &["{outputs}"], &["o"], Path::new("/")),
            "cat '{outputs}'"
        );
    }
}
