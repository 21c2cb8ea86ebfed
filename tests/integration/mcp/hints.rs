//! Hints in the tools' terms: a client cannot run `planexe status` or
//! `planexe build`, or pass `--model`, so an unknown task, target or model
//! and a damaged record are told what the tools offer, while the command
//! line keeps its own words.

use serde_json::{json, Value};

use super::{Client, COMMANDS};
use crate::harness::*;

/// A pipeline with a prompt task, so that a model override is resolved.
pub(super) fn with_model() -> String {
    format!(
        r#"{COMMANDS}
[models.local]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"

[tasks.ask]
inputs = ["upper.txt"]
outputs = ["answer.md"]
model = "local"
prompt = "{{{{ inputs['upper.txt'] }}}}"
"#
    )
}

#[test]
fn an_unknown_task_target_or_model_is_told_in_the_tools_terms() {
    let p = Project::new(&with_model());
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    let lists_with_status = |message: &str| {
        assert!(message.contains("did you mean `upper`?"), "{message}");
        assert!(message.contains("call the status tool"), "{message}");
        assert!(!message.contains("planexe status"), "{message}");
    };
    lists_with_status(&c.err("explain", json!({"run": "r", "task": "uper"})));
    lists_with_status(&c.err("clean", json!({"run": "r", "tasks": ["uper"]})));
    // A target and a model are checked before a build starts: the refusal
    // is the tool's, not a build's log.
    let message = c.err("build", json!({"run": "r", "targets": ["uper"]}));
    assert!(message.contains("unknown target `uper`"), "{message}");
    assert!(!message.contains("refused to start"), "{message}");
    lists_with_status(&message);
    let message = c.err("build", json!({"run": "r", "model": "nope"}));
    assert!(message.contains("unknown model `nope`"), "{message}");
    assert!(message.contains("`model` argument"), "{message}");
    assert!(message.contains("models are: local"), "{message}");
    assert!(!message.contains("--model"), "{message}");
    assert!(!message.contains("refused to start"), "{message}");
    assert!(!p.exists("r/.planexe/build.log"), "no build started");
    // A target that is an output, and one of each kind, still build.
    let started = c.ok("build", json!({"run": "r", "targets": ["upper.txt"]}));
    assert!(started["pid"].as_u64().unwrap() > 0);
    c.ok("wait", json!({"run": "r"}));
    // Named by its absolute path in the run (the run_dir a client is
    // given), as `planexe build` takes it: it was refused as unknown.
    let absolute = format!(
        "{}/upper.txt",
        p.path("r").canonicalize().unwrap().display()
    );
    c.ok("build", json!({"run": "r", "targets": [absolute]}));
    c.ok("wait", json!({"run": "r"}));
    // So do an output named to explain and clean, and a source is refused
    // as one.
    let explained = c.ok("explain", json!({"run": "r", "task": "upper.txt"}));
    assert_eq!(explained["task"], "upper", "{explained}");
    assert_eq!(explained["outputs"][0]["edited"], false, "{explained}");
    let message = c.err("clean", json!({"run": "r", "tasks": ["plan.txt"]}));
    assert!(message.contains("plan.txt is a source file"), "{message}");
    let cleaned = c.ok("clean", json!({"run": "r", "tasks": ["upper.txt"]}));
    assert_eq!(cleaned["tasks"], json!(["upper"]), "{cleaned}");
    assert!(!p.exists("r/upper.txt"));
    assert!(c.close().success());
    // The command line's words are its own.
    p.run(&["explain", "-C", "r", "uper"])
        .code(2)
        .stderr_has("run `planexe status -C r` to list tasks");
    p.run(&["build", "-C", "r", "uper"])
        .code(2)
        .stderr_has("run `planexe status -C r` to list tasks");
    p.run(&["build", "-C", "r", "--model", "nope"])
        .code(2)
        .stderr_has("unknown model `nope` (from --model)\n");
}

/// An unknown model's message named every source a model override could
/// have, whichever chose it (and the command line's left out the model
/// the run remembers): each door now names the one that did, in its words.
#[test]
fn an_unknown_model_is_told_where_it_came_from_at_each_door() {
    let p = Project::new(&with_model());
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    c.ok("run_create", json!({"plan": "a shed", "name": "fresh"}));
    let message = c.err("build", json!({"run": "r", "model": "nope"}));
    assert!(
        message.contains("unknown model `nope` (from the build tool's `model` argument)"),
        "{message}"
    );
    // The run remembers `local`, which the pipeline then loses.
    c.ok(
        "build",
        json!({"run": "r", "targets": ["upper"], "model": "local"}),
    );
    c.ok("wait", json!({"run": "r"}));
    let renamed = with_model()
        .replace("[models.local]", "[models.other]")
        .replace("model = \"local\"", "model = \"other\"");
    p.write("pipeline.toml", &renamed);
    let message = c.err("build", json!({"run": "r"}));
    assert!(
        message.contains(
            "unknown model `local` (chosen for this run by an earlier build's `model`, which the \
             run remembers; the build tool's `model` argument chooses another)"
        ),
        "{message}"
    );
    assert!(!message.contains("$PLANEXE_MODEL"), "{message}");
    // A name in the pipeline file: where it is, and what it is to the task.
    p.write(
        "pipeline.toml",
        &with_model().replace("model = \"local\"", "model = \"gone\""),
    );
    let (message, data) = c.refused("build", json!({"run": "fresh"}));
    assert!(
        message.contains("unknown model `gone` (the `model` of task `ask`)"),
        "{message}"
    );
    assert_eq!(data["pipeline_error"]["where"]["line"], 15, "{data}");
    assert!(c.close().success());
    p.write("pipeline.toml", &renamed);
    let mut c = Client::start_with_env(&p, &[], &[("PLANEXE_MODEL", "nope")]);
    let message = c.err("build", json!({"run": "fresh"}));
    assert!(
        message.contains(
            "unknown model `nope` (from the server's $PLANEXE_MODEL, which its operator sets; \
             the build tool's `model` argument chooses another)"
        ),
        "{message}"
    );
    assert!(c.close().success());
    // The command line's words, for the same sources.
    p.run(&["build", "-C", "r"]).code(2).stderr_has(
        "unknown model `local` (chosen for this run by an earlier --model, remembered in \
         .planexe/run.json; `planexe build -C r --model NAME` chooses another)",
    );
    let env = p
        .command(&["build", "-C", "fresh"])
        .env("PLANEXE_MODEL", "nope")
        .output()
        .unwrap();
    assert_eq!(env.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&env.stderr);
    assert!(
        stderr.contains(
            "unknown model `nope` (from $PLANEXE_MODEL; unset it, or name one of the models)"
        ),
        "{stderr}"
    );
    p.write(
        "pipeline.toml",
        &with_model().replace("model = \"local\"", "model = \"gone\""),
    );
    p.run(&["build", "-C", "fresh"])
        .code(2)
        .stderr_has("unknown model `gone` (the `model` of task `ask`)");
}

#[test]
fn a_damaged_record_is_rewritten_by_the_build_tool() {
    let p = Project::new(&with_model());
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    // A task left to build: status checks every task, and sees the record.
    c.ok("build", json!({"run": "r", "targets": ["upper"]}));
    c.ok("wait", json!({"run": "r"}));
    p.write("r/.planexe/tasks/upper.status", "garbage{\n");
    let status = c.ok("status", json!({"run": "r"}));
    let warnings = status["warnings"].to_string();
    assert!(warnings.contains("upper.status is damaged"), "{warnings}");
    assert!(warnings.contains("the build tool"), "{warnings}");
    assert!(!warnings.contains("planexe build"), "{warnings}");
    assert!(c.close().success());
    // `status --json` keeps the command line's words.
    p.run(&["status", "--json", "-C", "r"])
        .stdout_has("is damaged; `planexe build -C r` rewrites it from the state log");
}

/// The summary tool told a client whose summary.json was damaged that "the
/// next build that runs something writes it again", as if it could run
/// one from a terminal: it now names the build tool, and that holds.
#[test]
fn a_damaged_summary_is_written_again_by_the_build_tool() {
    let p = Project::new(&with_model());
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    c.ok("build", json!({"run": "r", "targets": ["upper"]}));
    c.ok("wait", json!({"run": "r"}));
    p.write("r/.planexe/summary.json", "[1, 2");
    let message = c.err("summary", json!({"run": "r"}));
    assert!(message.contains("summary.json is damaged"), "{message}");
    assert!(
        message.contains(
            "hint: the next build (the build tool) that runs a task writes it again; the status \
             tool answers meanwhile"
        ),
        "{message}"
    );
    c.ok("clean", json!({"run": "r", "tasks": ["upper"]}));
    c.ok("build", json!({"run": "r", "targets": ["upper"]}));
    c.ok("wait", json!({"run": "r"}));
    assert_eq!(c.ok("summary", json!({"run": "r"}))["counts"]["done"], 1);
    assert!(c.close().success());
}

/// `status` told a client what to do about a failed task in the command
/// line's words (`run planexe build again; ...`): it now names the build
/// tool, while `status --json` keeps the command line's.
#[test]
fn a_failed_tasks_hint_names_the_build_tool() {
    let p = Project::new(&format!(
        "{}\n[tasks.broken]\noutputs = [\"b.txt\"]\ncommand = \"echo no disk >&2; exit 3\"\n",
        with_model()
    ));
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    // `ask` finds no model server (port 9): building again may fix it.
    c.ok("build", json!({"run": "r", "targets": ["ask"]}));
    c.ok("wait", json!({"run": "r"}));
    c.ok("build", json!({"run": "r", "targets": ["broken"]}));
    let status = c.ok("wait", json!({"run": "r"}));
    let hints: Vec<(&str, &str)> = status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| Some((t["task"].as_str()?, t["hint"].as_str()?)))
        .collect();
    assert_eq!(
        hints,
        [
            (
                "ask",
                "call the build tool again; the server may answer this time"
            ),
            (
                "broken",
                "fix the command or its inputs, then call the build tool"
            ),
        ],
        "{status}"
    );
    assert_eq!(
        status["error"]["hint"],
        "call the build tool again; the server may answer this time"
    );
    // What a failed command printed last comes with it; the first failed
    // task's is the error's.
    let broken = status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "broken");
    assert_eq!(broken.unwrap()["log_tail"], "no disk\n", "{status}");
    assert_eq!(status["error"]["log_tail"], Value::Null, "{status}");
    // What the build's hint sends its reader to can be read: every failed
    // call, the last response (they were refused as planexe's own state).
    let failures = c.ok(
        "read_output",
        json!({"run": "r", "path": ".planexe/failures.jsonl"}),
    );
    assert!(
        failures["text"]
            .as_str()
            .unwrap()
            .contains("\"task\":\"ask\""),
        "{failures}"
    );
    std::fs::create_dir_all(p.path("r/.planexe/raw")).unwrap();
    p.write("r/.planexe/raw/ask.json", "{\"response\": \"cut\"}\n");
    let raw = c.ok(
        "read_output",
        json!({"run": "r", "path": ".planexe/raw/ask.json"}),
    );
    assert_eq!(raw["text"], "{\"response\": \"cut\"}\n");
    for other in [
        ".planexe/usage.jsonl",
        ".planexe/raw/../run.json",
        ".planexe/raw/",
    ] {
        let message = c.err("read_output", json!({"run": "r", "path": other}));
        assert!(
            message.contains("planexe's own state"),
            "{other}: {message}"
        );
    }
    assert!(c.close().success());
    // The command line's words, with the `-C` it was given.
    p.run(&["status", "--json", "-C", "r"])
        .stdout_has("\"hint\":\"run planexe build -C r again; the server may answer this time\"")
        .stdout_has("\"hint\":\"fix the command or its inputs, then run planexe build -C r\"");
    // In the run directory, as recorded.
    let out = p
        .command(&["status", "--json"])
        .current_dir(p.path("r"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"hint\":\"fix the command or its inputs, then run planexe build\""),
        "{stdout}"
    );
}

/// `status`'s warning about a damaged state log said "`planexe build`
/// rewrites the log": it now names the build tool.
#[test]
fn a_damaged_state_log_is_rewritten_by_the_build_tool() {
    let p = Project::new(&format!(
        "{}\n[tasks.broken]\noutputs = [\"b.txt\"]\ncommand = \"echo no disk >&2; exit 3\"\n",
        with_model()
    ));
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    c.ok("build", json!({"run": "r", "targets": ["upper"]}));
    c.ok("wait", json!({"run": "r"}));
    c.ok("build", json!({"run": "r", "targets": ["broken"]}));
    c.ok("wait", json!({"run": "r"}));
    // The first line of the log (upper's run) overwritten.
    let log = p.read("r/.planexe/log");
    let (first, rest) = log.split_once('\n').unwrap();
    p.write(
        "r/.planexe/log",
        &format!("{}\n{rest}", "#".repeat(first.len())),
    );
    let status = c.ok("status", json!({"run": "r"}));
    let warnings = status["warnings"].to_string();
    assert!(
        warnings.contains(".planexe/log is damaged at line 1"),
        "{warnings}"
    );
    assert!(
        warnings.contains("; the next build (the build tool) rewrites the log without that line"),
        "{warnings}"
    );
    assert!(!warnings.contains("planexe build"), "{warnings}");
    assert!(c.close().success());
    p.run(&["status", "--json", "-C", "r"])
        .stdout_has("; `planexe build -C r` rewrites the log without that line");
}

/// A build the build tool forced showed its waiting tasks in `status` as
/// `forced (-B)`, a flag no client passes: it now names `force`.
#[test]
fn a_forced_builds_waiting_tasks_name_the_force_argument() {
    let p = Project::new(
        r#"
[pipeline]
jobs = 1
[tasks.first]
inputs = ["plan.txt"]
outputs = ["first.txt"]
command = "while [ ! -f go ]; do sleep 0.02; done; cp plan.txt first.txt"
[tasks.second]
inputs = ["plan.txt"]
outputs = ["second.txt"]
command = "cp plan.txt second.txt"
"#,
    );
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    p.write("r/go", "");
    c.ok("build", json!({"run": "r"}));
    assert_eq!(c.ok("wait", json!({"run": "r"}))["state"], "completed");
    p.remove("r/go");
    c.ok("build", json!({"run": "r", "force": true}));
    let mut status = Value::Null;
    wait_for("second to wait with a reason", || {
        status = c.ok("status", json!({"run": "r"}));
        status["tasks"][0]["state"] == "running" && status["tasks"][1]["reason"].is_string()
    });
    assert_eq!(
        status["tasks"][1]["reason"], "forced (the build tool's `force`)",
        "{status}"
    );
    p.write("r/go", "");
    assert_eq!(c.ok("wait", json!({"run": "r"}))["state"], "completed");
    // The build's resume line names the argument too.
    let log = c.ok(
        "read_output",
        json!({"run": "r", "path": ".planexe/build.log"}),
    );
    let log = log["text"].as_str().unwrap();
    assert!(
        log.contains("0 done, 2 to run (2 forced by the build tool's `force`)"),
        "{log}"
    );
    assert!(!log.contains("-B"), "{log}");
    assert!(c.close().success());
}

/// A target naming an instance that a fan-out's list still names, while
/// the list is to be made again (its producer's input changed), is refused
/// by the build tool itself, in its terms, as the build would refuse it:
/// the tool's check expands fan-outs as the build does before it reads its
/// targets (only those whose list is up to date), and reads the journal a
/// crashed build left, as the build does.
#[test]
fn an_instance_of_a_list_to_be_made_again_is_refused_by_the_tool() {
    let p = Project::new(
        r#"
[tasks.mk]
inputs = ["plan.txt"]
outputs = ["list.json"]
command = "awk 'BEGIN { printf \"[\" } { printf \"%s\\\"%s\\\"\", (NR > 1 ? \",\" : \"\"), $0 } END { print \"]\" }' plan.txt > list.json"
[tasks.wbs]
foreach = { file = "list.json" }
outputs = ["out/{{ item }}.txt"]
command = "mkdir -p out; echo {{ item }} > out/{{ item }}.txt"
"#,
    );
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a\nb", "name": "r"}));
    c.ok("build", json!({"run": "r"}));
    assert_eq!(c.ok("wait", json!({"run": "r"}))["state"], "completed");
    assert_eq!(p.read("r/list.json"), "[\"a\",\"b\"]\n");
    p.write("r/plan.txt", "a\nc\n");
    let log = p.read("r/.planexe/build.log");
    // The fan-out's instances done before are counted, by both tools, as
    // `status` and `explain` count them.
    let explained = c.ok("explain", json!({"run": "r", "task": "wbs"}));
    assert_eq!(explained["done_before"], 2, "{explained}");
    let status = c.ok("status", json!({"run": "r"}));
    let line = status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "wbs")
        .unwrap()
        .clone();
    assert_eq!(line["done_before"], 2, "{status}");
    // It says what the instance waits for (it said `unknown target`, as
    // of a typo).
    let waits = "`wbs[1]` is an instance of the fan-out `wbs`, which has none yet: it expands when list.json is built";
    let message = c.err("build", json!({"run": "r", "targets": ["wbs[1]"]}));
    assert!(message.contains(waits), "{message}");
    assert!(
        message.contains("name the fan-out, `wbs`, until its list is built"),
        "{message}"
    );
    assert!(!message.contains("refused to start"), "{message}");
    assert_eq!(p.read("r/.planexe/build.log"), log, "no build started");
    p.run(&["build", "-C", "r", "wbs[1]"])
        .code(2)
        .stderr_has(waits);
    // Once the list is made again, the instance is its new item.
    c.ok("build", json!({"run": "r", "targets": ["mk"]}));
    c.ok("wait", json!({"run": "r"}));
    c.ok("build", json!({"run": "r", "targets": ["wbs[1]"]}));
    c.ok("wait", json!({"run": "r"}));
    assert_eq!(p.read("r/out/c.txt"), "c\n");
    assert!(c.close().success());
}

/// `status` rebuilt a failed task's hint from its kind alone, so a judge
/// that could not score was remedied as if the task's own model had
/// failed (`check the API key and the model's base_url`): the tool now
/// speaks of the judge's model, as `status --json` does.
#[test]
fn a_judges_failure_is_remedied_in_the_judges_terms() {
    let server = crate::llm_server::Server::start();
    server.script([
        crate::llm_server::openai_answer("Dig."),
        crate::llm_server::json(401, json!({"error": {"message": "bad key"}})),
    ]);
    let p = Project::new(&format!(
        "{}\n[models.j]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"j\"\nstream = false\n\
         [tasks.judged]\noutputs = [\"j.md\"]\nmodel = \"j\"\nprompt = \"Plan it\"\n\
         [tasks.judged.judge]\nprompt = \"Score {{{{ output }}}}\"\n",
        with_model(),
        server.url
    ));
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    c.ok("build", json!({"run": "r", "targets": ["judged"]}));
    let status = c.ok("wait", json!({"run": "r"}));
    let hint = "check the API key and base_url of the judge's model (`model` in the judge's table)";
    let task = status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "judged")
        .unwrap()
        .clone();
    assert_eq!(task["error_kind"], "auth", "{status}");
    assert_eq!(task["error_judge"], true, "{status}");
    assert_eq!(task["hint"], hint, "{status}");
    assert_eq!(status["error"]["hint"], hint, "{status}");
    assert!(c.close().success());
    p.run(&["status", "--json", "-C", "r"])
        .stdout_has(&format!("\"hint\":\"{hint}\""));
}

/// A fan-out whose list cannot be read names its own fix (here: a key that
/// cannot name a file) before what the tools offer; `status --json` keeps
/// the same fix before the command line's words.
#[test]
fn a_bad_lists_own_hint_stays_before_the_build_tool() {
    let p = Project::new(&format!(
        "{COMMANDS}\n[tasks.list]\ninputs = [\"upper.txt\"]\noutputs = [\"items.json\"]\n\
         command = \"echo '[{{\\\"id\\\": \\\"a/b\\\"}}]' > items.json\"\n\
         [tasks.per]\nforeach = {{ file = \"items.json\", key = \"id\" }}\n\
         outputs = [\"per/{{{{ key }}}}.txt\"]\ncommand = \"echo > {{outputs}}\"\n"
    ));
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    c.ok("build", json!({"run": "r"}));
    let status = c.ok("wait", json!({"run": "r"}));
    let own = "keys are made of letters, digits, spaces and - _ . , + @ =; choose another \
               `key` field, or none to number the items; ";
    let per = status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "per")
        .unwrap();
    let hint = per["hint"].as_str().unwrap();
    assert!(
        hint.starts_with(own) && hint.ends_with("then call the build tool"),
        "{status}"
    );
    assert!(!hint.contains("planexe build"), "{hint}");
    assert!(c.close().success());
    p.run(&["status", "--json", "-C", "r"])
        .stdout_has(&format!("\"hint\":\"{own}fix what the error names"));
}
