//! `planexe watch` and the symlinks among a pipeline's inputs and
//! outputs. A build stamps a file through its link, from the file it leads
//! to: editing that file, wherever in the run directory it is, or
//! re-pointing the link, rebuilds exactly what a `planexe build` would
//! run then. (A source that is a symlink: `watch_use`.)

use std::os::unix::fs::symlink;
use std::time::Duration;

use super::harness::Project;
use super::watch::{started, Watcher};

/// `t` writes its output as a symlink to a file in another folder (and
/// fails while `plan.txt` says `bad`); `report` reads the output.
const LINKED: &str = r#"
[tasks.t]
inputs = ["plan.txt"]
outputs = ["out.txt"]
command = "if grep -q bad plan.txt; then exit 1; fi; mkdir -p store; cp plan.txt store/real.txt; ln -sfn store/real.txt out.txt"

[tasks.report]
inputs = ["out.txt"]
outputs = ["report.md"]
command = "tr a-z A-Z < out.txt > report.md"
"#;

/// Re-points the symlink `link` of `p` at `target` in one step (a new
/// link renamed over the old one), as `ln -sfn` would if it were atomic.
fn repoint(p: &Project, link: &str, target: &str) {
    let new = p.path(&format!("{link}.new"));
    symlink(target, &new).unwrap();
    std::fs::rename(&new, p.path(link)).unwrap();
}

/// Editing the file an output's symlink leads to is an edit of the output
/// by hand: kept, and what reads it rebuilt, as `planexe build` does. It
/// used to go unseen (only the link's folder was watched) while `build
/// -n` said `report: input out.txt changed`. The task's own writes to
/// that file start nothing. A link re-pointed at a file the record
/// matches (same size and mtime) is nothing for a build to do, but what it
/// leads to now is watched from then on, and what it led to before is no
/// longer anything to the build.
fn editing_the_file_an_output_symlink_leads_to_rebuilds_what_reads_it(args: &[&str]) {
    let p = Project::new(LINKED);
    p.write("plan.txt", "one\n");
    let mut w = Watcher::start(&p, args);
    w.no_rebuild_for(Duration::from_secs(2));

    std::fs::write(p.path("store/real.txt"), "two\n").unwrap();
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["report"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: store/real.txt changed: ran 1 task(s)"
    );
    assert_eq!(p.read("report.md"), "TWO\n");
    w.no_rebuild_for(Duration::from_secs(1));

    // A copy with the same size and mtime: as the record says.
    std::fs::copy(p.path("store/real.txt"), p.path("store/copy.txt")).unwrap();
    let mtime = std::fs::metadata(p.path("store/real.txt"))
        .unwrap()
        .modified()
        .unwrap();
    let copy = std::fs::File::options()
        .write(true)
        .open(p.path("store/copy.txt"))
        .unwrap();
    copy.set_modified(mtime).unwrap();
    drop(copy);
    repoint(&p, "out.txt", "store/copy.txt");
    w.no_rebuild_for(Duration::from_secs(1));
    std::fs::write(p.path("store/copy.txt"), "three\n").unwrap();
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["report"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: store/copy.txt changed: ran 1 task(s)"
    );
    assert_eq!(p.read("report.md"), "THREE\n");
    std::fs::write(p.path("store/real.txt"), "four\n").unwrap();
    w.no_rebuild_for(Duration::from_secs(1));
    assert_eq!(w.stop(), 130);
    p.run(&["build", "-n"]).ok().stderr_has("nothing to do");
}

#[test]
fn editing_the_file_an_output_symlink_leads_to_rebuilds_what_reads_it_inotify() {
    editing_the_file_an_output_symlink_leads_to_rebuilds_what_reads_it(&[]);
}

#[test]
fn editing_the_file_an_output_symlink_leads_to_rebuilds_what_reads_it_polling() {
    editing_the_file_an_output_symlink_leads_to_rebuilds_what_reads_it(&["--poll", "100ms"]);
}

/// An output's symlink re-pointed at another file is an edit of the
/// output, and the file it leads to now is watched: editing it rebuilds
/// what reads the output.
#[test]
fn an_output_symlink_re_pointed_is_followed_to_its_new_file() {
    let p = Project::new(LINKED);
    p.write("plan.txt", "one\n");
    p.write("elsewhere/other.txt", "other\n");
    let mut w = Watcher::start(&p, &[]);
    w.no_rebuild_for(Duration::from_secs(1));
    repoint(&p, "out.txt", "elsewhere/other.txt");
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["report"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: out.txt changed: ran 1 task(s)"
    );
    assert_eq!(p.read("report.md"), "OTHER\n");
    w.no_rebuild_for(Duration::from_secs(1));
    std::fs::write(p.path("elsewhere/other.txt"), "edited\n").unwrap();
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["report"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: elsewhere/other.txt changed: ran 1 task(s)"
    );
    assert_eq!(p.read("report.md"), "EDITED\n");
    assert_eq!(w.stop(), 130);
}

/// What a failed build leaves of its task's outputs is its own; an edit
/// of the file an output's symlink leads to, after, is the user's, and
/// builds (the task runs again, as `planexe build` would run it). It used
/// to go unseen, as for a task that succeeded, and the link itself was
/// all the watch compared.
#[test]
fn editing_the_file_a_failed_tasks_output_symlink_leads_to_builds() {
    let p = Project::new(LINKED);
    p.write("plan.txt", "one\n");
    let mut w = Watcher::start(&p, &[]);
    std::fs::write(p.path("plan.txt"), "bad\n").unwrap();
    let lines = w.expect("watch: plan.txt changed");
    assert!(
        lines.last().unwrap().ends_with("ran 1 task(s), 1 failed"),
        "{lines:?}"
    );
    w.no_rebuild_for(Duration::from_secs(2));
    std::fs::write(p.path("store/real.txt"), "mine\n").unwrap();
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["t"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: store/real.txt changed: ran 1 task(s), 1 failed"
    );
    assert_eq!(w.stop(), 130);
}

/// A source's symlink re-pointed at a file no newer than the one it led
/// to, with `--poll`: the link itself is newer, and the build reads
/// another file. The poll looked through the link, saw no newer mtime and
/// said nothing (inotify sees the link replaced), while `build -n` said
/// `input plan.txt changed`.
#[test]
fn polling_sees_a_source_symlink_re_pointed_at_an_older_file() {
    let p = Project::new(
        r#"
[tasks.outline]
inputs = ["plan.txt"]
outputs = ["outline.md"]
command = "tr a-z A-Z < plan.txt > outline.md"
"#,
    );
    // Every file and the link as old as each other.
    p.write("data/plan.txt", "build a house\n");
    p.write("data/other.txt", "build a barn\n");
    symlink("data/plan.txt", p.path("plan.txt")).unwrap();
    let old = filetime::FileTime::from_unix_time(1_000_000, 0);
    filetime::set_symlink_file_times(p.path("plan.txt"), old, old).unwrap();
    let mut w = Watcher::start(&p, &["--poll", "100ms"]);
    w.no_rebuild_for(Duration::from_secs(1));
    repoint(&p, "plan.txt", "data/other.txt");
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["outline"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: plan.txt changed: ran 1 task(s)"
    );
    assert_eq!(p.read("outline.md"), "BUILD A BARN\n");
    // The file it leads to now is watched.
    std::fs::write(p.path("data/other.txt"), "build a mill\n").unwrap();
    let lines = w.expect("watch: data/other.txt changed");
    assert_eq!(started(&lines), ["outline"], "{lines:?}");
    assert_eq!(p.read("outline.md"), "BUILD A MILL\n");
    assert_eq!(w.stop(), 130);
}

/// `b` writes its output as a symlink to `a`'s output (after `a`, without
/// reading it); `c` reads `b`'s.
const LINKED_TO_ANOTHER: &str = r#"
[tasks.a]
inputs = ["plan.txt"]
outputs = ["a.txt"]
command = "cp plan.txt a.txt"

[tasks.b]
inputs = ["seed.txt"]
outputs = ["b.txt"]
after = ["a"]
command = "ln -sfn a.txt b.txt"

[tasks.c]
inputs = ["b.txt"]
outputs = ["c.txt"]
command = "tr a-z A-Z < b.txt > c.txt"
"#;

/// An output that is a symlink to another task's output changes when that
/// task rebuilds the file: `b.txt` is then not as its record says, and
/// `planexe build` keeps it as edited by hand and re-runs `c`, so the
/// watch builds once more. The rebuild's write to `a.txt` is as `a`'s
/// record says, and was taken for the build's own and nothing else (`b`'s
/// link was not looked at: `a.txt` is an output itself), leaving `c`
/// stale. Editing `a.txt` by hand rebuilds `c` too.
fn an_output_linked_to_another_tasks_output_follows_its_rebuilds(args: &[&str]) {
    let p = Project::new(LINKED_TO_ANOTHER);
    p.write("plan.txt", "one\n");
    p.write("seed.txt", "seed\n");
    let mut w = Watcher::start(&p, args);
    w.no_rebuild_for(Duration::from_secs(1));

    std::fs::write(p.path("plan.txt"), "two\n").unwrap();
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["a"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: plan.txt changed: ran 1 task(s)"
    );
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["c"], "{lines:?}");
    assert_eq!(lines.last().unwrap(), "watch: a.txt changed: ran 1 task(s)");
    assert_eq!(p.read("c.txt"), "TWO\n");
    w.no_rebuild_for(Duration::from_secs(1));

    std::fs::write(p.path("a.txt"), "by hand\n").unwrap();
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["c"], "{lines:?}");
    assert_eq!(lines.last().unwrap(), "watch: a.txt changed: ran 1 task(s)");
    assert_eq!(p.read("c.txt"), "BY HAND\n");
    w.no_rebuild_for(Duration::from_secs(1));
    assert_eq!(w.stop(), 130);
    p.run(&["build", "-n"]).ok().stderr_has("nothing to do");
}

#[test]
fn an_output_linked_to_another_tasks_output_follows_its_rebuilds_inotify() {
    an_output_linked_to_another_tasks_output_follows_its_rebuilds(&[]);
}

#[test]
fn an_output_linked_to_another_tasks_output_follows_its_rebuilds_polling() {
    an_output_linked_to_another_tasks_output_follows_its_rebuilds(&["--poll", "100ms"]);
}
