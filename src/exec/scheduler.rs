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
//! the [`Runner`] trait (shell commands, model calls, a fake in the tests
//! below), so the loop is tested without processes or real time.

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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `to_run` (tasks marked with `tentative[t]` run only if
/// `still_stale` says so) respecting dependencies among them. Both are
/// indexed by task id.
pub fn run<R: Runner, H: Hooks<R::Output>>(
    graph: &Graph,
    to_run: &[bool],
    tentative: &[bool],
    runner: &R,
    work: &mut H,
    options: Options,
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
                work_loop(&book, &changed, runner);
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

/// One pool thread: take a ready task, run it, record it, repeat; wait
/// while tasks run but none is ready; leave when the loop is over.
fn work_loop<R: Runner, H: Hooks<R::Output>>(
    book: &Mutex<LoopState<'_, '_, H>>,
    changed: &Condvar,
    runner: &R,
) {
    let mut guard = lock(book);
    loop {
        let Some(t) = guard.take() else {
            if guard.over() {
                changed.notify_all();
                return;
            }
            guard.idle += 1;
            guard = changed.wait(guard).unwrap_or_else(|p| p.into_inner());
            guard.idle -= 1;
            continue;
        };
        drop(guard);
        let output = runner.run(t);
        guard = lock(book);
        guard.finish(t, output);
        // This thread takes the next ready task itself (at the top of the
        // loop); wake idle threads only for the ones it cannot take, or to
        // let them leave.
        if guard.idle > 0 && (guard.ready.len() > 1 || guard.over()) {
            changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Lists, Pipeline};
    use crate::store::RunDir;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    fn graph(text: &str) -> (tempfile::TempDir, Graph) {
        let dir = tempfile::tempdir().unwrap();
        let p = Pipeline::parse(
            dir.path().join("pipeline.toml"),
            "pipeline.toml".into(),
            text.into(),
        )
        .unwrap();
        let g =
            Graph::resolve(&p, &RunDir::open(dir.path()).unwrap(), None, Lists::Present).unwrap();
        (dir, g)
    }

    /// A fake: tasks named `fail*` fail; counts concurrency.
    struct Fake {
        names: Vec<String>,
        fresh: Vec<TaskId>,
        running: AtomicUsize,
        peak: AtomicUsize,
        log: Mutex<Vec<String>>,
        sleep: std::time::Duration,
    }

    impl Runner for Fake {
        type Output = bool;
        fn run(&self, t: TaskId) -> bool {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(self.sleep);
            self.running.fetch_sub(1, Ordering::SeqCst);
            !self.names[t].starts_with("fail")
        }
    }

    struct Book<'a>(&'a Fake);

    impl Hooks<bool> for Book<'_> {
        fn still_stale(&mut self, t: TaskId) -> bool {
            !self.0.fresh.contains(&t)
        }
        fn starting(&mut self, t: TaskId) {
            self.0
                .log
                .lock()
                .unwrap()
                .push(format!("start {}", self.0.names[t]));
        }
        fn finished(&mut self, _t: TaskId, ok: bool) -> Outcome {
            if ok {
                Outcome::Succeeded
            } else {
                Outcome::Failed
            }
        }
        fn interrupted(&self) -> bool {
            false
        }
    }

    /// Runs every task of `g` with `work`; `tentative` as `run` takes it
    /// (none by default).
    fn run_all(
        g: &Graph,
        work: &Fake,
        tentative: Option<&[bool]>,
        jobs: usize,
        keep_going: bool,
    ) -> Summary {
        let n = g.id_bound();
        let none = vec![false; n];
        run(
            g,
            &vec![true; n],
            tentative.unwrap_or(&none),
            work,
            &mut Book(work),
            Options { jobs, keep_going },
        )
    }

    fn fake(g: &Graph, fresh: Vec<TaskId>) -> Fake {
        Fake {
            names: g.tasks().map(|t| t.name.clone()).collect(),
            fresh,
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            sleep: std::time::Duration::from_millis(2),
        }
    }

    const CHAIN: &str = r#"
[tasks.a]
outputs = ["a"]
command = "x"
[tasks.fail]
inputs = ["a"]
outputs = ["b"]
command = "x"
[tasks.c]
inputs = ["b"]
outputs = ["c"]
command = "x"
[tasks.d]
outputs = ["d"]
command = "x"
"#;

    #[test]
    fn a_failure_blocks_dependents_and_keep_going_runs_the_rest() {
        let (_dir, g) = graph(CHAIN);
        let work = fake(&g, vec![]);
        let s = run_all(&g, &work, None, 1, true);
        assert_eq!(s.succeeded, vec![0, 3]);
        assert_eq!(s.failed, vec![1]);
        assert_eq!(s.not_run, vec![2]);

        let work = fake(&g, vec![]);
        let s = run_all(&g, &work, None, 1, false);
        assert_eq!(s.succeeded, vec![0]);
        assert_eq!(s.failed, vec![1]);
        // With one job, `d` comes after `fail` in declaration order and
        // must not start once `fail` failed.
        assert_eq!(s.not_run, vec![2, 3]);
    }

    #[test]
    fn tentative_tasks_that_are_fresh_are_skipped() {
        let (_dir, g) = graph(CHAIN.replace("fail", "b").as_str());
        let tentative = vec![false, true, true, false];
        let work = fake(&g, vec![1]);
        let s = run_all(&g, &work, Some(&tentative), 2, false);
        assert_eq!(s.skipped, vec![1]);
        // `c` was tentative too but still stale after `b` was skipped.
        assert!(s.succeeded.contains(&2));
    }

    #[test]
    fn never_more_than_jobs_at_once() {
        let mut text = String::new();
        for i in 0..40 {
            text.push_str(&format!(
                "[tasks.t{i}]\noutputs = [\"o{i}\"]\ncommand = \"x\"\n"
            ));
        }
        let (_dir, g) = graph(&text);
        let work = fake(&g, vec![]);
        let s = run_all(&g, &work, None, 3, false);
        assert_eq!(s.succeeded.len(), 40);
        assert!(work.peak.load(Ordering::SeqCst) <= 3);
    }

    #[test]
    fn idle_threads_start_the_tasks_a_finished_one_makes_ready() {
        // root, then 8 tasks that read it: the 3 threads idle while root
        // runs must all be woken when it ends.
        let mut text = String::from("[tasks.root]\noutputs = [\"r\"]\ncommand = \"x\"\n");
        for i in 0..8 {
            text.push_str(&format!(
                "[tasks.t{i}]\ninputs = [\"r\"]\noutputs = [\"o{i}\"]\ncommand = \"x\"\n"
            ));
        }
        let (_dir, g) = graph(&text);
        let mut work = fake(&g, vec![]);
        work.sleep = std::time::Duration::from_millis(100);
        let s = run_all(&g, &work, None, 4, false);
        assert_eq!(s.succeeded.len(), 9);
        assert!(s.not_run.is_empty());
        assert_eq!(work.peak.load(Ordering::SeqCst), 4);
        let log = work.log.lock().unwrap();
        assert_eq!(log[0], "start root");
    }
}
