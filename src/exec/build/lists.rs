//! `foreach` tasks during a build: a fan-out's instances follow its list
//! file as soon as that is ready (no task produces it, or its producer is
//! up to date), so they run in the same build; while the list is still to
//! be built, they and what depends on them wait ([`held`]); and instances
//! whose item is gone lose their outputs and records.

use super::super::observer::{Notice, Observer};
use crate::error::{Error, Result};
use crate::model::{Action, Graph, TaskId};
use crate::plan::{Plan, Session};
use crate::store::files;
use crate::store::CheckMode;

/// Brings every fan-out whose list is ready in line with its list, until
/// none changes: an expansion can make another list's producer up to date.
pub(super) fn expand_ready(session: &mut Session, mode: CheckMode) -> Result<()> {
    loop {
        let waiting: Vec<(String, Option<usize>)> = session
            .graph
            .lists()
            .map(|(name, list)| (name.to_string(), session.graph.producer(list)))
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        // Only lists with a producer need the plan.
        let plan = if waiting.iter().any(|(_, p)| p.is_some()) {
            Some(session.plan_all(mode)?)
        } else {
            None
        };
        let mut grew = false;
        for (name, producer) in waiting {
            let ready = match (producer, &plan) {
                (None, _) => true,
                (Some(p), Some(plan)) => plan.reasons[p].is_none(),
                (Some(_), None) => false,
            };
            if ready && session.expand(&name)? {
                grew = true;
            }
        }
        if !grew {
            return Ok(());
        }
    }
}

/// Removes the outputs, log and records of instances whose item is gone.
/// Only outputs no current task produces are removed.
pub(super) fn remove_vanished(session: &mut Session, observer: &dyn Observer) -> Result<()> {
    let mut gone: Vec<(String, Vec<String>)> = Vec::new();
    for (base, group) in &session.graph.fanouts {
        if group.placeholder {
            continue;
        }
        let prefix = format!("{base}[");
        for (name, record) in session.store.records() {
            if name.starts_with(&prefix) && session.graph.task(name).is_none() {
                let outputs = record
                    .done
                    .iter()
                    .flat_map(|d| d.outputs.keys().cloned())
                    .collect();
                gone.push((name.clone(), outputs));
            }
        }
    }
    gone.sort();
    for (name, outputs) in gone {
        let mut removed = Vec::new();
        for out in outputs {
            if session.graph.producer(&out).is_some() {
                continue;
            }
            // As `build` and `clean` refuse: never a file reached through a
            // folder that leads out of the run directory.
            session.run_dir.check_inside(&out).map_err(|m| {
                Error::usage(format!(
                    "not removing {out}, an output of {name} (its item is gone): {m}"
                ))
                .hint("replace the symlinked folder with a real one, or remove the file yourself")
            })?;
            if files::remove_if_exists(&session.run_dir.path(&out))? {
                removed.push(out);
            }
        }
        files::remove_if_exists(&session.run_dir.task_log_path(&name))?;
        files::remove_if_exists(&session.run_dir.check_log_path(&name))?;
        session.store.forget(&session.run_dir, &name)?;
        observer.notice(&Notice::InstanceRemoved {
            task: name,
            outputs: removed,
        });
    }
    Ok(())
}

/// What waits for a later batch: placeholders that run (their list is not
/// built yet), and the instances of a fan-out whose list's producer runs;
/// with the producers of those lists.
pub(super) fn held(graph: &Graph, plan: &Plan, to_run: &[TaskId]) -> (Vec<TaskId>, Vec<TaskId>) {
    let mut held: Vec<TaskId> = to_run
        .iter()
        .copied()
        .filter(|&t| matches!(graph[t].action, Action::Expand(_)))
        .collect();
    let mut producers = Vec::new();
    for (name, list) in graph.lists() {
        let Some(producer) = graph.producer(list) else {
            continue;
        };
        if plan.reasons[producer].is_none() {
            continue;
        }
        producers.push(producer);
        let group = &graph.fanouts[name];
        if !group.placeholder {
            held.extend(group.members.iter().copied());
        }
    }
    (held, producers)
}
