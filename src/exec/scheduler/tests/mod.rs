//! The scheduler's tests: a fake runner and hooks, no processes.

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
    let g = Graph::resolve(&p, &RunDir::open(dir.path()).unwrap(), None, Lists::Present).unwrap();
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
    /// Set by the first task that runs, when `interrupt_at_start`.
    interrupted: std::sync::atomic::AtomicBool,
    interrupt_at_start: bool,
    /// What the last [`Hooks::held`] said: the tasks a full pool holds.
    held: Mutex<Vec<TaskId>>,
}

impl Runner for Fake {
    type Input = ();
    type Output = bool;
    fn run(&self, t: TaskId, _input: ()) -> bool {
        if self.interrupt_at_start {
            self.interrupted.store(true, Ordering::SeqCst);
        }
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(self.sleep);
        self.running.fetch_sub(1, Ordering::SeqCst);
        !self.names[t].starts_with("fail")
    }
}

struct Book<'a>(&'a Fake, &'a Graph);

impl Hooks<(), bool> for Book<'_> {
    fn graph(&self) -> &Graph {
        self.1
    }
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
        self.0.interrupted.load(Ordering::SeqCst)
    }
    fn held(&mut self, tasks: &[(TaskId, crate::model::Pool)]) {
        *self.0.held.lock().unwrap() = tasks.iter().map(|&(t, _)| t).collect();
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
        &vec![true; n],
        tentative.unwrap_or(&none),
        &[],
        work,
        &mut Book(work, g),
        Options { jobs, keep_going },
        None,
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
        interrupted: std::sync::atomic::AtomicBool::new(false),
        interrupt_at_start: false,
        held: Mutex::new(Vec::new()),
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

/// A fake jobserver: `free` tokens, each given back when its `Token` drops.
struct Pool {
    free: std::sync::Arc<Mutex<usize>>,
}

struct Back(std::sync::Arc<Mutex<usize>>);

impl Drop for Back {
    fn drop(&mut self) {
        *self.0.lock().unwrap() += 1;
    }
}

impl Slots for Pool {
    fn token(&self, give_up: &dyn Fn() -> bool) -> Option<Token> {
        loop {
            {
                let mut free = self.free.lock().unwrap();
                if *free > 0 {
                    *free -= 1;
                    return Some(Token::new(Back(self.free.clone())));
                }
            }
            if give_up() {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

fn independent(n: usize) -> String {
    (0..n)
        .map(|i| format!("[tasks.t{i}]\noutputs = [\"o{i}\"]\ncommand = \"x\"\n"))
        .collect()
}

fn run_with(g: &Graph, work: &Fake, jobs: usize, pool: &Pool) -> Summary {
    let n = g.id_bound();
    run(
        &vec![true; n],
        &vec![false; n],
        &[],
        work,
        &mut Book(work, g),
        Options {
            jobs,
            keep_going: false,
        },
        Some(pool),
    )
}

#[test]
fn a_slot_source_caps_tasks_at_its_tokens_and_the_implicit_slot() {
    let (_dir, g) = graph(&independent(30));
    for tokens in [0, 2] {
        let work = fake(&g, vec![]);
        let pool = Pool {
            free: std::sync::Arc::new(Mutex::new(tokens)),
        };
        let s = run_with(&g, &work, 8, &pool);
        assert_eq!(s.succeeded.len(), 30);
        assert!(work.peak.load(Ordering::SeqCst) <= tokens + 1);
        // Every token came back.
        assert_eq!(*pool.free.lock().unwrap(), tokens);
    }
}

#[test]
fn an_interrupt_ends_the_wait_for_a_token() {
    let (_dir, g) = graph(&independent(6));
    let mut work = fake(&g, vec![]);
    work.interrupt_at_start = true;
    work.sleep = std::time::Duration::from_millis(50);
    let pool = Pool {
        free: std::sync::Arc::new(Mutex::new(0)),
    };
    let s = run_with(&g, &work, 4, &pool);
    assert_eq!(s.succeeded.len(), 1);
    assert_eq!(s.not_run.len(), 5);
    assert_eq!(*pool.free.lock().unwrap(), 0);
}

#[test]
fn a_gated_task_waits_for_its_gate_and_is_blocked_by_its_failure() {
    // `b` does not depend on `a` in the graph; the gate makes it wait.
    let text = "[tasks.a]\noutputs = [\"a\"]\ncommand = \"x\"\n[tasks.b]\noutputs = [\"b\"]\ncommand = \"x\"\n";
    let (_dir, g) = graph(text);
    let work = fake(&g, vec![]);
    let n = g.id_bound();
    let s = run(
        &vec![true; n],
        &vec![false; n],
        &[(0, 1)],
        &work,
        &mut Book(&work, &g),
        Options {
            jobs: 4,
            keep_going: false,
        },
        None,
    );
    assert_eq!(s.succeeded, vec![0, 1]);
    assert_eq!(*work.log.lock().unwrap(), ["start a", "start b"]);

    // A gate that fails blocks what it holds, as a dependency would.
    let text = text.replace("[tasks.a]", "[tasks.fail]");
    let (_dir, g) = graph(&text);
    let work = fake(&g, vec![]);
    let s = run(
        &vec![true; n],
        &vec![false; n],
        &[(0, 1)],
        &work,
        &mut Book(&work, &g),
        Options {
            jobs: 4,
            keep_going: true,
        },
        None,
    );
    assert_eq!(s.failed, vec![0]);
    assert_eq!(s.not_run, vec![1]);
}

/// With one job, the task with the most work behind it starts first,
/// whatever the declaration order: two model calls in a row outweigh one
/// and a pair of commands; equal weights keep declaration order.
#[test]
fn the_ready_task_with_the_most_work_behind_it_starts_first() {
    let (_dir, g) = graph(
        r#"
[models.m]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"
[tasks.side]
outputs = ["side"]
prompt = "x"
model = "m"
[tasks.commands]
outputs = ["c1"]
command = "x"
[tasks.commands2]
inputs = ["c1"]
outputs = ["c2"]
command = "x"
[tasks.first]
outputs = ["f"]
prompt = "x"
model = "m"
[tasks.second]
inputs = ["f"]
outputs = ["s"]
prompt = "x"
model = "m"
[tasks.tie_a]
outputs = ["ta"]
command = "x"
[tasks.tie_b]
outputs = ["tb"]
command = "x"
"#,
    );
    let work = fake(&g, vec![]);
    run_all(&g, &work, None, 1, false);
    let log = work.log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "start first",
            // Then as much behind each: declaration order.
            "start side",
            "start second",
            "start commands",
            "start commands2",
            "start tie_a",
            "start tie_b"
        ]
    );
}

/// The loop's state, driven by hand as pool threads would: `tasks`
/// independent tasks, all ready, under `limit` jobs.
fn by_hand<'h, 'b>(book: &'h mut Book<'b>, tasks: usize, limit: usize) -> LoopState<'h, Book<'b>> {
    let mut state = LoopState::new(book, false, limit, &[]);
    state.prioritize();
    for t in 0..tasks {
        state.enter(t, false);
    }
    for t in 0..tasks {
        state.add(t, false);
    }
    state
}

/// A task that fails at once must not stop a ready neighbour that a slot
/// was free for, whether or not a pool thread had taken it yet: make and
/// ninja start every such task before they wait. No other task starts.
#[test]
fn a_failure_still_starts_the_ready_tasks_a_slot_was_free_for() {
    let (_dir, g) = graph(&format!("{FAIL_FIRST}{}", independent(4)));
    let work = fake(&g, vec![]);
    let mut book = Book(&work, &g);
    let mut state = by_hand(&mut book, 5, 3);
    // Three threads: one takes `fail`, one `t0`, the third has yet to
    // take anything when `fail` fails.
    let (fail, _) = state.take().unwrap();
    assert_eq!(g[fail].name, "fail");
    let (t0, _) = state.take().unwrap();
    state.finish(fail, false);
    assert_eq!(state.startable_count(), 1, "one slot was free");
    assert!(state.startable());
    let (t1, _) = state.take().unwrap();
    assert_eq!((g[t0].name.as_str(), g[t1].name.as_str()), ("t0", "t1"));
    assert!(state.take().is_none(), "nothing else starts");
    assert!(!state.startable());
    state.finish(t0, true);
    assert!(!state.over(), "t1 still runs");
    state.finish(t1, true);
    assert!(state.over());
    assert_eq!(state.summary.succeeded.len(), 2);
}

const FAIL_FIRST: &str = "[tasks.fail]\noutputs = [\"f\"]\ncommand = \"x\"\n";

/// With every slot busy when a task fails, nothing more starts; after an
/// interrupt, nothing owed starts either.
#[test]
fn a_failure_with_no_free_slot_or_an_interrupt_owes_nothing() {
    let (_dir, g) = graph(&format!("{FAIL_FIRST}{}", independent(3)));
    let work = fake(&g, vec![]);
    let mut book = Book(&work, &g);
    let mut state = by_hand(&mut book, 4, 2);
    let (first, _) = state.take().unwrap();
    assert_eq!(g[first].name, "fail");
    let (second, _) = state.take().unwrap();
    state.finish(first, false);
    assert_eq!(state.startable_count(), 0);
    assert!(state.take().is_none());
    state.finish(second, true);
    assert!(state.over());

    let work = fake(&g, vec![]);
    let mut book = Book(&work, &g);
    let mut state = by_hand(&mut book, 4, 3);
    let (first, _) = state.take().unwrap();
    state.finish(first, false);
    assert_eq!(state.startable_count(), 2);
    work.interrupted.store(true, Ordering::SeqCst);
    assert!(!state.startable());
    assert!(state.take().is_none());
    assert!(state.over());
}

mod pools;
