//! `planexe watch` of a pipeline whose fan-out's list a task makes: the
//! watch loads the fan-out as a placeholder, and its first build grows the
//! graph by the instances, which read and write files of their own.

use std::time::Duration;

use super::harness::Project;
use super::watch::{started, Watcher};

/// `list` makes the list; each instance of `per` reads a data file of its
/// own and writes into `per/`, which does not exist before the first
/// build.
const PIPELINE: &str = r#"
[tasks.list]
inputs = ["names.json"]
outputs = ["items.json"]
command = "cp names.json items.json"

[tasks.per]
foreach = { file = "items.json", key = "id" }
inputs = ["data/{{ key }}.txt"]
outputs = ["per/{{ key }}.txt"]
command = "cat {inputs} > {outputs}"
"#;

fn project(pipeline: &str) -> Project {
    let p = Project::new(pipeline);
    p.write("names.json", r#"[{"id": "a"}, {"id": "b"}]"#);
    p.write("data/a.txt", "alpha\n");
    p.write("data/b.txt", "beta\n");
    p
}

/// An instance's own input (`data/a.txt`, read by `per[a]`) is watched: a
/// `build` would re-run `per[a]` after its edit, and so does the watch.
/// The watch set used to be the graph's as loaded, where `per` is a
/// placeholder reading only its list, so the edit started nothing.
#[test]
fn an_edit_of_a_fanout_instances_input_rebuilds_the_instance() {
    let p = project(PIPELINE);
    let mut w = Watcher::start(&p, &[]);
    assert_eq!(
        started(&w.seen),
        ["list", "per[a]", "per[b]"],
        "{:?}",
        w.seen
    );
    w.no_rebuild_for(Duration::from_secs(1));

    p.write_at("data/a.txt", "alpha, edited\n", 2_000_000);
    w.expect_rebuild_of("data/a.txt", "per[a]");
    assert_eq!(p.read("per/a.txt"), "alpha, edited\n");
    assert_eq!(w.stop(), 130);
}

/// A glob's folder (`per/`, walked by `per/*.md`) that the first build
/// makes (for the instances' outputs) is the build's own doing: no build
/// follows. It used to be taken for a source file that was missing, whose
/// creation always counts: `watch: per changed: ran 0 task(s)`. A file
/// the glob matches, made by hand later, still counts.
#[test]
fn a_glob_folder_made_by_the_first_build_starts_no_build() {
    let gather = r#"
[tasks.gather]
inputs = ["names.json", "per/*.md"]
outputs = ["all.txt"]
command = "cat names.json per/*.md > all.txt 2>/dev/null; true"
"#;
    let p = project(&format!("{PIPELINE}{gather}"));
    let mut w = Watcher::start(&p, &[]);
    assert_eq!(
        started(&w.seen),
        ["gather", "list", "per[a]", "per[b]"],
        "{:?}",
        w.seen
    );
    w.no_rebuild_for(Duration::from_secs(3));

    p.write_at("per/notes.md", "notes\n", 2_000_000);
    w.expect_rebuild_of("per/notes.md", "gather");
    assert_eq!(w.stop(), 130);
}

/// An item added to a fan-out's list whose instance's input does not
/// exist yet (`data/c.txt`) makes the pipeline fail to resolve; making
/// that input is the fix, and builds. The watch used to look, meanwhile,
/// at the input's template (`data/{{ key }}.txt`) as a path of its own, so
/// making `data/c.txt` started nothing until something else changed.
#[test]
fn making_the_missing_input_of_a_new_fanout_instance_builds() {
    let p = project(
        r#"
[tasks.per]
foreach = { file = "names.json", key = "id" }
inputs = ["data/{{ key }}.txt"]
outputs = ["per/{{ key }}.txt"]
command = "cat {inputs} > {outputs}"
"#,
    );
    let mut w = Watcher::start(&p, &[]);
    assert_eq!(started(&w.seen), ["per[a]", "per[b]"], "{:?}", w.seen);
    w.no_rebuild_for(Duration::from_secs(1));

    p.write("names.json", r#"[{"id": "a"}, {"id": "b"}, {"id": "c"}]"#);
    let lines = w.expect("watch: names.json changed");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("data/c.txt") && l.contains("does not exist")),
        "{lines:?}"
    );
    assert!(lines
        .last()
        .unwrap()
        .ends_with("not built; waiting for a change that fixes it"));

    p.write("data/c.txt", "gamma\n");
    w.expect_rebuild_of("data/c.txt", "per[c]");
    assert_eq!(p.read("per/c.txt"), "gamma\n");
    assert_eq!(w.stop(), 130);
}

/// The same when the list is a task's output: the fan-out fails when the
/// build expands it (`data/c.txt` does not exist), and making
/// `data/c.txt` builds. The watch used to look only at the instances the
/// last expansion made, so it started nothing.
#[test]
fn making_the_missing_input_of_an_instance_a_build_could_not_expand_builds() {
    let p = project(PIPELINE);
    let mut w = Watcher::start(&p, &[]);
    assert_eq!(
        started(&w.seen),
        ["list", "per[a]", "per[b]"],
        "{:?}",
        w.seen
    );
    w.no_rebuild_for(Duration::from_secs(1));

    p.write("names.json", r#"[{"id": "a"}, {"id": "b"}, {"id": "c"}]"#);
    let lines = w.expect("watch: names.json changed");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("FAILED per:") && l.contains("data/c.txt")),
        "{lines:?}"
    );
    assert!(lines.last().unwrap().ends_with("1 failed"), "{lines:?}");
    w.no_rebuild_for(Duration::from_secs(1));

    p.write("data/c.txt", "gamma\n");
    w.expect_rebuild_of("data/c.txt", "per[c]");
    assert_eq!(p.read("per/c.txt"), "gamma\n");
    assert_eq!(w.stop(), 130);
}

/// `list` makes the list of `per`, which `gather` reads.
const GATHERED: &str = r#"
[tasks.list]
inputs = ["names.json"]
outputs = ["items.json"]
command = "cp names.json items.json"

[tasks.per]
foreach = { file = "items.json", key = "id" }
outputs = ["per/{{ key }}.txt"]
command = "mkdir -p per && echo {{ key }} > per/{{ key }}.txt"

[tasks.gather]
inputs = ["per"]
outputs = ["all.txt"]
command = "cat {inputs} > all.txt"
"#;

/// A watch of targets that read an expanded fan-out watches the source of
/// its list's producer, and the list itself: an edit of either builds, as
/// `planexe build` of the targets would. Once the fan-out was expanded,
/// its instances did not depend on the list's producer, so the targets'
/// closure left it out: the edit started nothing, though `build -n
/// gather` said `list: input names.json changed`.
fn a_watch_of_targets_sees_the_source_of_a_fanouts_list(targets: &[&str]) {
    let p = Project::new(GATHERED);
    p.write("names.json", r#"[{"id": "a"}, {"id": "b"}]"#);
    let mut w = Watcher::start(&p, targets);
    assert_eq!(p.read("per/b.txt"), "b\n");
    w.no_rebuild_for(Duration::from_secs(1));

    p.write_at(
        "names.json",
        r#"[{"id": "a"}, {"id": "b"}, {"id": "c"}]"#,
        2_000_000,
    );
    let lines = w.expect("watch: ");
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("watch: names.json changed: ran "),
        "{lines:?}"
    );
    assert_eq!(p.read("per/c.txt"), "c\n");
    w.no_rebuild_for(Duration::from_secs(1));

    // The list edited by hand: kept, and what reads it built.
    p.write_at("items.json", r#"[{"id": "a"}, {"id": "d"}]"#, 3_000_000);
    let lines = w.expect("watch: ");
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("watch: items.json changed: ran "),
        "{lines:?}"
    );
    assert_eq!(p.read("per/d.txt"), "d\n");
    assert_eq!(w.stop(), 130);
}

#[test]
fn a_watch_of_a_gatherer_sees_the_source_of_a_fanouts_list() {
    a_watch_of_targets_sees_the_source_of_a_fanouts_list(&["gather"]);
}

#[test]
fn a_watch_of_a_fanout_sees_the_source_of_its_list() {
    a_watch_of_targets_sees_the_source_of_a_fanouts_list(&["per"]);
}

/// A build of targets that read an expanded fan-out considers its list's
/// producer, as a build of everything does: both count the same tasks up
/// to date (`build gather` used to count one fewer).
#[test]
fn a_build_of_a_gatherer_counts_the_producer_of_the_fanouts_list() {
    let p = Project::new(GATHERED);
    p.write("names.json", r#"[{"id": "a"}, {"id": "b"}]"#);
    p.build().ok();
    p.build()
        .ok()
        .stderr_has("nothing to do: 4 task(s) up to date");
    for target in ["gather", "all.txt", "per"] {
        let expected = if target == "per" { 3 } else { 4 };
        p.run(&["build", target])
            .ok()
            .stderr_has(&format!("nothing to do: {expected} task(s) up to date"));
    }
    p.run(&["build", "per[a]"])
        .ok()
        .stderr_has("nothing to do: 2 task(s) up to date");
}
