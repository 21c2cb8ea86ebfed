//! `planexe watch` telling a build's own writes from the user's: what a
//! build writes (its tasks' outputs, the folders it makes for them, and
//! `.planexe/`) never starts the next build, whether the build succeeded
//! or failed; anything else that changes on disk while a build runs does,
//! once the build is over.

use std::time::Duration;

use super::harness::Project;
use super::watch::{rebuilds, started, Watcher};

/// `slow` runs while `hold` exists, so a build lasts as long as the test
/// wants; `report` reads what the glob `data/*.txt` matches (nothing at
/// first: `data/` is empty).
const GLOB: &str = r#"
[tasks.slow]
inputs = ["plan.txt"]
outputs = ["slow.md"]
command = "while [ -e hold ]; do sleep 0.05; done; cat plan.txt > slow.md"

[tasks.report]
inputs = ["head.txt", "data/*.txt"]
outputs = ["report.md"]
command = "cat head.txt data/*.txt > report.md 2>/dev/null; true"
"#;

/// The glob's folder removed and made again, with a new file the glob
/// matches, while a build runs: the watch builds again after it, and the
/// new file is read. The change used to be taken for the build's own (a
/// new file a glob matches, and a folder a glob walks, counted only while
/// no build wrote), and the new file was never built.
fn a_glob_folder_made_again_during_a_build_is_built_after_it(args: &[&str]) {
    let p = Project::new(GLOB);
    p.write("plan.txt", "one\n");
    p.write("head.txt", "head\n");
    std::fs::create_dir(p.path("data")).unwrap();
    let mut w = Watcher::start(&p, args);
    assert_eq!(p.read("report.md"), "head\n");

    p.write("hold", "");
    std::fs::write(p.path("plan.txt"), "two\n").unwrap();
    w.expect("start  slow");
    let status = std::process::Command::new("sh")
        .args(["-c", "rm -rf data && mkdir data && echo x > data/a.txt"])
        .current_dir(p.root())
        .status()
        .unwrap();
    assert!(status.success());
    // Not a timing assertion: the watcher (a poll, with `--poll`) sees
    // the change while the build still runs.
    w.quiet_for(Duration::from_millis(600));
    p.remove("hold");
    let lines = w.expect("watch: ");
    assert_eq!(
        lines.last().unwrap(),
        "watch: plan.txt changed: ran 1 task(s)"
    );

    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["report"], "{lines:?}");
    let last = lines.last().unwrap();
    assert!(last.contains("data/a.txt"), "{lines:?}");
    assert!(last.ends_with("changed: ran 1 task(s)"), "{lines:?}");
    assert_eq!(p.read("report.md"), "head\nx\n");
    w.no_rebuild_for(Duration::from_secs(2));
    assert_eq!(w.stop(), 130);
}

#[test]
fn a_glob_folder_made_again_during_a_build_is_built_after_it_inotify() {
    a_glob_folder_made_again_during_a_build_is_built_after_it(&[]);
}

#[test]
fn a_glob_folder_made_again_during_a_build_is_built_after_it_polling() {
    a_glob_folder_made_again_during_a_build_is_built_after_it(&["--poll", "100ms"]);
}

/// `t` fails while `plan.txt` says `bad`, after writing its output (and
/// waiting long enough for a poll to see it).
const FAILING: &str = r#"
[tasks.t]
inputs = ["plan.txt"]
outputs = ["out.txt"]
command = "if grep -q bad plan.txt; then echo partial > out.txt; sleep 0.3; exit 1; fi; cp plan.txt out.txt"
"#;

/// A failed task whose last good output is gone (removed by hand, so it
/// cannot be put back): what its failed attempt wrote is moved aside, and
/// the output is missing as the build left it. That is the build's own
/// doing: no build follows until the user changes something. Each build
/// used to start the next (the record still spoke of the last good
/// output, so the failed attempt's writes counted as the user's), without
/// end.
fn a_failed_build_starts_no_build_by_its_own_writes(args: &[&str]) {
    let p = Project::new(FAILING);
    p.write("plan.txt", "good\n");
    let mut w = Watcher::start(&p, args);
    assert_eq!(p.read("out.txt"), "good\n");

    std::fs::write(p.path("plan.txt"), "bad\n").unwrap();
    let lines = w.expect("watch: plan.txt changed");
    assert!(lines.last().unwrap().ends_with("1 failed"), "{lines:?}");
    // Put back as it was: no build follows.
    assert_eq!(p.read("out.txt"), "good\n");
    w.no_rebuild_for(Duration::from_secs(2));

    p.remove("out.txt");
    let lines = w.expect("watch: out.txt changed");
    assert_eq!(started(&lines), ["t"], "{lines:?}");
    assert!(lines.last().unwrap().ends_with("1 failed"), "{lines:?}");
    assert!(!p.exists("out.txt"));
    // Nothing is edited meanwhile: at most no build (it used to be one
    // after another, a dozen a second).
    let after = w.quiet_for(Duration::from_secs(4));
    assert_eq!(rebuilds(&after), 0, "{after:?}");

    // A real change builds.
    std::fs::write(p.path("plan.txt"), "fixed\n").unwrap();
    let lines = w.expect("watch: plan.txt changed");
    assert_eq!(started(&lines), ["t"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: plan.txt changed: ran 1 task(s)"
    );
    assert_eq!(p.read("out.txt"), "fixed\n");
    w.no_rebuild_for(Duration::from_secs(2));
    assert_eq!(w.stop(), 130);
}

#[test]
fn a_failed_build_starts_no_build_by_its_own_writes_inotify() {
    a_failed_build_starts_no_build_by_its_own_writes(&[]);
}

#[test]
fn a_failed_build_starts_no_build_by_its_own_writes_polling() {
    a_failed_build_starts_no_build_by_its_own_writes(&["--poll", "100ms"]);
}

/// A failed attempt that leaves a file where its output's folder was: the
/// last good output cannot be put back (`Not a directory`) and is kept in
/// `.planexe/prev/`. The missing output is the failed build's doing: no
/// build follows (one used to, failing at once on the file in the way).
#[test]
fn a_last_good_output_that_cannot_be_put_back_starts_no_build() {
    let p = Project::new(
        r#"
[tasks.t]
inputs = ["plan.txt"]
outputs = ["out/a.txt"]
command = "if grep -q bad plan.txt; then rm -rf out; echo junk > out; exit 1; fi; cp plan.txt out/a.txt"
"#,
    );
    p.write("plan.txt", "good\n");
    let mut w = Watcher::start(&p, &[]);
    std::fs::write(p.path("plan.txt"), "bad\n").unwrap();
    let lines = w.expect("watch: plan.txt changed");
    assert!(
        lines.iter().any(|l| l.contains("could not be put back")),
        "{lines:?}"
    );
    let after = w.quiet_for(Duration::from_secs(3));
    assert_eq!(rebuilds(&after), 0, "{after:?}");
    // The user clears the way: that is a change, and the build succeeds.
    // (The two changes at once: one alone would build, and fail.)
    w.paused(|| {
        std::fs::remove_file(p.path("out")).unwrap();
        std::fs::write(p.path("plan.txt"), "fixed\n").unwrap();
    });
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["t"], "{lines:?}");
    assert!(
        lines.last().unwrap().ends_with("ran 1 task(s)"),
        "{lines:?}"
    );
    assert_eq!(p.read("out/a.txt"), "fixed\n");
    assert_eq!(w.stop(), 130);
}

/// An output that is a symlink is stamped through it, to the file it
/// leads to: once its task has written it, it is as the record says, and
/// no build follows. The watch used to look at the link itself, took it
/// for changed, and followed every build that wrote it with another
/// (`watch: out.txt changed: ran 0 task(s)`).
#[test]
fn an_output_written_as_a_symlink_starts_no_build() {
    let p = Project::new(
        r#"
[tasks.t]
inputs = ["plan.txt"]
outputs = ["out.txt"]
command = "cp plan.txt real.txt; ln -sf real.txt out.txt"
"#,
    );
    p.write("plan.txt", "one\n");
    let mut w = Watcher::start(&p, &[]);
    w.no_rebuild_for(Duration::from_secs(2));
    std::fs::write(p.path("plan.txt"), "two\n").unwrap();
    let lines = w.expect("watch: ");
    assert_eq!(
        lines.last().unwrap(),
        "watch: plan.txt changed: ran 1 task(s)"
    );
    w.no_rebuild_for(Duration::from_secs(2));
    assert_eq!(p.read("out.txt"), "two\n");
    // Replaced by hand with a file: a change. (At once: the link removed
    // alone would build, and the write would then go through the link
    // the build made again.)
    w.paused(|| {
        std::fs::remove_file(p.path("out.txt")).unwrap();
        std::fs::write(p.path("out.txt"), "mine\n").unwrap();
    });
    let lines = w.expect("watch: out.txt changed");
    assert!(
        lines.last().unwrap().ends_with("ran 0 task(s)"),
        "{lines:?}"
    );
    assert_eq!(w.stop(), 130);
}

/// `t` fails while `plan.txt` says `bad`; `slow` runs while `hold`
/// exists, so the build goes on after `t` has failed as long as the test
/// wants.
const FAILS_THEN_WAITS: &str = r#"
[tasks.t]
inputs = ["plan.txt"]
outputs = ["out.txt"]
command = "if grep -q bad plan.txt; then exit 1; fi; cp plan.txt out.txt"

[tasks.slow]
inputs = ["plan.txt"]
outputs = ["slow.md"]
command = "while [ -e hold ]; do sleep 0.05; done; cat plan.txt > slow.md"
"#;

/// A failed task's output edited by hand after the task ended, while the
/// build goes on with another: the edit is the user's, so the watch builds
/// again once this build is over (the next build decides: `t` runs again,
/// as `planexe build` would run it, and its failure puts the edit back).
/// What the failed task left was taken as found when the whole build
/// ended, the edit included, and nothing was built.
fn a_failed_tasks_output_edited_while_its_build_goes_on_builds_again(args: &[&str]) {
    let p = Project::new(FAILS_THEN_WAITS);
    p.write("plan.txt", "one\n");
    let mut w = Watcher::start(&p, &[&["-k", "-j", "2"], args].concat());
    w.no_rebuild_for(Duration::from_secs(1));

    p.write("hold", "");
    std::fs::write(p.path("plan.txt"), "bad\n").unwrap();
    let mut lines = w.expect("FAILED t");
    std::fs::write(p.path("out.txt"), "mine\n").unwrap();
    std::fs::remove_file(p.path("hold")).unwrap();
    lines.extend(w.expect("watch: "));
    assert_eq!(started(&lines), ["slow", "t"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: plan.txt changed: ran 2 task(s), 1 failed"
    );
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["t"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: out.txt changed: ran 1 task(s), 1 failed"
    );
    assert_eq!(p.read("out.txt"), "mine\n");
    // What that failed build left is its own.
    w.no_rebuild_for(Duration::from_secs(1));
    std::fs::write(p.path("plan.txt"), "good\n").unwrap();
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["slow", "t"], "{lines:?}");
    assert_eq!(p.read("out.txt"), "good\n");
    assert_eq!(w.stop(), 130);
}

#[test]
fn a_failed_tasks_output_edited_while_its_build_goes_on_builds_again_inotify() {
    a_failed_tasks_output_edited_while_its_build_goes_on_builds_again(&[]);
}

#[test]
fn a_failed_tasks_output_edited_while_its_build_goes_on_builds_again_polling() {
    a_failed_tasks_output_edited_while_its_build_goes_on_builds_again(&["--poll", "100ms"]);
}
