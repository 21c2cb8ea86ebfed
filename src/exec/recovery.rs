//! Crash recovery, before a build touches anything: a build that ended
//! without recording its end crashed (the caller holds the lock, so it is
//! not running). What it left is put right:
//!
//! - commands it started, still running in their own process groups, are
//!   stopped (found by the pid its journal recorded, or by the variables
//!   every task's command starts with when it died before the pid);
//! - each task it had in flight gets the `running` sidecar it may not have
//!   had time to publish, so it reads as interrupted;
//! - temporary files of its atomic writes are removed;
//! - outputs it had set aside in `.planexe/prev/TASK/` are put back, what
//!   the interrupted attempt wrote moved to `.planexe/failed/TASK/`; what
//!   a run that ended had set aside, and had yet to delete, is deleted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::observer::{Notice, Observer};
use super::process;
use crate::error::{Error, Result};
use crate::model::{Action, Graph, Task};
use crate::store::files::{self, move_file};
use crate::store::inflight;
use crate::store::run_record::RunRecord;
use crate::store::sidecar;
use crate::store::RunDir;

/// Puts right what a crashed build left behind (see the module).
pub fn reconcile(
    run_dir: &RunDir,
    graph: &Graph,
    run: Option<&RunRecord>,
    observer: &dyn Observer,
) -> Result<()> {
    if run.and_then(RunRecord::unfinished_build).is_none() {
        // A build that recorded its end committed or rolled back every
        // attempt: nothing is set aside.
        return Ok(());
    }
    let journal = inflight::journal(run_dir);
    stop_leftovers(run_dir, graph, &journal.in_flight, observer)?;
    let removed = remove_temporaries(run_dir, graph);
    if removed > 0 {
        observer.notice(&Notice::TemporariesRemoved(removed));
    }
    restore_set_aside(run_dir, graph, &journal, observer)
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
                Err(why) => {
                    // Gone, or a process that is not the task's command any
                    // more (a reboot, a recycled pid): left alone.
                    if crate::store::process::alive(pid) {
                        observer.notice(&Notice::LeftAlone {
                            task: status.task.clone(),
                            pid,
                            why,
                        });
                    }
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
            // was started with the task's variables for this run directory,
            // and after the task did).
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

/// Removes what a crashed build's atomic writes left half-done: temporary
/// files in `.planexe/`, its direct subfolders, and the folders of declared
/// outputs (prompt answers are written there).
fn remove_temporaries(run_dir: &RunDir, graph: &Graph) -> usize {
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
    for task in graph.tasks() {
        for out in &task.outputs {
            if let Some(dir) = run_dir.path(&out.path).parent() {
                dirs.insert(dir.to_path_buf());
            }
        }
    }
    dirs.iter().map(|d| files::remove_temporaries(d)).sum()
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
    journal: &inflight::Journal,
    observer: &dyn Observer,
) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(run_dir.prev_root()) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let Some(task) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let outputs: Vec<String> = match graph.task(&task) {
            Some(t) => t.outputs.iter().map(|o| o.path.clone()).collect(),
            // An instance of a fan-out that this build has yet to expand:
            // what it set aside is what its folder holds.
            None if task_or_instance(graph, &task).is_some() => {
                saved_paths(&run_dir.prev_dir(&task))
            }
            None => continue,
        };
        let in_flight = journal.in_flight.iter().any(|s| s.task == task);
        let ended =
            journal.ended.contains(&task) || (!in_flight && sidecar::has_marker(run_dir, &task));
        let mut count = 0;
        for out in &outputs {
            let saved = run_dir.prev_dir(&task).join(out);
            if std::fs::symlink_metadata(&saved).is_err() {
                continue;
            }
            let current = run_dir.path(out);
            let failed = run_dir.failed_dir(&task).join(out);
            for path in [&saved, &current, &failed] {
                run_dir.check_path_inside(path).map_err(|m| {
                    Error::usage(format!("not restoring {out} of {task}: {m}"))
                        .hint("replace the symlinked folder with a real one, then build again")
                })?;
            }
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
        if count > 0 {
            observer.notice(&Notice::Restored { task, count });
        }
    }
    Ok(())
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
