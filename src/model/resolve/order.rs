//! Pass 6 of resolution: what follows from the tasks' deps: each task's
//! dependents, its rank in the listing, and the topological order
//! (Kahn's algorithm, ties in declaration order); when there is none, one
//! cycle to report. Also that no output lies inside another (`x` and
//! `x/y` cannot both be files).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap as HashMap;

use super::super::graph::{Graph, TaskId, RETIRED};
use super::super::pipeline::Source;
use crate::error::{Error, Result};

/// Recomputes ranks, dependents and the order of `graph`. A cycle is
/// refused with the tasks on it, and so is an output inside another.
pub(super) fn link(graph: &mut Graph, source: &Source) -> Result<()> {
    nested_outputs(graph, source)?;
    graph.rank.clear();
    graph.rank.resize(graph.tasks.len(), RETIRED);
    for (position, &id) in graph.listing.iter().enumerate() {
        graph.rank[id] = position;
    }
    for task in &mut graph.tasks {
        task.dependents.clear();
    }
    for &id in &graph.listing {
        for dep in graph.tasks[id].deps.clone() {
            graph.tasks[dep].dependents.push(id);
        }
    }
    for task in &mut graph.tasks {
        task.dependents.sort_unstable();
    }
    graph.order = topological(graph).map_err(|cycle| {
        let names: Vec<&str> = cycle
            .iter()
            .map(|&t| graph.tasks[t].name.as_str())
            .collect();
        Error::pipeline(source.diagnostic(
            graph.tasks[cycle[0]].name_span.clone(),
            &format!("cycle: {}", names.join(" -> ")),
        ))
        .hint("break the cycle: remove an input that the next task produces, or an `after` entry")
    })?;
    Ok(())
}

/// Refuses an output inside another task's output (`x` and `x/y`): one
/// of the two would be a folder, and the build a race between them. One
/// lookup per folder above each output.
fn nested_outputs(graph: &Graph, source: &Source) -> Result<()> {
    // In the order tasks are listed: the same pipeline, the same message.
    for &id in &graph.listing {
        let task = &graph.tasks[id];
        for out in &task.outputs {
            let mut folder = out.path.as_str();
            while let Some((above, _)) = folder.rsplit_once('/') {
                folder = above;
                let Some(&outer) = graph.producers.get(folder) else {
                    continue;
                };
                return Err(Error::pipeline(source.diagnostic(
                    out.span.clone(),
                    &format!(
                        "output `{}` of task `{}` lies inside `{folder}`, an output of task `{}`",
                        out.path, task.name, graph.tasks[outer].name
                    ),
                ))
                .hint(
                    "outputs are files, and a file cannot also be a folder: rename one of them",
                ));
            }
        }
    }
    Ok(())
}

/// Every live task after all of its dependencies, the earliest declared
/// first among those ready; on a cycle, the tasks on one cycle in the
/// direction work flows, the first repeated at the end.
fn topological(graph: &Graph) -> Result<Vec<TaskId>, Vec<TaskId>> {
    let tasks = &graph.tasks;
    let mut indegree = vec![0usize; tasks.len()];
    for &id in graph.ids() {
        indegree[id] = tasks[id].deps.len();
    }
    let mut ready: BinaryHeap<Reverse<(usize, TaskId)>> = graph
        .ids()
        .iter()
        .filter(|&&id| indegree[id] == 0)
        .map(|&id| Reverse((graph.rank(id), id)))
        .collect();
    let mut order = Vec::with_capacity(graph.len());
    while let Some(Reverse((_, t))) = ready.pop() {
        order.push(t);
        for &d in &tasks[t].dependents {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push(Reverse((graph.rank(d), d)));
            }
        }
    }
    if order.len() == graph.len() {
        return Ok(order);
    }
    // Walk dependencies among the remaining tasks until one repeats.
    let start = graph
        .ids()
        .iter()
        .copied()
        .find(|&t| indegree[t] > 0)
        .unwrap_or(0);
    let mut path = vec![start];
    let mut position: HashMap<TaskId, usize> = [(start, 0usize)].into_iter().collect();
    let mut current = start;
    loop {
        let Some(&next) = tasks[current].deps.iter().find(|&&d| indegree[d] > 0) else {
            return Err(path);
        };
        if let Some(&i) = position.get(&next) {
            // The cycle runs from `next` through `current`; print it in the
            // direction work flows (producer before consumer).
            let mut cycle: Vec<TaskId> = path[i..].to_vec();
            cycle.reverse();
            cycle.push(cycle[0]);
            return Err(cycle);
        }
        position.insert(next, path.len());
        path.push(next);
        current = next;
    }
}
