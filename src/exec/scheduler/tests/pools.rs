//! The scheduler's pools (a model's `max_concurrency`, as ninja's
//! pools): a full pool holds its ready tasks without a job slot, and the
//! hooks hear which.

use super::*;

/// Two prompt tasks of a model with `max_concurrency = 1`, heavier than
/// two commands, and one prompt task of a model without a limit.
const POOLED: &str = r#"
[models.one]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"
max_concurrency = 1
[models.any]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"
[tasks.p0]
outputs = ["p0"]
prompt = "x"
model = "one"
[tasks.p1]
outputs = ["p1"]
prompt = "x"
model = "one"
[tasks.after0]
inputs = ["p0"]
outputs = ["a0"]
command = "x"
[tasks.after1]
inputs = ["p1"]
outputs = ["a1"]
command = "x"
[tasks.q]
outputs = ["q"]
prompt = "x"
model = "any"
[tasks.c0]
outputs = ["c0"]
command = "x"
[tasks.c1]
outputs = ["c1"]
command = "x"
"#;

/// A model's `max_concurrency` is a pool, as in ninja: its second task
/// does not start while the first runs, and the job slot it would have
/// waited in goes to the next best task; once the first ends, it starts.
#[test]
fn a_full_pool_gives_its_slot_to_the_next_best_task() {
    let (_dir, g) = graph(POOLED);
    let name = |t: TaskId| g[t].name.as_str();
    let work = fake(&g, vec![]);
    let mut book = Book(&work, &g);
    let mut state = by_hand(&mut book, g.id_bound(), 3);
    let (first, _) = state.take().unwrap();
    let (second, _) = state.take().unwrap();
    let (third, _) = state.take().unwrap();
    assert_eq!(
        [name(first), name(second), name(third)],
        ["p0", "q", "c0"],
        "p1 waits for p0's place in the pool"
    );
    assert_eq!(state.startable_count(), 1, "c1 only: the pool is full");
    // The hooks hear, as the loop ticks, that p1 waits for its pool.
    let held = |state: &mut LoopState<'_, Book<'_>>| {
        state.tick();
        let held = work.held.lock().unwrap().clone();
        held.into_iter().map(name).collect::<Vec<_>>()
    };
    assert_eq!(held(&mut state), ["p1"]);
    state.finish(third, true);
    let (fourth, _) = state.take().unwrap();
    assert_eq!(name(fourth), "c1");
    assert_eq!(state.startable_count(), 0);
    state.finish(first, true);
    // p0's end frees the pool and readies after0: p1 has more work behind it.
    assert_eq!(state.startable_count(), 2);
    let (fifth, _) = state.take().unwrap();
    assert_eq!(name(fifth), "p1");
    assert_eq!(state.startable_count(), 1);
    assert!(held(&mut state).is_empty());
}

/// A task a full pool holds is told to the hooks until its pool has room
/// (then it waits for a job slot only), or until the build stops starting
/// tasks (then it will not start at all).
#[test]
fn the_hooks_hear_which_tasks_a_full_pool_holds() {
    let (_dir, g) = graph(&format!("{POOLED}{}", pooled_more(2)));
    let name = |t: TaskId| g[t].name.as_str();
    let work = fake(&g, vec![]);
    let mut book = Book(&work, &g);
    let mut state = by_hand(&mut book, g.id_bound(), 1);
    let held = |state: &mut LoopState<'_, Book<'_>>| {
        state.tick();
        let held = work.held.lock().unwrap().clone();
        held.into_iter().map(name).collect::<Vec<_>>()
    };
    // One job slot, nothing running: the pool's best waits for the slot
    // only; the others for the pool too.
    assert_eq!(held(&mut state), ["p1", "more0", "more1"]);
    let (first, _) = state.take().unwrap();
    assert_eq!(name(first), "p0");
    assert_eq!(held(&mut state), ["p1", "more0", "more1"]);
    state.finish(first, false);
    assert!(
        held(&mut state).is_empty(),
        "the build stops starting tasks"
    );
}

/// Run for real on pool threads: never two tasks of the pool at once, and
/// everything runs.
#[test]
fn a_pool_holds_under_the_threaded_loop() {
    let (_dir, g) = graph(&format!("{POOLED}{}", pooled_more(6)));
    struct Count<'a>(&'a Graph, AtomicUsize, AtomicUsize);
    impl Runner for Count<'_> {
        type Input = ();
        type Output = bool;
        fn run(&self, t: TaskId, _: ()) -> bool {
            let pooled = self.0.pool(t).is_some();
            if pooled {
                let now = self.1.fetch_add(1, Ordering::SeqCst) + 1;
                self.2.fetch_max(now, Ordering::SeqCst);
            }
            std::thread::sleep(std::time::Duration::from_millis(3));
            if pooled {
                self.1.fetch_sub(1, Ordering::SeqCst);
            }
            true
        }
    }
    let work = fake(&g, vec![]);
    let count = Count(&g, AtomicUsize::new(0), AtomicUsize::new(0));
    let n = g.id_bound();
    let summary = run(
        &vec![true; n],
        &vec![false; n],
        &[],
        &count,
        &mut Book(&work, &g),
        Options {
            jobs: 4,
            keep_going: false,
        },
        None,
    );
    assert_eq!(summary.succeeded.len(), g.len());
    assert_eq!(count.2.load(Ordering::SeqCst), 1, "the pool's depth is 1");
    assert_eq!(
        first_to_start(&g, &vec![true; n], &vec![false; n], &[], 10)
            .iter()
            .filter(|&&t| g.pool(t).is_some())
            .count(),
        1,
        "first_to_start names one task of the pool"
    );
}

fn pooled_more(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!("[tasks.more{i}]\noutputs = [\"m{i}\"]\nprompt = \"x\"\nmodel = \"one\"\n")
        })
        .collect()
}
