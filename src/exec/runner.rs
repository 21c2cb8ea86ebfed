//! One task's run on a pool thread, from its first step to its record: the
//! scheduler's [`Runner`] for a build.
//!
//! - **A run** is an [`Attempt`] (prepare, execute, verify, commit or roll
//!   back) whose outputs must pass the task's checks
//!   ([`checks::examine`]): `min_bytes`, `check`, and for a command its
//!   judge (a prompt task's judge scores its answer in the conversation). A
//!   command whose judge scores what it wrote too low runs again with the
//!   judge's reason, up to the judge's `retries`.
//! - **A rescue**: a command with `rescue = true` that exits non-zero after
//!   writing every output is `failed-pending-check` while its check and
//!   judge examine what it wrote, then done (rescued) or failed. Crashes
//!   (a signal, a timeout, a stop, missing outputs) are never rescued.
//! - **A re-check**: a task whose checks alone changed has its current
//!   outputs examined by the new checks; it runs only if they fail, or if
//!   a task upstream rebuilt one of its inputs first. They
//!   may have been edited by hand, so a prompt task's output is checked
//!   against its answer format and schema too, as `touch` checks it.
//!
//! The task's record (its sidecar, then `.DONE`) is published from this
//! thread; the loop appends the state log line.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::attempt::{Attempt, Executor, Feedback, Folders, Turn};
use super::checks::{self, Inspectors, Judgement};
use super::failure::{scrubbed_tail, Failures};
use super::reaper::Reaper;
use super::scheduler::Runner;
use crate::error::Error;
use crate::model::judge::Judge;
use crate::model::{Action, Task, TaskId};
use crate::phases::timed;
use crate::store::inflight::Inflight;
use crate::store::sidecar;
use crate::store::stamp::Comparison;
use crate::store::untrusted::Secrets;
use crate::store::{CheckMode, ErrorKind, RunDir, Stamper, Status, TaskError, TaskState};

/// How many lines of a failed task's output to show.
const TAIL_LINES: usize = 15;
/// The most of the end of a failed task's output read for them (a log
/// may be of any size, its lines of any length).
const TAIL_BYTES: usize = 8 * 1024;

/// What one task's run produced, sent from the pool to the loop.
pub struct RunResult {
    pub status: Status,
    pub elapsed: Duration,
    /// The last lines of a failed task's log.
    pub tail: Vec<String>,
    /// Where what a failed run left at its output paths is kept (in
    /// `.planexe/failed/TASK/`), as shown.
    pub left: Vec<String>,
    /// How many outputs of its last good run a failed run put back.
    pub restored: usize,
    /// Writing the sidecar and marker failed (planexe's own bookkeeping).
    pub publish_error: Option<Error>,
    /// The length of the sidecar written.
    pub sidecar_len: Option<u64>,
}

/// What a task's run leaves beside its status: a failed run's log tail
/// and where its files are kept.
#[derive(Default)]
struct Ended {
    tail: Vec<String>,
    left: Vec<String>,
    restored: usize,
}

/// Tasks that entered `failed-pending-check` (their command failed; their
/// rescue's checks examine what it wrote), told from the pool threads to
/// the build loop, which shows them.
#[derive(Debug, Default)]
pub struct Checking {
    entered: Mutex<Vec<(TaskId, String)>>,
}

impl Checking {
    fn enter(&self, t: TaskId, why: &str) {
        self.entered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((t, why.to_string()));
    }

    /// The tasks that entered the state since the last call, with how
    /// their command failed.
    pub fn take(&self) -> Vec<(TaskId, String)> {
        std::mem::take(&mut *self.entered.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// What a task's run is given when it starts (by the build's hooks, which
/// hold the graph and the state: the graph may grow meanwhile).
pub struct Start {
    /// The task as the graph has it now.
    pub task: Task,
    /// Its last good run.
    pub previous: Option<Status>,
    /// Its checks alone changed since its last good run: its current
    /// outputs are checked again before anything runs.
    pub recheck: bool,
    /// The plan found it never built: it is not known to have a sidecar.
    pub first: bool,
}

/// Runs tasks on the scheduler's pool threads.
pub struct TaskRunner<'a> {
    pub run_dir: &'a RunDir,
    pub stamper: &'a Stamper,
    pub executor: &'a dyn Executor,
    /// Where each failed attempt is recorded.
    pub failures: &'a Failures<'a>,
    /// The journal (none in a build that records nothing).
    pub inflight: Option<&'a Inflight>,
    pub checking: &'a Checking,
    /// The folders of outputs made or found so far.
    pub folders: Folders,
    /// Deletes what committed runs set aside.
    pub reaper: &'a Reaper,
    /// The build's secrets, for the checks of outputs planexe did not
    /// just write (a re-check).
    pub secrets: &'a Secrets,
}

impl Runner for TaskRunner<'_> {
    type Input = Start;
    type Output = RunResult;

    fn run(&self, _t: TaskId, start_with: Start) -> RunResult {
        let Start {
            task,
            previous,
            recheck,
            first,
        } = start_with;
        let task = &task;
        let _whole = crate::phases::phase("task: run, all steps");
        let start = Instant::now();
        let mut status = Status::new(&task.name, TaskState::Running, &task.fingerprint);
        status.action_fingerprint = action_fingerprint(task);
        status
            .template_fingerprint
            .clone_from(&task.template_fingerprint);
        status.started_at = Some(crate::clock::now_rfc3339());
        status.attempt = 1;
        status.definition = task.action.definition();
        let mut turn = timed("task: journal", || {
            Turn::begin(self.run_dir, self.inflight, &status)
        });
        if recheck {
            if let Some(ended) = self.rechecked(task, previous.as_ref(), &turn) {
                turn.settle();
                let published = self.publish(ended, start, Ended::default(), first);
                turn.end();
                return published;
            }
        }
        let mut attempt = Attempt {
            task,
            run_dir: self.run_dir,
            stamper: self.stamper,
            folders: &self.folders,
            reaper: self.reaper,
            set_aside: false,
        };
        let prepared = timed("task: prepare (stamp inputs, set outputs aside)", || {
            attempt.prepare(previous.as_ref(), &mut status)
        });
        let (mut left, mut restored) = (Vec::new(), 0);
        let result = prepared.and_then(|()| {
            self.turns(&attempt, task, &mut status, &mut turn)
                .inspect(|()| timed("task: commit", || attempt.commit()))
                .map_err(|mut error| {
                    let rolled = attempt.roll_back();
                    (left, restored) = (rolled.left, rolled.restored);
                    // A good output that could not be put back is said
                    // with the failure, with where it is kept.
                    for kept in rolled.not_restored {
                        error.message.push('\n');
                        error.message.push_str(&kept);
                    }
                    error
                })
        });
        timed("task: journal", || turn.settle());
        status.finished_at = Some(crate::clock::now_rfc3339());
        status.duration_ms = Some(start.elapsed().as_millis() as u64);
        let mut tail = Vec::new();
        match result {
            Ok(()) => status.state = TaskState::Done,
            Err(mut error) => {
                status.state = if error.kind == ErrorKind::Stopped {
                    TaskState::Stopped
                } else {
                    TaskState::Failed
                };
                tail = log_tail(self.run_dir, &task.name, self.failures);
                self.failures.record(task, &status, &mut error);
                status.error = Some(error);
            }
        }
        let published = self.publish(
            status,
            start,
            Ended {
                tail,
                left,
                restored,
            },
            first,
        );
        // Its end is journaled once its outcome can be read: a reader of
        // the journal then the records never finds it in neither.
        timed("task: journal", || turn.end());
        published
    }
}

/// What a record keeps of a task's action apart from its checks: only
/// when it has checks (otherwise the two are the same).
pub(super) fn action_fingerprint(task: &Task) -> Option<String> {
    (task.action_fingerprint != task.fingerprint).then(|| task.action_fingerprint.clone())
}

impl TaskRunner<'_> {
    /// Runs the action until its outputs are accepted or refused: a
    /// command whose judge scores what it wrote too low runs again, with
    /// the judge's score and reason, up to the judge's retries.
    fn turns(
        &self,
        attempt: &Attempt,
        task: &Task,
        status: &mut Status,
        turn: &mut Turn,
    ) -> Result<(), TaskError> {
        let command = matches!(task.action, Action::Command(_));
        let mut rounds = 0u32;
        loop {
            match self.executor.execute(task, status, turn) {
                Ok(()) => {}
                Err(failed) if rescuable(task, &failed) => {
                    return self.rescue(attempt, task, failed, status, turn)
                }
                Err(mut failed) => {
                    // Its judge refused every answer: none stays cached.
                    if failed.kind == ErrorKind::JudgeRejected {
                        if let Some(removed) = turn.uncache() {
                            failed.message.push_str(&removed);
                        }
                    }
                    return Err(failed);
                }
            }
            timed("task: verify (stamp outputs)", || attempt.verify(status))?;
            let judgement = timed("task: checks", || {
                self.examine(task, false, command, true, status, turn)
            });
            rounds += 1;
            if command {
                if let Some(verdict) = &mut status.judge {
                    verdict.rounds = rounds;
                }
            }
            let Some(mut error) = judgement.error else {
                return Ok(());
            };
            let retries = task.checks.judge.as_ref().map_or(0, |j| j.retries);
            match judgement.verdict.filter(|_| command) {
                Some(verdict) if error.kind == ErrorKind::JudgeRejected && rounds <= retries => {
                    turn.feedback = Some(Feedback {
                        score: verdict.score,
                        reason: verdict.reason,
                    });
                    attempt.discard();
                    status.attempt += 1;
                    status.pid = None;
                    turn.update(status);
                }
                _ => {
                    if error.kind == ErrorKind::JudgeRejected && rounds > 1 {
                        error
                            .message
                            .push_str(&format!(" (after {} re-run(s))", rounds - 1));
                    }
                    if let Some(removed) = turn.uncache() {
                        error.message.push_str(&removed);
                    }
                    return Err(error);
                }
            }
        }
    }

    /// Runs the output checks of `task` and records them in `status`:
    /// `strict` refuses on any failed check (see [`checks::examine`]);
    /// `judge` lets the judge score the outputs on disk; `stamped`: the
    /// outputs in `status` were stamped just now (not a record's): when
    /// they were not, a prompt task's output is also checked against its
    /// answer format (it may have been edited since it was written).
    fn examine(
        &self,
        task: &Task,
        strict: bool,
        judge: bool,
        stamped: bool,
        status: &mut Status,
        turn: &Turn,
    ) -> Judgement {
        let executor = self.executor;
        // Set apart while the checks run (a judge adds its calls to the
        // status): the outputs as just stamped, when they were.
        let outputs = std::mem::take(&mut status.outputs);
        let judged = &mut *status;
        let mut judgement = checks::examine(
            self.run_dir,
            task,
            strict,
            stamped.then_some(&outputs),
            Inspectors {
                answer: (!stamped).then_some(self.secrets),
                check: |script: &str| executor.check(task, script, turn),
                judge: judge.then_some(|j: &Judge| executor.judge(task, j, judged, turn)),
            },
        );
        status.outputs = outputs;
        let mut records = std::mem::take(&mut judgement.records);
        if !judge {
            // A prompt task's judge ran in its conversation: what it left
            // in the record (a warning that it could not score) stays.
            records.extend(status.checks.drain(..).filter(|c| c.name == checks::JUDGE));
        }
        status.checks = records;
        if let Some(verdict) = &judgement.verdict {
            status.judge = Some(verdict.clone());
        }
        judgement
    }

    /// A command that `failed` (exited non-zero) is done after all if it
    /// wrote every output and its checks accept them: `failed-pending-check`
    /// while they run, then done (`rescued`) or failed as the checks say.
    fn rescue(
        &self,
        attempt: &Attempt,
        task: &Task,
        failed: TaskError,
        status: &mut Status,
        turn: &Turn,
    ) -> Result<(), TaskError> {
        attempt.verify(status).map_err(|_| failed.clone())?;
        status.state = TaskState::FailedPendingCheck;
        status.error = Some(failed.clone());
        turn.update(status);
        self.checking.enter(task.id, &failed.message);
        let judgement = self.examine(task, true, true, true, status, turn);
        status.state = TaskState::Running;
        status.error = None;
        match judgement.error {
            None => {
                status.rescued = true;
                Ok(())
            }
            Some(stopped) if stopped.kind == ErrorKind::Stopped => Err(stopped),
            Some(refused) => Err(TaskError {
                exit_code: failed.exit_code,
                error_id: refused.error_id,
                judge: refused.judge,
                ..TaskError::new(
                    refused.kind,
                    format!("{}, and {}", failed.message, refused.message),
                )
            }),
        }
    }

    /// A task whose checks alone changed: its current outputs, examined by
    /// the new checks, are its result when they pass (nothing runs); `None`
    /// when they refuse them, and the task runs as usual. A judge that
    /// could not score them (its model down) or a stop refuses nothing:
    /// the task fails (or stops) with it, its outputs as they are, rather
    /// than ask its model for an answer its judge could not score either;
    /// its record says so (`rechecked`), and the next build examines those
    /// outputs again instead of running the task.
    fn rechecked(&self, task: &Task, last: Option<&Status>, turn: &Turn) -> Option<Status> {
        let last = last?;
        if !self.inputs_as_recorded(task, last) {
            return None;
        }
        let mut status = last.clone();
        status.started_at = Some(crate::clock::now_rfc3339());
        let judgement = self.examine(task, false, true, false, &mut status, turn);
        if let Some(mut error) = judgement.error {
            if matches!(
                error.kind,
                ErrorKind::CheckFailed | ErrorKind::JudgeRejected
            ) {
                return None;
            }
            status.state = match error.kind {
                ErrorKind::Stopped => TaskState::Stopped,
                _ => TaskState::Failed,
            };
            status.fingerprint.clone_from(&task.fingerprint);
            // The next build examines these outputs again, unless they
            // change meanwhile (`plan::check`).
            status.rechecked = true;
            // No command ran: the log is the last run's.
            status.pid = None;
            status.finished_at = Some(crate::clock::now_rfc3339());
            self.failures.record(task, &status, &mut error);
            status.error = Some(error);
            return Some(status);
        }
        // The outputs as they are now (an edit by hand is kept).
        for out in &task.outputs {
            let stamp = self.stamper.stamp(self.run_dir.root(), &out.path).ok()??;
            status.outputs.insert(out.path.clone(), stamp);
        }
        status.state = TaskState::Done;
        status.rechecked = false;
        status.fingerprint.clone_from(&task.fingerprint);
        status.action_fingerprint = action_fingerprint(task);
        status
            .template_fingerprint
            .clone_from(&task.template_fingerprint);
        status.error = None;
        status.finished_at = Some(crate::clock::now_rfc3339());
        Some(status)
    }

    /// Whether every input of `task` is as its last good run `last`
    /// recorded it (the same bytes). The plan found them so, but a task
    /// upstream may have run since and rebuilt one: the outputs on disk
    /// are then of the inputs before, and a re-check would take them for
    /// the task's result; it runs instead.
    fn inputs_as_recorded(&self, task: &Task, last: &Status) -> bool {
        let root = self.run_dir.root();
        task.inputs.iter().all(|input| {
            last.inputs.get(&input.path).is_some_and(|stamp| {
                matches!(
                    self.stamper
                        .compare(root, &input.path, stamp, CheckMode::Content),
                    Ok(Comparison::Same | Comparison::Touched(_))
                )
            })
        })
    }

    /// Publishes the task's record: its sidecar, then (done) `.DONE`. Here,
    /// on the job's thread, so tasks finishing together do not queue
    /// behind one another's file writes on the loop's thread (which
    /// appends the log line).
    fn publish(&self, mut status: Status, start: Instant, ended: Ended, first: bool) -> RunResult {
        let elapsed = start.elapsed();
        status.duration_ms = Some(elapsed.as_millis() as u64);
        let _publish = crate::phases::phase("task: publish (sidecar, .DONE)");
        let (sidecar_len, publish_error) = match sidecar::publish_as(self.run_dir, &status, first) {
            Ok(len) => (Some(len), None),
            Err(e) => (None, Some(e)),
        };
        RunResult {
            status,
            elapsed,
            tail: ended.tail,
            left: ended.left,
            restored: ended.restored,
            publish_error,
            sidecar_len,
        }
    }
}

/// Whether a failed attempt may be rescued by its checks: a command task
/// with `rescue = true` that exited non-zero. Crashes (a signal, a
/// timeout, a stop) never are; missing outputs are found by the rescue.
fn rescuable(task: &Task, failed: &TaskError) -> bool {
    task.checks.rescue
        && failed.kind == ErrorKind::Exit
        && matches!(task.action, Action::Command(_))
}

/// The last lines of a task's log, scrubbed of the build's secrets (a
/// command may print the API key it was given): they are printed, and a
/// server's `.planexe/build.log` keeps what was printed. Read from the
/// log's end, at most [`TAIL_BYTES`] of it.
fn log_tail(run_dir: &RunDir, task: &str, failures: &Failures) -> Vec<String> {
    let Some(tail) = scrubbed_tail(&run_dir.task_log_path(task), TAIL_BYTES, |text| {
        failures.redact(text)
    }) else {
        return Vec::new();
    };
    let mut lines: Vec<&str> = tail.text.lines().collect();
    // A tail cut from a longer log starts mid-line: drop that piece,
    // unless it is all there is (the end of one long line).
    if !tail.whole && lines.len() > 1 {
        lines.remove(0);
    }
    let from = lines.len().saturating_sub(TAIL_LINES);
    lines[from..].iter().map(|l| l.to_string()).collect()
}
