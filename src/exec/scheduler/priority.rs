//! Which ready task starts first: the one with the most work still
//! behind it, on the longest chain from it to the end of the graph
//! (critical path first, as ninja 1.12 does), so a long chain of model
//! calls is never left waiting behind short side work when jobs are
//! scarce. Work is weighed by what a task costs: a model call (a prompt,
//! a judge, a fan-out of model calls not yet expanded) far more than a
//! command. Ties go to declaration order, so a run is reproducible.

use crate::model::{Action, Graph, Task};

/// The weight of a model call against a command's 1.
const MODEL_CALL: u64 = 100;

/// What running the task costs, in commands.
fn weight(task: &Task) -> u64 {
    let own = match task.action {
        Action::Command(_) => 1,
        // A placeholder stands for its instances, which run side by side:
        // one model call deep in all likelihood.
        Action::Prompt(_) | Action::Expand(_) => MODEL_CALL,
    };
    own + if task.checks.judge.is_some() {
        MODEL_CALL
    } else {
        0
    }
}

/// Each live task's priority, by id: its weight plus the heaviest chain
/// of dependents after it. Higher starts first.
pub(super) fn priorities(graph: &Graph) -> Vec<u64> {
    let mut height = vec![0u64; graph.id_bound()];
    for &t in graph.order().iter().rev() {
        let after = graph[t]
            .dependents
            .iter()
            .filter(|&&d| graph.is_live(d))
            .map(|&d| height[d])
            .max()
            .unwrap_or(0);
        height[t] = weight(&graph[t]) + after;
    }
    height
}
