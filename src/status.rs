//! `planexe status [TASK] [--json]`: the run at a glance, read from state
//! already on disk (run record, state log, sidecars of failed and running
//! tasks, `usage.jsonl`), without taking the lock, so it works during a
//! build.
//!
//! Text: a header (run directory, pipeline, model, times, run state with
//! `stalled` when a running build made no progress for `--stall-after`),
//! then groups in the order FAILED, RUNNING, STOPPED, STALE, PENDING, DONE,
//! then totals of model calls and quality warnings. A fan-out shows as one
//! line with progress. `--json` carries the same as a stable document
//! (docs/state.md). `status TASK` shows one task in full.
//!
//! Without a task name it answers from `.planexe/status.snapshot` when it
//! can: the view a running build keeps there, or the one saved with the
//! up-to-date certificate while that holds. Otherwise it checks every task.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::certificate::Certificate;
use crate::cli::{Cli, StatusArgs};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::pipeline::Pipeline;
use crate::plan::{Plan, Reason};
use crate::printer::Printer;
use crate::run::RunRecord;
use crate::rundir::RunDir;
use crate::session::Session;
use crate::stamp::CheckMode;
use crate::state::{self, StateStore, Status, TaskState};

/// One task in `status --json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskLine {
    pub task: String,
    /// `done`, `stale`, `pending`, `failed`, `running`, `stopped` or
    /// `never-built`.
    #[serde(deserialize_with = "task_state")]
    pub state: StateName,
    /// Why the task would run (null when done or running).
    pub reason: Option<String>,
    /// First line of the error of the last failed run.
    pub error: Option<String>,
    pub error_kind: Option<String>,
    pub error_id: Option<String>,
    /// Whether running the build again may fix the failure by itself.
    pub recoverable: Option<bool>,
    /// What to do about a failure.
    pub hint: Option<String>,
    pub attempt: Option<u32>,
    pub model: Option<String>,
    pub pid: Option<u32>,
    pub started_at: Option<String>,
    pub duration_ms: Option<u64>,
    /// The fan-out task an instance belongs to.
    pub fanout: Option<String>,
}

/// A task line's state. An alias, so serde's derive does not take the
/// `'static` for a borrow from the input (`task_state` reads it).
pub type StateName = &'static str;

/// A task line's state, read back from a snapshot.
fn task_state<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<&'static str, D::Error> {
    let s = String::deserialize(d)?;
    [
        "done",
        "stale",
        "pending",
        "failed",
        "running",
        "stopped",
        "never-built",
    ]
    .into_iter()
    .find(|known| *known == s)
    .ok_or_else(|| serde::de::Error::custom(format!("unknown task state {s}")))
}

/// Totals of model calls, from `usage.jsonl`.
#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub calls: u64,
    pub failed_calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cost_usd: f64,
    pub llm_time_ms: u64,
}

/// The whole `status --json` document.
#[derive(Debug, Serialize)]
pub struct Report {
    pub pipeline: String,
    pub pipeline_file: String,
    pub run_dir: String,
    pub run_id: Option<String>,
    pub model: Option<String>,
    pub created_at: Option<String>,
    pub last_build_started_at: Option<String>,
    pub last_build_finished_at: Option<String>,
    /// `running`, `completed`, `failed`, `stopped` or `never-built`.
    pub state: &'static str,
    pub build_pid: Option<u32>,
    pub last_progress_at: Option<String>,
    pub stalled: bool,
    pub counts: BTreeMap<&'static str, usize>,
    pub totals: Totals,
    pub warnings: Vec<String>,
    pub tasks: Vec<TaskLine>,
}

/// What to do about a failure, and whether a plain re-run may fix it.
fn advice(kind: &str) -> (bool, &'static str) {
    match kind {
        "connection" | "timeout" | "stall" | "broken_stream" | "rate_limited" | "server_error"
        | "bad_response" => (
            true,
            "run planexe build again; the server may answer this time",
        ),
        "interrupted" => (true, "run planexe build again to resume"),
        "auth" | "missing_key" => (false, "check the API key and the model's base_url"),
        "not_found" => (false, "check the model name and base_url"),
        "context_overflow" => (
            false,
            "shorten the prompt or its inputs, or use a model with a larger context",
        ),
        "truncated" => (
            false,
            "raise the model's max_tokens or ask for a shorter answer",
        ),
        "schema" | "invalid_json" | "empty_answer" => (false, "fix the prompt or the schema first"),
        "template" => (false, "fix the prompt template"),
        "missing-input" => (false, "create the missing input, or build what produces it"),
        "missing-output" => (false, "make the command write every declared output"),
        _ => (
            false,
            "fix the command or its inputs, then run planexe build",
        ),
    }
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn totals(run_dir: &RunDir) -> Totals {
    let mut t = Totals::default();
    let Ok(text) = std::fs::read_to_string(run_dir.state_dir().join("usage.jsonl")) else {
        return t;
    };
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        t.calls += 1;
        if v.get("status").and_then(|s| s.as_str()) != Some("ok") {
            t.failed_calls += 1;
        }
        t.prompt_tokens += n("prompt_tokens");
        t.completion_tokens += n("completion_tokens");
        t.total_tokens += n("total_tokens");
        t.llm_time_ms += n("duration_ms");
        t.cost_usd += v
            .get("cost_usd")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0);
    }
    t
}

/// The time of the last event of the run (`events.jsonl`'s last line).
fn last_progress(run_dir: &RunDir) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(run_dir.state_dir().join("events.jsonl")).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut tail = String::new();
    f.read_to_string(&mut tail).ok()?;
    let last = tail.lines().rev().find(|l| l.starts_with('{'))?;
    let v: serde_json::Value = serde_json::from_str(last).ok()?;
    v.get("timestamp_utc")?.as_str().map(str::to_string)
}

fn since(rfc3339: &str) -> Option<Duration> {
    let then: jiff::Timestamp = rfc3339.parse().ok()?;
    let secs = jiff::Timestamp::now().as_second() - then.as_second();
    Some(Duration::from_secs(secs.max(0) as u64))
}

fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// The status line of every task: `reasons` says which must run and why
/// (the plan, or a running build's view of it); `build_running` whether a
/// build runs now.
pub fn task_lines(
    graph: &Graph,
    store: &StateStore,
    run_dir: &RunDir,
    reasons: &[Option<Reason>],
    build_running: bool,
) -> Vec<TaskLine> {
    let mut lines = Vec::with_capacity(graph.tasks.len());
    for task in &graph.tasks {
        let reason = reasons[task.id].clone();
        let mut line = TaskLine {
            task: task.name.clone(),
            state: "done",
            reason: reason.as_ref().map(ToString::to_string),
            error: None,
            error_kind: None,
            error_id: None,
            recoverable: None,
            hint: None,
            attempt: None,
            model: None,
            pid: None,
            started_at: None,
            duration_ms: None,
            fanout: crate::fanout::split_instance(&task.name).map(|(b, _)| b.to_string()),
        };
        let record = store.record(&task.name);
        let failure = |line: &mut TaskLine, s: &Status| {
            line.attempt = Some(s.attempt);
            line.model = s.model.clone();
            if let Some(e) = &s.error {
                let (recoverable, hint) = advice(&e.kind);
                line.error = Some(crate::plan::first_line(&e.message).to_string());
                line.error_kind = Some(e.kind.clone());
                line.error_id = e.error_id.clone();
                line.recoverable = Some(recoverable);
                line.hint = Some(hint.to_string());
            }
        };
        match &reason {
            None => {
                if let Some(done) = record.and_then(|r| r.done.as_ref()) {
                    line.duration_ms = done.duration_ms;
                    line.model = done.model.clone();
                }
            }
            Some(Reason::NeverBuilt) => line.state = "never-built",
            Some(Reason::FailedLastTime(message)) => {
                line.state = "failed";
                let status = record
                    .and_then(|r| r.last.clone())
                    .or_else(|| state::read_status(run_dir, &task.name));
                match status {
                    Some(s) => failure(&mut line, &s),
                    None => line.error = Some(message.clone()),
                }
            }
            Some(Reason::InterruptedLastTime) => {
                let status = store.sidecar(run_dir, &task.name);
                let running = status.as_ref().filter(|s| s.state == TaskState::Running);
                match running {
                    Some(s) if s.pid.is_some_and(alive) || s.pid.is_none() && build_running => {
                        line.state = "running";
                        line.reason = None;
                        line.pid = s.pid;
                        line.attempt = Some(s.attempt);
                        line.started_at = s.started_at.clone();
                    }
                    _ => {
                        line.state = "stopped";
                        if let Some(s) = &status {
                            failure(&mut line, s);
                        }
                    }
                }
            }
            Some(Reason::Upstream(_)) | Some(Reason::AwaitsList(_)) => line.state = "pending",
            Some(_) => line.state = "stale",
        }
        lines.push(line);
    }
    lines
}

fn build_running(session: &Session) -> bool {
    session
        .run
        .as_ref()
        .and_then(|r| r.builds.last())
        .is_some_and(|b| b.outcome == "running" && alive(b.pid))
}

pub fn status(cli: &Cli, args: &StatusArgs, printer: &Printer) -> Result<()> {
    if args.task.is_none() {
        // A warning about the pipeline's choice is for the full path to print.
        if let (run_dir, pipeline, _, None) = crate::session::locate(cli)? {
            let run = RunRecord::load(&run_dir);
            if let Some(known) = Known::saved(&run_dir, &pipeline, run.as_ref(), args.check) {
                return show(&run_dir, run.as_ref(), known, args, printer);
            }
        }
    }
    // Never freed: the process exits next, and freeing ten thousand records
    // one by one costs more than reading them.
    let session: &Session = Box::leak(Box::new(Session::open(cli, printer, None)?));
    let graph = &session.graph;
    let plan = session.plan(vec![true; graph.tasks.len()], args.check)?;
    let mut known = Known::compute(session, &plan);

    if let Some(name) = &args.task {
        if graph.task(name).is_some() && !graph.fanouts.contains_key(name) {
            return one_task(session, &plan, name, args.json, printer);
        }
        if !graph.fanouts.contains_key(name) {
            return Err(Error::usage(format!("unknown task `{name}`"))
                .hint("run `planexe status` to list tasks"));
        }
        known
            .tasks
            .retain(|l| l.fanout.as_deref() == Some(name) || l.task == *name);
    }
    // The run record as it is now, not as it was before the full check.
    let run = RunRecord::load(&session.run_dir);
    show(&session.run_dir, run.as_ref(), known, args, printer)
}

/// What `status` reports about the pipeline and its tasks: everything but
/// the run's header and totals, which are read fresh every time.
#[derive(Debug, Serialize, Deserialize)]
pub struct Known {
    /// The pipeline's name.
    pipeline: String,
    pipeline_file: String,
    /// `[pipeline] model`, shown when no override applies.
    default_model: Option<String>,
    /// Fan-out tasks, and whether each still waits for its list.
    fanouts: BTreeMap<String, bool>,
    tasks: Vec<TaskLine>,
    /// Quality warnings of completed tasks.
    warnings: Vec<String>,
}

/// Where a `status` snapshot is kept: vouched for by the certificate of the
/// same generation (docs/state.md).
fn snapshot_path(run_dir: &RunDir) -> std::path::PathBuf {
    run_dir.state_dir().join("status.snapshot")
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    version: String,
    /// The certificate generation it goes with (idle snapshots).
    generation: u64,
    /// The build that wrote it while running (live snapshots).
    live: Option<Live>,
    known: Known,
}

/// Which running build wrote a live snapshot: as in its run record.
#[derive(Serialize, Deserialize, PartialEq)]
pub struct Live {
    pub pid: u32,
    pub started_at: String,
}

impl Known {
    fn compute(session: &Session, plan: &Plan) -> Known {
        Known::of(
            &session.graph,
            &session.pipeline,
            &session.store,
            &session.run_dir,
            &plan.reasons,
            build_running(session),
        )
    }

    /// What `status` reports, from the graph, the state and `reasons`.
    pub fn of(
        graph: &Graph,
        pipeline: &Pipeline,
        store: &StateStore,
        run_dir: &RunDir,
        reasons: &[Option<Reason>],
        build_running: bool,
    ) -> Known {
        let summary = crate::summary::build(graph, store, run_dir, None, "");
        Known {
            pipeline: graph.name.clone(),
            pipeline_file: pipeline.path.display().to_string(),
            default_model: pipeline
                .def
                .pipeline
                .model
                .as_ref()
                .map(|m| m.get_ref().clone()),
            fanouts: graph
                .fanouts
                .iter()
                .map(|(name, g)| (name.clone(), g.placeholder))
                .collect(),
            tasks: task_lines(graph, store, run_dir, reasons, build_running),
            warnings: summary.warnings,
        }
    }

    /// Saves what `status` would report now, for the certificate of
    /// `generation` just written: while it holds, `status` reads this
    /// instead of checking every task. Best effort.
    pub fn save(session: &Session, plan: &Plan, generation: u64) {
        let snapshot = Snapshot {
            version: env!("CARGO_PKG_VERSION").to_string(),
            generation,
            live: None,
            known: Known::compute(session, plan),
        };
        snapshot.write(&session.run_dir);
    }

    /// Shows task `t` as running: a running build knows, whatever the
    /// sidecar's pid says by now. The sidecar gives the details.
    pub fn mark_running(&mut self, t: usize, started_at: Option<String>, run_dir: &RunDir) {
        let Some(line) = self.tasks.get_mut(t) else {
            return;
        };
        line.state = "running";
        line.reason = None;
        line.error = None;
        line.error_kind = None;
        line.error_id = None;
        line.recoverable = None;
        line.hint = None;
        line.attempt = Some(1);
        line.started_at = started_at;
        if let Some(s) = state::read_status(run_dir, &line.task) {
            if s.state == TaskState::Running {
                line.pid = s.pid;
                line.attempt = Some(s.attempt);
                line.started_at = s.started_at;
                line.model = s.model;
            }
        }
    }

    /// Saves what `status` should report while the build `live` runs: it
    /// reads this instead of checking every task. Best effort.
    pub fn save_live(self, run_dir: &RunDir, live: Live) {
        let snapshot = Snapshot {
            version: env!("CARGO_PKG_VERSION").to_string(),
            generation: 0,
            live: Some(live),
            known: self,
        };
        snapshot.write(run_dir);
    }

    /// The saved report, when the certificate it was saved with still
    /// holds for this pipeline file and model override.
    ///
    /// Or, while a build runs, the snapshot that build keeps up to date.
    fn saved(
        run_dir: &RunDir,
        pipeline: &std::path::Path,
        run: Option<&RunRecord>,
        mode: CheckMode,
    ) -> Option<Known> {
        let bytes = std::fs::read(snapshot_path(run_dir)).ok()?;
        let snapshot: Snapshot = postcard::from_bytes(&bytes).ok()?;
        if snapshot.version != env!("CARGO_PKG_VERSION") {
            return None;
        }
        let running = run
            .and_then(|r| r.builds.last())
            .filter(|b| b.outcome == "running" && alive(b.pid));
        if let Some(build) = running {
            let this = Live {
                pid: build.pid,
                started_at: build.started_at.clone(),
            };
            let same_pipeline = snapshot.known.pipeline_file == pipeline.display().to_string();
            return (snapshot.live.as_ref() == Some(&this) && same_pipeline)
                .then_some(snapshot.known);
        }
        let cert = Certificate::read(run_dir)?;
        if snapshot.live.is_some() || snapshot.generation != cert.generation() {
            return None;
        }
        let model = crate::session::env_model();
        let key = crate::certificate::Key {
            pipeline,
            model: model.as_deref(),
        };
        cert.holds(run_dir, &key, mode)?;
        Some(snapshot.known)
    }
}

impl Snapshot {
    fn write(&self, run_dir: &RunDir) {
        if let Ok(bytes) = postcard::to_allocvec(self) {
            let _ = crate::rundir::write_atomic(&snapshot_path(run_dir), &bytes);
        }
    }
}

/// Prints `known` with the run's header (from `run`) and totals.
fn show(
    run_dir: &RunDir,
    run: Option<&RunRecord>,
    known: Known,
    args: &StatusArgs,
    printer: &Printer,
) -> Result<()> {
    let last = run.and_then(|r| r.builds.last());
    let running = last.is_some_and(|b| b.outcome == "running" && alive(b.pid));
    let state: &'static str = match last {
        None => "never-built",
        Some(_) if running => "running",
        Some(b) => match b.outcome.as_str() {
            "completed" => "completed",
            "failed" => "failed",
            // A build that never recorded its end crashed: it stopped.
            _ => "stopped",
        },
    };
    let last_progress_at = last_progress(run_dir);
    let stall_after =
        crate::pipeline::parse_timeout(&toml::Value::String(args.stall_after.clone()))
            .map_err(|m| Error::usage(format!("--stall-after: {m}")))?;
    let stalled = running
        && last_progress_at
            .as_deref()
            .or(last.map(|b| b.started_at.as_str()))
            .and_then(since)
            .is_some_and(|d| d > stall_after);
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    for l in &known.tasks {
        *counts.entry(l.state).or_default() += 1;
    }
    // The model a build would use now: `$PLANEXE_MODEL`, else the one the
    // run remembers, else the pipeline's.
    let model = crate::session::env_model()
        .or_else(|| run.and_then(|r| r.model.clone()))
        .or(known.default_model);
    let report = Report {
        pipeline: known.pipeline,
        pipeline_file: known.pipeline_file,
        run_dir: run_dir.root().display().to_string(),
        run_id: run.map(|r| r.run_id.clone()),
        model,
        created_at: run.map(|r| r.created_at.clone()),
        last_build_started_at: last.map(|b| b.started_at.clone()),
        last_build_finished_at: last.and_then(|b| b.finished_at.clone()),
        state,
        build_pid: last.filter(|_| running).map(|b| b.pid),
        last_progress_at,
        stalled,
        counts,
        totals: totals(run_dir),
        warnings: known.warnings,
        tasks: known.tasks,
    };
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
        printer.data(&text);
        return Ok(());
    }
    printer.data(&render(&report, &known.fanouts, args.task.is_some()));
    Ok(())
}

struct Style {
    tty: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.tty {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn symbol(&self, state: &str) -> &'static str {
        if !self.tty {
            return "";
        }
        match state {
            "failed" => "✗ ",
            "running" => "▶ ",
            "stopped" => "■ ",
            "stale" | "never-built" => "• ",
            "pending" => "… ",
            _ => "✓ ",
        }
    }
}

fn render(report: &Report, fanouts: &BTreeMap<String, bool>, expanded: bool) -> String {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let style = Style {
        tty: std::io::stdout().is_terminal() && !no_color,
    };
    let mut out = String::new();
    let mut header = |k: &str, v: String| out.push_str(&format!("{k:<9}{v}\n"));
    header(
        "run",
        format!("{} ({})", report.run_dir, report.pipeline_file),
    );
    let state = match (report.state, report.build_pid) {
        ("running", Some(pid)) => {
            let elapsed = report
                .last_build_started_at
                .as_deref()
                .and_then(since)
                .map(short_duration)
                .unwrap_or_default();
            let mut s = format!("running (pid {pid}, {elapsed})");
            if report.stalled {
                s.push_str(", STALLED: no progress lately");
            }
            s
        }
        (other, _) => other.to_string(),
    };
    header("state", state);
    if let Some(m) = &report.model {
        header("model", m.clone());
    }
    if let Some(c) = &report.created_at {
        let last = report.last_build_started_at.clone().unwrap_or_default();
        header("created", format!("{c}, last build {last}"));
    }
    if let Some(p) = &report.last_progress_at {
        let ago = since(p).map(short_duration).unwrap_or_default();
        header("progress", format!("{p} ({ago} ago)"));
    }

    // Fan-outs collapse into one line, unless expanded; their failed and
    // running instances still show in their groups.
    let mut fanout_lines: BTreeMap<&str, Vec<&TaskLine>> = BTreeMap::new();
    if !expanded {
        for l in &report.tasks {
            if let Some(f) = &l.fanout {
                fanout_lines.entry(f.as_str()).or_default().push(l);
            } else if fanouts.get(&l.task).is_some_and(|&placeholder| placeholder) {
                fanout_lines.entry(l.task.as_str()).or_default().push(l);
            }
        }
    }
    let collapsed = |l: &TaskLine| {
        !expanded
            && (l.fanout.is_some() || fanouts.contains_key(&l.task))
            && !matches!(l.state, "failed" | "running")
    };
    let width = report
        .tasks
        .iter()
        .map(|l| l.task.len())
        .chain(fanout_lines.keys().map(|k| k.len()))
        .max()
        .unwrap_or(0);
    for (title, states, code) in [
        ("FAILED", &["failed"][..], "1;31"),
        ("RUNNING", &["running"][..], "1;34"),
        ("STOPPED", &["stopped"][..], "1;33"),
        ("STALE", &["stale", "never-built"][..], "33"),
        ("PENDING", &["pending"][..], "2"),
        ("DONE", &["done"][..], "32"),
    ] {
        let members: Vec<&TaskLine> = report
            .tasks
            .iter()
            .filter(|l| states.contains(&l.state) && !collapsed(l))
            .collect();
        if members.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "\n{}\n",
            style.paint(code, &format!("{title} ({})", members.len()))
        ));
        for l in members {
            let detail = match l.state {
                "failed" | "stopped" => {
                    let mut d = format!(
                        "{}: {}",
                        l.error_kind.as_deref().unwrap_or("error"),
                        l.error.as_deref().unwrap_or("")
                    );
                    if let Some(id) = &l.error_id {
                        d.push_str(&format!(" (error_id {id})"));
                    }
                    if let Some(a) = l.attempt {
                        d.push_str(&format!(", attempt {a}"));
                    }
                    if let Some(m) = &l.model {
                        d.push_str(&format!(", model {m}"));
                    }
                    if let Some(r) = l.recoverable {
                        d.push_str(if r {
                            ", recoverable"
                        } else {
                            ", not recoverable"
                        });
                    }
                    if let Some(h) = &l.hint {
                        d.push_str(&format!("\n  {:width$}  hint: {h}", ""));
                    }
                    d
                }
                "running" => {
                    let since_start = l
                        .started_at
                        .as_deref()
                        .and_then(since)
                        .map(short_duration)
                        .unwrap_or_default();
                    format!(
                        "since {} ({since_start}), attempt {}{}",
                        l.started_at.as_deref().unwrap_or("?"),
                        l.attempt.unwrap_or(1),
                        l.pid.map(|p| format!(", pid {p}")).unwrap_or_default()
                    )
                }
                "done" => l
                    .duration_ms
                    .map(|ms| format!("{:.2}s", ms as f64 / 1000.0))
                    .unwrap_or_default(),
                "never-built" => "never built".to_string(),
                _ => l.reason.clone().unwrap_or_default(),
            };
            out.push_str(&format!(
                "  {}{:width$}  {detail}\n",
                style.symbol(l.state),
                l.task
            ));
        }
    }
    if !fanout_lines.is_empty() {
        out.push_str(&format!("\n{}\n", style.paint("1", "FAN-OUT")));
        for (name, members) in &fanout_lines {
            let detail = if fanouts.get(*name).is_some_and(|&placeholder| placeholder) {
                members
                    .first()
                    .and_then(|l| l.reason.clone())
                    .unwrap_or_default()
            } else {
                let count = |s: &str| members.iter().filter(|l| l.state == s).count();
                let mut d = format!("{}/{} done", count("done"), members.len());
                for (s, label) in [
                    ("failed", "failed"),
                    ("running", "running"),
                    ("stopped", "stopped"),
                    ("stale", "stale"),
                    ("never-built", "never built"),
                    ("pending", "pending"),
                ] {
                    let k = count(s);
                    if k > 0 {
                        d.push_str(&format!(", {k} {label}"));
                    }
                }
                d
            };
            out.push_str(&format!("  {:width$}  {detail}\n", name));
        }
    }
    let t = &report.totals;
    if t.calls > 0 {
        out.push_str(&format!(
            "\nmodel calls {} ({} failed), {} tokens ({} in, {} out), ${:.4}, {} in calls\n",
            t.calls,
            t.failed_calls,
            t.total_tokens,
            t.prompt_tokens,
            t.completion_tokens,
            t.cost_usd,
            short_duration(Duration::from_millis(t.llm_time_ms))
        ));
    }
    if !report.warnings.is_empty() {
        out.push_str(&format!("\n{}\n", style.paint("33", "WARNINGS")));
        for w in &report.warnings {
            out.push_str(&format!("  {w}\n"));
        }
    }
    out.trim_end().to_string()
}

/// `status TASK`: one task in full.
fn one_task(
    session: &Session,
    plan: &Plan,
    name: &str,
    json: bool,
    printer: &Printer,
) -> Result<()> {
    let Some(task) = session.graph.task(name) else {
        return Err(Error::usage(format!("unknown task `{name}`")));
    };
    let status = session.store.sidecar(&session.run_dir, name).or_else(|| {
        session
            .store
            .done_record(&session.run_dir, name)
            .map(|c| c.into_owned())
    });
    let reason = plan.reasons[task.id].as_ref().map(ToString::to_string);
    if json {
        let doc = serde_json::json!({
            "task": name,
            "stale": reason.is_some(),
            "reason": reason,
            "status": status,
        });
        printer.data(&serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?);
        return Ok(());
    }
    let mut out = format!(
        "{name}: {}\n",
        reason
            .as_deref()
            .map_or("up to date".to_string(), |r| format!("stale: {r}"))
    );
    match &status {
        None => out.push_str("  never run\n"),
        Some(s) => {
            out.push_str(&format!("  state     {}\n", s.state.as_str()));
            if let Some(a) = &s.started_at {
                out.push_str(&format!(
                    "  ran       {a} → {} ({} ms)\n",
                    s.finished_at.as_deref().unwrap_or("…"),
                    s.duration_ms.unwrap_or(0)
                ));
            }
            if let Some(m) = &s.model {
                out.push_str(&format!("  model     {m}\n"));
            }
            if let Some(u) = &s.usage {
                out.push_str(&format!(
                    "  usage     {} tokens ({} in, {} out), ${:.4}\n",
                    u.total_tokens, u.prompt_tokens, u.completion_tokens, u.cost_usd
                ));
            }
            for a in &s.attempts {
                out.push_str(&format!(
                    "  attempt   {} {} {} ms: {}{}\n",
                    a.attempt,
                    a.model,
                    a.duration_ms,
                    a.outcome,
                    a.error_id
                        .as_deref()
                        .map(|i| format!(" (error_id {i})"))
                        .unwrap_or_default()
                ));
            }
            if let Some(e) = &s.error {
                out.push_str(&format!("  error     {}: {}\n", e.kind, e.message.trim()));
            }
            for (title, map) in [("input", &s.inputs), ("output", &s.outputs)] {
                for (path, st) in map {
                    out.push_str(&format!(
                        "  {title:<9} {path} ({} B, blake3 {})\n",
                        st.size,
                        &st.blake3[..st.blake3.len().min(12)]
                    ));
                }
            }
        }
    }
    printer.data(out.trim_end());
    Ok(())
}

/// `planexe wait`: blocks until the build running in this directory ends
/// (at once if none runs), prints the status, and exits 0 (completed), 1
/// (failed), 130 (stopped) or 124 (timed out). Reads `.planexe/run.json`
/// only; never takes the lock.
pub fn wait(cli: &Cli, args: &crate::cli::WaitArgs, printer: &Printer) -> Result<()> {
    let limit = match &args.timeout {
        None => None,
        Some(t) => Some(
            crate::pipeline::parse_timeout(&toml::Value::String(t.clone()))
                .map_err(|m| Error::usage(format!("--timeout: {m}")))?,
        ),
    };
    let session = Session::open(cli, printer, None)?;
    let started = std::time::Instant::now();
    loop {
        let run = crate::run::RunRecord::load(&session.run_dir);
        let last = run.as_ref().and_then(|r| r.builds.last().cloned());
        let running = last
            .as_ref()
            .is_some_and(|b| b.outcome == "running" && alive(b.pid));
        if !running {
            status(
                cli,
                &StatusArgs {
                    task: None,
                    json: false,
                    check: crate::stamp::CheckMode::Content,
                    stall_after: "10m".into(),
                },
                printer,
            )?;
            return match last.map(|b| b.outcome) {
                Some(o) if o == "failed" => Err(Error::Outcome(crate::error::EXIT_FAILED)),
                Some(o) if o == "stopped" || o == "running" => {
                    Err(Error::Outcome(crate::error::EXIT_INTERRUPTED))
                }
                _ => Ok(()),
            };
        }
        if limit.is_some_and(|l| started.elapsed() >= l) {
            printer.note("wait: timed out; the build is still running");
            return Err(Error::Outcome(crate::error::EXIT_TIMEOUT));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
