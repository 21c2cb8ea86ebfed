//! Output checks (docs/checks.md): `check`, `min_bytes`, `severity`,
//! `rescue`, and `planexe check` (a prompt task's format and schema too).

use crate::harness::*;

/// A task whose check wants the word `good` in its output.
fn judged(command: &str) -> String {
    format!(
        r#"
[tasks.t]
outputs = ["out.txt"]
command = "{command}"
check = "grep -q good \"$1\" || {{ echo \"no good in $1\" >&2; exit 1; }}"
"#
    )
}

fn summary(p: &Project) -> serde_json::Value {
    serde_json::from_str(&p.read(".planexe/summary.json")).unwrap()
}

#[test]
fn a_check_that_exits_0_accepts_the_outputs() {
    let p = Project::new(&judged("echo good > out.txt"));
    p.build().ok().ran(&["t"]);
    let status = p.status_json("t");
    assert_eq!(status["state"], "done");
    assert_eq!(status["checks"][0]["name"], "check");
    assert_eq!(status["checks"][0]["passed"], true);
    assert_eq!(status["checks"][0]["severity"], "error");
    p.build().ok().ran(&[]);
}

#[test]
fn a_check_gets_the_outputs_as_arguments_and_in_planexe_outputs() {
    let p = Project::new(
        r#"
[tasks.t]
outputs = ["a.txt", "b.txt"]
command = "echo a > a.txt; echo b > b.txt"
check = "test \"$1 $2\" = \"$PLANEXE_OUTPUTS\" && test \"$PLANEXE_OUTPUTS\" = 'a.txt b.txt' && test \"$#\" = 2"
"#,
    );
    p.build().ok().ran(&["t"]);
}

#[test]
fn a_rejected_output_is_moved_aside_and_the_good_one_restored() {
    let p = Project::new(&judged("echo good > out.txt"));
    p.build().ok();
    p.write("pipeline.toml", &judged("echo bad > out.txt"));
    p.build()
        .code(1)
        .stderr_has("FAILED t: the check failed (exit status 1): no good in out.txt");
    assert_eq!(p.read("out.txt"), "good\n");
    assert_eq!(p.read(".planexe/failed/t/out.txt"), "bad\n");
    let status = p.status_json("t");
    assert_eq!(status["state"], "failed");
    assert_eq!(status["error"]["kind"], "check_failed");
    assert_eq!(status["error"]["recoverable"], false);
    let message = status["error"]["message"].as_str().unwrap();
    assert!(message.contains("no good in out.txt"), "{message}");
    assert_eq!(status["checks"][0]["passed"], false);
    let failures = p.read(".planexe/failures.jsonl");
    assert!(failures.contains("check_failed"), "{failures}");
}

#[test]
fn a_failed_warn_check_is_a_warning_and_the_task_is_done() {
    let p = Project::new(
        r#"
[tasks.t]
outputs = ["out.txt"]
command = "echo meh > out.txt"
check = "echo 'too short' >&2; exit 1"
severity = "warn"

[tasks.after]
inputs = ["out.txt"]
outputs = ["after.txt"]
command = "cp out.txt after.txt"
"#,
    );
    p.build()
        .ok()
        .ran(&["t", "after"])
        .stderr_has("warn   t: check: the check failed (exit status 1): too short")
        .stderr_has(
            "completed with warnings: t: check: the check failed (exit status 1): too short",
        );
    let status = p.status_json("t");
    assert_eq!(status["state"], "done");
    assert_eq!(status["checks"][0]["passed"], false);
    assert_eq!(status["checks"][0]["severity"], "warn");
    // `status t` lists the task's checks, the failed one with its output.
    p.run(&["status", "t"])
        .ok()
        .stdout_has("  check     check failed (warn): the check failed (exit status 1)")
        .stdout_has("too short");
    let s = summary(&p);
    let warnings = s["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .unwrap()
            .starts_with("t: check: the check failed (exit status 1): too short")),
        "{warnings:?}"
    );
    assert_eq!(s["counts"]["done"], 2);
    let events = p.jsonl(".planexe/events.jsonl");
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "task.check_failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["task"], "t");
    assert_eq!(failed[0]["severity"], "warn");
    assert_eq!(
        failed[0]["error_summary"],
        "check: the check failed (exit status 1): too short"
    );
}

#[test]
fn an_empty_output_fails_unless_min_bytes_is_0() {
    let empty = "[tasks.t]\noutputs = [\"out.txt\"]\ncommand = \"touch out.txt\"\n";
    let p = Project::new(empty);
    const HINT: &str =
        "hint: make the task write more, or set min_bytes lower (0 if an empty output is right)";
    p.build()
        .code(1)
        .stderr_has("output out.txt is 0 bytes, less than min_bytes = 1")
        .stderr_has(HINT);
    p.run(&["status"]).ok().stdout_has(HINT);
    assert_eq!(p.status_json("t")["error"]["kind"], "check_failed");
    assert!(!p.exists("out.txt"));
    assert!(p.exists(".planexe/failed/t/out.txt"));
    p.write(
        "pipeline.toml",
        &empty.replace("command", "min_bytes = 0\ncommand"),
    );
    p.build().ok().ran(&["t"]);
    // And a larger minimum counts bytes.
    p.write(
        "pipeline.toml",
        "[tasks.t]\noutputs = [\"out.txt\"]\nmin_bytes = 10\ncommand = \"echo short > out.txt\"\n",
    );
    p.build()
        .code(1)
        .stderr_has("output out.txt is 6 bytes, less than min_bytes = 10");
}

const RESCUE: &str = r#"
[tasks.r]
outputs = ["r.txt"]
command = "echo partial > r.txt; exit 3"
check = "CHECK"
rescue = true

[tasks.next]
inputs = ["r.txt"]
outputs = ["next.txt"]
command = "cp r.txt next.txt"
"#;

#[test]
fn a_rescue_the_check_accepts_is_done_and_its_dependents_run() {
    let p = Project::new(&RESCUE.replace("CHECK", "grep -q partial \\\"$1\\\""));
    p.build()
        .ok()
        .ran(&["r", "next"])
        .stderr_has("rescued r: the command failed; its checks accepted the outputs");
    assert_eq!(p.read("next.txt"), "partial\n");
    let status = p.status_json("r");
    assert_eq!(status["state"], "done");
    assert_eq!(status["rescued"], true);
    assert!(status["error"].is_null());
    let events = p.read(".planexe/events.jsonl");
    assert!(events.contains("\"task.rescued\""), "{events}");
    let s = summary(&p);
    assert_eq!(s["rescued"], 1);
    assert_eq!(s["counts"]["done"], 2);
    // Done is done: the next build has nothing to do.
    p.build().ok().ran(&[]);
}

#[test]
fn a_rescue_the_check_refuses_fails_with_check_failed() {
    let p = Project::new(&RESCUE.replace("CHECK", "echo nope >&2; exit 1"));
    p.build()
        .code(1)
        .ran(&["r"])
        .stderr_has("FAILED r: exit status 3, and the check failed (exit status 1): nope");
    let status = p.status_json("r");
    assert_eq!(status["error"]["kind"], "check_failed");
    assert_eq!(status["error"]["exit_code"], 3);
    assert!(p.exists(".planexe/failed/r/r.txt"));
}

#[test]
fn crashes_and_missing_outputs_are_never_rescued() {
    for (command, kind) in [
        ("echo x > r.txt; sleep 20", "timeout"),
        ("echo x > r.txt; kill -9 $$", "signal"),
        ("exit 3", "exit"),
    ] {
        let p = Project::new(&format!(
            "[tasks.r]\noutputs = [\"r.txt\"]\ntimeout = 1\ncommand = \"{command}\"\ncheck = \"true\"\nrescue = true\n"
        ));
        p.build().code(1);
        let status = p.status_json("r");
        assert_eq!(status["error"]["kind"], kind, "{command}");
        assert!(status["rescued"].is_null(), "{command}");
    }
}

#[test]
fn rescue_without_a_check_is_refused_at_load() {
    let p = Project::new("[tasks.r]\noutputs = [\"r.txt\"]\ncommand = \"true\"\nrescue = true\n");
    p.build()
        .code(2)
        .stderr_has("pipeline.toml:4:10: `rescue = true` needs a `check`")
        .stderr_has("hint: add check = ");
    let p =
        Project::new("[tasks.r]\noutputs = [\"r.txt\"]\ncommand = \"true\"\nseverity = \"loud\"\n");
    p.build()
        .code(2)
        .stderr_has("pipeline.toml:4:12: unknown severity `loud`");
}

#[test]
fn a_changed_check_runs_the_task_again() {
    let p = Project::new(&judged("echo good > out.txt"));
    p.build().ok().ran(&["t"]);
    p.write(
        "pipeline.toml",
        &judged("echo good > out.txt").replace("grep -q good", "grep -q goo"),
    );
    p.build().ok().ran(&["t"]);
    p.build().ok().ran(&[]);
}

#[test]
fn default_checks_keep_the_fingerprint() {
    // min_bytes = 1 is the default: saying so changes nothing.
    let text = "[tasks.t]\noutputs = [\"out.txt\"]\ncommand = \"echo x > out.txt\"\n";
    let p = Project::new(text);
    p.build().ok().ran(&["t"]);
    let before = p.status_json("t")["fingerprint"].clone();
    p.write(
        "pipeline.toml",
        &text.replace("command", "min_bytes = 1\nseverity = \"error\"\ncommand"),
    );
    p.build().ok().ran(&[]);
    assert_eq!(p.status_json("t")["fingerprint"], before);
}

#[test]
fn planexe_check_judges_the_current_outputs_and_changes_nothing() {
    let p = Project::new(&format!(
        "{}\n[tasks.w]\noutputs = [\"w.txt\"]\ncommand = \"echo w > w.txt\"\ncheck = \"echo thin >&2; exit 1\"\nseverity = \"warn\"\n\n[tasks.plain]\noutputs = [\"p.txt\"]\nmin_bytes = 0\ncommand = \"echo p > p.txt\"\n",
        judged("echo good > out.txt")
    ));
    // Before any build: nothing is done yet, and it says so (it said no
    // done task has a check, of tasks that have one).
    p.run(&["check"]).ok().stderr_has(
        "no task with a check, a judge, a min_bytes above 0 or a JSON answer is done yet: build first (planexe build), then check what it made",
    );
    p.build().ok();
    let before = p.read(".planexe/tasks/t.status");
    p.run(&["check"])
        .ok()
        .stdout_has("ok t\n")
        .stdout_has("warn w: check: the check failed (exit status 1): thin\n");
    // `plain` has no check and allows empty outputs: nothing to check.
    assert!(!p.run(&["check"]).stdout.contains("plain"));
    p.run(&["check", "t"]).ok();
    // An output edited by hand: the check refuses it, and nothing moves.
    p.write("out.txt", "bad\n");
    p.run(&["check", "t"])
        .code(1)
        .stdout_has("FAILED t: the check failed (exit status 1): no good in out.txt\n");
    assert_eq!(p.read("out.txt"), "bad\n");
    assert_eq!(p.read(".planexe/tasks/t.status"), before);
    p.remove("out.txt");
    p.run(&["check", "t"])
        .code(1)
        .stdout_has("FAILED t: output out.txt is missing");
    p.run(&["check", "nope"])
        .code(2)
        .stderr_has("unknown task `nope`");
}

#[test]
fn a_prompt_tasks_answer_is_checked_too() {
    use crate::llm_server::*;
    let server = Server::start();
    server.default_reply(openai_answer("Step 1: dig."));
    let pipeline = format!(
        "[models.local]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\n\n[tasks.ask]\noutputs = [\"answer.md\"]\nprompt = \"Plan a shed\"\ncheck = \"grep -q 'Step 2' \\\"$1\\\" || {{ echo 'one step only' >&2; exit 1; }}\"\nmodel = \"local\"\n",
        server.url
    );
    let p = Project::new(&pipeline);
    p.build()
        .code(1)
        .stderr_has("FAILED ask: the check failed (exit status 1): one step only");
    assert_eq!(p.status_json("ask")["error"]["kind"], "check_failed");
    assert_eq!(p.read(".planexe/failed/ask/answer.md"), "Step 1: dig.");
    assert!(!p.exists("answer.md"));
    // As a warning, the answer stands.
    p.write(
        "pipeline.toml",
        &pipeline.replace(
            "model = \"local\"\n",
            "model = \"local\"\nseverity = \"warn\"\n",
        ),
    );
    p.build().ok().stderr_has("warn   ask: check:");
    assert_eq!(p.read("answer.md"), "Step 1: dig.");
}

#[test]
fn a_changed_check_checks_the_current_output_again_without_running_the_task() {
    let p = Project::new(
        "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo hello > a.txt; echo ran >> runs.log\"\ncheck = \"grep -q hello \\\"$1\\\"\"\n\
         [tasks.b]\ninputs = [\"a.txt\"]\noutputs = [\"b.txt\"]\ncommand = \"cp a.txt b.txt\"\n",
    );
    p.build().ok().ran(&["a", "b"]);
    // A new check the output passes: checked again, nothing runs.
    let text = p
        .read("pipeline.toml")
        .replace("grep -q hello", "grep -q hell");
    p.write("pipeline.toml", &text);
    p.run(&["build", "-n"]).ok().stdout_has("a: checks changed");
    p.build().ok();
    assert_eq!(p.read("runs.log"), "ran\n", "the task ran again");
    p.build().ok().ran(&[]);
    // A new check the output fails: the task runs (and then passes it).
    let text = p
        .read("pipeline.toml")
        .replace("grep -q hell", "grep -q nothing-like-it || true");
    p.write("pipeline.toml", &text);
    p.build().ok();
    let text = p
        .read("pipeline.toml")
        .replace("grep -q nothing-like-it || true", "grep -q goodbye");
    p.write("pipeline.toml", &text);
    p.build().code(1).stderr_has("the check failed");
    assert_eq!(p.status_json("a")["error"]["kind"], "check_failed");
    assert_eq!(
        p.read("runs.log"),
        "ran\nran\n",
        "a failing re-check runs the task once"
    );
}

/// A task whose checks changed while a task upstream of it had to run
/// (its input changed): its output was checked again once that task had
/// rebuilt its input, and passed, and the task was done without running,
/// its output made of the input before (the next build ran it). It runs.
#[test]
fn a_changed_check_whose_input_is_rebuilt_first_runs_the_task() {
    let p = Project::new(
        "[tasks.a]\ninputs = [\"src.txt\"]\noutputs = [\"a.txt\"]\ncommand = \"cp src.txt a.txt\"\n\
         [tasks.t]\ninputs = [\"a.txt\"]\noutputs = [\"t.txt\"]\ncommand = \"cp a.txt t.txt\"\ncheck = \"test -s t.txt\"\n",
    );
    p.write("src.txt", "one\n");
    p.build().ok().ran(&["a", "t"]);
    p.write("src.txt", "three\n");
    let text = p
        .read("pipeline.toml")
        .replace("test -s t.txt", "grep -q . t.txt");
    p.write("pipeline.toml", &text);
    p.build().ok().ran(&["a", "t"]);
    assert_eq!(p.read("t.txt"), "three\n");
    p.build().ok().ran(&[]);
}

/// `planexe check` checks a prompt task's output as JSON against its
/// schema, as `touch` does (and as a build checks an answer before it
/// writes it): an output edited by hand into prose, or into JSON its
/// schema refuses, is FAILED, and nothing changes. A JSON answer is
/// checked by default even with no other check (`min_bytes = 0`).
#[test]
fn planexe_check_checks_a_prompt_tasks_json_and_schema() {
    // No server listens there: the checks ask no model.
    let p = Project::new(
        r#"
[models.local]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"

[tasks.outline]
outputs = ["outline.json"]
prompt = "Outline a shed"
schema = "outline.schema.json"
model = "local"

[tasks.loose]
outputs = ["loose.json"]
prompt = "Any JSON"
format = "json"
model = "local"
min_bytes = 0
"#,
    );
    p.write(
        "outline.schema.json",
        r#"{"type": "object", "required": ["sections"], "properties": {"sections": {"type": "array"}}}"#,
    );
    p.write("outline.json", "{\"sections\": [\"walls\"]}\n");
    p.write("loose.json", "[1, 2]\n");
    p.run(&["touch", "outline", "loose"]).ok();
    p.run(&["check"])
        .ok()
        .stdout_has("ok outline\n")
        .stdout_has("ok loose\n");
    let before = p.read(".planexe/tasks/outline.status");
    p.write("outline.json", "Here it is: {\"sections\": []}\n");
    p.write("loose.json", "[1, 2] and more\n");
    p.run(&["check"])
        .code(1)
        .stdout_has("FAILED outline: output outline.json is not JSON (the task's format is json): expected value at line 1 column 1\n")
        .stdout_has("FAILED loose: output loose.json is not JSON (the task's format is json): trailing characters at line 1 column 8\n");
    p.write("outline.json", "{\"section\": []}\n");
    p.run(&["check", "outline"]).code(1).stdout_has(
        "FAILED outline: output outline.json does not match the schema outline.schema.json: at /: \"sections\" is a required property\n",
    );
    assert_eq!(p.read("outline.json"), "{\"section\": []}\n");
    assert_eq!(p.read(".planexe/tasks/outline.status"), before);
}

/// A prompt task whose checks alone changed has its current output checked
/// again, as touch and `planexe check` check it: an output edited by hand
/// into JSON its schema refuses is not accepted; the task runs again.
#[test]
fn a_rechecked_prompt_task_has_its_answer_checked_against_its_schema() {
    use crate::llm_server::*;
    let server = Server::start();
    server.default_reply(openai_answer("{\"sections\": [\"walls\"]}"));
    let pipeline = format!(
        "[models.local]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\n\n[tasks.outline]\noutputs = [\"outline.json\"]\nprompt = \"Outline a shed\"\nschema = \"outline.schema.json\"\nmodel = \"local\"\n",
        server.url
    );
    let p = Project::new(&pipeline);
    p.write(
        "outline.schema.json",
        r#"{"type": "object", "required": ["sections"], "properties": {"sections": {"type": "array"}}}"#,
    );
    p.build().ok().ran(&["outline"]);
    // Edited by hand: kept, as any edited output is.
    p.write_at("outline.json", "{\"section\": []}\n", 2_000_000);
    p.build().ok().ran(&[]);
    p.write(
        "pipeline.toml",
        &format!("{pipeline}check = \"test -s \\\"$1\\\"\"\n"),
    );
    p.run(&["build", "-n"])
        .ok()
        .stdout_has("outline: checks changed (outputs checked again)");
    p.build().ok().ran(&["outline"]);
    assert_eq!(server.requests().len(), 2);
    let answer: serde_json::Value = serde_json::from_str(&p.read("outline.json")).unwrap();
    assert_eq!(answer, serde_json::json!({"sections": ["walls"]}));
    p.run(&["check", "outline"]).ok().stdout_has("ok outline\n");
}

/// While a task's output check runs, `status` gave the check's pid as the
/// task's, where docs/observability.md says `pid` is the command's, null
/// once it has exited and the checks go on. (The check waits 30 s at most
/// for `go`: a failed assertion leaves no build running on.)
#[test]
fn a_running_check_is_not_the_tasks_pid() {
    let p = Project::new(
        "[tasks.w]\noutputs = [\"w.txt\"]\ncommand = \"echo w > w.txt\"\n\
         check = \"touch checking; i=0; while [ ! -e go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\"\n",
    );
    let mut build = p
        .command(&["build"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the check to start", || p.exists("checking"));
    // The sidecar says running once it is due (a moment after the start).
    let running = || -> serde_json::Value {
        let out = p.run(&["status", "--json"]);
        let status: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        status["tasks"][0].clone()
    };
    wait_for("w to show as running", || running()["state"] == "running");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let line = running();
    assert_eq!(line["state"], "running", "{line}");
    assert_eq!(line["pid"], serde_json::Value::Null, "{line}");
    p.write("go", "");
    assert_eq!(build.wait().unwrap().code(), Some(0));
}

/// A fan-out instance's check was run with `{{ expert }}` as it was
/// written (a review check `grep -qi '{{ expert }}' "$1"` failed every
/// instance, saying `no mention of {{ expert }}`): it sees the instance's
/// variables, quoted for the shell as a command's are, and an unknown one
/// is refused at load.
#[test]
fn a_fan_out_instances_check_sees_its_variables() {
    let p = Project::new(
        r#"
[tasks.review]
matrix = { expert = ["finance", "legal affairs"] }
outputs = ["reviews/{{ key }}.md"]
command = "echo 'a finance review' > {outputs}"
check = "grep -q {{ expert }} \"$1\" || { echo no mention of {{ expert }}; exit 1; }"
"#,
    );
    let run = p.build();
    run.code(1).stderr_has(
        "FAILED review[legal affairs]: the check failed (exit status 1): no mention of legal affairs",
    );
    assert!(
        !run.stderr.contains("FAILED review[finance]"),
        "{}",
        run.stderr
    );
    assert_eq!(p.status_json("review[finance]")["state"], "done");

    let p = Project::new(
        "[tasks.review]\nmatrix = { expert = [\"a\"] }\noutputs = [\"{{ expert }}.md\"]\ncommand = \"echo a > {outputs}\"\ncheck = \"grep -q {{ expret }} \\\"$1\\\"\"\n",
    );
    p.build()
        .code(2)
        .stderr_has("pipeline.toml:5:9: task `review[a]`")
        .stderr_has("expret");
}
