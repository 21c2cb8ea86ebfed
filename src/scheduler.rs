//! The build loop, after ninja's `Builder::Build`: start ready tasks until
//! the job limit is full, block on one completion, mark it finished (which
//! may make dependents ready), repeat. No level-by-level waves: a task
//! starts as soon as its last dependency finishes.
//!
//! The loop owns ordering and counting only. What a task *does* sits behind
//! the [`Work`] trait (shell commands today, model calls next, a fake in the
//! tests below), so the loop is tested without processes or real time.

use std::collections::BTreeSet;
use std::sync::mpsc;

use crate::graph::{Graph, TaskId};

/// How often [`Hooks::tick`] runs while the loop waits.
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

/// The bookkeeping around tasks, on the loop's thread.
pub trait Hooks<O> {
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

/// Runs `to_run` (tasks marked with `tentative[t]` run only if
/// `still_stale` says so) respecting dependencies among them.
pub fn run<R: Runner, H: Hooks<R::Output>>(
    graph: &Graph,
    to_run: &[bool],
    tentative: &[bool],
    runner: &R,
    work: &mut H,
    options: Options,
) -> Summary {
    let n = graph.tasks.len();
    let jobs = options.jobs.max(1);
    let mut waiting_on = vec![0usize; n];
    for t in 0..n {
        if to_run[t] {
            waiting_on[t] = graph.tasks[t].deps.iter().filter(|&&d| to_run[d]).count();
        }
    }
    // Ready tasks start in declaration order: runs are reproducible.
    let mut ready: BTreeSet<TaskId> = (0..n)
        .filter(|&t| to_run[t] && waiting_on[t] == 0)
        .collect();
    let mut summary = Summary::default();
    let mut blocked = vec![false; n];
    let mut done = vec![false; n];
    let mut running = 0usize;
    let mut stop_starting = false;

    let pool = match rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .thread_name(|i| format!("planexe-job-{i}"))
        .build()
    {
        Ok(pool) => pool,
        Err(_) => {
            // Cannot start threads: nothing runs; report all as not run.
            summary.not_run = (0..n).filter(|&t| to_run[t]).collect();
            return summary;
        }
    };
    let (tx, rx) = mpsc::channel::<(TaskId, R::Output)>();

    pool.in_place_scope(|scope| loop {
        if work.interrupted() {
            stop_starting = true;
        }
        while !stop_starting && running < jobs {
            let Some(t) = ready.pop_first() else { break };
            if tentative[t] && !work.still_stale(t) {
                summary.skipped.push(t);
                done[t] = true;
                release(graph, t, to_run, &mut waiting_on, &mut ready, &blocked);
                continue;
            }
            work.starting(t);
            running += 1;
            let tx = tx.clone();
            scope.spawn(move |_| {
                let output = runner.run(t);
                let _ = tx.send((t, output));
            });
        }
        if running == 0 {
            break;
        }
        let (t, output) = match rx.recv_timeout(TICK) {
            Ok(message) => message,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                work.tick();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        running -= 1;
        done[t] = true;
        match work.finished(t, output) {
            Outcome::Succeeded => {
                summary.succeeded.push(t);
                release(graph, t, to_run, &mut waiting_on, &mut ready, &blocked);
            }
            Outcome::Failed => {
                summary.failed.push(t);
                block_dependents(graph, t, to_run, &mut blocked, &mut ready);
                if !options.keep_going {
                    stop_starting = true;
                }
            }
            Outcome::Stopped => {
                summary.stopped.push(t);
                block_dependents(graph, t, to_run, &mut blocked, &mut ready);
                stop_starting = true;
            }
        }
    });
    summary.not_run = (0..n).filter(|&t| to_run[t] && !done[t]).collect();
    summary
}

fn release(
    graph: &Graph,
    t: TaskId,
    to_run: &[bool],
    waiting_on: &mut [usize],
    ready: &mut BTreeSet<TaskId>,
    blocked: &[bool],
) {
    for &d in &graph.tasks[t].dependents {
        if to_run[d] {
            waiting_on[d] -= 1;
            if waiting_on[d] == 0 && !blocked[d] {
                ready.insert(d);
            }
        }
    }
}

fn block_dependents(
    graph: &Graph,
    t: TaskId,
    to_run: &[bool],
    blocked: &mut [bool],
    ready: &mut BTreeSet<TaskId>,
) {
    let mut stack = vec![t];
    while let Some(x) = stack.pop() {
        for &d in &graph.tasks[x].dependents {
            if to_run[d] && !std::mem::replace(&mut blocked[d], true) {
                ready.remove(&d);
                stack.push(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Pipeline;
    use crate::rundir::RunDir;
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
        let g = Graph::resolve(&p, &RunDir::open(dir.path()).unwrap(), None, &|_| true).unwrap();
        (dir, g)
    }

    /// A fake: tasks named `fail*` fail; counts concurrency.
    struct Fake {
        names: Vec<String>,
        fresh: Vec<TaskId>,
        running: AtomicUsize,
        peak: AtomicUsize,
        log: Mutex<Vec<String>>,
    }

    impl Runner for Fake {
        type Output = bool;
        fn run(&self, t: TaskId) -> bool {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(2));
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

    fn fake(g: &Graph, fresh: Vec<TaskId>) -> Fake {
        Fake {
            names: g.tasks.iter().map(|t| t.name.clone()).collect(),
            fresh,
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
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
        let all = vec![true; 4];
        let none = vec![false; 4];
        let work = fake(&g, vec![]);
        let s = run(
            &g,
            &all,
            &none,
            &work,
            &mut Book(&work),
            Options {
                jobs: 1,
                keep_going: true,
            },
        );
        assert_eq!(s.succeeded, vec![0, 3]);
        assert_eq!(s.failed, vec![1]);
        assert_eq!(s.not_run, vec![2]);

        let work = fake(&g, vec![]);
        let s = run(
            &g,
            &all,
            &none,
            &work,
            &mut Book(&work),
            Options {
                jobs: 1,
                keep_going: false,
            },
        );
        assert_eq!(s.succeeded, vec![0]);
        assert_eq!(s.failed, vec![1]);
        // With one job, `d` comes after `fail` in declaration order and
        // must not start once `fail` failed.
        assert_eq!(s.not_run, vec![2, 3]);
    }

    #[test]
    fn tentative_tasks_that_are_fresh_are_skipped() {
        let (_dir, g) = graph(CHAIN.replace("fail", "b").as_str());
        let all = vec![true; 4];
        let tentative = vec![false, true, true, false];
        let work = fake(&g, vec![1]);
        let s = run(
            &g,
            &all,
            &tentative,
            &work,
            &mut Book(&work),
            Options {
                jobs: 2,
                keep_going: false,
            },
        );
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
        let all = vec![true; 40];
        let none = vec![false; 40];
        let work = fake(&g, vec![]);
        let s = run(
            &g,
            &all,
            &none,
            &work,
            &mut Book(&work),
            Options {
                jobs: 3,
                keep_going: false,
            },
        );
        assert_eq!(s.succeeded.len(), 40);
        assert!(work.peak.load(Ordering::SeqCst) <= 3);
    }
}
