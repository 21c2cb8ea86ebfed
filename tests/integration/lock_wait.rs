//! A build or watch that read the run before another build ended, when
//! that build recorded another pipeline file for the run (`build -f`):
//! a session not named a file is refused once it holds the lock (it was
//! opened for a pipeline the run no longer uses; it used to build it and
//! record it back over the other build's choice), a session named one
//! keeps it, and a watch follows the run's file and says so.

use std::process::Stdio;
use std::time::Duration;

use crate::harness::*;
use crate::watch::{started, Watcher};
use planexe::exec::{Build, BuildOptions, Env, Interrupt};
use planexe::plan::session::{Location, ModelChoice};
use planexe::plan::Session;

const MAIN: &str = r#"
[tasks.a]
inputs = ["plan.txt"]
outputs = ["a.txt"]
command = "cat plan.txt > a.txt"
"#;

/// `slow` waits while `hold` exists, so a test decides when it ends.
const OTHER: &str = r#"
[tasks.slow]
inputs = ["plan.txt"]
outputs = ["slow.txt"]
command = "while [ -e hold ]; do sleep 0.05; done; cat plan.txt > slow.txt"
"#;

fn project() -> Project {
    let p = Project::new(MAIN);
    p.write("other.toml", OTHER);
    p.write("plan.txt", "p\n");
    // The run records pipeline.toml.
    p.build().ok().ran(&["a"]);
    p
}

/// Opens the run as a build does before it takes the lock: `-f FILE`
/// when `file` is given.
fn open(p: &Project, file: Option<&str>) -> Session {
    let location = Location {
        run_dir: p.root().to_path_buf(),
        file: file.map(|f| (p.path(f), f.to_string())),
        ..Location::default()
    };
    Session::open(
        location.locate().unwrap(),
        &ModelChoice::default(),
        planexe::model::Lists::Unproduced,
    )
    .unwrap()
}

/// `planexe build -f other.toml -B`, held while `hold` exists, run to its
/// end: it records other.toml for the run.
fn build_other_meanwhile(p: &Project) {
    p.write("hold", "");
    let other = Background(Some(
        p.command(&["build", "-f", "other.toml", "-B"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start planexe build"),
    ));
    wait_for("slow running", || {
        std::fs::read_to_string(p.path(".planexe/inflight"))
            .is_ok_and(|j| j.contains("{\"spawned\":[\"slow\","))
    });
    // Another build started now, without waiting, is refused at once.
    p.run(&["build", "--no-wait"])
        .code(2)
        .stderr_has("another build (pid");
    p.remove("hold");
    let out = other.wait();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(p.exists("slow.txt"));
}

fn run(session: &mut Session) -> planexe::error::Result<planexe::exec::BuildReport> {
    Build {
        options: &BuildOptions::default(),
        env: &Env::default(),
        interrupt: &Interrupt::new(),
        observer: &planexe::exec::observer::Silent,
        executor: None,
        slots: None,
    }
    .run(session)
}

fn recorded(p: &Project) -> String {
    p.read(".planexe/pipeline").trim_end().to_string()
}

/// Opened without -f while the run recorded pipeline.toml; by the time it
/// holds the lock, another build recorded other.toml. It used to build
/// pipeline.toml's tasks with the state other.toml's build left and record
/// pipeline.toml back.
#[test]
fn a_build_that_read_the_run_before_another_recorded_another_pipeline_file_is_refused() {
    let p = project();
    std::fs::write(p.path("plan.txt"), "q\n").unwrap();
    let mut waiting = open(&p, None);
    build_other_meanwhile(&p);

    let Err(e) = run(&mut waiting) else {
        panic!("built, not refused");
    };
    assert_eq!(e.code(), 2, "{e}");
    let message = e.to_string();
    assert!(
        message.contains("recorded other.toml as the run's pipeline file while this build was starting with pipeline.toml; nothing was built"),
        "{message}"
    );
    assert!(
        e.hints().iter().any(|h| h.contains("-f pipeline.toml")),
        "{:?}",
        e.hints()
    );
    // Nothing built, the record is the other build's.
    assert_eq!(p.read("a.txt"), "p\n");
    assert_eq!(recorded(&p), "other.toml");
    // Run again, as the hint says: other.toml, which the other build left
    // up to date.
    p.build().ok().ran(&[]).stderr_has("nothing to do");
}

/// Named a file (`-f pipeline.toml`), a build keeps it whatever the run
/// recorded meanwhile, and records it, as `-f` always does.
#[test]
fn a_build_named_its_pipeline_file_keeps_it_when_another_recorded_another() {
    let p = project();
    std::fs::write(p.path("plan.txt"), "q\n").unwrap();
    let mut waiting = open(&p, Some("pipeline.toml"));
    build_other_meanwhile(&p);

    let report = run(&mut waiting).expect("built");
    assert_eq!(report.ended, planexe::exec::Ended::Completed);
    assert_eq!(p.read("a.txt"), "q\n");
    assert_eq!(recorded(&p), "pipeline.toml");
}

/// A watch without -f follows the file the run records: after a `build
/// -f other.toml` from another terminal it builds and watches other.toml,
/// and says so (it used to switch without a word, and an edit of
/// pipeline.toml then did nothing).
#[test]
fn a_watch_follows_the_pipeline_file_another_build_recorded_and_says_so() {
    let p = project();
    let mut w = Watcher::start(&p, &[]);
    build_other_meanwhile(&p);
    std::fs::write(p.path("plan.txt"), "q\n").unwrap();
    let lines = w.expect("watch: plan.txt changed");
    assert!(
        lines.iter().any(|l| l
            == "watch: this run's pipeline file is now other.toml (recorded by another build), not pipeline.toml; watching it"),
        "{lines:?}"
    );
    assert_eq!(started(&lines), ["slow"], "{lines:?}");
    assert_eq!(p.read("slow.txt"), "q\n");
    // other.toml is watched now.
    w.quiet_for(Duration::from_secs(1));
    p.write(
        "other.toml",
        &OTHER.replace("cat plan.txt", "tr a-z A-Z < plan.txt"),
    );
    let lines = w.expect("watch: other.toml changed");
    assert_eq!(started(&lines), ["slow"], "{lines:?}");
    assert_eq!(p.read("slow.txt"), "Q\n");
    assert_eq!(w.stop(), 130);
}
