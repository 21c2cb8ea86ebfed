//! Issue 14, the model-call bounds: what a server or a `[models.*]` table
//! can do to a build. Echoed secrets never reach a file, answers are capped
//! by `max_answer_bytes` with bounded memory, waits by `max_retry_wait`,
//! and every number is either refused at load time with `file:line:col` or
//! survived without a panic.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;
use crate::llm_server::*;
use crate::peak_rss::{measured, Measured};

fn model(server: &Server, name: &str, extra: &str) -> String {
    format!(
        "[models.{name}]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"test-model\"\n{extra}\n",
        server.url
    )
}

const ASK: &str =
    "[tasks.ask]\noutputs = [\"answer.md\"]\nprompt = \"Tell me.\"\ntimeout = \"60s\"\n";

fn project(models: &str, tasks: &str) -> Project {
    Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n\n{models}\n{tasks}"
    ))
}

/// Every file under the project, as text, with its path.
fn every_file(p: &Project) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![p.root().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                let text =
                    String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap()).into_owned();
                out.push((entry.path().display().to_string(), text));
            }
        }
    }
    out
}

/// The peak RSS of a build that asks for a short answer: what planexe
/// needs before any answer counts.
fn baseline_rss() -> u64 {
    let server = Server::start();
    server.default_reply(openai_answer("short"));
    let p = project(&model(&server, "local", "stream = false"), ASK);
    let run = measured(p.command(&["build"]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.peak_rss_bytes
}

/// Asserts that `run` grew beyond the baseline by less than 20 times the
/// cap of `cap` bytes.
#[track_caller]
fn assert_bounded(run: &Measured, cap: u64) {
    let baseline = baseline_rss();
    let growth = run.peak_rss_bytes.saturating_sub(baseline);
    assert!(
        growth < 20 * cap,
        "peak RSS {} KiB, {} KiB over a build with a short answer, for a cap of {} KiB",
        run.peak_rss_bytes / 1024,
        growth / 1024,
        cap / 1024
    );
}

const MIB: u64 = 1024 * 1024;

#[test]
fn issue14_an_endless_stream_stops_at_max_answer_bytes_in_bounded_memory() {
    let server = Server::start();
    server.default_reply(Reply::EndlessStream { piece: 60_000 });
    let p = project(
        &model(&server, "local", "max_answer_bytes = \"1 MiB\""),
        ASK,
    );
    let run = measured(p.command(&["build"]));
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("too_large"), "{}", run.stderr);
    assert!(
        run.stderr.contains("max_answer_bytes (1048576 bytes)"),
        "{}",
        run.stderr
    );
    // Before the fix, memory grew by gigabytes until the timeout.
    assert_bounded(&run, MIB);
    assert!(run.elapsed < Duration::from_secs(30), "{:?}", run.elapsed);
    let status = p.status_json("ask");
    assert_eq!(status["error"]["kind"], "too_large");
    assert_eq!(server.requests().len(), 1, "too_large is permanent");
    assert!(!p.exists("answer.md"));
    let failure = &p.jsonl(".planexe/failures.jsonl")[0];
    assert_eq!(failure["error_type"], "too_large");
    assert_eq!(failure["recoverable"], false);
    // The advice `status` gives for it.
    p.run(&["status", "ask"]).ok();
}

#[test]
fn issue14_a_huge_answer_is_refused_and_the_fallback_asked() {
    let announced = Server::start();
    announced.script([Reply::Huge {
        bytes: 200_000_000,
        announce: true,
    }]);
    let unannounced = Server::start();
    unannounced.script([Reply::Huge {
        bytes: 50_000_000,
        announce: false,
    }]);
    let small = Server::start();
    small.script([openai_answer("a short answer")]);
    let p = project(
        &format!(
            "{}fallback = [\"mid\", \"last\"]\n{}{}",
            model(
                &announced,
                "local",
                "stream = false\nmax_answer_bytes = 1048576"
            ),
            model(
                &unannounced,
                "mid",
                "stream = false\nmax_answer_bytes = \"1 MiB\""
            ),
            model(&small, "last", "stream = false"),
        ),
        ASK,
    );
    let run = measured(p.command(&["build"]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(p.read("answer.md"), "a short answer");
    assert_bounded(&run, MIB);
    let failures = p.jsonl(".planexe/failures.jsonl");
    let kinds: Vec<&str> = failures
        .iter()
        .map(|f| f["error_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["too_large", "too_large"]);
    let first = failures[0]["message"].as_str().unwrap();
    assert!(first.contains("announced a response of 200000"), "{first}");
    let second = failures[1]["message"].as_str().unwrap();
    assert!(second.contains("bytes"), "{second}");
    assert!(
        second.contains("max_answer_bytes (1048576 bytes)"),
        "{second}"
    );
    assert_eq!(announced.requests().len(), 1);
    assert_eq!(unannounced.requests().len(), 1);
    assert_eq!(p.status_json("ask")["model"], "last");
}

#[test]
fn issue14_an_answer_past_the_cap_fails_even_when_it_fits_the_wire() {
    // A 3000-byte answer with a 2000-byte cap: the body is read whole (it
    // is under the wire limit), then the text is judged too large.
    let server = Server::start();
    server.script([openai_answer(&"y".repeat(3000))]);
    server.script([openai_stream(
        &["z".repeat(1500).as_str(), "z".repeat(1500).as_str()],
        Some("stop"),
        StreamEnd::Close,
    )]);
    let p = project(
        &format!(
            "{}fallback = [\"streamed\"]\n{}",
            model(&server, "local", "stream = false\nmax_answer_bytes = 2000"),
            model(&server, "streamed", "max_answer_bytes = 2000"),
        ),
        ASK,
    );
    p.build()
        .code(1)
        .stderr_has("the answer is 3000 bytes")
        .stderr_has("the answer reached 3000 bytes");
    assert!(!p.exists("answer.md"));
}

#[test]
fn issue14_a_retry_after_of_ten_years_moves_on_to_the_fallback() {
    let primary = Server::start();
    primary.default_reply(with_header(
        json(429, serde_json::json!({"error": {"message": "slow down"}})),
        "retry-after",
        "315360000",
    ));
    let fallback = Server::start();
    fallback.script([openai_answer("from the fallback")]);
    let p = project(
        &format!(
            "{}fallback = [\"cloud\"]\n{}",
            model(&primary, "local", "stream = false"),
            model(&fallback, "cloud", "stream = false")
        ),
        ASK,
    );
    let started = Instant::now();
    p.build().ok();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(p.read("answer.md"), "from the fallback");
    assert_eq!(primary.requests().len(), 1);
    let f = &p.jsonl(".planexe/failures.jsonl")[0];
    assert_eq!(f["error_type"], "rate_limited");
    // planexe moved on without retrying; a later build may be let in.
    assert_eq!(f["retried"], false);
    assert_eq!(f["recoverable"], true);
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("asked to wait 3650 days (Retry-After), more than max_retry_wait (5m)"),
        "{message}"
    );

    // Without a fallback the task fails at once, saying why; an HTTP date
    // far ahead is the same.
    let alone = Server::start();
    alone.default_reply(with_header(
        json(429, serde_json::json!({"error": {"message": "slow down"}})),
        "retry-after",
        "Wed, 01 Jan 9000 00:00:00 GMT",
    ));
    let q = project(
        &model(&alone, "local", "stream = false\nmax_retry_wait = \"90s\""),
        ASK,
    );
    let started = Instant::now();
    q.build()
        .code(1)
        .stderr_has("rate_limited")
        .stderr_has("more than max_retry_wait (1m 30s)");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(alone.requests().len(), 1);
}

#[test]
fn issue14_backoff_never_waits_longer_than_max_retry_wait() {
    let server = Server::start();
    server.script([
        json(500, serde_json::json!({"error": {"message": "boom"}})),
        json(500, serde_json::json!({"error": {"message": "boom"}})),
        openai_answer("third time"),
    ]);
    let p = project(
        &model(
            &server,
            "local",
            "stream = false\nmax_retry_wait = \"100ms\"",
        ),
        ASK,
    );
    // Ten-minute backoffs, were they not capped.
    let out = p
        .command(&["build"])
        .env("PLANEXE_RETRY_BASE_MS", "600000")
        .env("PLANEXE_RETRY_CAP_MS", "600000")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(p.read("answer.md"), "third time");
    let reqs = server.requests();
    assert!(reqs[2].at.duration_since(reqs[0].at) < Duration::from_secs(10));

    // `max_retry_wait = 0`: any requested wait goes to the fallback.
    let slow = Server::start();
    slow.script([with_header(
        json(503, serde_json::json!({"error": {"message": "busy"}})),
        "retry-after",
        "1",
    )]);
    let other = Server::start();
    other.script([openai_answer("other")]);
    let q = project(
        &format!(
            "{}fallback = [\"other\"]\n{}",
            model(&slow, "local", "stream = false\nmax_retry_wait = 0"),
            model(&other, "other", "stream = false")
        ),
        ASK,
    );
    q.build().ok();
    assert_eq!(q.read("answer.md"), "other");
    assert_eq!(slow.requests().len(), 1);
}

#[test]
fn issue14_an_echoed_key_or_webhook_token_never_reaches_a_file() {
    const KEY: &str = "sk-live-9f3Kq7Lm2Xw8Zr5Tq1Vb";
    const HOOK_TOKEN: &str = "HookToken-4b1d7c9e2f8a6b3d";
    const ENV_TOKEN: &str = "EnvToken-aa7c1e93bb20d4f6";
    let server = Server::start();
    let hooks = Server::start();
    hooks.default_reply(json(200, serde_json::json!({})));
    let hook_url = format!("{}/api/webhooks/123/{HOOK_TOKEN}", hooks.url);
    let env_url = format!("{}/services/T0/{ENV_TOKEN}?sig=1", hooks.url);
    // The key as plain text, split across stream pieces, inside JSON, and
    // where the 2 KB truncation of a rejected answer would cut it.
    let half = KEY.len() / 2;
    server.script([
        openai_answer(&format!(
            "Your key is {KEY}. Webhook: {hook_url} and {env_url}"
        )),
        openai_stream(
            &["key: ", &KEY[..half], &KEY[half..], " token ", HOOK_TOKEN],
            Some("stop"),
            StreamEnd::Close,
        ),
        openai_answer(&format!("{}{KEY}", "x".repeat(2040))),
        openai_answer(&format!(
            "{{\"key\": \"{KEY}\", \"hook\": \"{ENV_TOKEN}\"}}"
        )),
    ]);
    let tasks = "\
[tasks.plain]\noutputs = [\"plain.md\"]\nprompt = \"a\"\nmodel = \"local\"\n\
[tasks.streamed]\noutputs = [\"streamed.md\"]\nprompt = \"b\"\nmodel = \"streaming\"\nafter = [\"plain\"]\n\
[tasks.json]\noutputs = [\"j.json\"]\nformat = \"json\"\nretries = 1\nprompt = \"c\"\nafter = [\"streamed\"]\n";
    let key = "api_key_env = \"PLANEXE_TEST_KEY\"";
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n\n[[hooks]]\nurl = \"{hook_url}\"\nevents = [\"pipeline.completed\"]\n\n{}{}\n{tasks}",
        model(&server, "local", &format!("stream = false\n{key}")),
        model(&server, "streaming", key),
    ));
    let out = p
        .command(&["build", "-j", "1"])
        .env("PLANEXE_TEST_KEY", KEY)
        .env("PLANEXE_WEBHOOK_URL", &env_url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let mut seen = vec![
        (
            "stdout".to_string(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ),
        (
            "stderr".to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
    ];
    seen.extend(every_file(&p));
    for (path, text) in seen
        .iter()
        .filter(|(path, _)| !path.ends_with("pipeline.toml"))
    {
        for secret in [&KEY[..12], &KEY[12..], HOOK_TOKEN, ENV_TOKEN] {
            assert!(
                !text.contains(secret),
                "{secret} leaked into {path}:\n{text}"
            );
        }
    }
    assert_eq!(
        p.read("plain.md"),
        format!(
            "Your key is [REDACTED]. Webhook: {}[REDACTED] and {}[REDACTED]",
            hooks.url, hooks.url
        )
    );
    assert_eq!(p.read("streamed.md"), "key: [REDACTED] token [REDACTED]");
    assert!(p.read("j.json").contains("\"key\": \"[REDACTED]\""));
    let failure = &p.jsonl(".planexe/failures.jsonl")[0];
    assert_eq!(failure["error_type"], "invalid_json");
}

/// One out-of-range value each: the key, where it is (line:col), and a
/// piece of the message.
const REFUSED: &[(&str, &str, &str)] = &[
    (
        "requests_per_minute = 1e-300",
        "8:23",
        "between 0.001 and 1000000",
    ),
    (
        "requests_per_minute = 1e300",
        "8:23",
        "between 0.001 and 1000000",
    ),
    (
        "requests_per_minute = nan",
        "8:23",
        "between 0.001 and 1000000",
    ),
    (
        "temperature = nan",
        "8:15",
        "`temperature` must be a finite number",
    ),
    (
        "temperature = -inf",
        "8:15",
        "`temperature` must be a finite number",
    ),
    (
        "temperature = -0.5",
        "8:15",
        "`temperature` must be a finite number",
    ),
    (
        "input_cost_per_mtok = -1",
        "8:23",
        "`input_cost_per_mtok` must be a number from 0",
    ),
    (
        "output_cost_per_mtok = inf",
        "8:24",
        "`output_cost_per_mtok` must be a number from 0",
    ),
    (
        "output_cost_per_mtok = 1e300",
        "8:24",
        "`output_cost_per_mtok` must be a number from 0",
    ),
    (
        "max_tokens = 9223372036854775807",
        "8:14",
        "`max_tokens` can be at most 4294967295",
    ),
    ("max_tokens = 0", "8:14", "`max_tokens` must be at least 1"),
    (
        "max_concurrency = -3",
        "8:19",
        "`max_concurrency` must be at least 1",
    ),
    (
        "max_answer_bytes = 0",
        "8:20",
        "`max_answer_bytes` must be from 1 byte to 1 GiB",
    ),
    (
        "max_answer_bytes = \"2 GiB\"",
        "8:20",
        "`max_answer_bytes` must be from 1 byte to 1 GiB",
    ),
    (
        "max_answer_bytes = \"lots\"",
        "8:20",
        "invalid size \"lots\"",
    ),
    ("max_answer_bytes = 1.5", "8:20", "invalid size 1.5"),
    (
        "max_retry_wait = \"100000 days\"",
        "8:18",
        "`max_retry_wait` can be at most 365 days",
    ),
    ("max_retry_wait = -1", "8:18", "invalid `max_retry_wait` -1"),
    (
        "max_retry_wait = nan",
        "8:18",
        "invalid `max_retry_wait` nan",
    ),
    (
        "timeout = 1e300",
        "8:11",
        "a timeout can be at most 365 days",
    ),
    (
        "idle_timeout = \"99999999999999999999 years\"",
        "8:16",
        "`idle_timeout` can be at most 365 days",
    ),
    // Named, not "an invalid timeout": a model has two.
    ("idle_timeout = 0", "8:16", "invalid `idle_timeout` 0"),
];

#[test]
fn issue14_out_of_range_model_numbers_are_refused_at_load_time() {
    let server = Server::start();
    for (line, at, message) in REFUSED {
        // The model's table starts on line 4; the key is on line 8.
        let p = project(&model(&server, "local", line), ASK);
        let run = p.build();
        run.code(2)
            .stderr_has(&format!("pipeline.toml:{at}: "))
            .stderr_has(message);
        assert!(!run.stderr.contains("panicked"), "{line}: {}", run.stderr);
        if p.exists(".planexe/run.json") {
            assert!(
                !p.read(".planexe/run.json").contains("\"running\""),
                "{line}"
            );
        }
    }
    assert!(server.requests().is_empty());
}

/// A bad `max_retry_wait` is named as such, not as "an invalid timeout",
/// and the hint says what it takes (0 included); a bad `timeout` keeps
/// speaking of a timeout.
#[test]
fn a_bad_max_retry_wait_names_the_setting_and_what_it_takes() {
    let server = Server::start();
    let p = project(&model(&server, "local", "max_retry_wait = \"-1s\""), ASK);
    let run = p.build();
    run.code(2)
        .stderr_has("pipeline.toml:8:18: invalid `max_retry_wait` \"-1s\": expected a number and a unit")
        .stderr_has("hint: `max_retry_wait` takes a duration such as \"30s\" or \"5m\", a number of seconds, or 0 to never wait");
    assert!(!run.stderr.contains("timeout"), "{}", run.stderr);
    let p = project(&model(&server, "local", "timeout = \"-1s\""), ASK);
    p.build()
        .code(2)
        .stderr_has("pipeline.toml:8:11: invalid timeout \"-1s\"");
    assert!(server.requests().is_empty());
}

#[test]
fn issue14_the_largest_values_and_server_numbers_do_not_panic() {
    let server = Server::start();
    let huge_usage = |text: &str| {
        json(
            200,
            serde_json::json!({
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": u64::MAX, "completion_tokens": u64::MAX}
            }),
        )
    };
    server.script([huge_usage("one"), huge_usage("two")]);
    let p = project(
        &model(
            &server,
            "local",
            "stream = false\nmax_concurrency = 9223372036854775807\nmax_tokens = 4294967295\n\
             requests_per_minute = 1000000\ninput_cost_per_mtok = 1000000\noutput_cost_per_mtok = 1000000\n\
             temperature = 1e300\nmax_answer_bytes = \"1 GiB\"\nmax_retry_wait = \"365 days\"",
        ),
        "[tasks.a]\noutputs = [\"a.md\"]\nprompt = \"a\"\n[tasks.b]\noutputs = [\"b.md\"]\nprompt = \"b\"\n",
    );
    p.build().ok();
    let usage = &p.status_json("a")["usage"];
    assert_eq!(usage["total_tokens"], u64::MAX);
    assert!(usage["cost_usd"].as_f64().unwrap().is_finite());
    let status = p.run(&["status", "--json"]);
    status.ok();
    serde_json::from_str::<Value>(&status.stdout).unwrap();
    assert_eq!(server.requests()[0].json()["max_tokens"], 4294967295u64);
}

/// A key that reaches a prompt's text (an input a command wrote, a judged
/// output) is not sent on to any server: not to a model of another
/// provider, not to its own (its own request carries it in its header
/// only). The answers say what they were sent, so the outputs show it too.
#[test]
fn issue14_a_key_in_a_prompt_or_a_judged_output_is_not_sent_to_any_server() {
    const KEY: &str = "sk-live-7Hq2Wm9Zp4Xr1Kd6Tb3N";
    let keyed = Server::start();
    let other = Server::start();
    keyed.default_reply(openai_answer("summary"));
    other.default_reply(openai_answer("{\"score\": 1, \"reason\": \"fine\"}"));
    let tasks = "\
[tasks.dump]\noutputs = [\"dump.txt\"]\ncommand = \"printf 'token=%s\\\\n' \\\"$PLANEXE_TEST_KEY\\\" > dump.txt\"\n\
[tasks.dump.judge]\nmodel = \"other\"\nprompt = \"Score: {{ output }}\"\n\
[tasks.ask]\ninputs = [\"dump.txt\"]\noutputs = [\"summary.md\"]\nmodel = \"keyed\"\n\
system = \"Config: {{ inputs['dump.txt'] }}\"\nprompt = \"Summarize {{ inputs['dump.txt'] }}\"\n";
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"keyed\"\n\n{}{}\n{tasks}",
        model(
            &keyed,
            "keyed",
            "stream = false\napi_key_env = \"PLANEXE_TEST_KEY\""
        ),
        model(&other, "other", "stream = false"),
    ));
    let out = p
        .command(&["build", "-j", "1"])
        .env("PLANEXE_TEST_KEY", KEY)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // The command itself wrote the key: that is its output, as written.
    assert!(p.read("dump.txt").contains(KEY));
    let judged = other.requests();
    assert_eq!(judged.len(), 1, "one judge call");
    let asked = keyed.requests();
    assert_eq!(asked.len(), 1, "one prompt call");
    for r in judged.iter().chain(&asked) {
        assert!(!r.body.contains(KEY), "the key was sent:\n{}", r.body);
        assert!(r.body.contains("token=[REDACTED]"), "{}", r.body);
    }
    assert!(other
        .requests()
        .iter()
        .all(|r| r.headers.iter().all(|(_, v)| !v.contains(KEY))));
    assert_eq!(
        asked[0].header("authorization"),
        Some(&*format!("Bearer {KEY}"))
    );
}

/// An error body past the 64 KiB read of it was dropped whole: a 400
/// with a 70,000-character message, or a 70 KB HTML page, said only
/// `bad_request: HTTP 400`, with `raw_error: ""`. Its first bytes are
/// kept now, as for a shorter body.
#[test]
fn an_error_body_past_its_bound_keeps_its_first_bytes() {
    let long = format!("too long: {}", "y".repeat(70_000));
    let html = format!(
        "<html><body><h1>Bad gateway config</h1>{}</body></html>",
        "<p>filler</p>".repeat(6_000)
    );
    for (body, content_type, said) in [
        (
            serde_json::json!({"error": {"message": long, "type": "invalid_request_error"}})
                .to_string(),
            "application/json",
            "bad_request: HTTP 400: {\"error\":{\"message\":\"too long: yyy",
        ),
        (
            html,
            "text/html",
            "bad_request: HTTP 400: <html><body><h1>Bad gateway config</h1>",
        ),
    ] {
        assert!(body.len() > 70_000);
        let server = Server::start();
        server.default_reply(Reply::Bytes {
            status: 400,
            content_type: content_type.into(),
            body: body.clone().into_bytes(),
        });
        let p = project(&model(&server, "local", "stream = false"), ASK);
        p.build().code(1).stderr_has(said);
        let failure = p.jsonl(".planexe/failures.jsonl").pop().unwrap();
        let raw = failure["raw_error"].as_str().unwrap();
        assert_eq!(raw.len(), 2048, "{failure}");
        assert!(body.starts_with(raw), "{raw}");
    }
}
