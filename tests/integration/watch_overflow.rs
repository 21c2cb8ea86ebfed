//! `planexe watch` when the kernel's event queue overflows: the events lost
//! are changes like any other, so the watch watches its folders afresh and
//! builds, and the build finds what is stale by itself.
//!
//! A real overflow without touching the system's settings: the watch is
//! stopped (SIGSTOP, and seen stopped in /proc before the test acts:
//! `Watcher::paused`), so nothing reads its inotify queue, and more distinct
//! events than the queue holds (`fs.inotify.max_queued_events`, readable by
//! anyone) are made in a folder it watches; what happens after that is
//! lost. SIGCONT lets the watch read the overflow.

use std::io::Write;
use std::time::Duration;

use super::harness::Project;
use super::watch::{started, Watcher};

/// Fills the inotify queue of every watch of `p`'s run directory: more
/// distinct events than it holds (two files written in turn, so the kernel
/// cannot merge one event into the one before).
fn overflow(p: &Project) {
    let limit: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .expect("read fs.inotify.max_queued_events")
        .trim()
        .parse()
        .expect("a number");
    let open = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p.path(name))
            .expect("open")
    };
    let (mut a, mut b) = (open("scratch-a"), open("scratch-b"));
    for _ in 0..limit {
        a.write_all(b"a").unwrap();
        b.write_all(b"b").unwrap();
    }
}

/// Changes made after the queue overflowed have no events: they used to
/// go unbuilt until the next change (the overflow event, notify's
/// `Rescan`, has no path, and was dropped). A folder removed and made
/// again meanwhile is watched again.
#[test]
fn changes_lost_to_a_queue_overflow_are_built_and_their_folders_watched_again() {
    let p = Project::new(
        r#"
[tasks.outline]
inputs = ["plan.txt"]
outputs = ["outline.md"]
command = "tr a-z A-Z < plan.txt > outline.md"

[tasks.report]
inputs = ["notes/*.md"]
outputs = ["report.md"]
command = "cat notes/*.md > report.md"
"#,
    );
    p.write("plan.txt", "build a house\n");
    p.write("notes/a.md", "a\n");
    let mut w = Watcher::start(&p, &[]);
    // Past the settle time of the first build.
    w.no_rebuild_for(Duration::from_secs(1));

    // Stopped, and seen stopped before anything changes: a watch still
    // reading would drain the queue and see every event.
    w.paused(|| {
        overflow(&p);
        // After the overflow: no event says any of this.
        std::fs::write(p.path("plan.txt"), "build a shed\n").unwrap();
        std::fs::remove_dir_all(p.path("notes")).unwrap();
        std::fs::create_dir(p.path("notes")).unwrap();
        std::fs::write(p.path("notes/a.md"), "x\n").unwrap();
    });

    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["outline", "report"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: events were lost (the system's queue overflowed); checked everything: ran 2 task(s)"
    );
    assert_eq!(p.read("outline.md"), "BUILD A SHED\n");
    assert_eq!(p.read("report.md"), "x\n");

    // The new notes folder is watched.
    w.quiet_for(Duration::from_secs(1));
    std::fs::write(p.path("notes/b.md"), "b\n").unwrap();
    let lines = w.expect("watch: notes/b.md changed");
    assert_eq!(started(&lines), ["report"], "{lines:?}");
    assert_eq!(p.read("report.md"), "x\nb\n");
    assert_eq!(w.stop(), 130);
}
