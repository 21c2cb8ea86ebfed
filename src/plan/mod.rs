//! The plan: what is stale and why, and everything that decides it
//! without running anything.
//!
//! - [`check`]: one task against its records and the files on disk, with
//!   the [`Reason`] it must run;
//! - [`Plan`]: every wanted task, checked in parallel, reasons flowing
//!   downstream (a task whose input will be rebuilt waits and is judged
//!   again: early cutoff), the outputs of those that will run looked at
//!   (`inside`); and the tasks a build of some targets leaves out, as a
//!   dry run of every task judges them ([`Plan::beside`]);
//! - [`certificate`]: the proof that everything is up to date, checked
//!   from stats alone;
//! - [`session`]: one invocation's view of a run directory, opened from a
//!   location and options;
//! - [`seeds`]: the files the run was given when it was made, which no
//!   task that runs may write.
//!
//! Above the model and the store; below execution.

pub mod certificate;
pub mod check;
mod inside;
mod location;
pub mod seeds;
pub mod session;

use rayon::prelude::*;

pub use check::{Check, Checker, Reason, Side};
pub use seeds::Seeds;
pub use session::Session;

use crate::error::Result;
use crate::model::{Action, Graph, TaskId};
use crate::store::{Recorded, StateStore, Status};

/// The plan of one build over the wanted tasks.
#[derive(Debug)]
pub struct Plan {
    pub wanted: Vec<bool>,
    /// For wanted tasks that will run: why. `Upstream` and `AwaitsFanout`
    /// mean the task runs only if, once its dependencies finish, it is
    /// still stale.
    pub reasons: Vec<Option<Reason>>,
    /// Records to update for fresh tasks (same bytes, hand edits).
    pub updates: Vec<Status>,
    /// Hand-edited outputs accepted, as (task, path).
    pub edited: Vec<(TaskId, String)>,
}

impl Plan {
    /// Checks every wanted task, in dependency order.
    pub fn make(checker: &Checker, wanted: Vec<bool>, forced: &[bool]) -> Result<Plan> {
        Plan::make_checking(checker, wanted, forced, None)
    }

    /// Checks the wanted tasks in `check` (all when `None`), in dependency
    /// order; the others are up to date as far as they go (the up-to-date
    /// certificate vouches for them), and stale only when something they
    /// depend on runs.
    pub fn make_checking(
        checker: &Checker,
        wanted: Vec<bool>,
        forced: &[bool],
        check: Option<&[bool]>,
    ) -> Result<Plan> {
        Plan::make_looking(checker, wanted, forced, check, true)
    }

    /// [`Plan::make_checking`]; `look`: whether the outputs of the tasks
    /// that will run are looked at (can they be written inside the run
    /// directory?), which only a plan that runs them needs, not a report
    /// of tasks a build leaves out.
    fn make_looking(
        checker: &Checker,
        wanted: Vec<bool>,
        forced: &[bool],
        check: Option<&[bool]>,
        look: bool,
    ) -> Result<Plan> {
        let graph = checker.graph;
        let checked = |id: TaskId| check.is_none_or(|c| c.get(id).copied().unwrap_or(true));
        let mut reasons: Vec<Option<Reason>> = vec![None; graph.id_bound()];
        let mut updates = Vec::new();
        let mut edited = Vec::new();
        // Each task's own check only reads its record and stats its files:
        // they run in parallel; reasons that flow downstream come after.
        let ids: Vec<TaskId> = graph
            .order()
            .iter()
            .copied()
            .filter(|&id| wanted[id] && !forced[id] && checked(id))
            .collect();
        let mut checks: Vec<Option<Check>> = Vec::new();
        checks.resize_with(graph.id_bound(), || None);
        let t = crate::phases::phase("plan: checks");
        let results: Vec<(TaskId, Result<Check>)> =
            ids.par_iter().map(|&id| (id, checker.check(id))).collect();
        drop(t);
        // The tasks that will run: can their outputs be written?
        let looked = look.then(|| crate::phases::phase("plan: outputs of what runs"));
        let runs: Vec<TaskId> = (results.iter().filter(|_| look))
            .filter(|(_, check)| matches!(check, Ok(Check::Stale(_))))
            .map(|&(id, _)| id)
            .chain(
                graph
                    .ids()
                    .iter()
                    .copied()
                    .filter(|&id| wanted[id] && forced[id]),
            )
            .collect();
        let outputs = inside::Outputs::look(checker, &runs);
        let results: Vec<(TaskId, Result<Check>)> = results
            .into_par_iter()
            .map(|(id, check)| match check {
                Ok(Check::Stale(reason)) if look => (
                    id,
                    outputs.inside(checker, id).map(|()| Check::Stale(reason)),
                ),
                other => (id, other),
            })
            .collect();
        drop(looked);
        let _t = crate::phases::phase("plan: reasons");
        for (id, check) in results {
            checks[id] = Some(check?);
        }
        for &id in graph.order() {
            if !wanted[id] {
                continue;
            }
            let own = if forced[id] {
                Some(Reason::Forced)
            } else {
                let unchecked = Check::Fresh {
                    update: None,
                    edited: Vec::new(),
                };
                let fallback = if checked(id) {
                    Check::Stale(Reason::NeverBuilt { cleaned: false })
                } else {
                    unchecked
                };
                match checks[id].take().unwrap_or(fallback) {
                    Check::Stale(reason) => Some(reason),
                    Check::Fresh {
                        update,
                        edited: paths,
                    } => {
                        updates.extend(update.map(|u| *u));
                        edited.extend(paths.into_iter().map(|p| (id, p)));
                        None
                    }
                }
            };
            // (Checked tasks had their outputs looked at with their check.)
            if forced[id] {
                outputs.inside(checker, id)?;
            }
            // A changed input whose producer runs first is expected to
            // change: the task waits and is judged again afterwards.
            let own = match own {
                Some(Reason::InputChanged(path))
                    if graph.producer(&path).is_some_and(|p| reasons[p].is_some()) =>
                {
                    None
                }
                other => other,
            };
            // A fan-out that has not expanded yet (its list is to be
            // built) stands for instances nobody knows: what reads it
            // cannot be judged by its inputs, and waits for it.
            let awaited = graph[id].deps.iter().find_map(|&d| match &graph[d].action {
                Action::Expand(list) if reasons[d].is_some() => Some(Reason::AwaitsFanout {
                    fanout: graph[d].name.clone(),
                    list: list.clone(),
                }),
                _ => None,
            });
            let own = own.filter(|r| awaited.is_none() || !r.about_inputs());
            reasons[id] = own.or(awaited).or_else(|| {
                graph[id]
                    .deps
                    .iter()
                    .find(|&&d| reasons[d].is_some())
                    .map(|&d| Reason::Upstream(graph[d].name.clone()))
            });
        }
        Ok(Plan {
            wanted,
            reasons,
            updates,
            edited,
        })
    }

    /// Where the tasks a build of some targets leaves out (`wanted`
    /// false) stand, as a dry run of every task (`build -n`) says: each
    /// checked against its records and files, and stale too when a task
    /// it depends on runs. `reasons` are the build's own, by id, for the
    /// tasks it builds (its targets and what they need): they flow down
    /// into the others. The tasks it builds have `None` here. Whether
    /// their outputs could be written is not asked: this build writes
    /// none of them.
    pub fn beside(
        checker: &Checker,
        wanted: &[bool],
        reasons: &[Option<Reason>],
    ) -> Result<Vec<Option<Reason>>> {
        Plan::judge_beside(checker, wanted, reasons, None)
    }

    /// [`Plan::beside`] again, after the tasks `ended` of the build ran:
    /// only the tasks left out downstream of them are judged again (their
    /// inputs may have changed, or be the same), the others keep their
    /// reasons of `before`, the last judgement. `None` when none is
    /// downstream, and `before` still holds.
    pub fn beside_after(
        checker: &Checker,
        wanted: &[bool],
        reasons: &[Option<Reason>],
        before: &[Option<Reason>],
        ended: &[TaskId],
    ) -> Option<Result<Vec<Option<Reason>>>> {
        let built = |t: &&TaskId| wanted.get(**t).copied().unwrap_or(false);
        let ended: Vec<TaskId> = ended.iter().filter(built).copied().collect();
        if ended.is_empty() {
            return None;
        }
        let mut again = checker.graph.downstream(&ended);
        for (t, again) in again.iter_mut().enumerate() {
            *again &= !wanted.get(t).copied().unwrap_or(false);
        }
        if !again.contains(&true) {
            return None;
        }
        Some(Plan::judge_beside(
            checker,
            wanted,
            reasons,
            Some((&again, before)),
        ))
    }

    /// [`Plan::beside`], judging again only the tasks `again` says when
    /// given, the others left out keeping their reasons of `before`.
    fn judge_beside(
        checker: &Checker,
        wanted: &[bool],
        reasons: &[Option<Reason>],
        again: Option<(&[bool], &[Option<Reason>])>,
    ) -> Result<Vec<Option<Reason>>> {
        let graph = checker.graph;
        let n = graph.id_bound();
        let outside: Vec<bool> = (0..n)
            .map(|t| !wanted.get(t).copied().unwrap_or(false))
            .collect();
        let judged = |t: TaskId| again.is_none_or(|(a, _)| a.get(t).copied().unwrap_or(false));
        let check: Vec<bool> = (0..n).map(|t| outside[t] && judged(t)).collect();
        // Only the tasks left out are checked: the others are the build's.
        let plan =
            Plan::make_looking(checker, vec![true; n], &vec![false; n], Some(&check), false)?;
        let mut out = plan.reasons;
        let built = |t: TaskId| reasons.get(t).cloned().flatten();
        for &id in graph.order() {
            if !outside[id] {
                out[id] = built(id);
                continue;
            }
            if !judged(id) {
                out[id] = again.and_then(|(_, before)| before.get(id).cloned().flatten());
                continue;
            }
            // An input the build remakes first changes as the build goes:
            // the task runs after it, as a dry run would say.
            if let Some(Reason::InputChanged(path)) = &out[id] {
                if graph
                    .producer(path)
                    .is_some_and(|p| !outside[p] && built(p).is_some())
                {
                    out[id] = None;
                }
            }
            if out[id].is_none() {
                out[id] = (graph[id].deps.iter())
                    .find(|&&d| out[d].is_some())
                    .map(|&d| Reason::Upstream(graph[d].name.clone()));
            }
        }
        for (t, reason) in out.iter_mut().enumerate() {
            if !outside[t] {
                *reason = None;
            }
        }
        Ok(out)
    }

    /// Wanted tasks that will (or may) run, in dependency order.
    pub fn to_run<'a>(&'a self, graph: &'a Graph) -> impl Iterator<Item = TaskId> + 'a {
        graph
            .order()
            .iter()
            .copied()
            .filter(|&t| self.wanted[t] && self.reasons[t].is_some())
    }

    /// A plan that finds every task of `graph` up to date (what the
    /// certificate vouches for).
    pub fn up_to_date(graph: &Graph) -> Plan {
        let n = graph.id_bound();
        let mut wanted = vec![false; n];
        for &id in graph.ids() {
            wanted[id] = true;
        }
        Plan {
            wanted,
            reasons: vec![None; n],
            updates: Vec::new(),
            edited: Vec::new(),
        }
    }

    /// Tasks whose definition changed since their last run (prompt,
    /// system, schema, command, format, sampling parameters).
    pub fn changed_definitions(&self, graph: &Graph) -> Vec<String> {
        graph
            .order()
            .iter()
            .filter(|&&t| matches!(self.reasons[t], Some(Reason::ActionChanged(_))))
            .map(|&t| graph[t].name.clone())
            .collect()
    }
}

/// For each fan-out named in `fanouts` (one still waiting for its list,
/// which has no instances in the graph), how many instances (`NAME[KEY]`)
/// its records say last succeeded: the build keeps each whose item and
/// inputs its list leaves unchanged. One pass over the records; a fan-out
/// with none is left out.
pub fn instances_done_before(
    store: &StateStore,
    fanouts: &[&str],
) -> std::collections::HashMap<String, usize> {
    let mut done = std::collections::HashMap::new();
    if fanouts.is_empty() {
        return done;
    }
    for (name, _) in store.records() {
        let Some((base, _)) = crate::model::fanout::split_instance(name) else {
            continue;
        };
        if fanouts.contains(&base) && matches!(store.recorded_in_memory(name), Recorded::Done(_)) {
            *done.entry(base.to_string()).or_insert(0) += 1;
        }
    }
    done
}
