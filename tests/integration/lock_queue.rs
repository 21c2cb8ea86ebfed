//! Commands that wait for the run directory's lock, as cargo waits for its
//! build directory: a `build`, `clean` or `touch` started while another
//! planexe works in the run directory says who it waits for, waits, then
//! does its work from the state the other left; `--no-wait` refuses at
//! once (exit 2). An interrupt ends a wait having changed nothing, and a
//! task's command that runs planexe in its own build's run directory is
//! refused at once (it would wait forever). Under `make -j`, two recipes
//! of one run directory build one after the other.

use std::process::Stdio;

use crate::harness::*;
use crate::makefile::make;

/// `slow` runs while `hold` exists, so a test decides when it ends;
/// `quick` does not.
const PIPELINE: &str = r#"
[tasks.slow]
inputs = ["plan.txt"]
outputs = ["slow.txt"]
command = "touch started; while [ -e hold ]; do sleep 0.02; done; cat plan.txt > slow.txt"

[tasks.quick]
inputs = ["plan.txt"]
outputs = ["quick.txt"]
command = "cat plan.txt > quick.txt"
"#;

fn project() -> Project {
    let p = Project::new(PIPELINE);
    p.write("plan.txt", "p\n");
    p
}

/// `planexe build slow` in the background, held in `slow` until `hold` is
/// removed.
fn hold_slow(p: &Project) -> Background {
    p.write("hold", "");
    let child = p
        .command(&["build", "slow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start planexe build");
    wait_for("slow to start", || p.exists("started"));
    Background(Some(child))
}

/// `planexe ARGS` in the background, its stderr in `err` (read while it
/// runs).
fn background(p: &Project, args: &[&str], err: &str) -> Background {
    let file = std::fs::File::create(p.path(err)).unwrap();
    Background(Some(
        p.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start planexe"),
    ))
}

/// Waits until `err` says its command is waiting for the lock.
fn waiting(p: &Project, err: &str) {
    wait_for("the wait to be said", || {
        std::fs::read_to_string(p.path(err))
            .is_ok_and(|e| e.contains("waiting: another build (pid"))
    });
}

#[test]
fn a_second_build_waits_for_the_first_then_builds_from_what_it_left() {
    let p = project();
    let first = hold_slow(&p);
    let second = background(&p, &["build"], "second.err");
    waiting(&p, "second.err");
    // It waits: it has run nothing, and `--no-wait` is refused at once.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !p.exists("quick.txt"),
        "the second build ran while the first held the lock"
    );
    p.run(&["build", "--no-wait"])
        .code(2)
        .stderr_has("another build (pid")
        .stderr_has("is running in this directory");
    // An edit of the pipeline meanwhile is what it builds: it reads the
    // pipeline once the other build is over.
    p.write(
        "pipeline.toml",
        &PIPELINE.replace("cat plan.txt > quick.txt", "echo new > quick.txt"),
    );
    p.remove("hold");
    assert!(first.wait().status.success());
    let out = second.wait();
    assert!(out.status.success(), "{}", p.read("second.err"));
    let err = p.read("second.err");
    assert_eq!(err.matches("waiting: ").count(), 1, "said once:\n{err}");
    assert!(
        err.contains("this build starts when it ends (Ctrl-C stops waiting)"),
        "{err}"
    );
    // It planned from what the first left: slow is done, quick runs, as
    // the pipeline says now.
    assert!(
        err.contains("start  quick") && !err.contains("start  slow"),
        "{err}"
    );
    assert_eq!(p.read("quick.txt"), "new\n");
    p.build().ok().ran(&[]);
}

#[test]
fn an_interrupt_ends_the_wait_having_changed_nothing() {
    let p = project();
    let first = hold_slow(&p);
    let run_json = p.read(".planexe/run.json");
    let second = background(&p, &["build"], "second.err");
    waiting(&p, "second.err");
    let pid = second.0.as_ref().unwrap().id();
    // SAFETY: kill(2) on the build this test started.
    unsafe {
        libc::kill(pid as i32, libc::SIGINT);
    }
    let out = second.wait();
    assert_eq!(out.status.code(), Some(130), "{}", p.read("second.err"));
    assert!(p.read("second.err").contains("stopped: no task started"));
    assert_eq!(
        p.read(".planexe/run.json"),
        run_json,
        "the waiting build recorded nothing"
    );
    p.remove("hold");
    assert!(first.wait().status.success());
    p.build().ok().ran(&["quick"]);
}

#[test]
fn clean_and_touch_wait_too_or_refuse_with_no_wait() {
    let p = project();
    p.build().ok().ran(&["quick", "slow"]);
    p.remove("started");
    p.write_at("plan.txt", "q\n", 2_000_000);
    let first = hold_slow(&p);
    p.run(&["clean", "quick", "-y", "--no-wait"])
        .code(2)
        .stderr_has("another build (pid");
    p.run(&["touch", "quick", "--no-wait"])
        .code(2)
        .stderr_has("another build (pid");
    let clean = background(&p, &["clean", "quick", "-y"], "clean.err");
    waiting(&p, "clean.err");
    assert!(
        p.exists("quick.txt"),
        "clean went on while the build held the lock"
    );
    p.remove("hold");
    assert!(first.wait().status.success());
    assert!(clean.wait().status.success(), "{}", p.read("clean.err"));
    assert!(p.read("clean.err").contains("clean goes on when it ends"));
    assert!(!p.exists("quick.txt"));
    // touch, the same way.
    p.write("quick.txt", "by hand\n");
    p.remove("started");
    p.remove("slow.txt");
    let first = hold_slow(&p);
    let touch = background(&p, &["touch", "quick"], "touch.err");
    waiting(&p, "touch.err");
    p.remove("hold");
    assert!(first.wait().status.success());
    assert!(touch.wait().status.success(), "{}", p.read("touch.err"));
    assert!(p.read("touch.err").contains("touched quick"));
    p.run(&["build", "-n"]).ok();
    assert_eq!(p.read("quick.txt"), "by hand\n");
    p.build().ok().ran(&[]);
}

#[test]
fn a_task_that_builds_its_own_run_directory_is_refused_at_once() {
    let p = Project::new(&format!(
        r#"
[tasks.outer]
outputs = ["outer.txt"]
command = "'{bin}' build inner && echo o > outer.txt"

[tasks.inner]
outputs = ["inner.txt"]
command = "echo i > inner.txt"
"#,
        bin = bin()
    ));
    let run = p.run_bounded(&["build", "outer"]);
    run.code(1);
    let log = p.read(".planexe/logs/outer.log");
    assert!(
        log.contains("and this planexe was started by it: waiting for its lock would wait forever"),
        "{log}"
    );
    assert!(
        log.contains("a task's command cannot run `planexe build` in the run directory of the build that runs it"),
        "{log}"
    );
    assert!(!p.exists("inner.txt"));
}

#[test]
fn two_recipes_of_one_run_directory_under_make_j_build_one_after_the_other() {
    let p = Project::new(
        r#"
[tasks.a]
outputs = ["a.txt"]
command = "sleep 0.5; echo a > a.txt"

[tasks.b]
outputs = ["b.txt"]
command = "sleep 0.5; echo b > b.txt"
"#,
    );
    p.write(
        "Makefile",
        "all: a.txt b.txt\n\
         a.txt: pipeline.toml\n\t+planexe build $@\n\
         b.txt: pipeline.toml\n\t+planexe build $@\n",
    );
    let out = make(p.root(), &["-j2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("waiting: another build (pid"),
        "{}",
        out.stderr
    );
    assert_eq!(p.read("a.txt"), "a\n");
    assert_eq!(p.read("b.txt"), "b\n");
    let again = make(p.root(), &["-j2"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("Nothing to be done"),
        "{}",
        again.stdout
    );
}
