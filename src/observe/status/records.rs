//! The status of a run whose pipeline file cannot be used (a TOML syntax
//! error, an unknown key, an input gone): what the run's records say, with
//! no task checked. The tasks are those the state log, the sidecars, the
//! `.DONE` markers and the in-flight journal name, in name order, each as
//! its last run left it: `done` (its last run succeeded; it may be stale),
//! `failed` (with its error), `stopped`, `running`, `stale` (`.DONE`
//! gone) or `never-built` (cleaned). The run's header (state, build,
//! totals) is read as for any status.

use std::collections::BTreeMap;
use std::time::Duration;

use super::lines::{About, TaskLine};
use super::{assemble, last_progress, saved, StatusReport};
use crate::error::Result;
use crate::observe::Standing;
use crate::plan::Reason;
use crate::store::run_record::{LastBuild, RunRecord};
use crate::store::{Builder, Recorded, RunDir, StateStore};

/// The status of the run at `run_dir` from its records alone;
/// `pipeline_file` is its pipeline file as shown, which cannot be used.
pub fn of_records(
    run_dir: &RunDir,
    pipeline_file: String,
    stall_after: Duration,
    env_model: Option<&str>,
) -> Result<StatusReport> {
    let store = StateStore::load(run_dir)?;
    let run = RunRecord::load(run_dir);
    let standing = LastBuild::now(run_dir, run.as_ref());
    let builder = Builder::other(standing.running());
    let tasks: Vec<TaskLine> = store
        .task_names()
        .into_iter()
        .map(|name| line(&store, run_dir, &name, builder))
        .collect();
    let about = About {
        pipeline: String::new(),
        pipeline_file,
        default_model: None,
        fanouts: BTreeMap::new(),
        warnings: vec![
            "the pipeline file cannot be used, so no task was checked: the tasks are those the \
             run's records name, in name order, each as its last run left it (`done`: it \
             succeeded then, and may be stale now)"
                .into(),
        ],
    };
    let counts = saved::counts(&tasks);
    let progress = last_progress(run_dir, &tasks);
    Ok(assemble(
        run_dir,
        run.as_ref(),
        about,
        (counts, progress),
        tasks,
        stall_after,
        env_model,
    ))
}

/// The line of task `name`, as its records say.
fn line(store: &StateStore, run_dir: &RunDir, name: &str, builder: Builder<'_>) -> TaskLine {
    let mut line = TaskLine::new(name, None);
    match store.recorded(run_dir, name) {
        Recorded::Never => {
            let reason = Reason::NeverBuilt {
                cleaned: store.was_cleaned(name),
            };
            line.state = Standing::NeverBuilt;
            line.reason = Some(reason.to_string());
        }
        Recorded::Failed(s) => {
            line.state = Standing::Failed;
            line.failure(&s, None);
        }
        Recorded::Interrupted(s) if s.runs_now(builder) => {
            line.running(s.started_at.clone(), Some(&s));
        }
        Recorded::Interrupted(s) => {
            line.state = Standing::Stopped;
            line.reason = Some(Reason::InterruptedLastTime { recheck: false }.to_string());
            line.failure(&s, None);
        }
        Recorded::Unmarked(_) => {
            line.state = Standing::Stale;
            line.reason = Some(Reason::MarkerMissing.to_string());
        }
        Recorded::Done(s) => {
            line.duration_ms = s.duration_ms;
            line.model = s.model.clone();
            line.judge = s.judge.clone();
        }
    }
    line
}
