//! Where a run stands when a build resumes it (the `resuming run` line):
//! every task the build considers counted once, by what the build will do
//! with it, and the tasks that start first, as the scheduler will start
//! them.

use super::super::observer::ResumeSummary;
use super::super::scheduler;
use super::lists::Fanouts;
use crate::model::{Action, Graph, TaskId};
use crate::plan::{Plan, Reason};
use crate::store::run_record::RunRecord;

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
) -> ResumeSummary {
    let mut s = ResumeSummary {
        created_at: run.created_at.clone(),
        done: 0,
        failed: Vec::new(),
        interrupted: 0,
        to_run: 0,
        maybe: 0,
        expanding: Vec::new(),
        stuck: Vec::new(),
        behind: 0,
        starting_with: Vec::new(),
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
                s.stuck.push(graph[t].name.clone());
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
            s.expanding.push(graph[t].name.clone());
        } else if reason.waits() {
            s.maybe += 1;
        } else {
            s.to_run += 1;
            match reason {
                Reason::FailedLastTime(m) => s.failed.push((graph[t].name.clone(), m.clone())),
                Reason::InterruptedLastTime => s.interrupted += 1,
                _ => {}
            }
        }
    }
    let tentative: Vec<bool> = (0..graph.id_bound())
        .map(|t| runs[t] && tentative(plan, fanouts, t))
        .collect();
    s.starting_with = scheduler::first_to_start(graph, &runs, &tentative, &fanouts.gates, 4)
        .into_iter()
        .map(|t| graph[t].name.clone())
        .collect();
    s
}
