//! Fan-outs that expand inside the running build: no barrier (unrelated
//! tasks keep running while instances start), status sees instances as
//! they appear, `-k` past a list that cannot be read, the closing line
//! for fan-outs that never expanded, and a resume after a crash mid-way.

use std::process::Stdio;

use serde_json::Value;

use crate::harness::*;

/// `list` writes the list `["a", "b", "c"]` after `list_delay`; each
/// instance (`each[0]`...) runs `instance`; `slow` runs beside them until
/// a file `go` exists; `merged` gathers the instances.
fn pipeline(list_delay: &str, instance: &str) -> String {
    format!(
        r#"
[tasks.list]
outputs = ["list.json"]
command = "sleep {list_delay}; echo '[\"a\", \"b\", \"c\"]' > list.json"

[tasks.each]
foreach = {{ file = "list.json" }}
outputs = ["each/{{{{ key }}}}.txt"]
command = "{instance}"

[tasks.merged]
inputs = ["each"]
outputs = ["merged.txt"]
command = "cat {{inputs}} > merged.txt"

[tasks.slow]
outputs = ["slow.txt"]
command = "while [ ! -e go ]; do sleep 0.02; done; echo slow > slow.txt"
"#
    )
}

#[test]
fn instances_start_while_an_unrelated_task_still_runs() {
    let p = Project::new(&pipeline(
        "0",
        "echo {{ item }} > {outputs}; touch started-{{ item }}",
    ));
    let child = Background(Some(
        p.command(&["build", "-j4"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    // `slow` holds until told: the instances and `merged` must not wait
    // for it, as a second phase of the build would.
    wait_for("the instances", || {
        ["a", "b", "c"]
            .iter()
            .all(|k| p.exists(&format!("started-{k}")))
    });
    wait_for("merged", || p.exists("merged.txt"));
    assert!(!p.exists("slow.txt"));
    // Status sees the grown graph while the build runs.
    wait_for("status to list the instances", || {
        let out = p.run(&["status", "--json"]).stdout;
        let json: Value = serde_json::from_str(&out).unwrap_or_default();
        let names: Vec<String> = json["tasks"]
            .as_array()
            .map(|t| {
                t.iter()
                    .map(|l| l["task"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        names.iter().any(|n| n == "each[1]")
            && json["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["task"] == "slow" && l["state"] == "running")
    });
    p.write("go", "");
    let out = child.wait();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("expanded each: 3 instance(s)"), "{stderr}");
    assert!(stderr.contains("built 6 task(s)"), "{stderr}");
    assert_eq!(p.read("merged.txt"), "a\nb\nc\n");
    // Events and the trace saw the instances.
    let events = p.read(".planexe/events.jsonl");
    assert!(events.contains("\"each[2]\""), "{events}");
    let trace = p.read(".planexe/trace.json");
    assert!(trace.contains("each[0]"), "no instance in the trace");
    p.build().ok().ran(&[]);
}

#[test]
fn keep_going_runs_on_past_a_list_that_cannot_be_read() {
    let p = Project::new(
        &pipeline("0", "echo {{ item }} > {outputs}")
            .replace("echo '[\\\"a\\\", \\\"b\\\", \\\"c\\\"]'", "echo '[1, 2'"),
    );
    p.write("go", "");
    let run = p.run(&["build", "-k"]);
    run.code(1)
        .stderr_has("FAILED each: ")
        .stderr_has("not JSON")
        .stderr_has("done   slow");
    assert_eq!(p.status_json("each")["error"]["kind"], "bad_list");
    assert!(!p.exists("merged.txt"));
}

#[test]
fn the_closing_line_counts_fan_outs_that_never_expanded() {
    let p = Project::new(&pipeline("0", "echo {{ item }} > {outputs}").replace(
        "echo '[\\\"a\\\", \\\"b\\\", \\\"c\\\"]' > list.json",
        "exit 4",
    ));
    p.write("go", "");
    p.run(&["build", "-k"])
        .code(1)
        .stderr_has("FAILED list")
        .stderr_has(
            "2 not run; 1 of them waits behind 1 fan-out(s) whose list was not built (each), as do their instances, counted once the list exists",
        );
    // A fan-out nothing depends on: its instances are all that waits.
    let p = Project::new(
        &pipeline("0", "echo {{ item }} > {outputs}")
            .replace(
                "echo '[\\\"a\\\", \\\"b\\\", \\\"c\\\"]' > list.json",
                "exit 4",
            )
            .replace("inputs = [\"each\"]", "inputs = []"),
    );
    p.write("go", "");
    p.run(&["build", "-k"]).code(1).stderr_has(
        "1 fan-out(s) did not expand, their list not built, so their instances are not counted: each",
    );
}

#[test]
fn a_build_killed_after_some_instances_resumes_with_the_rest() {
    let p = Project::new(&pipeline(
        "0",
        "echo {{ item }} >> ran.log; test {{ item }} = a || test -e free || sleep 100; echo {{ item }} > {outputs}",
    ));
    p.write("go", "");
    let mut child = p
        .command(&["build", "-j4"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("instance a to be recorded done", || {
        p.exists(".planexe/tasks/each[0].DONE")
    });
    wait_for("b and c to start", || {
        std::fs::read_to_string(p.path("ran.log")).is_ok_and(|s| s.lines().count() == 3)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_file(p.path("ran.log")).unwrap();
    p.write("free", "");
    // What finished stays finished: the list and instance a do not run.
    let run = p.build();
    run.ok();
    let mut ran: Vec<String> = run
        .started()
        .into_iter()
        .filter(|t| t.starts_with("each") || t == "list")
        .collect();
    ran.sort();
    assert_eq!(ran, ["each[1]", "each[2]"]);
    assert_eq!(p.read("merged.txt"), "a\nb\nc\n");
}

/// A build killed while an instance of a fan-out re-ran: the next build
/// (whose fan-out expands only once it runs) stops the instance's command
/// left running, and puts its last good output back before running it
/// again; the half-written one goes to `failed/`.
#[test]
fn a_crash_mid_instance_stops_its_command_and_restores_its_output() {
    let p = Project::new(
        r#"
[tasks.list]
inputs = ["plan.txt"]
outputs = ["list.json"]
command = "echo '[\"x\"]' > list.json"

[tasks.fan]
foreach = { file = "list.json" }
inputs = ["plan.txt"]
outputs = ["fan/{{ key }}.txt"]
command = "echo {{ key }}-$(cat plan.txt) > fan/{{ key }}.txt; if grep -q slow plan.txt; then echo $$ > fan.pid; sleep 300; fi"
"#,
    );
    p.write("plan.txt", "good\n");
    p.build().ok();
    assert_eq!(p.read("fan/0.txt"), "0-good\n");
    p.write("plan.txt", "slower\n");
    let mut child = p.spawn_quiet(&["build"]);
    wait_for("the instance to start", || {
        p.exists("fan.pid") && !p.read("fan.pid").is_empty()
    });
    // planexe alone: the instance's command runs on in its own group.
    child.kill().unwrap();
    child.wait().unwrap();
    let pid: i32 = p.read("fan.pid").trim().parse().unwrap();
    let run = p.run(&["build", "-n"]);
    run.ok();
    p.write("plan.txt", "quick!!\n");
    let run = p.build();
    run.ok()
        .stderr_has(&format!(
            "stopped fan[0] (pid {pid}), left running by a build that crashed"
        ))
        .stderr_has("restored 1 output(s) of fan[0] from before an interrupted run");
    assert_eq!(p.read("fan/0.txt"), "0-quick!!\n");
    assert_eq!(p.read(".planexe/failed/fan[0]/fan/0.txt"), "0-slower\n");
    wait_for("the instance's command to be stopped", || ended(pid));
}
