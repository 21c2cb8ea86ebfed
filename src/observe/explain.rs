//! Why a task is or is not stale, in full ([`explain`]): its verdict, its
//! last successful run and fingerprint (with a diff of its definition when
//! that changed), its last error, each input and output against its
//! recorded stamp, and the upstream tasks that will run. And the graph with
//! each task's state ([`graph`]). Both only read, and return data.

use crate::error::{Error, Result};
use crate::plan::Session;
use crate::store::stamp::{self, Stamp, Stamper};
use crate::store::{sidecar, CheckMode, ErrorKind};

use super::standing::Standing;

/// How one of a task's files compares with its record.
#[derive(Debug, Clone, PartialEq)]
pub enum FileVerdict {
    Missing,
    /// Not in the record: declared since the last run.
    New,
    /// Size and mtime as recorded.
    Same(Stamp),
    /// The same bytes under a new mtime.
    Touched {
        recorded: Stamp,
    },
    Changed {
        recorded: Stamp,
        now: Stamp,
    },
}

/// One input or output of the task explained.
#[derive(Debug, Clone)]
pub struct FileLine {
    pub path: String,
    /// The task that produces it.
    pub producer: Option<String>,
    pub verdict: FileVerdict,
    /// An output of the task edited by hand since its last run, which a
    /// build keeps as the task's result (the tasks that read it re-run).
    pub edited: bool,
}

/// The last successful run of the task explained.
#[derive(Debug, Clone)]
pub struct LastSuccess {
    pub finished_at: Option<String>,
    pub duration_ms: u64,
    pub recorded: String,
    pub now: String,
    /// `command` or `prompt`.
    pub kind: &'static str,
    /// When the definition changed and both texts are known: removed lines
    /// as `- `, added lines as `+ `.
    pub diff: Option<Vec<String>>,
}

/// Everything `explain TASK` says.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub task: String,
    /// Why it is stale; none: up to date.
    pub reason: Option<String>,
    pub last_success: Option<LastSuccess>,
    /// The last error: kind, first line, error_id.
    pub last_error: Option<(ErrorKind, String, Option<String>)>,
    pub inputs: Vec<FileLine>,
    pub outputs: Vec<FileLine>,
    /// Tasks it depends on that will run first.
    pub upstream: Vec<String>,
    pub marker_missing: bool,
    /// A fan-out waiting for its list: how many of its instances last
    /// succeeded (each kept if the list leaves its item and inputs
    /// unchanged).
    pub done_before: Option<usize>,
}

/// Explains task `name` (a task or an instance).
pub fn explain(session: &Session, name: &str, mode: CheckMode) -> Result<Explanation> {
    let graph = &session.graph;
    let Some(task) = session.task_named(name) else {
        // A fan-out's instances are explained one at a time: say which.
        if let Some(members) = graph.named(name) {
            let mut names: Vec<String> = members
                .iter()
                .take(3)
                .map(|&m| format!("`{}`", graph[m].name))
                .collect();
            if members.len() > names.len() {
                names.push("...".into());
            }
            let error = Error::usage(format!(
                "`{name}` is a fan-out task of {} instance(s): explain one instance at a time",
                members.len()
            ));
            return Err(if names.is_empty() {
                error
            } else {
                error.hint(format!("its instances are {}", names.join(", ")))
            });
        }
        return Err(graph.unknown_task(name));
    };
    let plan = session.plan(graph.closure(&[task.id]), mode)?;
    let record = session.store.done_record(&session.run_dir, &task.name);
    let sidecar = session.store.sidecar(&session.run_dir, &task.name);
    let last_success = record.as_ref().map(|rec| {
        let changed = rec.fingerprint != task.fingerprint;
        let before = sidecar.as_ref().and_then(|s| s.definition.clone());
        LastSuccess {
            finished_at: rec.finished_at.clone(),
            duration_ms: rec.duration_ms.unwrap_or(0),
            recorded: rec.fingerprint.clone(),
            now: task.fingerprint.clone(),
            kind: task.action.kind(),
            diff: match (changed, before, task.action.definition()) {
                (true, Some(before), Some(now)) => Some(diff(&before, &now)),
                _ => None,
            },
        }
    });
    // A `pending` sidecar holds no error: the failure or stop the log
    // records after the last success is the last error.
    let latest = session.store.latest(&session.run_dir, &task.name);
    let last_error = latest
        .as_ref()
        .and_then(|s| s.error.as_ref())
        .map(|e| (e.kind, e.first_line().to_string(), e.error_id.clone()));
    // Current stamps of the task's files, hashed only when needed.
    let stamper = Stamper::default();
    let root = session.run_dir.root();
    let edited = |path: &str| plan.edited.iter().any(|(t, p)| *t == task.id && p == path);
    let file = |path: &str, recorded: Option<&Stamp>| {
        let now = stamp::stat_inside(root, path).ok().flatten();
        let verdict = match (recorded, now) {
            (_, None) => FileVerdict::Missing,
            (None, Some(_)) => FileVerdict::New,
            (Some(r), Some(m)) if r.size == m.size && r.mtime_ns == m.mtime_ns => {
                FileVerdict::Same(r.clone())
            }
            (Some(r), Some(_)) => match stamper.stamp(root, path).ok().flatten() {
                Some(c) if c.blake3 == r.blake3 => FileVerdict::Touched {
                    recorded: r.clone(),
                },
                Some(c) => FileVerdict::Changed {
                    recorded: r.clone(),
                    now: c,
                },
                None => FileVerdict::Missing,
            },
        };
        FileLine {
            path: path.to_string(),
            producer: graph.producer(path).map(|p| graph[p].name.clone()),
            edited: edited(path),
            verdict,
        }
    };
    let rec = record.as_deref();
    Ok(Explanation {
        task: task.name.clone(),
        reason: plan.reasons[task.id]
            .as_ref()
            .map(|r| session.shown_reason(&task.name, r)),
        last_success,
        last_error,
        inputs: task
            .inputs
            .iter()
            .map(|i| file(&i.path, rec.and_then(|r| r.inputs.get(&i.path))))
            .collect(),
        outputs: task
            .outputs
            .iter()
            .map(|o| file(&o.path, rec.and_then(|r| r.outputs.get(&o.path))))
            .collect(),
        upstream: task
            .deps
            .iter()
            .filter(|&&d| plan.reasons[d].is_some())
            .map(|&d| graph[d].name.clone())
            .collect(),
        marker_missing: !sidecar::has_marker(&session.run_dir, &task.name),
        done_before: graph
            .fanouts
            .get(&task.name)
            .filter(|g| g.placeholder)
            .and_then(|_| {
                crate::plan::instances_done_before(&session.store, &[task.name.as_str()])
                    .remove(&task.name)
            }),
    })
}

/// A line diff (`similar`'s): removed lines as `- `, added lines as `+ `,
/// the lines both hold left out.
fn diff(before: &str, now: &str) -> Vec<String> {
    use similar::{ChangeTag, TextDiff};
    TextDiff::from_lines(before, now)
        .iter_all_changes()
        .filter_map(|change| {
            let sign = match change.tag() {
                ChangeTag::Equal => return None,
                ChangeTag::Delete => '-',
                ChangeTag::Insert => '+',
            };
            Some(format!("{sign} {}", change.value().trim_end_matches('\n')))
        })
        .collect()
}

/// One task of [`GraphView`].
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    /// `command`, `prompt` or `foreach`.
    pub kind: &'static str,
    pub standing: Standing,
    pub reason: Option<String>,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

/// The task graph with each task's state.
#[derive(Debug, Clone)]
pub struct GraphView {
    pub name: String,
    /// In declaration order.
    pub nodes: Vec<Node>,
    /// (from, to), as indices into `nodes`: `to` waits for `from`; in
    /// dependency order.
    pub edges: Vec<(usize, usize)>,
}

/// The graph of the session's pipeline, each task with its state.
pub fn graph(session: &Session, mode: CheckMode) -> Result<GraphView> {
    let graph = &session.graph;
    let plan = session.plan_all(mode)?;
    let running = session.builder();
    let nodes = graph
        .tasks()
        .map(|t| {
            let reason = plan.reasons[t.id].as_ref();
            let latest = match reason {
                Some(crate::plan::Reason::InterruptedLastTime { .. }) => {
                    session.store.sidecar(&session.run_dir, &t.name)
                }
                _ => None,
            };
            Node {
                name: t.name.clone(),
                kind: t.action.kind(),
                standing: Standing::of(reason, latest.as_ref(), running),
                reason: reason.map(ToString::to_string),
                inputs: t.inputs.iter().map(|i| i.path.clone()).collect(),
                outputs: t.outputs.iter().map(|o| o.path.clone()).collect(),
            }
        })
        .collect();
    let edges = graph
        .order()
        .iter()
        .flat_map(|&t| {
            // An instance waits for its list's producer too.
            graph[t]
                .deps
                .iter()
                .copied()
                .chain(
                    graph
                        .list_producer(t)
                        .filter(|p| !graph[t].deps.contains(p)),
                )
                .map(move |d| (graph.rank(d), graph.rank(t)))
        })
        .collect();
    Ok(GraphView {
        name: graph.name.clone(),
        nodes,
        edges,
    })
}
