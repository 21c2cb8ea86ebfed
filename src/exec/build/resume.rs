//! Where a run stands when a build resumes it (the `resuming run` line):
//! every task the build considers counted once, by what the build will do
//! with it, and the tasks that start first, as the scheduler will start
//! them. A fan-out that has yet to read its list has no instances in the
//! graph: the instances its records hold, done before, are counted beside
//! it, not as done (its list decides which keep their result).

use super::super::observer::{Notice, ResumeSummary, Unexpanded};
use super::super::scheduler;
use super::lists::Fanouts;
use crate::model::{Action, Graph, TaskId};
use crate::plan::Session;
use crate::plan::{Plan, Reason};
use crate::store::run_record::RunRecord;
use crate::store::StateStore;

/// Whether task `t` of the build runs only if, once what it waits for has
/// run (or the fan-out it reads has expanded), it is still stale.
pub(super) fn tentative(plan: &Plan, fanouts: &Fanouts, t: TaskId) -> bool {
    plan.reasons[t].as_ref().is_some_and(Reason::waits) || fanouts.after_expansion[t]
}

/// Where the run stands before a build that runs `to_run` (the wanted
/// tasks with a reason, in dependency order) resumes it.
pub(super) fn summary(
    graph: &Graph,
    plan: &Plan,
    run: &RunRecord,
    to_run: &[TaskId],
    fanouts: &Fanouts,
    store: &StateStore,
) -> ResumeSummary {
    let mut s = ResumeSummary {
        created_at: run.created_at.clone(),
        done: 0,
        failed: Vec::new(),
        interrupted: 0,
        to_run: 0,
        forced: 0,
        maybe: 0,
        expanding: Vec::new(),
        stuck: Vec::new(),
        behind: 0,
        starting_with: Vec::new(),
        dry_run: false,
    };
    s.done = graph
        .order()
        .iter()
        .filter(|&&t| plan.wanted[t] && plan.reasons[t].is_none())
        .count();
    let mut runs = vec![false; graph.id_bound()];
    for &t in to_run {
        let placeholder = matches!(graph[t].action, Action::Expand(_));
        if fanouts.left_out[t] {
            if placeholder {
                s.stuck.push(unexpanded(&graph[t].name));
            } else {
                s.behind += 1;
            }
            continue;
        }
        runs[t] = true;
        let Some(reason) = &plan.reasons[t] else {
            continue;
        };
        if placeholder {
            s.expanding.push(unexpanded(&graph[t].name));
        } else if reason.waits() {
            s.maybe += 1;
        } else {
            s.to_run += 1;
            match reason {
                Reason::FailedLastTime { message, .. } => {
                    s.failed.push((graph[t].name.clone(), message.clone()))
                }
                Reason::InterruptedLastTime { .. } => s.interrupted += 1,
                Reason::Forced => s.forced += 1,
                _ => {}
            }
        }
    }
    done_before(store, s.expanding.iter_mut().chain(&mut s.stuck));
    let tentative: Vec<bool> = (0..graph.id_bound())
        .map(|t| runs[t] && tentative(plan, fanouts, t))
        .collect();
    s.starting_with = scheduler::first_to_start(graph, &runs, &tentative, &fanouts.gates, 4)
        .into_iter()
        .map(|t| graph[t].name.clone())
        .collect();
    s
}

fn unexpanded(name: &str) -> Unexpanded {
    Unexpanded {
        name: name.to_string(),
        done_before: 0,
    }
}

/// Counts, for each fan-out of `fanouts`, its instances done before.
fn done_before<'a>(store: &StateStore, fanouts: impl Iterator<Item = &'a mut Unexpanded>) {
    let mut fanouts: Vec<&mut Unexpanded> = fanouts.collect();
    let names: Vec<&str> = fanouts.iter().map(|f| f.name.as_str()).collect();
    let done = crate::plan::instances_done_before(store, &names);
    for f in &mut fanouts {
        f.done_before = done.get(&f.name).copied().unwrap_or(0);
    }
}

/// The tasks whose records the state holds but the pipeline no longer
/// has (a fan-out's instances aside: their list decides), with the outputs
/// they made that are still on disk and that no task of the pipeline makes;
/// then, in one notice, the outputs that tasks still in the pipeline no
/// longer declare (an output renamed), on disk from their last run, and
/// made and read by no task now.
pub(super) fn tasks_left(session: &Session) -> Vec<Notice> {
    let graph = &session.graph;
    let mut left = Vec::new();
    let mut dropped = Vec::new();
    let stays = |p: &String| graph.producer(p).is_none() && session.run_dir.path(p).exists();
    for (name, record) in session.store.records() {
        if let Some(task) = graph.task(name) {
            let declared = |p: &String| task.outputs.iter().any(|o| &o.path == p);
            dropped.extend(
                (record.done.iter())
                    .flat_map(|d| d.outputs.keys())
                    .filter(|p| !declared(p) && stays(p))
                    .map(|p| (name.clone(), p.clone())),
            );
            continue;
        }
        if crate::model::fanout::split_instance(name)
            .is_some_and(|(base, _)| graph.fanouts.contains_key(base))
        {
            continue;
        }
        let outputs: Vec<String> = record
            .done
            .iter()
            .flat_map(|d| d.outputs.keys())
            .filter(|p| stays(p))
            .cloned()
            .collect();
        if !outputs.is_empty() {
            left.push(Notice::TaskLeft {
                task: name.clone(),
                outputs,
            });
        }
    }
    if !dropped.is_empty() {
        // A file a task now reads, as a source, is meant to stay.
        let read: std::collections::HashSet<&str> = (graph.tasks())
            .flat_map(|t| t.inputs.iter().map(|i| i.path.as_str()))
            .collect();
        dropped.retain(|(_, path)| !read.contains(path.as_str()));
    }
    if !dropped.is_empty() {
        dropped.sort_unstable();
        left.push(Notice::OutputsDropped { outputs: dropped });
    }
    left
}
