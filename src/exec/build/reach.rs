//! Which tasks an edit build checks: those the up-to-date certificate's
//! changes reach.

use crate::model::{Action, Graph};
use crate::plan::certificate::Changes;

/// The tasks the changes the up-to-date certificate found can reach: those
/// reading or writing a changed file or a file in a changed folder, with a
/// changed folder every task reading a glob, and every fan-out waiting for
/// its list. `None` when a changed file is a `foreach` list (the graph
/// itself may differ): every task is checked.
pub(super) fn reached(graph: &Graph, changes: &Changes) -> Option<Vec<bool>> {
    let files: rustc_hash::FxHashSet<&str> = changes.files.iter().map(String::as_str).collect();
    if graph.lists().any(|(_, list)| files.contains(list)) {
        return None;
    }
    let in_folder = |p: &str| {
        changes.folders.iter().any(|f| {
            p.len() > f.len() && p.starts_with(f.as_str()) && p.as_bytes()[f.len()] == b'/'
        })
    };
    let mut reach = vec![false; graph.id_bound()];
    for task in graph.tasks() {
        let mut paths = task
            .inputs
            .iter()
            .map(|i| i.path.as_str())
            .chain(task.outputs.iter().map(|o| o.path.as_str()));
        // A fan-out waiting for its list says so itself (its list's
        // producer is stale): judged, it costs no look at any file.
        reach[task.id] = matches!(task.action, Action::Expand(_))
            || (task.origin.globs && !changes.folders.is_empty())
            || paths.any(|p| files.contains(p) || in_folder(p));
    }
    Some(reach)
}
