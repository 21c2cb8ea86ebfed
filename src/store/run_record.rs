//! `.planexe/run.json`: the record of a run, the series of builds that
//! brings one run directory from empty to complete. It names the run (id,
//! creation time: [`created_at`], the one answer `status`, the report and
//! the MCP server's `runs` give), the pipeline and its hash, the model chosen for the run
//! (a `--model` given once is remembered for later builds), and each build's
//! start, end and [`BuildOutcome`]. Whether a build runs now is decided
//! here ([`RunRecord::running_build`]), once: by the record, and by the
//! run directory's lock, which a running build holds.

use serde::{Deserialize, Serialize};

use super::files;
use super::origin::Origin;
use super::process;
use super::rundir::RunDir;

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

/// How a build ended, or that it has not (yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildOutcome {
    /// Still running, or crashed before it could record its end.
    Running,
    Completed,
    Failed,
    Stopped,
}

impl BuildOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildOutcome::Running => "running",
            BuildOutcome::Completed => "completed",
            BuildOutcome::Failed => "failed",
            BuildOutcome::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildEntry {
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: BuildOutcome,
    pub pid: u32,
    pub model: Option<String>,
    /// Tasks run (succeeded, failed or stopped) by this build.
    pub ran: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    /// When the run was created: see [`RunRecord::new`].
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

impl BuildEntry {
    /// Whether this build never recorded its end: it runs, or it crashed.
    pub fn unfinished(&self) -> bool {
        self.outcome == BuildOutcome::Running
    }

    /// Whether this build runs now in `run_dir`: unfinished, its process
    /// alive and holding the run directory's lock. A build takes the lock
    /// before it records itself and keeps it until it records its end, so
    /// a live process named by an unfinished build that does not hold the
    /// lock was given the pid of a build that crashed.
    pub fn running(&self, run_dir: &RunDir) -> bool {
        self.unfinished() && process::alive(self.pid) && run_dir.lock_held_by(self.pid)
    }
}

impl RunRecord {
    pub fn load(run_dir: &RunDir) -> Option<RunRecord> {
        let bytes = files::read(&run_dir.run_record_path()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The last build, when it has not recorded its end (it runs, or it
    /// crashed).
    pub fn unfinished_build(&self) -> Option<&BuildEntry> {
        self.builds.last().filter(|b| b.unfinished())
    }

    /// The last build, when it runs now in `run_dir` (see
    /// [`BuildEntry::running`]).
    pub fn running_build(&self, run_dir: &RunDir) -> Option<&BuildEntry> {
        self.builds.last().filter(|b| b.running(run_dir))
    }

    /// The record of `run_dir`, made by its first build. The run was
    /// created when `planexe new` or `run_create` made the folder, as its
    /// `origin.json` says, or, for a folder made by hand, now.
    pub fn new(run_dir: &RunDir, pipeline: &str, pipeline_hash: String) -> RunRecord {
        RunRecord {
            run_id: uuid::Uuid::new_v4().to_string(),
            created_at: Origin::load(run_dir)
                .map(|o| o.created_at)
                .filter(|t| t.parse::<jiff::Timestamp>().is_ok())
                .unwrap_or_else(crate::clock::now_rfc3339),
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
        super::spare::rewrite(&run_dir.run_record_path(), &[&text])
    }

    /// Records the start of a build.
    pub fn begin_build(&mut self, model: Option<String>) {
        self.builds.push(BuildEntry {
            started_at: crate::clock::now_rfc3339(),
            finished_at: None,
            outcome: BuildOutcome::Running,
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
        outcome: BuildOutcome,
        ran: usize,
        counts: Counts,
        last_completed: Option<String>,
    ) {
        if let Some(build) = self.builds.last_mut() {
            build.finished_at = Some(crate::clock::now_rfc3339());
            build.outcome = outcome;
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

/// When the run in `run_dir` (whose record is `record`) was created: as
/// its record says; before its first build, as its `origin.json` does; none
/// for a folder made by hand and never built. What `status`, the report
/// and the MCP server's `runs` show.
pub fn created_at(run_dir: &RunDir, record: Option<&RunRecord>) -> Option<String> {
    record
        .map(|r| r.created_at.clone())
        .or_else(|| Origin::load(run_dir).map(|o| o.created_at))
}
