//! `.planexe/run.json`: the record of a run, the series of builds that
//! brings one run directory from empty to complete. It names the run (id,
//! creation time), the pipeline and its hash, the model chosen for the run
//! (a `--model` given once is remembered for later builds), and each build's
//! start, end and outcome. It also writes the resume summary a build prints
//! when it finds earlier work.

use serde::{Deserialize, Serialize};

use crate::graph::{Graph, TaskId};
use crate::plan::{Plan, Reason};
use crate::rundir::{self, RunDir};

/// How many builds the record keeps.
const MAX_BUILDS: usize = 100;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counts {
    pub tasks: usize,
    pub done: usize,
    pub failed: usize,
    pub stopped: usize,
    pub not_run: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildEntry {
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `running`, `completed`, `failed` or `stopped`.
    pub outcome: String,
    pub pid: u32,
    pub model: Option<String>,
    /// Tasks run (succeeded, failed or stopped) by this build.
    pub ran: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub created_at: String,
    pub pipeline: String,
    /// blake3 of the pipeline file's text at the last build.
    pub pipeline_hash: String,
    /// The model chosen for the run with `--model`, if any.
    pub model: Option<String>,
    pub builds: Vec<BuildEntry>,
    pub last_completed_task: Option<String>,
    pub counts: Counts,
}

impl RunRecord {
    pub fn load(run_dir: &RunDir) -> Option<RunRecord> {
        let text = std::fs::read_to_string(run_dir.state_dir().join("run.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// A new run.
    pub fn new(pipeline: &str, pipeline_hash: String) -> RunRecord {
        RunRecord {
            run_id: uuid::Uuid::new_v4().to_string(),
            created_at: crate::state::now_rfc3339(),
            pipeline: pipeline.to_string(),
            pipeline_hash,
            model: None,
            builds: Vec::new(),
            last_completed_task: None,
            counts: Counts::default(),
        }
    }

    pub fn save(&self, run_dir: &RunDir) -> crate::error::Result<()> {
        let mut text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        text.push(b'\n');
        rundir::write_atomic(&run_dir.state_dir().join("run.json"), &text)
    }

    /// Records the start of a build.
    pub fn begin_build(&mut self, model: Option<String>) {
        self.builds.push(BuildEntry {
            started_at: crate::state::now_rfc3339(),
            finished_at: None,
            outcome: "running".into(),
            pid: std::process::id(),
            model,
            ran: 0,
        });
        if self.builds.len() > MAX_BUILDS {
            let extra = self.builds.len() - MAX_BUILDS;
            self.builds.drain(..extra);
        }
    }

    /// Records the end of the current build.
    pub fn end_build(
        &mut self,
        outcome: &str,
        ran: usize,
        counts: Counts,
        last_completed: Option<String>,
    ) {
        if let Some(build) = self.builds.last_mut() {
            build.finished_at = Some(crate::state::now_rfc3339());
            build.outcome = outcome.to_string();
            build.ran = ran;
        }
        if last_completed.is_some() {
            self.last_completed_task = last_completed;
        }
        self.counts = counts;
    }
}

/// The blake3 hash of the pipeline file's text.
pub fn hash_text(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex()[..32].to_string()
}

/// The line a build prints before it resumes earlier work, e.g.
/// `resuming run 2026-03-06T19:47Z: 23 done, 1 failed (assumptions: schema:
/// ...), 1 interrupted, 38 to run; starting with assumptions, risks`.
pub fn resume_summary(graph: &Graph, plan: &Plan, run: &RunRecord, to_run: &[TaskId]) -> String {
    let mut done = 0;
    let mut failed: Vec<(String, String)> = Vec::new();
    let mut interrupted = 0;
    for &t in &graph.order {
        if !plan.wanted[t] {
            continue;
        }
        match &plan.reasons[t] {
            None => done += 1,
            Some(Reason::FailedLastTime(m)) => {
                failed.push((graph.tasks[t].name.clone(), m.clone()))
            }
            Some(Reason::InterruptedLastTime) => interrupted += 1,
            Some(_) => {}
        }
    }
    let created = run
        .created_at
        .parse::<jiff::Timestamp>()
        .map(|t| t.strftime("%Y-%m-%dT%H:%MZ").to_string())
        .unwrap_or_else(|_| run.created_at.clone());
    let mut line = format!("resuming run {created}: {done} done");
    if !failed.is_empty() {
        let (name, message) = &failed[0];
        let more = if failed.len() > 1 {
            format!(", and {} more", failed.len() - 1)
        } else {
            String::new()
        };
        line.push_str(&format!(
            ", {} failed ({name}: {message}{more})",
            failed.len()
        ));
    }
    if interrupted > 0 {
        line.push_str(&format!(", {interrupted} interrupted"));
    }
    line.push_str(&format!(", {} to run", to_run.len()));
    let in_set: std::collections::HashSet<TaskId> = to_run.iter().copied().collect();
    let first: Vec<&str> = to_run
        .iter()
        .filter(|&&t| !graph.tasks[t].deps.iter().any(|d| in_set.contains(d)))
        .take(4)
        .map(|&t| graph.tasks[t].name.as_str())
        .collect();
    if !first.is_empty() {
        line.push_str(&format!("; starting with {}", first.join(", ")));
    }
    line
}

/// Tasks whose definition changed since their last run (prompt, system,
/// schema, command, format, sampling parameters).
pub fn changed_definitions(graph: &Graph, plan: &Plan) -> Vec<String> {
    graph
        .order
        .iter()
        .filter(|&&t| matches!(plan.reasons[t], Some(Reason::ActionChanged(_))))
        .map(|&t| graph.tasks[t].name.clone())
        .collect()
}
