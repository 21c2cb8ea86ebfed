//! Answers sized for a model's context: a status (and so `wait` and
//! `stop`), a summary and a clean, of a pipeline of thousands of tasks lists at most
//! `status_tasks_max` of them, the failed ones first, without null fields,
//! the end of the log of the first ten failed ones only, and counts the
//! others; an explanation of a task that reads thousands of files lists
//! the ones that changed first; `runs` lists the newest 100 runs.

use serde_json::json;

use super::Client;
use crate::harness::*;

/// 300 instances, every one failing with a log of a few hundred bytes,
/// and one task that succeeds.
fn wide() -> String {
    let values: Vec<String> = (0..300).map(|n| format!("\"{n:03}\"")).collect();
    format!(
        r#"
[tasks.ok]
inputs = ["plan.txt"]
outputs = ["ok.txt"]
command = "cp plan.txt ok.txt"

[tasks.each]
matrix = {{ n = [{}] }}
inputs = ["ok.txt"]
outputs = ["out/{{{{ n }}}}.txt"]
command = "printf 'why %0200d\n' 0; exit 3"
"#,
        values.join(", ")
    )
}

#[test]
fn a_status_of_thousands_of_tasks_lists_the_failed_first_and_counts_the_rest() {
    let p = Project::new(&wide());
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "wide"}));
    let max = c.ok("server_info", json!({}))["limits"]["status_tasks_max"]
        .as_u64()
        .unwrap();
    assert_eq!(max, 100);
    let built = p.run(&["build", "-C", "wide", "-k", "-j", "8", "--quiet"]);
    assert_eq!(built.code, 1, "{}", built.stderr);

    let result = c.call("status", json!({"run": "wide"}));
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(text.len() < 60_000, "{} bytes", text.len());
    let status = c.ok("status", json!({"run": "wide"}));
    assert_eq!(status["counts"]["failed"], 300, "{status}");
    let tasks = status["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 100);
    assert_eq!(status["tasks_omitted"], 201);
    // The failed ones, in the pipeline's order; `ok`, done, left out.
    assert_eq!(tasks[0]["task"], "each[000]");
    assert_eq!(tasks[99]["task"], "each[099]");
    assert!(tasks.iter().all(|t| t["state"] == "failed"));
    for line in tasks {
        let line = line.as_object().unwrap();
        assert!(line.values().all(|v| !v.is_null()), "{line:?}");
    }
    let tails = tasks.iter().filter(|t| t.get("log_tail").is_some()).count();
    assert_eq!(tails, 10);
    assert_eq!(status["error"]["failed_tasks"], 300);
    assert!(status["error"]["log_tail"].is_string());

    // The summary's tasks alike.
    let summary = c.ok("summary", json!({"run": "wide"}));
    assert_eq!(summary["counts"]["failed"], 300, "{summary}");
    let tasks = summary["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 100);
    assert_eq!(summary["tasks_omitted"], 201);
    assert_eq!(tasks[0]["task"], "each[000]");
    assert!(tasks.iter().all(|t| t["state"] == "failed"));
    assert!(tasks
        .iter()
        .all(|t| t.as_object().unwrap().values().all(|v| !v.is_null())));

    // A clean of the fan-out's source and what reads it, bounded alike.
    let cleaned = c.ok(
        "clean",
        json!({"run": "wide", "tasks": ["ok"], "downstream": true}),
    );
    let tasks = cleaned["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 100);
    assert_eq!(tasks[0], "ok");
    assert_eq!(cleaned["tasks_omitted"], 201);
    assert_eq!(cleaned["deleted"].as_array().unwrap().len(), 100);
    assert!(
        cleaned["deleted_omitted"].as_u64().unwrap() > 300,
        "{cleaned}"
    );
    assert_eq!(
        c.ok("status", json!({"run": "wide"}))["counts"]["never-built"],
        301
    );

    // A run never built: its first tasks, in the pipeline's order.
    c.ok("run_create", json!({"plan": "a barn", "name": "new"}));
    let new = c.ok("status", json!({"run": "new"}));
    assert_eq!(new["tasks"].as_array().unwrap().len(), 100);
    assert_eq!(new["tasks_omitted"], 201);
    assert_eq!(
        new["tasks"][0],
        json!({"task": "ok", "state": "never-built", "reason": "never built"})
    );
    assert_eq!(new["tasks"][99]["task"], "each[098]");
    assert!(c.close().success());
}

/// A task that reads a fan-out of 250 instances: its explanation lists 100
/// inputs, the one that changed among them though it comes late (all 250
/// made an answer of 75 KB; 2000, 600 KB).
#[test]
fn an_explanation_lists_the_inputs_that_changed_first_and_counts_the_rest() {
    let values: Vec<String> = (0..250).map(|n| format!("\"{n:03}\"")).collect();
    let p = Project::new(&format!(
        r#"
[tasks.each]
matrix = {{ n = [{}] }}
inputs = ["plan.txt"]
outputs = ["out/{{{{ n }}}}.txt"]
command = "echo {{{{ n }}}} > out/{{{{ n }}}}.txt"

[tasks.merge]
inputs = ["each"]
outputs = ["merged.txt"]
command = "cat out/*.txt > merged.txt"
"#,
        values.join(", ")
    ));
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    let fresh = c.ok("explain", json!({"run": "r", "task": "merge"}));
    assert_eq!(fresh["upstream"].as_array().unwrap().len(), 100, "{fresh}");
    assert_eq!(fresh["upstream_omitted"], 150);
    let built = p.run(&["build", "-C", "r", "-j", "8", "--quiet"]);
    assert_eq!(built.code, 0, "{}", built.stderr);
    p.write("r/out/200.txt", "edited\n");

    let explained = c.ok("explain", json!({"run": "r", "task": "merge"}));
    let inputs = explained["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 100);
    assert_eq!(explained["inputs_omitted"], 150);
    assert_eq!(inputs[0]["path"], "out/000.txt");
    let changed: Vec<_> = inputs.iter().filter(|i| i["verdict"] != "same").collect();
    assert_eq!(changed.len(), 1, "{explained}");
    assert_eq!(changed[0]["path"], "out/200.txt");
    assert_eq!(inputs[99]["path"], "out/200.txt");
    assert_eq!(explained["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(explained["outputs_omitted"], 0);
    assert!(c.close().success());
}

/// `runs` lists the newest 100 runs and counts the older ones.
#[test]
fn runs_lists_the_newest_hundred() {
    let p = Project::new(super::COMMANDS);
    let mut c = Client::start(&p, &[]);
    for n in 0..103 {
        c.ok(
            "run_create",
            json!({"plan": "a shed", "name": format!("r{n:03}")}),
        );
    }
    let runs = c.ok("runs", json!({}));
    let listed = runs["runs"].as_array().unwrap();
    assert_eq!(listed.len(), 100);
    assert_eq!(runs["runs_omitted"], 3);
    // Newest first (runs made in the same millisecond by name).
    assert!(listed.iter().any(|r| r["run"] == "r102"));
    let times: Vec<&str> = listed
        .iter()
        .map(|r| r["created_at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    assert!(c.close().success());
}
