//! Pipelines that cannot be built are refused before anything runs, with
//! exit 2, `pipeline.toml:LINE:COL` and a hint.

use crate::harness::*;

#[track_caller]
fn refused(pipeline: &str, location: &str, message: &str) -> Project {
    let p = Project::new(pipeline);
    p.write("in.txt", "x");
    let run = p.build();
    run.code(2).ran(&[]);
    run.stderr_has(&format!("pipeline.toml:{location}: "));
    run.stderr_has(message);
    run.stderr_has("hint:");
    assert!(!p.exists(".planexe/tasks"), "nothing ran or was recorded");
    p
}

#[test]
fn toml_syntax_error() {
    refused(
        "[tasks.a]\ncommand = \"echo\n",
        "2:16",
        "invalid basic string",
    );
}

#[test]
fn unknown_key() {
    refused(
        "[tasks.a]\ncommand = \"true\"\ninptus = [\"in.txt\"]\n",
        "3:1",
        "unknown field `inptus`",
    );
}

#[test]
fn missing_input_that_no_task_produces() {
    refused(
        "[tasks.a]\ninputs = [\"in.txt\", \"nope.txt\"]\noutputs = [\"o\"]\ncommand = \"true\"\n",
        "2:21",
        "input `nope.txt` of task `a` does not exist and no task produces it",
    );
}

#[test]
fn two_producers_of_one_output() {
    refused(
        "[tasks.a]\noutputs = [\"o\"]\ncommand = \"true\"\n[tasks.b]\noutputs = [\"o\"]\ncommand = \"true\"\n",
        "5:12",
        "output `o` is produced by two tasks: `a` and `b`",
    );
}

#[test]
fn a_cycle_is_printed() {
    let p = refused(
        "[tasks.a]\ninputs = [\"b.txt\"]\noutputs = [\"a.txt\"]\ncommand = \"true\"\n[tasks.b]\ninputs = [\"a.txt\"]\noutputs = [\"b.txt\"]\ncommand = \"true\"\n",
        "5:8",
        "cycle: ",
    );
    let run = p.build();
    assert!(
        run.stderr.contains("cycle: a -> b -> a") || run.stderr.contains("cycle: b -> a -> b"),
        "{}",
        run.stderr
    );
}

#[test]
fn after_naming_an_unknown_task() {
    refused(
        "[tasks.a]\ncommand = \"true\"\n[tasks.b]\ncommand = \"true\"\nafter = [\"outlin\"]\n",
        "5:10",
        "`after` names unknown task `outlin`",
    );
}

#[test]
fn neither_command_nor_prompt() {
    refused(
        "[tasks.a]\noutputs = [\"o\"]\n",
        "1:8",
        "task `a` has neither `command` nor `prompt`",
    );
}

#[test]
fn both_command_and_prompt() {
    refused(
        "[tasks.a]\ncommand = \"true\"\nprompt = \"hi\"\n",
        "3:10",
        "task `a` has both `command` and `prompt`",
    );
}

#[test]
fn a_task_name_that_is_not_an_identifier() {
    refused(
        "[tasks.\"my task\"]\ncommand = \"true\"\n",
        "1:8",
        "task name `my task` is not a plain identifier",
    );
}

#[test]
fn absolute_and_escaping_paths() {
    refused(
        "[tasks.a]\noutputs = [\"/tmp/x\"]\ncommand = \"true\"\n",
        "2:12",
        "is an absolute path",
    );
    refused(
        "[tasks.a]\ninputs = [\"../in.txt\"]\ncommand = \"true\"\n",
        "2:11",
        "uses `..`",
    );
}

#[test]
fn a_symlink_pointing_outside() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "s").unwrap();
    let p = Project::new(
        "[tasks.a]\ninputs = [\"link/secret\"]\noutputs = [\"o\"]\ncommand = \"true\"\n",
    );
    std::os::unix::fs::symlink(outside.path(), p.path("link")).unwrap();
    let run = p.build();
    run.code(2)
        .stderr_has("pipeline.toml:2:11")
        .stderr_has("outside the run directory");

    let q = Project::new("[tasks.a]\noutputs = [\"out.txt\"]\ncommand = \"echo x > out.txt\"\n");
    std::os::unix::fs::symlink(outside.path().join("secret"), q.path("out.txt")).unwrap();
    q.build().code(2).stderr_has("is a symlink to");
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret")).unwrap(),
        "s"
    );
}

#[test]
fn a_missing_pipeline_file() {
    let p = Project::new("");
    std::fs::remove_file(p.path("pipeline.toml")).unwrap();
    p.build()
        .code(2)
        .stderr_has("pipeline file pipeline.toml not found");
}

#[test]
fn bad_timeouts_and_jobs() {
    refused(
        "[pipeline]\ntimeout = \"soon\"\n[tasks.a]\ncommand = \"true\"\n",
        "2:11",
        "invalid timeout",
    );
    refused(
        "[pipeline]\njobs = 0\n[tasks.a]\ncommand = \"true\"\n",
        "2:8",
        "`jobs` must be at least 1",
    );
}

#[test]
fn usage_errors_exit_2() {
    let p = demo();
    p.run(&["build", "--no-such-flag"]).code(2);
    p.run(&["build", "-j", "0"]).code(2);
    p.run(&["frobnicate"]).code(2);
    p.run(&["--help"]).ok();
}

#[test]
fn absurd_timeouts_are_refused_not_crashed_on() {
    refused(
        "[tasks.a]\ncommand = \"true\"\ntimeout = 9223372036854775807\n",
        "3:11",
        "at most 365 days",
    );
    refused(
        "[tasks.a]\ncommand = \"true\"\ntimeout = 1e300\n",
        "3:11",
        "invalid timeout",
    );
}
