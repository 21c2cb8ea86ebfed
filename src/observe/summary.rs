//! `.planexe/summary.json`: one file an agent can read instead of many,
//! rewritten after every build that ran something. Counts, per-task state,
//! outputs, durations, tokens, cost, and quality warnings (a task that
//! completed with an empty or suspiciously short output, or whose
//! warn-severity check failed), rescued tasks, the judges' share of the
//! calls, tokens and cost, all taken from the state already in memory: no
//! file is read or statted to write it but the sums of the run's model
//! calls (`totals`, as `status` reads them: `usage.sum` and the calls
//! after it), which no task's record holds.

use serde::Serialize;

use crate::model::{Action, Graph};
use crate::store::ledger::{self, Totals};
use crate::store::record::first_line;
use crate::store::record::JudgeVerdict;
use crate::store::run_record::{Counts, RunRecord};
use crate::store::{CheckRecord, JudgeUsage, Recorded, RunDir, Stamps, StateStore, Status, Usage};

/// Answers shorter than this many bytes are flagged.
const SHORT_ANSWER: u64 = 16;

/// How a task's last run went, as the summary says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Done,
    Failed,
    Stopped,
    NotRun,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed => "failed",
            Outcome::Stopped => "stopped",
            Outcome::NotRun => "not-run",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TaskSummary {
    pub task: String,
    pub state: Outcome,
    pub duration_ms: Option<u64>,
    pub finished_at: Option<String>,
    pub outputs: Vec<String>,
    pub model: Option<String>,
    pub total_tokens: Option<u64>,
    pub cost_usd: Option<f64>,
    /// Some of its calls reported no usage: the tokens are estimated.
    pub tokens_estimated: bool,
    /// The share of its judge's calls in its tokens and cost (null when
    /// its last run asked no judge).
    pub judge_usage: Option<JudgeUsage>,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    pub error_id: Option<String>,
    /// Whether `planexe build` again, changing nothing, may fix the
    /// failure (null unless failed or stopped).
    pub recoverable: Option<bool>,
    /// The judge's verdict, pass or fail, when the task has a judge.
    pub judge: Option<JudgeVerdict>,
    /// Done although its command failed: its check accepted the outputs.
    pub rescued: bool,
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
    /// Done tasks that were rescued by their check (counted in `done`).
    pub rescued: usize,
    /// Tokens and cost of every task's last run.
    #[serde(flatten)]
    pub usage: Usage,
    /// The model calls of every task's last run, its judge's included.
    pub calls: u64,
    /// The judges' share of `calls`, the tokens and the cost.
    pub judge_usage: JudgeUsage,
    /// Every task's warnings, as `task: warning`.
    pub warnings: Vec<String>,
    /// Every model call of the run, as `status` sums them from
    /// `usage.jsonl`: what the run spent, earlier runs of its tasks
    /// included, and the instances of a fan-out an edit sent back to
    /// waiting for its list, which the figures above leave out.
    pub totals: Totals,
    pub tasks: Vec<TaskSummary>,
}

/// Quality warnings of a finished task.
pub fn quality(graph: &Graph, task: &str, outputs: &Stamps) -> Vec<String> {
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

/// Quality warnings of a done task's failed (warn-severity) checks, as
/// the build's `warn` line and the `task.check_failed` event say them:
/// `check: the check failed (exit status 1): ...`.
fn failed_checks(checks: &[CheckRecord]) -> impl Iterator<Item = String> + '_ {
    checks.iter().filter(|c| !c.passed).map(|c| {
        let message = c.message.as_deref().unwrap_or("failed");
        format!("{}: {}", c.name, first_line(message))
    })
}

/// Quality warnings of a done task: its outputs ([`quality`]), its failed
/// warn-severity checks, a `severity = "warn"` judge that scored the
/// answer low.
fn done_warnings(graph: &Graph, task: &str, done: &Status) -> Vec<String> {
    let mut warnings = quality(graph, task, &done.outputs);
    warnings.extend(failed_checks(&done.checks));
    if let Some(j) = done.judge.as_ref().filter(|j| !j.passed) {
        warnings.push(crate::exec::llm::rejection(j));
    }
    warnings
}

/// [`Summary::warnings`] alone, as [`build`] would say them, without the
/// rest of the summary.
pub fn warnings(graph: &Graph, store: &StateStore) -> Vec<String> {
    let mut all = Vec::new();
    for task in graph.tasks() {
        if let Recorded::Done(d) | Recorded::Unmarked(d) = store.recorded_in_memory(&task.name) {
            for w in done_warnings(graph, &task.name, &d) {
                all.push(format!("{}: {w}", task.name));
            }
        }
    }
    all
}

/// The summary of the run, from the state in memory.
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
        generated_at: crate::clock::now_rfc3339(),
        outcome: run
            .and_then(|r| r.builds.last())
            .map(|b| b.outcome.as_str().to_string()),
        counts: Counts {
            tasks: graph.len(),
            ..Default::default()
        },
        rescued: 0,
        usage: Usage::default(),
        calls: 0,
        judge_usage: JudgeUsage::default(),
        warnings: Vec::new(),
        totals: ledger::totals(run_dir),
        tasks: Vec::with_capacity(graph.len()),
    };
    for task in graph.tasks() {
        let recorded = store.recorded_in_memory(&task.name);
        let (state, status) = match &recorded {
            Recorded::Failed(s) => (Outcome::Failed, Some(&**s)),
            Recorded::Interrupted(s) => (Outcome::Stopped, Some(&**s)),
            Recorded::Done(s) | Recorded::Unmarked(s) => (Outcome::Done, Some(&**s)),
            Recorded::Never => (Outcome::NotRun, None),
        };
        match state {
            Outcome::Done => summary.counts.done += 1,
            Outcome::Failed => summary.counts.failed += 1,
            Outcome::Stopped => summary.counts.stopped += 1,
            Outcome::NotRun => summary.counts.not_run += 1,
        }
        let usage = status.and_then(|s| s.usage.clone());
        if let Some(u) = &usage {
            summary.usage.add(u);
        }
        let calls = status.map_or(0, |s| s.attempts.len() as u64);
        summary.calls = summary.calls.saturating_add(calls);
        let judge_usage = status.and_then(|s| s.judge_usage.clone());
        if let Some(j) = &judge_usage {
            summary.judge_usage.add(j);
        }
        let mut warnings = Vec::new();
        let mut rescued = false;
        if let (Outcome::Done, Some(d)) = (state, status) {
            warnings = done_warnings(graph, &task.name, d);
            rescued = d.rescued;
            summary.rescued += usize::from(rescued);
        }
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
            // Unknown, not free, when no call of it had prices.
            cost_usd: usage
                .as_ref()
                .filter(|u| !u.unpriced || u.cost_usd > 0.0)
                .map(|u| u.cost_usd),
            tokens_estimated: usage.as_ref().is_some_and(|u| u.tokens_estimated),
            judge_usage,
            error_kind: error.map(|e| e.kind.as_str().to_string()),
            error: error.map(|e| e.first_line().to_string()),
            error_id: error.and_then(|e| e.error_id.clone()),
            // Records of earlier versions have no `recoverable`.
            recoverable: error.map(|e| e.recoverable || e.kind.recoverable()),
            judge: status.and_then(|s| s.judge.clone()),
            rescued,
            warnings,
        });
    }
    summary
}

/// Writes `.planexe/summary.json`.
pub fn write(summary: &Summary, run_dir: &RunDir) -> crate::error::Result<()> {
    // Sized as the file it replaces: grown by doubling instead, a summary
    // of many tasks would take twice its size in fresh memory.
    let previous = std::fs::metadata(run_dir.summary_path()).map_or(0, |m| m.len());
    let mut bytes = Vec::with_capacity(usize::try_from(previous).unwrap_or(0) * 9 / 8 + 4096);
    serde_json::to_writer_pretty(&mut bytes, summary).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    crate::store::spare::rewrite(&run_dir.summary_path(), &[&bytes])
}
