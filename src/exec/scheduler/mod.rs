//! The build loop, after ninja's `Builder::Build`: start ready tasks until
//! the job limit is full, wait for one to finish, mark it finished (which
//! may make dependents ready), repeat. No level-by-level waves: a task
//! starts as soon as its last dependency finishes. Of the ready tasks, the
//! one with the most work behind it starts first ([`priority`]), unless
//! its pool is full (a model's `max_concurrency`, as ninja's pools: the
//! slot goes to the best task that can start; [`ready`]). The hooks hear
//! which tasks a full pool holds as the loop ticks ([`Hooks::held`]).
//!
//! Each of the `jobs` pool threads runs that loop for itself, under one
//! lock: a thread that finishes a task records it and starts the next ready
//! one at once, as make does, instead of handing the result to a
//! coordinating thread and waiting to be handed the next task (two thread
//! wake-ups per task, which on a busy machine cost more than a trivial
//! command). The calling thread only ticks the progress display.
//!
//! The loop owns ordering and counting only. What a task *does* sits behind
//! the [`Runner`] trait (shell commands, model calls, a fake in the tests),
//! so the loop is tested without processes or real time. The graph is the
//! [`Hooks`]'; it may grow while tasks run (a fan-out whose list was just
//! built), and the loop follows it ([`Growth`]; the state: `state`).
//!
//! Under a make jobserver ([`slots`]), a pool thread holds a slot before it
//! takes a ready task: the implicit slot when no other task holds it, else
//! a token it waits for with the lock released. It gives the slot back when
//! the task ends, so the build never runs more tasks than it holds slots.

mod priority;
mod ready;
mod slots;
mod state;

pub use slots::{Slots, Token};

use std::sync::{Condvar, Mutex, MutexGuard};

use state::{LoopState, Slot};

use crate::model::{Graph, Pool, TaskId};
use crate::phases::timed;

/// How often [`Hooks::tick`] runs while tasks run.
const TICK: std::time::Duration = std::time::Duration::from_millis(250);

/// How a task's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// Stopped by an interrupt.
    Stopped,
}

/// The work of one task, run on a pool thread.
pub trait Runner: Sync {
    /// What a task's run is given when it starts ([`Hooks::starting`]).
    type Input: Send;
    type Output: Send;
    fn run(&self, task: TaskId, input: Self::Input) -> Self::Output;
}

/// The bookkeeping around tasks: called on pool threads (and `tick` on the
/// calling thread), one call at a time. The hooks hold the graph, which
/// may grow while the loop runs ([`Hooks::grown`]).
pub trait Hooks<I, O>: Send {
    /// The graph as it stands now.
    fn graph(&self) -> &Graph;
    /// A task that was only waiting for upstream tasks became ready:
    /// `false` means it turned out up to date (early cutoff) and is skipped.
    fn still_stale(&mut self, task: TaskId) -> bool;
    /// Just before the task starts: what its run is given.
    fn starting(&mut self, task: TaskId) -> I;
    /// With the result of a run; says how it ended.
    fn finished(&mut self, task: TaskId, output: O) -> Outcome;
    /// After a task succeeded or was found up to date (and what waited for
    /// it was released): what the graph grew by, if anything (a fan-out
    /// whose list the task made, expanded).
    fn grown(&mut self, _task: TaskId) -> Option<Growth> {
        None
    }
    /// Tasks that joined the run as the graph grew (they depend on what
    /// was added), tentatively.
    fn joined(&mut self, _tasks: &[TaskId]) {}
    /// The pool a ready task starts in: its model's ([`Graph::pool`]),
    /// unless the hooks know it calls no server (its answer is recorded),
    /// so it takes none of the model's `max_concurrency`.
    fn pool(&self, task: TaskId) -> Option<Pool> {
        self.graph().pool(task)
    }
    /// Whether an interrupt asked the build to stop starting tasks.
    fn interrupted(&self) -> bool;
    /// Just before each [`Hooks::tick`]: the ready tasks that do not start
    /// because their pool is full (its depth of its tasks run), each with
    /// its pool; empty when none is (always, without pools).
    fn held(&mut self, _tasks: &[(TaskId, Pool)]) {}
    /// Called a few times a second while tasks run (progress display).
    fn tick(&mut self) {}
}

/// How the graph grew while the loop ran.
#[derive(Debug, Default)]
pub struct Growth {
    /// Tasks no longer in the graph (a fan-out's placeholder, instances
    /// whose item changed or is gone): they leave the run.
    pub retired: Vec<TaskId>,
    /// Tasks that failed as the graph grew (a placeholder whose list could
    /// not be read): what depends on them does not start.
    pub failed: Vec<TaskId>,
    /// In dependency order: tasks added to the run, and tasks whose
    /// dependencies may have changed.
    pub steps: Vec<(TaskId, Step)>,
}

/// What the loop does with one task of a [`Growth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A new task to run.
    Add { tentative: bool },
    /// Its dependencies may have changed: it waits for those yet to
    /// finish, and joins the run (tentatively) if one of them has yet to
    /// run while it is out of the run or done.
    Relink,
}

/// What happened to each task the loop was given.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub succeeded: Vec<TaskId>,
    pub failed: Vec<TaskId>,
    pub stopped: Vec<TaskId>,
    /// Turned out up to date once their upstream finished.
    pub skipped: Vec<TaskId>,
    /// Never started: a dependency failed, or the build stopped early.
    pub not_run: Vec<TaskId>,
}

/// Options of one run of the loop.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub jobs: usize,
    pub keep_going: bool,
}

/// The slot a pool thread holds for the task it runs.
enum Held {
    /// No slot source: the job limit is the only limit.
    Unlimited,
    Implicit,
    /// Given back when dropped.
    Token(Token),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The tasks of `to_run` (by id, as [`run`] takes it) that start first,
/// in the order the loop starts them: those waiting for no task of the
/// run (a dependency or a gate) and not `tentative` (which may turn out
/// up to date), nor a fan-out's placeholder (which expands, never runs);
/// the most work behind them first, then declaration order; no more of a
/// pool's tasks than its depth ([`Graph::pool`]). At most `n`.
pub fn first_to_start(
    graph: &Graph,
    to_run: &[bool],
    tentative: &[bool],
    gates: &[(TaskId, TaskId)],
    n: usize,
) -> Vec<TaskId> {
    let runs = |t: TaskId| to_run.get(t).copied().unwrap_or(false);
    let gated: std::collections::HashSet<TaskId> = gates
        .iter()
        .filter(|&&(gate, _)| runs(gate))
        .map(|&(_, held)| held)
        .collect();
    let priority = priority::priorities(graph);
    let mut ready: Vec<TaskId> = graph
        .order()
        .iter()
        .copied()
        .filter(|&t| {
            runs(t)
                && !tentative.get(t).copied().unwrap_or(false)
                && !matches!(graph[t].action, crate::model::Action::Expand(_))
                && !graph[t].deps.iter().any(|&d| runs(d))
                && !gated.contains(&t)
        })
        .collect();
    ready.sort_by_key(|&t| (std::cmp::Reverse(priority[t]), graph.rank(t)));
    // No pool starts more than its depth.
    let mut started: std::collections::HashMap<usize, usize> = Default::default();
    ready.retain(|&t| match graph.pool(t) {
        Some(pool) => {
            let n = started.entry(pool.id).or_default();
            *n += 1;
            *n <= pool.depth
        }
        None => true,
    });
    ready.truncate(n);
    ready
}

/// Runs `to_run` (tasks marked with `tentative[t]` run only if
/// `still_stale` says so) respecting dependencies among them, and `gates`
/// (gate, task): a task also waits for its gates. All are indexed by task
/// id. With `slots`, every task beyond the first running one also waits
/// for a token from it.
#[allow(clippy::too_many_arguments)]
pub fn run<R: Runner, H: Hooks<R::Input, R::Output>>(
    to_run: &[bool],
    tentative: &[bool],
    gates: &[(TaskId, TaskId)],
    runner: &R,
    work: &mut H,
    options: Options,
    slots: Option<&dyn Slots>,
) -> Summary {
    let jobs = options.jobs.max(1);
    let wanted = |t: TaskId| to_run.get(t).copied().unwrap_or(false);
    let pool = match rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .thread_name(|i| format!("planexe-job-{i}"))
        .build()
    {
        Ok(pool) => pool,
        Err(_) => {
            // Cannot start threads: nothing runs; report all as not run.
            return Summary {
                not_run: work
                    .graph()
                    .order()
                    .iter()
                    .copied()
                    .filter(|&t| wanted(t))
                    .collect(),
                ..Summary::default()
            };
        }
    };
    let order: Vec<TaskId> = work.graph().order().to_vec();
    let mut state = LoopState::new(work, options.keep_going, jobs, gates);
    state.prioritize();
    // Every task is in the run before any counts what it waits for: a
    // gate may come after the tasks it holds in dependency order.
    let tentative = |t: TaskId| tentative.get(t).copied().unwrap_or(false);
    for &t in order.iter().filter(|&&t| wanted(t)) {
        state.enter(t, tentative(t));
    }
    for &t in order.iter().filter(|&&t| wanted(t)) {
        state.add(t, tentative(t));
    }
    let book = Mutex::new(state);
    // Wakes pool threads waiting for a ready task.
    let changed = Condvar::new();
    // How many pool threads are still in the loop, and what wakes the
    // calling thread when one leaves. (A condition variable goes with one
    // mutex only.)
    let workers = Mutex::new(jobs);
    let left_loop = Condvar::new();

    pool.in_place_scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|_| {
                work_loop(&book, &changed, runner, slots);
                *lock(&workers) -= 1;
                left_loop.notify_all();
            });
        }
        // The calling thread ticks until every pool thread has left.
        let mut left = lock(&workers);
        while *left > 0 {
            let (guard, timeout) = left_loop
                .wait_timeout(left, TICK)
                .unwrap_or_else(|p| p.into_inner());
            left = guard;
            if timeout.timed_out() && *left > 0 {
                drop(left);
                lock(&book).tick();
                left = lock(&workers);
            }
        }
    });
    let book = book.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut summary = book.summary;
    summary.not_run = (0..book.jobs.len())
        .filter(|&t| {
            matches!(
                book.jobs[t].slot,
                Slot::Waiting(_) | Slot::Ready | Slot::Blocked
            )
        })
        .collect();
    summary
}

/// One pool thread: hold a slot, take a ready task, run it, give the slot
/// back, record the task, repeat; wait while tasks run but none is ready;
/// leave when the loop is over.
fn work_loop<R: Runner, H: Hooks<R::Input, R::Output>>(
    book: &Mutex<LoopState<'_, H>>,
    changed: &Condvar,
    runner: &R,
    slots: Option<&dyn Slots>,
) {
    let mut guard = lock(book);
    loop {
        if !guard.startable() {
            if guard.over() {
                changed.notify_all();
                return;
            }
            guard = idle(guard, changed);
            continue;
        }
        let held = match slots {
            None => Held::Unlimited,
            Some(_) if !guard.implicit_busy => {
                guard.implicit_busy = true;
                Held::Implicit
            }
            // Enough threads already wait for a token for each ready task.
            Some(_) if guard.token_waiters >= guard.startable_count() => {
                guard = idle(guard, changed);
                continue;
            }
            Some(slots) => {
                guard.token_waiters += 1;
                drop(guard);
                let token = slots.token(&|| lock(book).token_unwanted());
                guard = lock(book);
                guard.token_waiters -= 1;
                match token {
                    Some(token) => Held::Token(token),
                    None => continue,
                }
            }
        };
        let taken = timed("build loop: start a task", || guard.take());
        let Some((t, input)) = taken else {
            guard.give_back(held);
            continue;
        };
        drop(guard);
        let output = runner.run(t, input);
        guard = timed("build loop: wait for the lock", || lock(book));
        guard.give_back(held);
        timed("build loop: record a task", || guard.finish(t, output));
        // This thread takes the next ready task itself (at the top of the
        // loop); wake idle threads only for the ones it cannot take, or to
        // let them leave.
        if guard.idle > 0 && (guard.startable_count() > 1 || guard.over()) {
            changed.notify_all();
        }
    }
}

/// Waits, idle, until another thread says the loop changed.
fn idle<'a, 'h, H>(
    mut guard: MutexGuard<'a, LoopState<'h, H>>,
    changed: &Condvar,
) -> MutexGuard<'a, LoopState<'h, H>> {
    guard.idle += 1;
    guard = changed.wait(guard).unwrap_or_else(|p| p.into_inner());
    guard.idle -= 1;
    guard
}

#[cfg(test)]
mod tests;
