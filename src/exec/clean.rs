//! `clean`: what tasks produced (their outputs, sidecars, `.DONE` markers
//! and logs, and planexe's internal files that go with them: the sidecars'
//! spares and the up-to-date certificate, kept apart from what the user is
//! shown), optionally with everything downstream, listed first
//! ([`CleanPlan`]) and then deleted ([`CleanPlan::apply`]). Never a source
//! file: only declared outputs of the named tasks (or, for a task the
//! pipeline no longer defines, and for the instances of a fan-out whose
//! list is gone, the outputs its last good run recorded that no task
//! produces now and none reads as a source) are candidates, and only
//! when they are files (a folder at an output's path is refused, never
//! deleted), and never a file the run was given when it was made that the
//! task did not write (`plan::seeds`). Asking the user is the caller's.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::model::fanout::split_instance;
use crate::model::Action;
use crate::plan::{Seeds, Session};
use crate::store::files;

/// Which tasks to clean.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every task: the run directory goes back to empty, and the next build
    /// starts a new run.
    All,
    /// These tasks (names, instances or fan-out tasks), and with
    /// `downstream` every task that depends on them.
    Tasks {
        names: Vec<String>,
        downstream: bool,
    },
}

/// What a clean would delete.
#[derive(Debug)]
pub struct CleanPlan {
    /// Each file: as shown (relative to the run directory), and its path.
    /// The user's outputs and the tasks' records.
    pub files: Vec<(String, PathBuf)>,
    /// planexe's internal files that go too (a sidecar's spare, the
    /// up-to-date certificate): deleted, not listed.
    pub internal: Vec<PathBuf>,
    /// The tasks whose records go.
    pub tasks: Vec<String>,
    /// Outputs a forgotten task's last run recorded that the pipeline now
    /// reads as source files: left on disk, and said so. (path, task)
    pub kept: Vec<(String, String)>,
    /// Outputs that are files the run was given when it was made, which
    /// the task never wrote ([`Seeds::guards`]): left on disk, and said
    /// so. (path, task)
    pub given: Vec<(String, String)>,
}

impl CleanPlan {
    /// Lists what cleaning `selection` deletes.
    pub fn new(session: &Session, selection: &Selection) -> Result<CleanPlan> {
        let graph = &session.graph;
        // Tasks the pipeline no longer defines, known from their records:
        // named, or all of them with `--all`.
        let mut removed: Vec<String> = match selection {
            Selection::All => session
                .store
                .records()
                .map(|(name, _)| name)
                .filter(|name| graph.task(name).is_none())
                .cloned()
                .collect(),
            Selection::Tasks { names, .. } => names
                .iter()
                .filter(|name| graph.named(name).is_none() && session.store.record(name).is_some())
                .cloned()
                .collect(),
        };
        let selected = match selection {
            Selection::All => graph.closure(graph.ids()),
            Selection::Tasks { names, downstream } => {
                let known: Vec<String> = names
                    .iter()
                    .filter(|n| !removed.contains(n))
                    .cloned()
                    .collect();
                let mut roots = session.tasks_named(&known)?;
                if *downstream {
                    // An instance of a fan-out that waits for its list is
                    // known from its records only: what reads the fan-out
                    // depends on it all the same.
                    for name in &removed {
                        let group =
                            split_instance(name).and_then(|(base, _)| graph.fanouts.get(base));
                        for &p in group
                            .filter(|g| g.placeholder)
                            .map_or(&[][..], |g| &g.members)
                        {
                            roots.extend(&graph[p].dependents);
                        }
                    }
                    graph.downstream_through_lists(&roots)
                } else {
                    let mut s = vec![false; graph.id_bound()];
                    for r in roots {
                        s[r] = true;
                    }
                    s
                }
            }
        };
        // A fan-out whose list is not there (deleted, or cleaned without
        // `--downstream`) has no instances in the graph; those its last
        // expansion made are known from their records, as removed tasks
        // are.
        for &t in graph.order() {
            if selected[t] && matches!(graph[t].action, Action::Expand(_)) {
                let base = graph[t].name.as_str();
                let mut instances: Vec<String> = (session.store.records())
                    .map(|(name, _)| name)
                    .filter(|name| split_instance(name).is_some_and(|(b, _)| b == base))
                    .filter(|name| graph.task(name).is_none() && !removed.contains(name))
                    .cloned()
                    .collect();
                instances.sort_unstable();
                removed.extend(instances);
            }
        }
        let run_dir = &session.run_dir;
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        let mut internal: Vec<PathBuf> = Vec::new();
        let mut tasks = Vec::new();
        let seeds = Seeds::load(run_dir);
        let mut given = Vec::new();
        for &t in graph.order() {
            if !selected[t] {
                continue;
            }
            let task = &graph[t];
            tasks.push(task.name.clone());
            for out in &task.outputs {
                if seeds.guards(run_dir, &session.store, &task.name, &out.path) {
                    given.push((out.path.clone(), task.name.clone()));
                    continue;
                }
                let path = run_dir.path(&out.path);
                let Ok(meta) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                // Outputs are files: a folder there is someone else's.
                let kind = meta.file_type();
                if !kind.is_file() && !kind.is_symlink() {
                    return Err(Error::usage(format!(
                        "not cleaning task `{}`: its output {} is {}, not a file",
                        task.name,
                        out.path,
                        files::kind_of(kind)
                    ))
                    .hint("clean deletes only files: move it away (or delete it yourself), then run clean again"));
                }
                files.push((out.path.clone(), path));
            }
            state_files(run_dir, &task.name, &mut files, &mut internal);
        }
        // Files the pipeline reads and no task of it writes: sources now,
        // whatever task once wrote them (an output made a hand-kept file).
        // Gathered only for a clean of tasks the pipeline no longer has.
        let sources: rustc_hash::FxHashSet<&str> = (graph.tasks())
            .filter(|_| !removed.is_empty())
            .flat_map(|t| t.inputs.iter().filter(|i| i.producer.is_none()))
            .map(|i| i.path.as_str())
            .chain(graph.lists().map(|(_, list)| list))
            .collect();
        let mut kept: Vec<(String, String)> = Vec::new();
        for name in removed {
            // Its last good run's outputs, but never one a task of the
            // pipeline produces now, nor a source file it reads.
            let outputs: Vec<String> = session
                .store
                .record(&name)
                .and_then(|r| r.done.as_ref())
                .map(|d| d.outputs.keys().cloned().collect())
                .unwrap_or_default();
            for out in outputs {
                if graph.producer(&out).is_some() {
                    continue;
                }
                if sources.contains(out.as_str()) {
                    kept.push((out, name.clone()));
                    continue;
                }
                let path = run_dir.path(&out);
                if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() || m.is_symlink()) {
                    files.push((out, path));
                }
            }
            state_files(run_dir, &name, &mut files, &mut internal);
            tasks.push(name);
        }
        if let Selection::All = selection {
            for path in [run_dir.run_record_path(), run_dir.summary_path()] {
                if path.exists() {
                    files.push((run_dir.show(&path), path));
                }
            }
        }
        // Deleting anything ends what the up-to-date certificate vouches
        // for: it goes too.
        let certificate = run_dir.certificate_path();
        if !(files.is_empty() && internal.is_empty()) && certificate.exists() {
            internal.push(certificate);
        }
        Ok(CleanPlan {
            files,
            internal,
            tasks,
            kept,
            given,
        })
    }

    /// Deletes the files and forgets the tasks. The caller holds the run
    /// directory's lock.
    pub fn apply(&self, session: &mut Session) -> Result<()> {
        let paths = || self.files.iter().map(|(_, p)| p).chain(&self.internal);
        for path in paths() {
            session.run_dir.check_path_inside(path).map_err(|m| {
                let shown = session.run_dir.show(path);
                Error::usage(format!("not deleting {shown}: {m}"))
                    .hint("replace the symlinked folder with a real one")
            })?;
        }
        for path in paths() {
            files::remove_if_exists(path)?;
        }
        for name in &self.tasks {
            session.store.forget(&session.run_dir, name)?;
        }
        Ok(())
    }
}

/// Adds the files planexe keeps of `task` that exist: its sidecar,
/// `.DONE` and its logs to `files`, the sidecar's spare to `internal`.
fn state_files(
    run_dir: &crate::store::RunDir,
    task: &str,
    files: &mut Vec<(String, PathBuf)>,
    internal: &mut Vec<PathBuf>,
) {
    let status = run_dir.status_path(task);
    let spare = crate::store::rundir::spare_of(&status);
    if spare.exists() {
        internal.push(spare);
    }
    for path in [
        status,
        run_dir.done_path(task),
        run_dir.task_log_path(task),
        run_dir.check_log_path(task),
    ] {
        if path.exists() {
            files.push((run_dir.show(&path), path));
        }
    }
}
