//! What templates read of a task's files: a prompt's inputs, and the
//! outputs a command's judge scores. A file is read when a template names
//! it, and must then be UTF-8 text; one no template names (a binary input
//! a task only depends on, a chart beside the text a judge scores) is
//! never read or sent.

use crate::harness::*;
use crate::llm_server::*;

const BINARY: &[u8] = b"PK\x03\x04\xff\x00\x01 not text";

fn project(server: &Server, tasks: &str) -> Project {
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n[models.local]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\n{tasks}",
        server.url
    ));
    p.write("plan.txt", "a shed");
    std::fs::write(p.path("data.zip"), BINARY).unwrap();
    p
}

#[test]
fn a_binary_input_the_prompt_does_not_name_is_not_read_or_sent() {
    let server = Server::start();
    server.default_reply(openai_answer("Dig."));
    let p = project(
        &server,
        "[tasks.ask]\ninputs = [\"plan.txt\", \"data.zip\"]\noutputs = [\"a.md\"]\nprompt = \"Plan {{ inputs['plan.txt'] }}\"\n",
    );
    p.build().ok().ran(&["ask"]);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].json()["messages"][0]["content"], "Plan a shed");
    // Still an input: a change makes the task stale.
    std::fs::write(p.path("data.zip"), b"PK\x03\x04\xfe changed").unwrap();
    p.build().ok().ran(&["ask"]);
}

#[test]
fn a_binary_input_the_prompt_names_fails_the_task_before_any_call() {
    let server = Server::start();
    server.default_reply(openai_answer("Dig."));
    let p = project(
        &server,
        "[tasks.ask]\ninputs = [\"plan.txt\", \"data.zip\"]\noutputs = [\"a.md\"]\nsystem = \"{{ inputs['plan.txt'] }}\"\nprompt = \"Read {{ inputs['data.zip'] }}\"\n",
    );
    let run = p.build();
    run.code(1).stderr_has(
        "FAILED ask: cannot render the prompt (pipeline.toml): input data.zip is not UTF-8 text: byte 0xFF at offset 4 cannot start or continue a character; a template reads an input as text",
    );
    // No call, so no response to point at: the remedy instead.
    run.stderr_has("hint: fix the prompt template; ");
    assert!(!run.stderr.contains("raw/ask.json"), "{}", run.stderr);
    assert!(server.requests().is_empty(), "the garbled file was sent");
    assert!(!p.exists("a.md"));
    let error = &p.status_json("ask")["error"];
    assert_eq!(error["kind"], "template", "{error}");
    assert_eq!(error["recoverable"], false, "{error}");
    let failures = p.jsonl(".planexe/failures.jsonl");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["error_type"], "template");
    // No call was made: no `attempt 0` in the status line.
    let status = p.run(&["status"]);
    status.stdout_has(
        "template: cannot render the prompt (pipeline.toml): input data.zip is not UTF-8 text",
    );
    assert!(!status.stdout.contains("attempt"), "{}", status.stdout);
    // Made text, the file is read and sent, and the task runs.
    p.write("data.zip", "a list of parts");
    p.build().ok().ran(&["ask"]);
    let body = server.requests()[0].json();
    assert_eq!(body["messages"][0]["content"], "a shed");
    assert_eq!(body["messages"][1]["content"], "Read a list of parts");
}

#[test]
fn a_judge_that_names_a_binary_input_fails_as_a_template_error() {
    let server = Server::start();
    server.default_reply(openai_answer("Dig."));
    let p = project(
        &server,
        "[tasks.ask]\ninputs = [\"plan.txt\", \"data.zip\"]\noutputs = [\"a.md\"]\nprompt = \"Plan {{ inputs['plan.txt'] }}\"\n\
         [tasks.ask.judge]\nprompt = \"Does {{ output }} use {{ inputs['data.zip'] }}?\"\n",
    );
    p.build()
        .code(1)
        .stderr_has("cannot render the judge's prompt: input data.zip is not UTF-8 text");
    // The task's own call was made; the judge's was not.
    assert_eq!(server.requests().len(), 1);
    assert_eq!(p.status_json("ask")["error"]["kind"], "template");
}

/// A command that writes a text and a binary file, judged.
fn judged_command(server: &Server, judge: &str) -> Project {
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n[models.local]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\n\
         [tasks.c]\noutputs = [\"chart.png\", \"notes.md\"]\ncommand = \"printf '\\\\211PNG\\\\r\\\\n' > chart.png; echo fine > notes.md\"\n\
         [tasks.c.judge]\nprompt = \"{judge}\"\n",
        server.url
    ));
    p
}

fn verdict(score: f64) -> Reply {
    openai_answer(&serde_json::json!({"score": score, "reason": "ok"}).to_string())
}

#[test]
fn a_judge_scores_the_text_a_command_wrote_beside_a_binary_file() {
    let server = Server::start();
    server.default_reply(verdict(0.9));
    let p = judged_command(&server, "Score {{ outputs['notes.md'] }}");
    p.build().ok().ran(&["c"]);
    let asked = server.requests()[0].json();
    assert_eq!(asked["messages"][1]["content"], "Score fine\n");
    assert_eq!(p.status_json("c")["judge"]["score"], 0.9);
}

#[test]
fn a_judge_that_names_a_binary_output_cannot_score_it() {
    for named in ["{{ output }}", "{{ outputs['chart.png'] }}"] {
        let server = Server::start();
        server.default_reply(verdict(0.9));
        let p = judged_command(&server, &format!("Score {named}"));
        p.build().code(1).stderr_has(
            "cannot render the judge's prompt: output chart.png is not UTF-8 text: byte 0x89 at offset 0 cannot start or continue a character; a judge reads an output as text",
        );
        assert!(server.requests().is_empty(), "{named}: the chart was sent");
        let error = &p.status_json("c")["error"];
        assert_eq!(error["kind"], "template", "{named}: {error}");
        assert_eq!(error["judge"], true, "{named}: {error}");
    }
}
