//! `touch`: accept tasks' current outputs as done without running them
//! (`make -t`): record stamps and the fingerprint, write `.DONE`. Tasks
//! that read those outputs become stale if the outputs changed.
//!
//! [`assume`] is its dry run: the same records, taken in memory only, so
//! a plan made afterwards shows what the touch would leave to build.

use crate::error::{Error, Result};
use crate::plan::Session;
use crate::store::{Stamper, Status, TaskState};

/// Marks the tasks `names` (tasks, instances or fan-out tasks) as done with
/// their current files, and returns their names. Fails, naming the file,
/// when one of a task's inputs or outputs does not exist. The caller holds
/// the run directory's lock.
pub fn touch(session: &mut Session, names: &[String]) -> Result<Vec<String>> {
    let statuses = records(session, names)?;
    session.run_dir.remove_certificate()?;
    let mut touched = Vec::new();
    for status in statuses {
        session.store.write_status(&session.run_dir, &status)?;
        touched.push(status.task);
    }
    Ok(touched)
}

/// What [`touch`] would do, in `session`'s memory only: the same records,
/// the same refusals, nothing written. Returns the tasks' names.
pub fn assume(session: &mut Session, names: &[String]) -> Result<Vec<String>> {
    let statuses = records(session, names)?;
    let mut touched = Vec::new();
    for status in statuses {
        touched.push(status.task.clone());
        session.store.assume_done(status);
    }
    Ok(touched)
}

/// The `done` records of the tasks `names`, stamped from their files now.
fn records(session: &Session, names: &[String]) -> Result<Vec<Status>> {
    let stamper = Stamper::default();
    let ids = session.graph.tasks_named(names)?;
    let mut statuses = Vec::new();
    for id in ids {
        let task = &session.graph[id];
        let root = session.run_dir.root();
        let mut status = Status::new(&task.name, TaskState::Done, &task.fingerprint);
        status.definition = task.action.definition();
        let now = crate::clock::now_rfc3339();
        status.started_at = Some(now.clone());
        status.finished_at = Some(now);
        status.duration_ms = Some(0);
        for (paths, what, map) in [
            (
                task.inputs.iter().map(|i| &i.path).collect::<Vec<_>>(),
                "input",
                &mut status.inputs,
            ),
            (
                task.outputs.iter().map(|o| &o.path).collect::<Vec<_>>(),
                "output",
                &mut status.outputs,
            ),
        ] {
            for path in paths {
                match stamper.stamp(root, path)? {
                    Some(stamp) => {
                        map.insert(path.clone(), stamp);
                    }
                    None => {
                        return Err(Error::usage(format!(
                            "cannot touch {}: its {what} {path} does not exist",
                            task.name
                        ))
                        .hint(format!("run `planexe build {}` to produce it", task.name)))
                    }
                }
            }
        }
        statuses.push(status);
    }
    Ok(statuses)
}
