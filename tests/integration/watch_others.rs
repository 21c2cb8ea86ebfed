//! `planexe watch` beside other planexes in the same run directory: what
//! another planexe's build writes, and leaves as its records say, is no
//! change of the user's, whether the watch was idle or waited for it.

use std::time::Duration;

use super::harness::Project;
use super::watch::{started, Watcher};

/// `f` fails while `FAIL` exists, after writing its output.
const FAILS_ON_FLAG: &str = r#"
[tasks.f]
inputs = ["plan.txt"]
outputs = ["f.txt"]
command = "cat plan.txt > f.txt; test ! -e FAIL"
"#;

/// Another planexe's builds while the watch is idle: one that succeeds
/// leaves `f.txt` as its record says, one that fails puts its last good
/// output back. Neither is a change. The watch used to build after each
/// (`watch: f.txt changed: ran 0 task(s)`), and after the failed one ran
/// `f` again, with no change of the user's (`watch: f.txt changed: ran 1
/// task(s), 1 failed`): with a prompt task, a paid model call.
fn another_planexes_builds_start_no_build(args: &[&str]) {
    let p = Project::new(FAILS_ON_FLAG);
    p.write("plan.txt", "p\n");
    let mut w = Watcher::start(&p, args);
    // Past the settle time, when a change to an output counts.
    w.no_rebuild_for(Duration::from_secs(1));

    p.run(&["build", "-B", "f"]).ok();
    w.no_rebuild_for(Duration::from_secs(2));

    p.write("FAIL", "");
    p.run(&["build", "-B", "f"]).code(1);
    assert_eq!(p.read("f.txt"), "p\n");
    w.no_rebuild_for(Duration::from_secs(2));

    // A change of the user's builds (and `f`, failed, runs).
    p.remove("FAIL");
    std::fs::write(p.path("plan.txt"), "q\n").unwrap();
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["f"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: plan.txt changed: ran 1 task(s)"
    );
    assert_eq!(p.read("f.txt"), "q\n");
    assert_eq!(w.stop(), 130);
}

#[test]
fn another_planexes_builds_start_no_build_inotify() {
    another_planexes_builds_start_no_build(&[]);
}

#[test]
fn another_planexes_builds_start_no_build_polling() {
    another_planexes_builds_start_no_build(&["--poll", "200ms"]);
}

/// An output of a task that failed in the watch's own build, edited by
/// hand after another planexe's build of something else: still the
/// user's change (the watch knows that failure, and how it left `f.txt`).
#[test]
fn a_failed_tasks_output_edited_after_another_build_still_builds() {
    let p = Project::new(&format!(
        "{FAILS_ON_FLAG}\n[tasks.g]\ninputs = [\"other.txt\"]\noutputs = [\"g.txt\"]\ncommand = \"cp other.txt g.txt\"\n"
    ));
    p.write("plan.txt", "p\n");
    p.write("other.txt", "o\n");
    p.write("FAIL", "");
    let mut w = Watcher::start(&p, &[]);
    assert!(
        w.seen.iter().any(|l| l.starts_with("FAILED f")),
        "{:?}",
        w.seen
    );
    w.no_rebuild_for(Duration::from_secs(1));
    p.run(&["build", "-B", "g"]).ok();
    w.no_rebuild_for(Duration::from_secs(2));
    std::fs::write(p.path("f.txt"), "mine\n").unwrap();
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["f"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: f.txt changed: ran 1 task(s), 1 failed"
    );
    assert_eq!(w.stop(), 130);
}

/// Two watches started at the same instant in one run directory: the one
/// whose build finds the lock taken since it looked waits for it, then
/// builds. It used to give up (`error: another build (pid N, ...) is
/// running in this directory`, `watch: first build: not built`), and then
/// idled without building when the other ended: about one start in five
/// or eight. Many starts, so that the race comes.
#[test]
fn two_watches_started_at_once_both_build_first() {
    for _ in 0..16 {
        let p = Project::new(
            r#"
[tasks.t]
inputs = ["plan.txt"]
outputs = ["t.txt"]
command = "cp plan.txt t.txt"
"#,
        );
        p.write("plan.txt", "x\n");
        let mut both = [Watcher::spawn(&p, &[]), Watcher::spawn(&p, &[])];
        let mut ran = 0;
        for w in &mut both {
            let lines = w.expect("watching ");
            assert!(lines.iter().all(|l| !l.contains("not built")), "{lines:?}");
            let first = lines.iter().find(|l| l.starts_with("watch: first build: "));
            assert!(
                first.is_some_and(|l| l.ends_with("ran 0 task(s)") || l.ends_with("ran 1 task(s)")),
                "{lines:?}"
            );
            ran += started(&lines).len();
        }
        assert_eq!(ran, 1, "one build ran t, the other found it done");
        assert_eq!(p.read("t.txt"), "x\n");
        for w in both {
            assert_eq!(w.stop(), 130);
        }
    }
}

/// Another planexe's build of a fan-out's instances: the watch loads the
/// fan-out as a placeholder, and judges its instances' outputs by their
/// records all the same (it used to build: `watch: per/a.txt, per/b.txt
/// changed: ran 0 task(s)`). It goes on watching what the instances read.
#[test]
fn another_planexes_build_of_a_fanout_starts_no_build() {
    let p = Project::new(
        r#"
[tasks.list]
inputs = ["names.json"]
outputs = ["items.json"]
command = "cp names.json items.json"

[tasks.per]
foreach = { file = "items.json", key = "id" }
inputs = ["data/{{ key }}.txt"]
outputs = ["per/{{ key }}.txt"]
command = "mkdir -p per && cat {inputs} > {outputs}"
"#,
    );
    p.write("names.json", r#"[{"id": "a"}, {"id": "b"}]"#);
    p.write("data/a.txt", "alpha\n");
    p.write("data/b.txt", "beta\n");
    let mut w = Watcher::start(&p, &[]);
    w.no_rebuild_for(Duration::from_secs(1));

    p.run(&["build", "-B", "per"])
        .ok()
        .ran(&["per[a]", "per[b]"]);
    w.no_rebuild_for(Duration::from_secs(2));

    p.write_at("data/a.txt", "alpha, edited\n", 2_000_000);
    w.expect_rebuild_of("data/a.txt", "per[a]");
    assert_eq!(p.read("per/a.txt"), "alpha, edited\n");
    assert_eq!(w.stop(), 130);
}
