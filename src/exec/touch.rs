//! `touch`: accept tasks' current outputs as done without running them
//! (`make -t`): record stamps and the fingerprint, write `.DONE`. Tasks
//! that read those outputs become stale if the outputs changed.

use crate::error::{Error, Result};
use crate::plan::Session;
use crate::store::{Stamper, Status, TaskState};

/// Marks the tasks `names` (tasks, instances or fan-out tasks) as done with
/// their current files, and returns their names. Fails, naming the file,
/// when one of a task's inputs or outputs does not exist. The caller holds
/// the run directory's lock.
pub fn touch(session: &mut Session, names: &[String]) -> Result<Vec<String>> {
    let stamper = Stamper::default();
    let ids = session.graph.tasks_named(names)?;
    session.run_dir.remove_certificate()?;
    let mut touched = Vec::new();
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
        session.store.write_status(&session.run_dir, &status)?;
        touched.push(task.name.clone());
    }
    Ok(touched)
}
