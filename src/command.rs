//! Running one shell command: `sh -c` in the run directory, in a process
//! group of its own, stdout and stderr into the task's log file, with a
//! deadline.
//!
//! The job thread blocks in `wait` (no polling delay); one [`Watchdog`]
//! thread per build enforces deadlines and interrupts by signalling whole
//! process groups: SIGTERM first, SIGKILL after a grace period.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::interrupt::Interrupt;

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
    pub env: &'a [(&'a str, String)],
    pub log: &'a Path,
    pub timeout: Option<Duration>,
}

/// Runs `spec`, calling `spawned` with the pid once the process exists.
pub fn run(spec: &Spec, watchdog: &Watchdog, spawned: impl FnOnce(u32)) -> Exit {
    let log = match open_log(spec.log) {
        Ok(f) => f,
        Err(e) => return Exit::SpawnFailed(e),
    };
    let log_err = match log.try_clone() {
        Ok(f) => f,
        Err(e) => return Exit::SpawnFailed(format!("{}: {e}", spec.log.display())),
    };
    // An absolute path: no search of $PATH for every task.
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(spec.script)
        .current_dir(spec.cwd)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    for (k, v) in spec.env {
        command.env(k, v);
    }
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Exit::SpawnFailed(format!("cannot start sh: {e}")),
    };
    let pid = child.id();
    let guard = watchdog.watch(pid, spec.timeout);
    spawned(pid);
    let status = child.wait();
    let killed = guard.finish();
    match (killed, status) {
        (Some(Kill::Timeout(d)), _) => Exit::Timeout(d),
        (Some(Kill::Interrupt), _) => Exit::Interrupted,
        (None, Err(e)) => Exit::SpawnFailed(format!("cannot wait for the command: {e}")),
        (None, Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            if status.success() {
                Exit::Success
            } else if let Some(code) = status.code() {
                Exit::Code(code)
            } else {
                Exit::Signal(status.signal().unwrap_or(0))
            }
        }
    }
}

fn open_log(path: &Path) -> Result<std::fs::File, String> {
    let fail = |e: std::io::Error, p: &Path| format!("{}: {e}", p.display());
    match std::fs::File::create(path) {
        // The folder almost always exists: make it only when it does not.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| fail(e, dir))?;
            }
            std::fs::File::create(path).map_err(|e| fail(e, path))
        }
        other => other.map_err(|e| fail(e, path)),
    }
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
