//! The run directory's lock: only one command changes a run directory at a
//! time. The lock is the operating system's (an advisory lock on
//! `.planexe/lock`), so it dies with its holder and a lock left by a killed
//! build is taken over silently. The file says who holds it; the kernel
//! says whether a process holds it now ([`RunDir::lock_held_by`]), which
//! is what tells a running build from a process that was given a crashed
//! build's pid.

use std::io::Write;

use serde::{Deserialize, Serialize};

use super::files;
use super::process;
use super::rundir::RunDir;
use crate::error::{Error, Result};

impl RunDir {
    /// The process holding the run directory's lock now, as the kernel
    /// says; none when none does (or when the kernel's list of locks
    /// cannot be read).
    pub fn lock_holder(&self) -> Option<u32> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(self.lock_path()).ok()?;
        process::lock_holder(meta.dev(), meta.ino())
    }

    /// Whether another process holds the run directory's lock now, asked
    /// of the lock itself (a shared lock tried and let go at once), not
    /// of `/proc/locks`, whose read waits for the kernel (tens of
    /// milliseconds just after a build ended): what a build that would
    /// wait asks first. No lock file, or one that cannot be opened, is
    /// no holder.
    pub fn lock_is_held(&self) -> bool {
        files::open_read(&self.lock_path())
            .is_ok_and(|f| matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock)))
    }

    /// Whether process `pid` holds the run directory's lock now: what
    /// tells a build from an unrelated process given its pid after a crash.
    /// No lock file, no holder; no telling (the kernel's list of locks
    /// cannot be read), true.
    pub fn lock_held_by(&self, pid: u32) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(self.lock_path())
            .is_ok_and(|meta| process::holds_lock(pid, meta.dev(), meta.ino()))
    }

    /// Whether a build holds the run directory's lock now: the kernel
    /// names the holder, and the lock file says that process took it for a
    /// build. A build holds the lock a moment before it records its start
    /// in `run.json`; `wait` counts it as running from here.
    pub fn build_holds_lock(&self) -> bool {
        let Some(pid) = self.lock_holder() else {
            return false;
        };
        files::read(&self.lock_path())
            .ok()
            .and_then(|t| serde_json::from_slice::<LockHolder>(&t).ok())
            .is_some_and(|h| h.pid == pid && h.command == "build")
    }

    /// Removes the up-to-date certificate: the caller, holding the lock,
    /// is about to change what it vouches for. It is kept as the spare of
    /// the next one ([`super::spare::set_aside`]).
    pub fn remove_certificate(&self) -> Result<()> {
        super::spare::set_aside(&self.certificate_path())
    }
}

/// What `.planexe/lock` says about its holder.
#[derive(Debug, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    pub started_at: String,
    pub command: String,
}

/// Who holds the lock on `file`: what the holder wrote in it, waiting a
/// moment for a holder that has the lock but has not written yet; else
/// what the kernel says of the process holding it.
fn holder(path: &std::path::Path, file: &std::fs::File) -> Option<LockHolder> {
    use std::os::unix::fs::MetadataExt;
    for _ in 0..25 {
        let written: Option<LockHolder> = files::read(path)
            .ok()
            .and_then(|t| serde_json::from_slice(&t).ok());
        if written.is_some() {
            return written;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let meta = file.metadata().ok()?;
    let pid = process::lock_holder(meta.dev(), meta.ino())?;
    let command = process::command_line(pid).unwrap_or_else(|| "planexe".into());
    let started_at = process::start_time(pid)
        .map(|t| {
            jiff::Timestamp::try_from(t)
                .map(|t| t.to_string())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    Some(LockHolder {
        pid,
        host: String::new(),
        started_at,
        command,
    })
}

/// What to do when another command holds the lock, in the command line's
/// words (a build says it in its door's: `model::Advice`, `Trouble::Busy`).
pub const BUSY: &str =
    "wait for it (`planexe status` works meanwhile), or stop it with Ctrl-C or `kill PID`";

/// How a wait for the lock goes ([`RunDir::lock_waiting`]).
pub struct Waiting<'a> {
    /// Told who holds the lock (`another build (pid N, started 10:02 UTC)
    /// is running in this directory`), once, before the first pause.
    pub told: &'a mut dyn FnMut(&str),
    /// Asked before each pause: `true` ends the wait with
    /// [`Error::Interrupted`] (an interrupt).
    pub stop: &'a dyn Fn() -> bool,
}

/// The first pause of a wait for the lock ([`RunDir::lock_waiting`]); each
/// next one doubles, up to [`WAIT_MOST`], so a lock let go is taken within
/// a fifth of a second, and a long wait costs five looks a second.
const WAIT_FIRST: std::time::Duration = std::time::Duration::from_millis(10);
const WAIT_MOST: std::time::Duration = std::time::Duration::from_millis(200);

/// Held while a command works in a run directory; released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
    /// The lock file's device and inode, in [`HELD`] while this lives.
    key: (u64, u64),
}

/// The lock files this process holds a [`Lock`] on, by device and inode.
/// The kernel's lock belongs to the open file, which a process forked by
/// any thread of this one shares until it execs: a lock this process let
/// go of can stay held that long. Held by this process's pid but not in
/// here, a lock is about to be free, not taken by another command.
static HELD: std::sync::Mutex<Vec<(u64, u64)>> = std::sync::Mutex::new(Vec::new());

/// How long a lock held only through a descriptor a forked process
/// inherited (see [`HELD`]) is waited for before it counts as held.
const INHERITED_MOST: std::time::Duration = std::time::Duration::from_secs(2);

fn held() -> std::sync::MutexGuard<'static, Vec<(u64, u64)>> {
    HELD.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for Lock {
    fn drop(&mut self) {
        let mut held = held();
        if let Some(at) = held.iter().position(|k| *k == self.key) {
            held.swap_remove(at);
        }
    }
}

/// The device and inode of an open file (zeros when it cannot be told,
/// which no lock file has).
fn key_of(file: &std::fs::File) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    file.metadata().map_or((0, 0), |m| (m.dev(), m.ino()))
}

/// How [`RunDir::lock`]'s refusal of a run directory whose `.planexe/`
/// cannot be made or written begins ([`is_unwritable`]).
const UNWRITABLE: &str = "cannot record the state of run directory";

/// Whether `e` is [`RunDir::lock`]'s refusal of a run directory whose
/// `.planexe/` cannot be made or written (a build with nothing to do needs
/// no lock there).
pub fn is_unwritable(e: &Error) -> bool {
    matches!(e, Error::Usage { message, .. } if message.starts_with(UNWRITABLE))
}

/// Whether `e` is [`RunDir::lock`]'s refusal because another command
/// holds the lock (which a door rewords in its own terms).
pub fn is_busy(e: &Error) -> bool {
    matches!(e, Error::Usage { hints, .. } if hints.iter().any(|h| h == BUSY))
}

impl RunDir {
    /// A run directory whose `.planexe/` cannot be made or written (a
    /// read-only checkout or mount, another user's folder) as what it is,
    /// with what to do; any other error as it is.
    fn unwritable(&self, e: Error) -> Error {
        match &e {
            Error::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                Error::usage(format!(
                    "{UNWRITABLE} {}: {io}",
                    self.root().display()
                ))
                .hint(format!(
                    "build, clean and touch record what they do in {}: make {} writable, or copy the run directory somewhere that is; status, build -n and build -q only read, and work as it is",
                    self.state_dir().display(),
                    if self.state_dir().is_dir() {
                        self.state_dir()
                    } else {
                        self.root().to_path_buf()
                    }
                    .display()
                ))
            }
            _ => e,
        }
    }

    /// Takes the run directory's lock for `command`, or fails when another
    /// planexe holds it (naming it). Taking the lock changes nothing else:
    /// a command removes the up-to-date certificate when it is about to
    /// change the state ([`RunDir::remove_certificate`]).
    pub fn lock(&self, command: &str) -> Result<Lock> {
        self.take_lock(command, None)
    }

    /// Takes the run directory's lock for `command`, waiting while another
    /// planexe holds it, as cargo waits for its build directory: two
    /// recipes of one run under `make -j` build one after the other.
    /// `waiting` is told who holds it, once, and may stop the wait. A
    /// holder this
    /// process descends from (a task's command running planexe in its own
    /// build's run directory) is refused at once: it would wait forever.
    pub fn lock_waiting(&self, command: &str, waiting: Waiting) -> Result<Lock> {
        self.take_lock(command, Some(waiting))
    }

    fn take_lock(&self, command: &str, mut waiting: Option<Waiting>) -> Result<Lock> {
        fs_err::create_dir_all(self.state_dir()).map_err(|e| self.unwritable(e.into()))?;
        let path = self.lock_path();
        let mut file = files::open_update(&path).map_err(|e| self.unwritable(e))?;
        let mut pause = WAIT_FIRST;
        let mut told = false;
        let key = key_of(&file);
        let inherited_until = std::time::Instant::now() + INHERITED_MOST;
        // A holder named by the kernel has no host; one on another host (a
        // shared mount) is neither this process nor an ancestor of it.
        let here = |h: &LockHolder| h.host.is_empty() || h.host == hostname();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let holder = holder(&path, &file);
                    let ours = holder
                        .as_ref()
                        .is_some_and(|h| here(h) && h.pid == std::process::id());
                    if ours && !held().contains(&key) && std::time::Instant::now() < inherited_until
                    {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        continue;
                    }
                    let who = match &holder {
                        Some(h) => {
                            let started = h
                                .started_at
                                .parse::<jiff::Timestamp>()
                                .map(|t| t.strftime("%H:%M UTC").to_string())
                                .unwrap_or_else(|_| h.started_at.clone());
                            format!(
                                "another {} (pid {}, started {started}) is running in this directory",
                                h.command, h.pid
                            )
                        }
                        None => "another planexe is running in this directory".to_string(),
                    };
                    let Some(waiting) = waiting.as_mut() else {
                        return Err(
                            Error::usage(format!("{who} ({})", self.root().display())).hint(BUSY)
                        );
                    };
                    if let Some(h) = holder.filter(|h| here(h) && process::is_ancestor(h.pid)) {
                        return Err(Error::usage(format!(
                            "{who} ({}), and this planexe was started by it: waiting for its lock would wait forever",
                            self.root().display()
                        ))
                        .hint(format!(
                            "a task's command cannot run `planexe {command}` in the run directory of the build that runs it (pid {}): give it a run directory of its own (-C DIR)",
                            h.pid
                        )));
                    }
                    if (waiting.stop)() {
                        return Err(Error::Interrupted);
                    }
                    if !told {
                        told = true;
                        (waiting.told)(&who);
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(WAIT_MOST);
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io_at(&path, e)),
            }
        }
        let holder = LockHolder {
            pid: std::process::id(),
            host: hostname(),
            started_at: crate::clock::now_rfc3339(),
            command: command.to_string(),
        };
        let _ = file.set_len(0);
        let _ = file.write_all(
            serde_json::to_string(&holder)
                .unwrap_or_default()
                .as_bytes(),
        );
        held().push(key);
        Ok(Lock { _file: file, key })
    }
}

/// This machine's name, as a lock holder writes it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}
