//! `foreach` tasks at the start of a build, once those whose list is ready
//! follow it (`Session::expand_ready`): a fan-out whose list this build
//! makes takes part as [`take_part`] says (it expands inside the build:
//! `growth`); and instances whose item is gone lose their outputs and
//! records. At the end, the fan-outs that never expanded, and what waits
//! behind them.

use std::collections::HashSet;

use super::super::observer::{Notice, Observer};
use crate::error::{Error, Result};
use crate::model::{Graph, TaskId};
use crate::plan::{Plan, Reason, Session};
use crate::store::files;
use crate::store::{RunDir, StateStore};

/// Removes the outputs, log and records of instances whose item is gone.
/// Only outputs no current task produces are removed.
pub(super) fn remove_vanished(session: &mut Session, observer: &dyn Observer) -> Result<()> {
    remove_vanished_from(
        &session.graph,
        &mut session.store,
        &session.run_dir,
        observer,
    )
}

/// [`remove_vanished`] with the session's parts (a running build holds
/// them apart).
pub(super) fn remove_vanished_from(
    graph: &Graph,
    store: &mut StateStore,
    run_dir: &RunDir,
    observer: &dyn Observer,
) -> Result<()> {
    let mut gone: Vec<(String, Vec<String>)> = Vec::new();
    for (base, group) in &graph.fanouts {
        if group.placeholder {
            continue;
        }
        let prefix = format!("{base}[");
        for (name, record) in store.records() {
            if name.starts_with(&prefix) && graph.task(name).is_none() {
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
            if graph.producer(&out).is_some() {
                continue;
            }
            // As `build` and `clean` refuse: never a file reached through a
            // folder that leads out of the run directory.
            run_dir.check_inside(&out).map_err(|m| {
                Error::usage(format!(
                    "not removing {out}, an output of {name} (its item is gone): {m}"
                ))
                .hint("replace the symlinked folder with a real one, or remove the file yourself")
            })?;
            if files::remove_if_exists(&run_dir.path(&out))? {
                removed.push(out);
            }
        }
        files::remove_if_exists(&run_dir.task_log_path(&name))?;
        files::remove_if_exists(&run_dir.check_log_path(&name))?;
        store.forget(run_dir, &name)?;
        observer.notice(&Notice::InstanceRemoved {
            task: name,
            outputs: removed,
        });
    }
    Ok(())
}

/// How the fan-outs take part in a build.
pub(super) struct Fanouts {
    /// Fan-outs whose list a task of this build makes: they expand (or
    /// follow their list again) when it ends, inside the build.
    pub expanding: HashSet<String>,
    /// (list producer, task): the instances of an expanded fan-out whose
    /// list is made again, and what depends on them, wait for it: the
    /// items may change.
    pub gates: Vec<(TaskId, TaskId)>,
    /// By id: placeholders whose list nothing in this build makes, and
    /// what depends on them: they cannot run.
    pub left_out: Vec<bool>,
    /// By id: what depends on a placeholder that expands in this build:
    /// whether it is stale can only be judged once the fan-out expanded,
    /// so it runs only if it still is then.
    pub after_expansion: Vec<bool>,
}

/// How the fan-outs of `graph` take part in a build with `plan`.
pub(super) fn take_part(graph: &Graph, plan: &Plan) -> Fanouts {
    let in_run = |t: TaskId| plan.reasons.get(t).is_some_and(Option::is_some);
    let mut fanouts = Fanouts {
        expanding: HashSet::new(),
        gates: Vec::new(),
        left_out: Vec::new(),
        after_expansion: Vec::new(),
    };
    let mut stuck = Vec::new();
    let mut expanding = Vec::new();
    for (name, list) in graph.lists() {
        let group = &graph.fanouts[name];
        let producer = graph.producer(list).filter(|&p| in_run(p));
        match (producer, group.placeholder) {
            (Some(_), true) => {
                fanouts.expanding.insert(name.to_string());
                expanding.extend(group.members.iter().copied());
            }
            (Some(p), false) => {
                // Its instances, and what reads them, wait for the list:
                // the items may change.
                fanouts.expanding.insert(name.to_string());
                let mut held: Vec<TaskId> = group
                    .members
                    .iter()
                    .flat_map(|&m| std::iter::once(m).chain(graph[m].dependents.iter().copied()))
                    .filter(|&t| in_run(t))
                    .collect();
                held.sort_unstable();
                held.dedup();
                fanouts.gates.extend(held.into_iter().map(|t| (p, t)));
            }
            (None, true) => stuck.extend(group.members.iter().copied().filter(|&m| in_run(m))),
            (None, false) => {}
        }
    }
    fanouts.left_out = graph.downstream(&stuck);
    fanouts.after_expansion = graph.downstream(&expanding);
    for t in expanding {
        fanouts.after_expansion[t] = false;
    }
    fanouts
}

/// The wanted fan-outs that are still placeholders: their list was not
/// built, so their instances are not counted anywhere.
pub(super) fn unexpanded(
    graph: &Graph,
    wanted: &[bool],
    reasons: &[Option<Reason>],
) -> Vec<String> {
    graph
        .placeholders()
        .filter(|&(name, _)| {
            graph.fanouts[name].members.iter().any(|&m| {
                wanted.get(m).copied().unwrap_or(false)
                    && !matches!(reasons.get(m), Some(Some(Reason::FailedLastTime { .. })))
            })
        })
        .map(|(name, _)| name.to_string())
        .collect()
}

/// How many of the tasks `not_run` lie downstream of the fan-outs
/// `unexpanded` (their placeholders not counted).
pub(super) fn behind(graph: &Graph, unexpanded: &[String], not_run: &[TaskId]) -> usize {
    let not_run: std::collections::HashSet<TaskId> = not_run.iter().copied().collect();
    let mut seen = vec![false; graph.id_bound()];
    let mut stack: Vec<TaskId> = unexpanded
        .iter()
        .filter_map(|name| graph.fanouts.get(name))
        .flat_map(|g| g.members.iter().copied())
        .collect();
    let placeholders = stack.clone();
    while let Some(t) = stack.pop() {
        for &d in &graph[t].dependents {
            if !seen[d] {
                seen[d] = true;
                stack.push(d);
            }
        }
    }
    (0..seen.len())
        .filter(|&t| seen[t] && not_run.contains(&t) && !placeholders.contains(&t))
        .count()
}
