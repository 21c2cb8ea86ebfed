//! One line per task, as `status` lists them ([`TaskLine`]), and what
//! `status` reports about a pipeline's tasks ([`Known`]): derived from the
//! graph, the state and the plan's reasons (or a running build's view of
//! them), and kept up to date task by task by a running build.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::exec::observer::{Progress, Queued};
use crate::model::fanout;
use crate::model::{Advice, Graph, Pipeline, Trouble};
use crate::observe::standing::Standing;
use crate::observe::summary;
use crate::plan::{Plan, Reason, Session};
use crate::store::record::JudgeVerdict;
use crate::store::{sidecar, Builder, ErrorKind, Recorded, RunDir, StateStore, Status, TaskState};

/// One task in `status --json`. Saved in `status.snapshot` as postcard,
/// which has no field names: a field added, removed or moved here changes
/// the file's layout, and the number in `store::snapshot`'s first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskLine {
    pub task: String,
    pub state: Standing,
    /// Why the task would run (null when done or running, and when it
    /// failed: `error` says why, but for a failed re-check whose outputs
    /// are examined again before it runs).
    pub reason: Option<String>,
    /// First line of the error of the last failed run.
    pub error: Option<String>,
    pub error_kind: Option<String>,
    pub error_id: Option<String>,
    /// The failure is the task's judge's (its call, its prompt, its
    /// score), not the task's own model's or command's.
    #[serde(default)]
    pub error_judge: Option<bool>,
    /// Whether running the build again may fix the failure by itself.
    pub recoverable: Option<bool>,
    /// What to do about a failure.
    pub hint: Option<String>,
    /// A failed command: the end of what it printed (the last 2 KB of its
    /// log, scrubbed), as its record keeps it.
    #[serde(default)]
    pub log_tail: Option<String>,
    pub attempt: Option<u32>,
    pub model: Option<String>,
    pub pid: Option<u32>,
    pub started_at: Option<String>,
    pub duration_ms: Option<u64>,
    /// The fan-out task an instance belongs to.
    pub fanout: Option<String>,
    /// A running task waiting to retry a model call (a `Retry-After`, a
    /// backoff): until when.
    #[serde(default)]
    pub waiting_until: Option<String>,
    /// The task waits for its model's limits: running, before a call; not
    /// started (its state is then that of a task to run), held by its
    /// model's pool (`max_concurrency` of its tasks run).
    #[serde(default)]
    pub queued: Option<QueuedCall>,
    /// A running prompt task: the model call in flight.
    #[serde(default)]
    pub call: Option<CallInFlight>,
    /// A task with a judge: its last verdict, pass or fail.
    #[serde(default)]
    pub judge: Option<JudgeVerdict>,
    /// A task up to date whose outputs were edited by hand since its run:
    /// those outputs, kept (what reads them runs again).
    #[serde(default)]
    pub edited: Option<Vec<String>>,
    /// A fan-out waiting for its list: how many of its instances last
    /// succeeded (each kept if the list leaves its item and inputs
    /// unchanged); null otherwise.
    #[serde(default)]
    pub done_before: Option<usize>,
}

/// The model call a running task has in flight, as the build last saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallInFlight {
    /// The task's call number (1-based, over every model it asked).
    pub attempt: u32,
    pub model: String,
    /// When the call started.
    pub started_at: Option<String>,
    /// Pieces of the answer received so far (close to tokens).
    pub tokens: u64,
    /// When the last of them arrived.
    pub last_token_at: Option<String>,
}

/// A task queued for its model's limits: running, before its next call
/// (the calls in flight fill `max_concurrency`, or `requests_per_minute`
/// spaces the next start); or not started, held by its model's pool (the
/// model's running prompt tasks fill `max_concurrency`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedCall {
    pub model: String,
    /// When the wait began.
    pub since: Option<String>,
    /// What it waits for: `max_concurrency` or `requests_per_minute`.
    pub limit: String,
    /// With `max_concurrency`: the limit, every slot of which is taken.
    pub max_concurrency: Option<usize>,
    /// With `requests_per_minute`: when the call starts.
    pub starts_at: Option<String>,
}

impl QueuedCall {
    /// The queue a build's live view reports, for `status`.
    pub fn of(queued: &Queued) -> QueuedCall {
        use crate::exec::observer::Wait;
        let at = crate::clock::rfc3339_at;
        let (limit, max_concurrency, starts_at) = match queued.wait {
            Wait::Slot { max } => ("max_concurrency", Some(max), None),
            Wait::Rate { until } => ("requests_per_minute", None, at(until)),
        };
        QueuedCall {
            model: queued.model.clone(),
            since: at(queued.since),
            limit: limit.to_string(),
            max_concurrency,
            starts_at,
        }
    }
}

impl TaskLine {
    pub(super) fn new(task: &str, reason: Option<&Reason>) -> TaskLine {
        TaskLine {
            task: task.to_string(),
            state: Standing::Done,
            reason: reason.map(ToString::to_string),
            error: None,
            error_kind: None,
            error_id: None,
            error_judge: None,
            recoverable: None,
            hint: None,
            log_tail: None,
            attempt: None,
            model: None,
            pid: None,
            started_at: None,
            duration_ms: None,
            fanout: fanout::split_instance(task).map(|(b, _)| b.to_string()),
            waiting_until: None,
            queued: None,
            call: None,
            judge: None,
            edited: None,
            done_before: None,
        }
    }

    /// Fills in what a failed or stopped run says (a replay model's
    /// missing answer: from where, as `graph` says).
    pub(super) fn failure(&mut self, s: &Status, graph: Option<&Graph>) {
        self.attempt = Some(s.attempt);
        self.model = s.model.clone();
        self.judge = s.judge.clone();
        if let Some(e) = &s.error {
            // What the failure itself says to do (a fan-out's list that
            // cannot be read: the key to choose, the input to create),
            // then its kind's remedy.
            let mut hint: Vec<&str> = e.hints.iter().map(String::as_str).collect();
            let replay = (e.kind == ErrorKind::ReplayMiss)
                .then(|| {
                    let missed = s.replay_missed_by()?;
                    graph?.replay_missed(missed)
                })
                .flatten();
            let trouble = match &replay {
                Some((dir, live)) => Trouble::ReplayMissed { dir, live },
                None => Trouble::Failed(e.remedy()),
            };
            let remedy = Advice::COMMAND_LINE.hint(&trouble);
            hint.push(&remedy);
            let hint = hint.join("; ");
            // Sidecars of earlier versions have no `recoverable`.
            let recoverable = e.recoverable || e.kind.recoverable();
            self.error = Some(e.first_line().to_string());
            self.error_kind = Some(e.kind.as_str().to_string());
            self.error_id = e.error_id.clone();
            self.error_judge = Some(e.judge);
            self.recoverable = Some(recoverable);
            self.hint = Some(hint);
            self.log_tail = e.log_tail.clone();
        }
    }

    /// Shows the task as running, with what its status says (a rescue's
    /// checks running: `failed-pending-check`, and how its command failed).
    pub(super) fn running(&mut self, started_at: Option<String>, s: Option<&Status>) {
        self.state = Standing::Running;
        self.reason = None;
        self.error = None;
        self.error_kind = None;
        self.error_id = None;
        self.error_judge = None;
        self.recoverable = None;
        self.hint = None;
        self.log_tail = None;
        self.attempt = Some(1);
        self.started_at = started_at;
        if let Some(s) = s.filter(|s| s.state.is_running()) {
            // The command's pid, while it runs: its checks or its judge
            // go on after it has exited (and its pid may be reused).
            self.pid = s.pid.filter(|&pid| crate::store::process::alive(pid));
            self.attempt = Some(s.attempt);
            self.started_at = s.started_at.clone();
            self.model = s.model.clone();
            if s.state == TaskState::FailedPendingCheck {
                self.pending_check(s.error.as_ref().map(|e| e.first_line()));
            }
        }
    }

    /// Shows the running task as `failed-pending-check`; `why` its
    /// command's failure.
    fn pending_check(&mut self, why: Option<&str>) {
        self.state = Standing::FailedPendingCheck;
        if let Some(why) = why {
            self.error = Some(why.to_string());
        }
    }
}

/// What `status` reports about the pipeline and its tasks: everything but
/// the run's header and totals, which are read fresh every time.
#[derive(Debug)]
pub struct Known {
    pub(super) about: About,
    pub(super) tasks: Vec<TaskLine>,
}

/// What `status` reports about the pipeline, besides its task lines.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct About {
    /// The pipeline's name.
    pub(super) pipeline: String,
    pub(super) pipeline_file: String,
    /// `[pipeline] model`, shown when no override applies.
    pub(super) default_model: Option<String>,
    /// Fan-out tasks, and whether each still waits for its list.
    pub(super) fanouts: BTreeMap<String, bool>,
    /// Quality warnings of completed tasks.
    pub(super) warnings: Vec<String>,
}

/// The status line of every task, in declaration order: `reasons` says
/// which must run and why (the plan, or a running build's view of it);
/// `running` the build that runs now, if one does.
pub fn task_lines(
    graph: &Graph,
    store: &StateStore,
    run_dir: &RunDir,
    reasons: &[Option<Reason>],
    running: Builder<'_>,
) -> Vec<TaskLine> {
    let waiting: Vec<&str> = (graph.fanouts.iter())
        .filter(|(_, g)| g.placeholder)
        .map(|(name, _)| name.as_str())
        .collect();
    let done_before = crate::plan::instances_done_before(store, &waiting);
    graph
        .tasks()
        .map(|task| {
            let mut line = task_line(
                graph,
                store,
                run_dir,
                &task.name,
                reasons[task.id].as_ref(),
                running,
            );
            line.done_before = done_before.get(&task.name).copied();
            line
        })
        .collect()
}

/// The status line of one task.
fn task_line(
    graph: &Graph,
    store: &StateStore,
    run_dir: &RunDir,
    name: &str,
    reason: Option<&Reason>,
    running: Builder<'_>,
) -> TaskLine {
    let mut line = TaskLine::new(name, reason);
    match reason {
        None => {
            if let Some(done) = store.record(name).and_then(|r| r.done.as_ref()) {
                line.duration_ms = done.duration_ms;
                line.model = done.model.clone();
                line.judge = done.judge.clone();
            }
        }
        Some(Reason::FailedLastTime { message, recheck }) => {
            line.state = Standing::Failed;
            match store.recorded(run_dir, name) {
                Recorded::Failed(s) => line.failure(&s, Some(graph)),
                _ => line.error = Some(message.clone()),
            }
            // `state` says it failed and `error` what failed: the reason
            // would only repeat them, but for a re-check's outputs,
            // examined again before it runs.
            line.reason =
                recheck.then(|| "outputs checked again: it runs only if they fail".into());
        }
        Some(Reason::InterruptedLastTime { .. }) => {
            // Not the sidecar as such: a later build that announced the
            // task (`pending`) and was stopped before it started it leaves
            // the stop the log holds its last run, not a crash.
            let latest = store.latest(run_dir, name);
            line.state = Standing::of(reason, latest.as_ref(), running);
            match &latest {
                Some(s)
                    if matches!(line.state, Standing::Running | Standing::FailedPendingCheck) =>
                {
                    line.running(s.started_at.clone(), Some(s));
                }
                Some(s) => line.failure(s, Some(graph)),
                None => {}
            }
            // A run its build never saw end (planexe was killed, or the
            // machine stopped) has no error of its own recorded.
            if line.state == Standing::Stopped && line.error.is_none() {
                line.error = Some("its build ended before it did".into());
                line.error_kind = Some(ErrorKind::Stopped.as_str().to_string());
                line.recoverable = Some(true);
                line.hint = Some(
                    Advice::COMMAND_LINE.hint(&Trouble::Failed(ErrorKind::Stopped.remedy(true))),
                );
            }
        }
        // A fan-out whose last build could not expand it (its list is not
        // what the task says, an item's input is missing): failed, as its
        // record says, until a build expands it.
        Some(Reason::AwaitsList(_)) => match store.recorded(run_dir, name) {
            Recorded::Failed(s) => {
                line.state = Standing::Failed;
                line.failure(&s, Some(graph));
            }
            _ => line.state = Standing::of(reason, None, running),
        },
        Some(other) => line.state = Standing::of(Some(other), None, running),
    }
    line
}

/// The status line of a task outside a running build, from its records.
fn outside_line(graph: &Graph, store: &StateStore, run_dir: &RunDir, name: &str) -> TaskLine {
    let reason = match store.recorded_in_memory(name) {
        Recorded::Never => Some(Reason::NeverBuilt {
            cleaned: store.was_cleaned(name),
        }),
        Recorded::Failed(s) => Some(Reason::failed(
            s.error
                .as_ref()
                .map(|e| e.first_line().to_string())
                .unwrap_or_default(),
        )),
        Recorded::Interrupted(_) => Some(Reason::InterruptedLastTime { recheck: false }),
        Recorded::Unmarked(_) => Some(Reason::MarkerMissing),
        Recorded::Done(_) => None,
    };
    // Not part of this build: not running, whatever an old sidecar says.
    task_line(
        graph,
        store,
        run_dir,
        name,
        reason.as_ref(),
        Builder::Nobody,
    )
}

impl Known {
    /// What `status` reports, from the graph, the state and `reasons`.
    pub fn of(
        graph: &Graph,
        pipeline: &Pipeline,
        store: &StateStore,
        run_dir: &RunDir,
        reasons: &[Option<Reason>],
        running: Builder<'_>,
    ) -> Known {
        let mut known = Known::without_warnings(graph, pipeline, store, run_dir, reasons, running);
        known.about.warnings = summary::warnings(graph, store);
        known
    }

    /// [`Known::of`] without the quality warnings (none).
    pub(super) fn without_warnings(
        graph: &Graph,
        pipeline: &Pipeline,
        store: &StateStore,
        run_dir: &RunDir,
        reasons: &[Option<Reason>],
        running: Builder<'_>,
    ) -> Known {
        Known {
            about: About {
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
                warnings: Vec::new(),
            },
            tasks: task_lines(graph, store, run_dir, reasons, running),
        }
    }

    pub(super) fn of_session(session: &Session, plan: &Plan) -> Known {
        let mut known = Known::of_session_without_warnings(session, plan);
        known.about.warnings = summary::warnings(&session.graph, &session.store);
        known
    }

    /// [`Known::of_session`] without the quality warnings (none).
    pub(super) fn of_session_without_warnings(session: &Session, plan: &Plan) -> Known {
        let mut known = Known::without_warnings(
            &session.graph,
            &session.pipeline,
            &session.store,
            &session.run_dir,
            &plan.reasons,
            session.builder(),
        );
        if !plan.edited.is_empty() {
            let at: HashMap<String, usize> = (known.tasks.iter().enumerate())
                .map(|(i, l)| (l.task.clone(), i))
                .collect();
            for (id, path) in &plan.edited {
                if let Some(&i) = at.get(&session.graph[*id].name) {
                    let line = &mut known.tasks[i];
                    line.edited.get_or_insert_with(Vec::new).push(path.clone());
                }
            }
        }
        known
    }

    /// Whether these lines are of `graph`'s tasks as it lists them now (a
    /// graph that grew lists more).
    pub fn fits(&self, graph: &Graph) -> bool {
        self.tasks.len() == graph.len()
    }

    /// Says again what the tasks `changed` (ids) are, from the state and
    /// `reasons`: a running build's view, kept up to date task by task
    /// rather than for every task each time.
    pub fn refresh(
        &mut self,
        graph: &Graph,
        store: &StateStore,
        run_dir: &RunDir,
        reasons: &[Option<Reason>],
        changed: &[usize],
    ) {
        for &t in changed {
            if !graph.is_live(t) {
                continue;
            }
            let rank = graph.rank(t);
            let name = &graph[t].name;
            if let Some(line) = self.tasks.get_mut(rank).filter(|l| l.task == *name) {
                // A fan-out waiting for its list still has the instances
                // done before that the view was made with.
                let done_before = line.done_before;
                *line = task_line(
                    graph,
                    store,
                    run_dir,
                    name,
                    reasons[t].as_ref(),
                    Builder::Itself,
                );
                line.done_before = done_before;
            }
        }
    }

    /// Says where the tasks `ids` stand that a running build does not
    /// build (`wanted` false, as for `planexe build TARGET`): its plan
    /// checked only the wanted tasks, so it has no reason for the others,
    /// which does not mean they are up to date. `beside` has their reasons
    /// as a dry run of every task says them ([`crate::plan::Plan::beside`]);
    /// without it (they could not be judged), their records say: never
    /// built, failed, stopped, or done.
    pub fn outside_build(
        &mut self,
        graph: &Graph,
        store: &StateStore,
        run_dir: &RunDir,
        (wanted, beside): (&[bool], Option<&[Option<Reason>]>),
        ids: impl IntoIterator<Item = usize>,
    ) {
        for t in ids {
            if !graph.is_live(t) || wanted.get(t).copied().unwrap_or(false) {
                continue;
            }
            let name = &graph[t].name;
            if let Some(line) = self
                .tasks
                .get_mut(graph.rank(t))
                .filter(|l| l.task == *name)
            {
                let done_before = line.done_before;
                *line = match beside {
                    Some(reasons) => {
                        let reason = reasons.get(t).and_then(Option::as_ref);
                        task_line(graph, store, run_dir, name, reason, Builder::Nobody)
                    }
                    None => outside_line(graph, store, run_dir, name),
                };
                line.done_before = done_before;
            }
        }
    }

    /// Shows the task at `index` in the listing as running: a running
    /// build knows, whatever the sidecar's pid says by now. The sidecar
    /// gives the details.
    pub fn mark_running(&mut self, index: usize, started_at: Option<String>, run_dir: &RunDir) {
        let Some(line) = self.tasks.get_mut(index) else {
            return;
        };
        let status = sidecar::read_status(run_dir, &line.task);
        line.running(started_at, status.as_ref());
    }

    /// Shows the running task at `index` in the listing as
    /// `failed-pending-check` (a running build knows).
    pub fn mark_pending_check(&mut self, index: usize) {
        if let Some(line) = self.tasks.get_mut(index) {
            if line.state != Standing::FailedPendingCheck {
                line.pending_check(None);
            }
        }
    }

    /// Shows the task at `index` in the listing as held by its model's
    /// pool: it has not started, and waits as `queued` says (a running
    /// build knows).
    pub fn mark_held(&mut self, index: usize, queued: &Queued) {
        if let Some(line) = self.tasks.get_mut(index) {
            line.queued = Some(QueuedCall::of(queued));
        }
    }

    /// Shows the model call of the running task at `index` in the
    /// listing: the one in flight, or the wait before the next.
    pub fn mark_call(&mut self, index: usize, progress: &Progress) {
        let Some(line) = self.tasks.get_mut(index) else {
            return;
        };
        let at = |t: Option<std::time::SystemTime>| t.and_then(crate::clock::rfc3339_at);
        line.waiting_until = at(progress.waiting_until);
        line.queued = progress.queued.as_ref().map(QueuedCall::of);
        if progress.attempt > 0 {
            line.attempt = Some(progress.attempt);
            line.model = Some(progress.model.clone());
        }
        // Between calls (waiting to retry, or queued for the model's
        // limits) no call is in flight: the last one has ended.
        let between = line.waiting_until.is_some() || line.queued.is_some();
        line.call = None;
        if progress.attempt > 0 && !between {
            line.call = Some(CallInFlight {
                attempt: progress.attempt,
                model: progress.model.clone(),
                started_at: at(progress.call_started_at),
                tokens: progress.pieces,
                last_token_at: at(progress.last_piece_at),
            });
        }
    }
}
