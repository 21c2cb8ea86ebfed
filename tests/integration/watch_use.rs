//! `planexe watch` in real use: what a user does to the files of a run
//! while it watches them.

use std::time::Duration;

use super::harness::Project;
use super::watch::{started, Watcher};

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
    w.no_rebuild_for(Duration::from_secs(1));

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

/// A pipeline that parses but does not resolve because an input it names
/// does not exist yet: creating that file is the fix, and it builds. It
/// used to go unseen (while the pipeline did not load, the watch kept the
/// sources of the last one that did, which did not name the file; at
/// first, only the pipeline file), so the watch went on `waiting for a
/// change that fixes it` after the fix.
#[test]
fn creating_the_missing_input_a_broken_pipeline_names_builds() {
    let p = Project::new(PIPELINE);
    p.write("plan.txt", "build a house\n");
    let mut w = Watcher::start(&p, &[]);
    w.quiet_for(Duration::from_secs(1));
    let extra = "\n[tasks.extra]\ninputs = [\"notes/extra.txt\"]\noutputs = [\"extra.md\"]\ncommand = \"cp notes/extra.txt extra.md\"\n";
    p.write("pipeline.toml", &format!("{PIPELINE}{extra}"));
    let lines = w.expect("watch: pipeline.toml changed: not built");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("input `notes/extra.txt` of task `extra` does not exist")),
        "{lines:?}"
    );
    // Its folder made, then the file in it.
    p.write("notes/extra.txt", "more\n");
    w.expect_rebuild_of("notes, notes/extra.txt", "extra");
    assert_eq!(p.read("extra.md"), "more\n");
    assert_eq!(w.stop(), 130);
}

/// The same at the first load: the watch waits for the fix, and creating
/// the missing input is one.
#[test]
fn a_watch_started_on_a_pipeline_missing_an_input_builds_once_it_is_made() {
    let p = Project::new(PIPELINE);
    let mut w = Watcher::start(&p, &[]);
    assert!(
        w.seen
            .iter()
            .any(|l| l == "watch: first build: not built; waiting for a change that fixes it"),
        "{:?}",
        w.seen
    );
    p.write("plan.txt", "build a house\n");
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["outline", "report"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: plan.txt changed: ran 2 task(s)"
    );
    assert_eq!(w.stop(), 130);
}

/// A pipeline edited during the watch into one with a new warning (a glob
/// that leaves out another task's output) says it, once: later builds of
/// the same pipeline do not repeat it. It used to be said only at the
/// watch's first load.
#[test]
fn an_edit_that_brings_a_warning_says_it_once() {
    let p = Project::new(PIPELINE);
    p.write("plan.txt", "build a house\n");
    let mut w = Watcher::start(&p, &[]);
    w.quiet_for(Duration::from_secs(1));
    let glob = "\n[tasks.all]\ninputs = [\"*.md\"]\noutputs = [\"all.txt\"]\ncommand = \"cat *.md > all.txt\"\n";
    p.write("pipeline.toml", &format!("{PIPELINE}{glob}"));
    let lines = w.expect("watch: pipeline.toml changed");
    let warned = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.starts_with("warning: task `all`: input glob `*.md` leaves out"))
            .count()
    };
    // One for each task whose output it leaves out.
    assert_eq!(warned(&lines), 2, "{lines:?}");
    w.quiet_for(Duration::from_secs(1));
    p.write("plan.txt", "build a shed\n");
    let lines = w.expect("watch: plan.txt changed");
    assert_eq!(warned(&lines), 0, "{lines:?}");
    assert_eq!(w.stop(), 130);
}

/// A glob that leaves out a fan-out's outputs, whose list a task makes:
/// every build warns of it before it starts, and a watch says it
/// once, not again at each rebuild; again only when an edit brings it
/// back after a build without it. It used to be said at every rebuild.
#[test]
fn a_glob_leaving_out_a_fan_outs_outputs_is_warned_of_once_per_watch() {
    let fanout = r#"
[tasks.list]
outputs = ["list.json"]
command = "echo '[\"a\", \"b\"]' > list.json"
[tasks.per]
foreach = { file = "list.json" }
outputs = ["per/{{ item }}.txt"]
command = "echo {{ item }} > per/{{ item }}.txt"
[tasks.other]
inputs = ["other.txt"]
outputs = ["other.md"]
command = "cat other.txt > other.md"
"#;
    let globbed = "[tasks.gather]\ninputs = [\"per/*.txt\"]\noutputs = [\"all.txt\"]\ncommand = \"cat per/*.txt > all.txt 2>/dev/null; echo end >> all.txt\"\n";
    let named = "[tasks.gather]\ninputs = [\"per\"]\noutputs = [\"all.txt\"]\ncommand = \"cat per/*.txt > all.txt\"\n";
    let p = Project::new(&format!("{fanout}{globbed}"));
    p.write("other.txt", "other\n");
    std::fs::create_dir(p.path("per")).unwrap();
    let warned = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.starts_with("warning: task `gather`: input glob `per/*.txt` may match"))
            .count()
    };
    let mut w = Watcher::start(&p, &[]);
    assert_eq!(warned(&w.seen), 1, "{:?}", w.seen);
    for round in 1..=2 {
        w.quiet_for(Duration::from_secs(1));
        p.write_at(
            "other.txt",
            &format!("other, edit {round}\n"),
            2_000_000 + round,
        );
        let lines = w.expect("watch: other.txt changed");
        assert_eq!(started(&lines), ["other"], "{lines:?}");
        assert_eq!(warned(&lines), 0, "{lines:?}");
    }
    // Gone with an edit, then back with another: said again.
    w.quiet_for(Duration::from_secs(1));
    p.write("pipeline.toml", &format!("{fanout}{named}"));
    let lines = w.expect("watch: pipeline.toml changed");
    assert_eq!(warned(&lines), 0, "{lines:?}");
    w.quiet_for(Duration::from_secs(1));
    p.write("pipeline.toml", &format!("{fanout}{globbed}"));
    let lines = w.expect("watch: pipeline.toml changed");
    assert_eq!(warned(&lines), 1, "{lines:?}");
    assert_eq!(w.stop(), 130);
}

/// `planexe watch TARGET` watches what TARGET's build reads (the sources
/// and outputs of TARGET and the tasks it depends on, and the pipeline
/// file): an edit of a file only another task reads or writes starts
/// nothing. It used to watch the whole pipeline, and such an edit started
/// a build of TARGET that ran nothing (`watch: other.txt changed: ran 0
/// task(s)`).
#[test]
fn a_watch_of_a_target_watches_only_what_its_build_reads() {
    let other = "\n[tasks.other]\ninputs = [\"other.txt\"]\noutputs = [\"other.md\"]\ncommand = \"cat other.txt > other.md\"\n";
    let p = Project::new(&format!("{PIPELINE}{other}"));
    p.write("plan.txt", "build a house\n");
    p.write("other.txt", "other\n");
    let mut w = Watcher::start(&p, &["report"]);
    assert_eq!(started(&w.seen), ["outline", "report"], "{:?}", w.seen);
    // pipeline.toml, plan.txt, outline.md, report.md.
    assert!(
        w.seen.last().unwrap().starts_with("watching 4 file(s) "),
        "{:?}",
        w.seen
    );
    // Past the settle time, when an edit of an output would count.
    w.no_rebuild_for(Duration::from_secs(1));
    p.write_at("other.txt", "other, edited\n", 2_000_000);
    p.write_at("other.md", "by hand\n", 2_000_000);
    w.no_rebuild_for(Duration::from_secs(2));
    p.write_at("plan.txt", "build a shed\n", 2_000_000);
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["outline", "report"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: plan.txt changed: ran 2 task(s)"
    );
    assert_eq!(p.read("report.md"), "BUILD A SHED\n");
    assert_eq!(w.stop(), 130);
}

/// A folder of outputs removed while a build runs (`rm -rf out` during
/// it): its events come while the build writes, but the outputs are not
/// as the build left them, so they count, and the next build restores
/// them. They used to be taken for the build's own writes, and the
/// outputs stayed missing until something else changed.
#[test]
fn outputs_removed_while_a_build_runs_are_rebuilt_after_it() {
    let p = Project::new(
        r#"
[tasks.a]
inputs = ["plan.txt"]
outputs = ["out/a.md"]
command = "tr a-z A-Z < plan.txt > out/a.md"

[tasks.held]
inputs = ["plan.txt"]
outputs = ["held.md"]
command = "while [ ! -e go ]; do sleep 0.02; done; rm go; cat plan.txt > held.md"
"#,
    );
    p.write("plan.txt", "build a house\n");
    // Lets the first build's `held` end.
    p.write("go", "");
    let mut w = Watcher::start(&p, &[]);
    w.no_rebuild_for(Duration::from_secs(1));
    p.write_at("plan.txt", "build a shed\n", 2_000_000);
    // `a` is done, `held` holds the build until `go` is made.
    w.expect("done   a");
    std::fs::remove_dir_all(p.path("out")).unwrap();
    p.write("go", "");
    let lines = w.expect("watch: ");
    assert_eq!(
        lines.last().unwrap(),
        "watch: plan.txt changed: ran 2 task(s)"
    );
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["a"], "{lines:?}");
    let line = lines.last().unwrap();
    assert!(
        line.contains("out/a.md") && line.ends_with(" changed: ran 1 task(s)"),
        "{lines:?}"
    );
    assert_eq!(p.read("out/a.md"), "BUILD A SHED\n");
    // Its own writes start nothing.
    w.no_rebuild_for(Duration::from_secs(2));
    assert_eq!(w.stop(), 130);
}

/// `--poll`: a watched folder removed is watched through its parent until
/// it is made again, as with inotify, and the removal is a change. A poll
/// used to say `error: cannot watch: ... No such file or directory` at
/// every interval while the folder was gone (with a hint to use `--poll`).
#[test]
fn polling_a_removed_folder_watches_its_parent_without_errors() {
    let p = Project::new(
        "[tasks.all]\ninputs = [\"notes/*.md\"]\noutputs = [\"all.md\"]\ncommand = \"cat notes/*.md > all.md 2>/dev/null; echo end >> all.md\"\n",
    );
    p.write("notes/a.md", "a\n");
    let mut w = Watcher::start(&p, &["--poll", "50ms"]);
    w.no_rebuild_for(Duration::from_secs(1));

    std::fs::remove_dir_all(p.path("notes")).unwrap();
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["all"], "{lines:?}");
    assert_eq!(p.read("all.md"), "end\n");
    // Many polls while it is gone.
    w.no_rebuild_for(Duration::from_secs(1));
    p.write_at("notes/b.md", "b\n", 2_000_000);
    let lines = w.expect("watch: notes");
    assert_eq!(started(&lines), ["all"], "{lines:?}");
    assert_eq!(p.read("all.md"), "b\nend\n");
    let errors: Vec<&String> = w.seen.iter().filter(|l| l.contains("error")).collect();
    assert!(errors.is_empty(), "{:?}", w.seen);
    assert_eq!(w.stop(), 130);
}

/// The run directory itself moved away and back: the lines name it by its
/// path (they used to name it by an empty string: `watch: , plan.txt
/// changed`).
#[test]
fn a_run_directory_moved_away_and_back_is_named_by_its_path() {
    let p = Project::new("");
    p.write(
        "run/pipeline.toml",
        r#"
[tasks.outline]
inputs = ["plan.txt"]
outputs = ["outline.md"]
command = "tr a-z A-Z < plan.txt > outline.md"
"#,
    );
    p.write("run/plan.txt", "one\n");
    let mut w = Watcher::start(&p, &["-C", "run"]);
    w.no_rebuild_for(Duration::from_secs(1));
    let run = p.path("run").canonicalize().unwrap();
    let away = p.path("away");
    std::fs::rename(&run, &away).unwrap();
    let lines = w.expect("watch: ");
    let shown = run.display().to_string();
    assert!(
        lines.iter().any(|l| l
            == &format!(
                "error: the run directory {shown} was moved or removed while it was watched"
            )),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("hint: the watch goes on and builds when the folder is back")),
        "{lines:?}"
    );
    let last = lines.last().unwrap();
    assert!(last.starts_with(&format!("watch: {shown}")), "{last}");
    assert!(
        last.ends_with("not built; waiting for a change that fixes it"),
        "{last}"
    );
    w.no_rebuild_for(Duration::from_secs(1));

    std::fs::rename(&away, &run).unwrap();
    let lines = w.expect("watch: ");
    let last = lines.last().unwrap();
    assert!(last.starts_with(&format!("watch: {shown}")), "{last}");
    assert!(last.ends_with("ran 0 task(s)"), "{last}");
    assert_eq!(w.stop(), 130);
}

/// The run directory a watch runs in (no `-C`) moved away, then back: the
/// watch says the run directory was moved or removed and what to do, and
/// builds when it is back. (It used to follow the folder to its new place
/// and say `this run directory was built with .../pipeline.toml, which no
/// longer exists`; removed, `.: No such file or directory`.)
#[test]
fn the_current_run_directory_moved_away_is_said_to_be_moved() {
    let p = Project::new(PIPELINE);
    p.write("plan.txt", "one\n");
    let mut w = Watcher::start(&p, &[]);
    w.no_rebuild_for(Duration::from_secs(1));
    let run = p.root().canonicalize().unwrap();
    let away = run.with_extension("away");
    std::fs::rename(&run, &away).unwrap();
    std::fs::write(away.join("plan.txt"), "two\n").unwrap();
    let lines = w.expect("watch: ");
    let shown = run.display().to_string();
    let said =
        format!("error: the run directory {shown} was moved or removed while it was watched");
    let back = std::fs::rename(&away, &run);
    assert!(lines.contains(&said), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("no longer exists")),
        "{lines:?}"
    );
    back.unwrap();
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["outline", "report"], "{lines:?}");
    assert_eq!(p.read("report.md"), "TWO\n");
    assert_eq!(w.stop(), 130);
}

/// A task taken out of the pipeline whose outputs stay on disk: every
/// build warns of it, and a watch says it once, not again at each
/// rebuild (it used to, at every one).
#[test]
fn a_task_taken_out_of_the_pipeline_is_warned_of_once_per_watch() {
    let extra = "\n[tasks.extra]\ninputs = [\"plan.txt\"]\noutputs = [\"extra.txt\"]\ncommand = \"cp plan.txt extra.txt\"\n";
    let p = Project::new(&format!("{PIPELINE}{extra}"));
    p.write("plan.txt", "build a house\n");
    let mut w = Watcher::start(&p, &[]);
    w.no_rebuild_for(Duration::from_secs(1));
    p.write_at("pipeline.toml", PIPELINE, 2_000_000);
    let lines = w.expect("watch: pipeline.toml changed");
    let warned = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.starts_with("warning: task extra is no longer in the pipeline"))
            .count()
    };
    assert_eq!(warned(&lines), 1, "{lines:?}");
    w.no_rebuild_for(Duration::from_secs(1));
    p.write_at("plan.txt", "build a shed\n", 3_000_000);
    let lines = w.expect("watch: plan.txt changed");
    assert_eq!(started(&lines), ["outline", "report"], "{lines:?}");
    assert_eq!(warned(&lines), 0, "{lines:?}");
    assert_eq!(w.stop(), 130);
}
