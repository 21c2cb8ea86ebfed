//! A command hook's run: `sh -c COMMAND` in the run directory, the event's
//! JSON on stdin, in a process group of its own. A command that outlives
//! its timeout, or the build's last wait for its hooks, is stopped with
//! everything it started (its group), as a task's command is: a hook never
//! leaves a process running after the build that ran it. What a command
//! puts in the background and leaves running when it exits by itself is
//! its own. A hook runs for one event at a time (its lane, `events.rs`):
//! the build's last event waits for the one it still runs for.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The command hooks running now, and whether more may start.
#[derive(Debug, Default)]
pub(super) struct Running {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// No delivery starts any more: the build stopped waiting for hooks.
    stopped: bool,
    /// The process groups of the commands running now (their shells'
    /// pids).
    groups: Vec<i32>,
    /// The commands started and not yet reaped (killed ones included).
    live: usize,
}

impl Running {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the build stopped waiting for its hooks: no delivery
    /// starts any more, a webhook's no more than a command's.
    pub(super) fn stopped(&self) -> bool {
        self.state().stopped
    }

    /// Stops the commands running now, each with its group, and lets no
    /// other start.
    pub(super) fn stop_all(&self) {
        let mut state = self.state();
        state.stopped = true;
        for group in state.groups.drain(..) {
            kill_group(group);
        }
    }

    /// Waits until every command started is reaped, or `until`: after
    /// [`Running::stop_all`], so that a process that exits next leaves
    /// none of its hooks behind, not even as a zombie. `true` when none
    /// is left.
    pub(super) fn reaped(&self, until: Instant) -> bool {
        loop {
            if self.state().live == 0 {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Runs `command` with `json` on its stdin, in `cwd`, for at most
/// `timeout`; `Err` says what went wrong, for a warning.
pub(super) fn run(
    command: &str,
    json: &str,
    cwd: &Path,
    timeout: Duration,
    running: &Running,
) -> Result<(), String> {
    let mut child = {
        let mut state = running.state();
        if state.stopped {
            return Err("hook command not run: the build ended".into());
        }
        let child = spawn(command, cwd).map_err(|e| format!("hook command: {e}"))?;
        state.groups.extend(i32::try_from(child.id()).ok());
        state.live += 1;
        child
    };
    let ran = watch(&mut child, json, timeout, running);
    running.state().live -= 1;
    ran
}

/// Feeds `json` to `child` and waits for it (for at most `timeout`), then
/// reaps it.
fn watch(
    child: &mut Child,
    json: &str,
    timeout: Duration,
    running: &Running,
) -> Result<(), String> {
    let group = i32::try_from(child.id()).ok();
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its stdin may exit first.
        let _ = stdin.write_all(json.as_bytes());
    }
    let deadline = Instant::now() + timeout;
    loop {
        {
            // Reaped and forgotten under the lock: `stop_all` never
            // signals a group whose leader is gone.
            let mut state = running.state();
            // `None` once `stop_all` took it, and killed it.
            let ours = group.and_then(|g| state.groups.iter().position(|&x| x == g));
            match child.try_wait() {
                Ok(Some(status)) => {
                    if let Some(i) = ours {
                        state.groups.swap_remove(i);
                    }
                    return if status.success() {
                        Ok(())
                    } else {
                        Err(format!("hook command exited with {status}"))
                    };
                }
                Ok(None) if Instant::now() >= deadline => {
                    if let Some(i) = ours {
                        kill_group(state.groups.swap_remove(i));
                    }
                    drop(state);
                    let _ = child.wait();
                    return Err("hook command timed out".into());
                }
                Ok(None) => {}
                Err(e) => {
                    if let Some(i) = ours {
                        state.groups.swap_remove(i);
                    }
                    return Err(format!("hook command: {e}"));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn spawn(command: &str, cwd: &Path) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(cwd)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// SIGKILL to every process of `group` (a pid above 0: never this
/// process's own group, never every process).
fn kill_group(group: i32) {
    if group > 0 {
        // SAFETY: kill(2) with a negative pid signals one process group;
        // it touches no memory.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
}
