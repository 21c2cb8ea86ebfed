//! `.planexe/run.json`: the record of a run, the series of builds that
//! brings one run directory from empty to complete. It names the run (id,
//! creation time: [`created_at`], the one answer `status`, the report and
//! the MCP server's `runs` give), the pipeline and its hash, the model chosen for the run
//! (a `--model` given once is remembered for later builds), and each build's
//! start, end and [`BuildOutcome`]. Whether a build runs now is decided
//! here ([`RunRecord::running_build`]), once: by the record, and by the
//! run directory's lock, which a running build holds; and how the last
//! build stands ([`LastBuild::now`]), read again when it ended between the
//! record's read and the look at its lock.

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

/// How the last build of a run directory stands now ([`LastBuild::now`]).
#[derive(Debug, Clone)]
pub enum LastBuild {
    /// The run has no build yet.
    Never,
    /// It runs now.
    Running(BuildEntry),
    /// It ended, as its outcome says; one that never recorded its end
    /// (outcome `running`) crashed.
    Ended(BuildEntry),
}

impl LastBuild {
    /// How the last build in `record`, read from `run_dir`, stands now. A
    /// build records its end before it lets go of the lock, so one read as
    /// unfinished that does not run now either crashed or ended after the
    /// read: the record is read again to say which (and a build that
    /// started since is seen running). Without that, a build ending a
    /// moment after the read was taken for one that crashed: `status` said
    /// `stopped`, and `wait` exited 130, for a build that had failed or
    /// completed.
    pub fn now(run_dir: &RunDir, record: Option<&RunRecord>) -> LastBuild {
        let Some(last) = record.and_then(|r| r.builds.last()) else {
            return LastBuild::Never;
        };
        if last.running(run_dir) {
            return LastBuild::Running(last.clone());
        }
        if !last.unfinished() {
            return LastBuild::Ended(last.clone());
        }
        match RunRecord::load(run_dir).and_then(|r| r.builds.last().cloned()) {
            Some(again) if again.running(run_dir) => LastBuild::Running(again),
            Some(again) => LastBuild::Ended(again),
            None => LastBuild::Ended(last.clone()),
        }
    }

    /// The build, whether it runs or ended.
    pub fn entry(&self) -> Option<&BuildEntry> {
        match self {
            LastBuild::Never => None,
            LastBuild::Running(b) | LastBuild::Ended(b) => Some(b),
        }
    }

    /// The build, while it runs.
    pub fn running(&self) -> Option<&BuildEntry> {
        match self {
            LastBuild::Running(b) => Some(b),
            _ => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rundir::temp as run_dir;

    /// A record whose last build is this process's, unfinished: this
    /// process lives but holds no lock, as a build that crashed.
    fn unfinished(run_dir: &RunDir) -> RunRecord {
        let mut record = RunRecord::new(run_dir, "pipeline.toml", hash_text(""));
        record.begin_build(None);
        record
    }

    #[test]
    fn a_build_that_ended_after_its_record_was_read_is_seen_ended() {
        let (_dir, run_dir) = run_dir();
        let read = unfinished(&run_dir);
        let mut now = read.clone();
        now.end_build(BuildOutcome::Failed, 1, Counts::default(), None);
        now.save(&run_dir).unwrap();
        let last = LastBuild::now(&run_dir, Some(&read));
        let Some(entry) = last.entry() else {
            panic!("no build: {last:?}");
        };
        assert!(last.running().is_none(), "{last:?}");
        assert_eq!(entry.outcome, BuildOutcome::Failed);
        assert!(entry.finished_at.is_some());
    }

    #[test]
    fn a_build_that_never_recorded_its_end_crashed() {
        let (_dir, run_dir) = run_dir();
        let read = unfinished(&run_dir);
        read.save(&run_dir).unwrap();
        let last = LastBuild::now(&run_dir, Some(&read));
        assert!(matches!(
            &last,
            LastBuild::Ended(b) if b.outcome == BuildOutcome::Running
        ));
        assert!(matches!(LastBuild::now(&run_dir, None), LastBuild::Never));
    }
}
