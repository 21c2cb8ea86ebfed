//! The run directory: where tasks read and write, and where planexe keeps
//! its state under `.planexe/`.
//!
//! Owns three invariants: every path a task names is relative and stays
//! inside the run directory; every file planexe writes is written to a
//! temporary file in the same folder and renamed into place; only one build
//! works in a run directory at a time (an advisory lock on `.planexe/lock`).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// The folder name of planexe's state inside a run directory.
pub const STATE_DIR: &str = ".planexe";

/// A run directory and the layout of its `.planexe/` folder.
#[derive(Debug)]
pub struct RunDir {
    root: PathBuf,
    canonical: PathBuf,
    /// Canonical forms of parent folders already checked, so a pipeline of
    /// ten thousand tasks in one folder canonicalizes it once.
    checked_dirs: Mutex<HashMap<PathBuf, bool>>,
}

impl RunDir {
    pub fn open(root: &Path) -> Result<RunDir> {
        let canonical = fs_err::canonicalize(root).map_err(|e| {
            Error::usage(format!("cannot use run directory {}: {e}", root.display()))
                .hint("pass an existing folder to -C")
        })?;
        if !canonical.is_dir() {
            return Err(Error::usage(format!(
                "run directory {} is not a folder",
                root.display()
            )));
        }
        Ok(RunDir {
            root: canonical.clone(),
            canonical,
            checked_dirs: Mutex::new(HashMap::new()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of a run-directory-relative path.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    pub fn tasks_dir(&self) -> PathBuf {
        self.state_dir().join("tasks")
    }

    pub fn status_path(&self, task: &str) -> PathBuf {
        self.tasks_dir().join(format!("{task}.status"))
    }

    pub fn done_path(&self, task: &str) -> PathBuf {
        self.tasks_dir().join(format!("{task}.DONE"))
    }

    /// Where the combined stdout and stderr of a task's last run is kept.
    pub fn task_log_path(&self, task: &str) -> PathBuf {
        self.state_dir().join("logs").join(format!("{task}.log"))
    }

    /// Where the outputs of a failed attempt are moved for inspection.
    pub fn failed_dir(&self, task: &str) -> PathBuf {
        self.state_dir().join("failed").join(task)
    }

    /// Where the outputs of the last good run wait while a task re-runs.
    pub fn prev_dir(&self, task: &str) -> PathBuf {
        self.state_dir().join("prev").join(task)
    }

    pub fn log_path(&self) -> PathBuf {
        self.state_dir().join("log")
    }

    /// The file that records which pipeline file this run directory uses.
    pub fn recorded_pipeline_path(&self) -> PathBuf {
        self.state_dir().join("pipeline")
    }

    /// Fails when `rel` (already normalized) lies in a folder that reaches
    /// outside the run directory through a symlink. Folders are checked once
    /// each; the file itself is checked when it is stamped
    /// ([`crate::stamp::stat_inside`]), which costs no extra system call.
    pub fn check_inside(&self, rel: &str) -> std::result::Result<(), String> {
        let full = self.root.join(rel);
        let Some(parent) = full.parent() else {
            return Ok(());
        };
        let mut cache = self.checked_dirs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&inside) = cache.get(parent) {
            return if inside {
                Ok(())
            } else {
                Err(format!(
                    "{rel} lies in a folder outside the run directory (a symlink)"
                ))
            };
        }
        // Canonicalize the longest existing ancestor.
        let mut probe = parent.to_path_buf();
        let inside = loop {
            match std::fs::canonicalize(&probe) {
                Ok(real) => break real.starts_with(&self.canonical),
                Err(_) => {
                    if !probe.pop() {
                        break true;
                    }
                }
            }
        };
        cache.insert(parent.to_path_buf(), inside);
        if inside {
            Ok(())
        } else {
            Err(format!(
                "{rel} lies in a folder outside the run directory (a symlink)"
            ))
        }
    }

    /// Takes the run directory's lock, or fails when another planexe holds
    /// it. The lock is the operating system's, on `.planexe/lock`: it dies
    /// with its holder, so a lock left by a killed build is taken over
    /// silently. The file says who holds it (pid, host, start, command).
    pub fn lock(&self, command: &str) -> Result<Lock> {
        fs_err::create_dir_all(self.state_dir())?;
        let path = self.state_dir().join("lock");
        let file = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)?;
        let mut file = file.into_parts().0;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder: Option<LockHolder> = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok());
                let who = match holder {
                    Some(h) => {
                        let started = h
                            .started_at
                            .parse::<jiff::Timestamp>()
                            .map(|t| t.strftime("%H:%M UTC").to_string())
                            .unwrap_or(h.started_at);
                        format!(
                            "another {} (pid {}, started {started}) is running in this directory",
                            h.command, h.pid
                        )
                    }
                    None => "another planexe is running in this directory".to_string(),
                };
                return Err(Error::usage(format!("{who} ({})", self.root.display()))
                    .hint("wait for it (`planexe status` works meanwhile), or stop it with Ctrl-C or `kill PID`"));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(with_path(e, &path)),
        }
        // Whatever this command changes, the up-to-date certificate no
        // longer vouches for it.
        crate::certificate::remove(&self.state_dir());
        let holder = LockHolder {
            pid: std::process::id(),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
            started_at: crate::state::now_rfc3339(),
            command: command.to_string(),
        };
        let _ = file.set_len(0);
        let _ = file.write_all(
            serde_json::to_string(&holder)
                .unwrap_or_default()
                .as_bytes(),
        );
        Ok(Lock { _file: file })
    }
}

/// What `.planexe/lock` says about its holder.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    pub started_at: String,
    pub command: String,
}

/// Held while a command works in a run directory; released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

/// Turns a path as written in the pipeline into a normalized relative path
/// with `/` separators, or says why it is not allowed.
pub fn normalize(raw: &str) -> std::result::Result<String, String> {
    if raw.is_empty() {
        return Err("the path is empty".into());
    }
    let path = Path::new(raw);
    let mut parts: Vec<&str> = Vec::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => {
                return Err(format!(
                    "{raw} is an absolute path; paths are relative to the run directory"
                ))
            }
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "{raw} uses `..`; paths must stay inside the run directory"
                ))
            }
            Component::Normal(part) => match part.to_str() {
                Some(part) => parts.push(part),
                None => return Err(format!("{raw} is not valid UTF-8")),
            },
        }
    }
    if parts.is_empty() {
        return Err(format!("{raw} names the run directory itself, not a file"));
    }
    if parts[0] == STATE_DIR {
        return Err(format!("{raw} is inside {STATE_DIR}/, which planexe owns"));
    }
    Ok(parts.join("/"))
}

/// How the temporary files of [`write_atomic`] begin: this prefix, the
/// writer's pid, `-`, random letters. Only a planexe killed mid-write
/// leaves one behind; the next build removes those of dead writers (see
/// [`remove_temporaries`]), so the prefix must not be one a user would pick.
pub const TEMP_PREFIX: &str = ".planexe-tmp-";

/// Writes `bytes` to `path` through a temporary file in the same folder and
/// a rename, so readers see the old content or the new, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // Files planexe writes get the usual 0666 & ~umask, not tempfile's 0600.
    use std::os::unix::fs::PermissionsExt;
    let prefix = format!("{TEMP_PREFIX}{}-", std::process::id());
    let temporary = || {
        tempfile::Builder::new()
            .prefix(&prefix)
            .permissions(std::fs::Permissions::from_mode(0o666))
            .tempfile_in(dir)
    };
    // The folder almost always exists: make it only when it turns out not to.
    let mut tmp = match temporary() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs_err::create_dir_all(dir)?;
            temporary()
        }
        other => other,
    }
    .map_err(|e| with_path(e, dir))?;
    tmp.write_all(bytes).map_err(|e| with_path(e, tmp.path()))?;
    tmp.persist(path).map_err(|e| with_path(e.error, path))?;
    Ok(())
}

/// Adds a path to an I/O error that lacks one.
pub fn with_path(e: std::io::Error, path: &Path) -> Error {
    Error::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    ))
}

/// Removes the temporary files that planexe processes no longer alive left
/// in `dir` (not its subfolders), returning how many. Those of a live
/// writer (a `status` or `report` that runs beside the build) are kept.
pub fn remove_temporaries(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let Some(rest) = name.as_encoded_bytes().strip_prefix(TEMP_PREFIX.as_bytes()) else {
                return false;
            };
            !writer_alive(rest)
        })
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Whether the process named by a temporary file's `PID-random` suffix is
/// alive. A suffix without a pid is from an older planexe, long gone.
fn writer_alive(suffix: &[u8]) -> bool {
    let pid = suffix
        .split(|&b| b == b'-')
        .next()
        .and_then(|p| std::str::from_utf8(p).ok())
        .and_then(|p| p.parse::<i32>().ok());
    match pid {
        Some(pid) if pid > 0 => {
            // SAFETY: signal 0 only checks that the process exists.
            let exists = unsafe { libc::kill(pid, 0) } == 0;
            exists || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        }
        _ => false,
    }
}

/// Removes a file if it exists.
pub fn remove_if_exists(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(with_path(e, path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_refuses_escapes() {
        assert_eq!(normalize("./a//b/./c.md").unwrap(), "a/b/c.md");
        assert!(normalize("/etc/passwd").unwrap_err().contains("absolute"));
        assert!(normalize("a/../../b").unwrap_err().contains(".."));
        assert!(normalize(".").is_err());
        assert!(normalize(".planexe/x").is_err());
    }
}
