//! Seeing a run without reading logs: events, hooks, trace, summary.

use std::time::{Duration, Instant};

use crate::harness::*;
use crate::llm_server::*;

fn events(p: &Project) -> Vec<serde_json::Value> {
    p.read(".planexe/events.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The requests `server` got, each path with its JSON body, by path.
fn by_path(server: &Server) -> Vec<(String, serde_json::Value)> {
    let mut got: Vec<(String, serde_json::Value)> = server
        .requests()
        .iter()
        .map(|r| (r.path.clone(), r.json()))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    got
}

const TWO: &str = r#"
[tasks.a]
outputs = ["a.txt"]
command = "echo a > a.txt"
[tasks.bad]
inputs = ["a.txt"]
outputs = ["b.txt"]
command = "echo 'out of cheese' >&2; exit 2"
"#;

#[test]
fn events_are_appended_as_things_happen() {
    let p = Project::new(TWO);
    p.build().code(1);
    let names: Vec<String> = events(&p)
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["event"].as_str().unwrap(),
                e["task"].as_str().unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "pipeline.started -",
            "task.started a",
            "task.completed a",
            "task.started bad",
            "task.failed bad",
            "pipeline.failed -"
        ]
    );
    let failed = &events(&p)[4];
    for key in [
        "event",
        "task",
        "run_dir",
        "timestamp_utc",
        "attempt",
        "model",
        "duration_ms",
        "error_summary",
        "error_id",
    ] {
        assert!(failed.get(key).is_some(), "{key} missing in {failed}");
    }
    assert_eq!(failed["error_summary"], "exit: exit status 2");
    // A build with nothing to do sends nothing.
    p.write(
        "pipeline.toml",
        "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo a > a.txt\"\n",
    );
    p.build().ok();
    assert_eq!(events(&p).len(), 6);
}

#[test]
fn command_hooks_get_the_event_on_stdin() {
    let p = Project::new(&format!(
        "[[hooks]]\ncommand = \"cat >> hook.log; echo >> hook.log\"\nevents = [\"task.*\"]\n{TWO}"
    ));
    p.build().code(1);
    let lines: Vec<serde_json::Value> = p
        .read("hook.log")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = lines.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "task.started",
            "task.completed",
            "task.started",
            "task.failed"
        ]
    );
}

/// A hook command still running when the build stopped waiting for its
/// hooks was left behind, and so was what it started: `sleep` ran on for
/// minutes after planexe had exited. Now its whole process group is
/// stopped: at the end of the build, and when one delivery times out.
#[test]
fn a_hook_command_still_running_when_the_build_ends_is_stopped_with_its_children() {
    let p = Project::new(
        "[[hooks]]\ncommand = \"sleep 120 & echo $! > hook.pid; wait\"\nevents = [\"pipeline.started\"]\n[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo a > a.txt\"\n",
    );
    let run = p.build();
    run.ok().stderr_has("event(s) were not delivered to hooks");
    // Not also (or instead, in a race) of the stop as the hook's failure.
    assert!(!run.stderr.contains("SIGKILL"), "{}", run.stderr);
    let pid = p.read("hook.pid").trim().to_string();
    wait_for("the hook's child to be stopped", || ended(&pid));

    // A build longer than a delivery's timeout (5 s) stops the command then.
    let p = Project::new(
        "[[hooks]]\ncommand = \"sleep 120 & echo $! > hook.pid; wait\"\nevents = [\"pipeline.started\"]\n[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"sleep 6; echo a > a.txt\"\n",
    );
    let run = p.build();
    run.ok().stderr_has("warning: hook command timed out");
    let pid = p.read("hook.pid").trim().to_string();
    assert!(ended(&pid), "the hook's child outlived its timeout");
}

#[test]
fn a_hook_told_the_build_ended_finds_the_summary_of_that_build() {
    let hook = "[[hooks]]\ncommand = \"cp .planexe/summary.json seen.json\"\nevents = [\"pipeline.failed\", \"pipeline.completed\"]\n";
    let p = Project::new(&format!("{hook}{TWO}"));
    p.build().code(1);
    let seen: serde_json::Value = serde_json::from_str(&p.read("seen.json")).unwrap();
    assert_eq!(seen["outcome"], "failed", "{seen}");
    assert_eq!(seen["counts"]["failed"], 1, "{seen}");
    p.write(
        "pipeline.toml",
        &format!(
            "{hook}{}",
            TWO.replace("echo 'out of cheese' >&2; exit 2", "echo b > b.txt")
        ),
    );
    p.build().ok();
    let seen: serde_json::Value = serde_json::from_str(&p.read("seen.json")).unwrap();
    assert_eq!(seen["outcome"], "completed", "{seen}");
    assert_eq!(seen["counts"]["done"], 2, "{seen}");
}

#[test]
fn webhooks_in_each_format() {
    let server = Server::start();
    server.default_reply(json(200, serde_json::json!({})));
    let p = Project::new(&format!(
        "[[hooks]]\nurl = \"{0}/json\"\nevents = [\"pipeline.failed\"]\n[[hooks]]\nurl = \"{0}/discord\"\nformat = \"discord\"\nevents = [\"task.failed\"]\n[[hooks]]\nurl = \"{0}/slack\"\nformat = \"slack\"\nevents = [\"task.failed\"]\n{TWO}",
        server.url
    ));
    p.build().code(1);
    let got = by_path(&server);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got[0].1["content"]
            .as_str()
            .unwrap()
            .contains("bad: task.failed"),
        "{got:?}"
    );
    assert_eq!(got[1].1["event"], "pipeline.failed");
    assert!(
        got[2].1["text"].as_str().unwrap().contains("exit status 2"),
        "{got:?}"
    );
}

/// A chat hook's line fits in a Discord message (2000 characters; a longer
/// one is refused with HTTP 400 and the event lost): the end of a build
/// whose fan-out failed, which names ten failed instances (here of 197
/// characters each), is cut short, the run directory kept.
#[test]
fn a_chat_hooks_line_fits_in_a_discord_message() {
    let server = Server::start();
    server.default_reply(json(204, serde_json::json!({})));
    let task = format!("t{}", "t".repeat(99));
    let items: Vec<String> = (0..12)
        .map(|i| format!("\"item-{i:03}-{}\"", "x".repeat(86)))
        .collect();
    let p = Project::new(&format!(
        "[[hooks]]\nurl = \"{}/discord\"\nformat = \"discord\"\nevents = [\"pipeline.failed\"]\n[tasks.{task}]\nmatrix = {{ n = [{}] }}\noutputs = [\"out/{{{{ n }}}}.txt\"]\ncommand = \"exit 1\"\n",
        server.url,
        items.join(", ")
    ));
    p.run(&["build", "-k"]).code(1);
    let got = server.requests();
    assert_eq!(got.len(), 1, "{got:?}");
    let content = got[0].json()["content"].as_str().unwrap().to_string();
    assert!(content.chars().count() <= 2000, "{}", content.len());
    assert!(
        content.starts_with(&format!(
            "planexe: pipeline.failed: task(s) failed: {task}["
        )),
        "{content}"
    );
    let root = p.root().display().to_string();
    assert!(content.ends_with(&format!("… ({root})")), "{content}");
}

/// What a chat hook's line quotes (here what a check printed, as it might
/// quote a model's answer) mentions no one: Discord is told to parse no
/// mention (`@everyone` would ping a whole server), and Slack gets `&`,
/// `<` and `>` escaped (`<!channel>` would ping a whole channel).
#[test]
fn a_chat_hooks_line_pings_no_one() {
    let server = Server::start();
    server.default_reply(json(200, serde_json::json!({})));
    let p = Project::new(&format!(
        "[[hooks]]\nurl = \"{0}/discord\"\nformat = \"discord\"\nevents = [\"task.failed\"]\n[[hooks]]\nurl = \"{0}/slack\"\nformat = \"slack\"\nevents = [\"task.failed\"]\n[tasks.t]\noutputs = [\"t.txt\"]\ncommand = \"echo t > t.txt\"\ncheck = \"echo '@everyone <!channel> a&b'; exit 1\"\n",
        server.url
    ));
    p.build().code(1);
    let got = by_path(&server);
    assert_eq!(got.len(), 2, "{got:?}");
    let discord = &got[0].1;
    assert!(
        discord["content"].as_str().unwrap().contains("@everyone"),
        "{discord}"
    );
    assert_eq!(
        discord["allowed_mentions"],
        serde_json::json!({ "parse": [] })
    );
    let slack = got[1].1["text"].as_str().unwrap();
    assert!(
        slack.contains("@everyone &lt;!channel&gt; a&amp;b"),
        "{slack}"
    );
}

#[test]
fn a_hanging_or_failing_webhook_never_holds_a_build_and_its_url_stays_secret() {
    let hanging = Server::start();
    hanging.default_reply(Reply::Hang);
    let failing = Server::start();
    failing.default_reply(json(500, serde_json::json!({})));
    let p = Project::new(&format!(
        "[[hooks]]\nurl = \"{}/hook/SECRETTOKEN1\"\n[[hooks]]\nurl = \"{}/hook/SECRETTOKEN2\"\n[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo a > a.txt\"\n",
        hanging.url, failing.url
    ));
    let started = Instant::now();
    let run = p.build();
    run.ok();
    // The hanging endpoint holds each request for 30 s; the build does not
    // wait for it (a generous bound, not a speed target).
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the build waited for a webhook"
    );
    assert!(!hanging.requests().is_empty());
    assert!(!run.stderr.contains("SECRETTOKEN"), "{}", run.stderr);
    assert!(!p.read(".planexe/events.jsonl").contains("SECRETTOKEN"));
}

#[test]
fn events_a_hanging_webhook_never_got_are_counted_in_a_warning() {
    let hanging = Server::start();
    hanging.default_reply(Reply::Hang);
    let p = Project::new(&format!(
        "[[hooks]]\nurl = \"{}/hook/SECRETTOKEN\"\n[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo a > a.txt\"\n",
        hanging.url
    ));
    let run = p.build();
    run.ok();
    // pipeline.started, task.started, task.completed: none got through
    // before the build gave up on them, and it says so. pipeline.completed
    // was sent as the build ended, once pipeline.started's attempt was
    // over (its 5 s), with the time left, and had no answer.
    run.stderr_has("warning: 3 event(s) were not delivered to hooks: the build ended while a hook was still being tried")
        .stderr_has(&format!("warning: webhook {}/...: no answer within ", hanging.url));
    let said = run
        .stderr
        .lines()
        .filter(|l| l.contains("no answer within"));
    assert!(
        said.clone().all(|l| l.ends_with("s (1 attempt)")),
        "{}",
        run.stderr
    );
    assert_eq!(said.count(), 1, "{}", run.stderr);
    assert!(!run.stderr.contains("SECRETTOKEN"), "{}", run.stderr);
}

/// A webhook that redirects (an `http://` URL its service moved to
/// `https://`) is not followed: a POST redirected by 301, 302 or 303 would
/// reach the target as a GET without the event, which it may answer 200,
/// and every event would be lost without a word.
#[test]
fn a_webhook_that_redirects_is_told_not_followed() {
    let target = Server::start();
    target.default_reply(json(200, serde_json::json!({})));
    for status in [301, 302, 307] {
        let moved = Server::start();
        moved.default_reply(with_header(
            json(status, serde_json::json!({})),
            "location",
            &format!("{}/moved/SECRETTOKEN0123456789", target.url),
        ));
        let p = Project::new(&format!(
            "[[hooks]]\nurl = \"{}/hook/SECRETTOKEN0123456789\"\n[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo a > a.txt\"\n",
            moved.url
        ));
        let run = p.build();
        run.ok().stderr_has(&format!(
            "warning: webhook {}/...: answered {status} (a redirect to {}/...), which planexe does not follow",
            moved.url, target.url
        ));
        assert!(!run.stderr.contains("SECRETTOKEN"), "{}", run.stderr);
        // Each event is tried once: a redirect is no passing fault.
        assert_eq!(moved.requests().len(), 4, "{status}");
    }
    assert!(target.requests().is_empty(), "a redirect was followed");
}

/// `planexe watch` lives on after each build: the events its hooks were
/// still trying when the build stopped waiting are given up, as the
/// warning says, not sent late, among the next build's.
#[test]
fn a_watch_sends_no_event_of_a_build_after_giving_up_on_it() {
    let slow = Server::start();
    slow.default_reply(delayed(
        json(200, serde_json::json!({})),
        Duration::from_secs(3),
    ));
    let p = Project::new(&format!(
        "[[hooks]]\nurl = \"{}/hook\"\n[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo a > a.txt\"\n",
        slow.url
    ));
    let mut watch = crate::watch::Watcher::spawn(&p, &[]);
    let lines = watch.expect("watching ");
    let left: usize = lines
        .iter()
        .find_map(|l| {
            let (n, _) = l
                .strip_prefix("warning: ")?
                .split_once(" event(s) were not delivered to hooks: the build ended")?;
            n.parse().ok()
        })
        .unwrap_or_else(|| panic!("no warning of events not delivered: {lines:?}"));
    // Long enough for all 4 events to arrive, had the hooks gone on.
    watch.quiet_for(Duration::from_secs(14));
    let got = slow.requests().len();
    // Those delivered before it gave up, and the one then in flight.
    assert!(
        got <= 4 - left + 1,
        "{got} requests, {left} said not delivered"
    );
    watch.stop();
}

/// A webhook's failure says what happened in words, and how many times
/// it was tried: `no answer within 5s` where ureq says `timeout: global`.
#[test]
fn a_webhooks_failure_says_what_and_how_many_times() {
    let hanging = Server::start();
    hanging.default_reply(Reply::Hang);
    let failing = Server::start();
    failing.default_reply(json(500, serde_json::json!({})));
    // Three tries of 5 s each, and the waits between them, end in the
    // build's time.
    let p = Project::new(&format!(
        "[[hooks]]\nurl = \"{}/hook/SECRETTOKEN1\"\nevents = [\"pipeline.started\"]\n[[hooks]]\nurl = \"{}/hook/SECRETTOKEN2\"\nevents = [\"pipeline.started\"]\n[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"sleep 20; echo a > a.txt\"\n",
        hanging.url, failing.url
    ));
    let run = p.build();
    run.ok()
        .stderr_has(&format!(
            "warning: webhook {}/...: no answer within 5s (3 attempts)\n",
            hanging.url
        ))
        .stderr_has(&format!(
            "warning: webhook {}/...: answered 500 (3 attempts)\n",
            failing.url
        ));
    assert!(!run.stderr.contains("SECRETTOKEN"), "{}", run.stderr);
}

#[test]
fn a_dead_webhook_is_one_warning_not_one_per_event() {
    let p = Project::new(
        "[[hooks]]\nurl = \"http://127.0.0.1:9/hook/SECRETTOKEN\"\n[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"sleep 4; echo a > a.txt\"\n",
    );
    let run = p.build();
    run.ok();
    let refused = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: webhook http://127.0.0.1:9/..."))
        .count();
    assert_eq!(refused, 1, "{}", run.stderr);
    assert!(!run.stderr.contains("SECRETTOKEN"), "{}", run.stderr);
}

/// The closing `completed with warnings:` line speaks of the tasks this
/// build ran: a warning of a task an earlier build ran, up to date now,
/// stays in `status` and `summary.json`, not in this build's last line.
#[test]
fn the_closing_warnings_are_of_the_tasks_this_build_ran() {
    let pipeline = |b: &str| {
        format!(
            "[tasks.a]\noutputs = [\"a.txt\"]\nmin_bytes = 0\ncommand = \": > a.txt\"\n\
             [tasks.b]\noutputs = [\"b.txt\"]\nmin_bytes = 0\ncommand = \"{b}\"\n"
        )
    };
    let p = Project::new(&pipeline("echo 1 > b.txt"));
    p.build()
        .ok()
        .stderr_has("completed with warnings: a: output a.txt is empty");
    // Only b runs: a's warning is not this build's.
    p.write("pipeline.toml", &pipeline("echo 2 > b.txt"));
    let run = p.build();
    run.ok().ran(&["b"]);
    assert!(
        !run.stderr.contains("completed with warnings"),
        "{}",
        run.stderr
    );
    p.run(&["status"])
        .ok()
        .stdout_has("a: output a.txt is empty");
    let summary: serde_json::Value =
        serde_json::from_str(&p.read(".planexe/summary.json")).unwrap();
    assert_eq!(summary["warnings"][0], "a: output a.txt is empty");
    // b's own warning, when b runs again, is named alone.
    p.write("pipeline.toml", &pipeline(": > b.txt"));
    let run = p.build();
    run.ok()
        .ran(&["b"])
        .stderr_has("completed with warnings: b: output b.txt is empty");
    assert!(!run.stderr.contains("a: output a.txt"), "{}", run.stderr);
    // A build that did not complete (here, one of its tasks failed) does
    // not say it completed.
    p.write(
        "pipeline.toml",
        &format!(
            "{}[tasks.c]\noutputs = [\"c.txt\"]\ncommand = \"exit 3\"\n",
            pipeline(": > b.txt; echo")
        ),
    );
    let run = p.run(&["build", "-k"]);
    run.code(1)
        .stderr_has("the tasks this build ran left warnings: b: output b.txt is empty");
    assert!(!run.stderr.contains("completed with"), "{}", run.stderr);
}

/// `status` says the run's quality warnings as `summary.json` does, in its
/// order, whether it answers from the snapshot the build saved or checks
/// every task itself (`--full`), which finds them without a summary.
#[test]
fn status_says_the_quality_warnings_the_summary_says() {
    let p = Project::new(
        "[tasks.empty]\noutputs = [\"e.txt\", \"f.txt\"]\nmin_bytes = 0\n\
         command = \": > e.txt; : > f.txt\"\n\
         [tasks.fine]\noutputs = [\"ok.txt\"]\ncommand = \"echo ok > ok.txt\"\n\
         [tasks.meh]\noutputs = [\"m.txt\"]\ncommand = \"echo meh > m.txt\"\n\
         check = \"echo 'too short' >&2; exit 1\"\nseverity = \"warn\"\n",
    );
    p.build().ok().ran(&["empty", "fine", "meh"]);
    let summary: serde_json::Value =
        serde_json::from_str(&p.read(".planexe/summary.json")).unwrap();
    let expected = serde_json::json!([
        "empty: output e.txt is empty",
        "empty: output f.txt is empty",
        "meh: check: the check failed (exit status 1): too short",
    ]);
    assert_eq!(summary["warnings"], expected);
    for args in [&["status", "--json"][..], &["status", "--json", "--full"]] {
        let run = p.run(args);
        let status: serde_json::Value = serde_json::from_str(&run.ok().stdout).unwrap();
        assert_eq!(status["warnings"], expected, "{args:?}: {status:#}");
    }
    p.run(&["status", "--full"])
        .ok()
        .stdout_has("meh: check: the check failed (exit status 1): too short");
}

#[test]
fn the_trace_and_the_summary() {
    let p = Project::new(&format!(
        "{TWO}\n[tasks.empty]\noutputs = [\"e.txt\"]\nmin_bytes = 0\ncommand = \": > e.txt\"\n"
    ));
    p.run(&["build", "-k"])
        .code(1)
        .stderr_has("the tasks this build ran left warnings: empty: output e.txt is empty");
    let text = p.read(".planexe/trace.json");
    let trace: Vec<serde_json::Value> =
        serde_json::from_str(&format!("{}]", text.trim_end().trim_end_matches(','))).unwrap();
    let spans: Vec<&str> = trace
        .iter()
        .filter(|e| e["ph"] == "X")
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(spans.len(), 3, "{spans:?}");
    assert!(trace.iter().all(|e| e["pid"].is_u64()));
    let summary: serde_json::Value =
        serde_json::from_str(&p.read(".planexe/summary.json")).unwrap();
    assert_eq!(summary["counts"]["done"], 2);
    assert_eq!(summary["counts"]["failed"], 1);
    assert_eq!(summary["outcome"], "failed");
    let bad = summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "bad")
        .unwrap();
    assert_eq!(bad["error_kind"], "exit");
    assert_eq!(summary["warnings"][0], "empty: output e.txt is empty");
}

/// A prompt task's definition, as `explain` compares it, is all its
/// fingerprint covers: a changed schema or model parameter shows as the
/// line that changed (it showed an empty diff under `prompt changed`).
#[test]
fn explain_shows_a_prompt_tasks_changed_schema_and_sampling() {
    let server = Server::start();
    server.default_reply(openai_answer("{\"items\": [\"a\"]}"));
    let pipeline = |max_tokens: u32| {
        format!(
            "[pipeline]\nmodel = \"local\"\n\n[models.local]\nprovider = \"openai\"\n\
             base_url = \"{}/v1\"\nmodel = \"m\"\nmax_tokens = {max_tokens}\n\n\
             [tasks.list]\noutputs = [\"list.json\"]\nprompt = \"List it\"\n\
             schema = \"list.schema.json\"\n",
            server.url
        )
    };
    let schema = |max_items: u32| {
        format!(
            "{{\n  \"type\": \"object\",\n  \"properties\": {{\"items\": {{\"type\": \"array\", \"maxItems\": {max_items}}}}},\n  \"required\": [\"items\"]\n}}\n"
        )
    };
    let p = Project::new(&pipeline(200));
    p.write("list.schema.json", &schema(3));
    p.build().ok();
    p.write("pipeline.toml", &pipeline(300));
    p.write("list.schema.json", &schema(4));
    let text = p.run(&["explain", "list"]).ok().stdout.clone();
    assert!(text.starts_with("list: stale: prompt changed\n"), "{text}");
    let diff: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.contains("(recorded → now)"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(str::trim)
        .collect();
    assert_eq!(
        diff,
        [
            "- sampling: temperature default, max_tokens 200",
            "+ sampling: temperature default, max_tokens 300",
            "- schema:   \"properties\": {\"items\": {\"type\": \"array\", \"maxItems\": 3}},",
            "+ schema:   \"properties\": {\"items\": {\"type\": \"array\", \"maxItems\": 4}},",
        ],
        "{text}"
    );
}

#[test]
fn explain_shows_stamps_and_the_changed_definition() {
    let p = demo();
    p.build().ok();
    p.write(
        "pipeline.toml",
        &DEMO.replace("cat {inputs} > {outputs}", "cat -- {inputs} > {outputs}"),
    );
    p.write_at("notes/b.md", "note B\n", 2_000_000);
    let run = p.run(&["explain", "report"]);
    run.ok();
    let text = run.stdout;
    assert!(
        text.starts_with("report: stale: command changed\n"),
        "{text}"
    );
    assert!(
        text.contains("- cat {inputs} > {outputs}\n    + cat -- {inputs} > {outputs}"),
        "{text}"
    );
    assert!(text.contains("notes/b.md: changed: recorded 7 B"), "{text}");
    assert!(text.contains("outline.md [from outline]: same"), "{text}");
    let fresh = p.run(&["explain", "outline"]);
    assert!(
        fresh.stdout.starts_with("outline: up to date\n"),
        "{}",
        fresh.stdout
    );
    p.run(&["explain", "nope"]).code(2);
}

#[test]
fn graph_in_three_formats() {
    let p = demo();
    p.run(&["build", "outline"]).ok();
    let dot = p.run(&["graph"]).stdout;
    assert!(dot.starts_with("digraph \"demo\" {"), "{dot}");
    assert!(dot.contains("\"outline\" -> \"report\";"), "{dot}");
    assert!(
        dot.contains("\"outline\" [label=\"outline\\ndone\", fillcolor=\"#9be29b\"]"),
        "{dot}"
    );
    let mermaid = p.run(&["graph", "--format", "mermaid"]).stdout;
    assert!(mermaid.contains("t0 --> t1"), "{mermaid}");
    let json: serde_json::Value =
        serde_json::from_str(&p.run(&["graph", "--format", "json"]).stdout).unwrap();
    assert_eq!(json["tasks"][1]["state"], "never-built");
    assert_eq!(json["edges"][0]["from"], "outline");
}

/// `status` lines its names up by the names it shows, in characters: the
/// done instances its FAN-OUT line stands for widen nothing, and a name
/// with accents is padded as it shows. (The column was as wide as the
/// longest instance's name in bytes: 130 columns for every task beside a
/// fan-out with long keys, and `m[été]` got two spaces too many.)
#[test]
fn status_names_column_is_as_wide_as_the_names_shown() {
    let long = "k".repeat(100);
    let p = Project::new(&format!(
        r#"
[tasks.a]
outputs = ["a.txt"]
command = "echo a > a.txt"

[tasks.m]
matrix = {{ k = ["{long}", "été"] }}
outputs = ["m/{{{{ k }}}}.txt"]
command = "test {{{{ k }}}} = {long} && echo > {{outputs}}"
"#
    ));
    p.run(&["build", "-k"]).code(1);
    let out = p.run(&["status"]).stdout.clone();
    assert!(out.contains("\n  a       0."), "{out}");
    assert!(out.contains("\n  m[été]  exit: "), "{out}");
    assert!(out.contains("\n  m       1/2 done, 1 failed\n"), "{out}");
}

/// A pipeline name with a quote and a trailing backslash stays inside the
/// DOT string it names. (The quote became `'`, and the backslash escaped
/// the closing quote: `digraph "a 'b' c\" {` swallowed the rest of the
/// file, and Graphviz refused it.)
#[test]
fn graph_dot_escapes_the_pipeline_name() {
    let p = Project::new(
        "[pipeline]\nname = 'a \"b\" c\\'\n[tasks.t]\noutputs = [\"o\"]\ncommand = \"echo > o\"\n",
    );
    let dot = p.run(&["graph"]).ok().stdout.clone();
    assert!(
        dot.starts_with("digraph \"a \\\"b\\\" c\\\\\" {\n"),
        "{dot}"
    );
}

/// A pipeline name holding escape sequences, a right-to-left override
/// and a line break reaches the terminal from `graph` made visible, as
/// `status` shows such text. (They went out as they were: the name could
/// clear the screen or repaint what followed.)
#[test]
fn graph_dot_shows_escapes_in_the_pipeline_name_not_runs_them() {
    let p = Project::new(
        "[pipeline]\nname = \"a\\u001b[2J\\u202ez\\nb\"\n[tasks.t]\noutputs = [\"o\"]\ncommand = \"echo > o\"\n",
    );
    let dot = p.run(&["graph"]).ok().stdout.clone();
    assert!(
        !dot.contains('\x1b') && !dot.contains('\u{202e}'),
        "{dot:?}"
    );
    assert!(
        dot.starts_with("digraph \"a\\\\u{1b}[2J\\\\u{202e}z\\\\nb\" {\n"),
        "{dot}"
    );
}

/// A build started in the background right before is waited for, though
/// it may not hold the lock yet when `wait` first looks.
#[test]
fn wait_right_after_a_background_build_starts_waits_for_it() {
    let p = Project::new("[tasks.t]\noutputs = [\"o\"]\ncommand = \"sleep 0.3; echo > o\"\n");
    // `wait` first, the build a moment later (as a script's `planexe
    // build &` may get going after the `planexe wait` beside it).
    let waiter = p
        .command(&["wait"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut build = p.spawn_quiet(&["build"]);
    let out = waiter.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("state    completed"), "{stdout}");
    assert!(p.exists("o"));
    build.wait().unwrap();
}

#[test]
fn wait_returns_when_the_build_ends_with_its_outcome() {
    let p = Project::new("[tasks.slow]\noutputs = [\"o\"]\ncommand = \"touch started; while [ ! -e go ]; do sleep 0.05; done; exit 3\"\n");
    // No build ever ran: no outcome to give, and 0 would pass for one.
    p.run(&["wait"])
        .code(2)
        .stderr_has("error: no build has run in ")
        .stderr_has("hint: start one: planexe build\n");
    let mut build = p
        .command(&["build"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.exists("started") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    p.run(&["wait", "--timeout", "1s"]).code(124);
    let waiter = p
        .command(&["wait"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    p.write("go", "");
    assert_eq!(build.wait().unwrap().code(), Some(1));
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("state    failed"), "{text}");
    assert!(
        text.contains("FAILED (1)\n  slow  exit: exit status 3"),
        "{text}"
    );
}

/// A build holds the run directory's lock a moment before it records its
/// start in `run.json`: a `wait` then waits for it, where it used to return
/// at once with the last build's status. Here a process (python's `flock`,
/// what the kernel lists as a build's lock is) holds the lock as a build
/// that never gets as far as `run.json`; once it lets go, `wait` returns.
#[test]
fn wait_waits_for_a_build_that_holds_the_lock_before_it_records_its_start() {
    let p = Project::new("[tasks.a]\noutputs = [\"a\"]\ncommand = \"echo a > a\"\n");
    p.build().ok();
    let holder = r#"
import fcntl, json, os, sys, time
f = open(".planexe/lock", "r+")
fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
f.truncate(0)
f.write(json.dumps({"pid": os.getpid(), "host": "", "started_at": "", "command": sys.argv[1]}))
f.flush()
open("held", "w").close()
while not os.path.exists("release"):
    time.sleep(0.02)
"#;
    let hold = |command: &str| {
        let child = std::process::Command::new("python3")
            .args(["-c", holder, command])
            .current_dir(p.root())
            .spawn()
            .expect("python3 runs");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !p.exists("held") {
            assert!(Instant::now() < deadline, "the lock was not taken");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    };
    let mut child = hold("build");
    p.run(&["wait", "--timeout", "1s"])
        .code(124)
        .stderr_has("the build is still running");
    p.write("release", "");
    child.wait().unwrap();
    p.run(&["wait", "--timeout", "5s"])
        .code(0)
        .stdout_has("state    completed");
    // Another command holding the lock (a `clean`, a `touch`) is no build.
    std::fs::remove_file(p.path("release")).unwrap();
    std::fs::remove_file(p.path("held")).unwrap();
    let mut child = hold("clean");
    p.run(&["wait", "--timeout", "1s"]).code(0);
    p.write("release", "");
    child.wait().unwrap();
}

/// A model's failure names its kind after the model (`local: truncated:
/// ...`); `status`, `status TASK`, `explain`, the events and the JUnit
/// report said the kind once more in front of it.
#[test]
fn status_and_explain_say_a_failure_kind_once() {
    let server = Server::start();
    server.script([openai_finish("The plan is", "length")]);
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n\n[models.local]\nprovider = \"openai\"\n\
         base_url = \"{}/v1\"\nmodel = \"test-model\"\nstream = false\n\n\
         [tasks.ask]\noutputs = [\"answer.md\"]\nprompt = \"Plan a shed.\"\n",
        server.url
    ));
    p.build().code(1);
    let said = "local: truncated: the answer was cut off at the token limit";
    let views = [
        p.run(&["status"]).stdout,
        p.run(&["status", "ask"]).stdout,
        p.run(&["explain", "ask"]).stdout,
        p.read(".planexe/events.jsonl"),
    ];
    for text in views {
        assert!(text.contains(said), "{said:?} not in\n{text}");
        assert!(
            !text.contains("truncated: local"),
            "the kind twice in\n{text}"
        );
    }
    assert_eq!(p.status_json("ask")["error"]["kind"], "truncated");
    p.run(&["report", "--format", "junit", "-o", "junit.xml"])
        .ok();
    let junit = p.read("junit.xml");
    assert!(junit.contains(&format!("message=\"{said}")), "{junit}");
}

/// Every class a mermaid graph gives a task has its `classDef`, in the
/// colour DOT fills it with: a pending task (a fan-out waiting for its
/// list) was `:::pending` with no `classDef pending`, so mermaid drew it
/// uncoloured, where DOT drew it grey.
#[test]
fn a_mermaid_graph_defines_every_class_it_uses() {
    let p = Project::new(
        r#"
[tasks.list]
outputs = ["list.json"]
command = "echo '[1, 2]' > list.json"

[tasks.per]
foreach = { file = "list.json" }
outputs = ["per/{{ key }}.txt"]
command = "mkdir -p per && echo {{ item }} > per/{{ key }}.txt"
"#,
    );
    let mermaid = p.run(&["graph", "--format", "mermaid"]).ok().stdout.clone();
    assert!(mermaid.contains(":::pending"), "{mermaid}");
    for line in mermaid.lines().filter(|l| l.contains(":::")) {
        let class = line.rsplit(":::").next().unwrap();
        assert!(
            mermaid.contains(&format!("classDef {class} fill:")),
            "no classDef {class}\n{mermaid}"
        );
    }
    let dot = p.run(&["graph"]).ok().stdout.clone();
    assert!(dot.contains("pending\", fillcolor=\"#dadce0\""), "{dot}");
    assert!(
        mermaid.contains("classDef pending fill:#dadce0"),
        "{mermaid}"
    );
}
