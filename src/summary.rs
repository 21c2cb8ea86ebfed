//! `.planexe/summary.json`: one file an agent can read instead of many,
//! rewritten after every build that ran something. Counts, per-task state,
//! outputs, durations, tokens, cost, and quality warnings (a task that
//! completed with an empty or suspiciously short output), all taken from
//! the state already in memory: no file is read or statted to write it.

use serde::Serialize;

use crate::graph::{Action, Graph};
use crate::run::{Counts, RunRecord};
use crate::rundir::{self, RunDir};
use crate::state::{StateStore, TaskState};

/// Answers shorter than this many bytes are flagged.
const SHORT_ANSWER: u64 = 16;

#[derive(Debug, Serialize)]
pub struct TaskSummary {
    pub task: String,
    /// `done`, `failed`, `stopped` or `not-run`.
    pub state: &'static str,
    pub duration_ms: Option<u64>,
    pub finished_at: Option<String>,
    pub outputs: Vec<String>,
    pub model: Option<String>,
    pub total_tokens: Option<u64>,
    pub cost_usd: Option<f64>,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub error_id: Option<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub run_id: Option<String>,
    pub pipeline: String,
    pub run_dir: String,
    pub generated_at: String,
    /// The last build's outcome: `completed`, `failed`, `stopped`.
    pub outcome: Option<String>,
    pub counts: Counts,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cost_usd: f64,
    /// Every task's warnings, as `task: warning`.
    pub warnings: Vec<String>,
    pub tasks: Vec<TaskSummary>,
}

/// Quality warnings of a finished task.
pub fn quality(
    graph: &Graph,
    task: &str,
    outputs: &std::collections::BTreeMap<String, crate::stamp::Stamp>,
) -> Vec<String> {
    let prompt = graph
        .task(task)
        .is_some_and(|t| matches!(t.action, Action::Prompt(_)));
    let mut warnings = Vec::new();
    for (path, stamp) in outputs {
        if stamp.size == 0 {
            warnings.push(format!("output {path} is empty"));
        } else if prompt && stamp.size < SHORT_ANSWER {
            warnings.push(format!(
                "answer {path} is suspiciously short ({} bytes)",
                stamp.size
            ));
        }
    }
    warnings
}

pub fn build(
    graph: &Graph,
    store: &StateStore,
    run_dir: &RunDir,
    run: Option<&RunRecord>,
    pipeline: &str,
) -> Summary {
    let mut summary = Summary {
        run_id: run.map(|r| r.run_id.clone()),
        pipeline: pipeline.to_string(),
        run_dir: run_dir.root().display().to_string(),
        generated_at: crate::state::now_rfc3339(),
        outcome: run.and_then(|r| r.builds.last()).map(|b| b.outcome.clone()),
        counts: Counts {
            tasks: graph.tasks.len(),
            ..Default::default()
        },
        prompt_tokens: 0,
        completion_tokens: 0,
        total_tokens: 0,
        cost_usd: 0.0,
        warnings: Vec::new(),
        tasks: Vec::with_capacity(graph.tasks.len()),
    };
    for task in &graph.tasks {
        let record = store.record(&task.name);
        let done = record.and_then(|r| r.done.as_ref());
        let last = record.and_then(|r| r.last.as_ref());
        let (state, status) = match (last, done) {
            (Some(l), _) if l.state == TaskState::Failed => ("failed", Some(l)),
            (Some(l), _) if l.state == TaskState::Stopped => ("stopped", Some(l)),
            (_, Some(d)) => ("done", Some(d)),
            _ => ("not-run", None),
        };
        match state {
            "done" => summary.counts.done += 1,
            "failed" => summary.counts.failed += 1,
            "stopped" => summary.counts.stopped += 1,
            _ => summary.counts.not_run += 1,
        }
        let usage = status.and_then(|s| s.usage.clone());
        if let Some(u) = &usage {
            summary.prompt_tokens += u.prompt_tokens;
            summary.completion_tokens += u.completion_tokens;
            summary.total_tokens += u.total_tokens;
            summary.cost_usd += u.cost_usd;
        }
        let warnings = match (state, done) {
            ("done", Some(d)) => quality(graph, &task.name, &d.outputs),
            _ => Vec::new(),
        };
        for w in &warnings {
            summary.warnings.push(format!("{}: {w}", task.name));
        }
        let error = status.and_then(|s| s.error.as_ref());
        summary.tasks.push(TaskSummary {
            task: task.name.clone(),
            state,
            duration_ms: status.and_then(|s| s.duration_ms),
            finished_at: status.and_then(|s| s.finished_at.clone()),
            outputs: task.outputs.iter().map(|o| o.path.clone()).collect(),
            model: status.and_then(|s| s.model.clone()),
            total_tokens: usage.as_ref().map(|u| u.total_tokens),
            cost_usd: usage.as_ref().map(|u| u.cost_usd),
            error_kind: error.map(|e| e.kind.clone()),
            error: error.map(|e| crate::plan::first_line(&e.message).to_string()),
            error_id: error.and_then(|e| e.error_id.clone()),
            warnings,
        });
    }
    summary
}

pub fn write(summary: &Summary, run_dir: &RunDir) -> crate::error::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(summary).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    rundir::write_atomic(&run_dir.state_dir().join("summary.json"), &bytes)
}
