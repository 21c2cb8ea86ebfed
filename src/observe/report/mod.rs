//! `planexe report [-o FILE]`: one self-contained HTML page of the run, to
//! open in a browser or attach to a ticket. It shows
//!
//! - the header: run directory, pipeline, run id, when the run was created,
//!   the last build's times and outcome, counts, and the tokens and cost
//!   of every model call of the run (`usage.jsonl`, as `status` sums it:
//!   what the run spent does not shrink when the graph does, as when a
//!   fan-out waits for its list again);
//! - every failure: error kind, full message, `error_id` and the tail of the
//!   task's log;
//! - a timeline (Gantt chart) of each recent build: tasks and model calls on
//!   the lanes they ran in, from `.planexe/trace.json` (and `trace.1.json`,
//!   the trace set aside before it, for more builds) (or, without a trace,
//!   each task's last run from its recorded status);
//! - the task graph as inline SVG, nodes in columns by dependency depth,
//!   coloured by state with the palette of `planexe graph`;
//! - every task (fan-out instances included) with its state, duration,
//!   model, tokens, cost and warnings, and the totals of those last runs
//!   (and of every call of the run, when it spent more).
//!
//! The page needs no network: its CSS is inline, it has no script, and its
//! Content-Security-Policy forbids loading anything, so even a string that
//! slipped through unescaped could neither run nor fetch. Every string that
//! comes from a user, a task or a server (names, paths, error messages, log
//! lines) goes through `esc`: the template environment's formatter runs
//! every value a template prints through it.
//!
//! Every task's state, and the counts of the header, are where the task
//! stands as `planexe status` says at the same moment: the caller passes
//! the status ([`super::status::of_run`]), the one derivation of both, so
//! a page made while a build runs counts the running, pending and stale
//! tasks as `status` does.
//!
//! Gathering (`Page::gather`, this module) reads the state once into a
//! `Page`; rendering (`render`) is a pure function of it: `view` turns
//! it into the data the page shows, and the minijinja templates in
//! `templates/` (compiled into the binary) lay that out as HTML. Making a
//! report only reads (no lock); the caller writes the page.

mod labels;
mod render;
mod view;

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

pub use render::try_render;

use super::standing::Standing;
use super::status::StatusReport;
use super::summary::{self, Outcome, Summary};
use super::trace::{self, Category, Phase, TraceEvent};
use crate::clock::micros;
use crate::model::Graph;
use crate::plan::Session;
use crate::store::run_record::{BuildEntry, RunRecord};
use crate::store::untrusted::Secrets;
use crate::store::{files, Recorded, StateStore, Status, TaskError};

/// Build timelines shown, most recent first; older ones stay in the trace.
const MAX_TIMELINES: usize = 10;
/// Lines of a failed task's log shown under its error (as `build` prints).
const LOG_TAIL_LINES: usize = 15;
/// How much of the end of a log is read to find those lines.
const LOG_TAIL_BYTES: u64 = 16 * 1024;

/// The HTML report of the session's run, whose `status` says where each
/// task stands; the log lines it shows are scrubbed of `secrets` (a
/// command may print the key it was given).
pub fn html(
    session: &Session,
    status: &StatusReport,
    secrets: &Secrets,
) -> crate::error::Result<String> {
    try_render(&Page::gather(session, status, secrets))
}

/// The order the header lists the states in: `status`'s groups.
const COUNTED: [Standing; 8] = [
    Standing::Failed,
    Standing::FailedPendingCheck,
    Standing::Running,
    Standing::Stopped,
    Standing::Stale,
    Standing::NeverBuilt,
    Standing::Pending,
    Standing::Done,
];

/// Everything the page shows.
pub struct Page {
    /// `[pipeline].name`, else the pipeline folder's name.
    name: String,
    /// Counts, totals and one row per task, in declaration order.
    summary: Summary,
    run: Option<RunRecord>,
    /// What the summary does not say, one per task, in the same order.
    tasks: Vec<TaskDetail>,
    /// Build timelines, most recent first.
    timelines: Vec<Timeline>,
    /// Builds in the trace older than the timelines shown.
    omitted: usize,
    /// How many tasks stand in each state, as `status` counts them, in
    /// [`COUNTED`]'s order; states without a task left out.
    counts: Vec<(Standing, usize)>,
}

struct TaskDetail {
    /// `command`, `prompt` or `foreach` (a placeholder).
    kind: &'static str,
    /// Positions in the page's task list.
    deps: Vec<usize>,
    /// The length of the longest chain of dependencies leading to the task.
    depth: usize,
    /// The whole error (the summary keeps its first line).
    error: Option<TaskError>,
    /// The last lines of `.planexe/logs/NAME.log`, for a failed task.
    log_tail: Vec<String>,
    /// Where it stands, as `status` says.
    standing: Standing,
}

/// One build on a time axis.
struct Timeline {
    label: String,
    spans: Vec<Span>,
}

/// A task run or a model call.
struct Span {
    name: String,
    /// A model call (drawn thin, inside its task's lane).
    call: bool,
    lane: u64,
    start_us: i64,
    dur_us: i64,
    /// Tasks: `done`, `failed`, `stopped`. Calls: `ok` or the error type.
    state: String,
    /// Tasks: the error message. Calls: the `error_id`.
    note: Option<String>,
}

impl Page {
    fn gather(session: &Session, status: &StatusReport, secrets: &Secrets) -> Page {
        let graph = &session.graph;
        let store = &session.store;
        let summary = summary::build(
            graph,
            store,
            &session.run_dir,
            session.run.as_ref(),
            &session.pipeline.path.display().to_string(),
        );
        let depth = depths(graph);
        let standings: HashMap<&str, Standing> = (status.tasks.iter())
            .map(|line| (line.task.as_str(), line.state))
            .collect();
        let tasks = graph
            .tasks()
            .zip(&summary.tasks)
            .map(|(t, row)| {
                let error = last_outcome(store, &t.name).and_then(|s| s.error.clone());
                let log_tail = match error {
                    Some(_) => log_tail(&session.run_dir.task_log_path(&t.name), secrets),
                    None => Vec::new(),
                };
                TaskDetail {
                    kind: t.action.kind(),
                    deps: t.deps.iter().map(|&d| graph.rank(d)).collect(),
                    depth: depth[t.id],
                    error,
                    log_tail,
                    // A task the status does not list (it lists what
                    // its session expands): its last outcome.
                    standing: standings
                        .get(t.name.as_str())
                        .copied()
                        .unwrap_or(match row.state {
                            Outcome::Done => Standing::Done,
                            Outcome::Failed => Standing::Failed,
                            Outcome::Stopped => Standing::Stopped,
                            Outcome::NotRun => Standing::NeverBuilt,
                        }),
                }
            })
            .collect();
        let run = session.run.as_ref();
        let mut timelines = read_trace(&session.run_dir.trace_path(), run);
        if timelines.len() < MAX_TIMELINES {
            // The builds before the trace was last set aside
            // (`store::history`), older than any in it.
            let older = read_trace(&session.run_dir.trace_aside_path(), run);
            timelines.splice(..0, older);
        }
        if timelines.is_empty() {
            timelines.extend(last_runs(graph, store));
        }
        let omitted = timelines.len().saturating_sub(MAX_TIMELINES);
        timelines.drain(..omitted);
        timelines.reverse();
        Page {
            name: graph.name.clone(),
            summary,
            run: session.run.clone(),
            tasks,
            timelines,
            omitted,
            counts: COUNTED
                .iter()
                .filter_map(|s| Some((*s, *status.counts.get(s).filter(|&&n| n > 0)?)))
                .collect(),
        }
    }
}

/// Each task's depth: 0 without dependencies, else one more than its
/// deepest dependency.
fn depths(graph: &Graph) -> Vec<usize> {
    let mut depth = vec![0; graph.id_bound()];
    for &t in graph.order() {
        depth[t] = graph[t]
            .deps
            .iter()
            .map(|&d| depth[d] + 1)
            .max()
            .unwrap_or(0);
    }
    depth
}

/// The status the summary reports: the last failure or stop, else the last
/// success.
fn last_outcome(store: &StateStore, task: &str) -> Option<Status> {
    match store.recorded_in_memory(task) {
        Recorded::Never => None,
        Recorded::Failed(s)
        | Recorded::Interrupted(s)
        | Recorded::Unmarked(s)
        | Recorded::Done(s) => Some(s.into_owned()),
    }
}

/// The last lines of a log, read from its end, scrubbed of `secrets`;
/// none when it is missing.
pub(crate) fn log_tail(path: &Path, secrets: &Secrets) -> Vec<String> {
    let Ok(mut file) = files::open_read(path) else {
        return Vec::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let from = len.saturating_sub(LOG_TAIL_BYTES);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = secrets.redact(&String::from_utf8_lossy(&bytes));
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // Reading from the middle of the file starts mid-line: the end of a
    // line longer than the window (an error on one line). When it is one
    // of the last lines, its end is shown, marked as cut, from past its
    // first blank, so that no part of a secret the cut went through
    // (secrets have no blanks) is shown.
    if from > 0 && !lines.is_empty() {
        let piece = lines.remove(0);
        if lines.len() < LOG_TAIL_LINES {
            if let Some((_, end)) = piece.split_once(char::is_whitespace) {
                lines.insert(0, format!("…{end}"));
            }
        }
    }
    let keep = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines.split_off(keep)
}

/// The builds recorded in `.planexe/trace.json`, oldest first. A build
/// is a run of events with the same trace pid (planexe's process id), as
/// builds append one after another; one process's events are split further
/// by the builds the run record says it started (a `watch` builds many
/// times), each span going to the last of them that started before it.
fn read_trace(path: &Path, run: Option<&RunRecord>) -> Vec<Timeline> {
    // The run record's builds by (pid, start), each start read once.
    let mut starts: Vec<(u64, i64, &BuildEntry)> = run
        .map(|r| r.builds.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|b| Some((u64::from(b.pid), micros(&b.started_at)?, b)))
        .collect();
    starts.sort_by_key(|&(pid, start, _)| (pid, start));
    // (pid, the run record's build, spans)
    let mut builds: Vec<(u64, Option<&BuildEntry>, Vec<Span>)> = Vec::new();
    for event in trace::read(path) {
        let Some(span) = Span::from_event(&event) else {
            continue;
        };
        let pid = u64::from(event.pid);
        let entry = build_of(&starts, pid, span.start_us);
        match builds.last_mut() {
            Some((p, e, spans)) if *p == pid && same(*e, entry) => spans.push(span),
            _ => builds.push((pid, entry, vec![span])),
        }
    }
    builds
        .into_iter()
        .map(|(pid, entry, spans)| Timeline {
            label: build_label(pid, entry, &spans),
            spans,
        })
        .collect()
}

/// The last build by process `pid` that started before `start_us` (a
/// span's start), of the run record's builds by (pid, start).
fn build_of<'a>(
    starts: &[(u64, i64, &'a BuildEntry)],
    pid: u64,
    start_us: i64,
) -> Option<&'a BuildEntry> {
    let after = starts.partition_point(|&(p, t, _)| (p, t) <= (pid, start_us));
    let &(p, _, entry) = starts.get(after.checked_sub(1)?)?;
    (p == pid).then_some(entry)
}

/// Whether two spans' builds are the same entry of the run record.
fn same(a: Option<&BuildEntry>, b: Option<&BuildEntry>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => std::ptr::eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

impl Span {
    /// A complete event of the trace.
    fn from_event(event: &TraceEvent) -> Option<Span> {
        if event.ph != Phase::Complete {
            return None;
        }
        let call = event.cat == Some(Category::Llm);
        let args = &event.args;
        let (state, note) = if call {
            (&args.outcome, &args.error_id)
        } else {
            (&args.state, &args.error)
        };
        Some(Span {
            name: event.name.clone(),
            call,
            lane: event.tid.unwrap_or(0),
            start_us: event.ts?,
            dur_us: event.dur.unwrap_or(1).max(1),
            state: state.clone().unwrap_or_else(|| "done".to_string()),
            note: note.clone(),
        })
    }
}

/// `Build started 2026-11-22 16:42:00 UTC · failed`, from the run record's
/// entry for the build (`entry`); without one, from its first span.
fn build_label(pid: u64, entry: Option<&BuildEntry>, spans: &[Span]) -> String {
    let first = spans.iter().map(|s| s.start_us).min().unwrap_or(0);
    match entry {
        Some(b) => format!(
            "Build started {} · {}",
            labels::when(&b.started_at),
            b.outcome.as_str()
        ),
        None => match jiff::Timestamp::from_microsecond(first) {
            Ok(t) => format!("Build started {}", t.strftime("%Y-%m-%d %H:%M:%S UTC")),
            Err(_) => format!("Build (pid {pid})"),
        },
    }
}

/// Without a trace: the last run of each task, on lanes given out in order
/// of start (a task takes the first lane free when it starts).
fn last_runs(graph: &Graph, store: &StateStore) -> Option<Timeline> {
    let mut runs: Vec<(i64, i64, Status)> = graph
        .tasks()
        .filter_map(|t| last_outcome(store, &t.name))
        .filter_map(|s| {
            let start = micros(s.started_at.as_deref()?)?;
            Some((start, s.duration_ms? as i64 * 1000, s))
        })
        .collect();
    if runs.is_empty() {
        return None;
    }
    runs.sort_by_key(|&(start, _, _)| start);
    let mut lane_ends: Vec<i64> = Vec::new();
    let mut spans = Vec::new();
    for (start, dur, status) in runs {
        let lane = match lane_ends.iter().position(|&end| end <= start) {
            Some(free) => free,
            None => {
                lane_ends.push(start);
                lane_ends.len() - 1
            }
        };
        lane_ends[lane] = start + dur;
        spans.push(Span {
            name: status.task.clone(),
            call: false,
            lane: lane as u64,
            start_us: start,
            dur_us: dur.max(1),
            state: status.state.as_str().to_string(),
            note: status.error.as_ref().map(|e| e.message.clone()),
        });
        for a in &status.attempts {
            if let Some(call_start) = micros(&a.started_at) {
                spans.push(Span {
                    name: format!("{} #{}", a.model, a.attempt),
                    call: true,
                    lane: lane as u64,
                    start_us: call_start,
                    dur_us: (a.duration_ms as i64 * 1000).max(1),
                    state: a.outcome.clone(),
                    note: a.error_id.clone(),
                });
            }
        }
    }
    Some(Timeline {
        label: "Last run of each task (no trace recorded)".to_string(),
        spans,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_lines_group_into_builds_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.json");
        let trace = r#"[
{"name":"process_name","ph":"M","pid":7,"args":{"name":"planexe build (pid 7)"}},
{"name":"a","cat":"task","ph":"X","pid":7,"tid":0,"ts":1000,"dur":5000,"args":{"state":"done","error":null}},
{"name":"b","cat":"task","ph":"X","pid":7,"tid":1,"ts":2000,"dur":5000,"args":{"state":"failed","error":"exit status 3"}},
{"name":"local #1","cat":"llm","ph":"X","pid":7,"tid":1,"ts":2500,"dur":100,"args":{"outcome":"ok","error_id":null}},
{"name":"b","cat":"task","ph":"X","pid":9,"tid":0,"ts":90000,"dur":5000,"args":{"state":"done","error":null}},
{"name":"c","cat":"task","ph":"X","pid":9,"ti
"#;
        std::fs::write(&path, trace).unwrap();
        let builds = read_trace(&path, None);
        assert_eq!(builds.len(), 2);
        assert_eq!(builds[0].spans.len(), 3);
        assert_eq!(builds[0].spans[1].note.as_deref(), Some("exit status 3"));
        assert!(builds[0].spans[2].call);
        assert_eq!(builds[1].spans.len(), 1);
        assert!(read_trace(&dir.path().join("missing.json"), None).is_empty());
    }

    /// A `watch` builds many times in one process: its spans are split by
    /// the builds the run record says it started, each labelled as its own.
    #[test]
    fn one_processs_builds_are_split_by_the_run_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.json");
        let (t0, t1) = (1_700_000_000_000_000_i64, 1_700_000_060_000_000_i64);
        let span = |name: &str, ts: i64| {
            format!(
                r#"{{"name":"{name}","cat":"task","ph":"X","pid":7,"tid":0,"ts":{ts},"dur":5000,"args":{{"state":"done","error":null}}}}"#
            )
        };
        let trace = format!(
            "[\n{},\n{},\n{},\n",
            span("a", t0 + 1000),
            span("b", t0 + 9000),
            span("a", t1 + 1000)
        );
        std::fs::write(&path, trace).unwrap();
        let when = |us: i64| jiff::Timestamp::from_microsecond(us).unwrap().to_string();
        let run: RunRecord = serde_json::from_value(serde_json::json!({
            "run_id": "r", "created_at": when(t0), "pipeline": "p", "pipeline_hash": "h",
            "model": null, "last_completed_task": null,
            "counts": {"tasks": 2, "done": 2, "failed": 0, "stopped": 0, "not_run": 0},
            "builds": [
                {"started_at": when(t0), "finished_at": null, "outcome": "completed", "pid": 7, "model": null, "ran": 2},
                {"started_at": when(t1), "finished_at": null, "outcome": "failed", "pid": 7, "model": null, "ran": 1},
            ],
        }))
        .unwrap();
        let builds = read_trace(&path, Some(&run));
        assert_eq!(builds.len(), 2);
        assert_eq!(builds[0].spans.len(), 2);
        assert!(
            builds[0].label.ends_with("· completed"),
            "{}",
            builds[0].label
        );
        assert_eq!(builds[1].spans.len(), 1);
        assert!(builds[1].label.ends_with("· failed"), "{}", builds[1].label);
        // Without the record, one process is one build, as before.
        assert_eq!(read_trace(&path, None).len(), 1);
    }
}
