//! Crash recovery, before a build touches anything: a build that ended
//! without recording its end crashed (the caller holds the lock, so it is
//! not running). What it left is put right:
//!
//! - commands it started, still running in their own process groups, are
//!   stopped (found by the pid its journal recorded, or by the variables
//!   every task's command starts with when it died before the pid);
//! - each task it had in flight gets the `running` sidecar it may not have
//!   had time to publish, so it reads as interrupted;
//! - temporary files of its atomic writes are removed, beside the build
//!   ([`Sweep`]);
//! - outputs it had set aside in `.planexe/prev/TASK/` are put back, what
//!   the interrupted attempt wrote moved to `.planexe/failed/TASK/` (also
//!   where it had set nothing aside: a half-written file is never left in
//!   place); what a run that ended had set aside, and had yet to delete,
//!   is deleted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::observer::{Notice, Observer};
use super::process::{self, NotTheCommand};
use crate::error::{Error, Result};
use crate::model::{Action, Graph, Task};
use crate::store::files::{self, move_file};
use crate::store::inflight::{self, Journal};
use crate::store::run_record::RunRecord;
use crate::store::sidecar;
use crate::store::RunDir;

/// Puts right what a crashed build left behind (see the module).
/// `journal`: its journal as the session read it, used when the file has
/// not changed since.
pub fn reconcile(
    run_dir: &RunDir,
    graph: &Graph,
    run: Option<&RunRecord>,
    journal: Option<&Journal>,
    observer: &dyn Observer,
) -> Result<Sweep> {
    if run.and_then(RunRecord::unfinished_build).is_none() {
        // A build that recorded its end committed or rolled back every
        // attempt: nothing is set aside.
        return Ok(Sweep::none());
    }
    let read;
    let journal = match journal.filter(|j| j.unchanged(run_dir)) {
        Some(journal) => journal,
        None => {
            read = inflight::journal(run_dir);
            &read
        }
    };
    stop_leftovers(run_dir, graph, &journal.in_flight, observer)?;
    let sweep = Sweep::start(temporaries_folders(run_dir, graph));
    restore_set_aside(run_dir, graph, journal, observer)?;
    Ok(sweep)
}

/// The removal of the temporary files a crashed build's atomic writes
/// left, on a thread of its own: nothing reads them (their names are
/// planexe's, with the pid of a writer that is gone), so the plan and the
/// first task need not wait for a listing of every output folder. It
/// begins once the build lets it ([`Sweep::release`], as its tasks start)
/// and is over before the build writes its certificate, which looks at
/// those folders ([`Sweep::finish`]; dropped, it is waited for too).
pub struct Sweep {
    go: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<usize>>,
    /// What was removed without a thread.
    removed: usize,
}

impl Sweep {
    fn none() -> Sweep {
        Sweep {
            go: None,
            thread: None,
            removed: 0,
        }
    }

    fn start(folders: Vec<PathBuf>) -> Sweep {
        let folders = std::sync::Arc::new(folders);
        let sweep =
            |folders: &[PathBuf]| folders.iter().map(|d| files::remove_temporaries(d)).sum();
        let theirs = std::sync::Arc::clone(&folders);
        let (go, gate) = std::sync::mpsc::channel::<()>();
        match std::thread::Builder::new()
            .name("planexe-sweep".into())
            .spawn(move || {
                // Let go of (or dropped with the build): either way, now.
                let _ = gate.recv();
                sweep(&theirs)
            }) {
            Ok(thread) => Sweep {
                go: Some(go),
                thread: Some(thread),
                removed: 0,
            },
            // No thread to spare: here and now.
            Err(_) => Sweep {
                go: None,
                thread: None,
                removed: sweep(&folders),
            },
        }
    }

    /// Lets the sweep begin.
    pub fn release(&mut self) {
        if let Some(go) = self.go.take() {
            let _ = go.send(());
        }
    }

    /// Waits for the sweep and says how many files it removed.
    pub fn finish(mut self, observer: &dyn Observer) {
        let removed = self.wait();
        if removed > 0 {
            observer.notice(&Notice::TemporariesRemoved(removed));
        }
    }

    fn wait(&mut self) -> usize {
        self.release();
        let removed = self.thread.take().map_or(0, |t| t.join().unwrap_or(0));
        std::mem::take(&mut self.removed) + removed
    }
}

impl Drop for Sweep {
    fn drop(&mut self) {
        self.wait();
    }
}

/// Puts right what a crashed build left (see the module) for a command
/// other than a build that changes the run directory (`touch`), holding
/// its lock: the commands the build left running are stopped before they
/// can write over what the command records, and the outputs they were
/// replacing are back. Then the journal is emptied, so that the next
/// build does not undo what this command did. Nothing when the last build
/// recorded its end. Returns what it did, to be said.
pub fn recover(session: &mut crate::plan::Session) -> Result<Vec<Notice>> {
    let notices = Kept::default();
    let sweep = reconcile(
        &session.run_dir,
        &session.graph,
        session.run.as_ref(),
        session.journal.as_ref(),
        &notices,
    )?;
    sweep.finish(&notices);
    let crashed = session
        .run
        .as_ref()
        .and_then(RunRecord::unfinished_build)
        .is_some();
    if crashed {
        inflight::forget(&session.run_dir)?;
        // The sidecars now say what the journal said.
        session.store.set_in_flight(Vec::new());
        session.journal = None;
    }
    Ok(notices.0.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// The notices of a recovery, kept to be said once it is over.
#[derive(Default)]
struct Kept(std::sync::Mutex<Vec<Notice>>);

impl Observer for Kept {
    fn notice(&self, notice: &Notice) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(notice.clone());
    }
}

/// Stops what the crashed build's journal says it left running, and
/// gives each such task its `running` sidecar.
fn stop_leftovers(
    run_dir: &RunDir,
    graph: &Graph,
    in_flight: &[crate::store::Status],
    observer: &dyn Observer,
) -> Result<()> {
    for status in in_flight.iter().cloned() {
        let Some(task) = task_or_instance(graph, &status.task) else {
            continue;
        };
        // Every task's command starts with these variables, after its
        // journal entry.
        let vars = [
            ("PLANEXE_RUN_DIR", run_dir.root().as_os_str()),
            ("PLANEXE_TASK", std::ffi::OsStr::new(&status.task)),
        ];
        let not_before = status
            .started_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(SystemTime::from);
        let groups = match status.pid {
            Some(pid) => match process::is_task_command(pid, &vars, not_before) {
                Ok(()) => vec![pid],
                Err(NotTheCommand::Ended) => Vec::new(),
                Err(NotTheCommand::Other(why)) => {
                    // Not the task's command any more (a reboot, a
                    // recycled pid): left alone.
                    observer.notice(&Notice::LeftAlone {
                        task: status.task.clone(),
                        pid,
                        why,
                    });
                    Vec::new()
                }
            },
            // Journaled, then crashed before the pid was: find the command
            // by what every task's command starts with.
            // (An instance not expanded yet stands as its placeholder,
            // which may be a command's: looked for too.)
            None if matches!(task.action, Action::Command(_) | Action::Expand(_)) => {
                process::task_commands(&vars, not_before)
            }
            None => Vec::new(),
        };
        for pid in groups {
            // SAFETY: kill(2) on a process group that a crashed planexe
            // created for this task (checked: the pid leads its own group,
            // or led it and a member of it is left, and that process was
            // started with the task's variables for this run directory,
            // after the task was).
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
            observer.notice(&Notice::StoppedLeftover {
                task: status.task.clone(),
                pid,
            });
        }
        let published = sidecar::read_status(run_dir, &status.task)
            .is_some_and(|s| s.state.is_running() && s.started_at == status.started_at);
        if !published {
            sidecar::write_sidecar(run_dir, &status)?;
        }
    }
    Ok(())
}

/// Where a crashed build's atomic writes may have left temporary files:
/// `.planexe/`, its direct subfolders, and the folders of declared outputs
/// (prompt answers are written there).
fn temporaries_folders(run_dir: &RunDir, graph: &Graph) -> Vec<PathBuf> {
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    let state = run_dir.state_dir();
    if let Ok(entries) = std::fs::read_dir(&state) {
        dirs.extend(
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    dirs.insert(state);
    let folders: BTreeSet<&str> = graph
        .tasks()
        .flat_map(|task| &task.outputs)
        .map(|out| out.path.rsplit_once('/').map_or("", |(folder, _)| folder))
        .collect();
    dirs.extend(folders.into_iter().map(|folder| match folder {
        "" => run_dir.root().to_path_buf(),
        folder => run_dir.path(folder),
    }));
    dirs.into_iter().collect()
}

/// Puts back outputs that an interrupted build left set aside in
/// `.planexe/prev/TASK/`, moving whatever the interrupted attempt wrote to
/// `.planexe/failed/TASK/`. What a run that ended had set aside (its
/// commit left it to be deleted, see `reaper`) is deleted instead: a run
/// the journal says ended, or one it does not mention whose task's
/// `.DONE` vouches for what is in place now.
fn restore_set_aside(
    run_dir: &RunDir,
    graph: &Graph,
    journal: &Journal,
    observer: &dyn Observer,
) -> Result<()> {
    let mut tasks: BTreeSet<String> = std::fs::read_dir(run_dir.prev_root())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
        .collect();
    // A run that set nothing aside (its outputs were not there yet) has no
    // folder there, yet may have left files at its output paths.
    tasks.extend(
        journal
            .in_flight
            .iter()
            .filter(|s| !journal.ended.contains(&s.task))
            .map(|s| s.task.clone()),
    );
    for task in tasks {
        let outputs: Vec<String> = match graph.task(&task) {
            Some(t) => t.outputs.iter().map(|o| o.path.clone()).collect(),
            // An instance of a fan-out that this build has yet to expand:
            // what it set aside is what its folder holds.
            None if task_or_instance(graph, &task).is_some() => {
                saved_paths(&run_dir.prev_dir(&task))
            }
            None => continue,
        };
        let attempt = journal.in_flight.iter().find(|s| s.task == task);
        let ended = journal.ended.contains(&task)
            || (attempt.is_none() && sidecar::has_marker(run_dir, &task));
        let mut count = 0;
        let mut set_apart = Vec::new();
        for out in &outputs {
            let saved = run_dir.prev_dir(&task).join(out);
            let current = run_dir.path(out);
            let failed = run_dir.failed_dir(&task).join(out);
            if std::fs::symlink_metadata(&saved).is_err() {
                // Nothing was set aside for it: what is there now is the
                // interrupted attempt's, unless it was there before it.
                let written = attempt
                    .filter(|_| !ended)
                    .is_some_and(|a| wrote(a, &current));
                if written {
                    check_inside(run_dir, &task, out, [&current, &failed])?;
                    move_file(&current, &failed)?;
                    set_apart.push(out.clone());
                }
                continue;
            }
            check_inside(run_dir, &task, out, [&saved, &current, &failed])?;
            if ended {
                match std::fs::symlink_metadata(&saved) {
                    Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&saved),
                    _ => std::fs::remove_file(&saved),
                }
                .map_err(|e| Error::io_at(&saved, e))?;
                continue;
            }
            if std::fs::symlink_metadata(&current).is_ok() {
                move_file(&current, &failed)?;
            }
            move_file(&saved, &current)?;
            count += 1;
        }
        if !set_apart.is_empty() {
            observer.notice(&Notice::SetApart {
                task: task.clone(),
                outputs: set_apart,
                folder: run_dir.show(&run_dir.failed_dir(&task)),
            });
        }
        if count > 0 {
            observer.notice(&Notice::Restored { task, count });
        }
    }
    Ok(())
}

/// Refuses to move `paths` (of output `out` of `task`) through a folder
/// that leads out of the run directory.
fn check_inside<const N: usize>(
    run_dir: &RunDir,
    task: &str,
    out: &str,
    paths: [&PathBuf; N],
) -> Result<()> {
    for path in paths {
        run_dir.check_path_inside(path).map_err(|m| {
            Error::usage(format!("not restoring {out} of {task}: {m}"))
                .hint("replace the symlinked folder with a real one, then build again")
        })?;
    }
    Ok(())
}

/// Whether the interrupted `attempt` wrote the file at `path`, which it did
/// not set aside: a file modified since the attempt began. Not every file
/// there is: the crash may have come before the attempt set its outputs
/// aside, or while it checked again outputs it never set aside (a
/// re-check, whose check's process is journaled as a command's is). A
/// second of leeway covers file systems whose clocks are coarse.
fn wrote(attempt: &crate::store::Status, path: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if meta.is_dir() {
        return false;
    }
    let began = attempt
        .started_at
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(SystemTime::from);
    match (began, meta.modified()) {
        (Some(began), Ok(modified)) => modified + std::time::Duration::from_secs(1) >= began,
        _ => false,
    }
}

/// The task `name` of the graph, or, for an instance `GROUP[KEY]` of a
/// fan-out whose list the build has yet to read (recovery runs before
/// any fan-out expands), its group's placeholder: the crashed build may
/// have expanded it and run its instances.
fn task_or_instance<'g>(graph: &'g Graph, name: &str) -> Option<&'g Task> {
    if let Some(task) = graph.task(name) {
        return Some(task);
    }
    let (group, _key) = crate::model::fanout::split_instance(name)?;
    let first = *graph.fanouts.get(group)?.members.first()?;
    Some(&graph[first])
}

/// The files (and symlinks) under `dir`, as paths relative to it, sorted:
/// what a task set aside there, under their run-directory paths.
fn saved_paths(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // A symlinked folder is not followed: it is restored (or
            // refused) as one entry.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else if let Some(rel) = path.strip_prefix(dir).ok().and_then(|r| r.to_str()) {
                found.push(rel.to_string());
            }
        }
    }
    found.sort();
    found
}
