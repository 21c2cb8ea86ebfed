//! The build loop, after ninja's `Builder::Build`: start ready tasks until
//! the job limit is full, wait for one to finish, mark it finished (which
//! may make dependents ready), repeat. No level-by-level waves: a task
//! starts as soon as its last dependency finishes.
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
//! so the loop is tested without processes or real time.
//!
//! Under a make jobserver ([`slots`]), a pool thread holds a slot before it
//! takes a ready task: the implicit slot when no other task holds it, else
//! a token it waits for with the lock released. It gives the slot back when
//! the task ends, so the build never runs more tasks than it holds slots.

mod slots;

pub use slots::{Slots, Token};

use std::collections::BTreeSet;
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::model::{Graph, TaskId};

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
    type Output: Send;
    fn run(&self, task: TaskId) -> Self::Output;
}

/// The bookkeeping around tasks: called on pool threads (and `tick` on the
/// calling thread), one call at a time.
pub trait Hooks<O>: Send {
    /// A task that was only waiting for upstream tasks became ready:
    /// `false` means it turned out up to date (early cutoff) and is skipped.
    fn still_stale(&mut self, task: TaskId) -> bool;
    /// Just before the task starts.
    fn starting(&mut self, task: TaskId);
    /// With the result of a run; says how it ended.
    fn finished(&mut self, task: TaskId, output: O) -> Outcome;
    /// Whether an interrupt asked the build to stop starting tasks.
    fn interrupted(&self) -> bool;
    /// Called a few times a second while tasks run (progress display).
    fn tick(&mut self) {}
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

/// Where a task stands in the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Not part of this run.
    Absent,
    /// Waits for this many of its dependencies.
    Waiting(usize),
    Ready,
    Running,
    Done,
    /// A dependency failed or stopped: it will not start.
    Blocked,
}

/// A task the loop was given.
#[derive(Debug, Clone, Copy)]
struct Job {
    slot: Slot,
    /// Runs only if [`Hooks::still_stale`] says so once it is ready.
    tentative: bool,
}

const ABSENT: Job = Job {
    slot: Slot::Absent,
    tentative: false,
};

/// The loop's state, behind its lock.
struct LoopState<'g, 'h, H> {
    graph: &'g Graph,
    work: &'h mut H,
    keep_going: bool,
    /// By task id; grows with the graph.
    jobs: Vec<Job>,
    /// Ready tasks start in declaration order: runs are reproducible.
    ready: BTreeSet<(usize, TaskId)>,
    running: usize,
    stop_starting: bool,
    /// Pool threads waiting for a task to become ready.
    idle: usize,
    /// Whether a task runs on the implicit slot (with a slot source only).
    implicit_busy: bool,
    /// Pool threads waiting for a token, each for one ready task.
    token_waiters: usize,
    summary: Summary,
}

impl<H> LoopState<'_, '_, H> {
    fn job(&mut self, t: TaskId) -> &mut Job {
        if t >= self.jobs.len() {
            self.jobs.resize(t + 1, ABSENT);
        }
        &mut self.jobs[t]
    }

    /// Adds a task to run; it waits for those of its dependencies that run
    /// and have not finished.
    fn add(&mut self, t: TaskId, tentative: bool) {
        let waiting = self.graph[t]
            .deps
            .iter()
            .filter(|&&d| {
                matches!(
                    self.jobs.get(d).map(|j| j.slot),
                    Some(Slot::Waiting(_) | Slot::Ready | Slot::Running)
                )
            })
            .count();
        *self.job(t) = Job {
            slot: Slot::Waiting(waiting),
            tentative,
        };
        if waiting == 0 {
            self.make_ready(t);
        }
    }

    fn make_ready(&mut self, t: TaskId) {
        self.job(t).slot = Slot::Ready;
        self.ready.insert((self.graph.rank(t), t));
    }

    /// Nothing runs and nothing more will start: the threads may leave.
    fn over(&self) -> bool {
        self.running == 0 && (self.stop_starting || self.ready.is_empty())
    }

    /// Whether a task could start now, slots aside.
    fn startable<O>(&mut self) -> bool
    where
        H: Hooks<O>,
    {
        if self.work.interrupted() {
            self.stop_starting = true;
        }
        !self.stop_starting && !self.ready.is_empty()
    }

    /// Whether a thread waiting for a token should stop waiting: nothing
    /// more starts, fewer tasks are ready than threads wait for them, or
    /// the implicit slot came free.
    fn token_unwanted<O>(&self) -> bool
    where
        H: Hooks<O>,
    {
        self.stop_starting
            || self.work.interrupted()
            || self.ready.len() < self.token_waiters
            || !self.implicit_busy
    }

    fn give_back(&mut self, held: Held) {
        match held {
            Held::Implicit => self.implicit_busy = false,
            Held::Token(token) => drop(token),
            Held::Unlimited => {}
        }
    }

    /// Takes the next ready task and marks it started; `None` when there
    /// is none (or the build stops starting tasks).
    fn take<O>(&mut self) -> Option<TaskId>
    where
        H: Hooks<O>,
    {
        if self.work.interrupted() {
            self.stop_starting = true;
        }
        while !self.stop_starting {
            let (_, t) = self.ready.pop_first()?;
            if self.jobs[t].tentative && !self.work.still_stale(t) {
                self.summary.skipped.push(t);
                self.jobs[t].slot = Slot::Done;
                self.release(t);
                continue;
            }
            self.work.starting(t);
            self.jobs[t].slot = Slot::Running;
            self.running += 1;
            return Some(t);
        }
        None
    }

    fn finish<O>(&mut self, t: TaskId, output: O)
    where
        H: Hooks<O>,
    {
        self.running -= 1;
        self.jobs[t].slot = Slot::Done;
        match self.work.finished(t, output) {
            Outcome::Succeeded => {
                self.summary.succeeded.push(t);
                self.release(t);
            }
            Outcome::Failed => {
                self.summary.failed.push(t);
                self.block_dependents(t);
                if !self.keep_going {
                    self.stop_starting = true;
                }
            }
            Outcome::Stopped => {
                self.summary.stopped.push(t);
                self.block_dependents(t);
                self.stop_starting = true;
            }
        }
    }

    /// `t` is done: its waiting dependents have one dependency less.
    fn release(&mut self, t: TaskId) {
        let graph = self.graph;
        for &d in &graph[t].dependents {
            if let Some(Job {
                slot: Slot::Waiting(n),
                ..
            }) = self.jobs.get_mut(d)
            {
                *n -= 1;
                if *n == 0 {
                    self.make_ready(d);
                }
            }
        }
    }

    /// `t` failed or stopped: nothing downstream of it starts.
    fn block_dependents(&mut self, t: TaskId) {
        let graph = self.graph;
        let mut stack = vec![t];
        while let Some(x) = stack.pop() {
            for &d in &graph[x].dependents {
                let Some(job) = self.jobs.get_mut(d) else {
                    continue;
                };
                if matches!(job.slot, Slot::Waiting(_) | Slot::Ready) {
                    job.slot = Slot::Blocked;
                    self.ready.remove(&(graph.rank(d), d));
                    stack.push(d);
                }
            }
        }
    }
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

/// Runs `to_run` (tasks marked with `tentative[t]` run only if
/// `still_stale` says so) respecting dependencies among them. Both are
/// indexed by task id. With `slots`, every task beyond the first running
/// one also waits for a token from it.
pub fn run<R: Runner, H: Hooks<R::Output>>(
    graph: &Graph,
    to_run: &[bool],
    tentative: &[bool],
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
                not_run: graph
                    .order()
                    .iter()
                    .copied()
                    .filter(|&t| wanted(t))
                    .collect(),
                ..Summary::default()
            };
        }
    };
    let mut state = LoopState {
        graph,
        work,
        keep_going: options.keep_going,
        jobs: vec![ABSENT; graph.id_bound()],
        ready: BTreeSet::new(),
        running: 0,
        stop_starting: false,
        idle: 0,
        implicit_busy: false,
        token_waiters: 0,
        summary: Summary::default(),
    };
    // In dependency order, so each task finds its dependencies added.
    for &t in graph.order() {
        if wanted(t) {
            state.add(t, tentative.get(t).copied().unwrap_or(false));
        }
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
                lock(&book).work.tick();
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
fn work_loop<R: Runner, H: Hooks<R::Output>>(
    book: &Mutex<LoopState<'_, '_, H>>,
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
            Some(_) if guard.token_waiters >= guard.ready.len() => {
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
        let Some(t) = guard.take() else {
            guard.give_back(held);
            continue;
        };
        drop(guard);
        let output = runner.run(t);
        guard = lock(book);
        guard.give_back(held);
        guard.finish(t, output);
        // This thread takes the next ready task itself (at the top of the
        // loop); wake idle threads only for the ones it cannot take, or to
        // let them leave.
        if guard.idle > 0 && (guard.ready.len() > 1 || guard.over()) {
            changed.notify_all();
        }
    }
}

/// Waits, idle, until another thread says the loop changed.
fn idle<'a, 'g, 'h, H>(
    mut guard: MutexGuard<'a, LoopState<'g, 'h, H>>,
    changed: &Condvar,
) -> MutexGuard<'a, LoopState<'g, 'h, H>> {
    guard.idle += 1;
    guard = changed.wait(guard).unwrap_or_else(|p| p.into_inner());
    guard.idle -= 1;
    guard
}

#[cfg(test)]
mod tests;
