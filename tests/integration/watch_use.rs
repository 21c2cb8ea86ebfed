//! `planexe watch` in real use: what a user does to the files of a run
//! while it watches them.

use std::time::Duration;

use super::harness::Project;
use super::watch::{rebuilds, started, Watcher};

const PIPELINE: &str = r#"
[tasks.outline]
inputs = ["plan.txt"]
outputs = ["outline.md"]
command = "tr a-z A-Z < plan.txt > outline.md"

[tasks.report]
inputs = ["outline.md"]
outputs = ["report.md"]
command = "cat outline.md > report.md"
"#;

/// A source that is a symlink (inside the run directory, as resolution
/// requires): editing the file it leads to changes what the build reads,
/// and rebuilds. It used to go unseen (only the link's folder was
/// watched) while `build -n` said `input plan.txt changed`.
#[test]
fn editing_the_file_a_source_symlink_leads_to_rebuilds() {
    let p = Project::new(PIPELINE);
    p.write("data/plan.txt", "build a house\n");
    std::os::unix::fs::symlink("data/plan.txt", p.path("plan.txt")).unwrap();
    let mut w = Watcher::start(&p, &[]);
    let after = w.quiet_for(Duration::from_secs(1));
    assert_eq!(rebuilds(&after), 0, "{after:?}");

    std::fs::write(p.path("data/plan.txt"), "build a shed\n").unwrap();
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["outline", "report"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: data/plan.txt changed: ran 2 task(s)"
    );
    assert_eq!(p.read("report.md"), "BUILD A SHED\n");

    // The link pointed elsewhere: a change of the link itself.
    p.write("data/other.txt", "build a barn\n");
    w.quiet_for(Duration::from_secs(1));
    std::fs::remove_file(p.path("plan.txt")).unwrap();
    std::os::unix::fs::symlink("data/other.txt", p.path("plan.txt")).unwrap();
    let lines = w.expect("watch: plan.txt changed");
    assert_eq!(started(&lines), ["outline", "report"], "{lines:?}");
    // ...and from then on its new target is watched.
    w.quiet_for(Duration::from_secs(1));
    std::fs::write(p.path("data/other.txt"), "build a mill\n").unwrap();
    let lines = w.expect("watch: data/other.txt changed");
    assert_eq!(started(&lines), ["outline", "report"], "{lines:?}");
    assert_eq!(p.read("report.md"), "BUILD A MILL\n");
    assert_eq!(w.stop(), 130);
}
