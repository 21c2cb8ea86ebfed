//! `planexe watch --poll` sees every change a build would see: a file's
//! size, its mtime to the nanosecond, in either direction, and a file
//! replaced by another. notify's `PollWatcher` compared whole seconds and
//! reported only newer mtimes, so a second write in the same second, or a
//! file replaced by an older one (`cp -p`, `mv`, `touch -d`), went unseen
//! while `planexe build -n` said `input plan.txt changed`. A `chmod`,
//! which a build does not see, starts nothing (polling or not).
//!
//! mtimes are set explicitly (no sleeps to make them differ). A file the
//! test writes in place gets the time of the write first, then the one the
//! test sets: the first mtime is put in the future, so that the time of
//! the write is never newer than what a poll saw before it (the old poller
//! would have caught that moment, by chance).

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use filetime::FileTime;

use super::harness::Project;
use super::watch::{started, Watcher};

const PIPELINE: &str = r#"
[tasks.outline]
inputs = ["plan.txt"]
outputs = ["outline.md"]
command = "tr a-z A-Z < plan.txt > outline.md"
"#;

/// A whole second a day from now.
fn tomorrow() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(now.as_secs()).unwrap() + 86_400
}

/// `plan.txt` (14 bytes, as every version of it below) at `mtime`.
fn project(mtime: FileTime) -> Project {
    let p = Project::new(PIPELINE);
    p.write("plan.txt", "build a house\n");
    filetime::set_file_mtime(p.path("plan.txt"), mtime).unwrap();
    p
}

fn run(p: &Project, program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .current_dir(p.root())
        .status()
        .unwrap();
    assert!(status.success(), "{program} {args:?}");
}

/// Two writes within one second, of the same size: the poll saw the
/// first, and the second differs only in the nanoseconds of its mtime.
#[test]
fn polling_sees_a_second_write_within_the_same_second() {
    let second = tomorrow();
    let p = project(FileTime::from_unix_time(second, 100_000_000));
    let mut w = Watcher::start(&p, &["--poll", "100ms"]);
    w.no_rebuild_for(Duration::from_secs(1));

    std::fs::write(p.path("plan.txt"), "build a barn!\n").unwrap();
    let later = FileTime::from_unix_time(second, 600_000_000);
    filetime::set_file_mtime(p.path("plan.txt"), later).unwrap();
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["outline"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: plan.txt changed: ran 1 task(s)"
    );
    assert_eq!(p.read("outline.md"), "BUILD A BARN!\n");
    // The build's own writes, and the poll looking again, start nothing.
    w.no_rebuild_for(Duration::from_secs(1));
    assert_eq!(w.stop(), 130);
}

/// A source replaced by an older file, in place (`cp -p`) and by a rename
/// (`mv`): its mtime went back, which is a change as much as forward.
#[test]
fn polling_sees_a_file_replaced_by_an_older_one() {
    let p = project(FileTime::from_unix_time(tomorrow(), 0));
    p.write("backup/plan.txt", "build a barn!\n");
    p.write("backup/older.txt", "build a mill!\n");
    let y2020 = FileTime::from_unix_time(1_577_836_800, 0);
    filetime::set_file_mtime(p.path("backup/plan.txt"), y2020).unwrap();
    let y2019 = FileTime::from_unix_time(1_546_300_800, 0);
    filetime::set_file_mtime(p.path("backup/older.txt"), y2019).unwrap();
    let mut w = Watcher::start(&p, &["--poll", "100ms"]);
    w.no_rebuild_for(Duration::from_secs(1));

    run(&p, "cp", &["-p", "backup/plan.txt", "plan.txt"]);
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["outline"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: plan.txt changed: ran 1 task(s)"
    );
    assert_eq!(p.read("outline.md"), "BUILD A BARN!\n");

    run(&p, "mv", &["backup/older.txt", "plan.txt"]);
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["outline"], "{lines:?}");
    assert_eq!(p.read("outline.md"), "BUILD A MILL!\n");
    assert_eq!(w.stop(), 130);
}

/// `touch -d` into the past with `--check mtime`: the same bytes, an older
/// mtime, which such a build counts as a change (make's rule).
#[test]
fn polling_sees_an_mtime_set_back_under_check_mtime() {
    let p = project(FileTime::from_unix_time(tomorrow(), 0));
    let mut w = Watcher::start(&p, &["--poll", "100ms", "--check", "mtime"]);
    w.no_rebuild_for(Duration::from_secs(1));

    run(&p, "touch", &["-d", "2020-01-01", "plan.txt"]);
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["outline"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: plan.txt changed: ran 1 task(s)"
    );
    assert_eq!(w.stop(), 130);
}

/// A `chmod` of a source, of the pipeline file or of an output moves only
/// its ctime: a build finds nothing to do after one (the up-to-date
/// certificate looks at the ctime only to compare content), so the watch
/// starts none. Both watchers used to: the poll compared ctimes, and the
/// kernel says `IN_ATTRIB` for a `chmod` as for a `touch`. An attribute
/// change that moves the mtime (`touch -d`) still counts, and so does a
/// file replaced by an older copy (`cp -p`).
fn a_chmod_alone_starts_no_build(args: &[&str]) {
    let p = Project::new(&format!(
        "{PIPELINE}\n[tasks.other]\ninputs = [\"other.txt\"]\noutputs = [\"other.md\"]\ncommand = \"cat other.txt > other.md\"\n"
    ));
    p.write("plan.txt", "build a house\n");
    p.write("other.txt", "other\n");
    p.write("backup/plan.txt", "build a barn!\n");
    let y2019 = FileTime::from_unix_time(1_546_300_800, 0);
    filetime::set_file_mtime(p.path("backup/plan.txt"), y2019).unwrap();
    let mut w = Watcher::start(&p, args);
    w.no_rebuild_for(Duration::from_secs(1));

    for file in ["plan.txt", "pipeline.toml", "outline.md"] {
        run(&p, "chmod", &["600", file]);
    }
    w.no_rebuild_for(Duration::from_secs(1));
    p.write("other.txt", "changed\n");
    let lines = w.expect("watch: ");
    assert_eq!(
        lines.last().unwrap(),
        "watch: other.txt changed: ran 1 task(s)",
        "{lines:?}"
    );

    // The same bytes, an older mtime: seen (the build restamps it).
    run(&p, "touch", &["-d", "2020-01-01", "plan.txt"]);
    let lines = w.expect("watch: ");
    assert_eq!(
        lines.last().unwrap(),
        "watch: plan.txt changed: ran 0 task(s)",
        "{lines:?}"
    );
    run(&p, "chmod", &["644", "plan.txt"]);
    w.no_rebuild_for(Duration::from_secs(1));
    run(&p, "cp", &["-p", "backup/plan.txt", "plan.txt"]);
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["outline"], "{lines:?}");
    assert_eq!(p.read("outline.md"), "BUILD A BARN!\n");
    assert_eq!(w.stop(), 130);
    p.run(&["build", "-n"]).ok().stderr_has("nothing to do");
}

#[test]
fn a_chmod_alone_starts_no_build_polling() {
    a_chmod_alone_starts_no_build(&["--poll", "100ms"]);
}

#[test]
fn a_chmod_alone_starts_no_build_inotify() {
    a_chmod_alone_starts_no_build(&[]);
}
