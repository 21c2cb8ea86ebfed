//! Staleness: stamps, hashes, early cutoff, hand edits, markers.

use crate::harness::*;

#[test]
fn touching_an_input_runs_nothing_unless_check_is_mtime() {
    let p = demo();
    p.build().ok();
    p.set_mtime("plan.txt", 5_000_000);
    p.build().ok().ran(&[]);
    // The new mtime was recorded: by mtime alone nothing changed now.
    p.run(&["build", "--check", "mtime"]).ok().ran(&[]);

    p.set_mtime("plan.txt", 6_000_000);
    p.run(&["build", "--check", "mtime"])
        .ok()
        .ran(&["outline", "report"]);
}

#[test]
fn one_changed_byte_reruns_exactly_what_depends_on_it() {
    let p = Project::new(
        r#"
[tasks.a]
inputs = ["a.in"]
outputs = ["a.out"]
command = "cat a.in > a.out"
[tasks.b]
inputs = ["a.out"]
outputs = ["b.out"]
command = "cat a.out > b.out"
[tasks.c]
inputs = ["c.in"]
outputs = ["c.out"]
command = "cat c.in > c.out"
[tasks.d]
inputs = ["b.out", "c.out"]
outputs = ["d.out"]
command = "cat b.out c.out > d.out"
"#,
    );
    p.write("a.in", "aaaa").write("c.in", "cccc");
    p.build().ok().ran(&["a", "b", "c", "d"]);
    // Same size, one byte different, same mtime as before: still caught
    // only if the mtime differs; give it a new mtime as an editor would.
    p.write_at("c.in", "cccC", 2_000_000);
    p.build().ok().ran(&["c", "d"]);
    assert_eq!(p.read("d.out"), "aaaacccC");
    p.build().ok().ran(&[]);
}

#[test]
fn early_cutoff_keeps_dependents_up_to_date() {
    let p = Project::new(
        r#"
[tasks.first]
inputs = ["in.txt"]
outputs = ["first.txt"]
command = "head -n 1 in.txt > first.txt"
[tasks.shout]
inputs = ["first.txt"]
outputs = ["shout.txt"]
command = "tr a-z A-Z < first.txt > shout.txt"
"#,
    );
    p.write("in.txt", "hello\nworld\n");
    p.build().ok().ran(&["first", "shout"]);
    p.write_at("in.txt", "hello\nthere\n", 2_000_000);
    let run = p.build();
    run.ok().ran(&["first"]);
    run.stderr_has("fresh  shout");
}

#[test]
fn a_hand_edited_output_is_kept_and_its_dependents_rerun() {
    let p = demo();
    p.build().ok();
    p.write_at("outline.md", "MY OWN OUTLINE\n", 3_000_000);
    let run = p.build();
    run.ok().ran(&["report"]);
    run.stderr_has("kept hand-edited outline.md");
    assert_eq!(p.read("outline.md"), "MY OWN OUTLINE\n");
    assert_eq!(p.read("report.md"), "MY OWN OUTLINE\nnote a\nnote b\n");
    p.build().ok().ran(&[]);
}

#[test]
fn a_deleted_output_or_marker_reruns_the_task() {
    let p = demo();
    p.build().ok();
    p.remove("report.md");
    p.build().ok().ran(&["report"]);
    p.remove(".planexe/tasks/outline.DONE");
    assert_eq!(
        p.run(&["build", "-n"]).stdout,
        "outline: .DONE marker missing\nreport: upstream outline will re-run\n"
    );
    let run = p.build();
    // outline re-runs; its output is byte-identical, so report is cut off.
    run.ok().ran(&["outline"]);
}

#[test]
fn the_timeout_is_not_part_of_the_fingerprint() {
    let p = demo();
    p.build().ok();
    p.write(
        "pipeline.toml",
        &DEMO.replace("timeout = \"30s\"", "timeout = \"45s\""),
    );
    p.build().ok().ran(&[]);
}

#[test]
fn the_state_log_is_an_index_not_the_only_copy() {
    let p = demo();
    p.build().ok();
    std::fs::remove_file(p.path(".planexe/log")).unwrap();
    // Falls back to the sidecars.
    p.build().ok().ran(&[]);
    // A torn last line is ignored.
    p.write_at("notes/a.md", "changed\n", 2_000_000);
    p.build().ok().ran(&["report"]);
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(p.path(".planexe/log"))
        .unwrap();
    std::io::Write::write_all(&mut log, b"{\"event\":\"status\",\"task\":\"rep").unwrap();
    p.build().ok().ran(&[]);
}

#[test]
fn a_copy_with_identical_bytes_reruns_nothing() {
    let p = demo();
    p.build().ok();
    // Rewrite every source with the same bytes and new mtimes.
    p.write_at("plan.txt", "build a house\n", 7_000_000);
    p.write_at("notes/a.md", "note a\n", 7_000_000);
    p.build().ok().ran(&[]);
}

#[test]
fn a_torn_log_line_does_not_swallow_the_next_record() {
    let p = demo();
    p.build().ok();
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(p.path(".planexe/log"))
        .unwrap();
    std::io::Write::write_all(&mut log, b"{\"task\":\"outl").unwrap();
    p.write_at("notes/a.md", "changed\n", 2_000_000);
    p.build().ok().ran(&["report"]);
    // Without the sidecars, the log alone must still know report's new run.
    std::fs::remove_file(p.path(".planexe/tasks/report.status")).unwrap();
    p.build().ok().ran(&[]);
}

#[test]
fn the_done_marker_keeps_its_mtime_when_only_stamps_are_refreshed() {
    let p = demo();
    p.build().ok();
    let marker = p.path(".planexe/tasks/outline.DONE");
    std::fs::File::options()
        .write(true)
        .open(&marker)
        .unwrap()
        .set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(9_000_000))
        .unwrap();
    p.set_mtime("plan.txt", 5_000_000);
    p.build().ok().ran(&[]);
    let mtime = std::fs::metadata(&marker).unwrap().modified().unwrap();
    assert_eq!(
        mtime,
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(9_000_000)
    );
}

#[test]
fn a_newly_declared_output_reruns_the_task() {
    let p = Project::new("[tasks.a]\noutputs = [\"x\"]\ncommand = \"echo 1 > x; echo 2 > y\"\n");
    p.build().ok();
    p.write(
        "pipeline.toml",
        "[tasks.a]\noutputs = [\"x\", \"y\"]\ncommand = \"echo 1 > x; echo 2 > y\"\n",
    );
    assert_eq!(p.run(&["build", "-n"]).stdout, "a: output y added\n");
}

#[test]
fn outputs_and_state_files_get_ordinary_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let p = demo();
    p.build().ok();
    for f in [
        "outline.md",
        ".planexe/tasks/outline.status",
        ".planexe/tasks/outline.DONE",
    ] {
        let mode = std::fs::metadata(p.path(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o644, 0o644, "{f} has mode {mode:o}");
    }
}

#[test]
fn a_literal_name_with_brackets_is_not_a_glob() {
    let p = Project::new("[tasks.a]\ninputs = [\"data[1].txt\"]\noutputs = [\"o\"]\ncommand = \"cat 'data[1].txt' > o\"\n");
    p.write("data[1].txt", "one");
    p.build().ok();
    assert_eq!(p.read("o"), "one");
}

#[test]
fn a_glob_that_would_match_another_tasks_output_is_warned_of() {
    let pipeline = r#"
[tasks.a]
outputs = ["notes/x.md"]
command = "echo x > notes/x.md"
[tasks.b]
inputs = ["notes/*.md"]
outputs = ["all.md"]
command = "cat notes/*.md > all.md"
"#;
    let p = Project::new(pipeline);
    p.write("notes/s.md", "s");
    p.build().ok().stderr_has(
        "warning: task `b`: input glob `notes/*.md` leaves out notes/x.md, made by task `a`: a glob matches source files only, so `b` does not wait for task `a` and may run before it; name it in `inputs` to read it: inputs = [\"notes/x.md\"]",
    );
    // Named, it is read and waited for: no warning.
    p.write(
        "pipeline.toml",
        &pipeline.replace(r#"["notes/*.md"]"#, r#"["notes/*.md", "notes/x.md"]"#),
    );
    let out = p.build();
    out.ok();
    assert!(!out.stderr.contains("leaves out"), "{}", out.stderr);
    assert_eq!(p.read("all.md"), "sx\n");
    // Waited for with `after`: no warning either.
    p.write(
        "pipeline.toml",
        &pipeline.replace(
            r#"inputs = ["notes/*.md"]"#,
            "inputs = [\"notes/*.md\"]\nafter = [\"a\"]",
        ),
    );
    let out = p.run(&["build", "-B"]);
    out.ok();
    assert!(!out.stderr.contains("leaves out"), "{}", out.stderr);
}

/// `out/x*.md` matches `out/x1.md`, which the fan-out writes for the
/// item `x1`: no single stand-in value (`0`, `a`, `A`) showed it, and the
/// reader ran beside the fan-out, unwarned.
#[test]
fn a_glob_that_only_some_items_meet_is_warned_of_before_the_build() {
    let pipeline = r#"
[tasks.list]
outputs = ["list.json"]
command = "echo '[\"x1\", \"y2\"]' > list.json"
[tasks.per]
foreach = { file = "list.json" }
outputs = ["out/{{ item }}.md"]
command = "mkdir -p out && echo {{ item }} > out/{{ item }}.md"
[tasks.gather]
inputs = ["out/x*.md"]
outputs = ["all.md"]
command = "cat out/x*.md > all.md 2>/dev/null; echo end >> all.md"
"#;
    let p = Project::new(pipeline);
    let built = p.build();
    built.ok().stderr_has(
        "warning: task `gather`: input glob `out/x*.md` may match the outputs of fan-out `per` (`out/{{ item }}.md`), made once its list list.json is built: a glob matches source files only, so `gather` does not wait for fan-out `per` and may run before it; name the fan-out in `inputs` to read them all: inputs = [\"per\"]\nstart  ",
    );
    // A glob no instance's output meets is not warned of.
    p.write(
        "pipeline.toml",
        &pipeline.replace("out/x*.md", "out/x*.txt"),
    );
    let built = p.run(&["build", "-B"]);
    built.ok();
    assert!(!built.stderr.contains("warning"), "{}", built.stderr);
}

#[test]
fn a_glob_over_a_fan_outs_outputs_is_warned_of_before_the_build() {
    let pipeline = r#"
[tasks.list]
outputs = ["list.json"]
command = "echo '[\"a\", \"b\", \"c\", \"d\"]' > list.json"
[tasks.per]
foreach = { file = "list.json" }
outputs = ["per/{{ item }}.txt"]
command = "mkdir -p per && echo {{ item }} > per/{{ item }}.txt"
[tasks.gather]
inputs = ["per/*.txt"]
outputs = ["all.txt"]
command = "cat per/*.txt > all.txt 2>/dev/null; echo end >> all.txt"
"#;
    let p = Project::new(pipeline);
    let warning = "warning: task `gather`: input glob `per/*.txt` may match the outputs of fan-out `per` (`per/{{ item }}.txt`), made once its list list.json is built: a glob matches source files only, so `gather` does not wait for fan-out `per` and may run before it; name the fan-out in `inputs` to read them all: inputs = [\"per\"]";
    // The list is made during the build: said before it starts (as its
    // outputs' templates say), and not again when the fan-out expands.
    let built = p.build();
    built.ok().stderr_has(&format!("{warning}\nstart  "));
    assert!(!built.stderr.contains("leaves out"), "{}", built.stderr);
    // The list is up to date when the build starts: said once, too.
    let planned = p.run(&["build", "-n", "--force", "gather"]);
    planned.ok().stderr_has(warning);
    assert!(!planned.stderr.contains("leaves out"), "{}", planned.stderr);
    // A glob that one sample value would not show to match (`[b-c]`) is
    // warned of before the build all the same, and not again by the
    // files.
    p.write(
        "pipeline.toml",
        &pipeline.replace("per/*.txt", "per/[b-c].txt"),
    );
    let built = p.run(&["build", "-B"]);
    built.ok().stderr_has(
        "warning: task `gather`: input glob `per/[b-c].txt` may match the outputs of fan-out `per` (`per/{{ item }}.txt`)",
    );
    assert!(!built.stderr.contains("leaves out"), "{}", built.stderr);
    // A reader that waits for the fan-out (`after`) is warned of neither
    // way, before the build or when the fan-out expands.
    p.write(
        "pipeline.toml",
        &pipeline.replace(
            "inputs = [\"per/*.txt\"]",
            "inputs = [\"per/*.txt\"]\nafter = [\"per\"]",
        ),
    );
    let built = p.run(&["build", "-B"]);
    built.ok();
    assert!(!built.stderr.contains("warning"), "{}", built.stderr);
}
