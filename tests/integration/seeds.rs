//! The files a run was given when it was made (`planexe new --input`):
//! recorded in `.planexe/origin.json`, and never written over by a build,
//! however the pipeline changed since (a task, or a fan-out's instance
//! that appears while the build runs, naming one as its output).

use crate::harness::*;

/// Reads the plan and a note the run is given.
const READS_NOTE: &str = r#"
[tasks.brief]
inputs = ["plan.txt", "notes/x.md"]
outputs = ["brief.txt"]
command = "cat plan.txt notes/x.md > brief.txt"
"#;

/// [`READS_NOTE`] edited after the run was made: a task now writes the
/// note the run was given.
const WRITES_NOTE: &str = r#"
[tasks.draft]
inputs = ["plan.txt"]
outputs = ["notes/x.md"]
command = "echo drafted > notes/x.md"

[tasks.brief]
inputs = ["plan.txt", "notes/x.md"]
outputs = ["brief.txt"]
command = "cat plan.txt notes/x.md > brief.txt"
"#;

/// The note the run is given.
const NOTE: &str = "# mine\nkeep me\n";

/// A project with [`READS_NOTE`] and a run `runs/a` made with `--input
/// notes/x.md` (and `more`, each with its text).
fn made(more: &[(&str, &str)]) -> Project {
    let p = Project::new(READS_NOTE);
    p.write("notes/x.md", NOTE);
    let mut args = vec![
        "new",
        "runs/a",
        "--plan",
        "A shed.",
        "--input",
        "notes/x.md",
    ];
    for (path, text) in more {
        p.write(path, text);
        args.extend(["--input", path]);
    }
    p.run(&args).ok();
    p
}

#[test]
fn new_records_the_files_it_was_given_in_origin_json() {
    let p = made(&[("data/a.csv", "a,1\n")]);
    let origin: serde_json::Value =
        serde_json::from_str(&p.read("runs/a/.planexe/origin.json")).unwrap();
    let hash = |text: &str| blake3::hash(text.as_bytes()).to_hex().to_string();
    assert_eq!(
        origin["inputs"],
        serde_json::json!([
            {"path": "data/a.csv", "blake3": hash("a,1\n"), "size": 4},
            {"path": "notes/x.md", "blake3": hash(NOTE), "size": NOTE.len()},
        ]),
        "{origin}"
    );
    assert_eq!(origin["plan_blake3"], hash("A shed.\n"), "{origin}");
    // A run given no files says so: none, not unknown.
    let q = Project::new(
        "[tasks.a]\ninputs = [\"plan.txt\"]\noutputs = [\"a\"]\ncommand = \"cp plan.txt a\"\n",
    );
    q.run(&["new", "runs/b", "--plan", "x"]).ok();
    let origin: serde_json::Value =
        serde_json::from_str(&q.read("runs/b/.planexe/origin.json")).unwrap();
    assert_eq!(origin["inputs"], serde_json::json!([]), "{origin}");
}

/// The pipeline is the user's and changes after the run was made: a task
/// that now writes a file the run was given refuses the build before
/// anything runs (a dry run too), and the file is as it was given. Once
/// the user removes the file, the task makes it, and the next build finds
/// it the task's own.
#[test]
fn a_build_refuses_a_task_that_would_write_a_file_the_run_was_given() {
    let p = made(&[]);
    p.write("pipeline.toml", WRITES_NOTE);
    for args in [
        &["build", "-C", "runs/a"][..],
        &["build", "-n", "-C", "runs/a"],
    ] {
        let run = p.run(args);
        run.code(2)
            .stderr_has("pipeline.toml:4:")
            .stderr_has(
                "output of task `draft`: notes/x.md is a file the run was given when it was made \
                 (`planexe new --input`, or `run_create`'s `files`); `draft` would overwrite it",
            )
            .stderr_has("hint: a build never writes over a file the run was given: rename this output in the pipeline file, or, if the file is no longer wanted, delete notes/x.md from the run directory");
        assert!(run.started().is_empty(), "{}", run.stderr);
        assert_eq!(p.read("runs/a/notes/x.md"), NOTE);
        assert!(!p.exists("runs/a/brief.txt"));
        assert!(!p.exists("runs/a/.planexe/prev"), "{}", run.stderr);
    }
    // A build of another task alone writes nothing of it.
    p.run(&["build", "-C", "runs/a", "brief"]).code(2);
    assert_eq!(p.read("runs/a/notes/x.md"), NOTE);

    // Removed by its user: nothing left to keep.
    p.remove("runs/a/notes/x.md");
    p.run(&["build", "-C", "runs/a"])
        .ok()
        .ran(&["draft", "brief"]);
    assert_eq!(p.read("runs/a/notes/x.md"), "drafted\n");
    p.run(&["build", "-C", "runs/a"]).ok().ran(&[]);
    p.run(&["build", "-B", "-C", "runs/a"])
        .ok()
        .ran(&["draft", "brief"]);
}

/// A fan-out over `topics.json`, made by a task from the plan, whose
/// instances write `out/ITEM.md`; and a task that reads the note.
const FAN_OUT: &str = r#"
[tasks.topics]
inputs = ["plan.txt"]
outputs = ["topics.json"]
command = "printf '[\"a\"]' > topics.json"

[tasks.per]
foreach = { file = "topics.json" }
inputs = ["plan.txt"]
outputs = ["out/{{ item }}.md"]
command = "echo {{ item }} > out/{{ item }}.md"

[tasks.brief]
inputs = ["plan.txt", "notes/x.md"]
outputs = ["brief.txt"]
command = "cat plan.txt notes/x.md > brief.txt"
"#;

/// The list, made during the build, gains an item whose instance (after an
/// edit of the pipeline) writes the file the run was given: the fan-out
/// fails as a list that cannot be expanded does, and the file is as it was
/// given. The next build, the list made, refuses before anything runs.
#[test]
fn a_fan_out_whose_new_instance_would_write_a_file_the_run_was_given_fails() {
    let p = Project::new(FAN_OUT);
    p.write("notes/x.md", NOTE);
    p.run(&[
        "new",
        "runs/a",
        "--plan",
        "A shed.",
        "--input",
        "notes/x.md",
    ])
    .ok();
    // The list gains `x`, the instances write into notes/, and the note
    // is no longer read.
    let (edited, _) = FAN_OUT.split_once("[tasks.brief]").unwrap();
    p.write(
        "pipeline.toml",
        &edited
            .replace(r#"'[\"a\"]'"#, r#"'[\"a\", \"x\"]'"#)
            .replace("out/{{ item }}.md", "notes/{{ item }}.md"),
    );
    let run = p.run(&["build", "-k", "-C", "runs/a"]);
    run.code(1)
        .stderr_has("FAILED per: ")
        .stderr_has(
            "pipeline.toml:10:12: output of task `per[1]`: notes/x.md is a file the run was \
             given when it was made",
        )
        .stderr_has("hint: a build never writes over a file the run was given");
    assert_eq!(p.read("runs/a/notes/x.md"), NOTE);
    assert!(!p.exists("runs/a/notes/a.md"), "{}", run.stderr);
    let record: serde_json::Value =
        serde_json::from_str(&p.read("runs/a/.planexe/tasks/per.status")).unwrap();
    assert_eq!(record["error"]["kind"], "bad_list", "{record}");

    p.run(&["build", "-C", "runs/a"])
        .code(2)
        .stderr_has("output of task `per[1]`: notes/x.md is a file the run was given");
    assert_eq!(p.read("runs/a/notes/x.md"), NOTE);
    p.remove("runs/a/notes/x.md");
    p.run(&["build", "-C", "runs/a"]).ok();
    assert_eq!(p.read("runs/a/notes/x.md"), "x\n");
}

/// `clean` of a task that now names a file the run was given as its
/// output (the pipeline edited since) leaves the file, and says so; the
/// task's records go as always. With `--all` too.
#[test]
fn clean_keeps_a_file_the_run_was_given_that_a_task_now_names() {
    let p = made(&[]);
    p.write("pipeline.toml", WRITES_NOTE);
    for args in [
        &["clean", "-y", "-C", "runs/a", "draft"][..],
        &["clean", "-y", "-C", "runs/a", "--all"],
    ] {
        p.run(args).ok().stderr_has(
            "keeping notes/x.md: the run was given it when it was made (planexe new --input, \
             or run_create's files); draft names it as an output but never wrote it",
        );
        assert_eq!(p.read("runs/a/notes/x.md"), NOTE);
    }
}

/// `touch` of a task that now names a file the run was given accepts the
/// file as the task's output, as touch does any file, and warns that a
/// later run of the task will replace it.
#[test]
fn touch_of_a_task_naming_a_file_the_run_was_given_warns_it_becomes_the_tasks() {
    let p = made(&[]);
    p.write("pipeline.toml", WRITES_NOTE);
    p.run(&["touch", "-C", "runs/a", "draft"]).ok().stderr_has(
        "warning: draft: notes/x.md is a file the run was given when it was made; touched, \
         it is recorded as draft's output, which a later run of draft replaces",
    );
    assert_eq!(p.read("runs/a/notes/x.md"), NOTE);
    // Now the task's own: a build runs what reads it, not the task.
    p.run(&["build", "-C", "runs/a"]).ok().ran(&["brief"]);
    assert_eq!(p.read("runs/a/notes/x.md"), NOTE);
}
