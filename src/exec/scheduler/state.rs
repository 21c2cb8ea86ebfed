//! The loop's state, behind its one lock: where each task stands (a
//! [`Slot`]), the ready set, and what happened to every task. Dependencies
//! come from the graph as the hooks hold it now, so the state follows the
//! graph as it grows ([`LoopState::grow`]): a fan-out expanded inside the
//! running build has its instances added, its placeholder retired, and the
//! tasks that now depend on the instances wait for them.
//!
//! When a failure stops the build (without `-k`), the tasks that were
//! ready while a slot was free still start ([`LoopState::owed`]): make and
//! ninja start every such task before they wait for one to end, so a task
//! that fails at once does not stop a ready neighbour a pool thread had yet
//! to take.
//!
//! Besides the graph's edges, a task may wait for *gates*: tasks it does
//! not depend on in the graph but must not start before (the instances of
//! a fan-out whose list is being rebuilt wait for the list's producer).

use std::cmp::Reverse;
use std::collections::HashMap;

use super::priority::priorities;
use super::ready::{Key, Ready};
use super::{Growth, Held, Hooks, Outcome, Step, Summary};
use crate::model::{Graph, Pool, TaskId};

/// Where a task stands in the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    /// Not part of this run.
    Absent,
    /// Waits for this many of its dependencies (and gates).
    Waiting(usize),
    Ready,
    Running,
    Done,
    /// It failed or was stopped.
    Failed,
    /// A dependency failed or stopped: it will not start.
    Blocked,
}

/// A task the loop was given.
#[derive(Debug, Clone, Copy)]
pub(super) struct Job {
    pub slot: Slot,
    /// Runs only if [`Hooks::still_stale`] says so once it is ready.
    pub tentative: bool,
    /// Running while the graph grew under it: it runs again (tentatively)
    /// once it ends.
    pub again: bool,
    /// Its place in the ready set, taken when it became ready (ranks move
    /// as the graph grows).
    pub key: Key,
    /// The pool it runs in ([`Graph::pool`]), taken when it became ready.
    pub pool: Option<Pool>,
}

pub(super) const ABSENT: Job = Job {
    slot: Slot::Absent,
    tentative: false,
    again: false,
    key: (Reverse(0), 0),
    pool: None,
};

/// The loop's state, behind its lock.
pub(super) struct LoopState<'h, H> {
    pub work: &'h mut H,
    pub keep_going: bool,
    /// By task id; grows with the graph.
    pub jobs: Vec<Job>,
    /// Gate → the tasks that wait for it.
    pub gated: HashMap<TaskId, Vec<TaskId>>,
    /// Task → the gates it waits for.
    pub gates: HashMap<TaskId, Vec<TaskId>>,
    /// Ready tasks, the one with the most work behind it first, then in
    /// declaration order (runs are reproducible), in their pools.
    pub ready: Ready,
    /// Each task's priority (`priority.rs`), by id: computed again as the
    /// graph grows.
    pub priority: Vec<u64>,
    pub running: usize,
    /// The job limit: how many tasks may run at once.
    pub limit: usize,
    pub stop_starting: bool,
    /// Once a failure stopped the build: the ready tasks that had a free
    /// slot when it did, best last. They still start; nothing else does.
    pub owed: Vec<TaskId>,
    /// The tasks the last [`LoopState::release`] made ready (a failure in
    /// the growth that follows owes them nothing: they were not ready
    /// before it).
    released: Vec<TaskId>,
    /// Pool threads waiting for a task to become ready.
    pub idle: usize,
    /// Whether a task runs on the implicit slot (with a slot source only).
    pub implicit_busy: bool,
    /// Pool threads waiting for a token, each for one ready task.
    pub token_waiters: usize,
    pub summary: Summary,
}

/// Whether a task in this slot has yet to finish.
fn unfinished(slot: Option<Slot>) -> bool {
    matches!(slot, Some(Slot::Waiting(_) | Slot::Ready | Slot::Running))
}

impl<'h, H> LoopState<'h, H> {
    pub fn new(
        work: &'h mut H,
        keep_going: bool,
        limit: usize,
        gates: &[(TaskId, TaskId)],
    ) -> Self {
        let mut state = LoopState {
            work,
            keep_going,
            jobs: Vec::new(),
            gated: HashMap::new(),
            gates: HashMap::new(),
            ready: Ready::default(),
            priority: Vec::new(),
            running: 0,
            limit,
            stop_starting: false,
            owed: Vec::new(),
            released: Vec::new(),
            idle: 0,
            implicit_busy: false,
            token_waiters: 0,
            summary: Summary::default(),
        };
        for &(gate, held) in gates {
            state.gated.entry(gate).or_default().push(held);
            state.gates.entry(held).or_default().push(gate);
        }
        state
    }

    fn slot(&self, t: TaskId) -> Option<Slot> {
        self.jobs.get(t).map(|j| j.slot)
    }

    /// Puts a task in the run, waiting, before what it waits for is
    /// counted ([`LoopState::add`]).
    pub fn enter(&mut self, t: TaskId, tentative: bool) {
        *self.job(t) = Job {
            slot: Slot::Waiting(0),
            tentative,
            ..ABSENT
        };
    }

    /// Where `t` goes in the ready set now.
    fn key(&self, graph: &Graph, t: TaskId) -> Key {
        (
            Reverse(self.priority.get(t).copied().unwrap_or(0)),
            graph.rank(t),
        )
    }

    fn job(&mut self, t: TaskId) -> &mut Job {
        if t >= self.jobs.len() {
            self.jobs.resize(t + 1, ABSENT);
        }
        &mut self.jobs[t]
    }

    /// How many of `t`'s dependencies and gates have yet to finish.
    fn unfinished_before(&self, graph: &Graph, t: TaskId) -> usize {
        let deps = graph[t]
            .deps
            .iter()
            .filter(|&&d| unfinished(self.slot(d)))
            .count();
        let gates = self.gates.get(&t).map_or(0, |gs| {
            gs.iter().filter(|&&g| unfinished(self.slot(g))).count()
        });
        deps + gates
    }

    /// How many tasks could start now, slots aside: the ready ones whose
    /// pool has room, or once the build stops starting tasks, those it
    /// still owes a start.
    pub fn startable_count(&self) -> usize {
        if self.stop_starting {
            self.owed.len()
        } else {
            self.ready.startable()
        }
    }

    /// Nothing runs and nothing more will start: the threads may leave.
    pub fn over(&self) -> bool {
        self.running == 0 && self.startable_count() == 0
    }

    /// Stops starting tasks for a failure. The ready tasks that had a free
    /// slot when it happened still start, as they would have under make
    /// or ninja, which start every ready task a slot allows before they
    /// wait: `free` is how many slots were free (the failed task's own not
    /// counted). Only the first stop owes anything; later ones owe no more.
    fn stop_for_failure(&mut self, free: usize) {
        if self.stop_starting {
            return;
        }
        self.stop_starting = true;
        let released = &self.released;
        let mut owed: Vec<TaskId> = self
            .ready
            .best(self.ready.startable())
            .into_iter()
            .filter(|t| !released.contains(t))
            .take(free)
            .collect();
        owed.reverse();
        self.owed = owed;
    }

    /// Stops starting tasks at once (an interrupt): nothing is owed.
    fn stop_now(&mut self) {
        self.stop_starting = true;
        self.owed.clear();
    }

    pub fn give_back(&mut self, held: Held) {
        match held {
            Held::Implicit => self.implicit_busy = false,
            Held::Token(token) => drop(token),
            Held::Unlimited => {}
        }
    }
}

impl<H> LoopState<'_, H> {
    /// Adds a task to run; it waits for those of its dependencies (and
    /// gates) that run and have not finished.
    pub fn add<I, O>(&mut self, t: TaskId, tentative: bool)
    where
        H: Hooks<I, O>,
    {
        let waiting = self.unfinished_before(self.work.graph(), t);
        *self.job(t) = Job {
            slot: Slot::Waiting(waiting),
            tentative,
            ..ABSENT
        };
        if waiting == 0 {
            self.make_ready(t);
        }
    }

    fn make_ready<I, O>(&mut self, t: TaskId)
    where
        H: Hooks<I, O>,
    {
        let key = self.key(self.work.graph(), t);
        let pool = self.work.pool(t);
        let job = self.job(t);
        job.slot = Slot::Ready;
        job.key = key;
        job.pool = pool;
        self.ready.insert(key, t, pool);
    }

    fn unready(&mut self, t: TaskId) {
        if let Some(job) = self.jobs.get(t) {
            self.ready.remove(job.key, t, job.pool);
        }
    }

    /// Weighs every task of the graph as it stands now, and puts the
    /// ready ones in their new places.
    pub fn prioritize<I, O>(&mut self)
    where
        H: Hooks<I, O>,
    {
        self.priority = priorities(self.work.graph());
        for t in self.ready.drain() {
            let key = self.key(self.work.graph(), t);
            self.jobs[t].key = key;
            self.ready.insert(key, t, self.jobs[t].pool);
        }
    }

    /// Whether a task could start now, slots aside.
    pub fn startable<I, O>(&mut self) -> bool
    where
        H: Hooks<I, O>,
    {
        if self.work.interrupted() {
            self.stop_now();
        }
        self.startable_count() > 0
    }

    /// Tells the hooks which ready tasks a full pool holds (none once the
    /// build stops starting tasks: they will not start), then ticks.
    pub fn tick<I, O>(&mut self)
    where
        H: Hooks<I, O>,
    {
        let held = if self.stop_starting {
            Vec::new()
        } else {
            self.ready.held()
        };
        self.work.held(&held);
        self.work.tick();
    }

    /// Whether a thread waiting for a token should stop waiting: nothing
    /// more starts, fewer tasks are ready than threads wait for them, or
    /// the implicit slot came free.
    pub fn token_unwanted<I, O>(&self) -> bool
    where
        H: Hooks<I, O>,
    {
        self.work.interrupted()
            || self.startable_count() < self.token_waiters
            || !self.implicit_busy
    }

    /// Takes the next ready task and marks it started, with what its run
    /// is given; `None` when there is none (or the build stops starting
    /// tasks and owes none a start).
    pub fn take<I, O>(&mut self) -> Option<(TaskId, I)>
    where
        H: Hooks<I, O>,
    {
        if self.work.interrupted() {
            self.stop_now();
        }
        loop {
            let t = if self.stop_starting {
                let t = self.owed.pop()?;
                // Owed, unless something since took it out of the ready set.
                if self.slot(t) != Some(Slot::Ready) {
                    continue;
                }
                self.unready(t);
                t
            } else {
                self.ready.pop()?
            };
            if self.jobs[t].tentative && !self.work.still_stale(t) {
                self.summary.skipped.push(t);
                self.jobs[t].slot = Slot::Done;
                self.release(t);
                // This thread's slot is free (it has not started anything).
                self.grow_after(t, 0);
                continue;
            }
            self.ready.started(self.jobs[t].pool);
            let input = self.work.starting(t);
            self.jobs[t].slot = Slot::Running;
            self.running += 1;
            return Some((t, input));
        }
    }

    pub fn finish<I, O>(&mut self, t: TaskId, output: O)
    where
        H: Hooks<I, O>,
    {
        self.running -= 1;
        self.ready.ended(self.jobs[t].pool);
        self.jobs[t].slot = Slot::Done;
        match self.work.finished(t, output) {
            Outcome::Succeeded if std::mem::take(&mut self.jobs[t].again) => {
                // The graph grew under it: judged again with its new
                // dependencies.
                self.add(t, true);
            }
            Outcome::Succeeded => {
                self.summary.succeeded.push(t);
                self.release(t);
                self.grow_after(t, 1);
            }
            Outcome::Failed => {
                self.jobs[t].slot = Slot::Failed;
                self.summary.failed.push(t);
                self.block_dependents(t);
                if !self.keep_going {
                    self.released.clear();
                    self.stop_for_failure(self.free_slots(1));
                }
            }
            Outcome::Stopped => {
                self.jobs[t].slot = Slot::Failed;
                self.summary.stopped.push(t);
                self.block_dependents(t);
                self.stop_now();
            }
        }
    }

    /// How many slots were free just before the task whose end is being
    /// recorded ended: `ending` is 1 when that task held one (it ran), 0
    /// when it did not (it was found up to date as a thread took it).
    fn free_slots(&self, ending: usize) -> usize {
        self.limit.saturating_sub(self.running + ending)
    }

    /// `t` is done: its waiting dependents (and the tasks it gates) have
    /// one thing less to wait for.
    fn release<I, O>(&mut self, t: TaskId)
    where
        H: Hooks<I, O>,
    {
        self.released.clear();
        let graph = self.work.graph();
        let held = self.gated.get(&t).map_or(&[][..], Vec::as_slice);
        for &d in graph[t].dependents.iter().chain(held) {
            let key = (
                Reverse(self.priority.get(d).copied().unwrap_or(0)),
                graph.rank(d),
            );
            if let Some(job) = self.jobs.get_mut(d) {
                if let Slot::Waiting(n) = &mut job.slot {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        // As `make_ready`, with the graph borrowed.
                        job.slot = Slot::Ready;
                        job.key = key;
                        job.pool = self.work.pool(d);
                        self.ready.insert(key, d, job.pool);
                        self.released.push(d);
                    }
                }
            }
        }
    }

    /// `t` failed or stopped: nothing downstream of it starts.
    fn block_dependents<I, O>(&mut self, t: TaskId)
    where
        H: Hooks<I, O>,
    {
        let mut stack = vec![t];
        while let Some(x) = stack.pop() {
            let mut next: Vec<TaskId> = self.work.graph()[x].dependents.clone();
            if let Some(held) = self.gated.get(&x) {
                next.extend(held.iter().copied());
            }
            for d in next {
                if matches!(self.slot(d), Some(Slot::Waiting(_) | Slot::Ready)) {
                    self.jobs[d].slot = Slot::Blocked;
                    self.unready(d);
                    stack.push(d);
                }
            }
        }
    }

    /// After `t` finished or was found up to date: what the graph grew by
    /// (a fan-out whose list `t` made, expanded). `ending` as
    /// [`LoopState::free_slots`] takes it.
    fn grow_after<I, O>(&mut self, t: TaskId, ending: usize)
    where
        H: Hooks<I, O>,
    {
        if let Some(growth) = self.work.grown(t) {
            self.grow(growth, ending);
        }
    }

    /// Follows the graph as it grew: retired tasks leave the run, failed
    /// ones block what depends on them, new ones are added, and the tasks
    /// whose dependencies changed wait for what they now depend on. Tells
    /// the hooks which tasks joined the run.
    fn grow<I, O>(&mut self, growth: Growth, ending: usize)
    where
        H: Hooks<I, O>,
    {
        // The graph changed shape: what lies behind each task did too.
        self.prioritize();
        for t in growth.retired {
            if matches!(self.slot(t), Some(Slot::Ready)) {
                self.unready(t);
            }
            if t < self.jobs.len() && self.jobs[t].slot != Slot::Running {
                self.jobs[t].slot = Slot::Done;
            }
        }
        for t in growth.failed {
            if matches!(self.slot(t), Some(Slot::Ready)) {
                self.unready(t);
            }
            self.job(t).slot = Slot::Failed;
            self.summary.failed.push(t);
            self.block_dependents(t);
            if !self.keep_going {
                self.stop_for_failure(self.free_slots(ending));
            }
        }
        let mut joined = Vec::new();
        for (t, step) in growth.steps {
            match step {
                Step::Add { tentative } => self.add(t, tentative),
                Step::Relink => {
                    if self.relink(t) {
                        joined.push(t);
                    }
                }
            }
        }
        if !joined.is_empty() {
            self.work.joined(&joined);
        }
    }

    /// `t`'s dependencies may have changed: in the run, it waits for those
    /// that have yet to finish; out of it (or done already), it joins the
    /// run, tentatively, when one of them has. Returns whether it joined.
    fn relink<I, O>(&mut self, t: TaskId) -> bool
    where
        H: Hooks<I, O>,
    {
        let before = self.unfinished_before(self.work.graph(), t);
        match self.slot(t) {
            Some(Slot::Waiting(_)) => {
                self.jobs[t].slot = Slot::Waiting(before);
                if before == 0 {
                    self.make_ready(t);
                }
                false
            }
            Some(Slot::Ready) if before > 0 => {
                self.unready(t);
                self.jobs[t].slot = Slot::Waiting(before);
                false
            }
            // It ran (or was found up to date) with what it depended on
            // then: it is judged again once what it depends on now has run.
            Some(Slot::Done) if before > 0 => {
                if let Some(at) = self.summary.succeeded.iter().position(|&s| s == t) {
                    self.summary.succeeded.remove(at);
                }
                self.summary.skipped.retain(|&s| s != t);
                self.add(t, true);
                true
            }
            None | Some(Slot::Absent) if before > 0 => {
                self.add(t, true);
                true
            }
            Some(Slot::Running) if before > 0 => {
                self.jobs[t].again = true;
                false
            }
            _ => false,
        }
    }
}
