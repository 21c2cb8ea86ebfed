//! The run directory: where tasks read and write, and the layout of
//! `.planexe/`, where planexe keeps its state. Every file name under
//! `.planexe/` is spelled here and nowhere else.
//!
//! Owns one invariant: every path a task names is relative and stays
//! inside the run directory ([`normalize`], [`RunDir::check_inside`]).

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// The folder name of planexe's state inside a run directory.
pub const STATE_DIR: &str = ".planexe";

/// Whether the folder `dir` holds a run planexe made or built: a
/// `.planexe/` with a record of either in it (the run record, the state
/// log, the recorded pipeline file, `origin.json`, task sidecars). A
/// `.planexe/` without one (made by hand, half copied) holds none.
pub fn holds_run(dir: &Path) -> bool {
    let state = dir.join(STATE_DIR);
    [
        file::RUN,
        file::LOG,
        file::PIPELINE,
        file::ORIGIN,
        file::TASKS,
    ]
    .iter()
    .any(|name| std::fs::symlink_metadata(state.join(name)).is_ok())
}

/// The names under `.planexe/`.
pub mod file {
    /// The state log.
    pub const LOG: &str = "log";
    /// The folder of task sidecars.
    pub const TASKS: &str = "tasks";
    /// The run record.
    pub const RUN: &str = "run.json";
    /// Which pipeline file the run directory uses.
    pub const PIPELINE: &str = "pipeline";
    /// Every build's timeline.
    pub const TRACE: &str = "trace.json";
    /// The timeline set aside when it grew over its cap
    /// ([`crate::store::history`]).
    pub const TRACE_ASIDE: &str = "trace.1.json";
    /// The folder of task logs.
    pub const LOGS: &str = "logs";
    pub const RAW: &str = "raw";
    pub const FAILED: &str = "failed";
    pub const PREV: &str = "prev";
    pub const LOCK: &str = "lock";
    pub const INFLIGHT: &str = "inflight";
    pub const CERTIFICATE: &str = "uptodate";
    pub const SNAPSHOT: &str = "status.snapshot";
    pub const USAGE: &str = "usage.jsonl";
    /// The sums of `usage.jsonl` up to a line, so that reading them is not
    /// reading every call the run ever made ([`crate::store::ledger`]).
    pub const USAGE_SUM: &str = "usage.sum";
    pub const FAILURES: &str = "failures.jsonl";
    pub const EVENTS: &str = "events.jsonl";
    /// The events set aside when they grew over their cap
    /// ([`crate::store::history`]).
    pub const EVENTS_ASIDE: &str = "events.1.jsonl";
    pub const SUMMARY: &str = "summary.json";
    /// How the run was made (`planexe new`, the MCP server's `run_create`).
    pub const ORIGIN: &str = "origin.json";
    /// Present while the run is archived (the MCP server's `archive`).
    pub const ARCHIVED: &str = "archived";
    /// What the last build started by `planexe mcp` printed.
    pub const BUILD_LOG: &str = "build.log";

    /// The folders, which must be real folders.
    pub const FOLDERS: [&str; 5] = [TASKS, LOGS, RAW, FAILED, PREV];
    /// The files, which must be regular files (never symlinks or FIFOs).
    pub const FILES: [&str; 18] = [
        LOG,
        RUN,
        PIPELINE,
        TRACE,
        TRACE_ASIDE,
        LOCK,
        INFLIGHT,
        CERTIFICATE,
        SNAPSHOT,
        USAGE,
        USAGE_SUM,
        FAILURES,
        EVENTS,
        EVENTS_ASIDE,
        SUMMARY,
        ORIGIN,
        ARCHIVED,
        BUILD_LOG,
    ];
}

/// `.planexe/NAME`, relative to the run directory.
pub fn state_rel(name: &str) -> String {
    format!("{STATE_DIR}/{name}")
}

/// A task's sidecar, relative to the run directory.
pub fn status_rel(task: &str) -> String {
    format!("{STATE_DIR}/{}/{task}.status", file::TASKS)
}

/// Where a file rewritten again and again (a sidecar, `summary.json`...)
/// keeps the file it last replaced, to write over next time (see
/// [`crate::store::spare::write_atomic_reusing`]): the same name, hidden,
/// with `.spare` after it (`.NAME.status.spare`, `.summary.json.spare`).
pub fn spare_of(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".spare");
    path.with_file_name(name)
}

/// A task's log, relative to the run directory (as messages name it).
pub fn task_log_rel(task: &str) -> String {
    format!("{STATE_DIR}/{}/{task}.log", file::LOGS)
}

/// A run directory and the layout of its `.planexe/` folder.
#[derive(Debug)]
pub struct RunDir {
    root: PathBuf,
    /// Folders (relative paths) already checked to lead nowhere outside,
    /// so a pipeline of ten thousand tasks in one folder canonicalizes it
    /// once.
    checked_dirs: Mutex<HashMap<String, bool>>,
}

impl Clone for RunDir {
    fn clone(&self) -> RunDir {
        let checked = self
            .checked_dirs
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        RunDir {
            root: self.root.clone(),
            checked_dirs: Mutex::new(checked),
        }
    }
}

impl RunDir {
    pub fn open(root: &Path) -> Result<RunDir> {
        let canonical = std::fs::canonicalize(root).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "it does not exist".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => super::wrong_kind::why(root, root, &e),
            };
            Error::usage(format!(
                "cannot use run directory {}: {why}",
                root.display()
            ))
            .hint("pass an existing folder to -C (`planexe new RUN_DIR` makes a run)")
        })?;
        if !canonical.is_dir() {
            return Err(
                Error::usage(format!("run directory {} is not a folder", root.display()))
                    .hint("pass an existing folder to -C (`planexe new RUN_DIR` makes a run)"),
            );
        }
        let run_dir = RunDir {
            root: canonical,
            checked_dirs: Mutex::new(HashMap::new()),
        };
        run_dir.check_state()?;
        Ok(run_dir)
    }

    /// Refuses a state folder (`.planexe` and the folders in it) that is not
    /// a real folder, and a state file that is not a regular file: a link
    /// planted in a shared or committed run directory would make planexe
    /// write, as whoever runs it, wherever it points, and a FIFO would make
    /// it wait forever.
    fn check_state(&self) -> Result<()> {
        let refuse = |path: &Path, what: &str| {
            Error::usage(format!(
                "{} is {what}; planexe keeps its state in real files and folders inside the run directory",
                path.display()
            ))
            .hint(format!(
                "remove it (planexe makes it again), or use a fresh run directory; `rm -r {}` forgets every task",
                self.state_dir().display()
            ))
        };
        let kind = |path: &Path| std::fs::symlink_metadata(path).ok().map(|m| m.file_type());
        let state = self.state_dir();
        match kind(&state) {
            None => return Ok(()),
            Some(t) if t.is_symlink() => return Err(refuse(&state, "a symlink")),
            Some(t) if !t.is_dir() => return Err(refuse(&state, "not a folder")),
            Some(_) => {}
        }
        for name in file::FOLDERS {
            let path = state.join(name);
            match kind(&path) {
                Some(t) if t.is_symlink() => return Err(refuse(&path, "a symlink")),
                Some(t) if !t.is_dir() => return Err(refuse(&path, "not a folder")),
                _ => {}
            }
        }
        // A FIFO, a socket or a device would be waited on or written into.
        for name in file::FILES {
            let path = state.join(name);
            match kind(&path) {
                Some(t) if !t.is_file() => return Err(refuse(&path, super::files::kind_of(t))),
                _ => {}
            }
        }
        Ok(())
    }

    /// The canonical path of the run directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of a run-directory-relative path.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// `rel` as a message shows it: relative to the run directory when it
    /// lies inside.
    pub fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .map_or_else(|_| path.display().to_string(), |p| p.display().to_string())
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    fn state(&self, name: &str) -> PathBuf {
        self.state_dir().join(name)
    }

    pub fn tasks_dir(&self) -> PathBuf {
        self.state(file::TASKS)
    }

    pub fn status_path(&self, task: &str) -> PathBuf {
        self.task_file(file::TASKS, task, ".status")
    }

    pub fn done_path(&self, task: &str) -> PathBuf {
        self.task_file(file::TASKS, task, ".DONE")
    }

    /// Where the combined stdout and stderr of a task's last run is kept.
    pub fn task_log_path(&self, task: &str) -> PathBuf {
        self.task_file(file::LOGS, task, ".log")
    }

    /// `.planexe/FOLDER/TASKSUFFIX`, made in one allocation: a build asks
    /// for several of these per task, and joining path by path allocates
    /// and copies once per part.
    fn task_file(&self, folder: &str, task: &str, suffix: &str) -> PathBuf {
        use std::ffi::OsString;
        let root = self.root.as_os_str();
        let mut path = OsString::with_capacity(
            root.len() + STATE_DIR.len() + folder.len() + task.len() + suffix.len() + 3,
        );
        path.push(root);
        for part in ["/", STATE_DIR, "/", folder, "/", task, suffix] {
            path.push(part);
        }
        PathBuf::from(path)
    }

    /// What a task's output check last printed (stdout and stderr). Never
    /// a task's own log: those end in `.log`.
    pub fn check_log_path(&self, task: &str) -> PathBuf {
        self.state(file::LOGS).join(format!("{task}.check.txt"))
    }

    /// Where the outputs of a failed attempt are moved for inspection.
    pub fn failed_dir(&self, task: &str) -> PathBuf {
        self.state(file::FAILED).join(task)
    }

    /// The folder of [`RunDir::prev_dir`]s.
    pub fn prev_root(&self) -> PathBuf {
        self.state(file::PREV)
    }

    /// Where the outputs of the last good run wait while a task re-runs.
    pub fn prev_dir(&self, task: &str) -> PathBuf {
        self.prev_root().join(task)
    }

    /// The last response of a prompt task's model.
    pub fn raw_path(&self, task: &str) -> PathBuf {
        self.state(file::RAW).join(format!("{task}.json"))
    }

    /// The state log (see `store::log`).
    pub fn log_path(&self) -> PathBuf {
        self.state(file::LOG)
    }

    /// The file that records which pipeline file this run directory uses.
    pub fn recorded_pipeline_path(&self) -> PathBuf {
        self.state(file::PIPELINE)
    }

    /// The run record.
    pub fn run_record_path(&self) -> PathBuf {
        self.state(file::RUN)
    }

    /// The run directory's lock (see `store::lock`).
    pub fn lock_path(&self) -> PathBuf {
        self.state(file::LOCK)
    }

    /// The in-flight journal of the running (or last crashed) build.
    pub fn inflight_path(&self) -> PathBuf {
        self.state(file::INFLIGHT)
    }

    /// The up-to-date certificate.
    pub fn certificate_path(&self) -> PathBuf {
        self.state(file::CERTIFICATE)
    }

    /// What `status` reports, saved beside the certificate or by a
    /// running build.
    pub fn snapshot_path(&self) -> PathBuf {
        self.state(file::SNAPSHOT)
    }

    /// One line per model call.
    pub fn usage_path(&self) -> PathBuf {
        self.state(file::USAGE)
    }

    /// The sums of the usage ledger up to a line.
    pub fn usage_sum_path(&self) -> PathBuf {
        self.state(file::USAGE_SUM)
    }

    /// One line per failed model call.
    pub fn failures_path(&self) -> PathBuf {
        self.state(file::FAILURES)
    }

    /// Every build's events.
    pub fn events_path(&self) -> PathBuf {
        self.state(file::EVENTS)
    }

    /// Every build's timeline, in the Chrome trace format.
    pub fn trace_path(&self) -> PathBuf {
        self.state(file::TRACE)
    }

    /// `.planexe/trace.1.json`: the timeline set aside.
    pub fn trace_aside_path(&self) -> PathBuf {
        self.state(file::TRACE_ASIDE)
    }

    /// `.planexe/events.1.jsonl`: the events set aside.
    pub fn events_aside_path(&self) -> PathBuf {
        self.state(file::EVENTS_ASIDE)
    }

    /// The run after the last build, in one file.
    pub fn summary_path(&self) -> PathBuf {
        self.state(file::SUMMARY)
    }

    /// How the run was made (see `store::origin`).
    pub fn origin_path(&self) -> PathBuf {
        self.state(file::ORIGIN)
    }

    /// The marker of an archived run (see `store::origin`).
    pub fn archived_path(&self) -> PathBuf {
        self.state(file::ARCHIVED)
    }

    /// Where a build started by `planexe mcp` writes its stdout and stderr.
    pub fn build_log_path(&self) -> PathBuf {
        self.state(file::BUILD_LOG)
    }

    /// Fails when `path` (absolute, under the run directory) lies in a
    /// folder that reaches outside the run directory through a symlink, or
    /// is not under the run directory at all.
    pub fn check_path_inside(&self, path: &Path) -> std::result::Result<(), String> {
        match path.strip_prefix(&self.root) {
            Ok(rel) => self.check_inside(&rel.to_string_lossy()),
            Err(_) => Err(format!("{} is outside the run directory", path.display())),
        }
    }

    /// Fails when `rel` (already normalized) lies in a folder that reaches
    /// outside the run directory through a symlink. Folders are checked once
    /// each; the file itself is checked when it is stamped
    /// ([`crate::store::stamp::stat_inside`]), which costs no extra system
    /// call.
    pub fn check_inside(&self, rel: &str) -> std::result::Result<(), String> {
        let outside = || {
            Err(format!(
                "{rel} lies in a folder outside the run directory (a symlink)"
            ))
        };
        // Folders are cached by their relative path: no path to build and
        // hash for a folder already checked.
        let Some((parent, _)) = rel.rsplit_once('/') else {
            // Right in the run directory, which is canonical (or the run
            // directory itself, whose folder is outside it).
            return if rel.is_empty() { outside() } else { Ok(()) };
        };
        let mut cache = self.checked_dirs.lock().unwrap_or_else(|p| p.into_inner());
        let inside = self.folder_inside(&mut cache, parent);
        if inside {
            Ok(())
        } else {
            outside()
        }
    }

    /// Whether `folder` (relative, normalized) leads nowhere outside the
    /// run directory: its parent does, and it is a folder (or does not
    /// exist yet), or a symlink whose target is inside. One `lstat` per
    /// folder not seen before: a task's own folder under `.planexe/prev/`
    /// costs one, not a canonicalization of every folder above it.
    fn folder_inside(&self, cache: &mut HashMap<String, bool>, folder: &str) -> bool {
        if let Some(&known) = cache.get(folder) {
            return known;
        }
        let above = match folder.rsplit_once('/') {
            Some((parent, _)) => self.folder_inside(cache, parent),
            // Right in the run directory, which is canonical.
            None => true,
        };
        let path = self.root.join(folder);
        let inside = above
            && match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => match std::fs::canonicalize(&path) {
                    Ok(real) => real.starts_with(&self.root),
                    // Leads nowhere: nothing can be made through it.
                    Err(_) => true,
                },
                // A folder, or nothing yet (what is made there is checked
                // when it is stamped).
                _ => true,
            };
        cache.insert(folder.to_string(), inside);
        inside
    }

    /// What the state a command reads looks like now ([`StateMark`]):
    /// taken before reading it, compared after taking the lock.
    pub fn state_mark(&self) -> StateMark {
        use std::os::unix::fs::MetadataExt;
        let stat = |path: PathBuf| {
            std::fs::metadata(path)
                .ok()
                .map(|m| (m.ino(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime_nsec()))
        };
        StateMark([stat(self.run_record_path()), stat(self.log_path())])
    }
}

/// The stats of `run.json` and `log`. Every command that changes the
/// state of a run directory changes one of them under the lock (a build
/// that runs a task records its start in `run.json`; `touch`, `clean` and
/// a no-op build's new stamps append to `log`, compaction replaces it):
/// a view read under the same mark is still the state's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateMark([Option<FileMark>; 2]);

/// A file's inode, size, mtime (s, ns) and ctime (ns).
type FileMark = (u64, u64, i64, i64, i64);

/// Turns a path as written in the pipeline into a normalized relative path
/// with `/` separators, or says why it is not allowed.
pub fn normalize(raw: &str) -> std::result::Result<String, String> {
    // No file name holds a NUL byte: no system call could be given it.
    if raw.contains('\0') {
        return Err(format!(
            "{} contains a NUL byte, which no file name can hold",
            raw.escape_debug()
        ));
    }
    // A line break (or another control character) in a name would break
    // the lines planexe prints (`clean` lists one path a line, for
    // `xargs`): refused, as a file name no one types.
    if let Some(c) = raw.chars().find(char::is_ascii_control) {
        return Err(format!(
            "{} contains the control character {}, which planexe does not take in a file name",
            raw.escape_debug(),
            c.escape_debug()
        ));
    }
    // Most paths are written normalized already: one look at them.
    let plain = !raw.starts_with('/')
        && raw
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if plain && raw.split('/').next() != Some(STATE_DIR) {
        return Ok(raw.to_string());
    }
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

/// A run directory in a fresh temporary folder, for the store's tests.
#[cfg(test)]
pub(crate) fn temp() -> (tempfile::TempDir, RunDir) {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = RunDir::open(dir.path()).unwrap();
    (dir, run_dir)
}

#[cfg(test)]
#[path = "rundir_tests.rs"]
mod tests;
