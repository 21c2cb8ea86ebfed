//! `planexe watch` telling a build's own writes from the user's: what a
//! build writes (its tasks' outputs, the folders it makes for them, and
//! `.planexe/`) never starts the next build, whether the build succeeded
//! or failed; anything else that changes on disk while a build runs does,
//! once the build is over.

use std::time::Duration;

use super::harness::Project;
use super::watch::{started, Watcher};

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
