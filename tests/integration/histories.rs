//! `events.jsonl` and `trace.json` stay bounded: a build that finds one
//! over its cap (16 MiB) sets it aside as `events.1.jsonl` / `trace.1.json`
//! and starts it afresh, and every reader of them still finds what it
//! looks for. The cap is reached by putting a big file in place, as
//! months of builds would. `usage.jsonl` is kept whole, and `status`
//! reads only the calls after the sums a build left in `usage.sum`.

use crate::harness::*;
use crate::llm_server::*;

/// The cap (16 MiB): a history this big is not over it.
const CAP: usize = 16 * 1024 * 1024;

const PIPELINE: &str = r#"
[tasks.a]
outputs = ["a.txt"]
command = "echo a > a.txt"
[tasks.bad]
inputs = ["a.txt"]
outputs = ["b.txt"]
command = "echo nope >&2; exit 3"
"#;

/// The history `text` as a trace: its array, closed.
fn trace(text: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(&format!("{}]", text.trim_end().trim_end_matches(','))).unwrap()
}

/// A history grown to the cap: what builds appended, then as many copies
/// of `line` as fit, then blank lines (a few: readers skip them).
fn grow(p: &Project, rel: &str, line: &str) {
    let mut text = p.read(rel);
    while text.len() + line.len() <= CAP {
        text.push_str(line);
    }
    text.extend(std::iter::repeat_n('\n', CAP - text.len()));
    std::fs::write(p.path(rel), &text).unwrap();
}

#[test]
fn histories_over_their_cap_are_set_aside_and_started_afresh() {
    let p = Project::new(PIPELINE);
    p.build().code(1);
    let failed = p.jsonl(".planexe/events.jsonl");
    let error_id = failed
        .iter()
        .find(|e| e["event"] == "task.failed")
        .and_then(|e| e["error_id"].as_str())
        .unwrap()
        .to_string();
    let old_event = failed[0].to_string();
    grow(&p, ".planexe/events.jsonl", &format!("{old_event}\n"));
    grow(
        &p,
        ".planexe/trace.json",
        &format!("{}\n", " ".repeat(4095)),
    );
    // At the cap, nothing is set aside: the build appends.
    p.build().code(1);
    assert!(!p.exists(".planexe/events.1.jsonl"));
    assert!(!p.exists(".planexe/trace.1.json"));
    let events = p.read(".planexe/events.jsonl");
    let traced = p.read(".planexe/trace.json");
    assert!(events.len() > CAP && traced.len() > CAP);
    // Over it, the next build sets each aside, whole, and starts afresh.
    let before = std::fs::metadata(p.path(".planexe/events.jsonl")).unwrap();
    p.build().code(1);
    assert_eq!(p.read(".planexe/events.1.jsonl"), events);
    assert_eq!(p.read(".planexe/trace.1.json"), traced);
    let fresh = p.jsonl(".planexe/events.jsonl");
    let names: Vec<&str> = fresh.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "pipeline.started",
            "task.started",
            "task.failed",
            "pipeline.failed"
        ]
    );
    // A reader following the file by name sees it shrink, a new file.
    let after = std::fs::metadata(p.path(".planexe/events.jsonl")).unwrap();
    assert!(after.len() < before.len());
    use std::os::unix::fs::MetadataExt;
    assert_ne!(after.ino(), before.ino());
    // The fresh trace is a trace of its own: its array opens again.
    let spans = trace(&p.read(".planexe/trace.json"));
    assert!(spans.iter().any(|e| e["name"] == "bad" && e["ph"] == "X"));
    // Every error_id, in either file, is still a line of failures.jsonl.
    let failures = p.read(".planexe/failures.jsonl");
    assert!(p.read(".planexe/events.1.jsonl").contains(&error_id));
    assert!(failures.contains(&error_id));
    for e in fresh.iter().filter(|e| e["event"] == "task.failed") {
        assert!(failures.contains(e["error_id"].as_str().unwrap()));
    }
    // status, its progress from the fresh events, and the report, whose
    // timelines go on into the trace set aside.
    let status: serde_json::Value =
        serde_json::from_str(&p.run(&["status", "--json"]).ok().stdout).unwrap();
    assert_eq!(
        status["last_progress_at"],
        fresh.last().unwrap()["timestamp_utc"]
    );
    p.run(&["report", "-o", "report.html"]).ok();
    let page = p.read("report.html");
    assert_eq!(
        page.matches("<details class=\"build\"").count(),
        3,
        "the report shows the builds before the trace was set aside"
    );
    // The next build appends to the fresh files; the set-aside ones stay.
    p.build().code(1);
    assert_eq!(p.jsonl(".planexe/events.jsonl").len(), 8);
    assert_eq!(p.read(".planexe/events.1.jsonl"), events);
}

#[test]
fn status_sums_the_calls_after_those_the_last_build_summed() {
    let server = Server::start();
    server.default_reply(openai_answer("fine"));
    let pipeline = |prompt: &str| {
        format!(
            "[models.m]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\n\
             [tasks.ask]\noutputs = [\"a.md\"]\nprompt = \"{prompt}\"\nmodel = \"m\"\n",
            server.url
        )
    };
    let p = Project::new(&pipeline("Plan it"));
    p.build().ok();
    let calls = |p: &Project| {
        let status: serde_json::Value =
            serde_json::from_str(&p.run(&["status", "--json"]).ok().stdout.clone()).unwrap();
        status["totals"]["calls"].as_u64().unwrap()
    };
    assert_eq!(calls(&p), 1);
    // The build left the sums of the whole ledger.
    let sum: serde_json::Value = serde_json::from_str(&p.read(".planexe/usage.sum")).unwrap();
    let ledger = p.read(".planexe/usage.jsonl");
    assert_eq!(sum["bytes"].as_u64(), Some(ledger.len() as u64), "{sum}");
    assert_eq!(sum["totals"]["calls"], 1, "{sum}");
    // They are what status starts from: sums that say 41 calls are taken
    // as they are, and the next build's call added to them.
    let mut told = sum.clone();
    told["totals"]["calls"] = 41.into();
    p.write(".planexe/usage.sum", &told.to_string());
    assert_eq!(calls(&p), 41);
    p.write("pipeline.toml", &pipeline("Plan it again"));
    p.build().ok().ran(&["ask"]);
    assert_eq!(calls(&p), 42);
    // A ledger written anew does not end with the bytes summed: read whole.
    p.write(
        ".planexe/usage.jsonl",
        &format!("{}\n", ledger.lines().next().unwrap()),
    );
    assert_eq!(calls(&p), 1);
    // Without the sums, the ledger is read whole too.
    p.remove(".planexe/usage.sum");
    assert_eq!(calls(&p), 1);
}
