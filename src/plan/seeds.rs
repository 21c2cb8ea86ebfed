//! The files a run was given when it was made (its seeds: `planexe new
//! --input`, `run_create`'s `files`, as `.planexe/origin.json` records
//! them), kept from the tasks. Nothing a user gave is destroyed: a task
//! that would write a seed is refused before it runs.
//!
//! When the run was made no task wrote a seed (`exec::new_run` refused
//! one), but the pipeline file is the user's, referenced rather than
//! copied, and may change since: a task, or an instance of a `foreach`
//! fan-out (an item its list gained), may come to name a seed's path as
//! an output. Running it would set the user's file aside and replace it.
//! A build refuses such a task before anything runs, and a fan-out whose
//! list, built during the build, makes such an instance fails as a list
//! that cannot be expanded does ([`Seeds::check`] is the one judge of
//! both).
//!
//! `clean` leaves such a file on disk too, and says so.
//!
//! A seed is kept only while it is in the run directory (removed by its
//! user, there is nothing left to keep) and is not the task's own work:
//! a task whose last successful run recorded the path as its output wrote
//! the file there after the seed was removed. A run made by a planexe
//! that did not record its seeds, or by hand, has none to keep.

use std::collections::HashSet;

use super::check::Checker;
use crate::error::{Error, Result};
use crate::model::TaskId;
use crate::store::origin::Origin;
use crate::store::{RunDir, StateStore};

/// The paths of the files a run was given when it was made.
#[derive(Debug, Clone, Default)]
pub struct Seeds {
    paths: HashSet<String>,
}

impl Seeds {
    /// The seeds `run_dir`'s `origin.json` records; none when it has none
    /// (or it does not say).
    pub fn load(run_dir: &RunDir) -> Seeds {
        let paths = Origin::load(run_dir)
            .map(|o| o.input_paths().map(str::to_string).collect())
            .unwrap_or_default();
        Seeds { paths }
    }

    /// Whether `path`, an output of task `task`, is a seed to keep from
    /// it: a file the run was given, still in the run directory, that the
    /// task's last successful run did not write.
    pub fn guards(&self, run_dir: &RunDir, store: &StateStore, task: &str, path: &str) -> bool {
        self.paths.contains(path)
            && std::fs::symlink_metadata(run_dir.path(path)).is_ok()
            && !store
                .done_record(run_dir, task)
                .is_some_and(|done| done.outputs.contains_key(path))
    }

    /// Refuses the first of `tasks` (of `checker`'s graph, by id) that
    /// would write a seed still in the run directory and not its own work:
    /// at the output's place in the pipeline file, naming the task and the
    /// path, with what to do.
    pub fn check(&self, checker: &Checker, tasks: &[TaskId]) -> Result<()> {
        if self.paths.is_empty() {
            return Ok(());
        }
        for &id in tasks {
            let task = &checker.graph[id];
            for out in &task.outputs {
                if !self.guards(checker.run_dir, checker.store, &task.name, &out.path) {
                    continue;
                }
                let name = &task.name;
                let shown = &out.path;
                let message = format!(
                    "output of task `{name}`: {} is a file the run was given when it was made \
                     (`planexe new --input`, or `run_create`'s `files`); `{name}` would overwrite it",
                    out.path
                );
                return Err(
                    Error::pipeline(checker.source.diagnostic(out.span.clone(), &message)).hint(
                        format!(
                            "a build never writes over a file the run was given: rename this \
                             output in the pipeline file, or, if the file is no longer wanted, \
                             delete {shown} from the run directory (or move it out) and build again"
                        ),
                    ),
                );
            }
        }
        Ok(())
    }
}
