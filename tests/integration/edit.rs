//! `planexe edit`: a scripted `$EDITOR` (a small sh script) edits the
//! file; what the edit makes stale is listed, and rebuilt with `-y`.

use crate::harness::*;

/// a and b read plan.txt; c reads a's output; d reads b's; e reads notes.txt.
const PIPELINE: &str = r#"
[tasks.a]
inputs = ["plan.txt"]
outputs = ["a.txt"]
command = "head -n 1 plan.txt > a.txt"
[tasks.b]
inputs = ["plan.txt"]
outputs = ["b.txt"]
command = "cat plan.txt > b.txt"
[tasks.c]
inputs = ["a.txt"]
outputs = ["c.txt"]
command = "cat a.txt > c.txt"
[tasks.d]
inputs = ["b.txt"]
outputs = ["d.txt"]
command = "cat b.txt > d.txt"
[tasks.e]
inputs = ["notes.txt"]
outputs = ["e.txt"]
command = "cat notes.txt > e.txt"
"#;

fn built() -> Project {
    let p = Project::new(PIPELINE);
    p.write("plan.txt", "first line\n");
    p.write("notes.txt", "notes\n");
    p.build().ok();
    p
}

/// An editor script at `name` in the project; it gets the file as `$1`.
fn editor(p: &Project, name: &str, body: &str) -> String {
    let path = p.path(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

fn edit(p: &Project, editor: &str, args: &[&str]) -> Run {
    let mut all = vec!["edit"];
    all.extend_from_slice(args);
    let output = p
        .command(&all)
        .env_remove("VISUAL")
        .env("EDITOR", editor)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Appends a line to the file it edits.
const APPEND: &str = "echo more >> \"$1\"";

#[test]
fn default_file_is_plan_txt_and_yes_rebuilds_exactly_the_dependents() {
    let p = built();
    let ed = editor(&p, "ed.sh", APPEND);
    let run = edit(&p, &ed, &["-y"]);
    run.ok().ran(&["a", "b", "d"]);
    run.stdout_has("a: input plan.txt changed")
        .stdout_has("b: input plan.txt changed");
    assert_eq!(p.read("plan.txt"), "first line\nmore\n");
    // a's output did not change (first line only): c is found up to date.
    assert_eq!(p.read("d.txt"), "first line\nmore\n");
    p.build().ok().ran(&[]);
}

#[test]
fn an_editor_with_arguments_runs_through_sh() {
    let p = built();
    let ed = editor(&p, "ed.sh", "echo \"$1\" >> \"$2\"");
    let run = edit(&p, &format!("{ed} added"), &["-y", "notes.txt"]);
    run.ok().ran(&["e"]);
    assert_eq!(p.read("notes.txt"), "notes\nadded\n");
}

#[test]
fn no_change_runs_nothing() {
    let p = built();
    // Rewritten with the same bytes (a new mtime): not a change.
    let ed = editor(&p, "ed.sh", "cp \"$1\" \"$1.tmp\" && mv \"$1.tmp\" \"$1\"");
    let run = edit(&p, &ed, &[]);
    run.ok()
        .ran(&[])
        .stderr_has("plan.txt unchanged; nothing to rebuild");
    assert_eq!(run.stdout, "");
}

#[test]
fn without_a_terminal_or_yes_it_lists_and_exits_2() {
    let p = built();
    let ed = editor(&p, "ed.sh", "sed -i 's/first/new/' \"$1\"");
    let run = edit(&p, &ed, &[]);
    run.code(2)
        .ran(&[])
        .stderr_has("stdin is not a terminal")
        .stderr_has("run planexe build to rebuild, or planexe edit -y");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "a: input plan.txt changed",
            "b: input plan.txt changed",
            "c: upstream a will re-run",
            "d: upstream b will re-run",
        ]
    );
    // The list is what `build -n` prints.
    assert_eq!(p.run(&["build", "-n"]).stdout, run.stdout);
    assert_eq!(p.read("plan.txt"), "new line\n");
}

#[test]
fn keep_accepts_a_task_as_done_and_rebuilds_downstream_of_the_change() {
    let p = built();
    let ed = editor(&p, "ed.sh", "sed -i 's/first/new/' \"$1\"");
    let listed = edit(&p, &ed, &["--keep", "a"]);
    listed.code(2);
    // The list already reflects the kept task, and changed nothing.
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "a: kept (--keep)",
            "b: input plan.txt changed",
            "d: upstream b will re-run",
        ]
    );
    assert_eq!(p.run(&["build", "-n"]).stdout.lines().count(), 4);

    let same = editor(&p, "same.sh", "sed -i 's/new/newer/' \"$1\"");
    let run = edit(&p, &same, &["-y", "--keep", "a"]);
    run.ok().ran(&["b", "d"]).stderr_has("kept a");
    assert_eq!(p.read("a.txt"), "first line\n", "a was not re-run");
    assert_eq!(p.read("d.txt"), "newer line\n");
    p.build().ok().ran(&[]);
}

/// A kept task below one the edit re-runs runs again (what it reads
/// changes): it was listed `c: kept (--keep)` and `c: upstream a will
/// re-run`, then `kept c`, and ran.
#[test]
fn keep_of_a_task_below_the_edit_says_it_runs_again() {
    let p = built();
    let ed = editor(&p, "ed.sh", "sed -i 's/first/new/' \"$1\"");
    let listed = edit(&p, &ed, &["--keep", "c"]);
    listed.code(2);
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "c: kept (--keep), but upstream a will re-run: it runs again",
            "a: input plan.txt changed",
            "b: input plan.txt changed",
            "d: upstream b will re-run",
        ]
    );
    let same = editor(&p, "same.sh", "sed -i 's/new/newer/' \"$1\"");
    let run = edit(&p, &same, &["-y", "--keep", "c"]);
    run.ok().ran(&["a", "b", "c", "d"]);
    assert!(!run.stderr.contains("kept c"), "{}", run.stderr);
}

#[test]
fn keep_checks_the_kept_outputs_as_touch_does() {
    let p = Project::new(&PIPELINE.replace(
        "command = \"head -n 1 plan.txt > a.txt\"\n",
        "command = \"head -n 1 plan.txt > a.txt\"\ncheck = \"grep -q line \\\"$1\\\" || { echo no line; exit 1; }\"\n",
    ));
    p.write("plan.txt", "first line\n");
    p.write("notes.txt", "notes\n");
    p.build().ok();
    p.write_at("a.txt", "by hand\n", 2_000_000);
    let before = p.read(".planexe/tasks/a.status");
    let ed = editor(&p, "ed.sh", "sed -i 's/first/new/' \"$1\"");
    // Refused before the question, with nothing kept or built.
    edit(&p, &ed, &["-y", "--keep", "a"])
        .code(2)
        .ran(&[])
        .stderr_has("cannot touch a: its check `grep -q line")
        .stderr_has("refuses a.txt: the check failed (exit status 1): no line")
        .stderr_has("or pass --no-check");
    assert_eq!(p.read(".planexe/tasks/a.status"), before);
    assert_eq!(p.read("plan.txt"), "new line\n", "the edit itself stays");

    let again = editor(&p, "again.sh", "sed -i 's/new/newer/' \"$1\"");
    edit(&p, &again, &["-y", "--keep", "a", "--no-check"])
        .ok()
        .ran(&["b", "c", "d"])
        .stderr_has("kept a");
    assert_eq!(p.read("c.txt"), "by hand\n");
}

#[test]
fn unknown_keep_task_is_refused_before_the_editor_opens() {
    let p = built();
    let ed = editor(&p, "ed.sh", APPEND);
    let run = edit(&p, &ed, &["-y", "--keep", "nope"]);
    run.code(2).stderr_has("unknown task `nope`");
    assert_eq!(p.read("plan.txt"), "first line\n");
}

#[test]
fn a_failing_editor_builds_nothing() {
    let p = built();
    let ed = editor(&p, "ed.sh", "echo more >> \"$1\"; exit 1");
    let run = edit(&p, &ed, &["-y"]);
    run.code(2)
        .ran(&[])
        .stderr_has("exited with status 1")
        .stderr_has("ed.sh");
    let missing = edit(&p, "/no/such/editor", &["-y"]);
    missing.code(2).ran(&[]).stderr_has("/no/such/editor");
}

#[test]
fn a_file_that_is_not_a_source_is_refused() {
    let p = built();
    let ed = editor(&p, "ed.sh", APPEND);
    for file in ["a.txt", "ed.sh", "/etc/hostname"] {
        let run = edit(&p, &ed, &["-y", file]);
        run.code(2)
            .stderr_has("is not a source of the pipeline")
            .stderr_has(
                "hint: sources: plan.txt, notes.txt; or the pipeline file, pipeline.toml\n",
            );
    }
    assert_eq!(p.read("a.txt"), "first line\n");
    // The pipeline file itself is allowed, and read again after the edit.
    let comment = editor(&p, "comment.sh", "echo '# a comment' >> \"$1\"");
    edit(&p, &comment, &["-y", "pipeline.toml"]).ok().ran(&[]);
    let broken = edit(&p, &ed, &["-y", "pipeline.toml"]);
    broken.code(2).ran(&[]).stderr_has("pipeline.toml:");
}

#[test]
fn an_edit_in_a_failed_run_resumes_it() {
    let p = Project::new(&PIPELINE.replace(
        "command = \"cat notes.txt > e.txt\"",
        "command = \"test -f ok && cat notes.txt > e.txt\"",
    ));
    p.write("plan.txt", "first line\n");
    p.write("notes.txt", "notes\n");
    p.build().code(1);
    p.write("ok", "");
    let ed = editor(&p, "ed.sh", "sed -i 's/first/new/' \"$1\"");
    let run = edit(&p, &ed, &["-y"]);
    run.stdout_has("e: failed last time");
    run.ok().ran(&["a", "b", "c", "d", "e"]);
}

#[test]
fn visual_is_preferred_over_editor() {
    let p = built();
    let visual = editor(&p, "visual.sh", "echo visual >> \"$1\"");
    let ed = editor(&p, "ed.sh", "echo editor >> \"$1\"");
    let output = p
        .command(&["edit", "-y"])
        .env("VISUAL", &visual)
        .env("EDITOR", &ed)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(p.read("plan.txt"), "first line\nvisual\n");
}

#[test]
fn a_pipeline_without_sources_has_no_default_file() {
    let p = Project::new("[tasks.x]\noutputs = [\"x.txt\"]\ncommand = \"echo > x.txt\"\n");
    let ed = editor(&p, "ed.sh", APPEND);
    edit(&p, &ed, &[])
        .code(2)
        .stderr_has("no source file")
        .stderr_has("planexe edit FILE");
}

#[test]
fn a_running_build_is_refused_before_the_editor_opens() {
    let p = Project::new(
        "[tasks.long]\ninputs = [\"plan.txt\"]\noutputs = [\"o\"]\ncommand = \"touch started; sleep 100\"\n",
    );
    p.write("plan.txt", "plan\n");
    let mut child = p
        .command(&["build"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the build to start", || p.exists("started"));
    let ed = editor(&p, "ed.sh", APPEND);
    let run = edit(&p, &ed, &["-y"]);
    // Ctrl-C, not SIGKILL: the build stops its task (a killed build would
    // leave `sleep 100` running after the test).
    // SAFETY: sending a signal to the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    child.wait().unwrap();
    run.code(2)
        .stderr_has(&format!("another build (pid {}, started ", child.id()))
        .stderr_has("is running in this directory");
    assert_eq!(p.read("plan.txt"), "plan\n", "the editor never opened");
}

/// A `foreach` list file no task writes is a source: `edit` takes it, and
/// rebuilds the instances its new list names (a new item, a changed one).
/// It was refused: `items.json is not a source of the pipeline or the
/// pipeline file` (exit 2). A list a task writes is still that task's
/// output, and refused.
#[test]
fn a_foreach_list_no_task_writes_is_a_source() {
    let p = Project::new(
        r#"
[tasks.per]
foreach = { file = "items.json", items = "/items", key = "id" }
inputs = ["data/{{ key }}.txt"]
outputs = ["out/{{ key }}.txt"]
command = "mkdir -p out && cat {inputs} > {outputs}"

[tasks.made]
outputs = ["made.json"]
command = "echo '[1]' > made.json"

[tasks.each]
foreach = { file = "made.json" }
outputs = ["each/{{ key }}.txt"]
command = "mkdir -p each && echo {{ item }} > each/{{ key }}.txt"
"#,
    );
    p.write("data/a.txt", "alpha\n");
    p.write("data/b.txt", "beta\n");
    p.write("items.json", r#"{"items": [{"id": "a"}]}"#);
    p.build().ok();
    let ed = editor(
        &p,
        "ed.sh",
        r#"echo '{"items": [{"id": "a"}, {"id": "b"}]}' > "$1""#,
    );
    let run = edit(&p, &ed, &["items.json", "-y"]);
    run.ok().ran(&["per[b]"]).stdout_has("per[b]: never built");
    assert_eq!(p.read("out/b.txt"), "beta\n");
    p.build().ok().ran(&[]);

    let refused = edit(&p, &ed, &["made.json", "-y"]);
    refused
        .code(2)
        .stderr_has("made.json is not a source of the pipeline")
        .stderr_has("hint: sources: data/a.txt, data/b.txt, items.json; or the pipeline file");
}
