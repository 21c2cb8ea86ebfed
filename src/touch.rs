//! `planexe touch`: accept tasks' current outputs as done without running
//! them (`make -t`): record stamps and the fingerprint, write `.DONE`. Tasks
//! that read those outputs become stale if the outputs changed.

use crate::cli::{Cli, TouchArgs};
use crate::error::{Error, Result};
use crate::printer::Printer;
use crate::session::Session;
use crate::stamp::Stamper;
use crate::state::{self, Status, TaskState};

pub fn touch(cli: &Cli, args: &TouchArgs, printer: &Printer) -> Result<()> {
    let mut session = Session::open(cli, printer, None)?;
    let _lock = session.run_dir.lock("touch")?;
    let stamper = Stamper::default();
    let mut ids = Vec::new();
    for name in &args.tasks {
        match session.graph.named(name) {
            Some(found) => ids.extend(found),
            None => {
                return Err(Error::usage(format!("unknown task `{name}`"))
                    .hint("run `planexe status` to list tasks"))
            }
        }
    }
    for id in ids {
        let task = &session.graph.tasks[id];
        let root = session.run_dir.root();
        let mut status = Status::new(&task.name, TaskState::Done, &task.fingerprint);
        status.definition = crate::build::definition(&task.action);
        let now = state::now_rfc3339();
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
        printer.note(&format!("touched {}", task.name));
    }
    Ok(())
}
