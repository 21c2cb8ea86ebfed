//! A model's server found unreachable by every attempt of one task's call
//! is not retried by the calls of the tasks after it (until a call to it
//! is answered): a build kept going over a dead server ends in moments,
//! and a fallback model is asked at once.

use crate::harness::*;
use crate::llm_server::*;

/// Four prompt tasks asking `a`, run one at a time.
fn tasks() -> String {
    (0..4)
        .map(|i| format!("[tasks.t{i}]\noutputs = [\"o{i}.md\"]\nprompt = \"say {i}\"\n"))
        .collect()
}

fn model(name: &str, url: &str, more: &str) -> String {
    format!(
        "[models.{name}]\nprovider = \"openai\"\nbase_url = \"{url}/v1\"\nmodel = \"m\"\nstream = false\n{more}"
    )
}

#[test]
fn a_server_every_attempt_of_a_task_found_unreachable_is_not_retried_by_the_next() {
    let refused = RefusedPort::new();
    let url = format!("http://127.0.0.1:{}", refused.port);
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"a\"\n{}{}",
        model("a", &url, ""),
        tasks()
    ));
    let run = p.run(&["build", "-k", "-j1"]);
    run.code(1).stderr_has("4 failed");
    // The first task tries five times; each after it once.
    let usage = p.jsonl(".planexe/usage.jsonl");
    assert_eq!(usage.len(), 5 + 3, "{usage:?}");
    let first = p.status_json("t0");
    let message = first["error"]["message"].as_str().unwrap();
    assert!(message.contains("(5 attempts)"), "{message}");
    for t in ["t1", "t2", "t3"] {
        let status = p.status_json(t);
        let message = status["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(
                "(1 attempt, not retried: the server did not answer any attempt of t0 either)"
            ),
            "{message}"
        );
        // Still a connection failure, which the next build tries again.
        assert_eq!(status["error"]["kind"], "connection");
        assert_eq!(status["error"]["recoverable"], true);
    }
}

#[test]
fn a_dead_server_s_fallback_is_asked_at_once_and_a_live_one_is_retried() {
    let refused = RefusedPort::new();
    let dead = format!("http://127.0.0.1:{}", refused.port);
    let server = Server::start();
    server.default_reply(openai_answer("ok"));
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"a\"\n{}{}{}",
        model("a", &dead, "fallback = [\"b\"]\n"),
        model("b", &server.url, ""),
        tasks()
    ));
    p.run(&["build", "-j1"]).ok();
    let usage = p.jsonl(".planexe/usage.jsonl");
    let asked = |m: &str| usage.iter().filter(|u| u["model"] == m).count();
    assert_eq!(asked("a"), 5 + 3, "{usage:?}");
    assert_eq!(asked("b"), 4, "{usage:?}");
    assert_eq!(p.read("o3.md"), "ok");

    // A server that answers, even with an error, is there: its transient
    // errors are retried by every task.
    let flaky = Server::start();
    flaky.default_reply(json(503, serde_json::json!({"error": "busy"})));
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"a\"\n{}{}",
        model("a", &flaky.url, ""),
        tasks()
    ));
    p.run(&["build", "-k", "-j1"]).code(1);
    assert_eq!(p.jsonl(".planexe/usage.jsonl").len(), 4 * 5);
}
