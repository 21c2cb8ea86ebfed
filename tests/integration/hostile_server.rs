//! What a hostile or careless server sends is untrusted (docs/security.md):
//! a key it echoes in any JSON spelling (`\/`, `\"`, `\uXXXX`, JSON inside
//! a JSON string) or URL-encoded (`%2F`, `+` for a space, encoded twice),
//! or a webhook token so echoed, reaches no file planexe writes and none
//! of its output; control characters in its error bodies, model ids or a
//! judge's reason reach the terminal escaped, never raw; and what is not
//! UTF-8 in an answer, streamed or not, is a `bad_response`.

use std::time::Duration;

use crate::harness::*;
use crate::llm_server::*;

const TASK: &str = "[tasks.t]\noutputs = [\"t.md\"]\nprompt = \"Plan it\"\n";

fn project(server: &Server) -> Project {
    Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n\n[models.local]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\napi_key_env = \"HUNT_KEY\"\n\n{TASK}",
        server.url
    ))
}

fn raw(status: u16, body: &str) -> Reply {
    Reply::Json {
        status,
        headers: Vec::new(),
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

/// Ways a JSON text can spell `key`, once or nested in a string of JSON.
fn spellings(key: &str) -> Vec<String> {
    let once = serde_json::to_string(key).unwrap();
    let once = once[1..once.len() - 1].to_string();
    let twice = serde_json::to_string(&once).unwrap();
    let twice = twice[1..twice.len() - 1].to_string();
    let slash = once.replace('/', "\\/");
    let uni: String = key
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    vec![key.to_string(), once, twice, slash, uni]
}

/// Runs a build with `HUNT_KEY` set to `key`, then `status` and `status
/// t`, and checks that no spelling of the key is in any file of the run
/// directory nor in any output. Returns what was printed.
#[track_caller]
fn leaks_nothing(p: &Project, key: &str, code: i32) -> String {
    let mut seen = String::new();
    for args in [&["build"][..], &["status"], &["status", "t"]] {
        let out = p.command(args).env("HUNT_KEY", key).output().unwrap();
        if args == ["build"] {
            assert_eq!(out.status.code(), Some(code), "{out:?}");
        }
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        seen.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    let mut stack = vec![p.root().to_path_buf()];
    let mut texts = vec![("output".to_string(), seen.clone())];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                let text =
                    String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap()).into_owned();
                texts.push((entry.path().display().to_string(), text));
            }
        }
    }
    for (name, text) in &texts {
        for spelling in spellings(key) {
            assert!(
                !text.contains(&spelling),
                "the key leaked as {spelling} into {name}:\n{text}"
            );
        }
    }
    assert!(
        texts.iter().any(|(_, t)| t.contains("[REDACTED]")),
        "what carried the key was kept, redacted"
    );
    seen
}

#[test]
fn a_key_json_escaped_in_an_error_body_reaches_no_file_or_output() {
    for (key, body) in [
        (
            "sk-SE/CRET123xyz",
            r#"{"error":{"message":"bad key Bearer sk-SE\/CRET123xyz"}}"#,
        ),
        (
            "sk-SE\"CRET123xyz",
            r#"{"error":{"message":"bad key Bearer sk-SE\"CRET123xyz"}}"#,
        ),
        (
            "sk-SE/CRET123xyz",
            r#"{"error":{"message":"bad key \u0073k-SE\u002FCRET123xy\u007a"}}"#,
        ),
        // A proxy's error wrapping its upstream's body in a string.
        (
            "sk-SE/CRET123xyz",
            r#"{"error":{"message":"upstream: {\"error\":\"bad key sk-SE\\\/CRET123xyz\"}"}}"#,
        ),
        // Not JSON at all (cut off).
        (
            "sk-SE/CRET123xyz",
            r#"{"error":{"message":"bad key sk-SE\/CRET123xyz"#,
        ),
    ] {
        let server = Server::start();
        server.default_reply(raw(401, body));
        let p = project(&server);
        let seen = leaks_nothing(&p, key, 1);
        assert!(seen.contains("FAILED t"), "{seen}");
        assert!(!p.jsonl(".planexe/failures.jsonl").is_empty());
        assert!(p.read(".planexe/raw/t.json").contains("[REDACTED]"));
    }
}

#[test]
fn a_key_echoed_in_an_answer_reaches_no_file_or_output() {
    for (key, content) in [
        // The answer holds JSON that spells the key escaped.
        ("sk-SE/CRET123xyz", r#"{"key": "sk-SE\/CRET123xyz"}"#),
        // Serialized again, a `"` of the key is escaped.
        ("sk-SE\"CRET123xyz", "your key is sk-SE\"CRET123xyz"),
        ("sk-SE/CRET123xyz", r"your key is sk-SE\u002fCRET123xyz"),
    ] {
        let server = Server::start();
        server.default_reply(openai_answer(content));
        let p = project(&server);
        leaks_nothing(&p, key, 0);
        assert!(p.read(".planexe/raw/t.json").contains("[REDACTED]"));
    }
    // The server escapes the `/` on the wire, in an answer of JSON.
    let server = Server::start();
    server.default_reply(raw(
        200,
        r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"key: \"sk-SE\\\/CRET123xyz\""},"finish_reason":"stop"}]}"#,
    ));
    let p = project(&server);
    leaks_nothing(&p, "sk-SE/CRET123xyz", 0);
}

/// Characters that would steer a terminal: none may be printed raw.
#[track_caller]
fn no_control_codes(what: &str, text: &str) {
    for c in text.chars() {
        assert!(
            c == '\n' || !c.is_control(),
            "{what} holds a raw control character {c:?}:\n{text}"
        );
    }
    for line in text.lines() {
        assert!(
            !line.starts_with("FAKE LINE") && !line.starts_with("done "),
            "{what}: the server started a line of its own:\n{text}"
        );
    }
}

const NASTY: &str =
    "denied \x1b[31mRED\x1b[0m \x1b]0;pwned-title\x07 \x1b[2J\rdone   t (0.01s)\nFAKE LINE";

#[test]
fn control_codes_from_a_server_are_escaped_on_the_terminal() {
    for body in [
        NASTY.to_string(),
        serde_json::json!({"error": {"message": NASTY, "type": "\x1b[2Jauth"}}).to_string(),
    ] {
        let server = Server::start();
        server.default_reply(raw(401, &body));
        let p = project(&server);
        let build = p
            .command(&["build"])
            .env("HUNT_KEY", "k-0123456789")
            .output()
            .unwrap();
        assert_eq!(build.status.code(), Some(1), "{build:?}");
        let stderr = String::from_utf8_lossy(&build.stderr);
        no_control_codes("the build", &stderr);
        no_control_codes(
            "the build's stdout",
            &String::from_utf8_lossy(&build.stdout),
        );
        assert!(stderr.contains("FAILED t"), "{stderr}");
        assert!(stderr.contains(r"\u{1b}[31mRED"), "{stderr}");
        for args in [&["status"][..], &["status", "t"], &["status", "--json"]] {
            let out = p.run(args);
            no_control_codes("status", &out.stdout);
            no_control_codes("status", &out.stderr);
        }
        let shown = p.run(&["status", "t"]);
        assert!(
            shown.stdout.contains(r"\u{1b}]0;pwned-title\u{7}"),
            "{shown:?}"
        );
        let sidecar = p.status_json("t");
        no_control_codes("the sidecar", &sidecar.to_string());
        let message = sidecar.to_string();
        assert!(!message.contains("\\u001b"), "{message}");
        // The body itself is kept as it came, as data.
        let failure = &p.jsonl(".planexe/failures.jsonl")[0];
        assert_eq!(failure["raw_error"].as_str(), Some(body.as_str()));
    }
}

#[test]
fn control_codes_in_listed_model_ids_are_escaped() {
    let server = Server::start();
    server.script([
        json(404, serde_json::json!({"error": {"message": "model not found"}})),
        json(
            200,
            serde_json::json!({"data": [{"id": "good"}, {"id": "evil\x1b]0;pwned\x07\r\nFAKE LINE"}]}),
        ),
    ]);
    let p = project(&server);
    let out = p
        .command(&["build"])
        .env("HUNT_KEY", "k-0123456789")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    no_control_codes("the build", &stderr);
    assert!(
        stderr.contains(r"it lists: good, evil\u{1b}]0;pwned\u{7}\r\nFAKE LINE"),
        "{stderr}"
    );
    for args in [&["status"][..], &["status", "t"]] {
        no_control_codes("status", &p.run(args).stdout);
    }
}

#[test]
fn a_body_that_is_not_utf8_is_a_bad_response_like_any_body_that_is_not_json() {
    let not_utf8: &[u8] = b"\x00\xffgarbage<html>not json";
    let mut seen = Vec::new();
    for body in [not_utf8, b"garbage<html>not json"] {
        let server = Server::start();
        server.default_reply(Reply::Bytes {
            status: 200,
            content_type: "text/html".into(),
            body: body.to_vec(),
        });
        let p = project(&server);
        let build = p
            .command(&["build"])
            .env("HUNT_KEY", "k-0123456789")
            .output()
            .unwrap();
        assert_eq!(build.status.code(), Some(1), "{build:?}");
        let stderr = String::from_utf8_lossy(&build.stderr);
        assert!(stderr.contains("bad_response"), "{stderr}");
        assert!(!stderr.contains("broken_stream"), "{stderr}");
        no_control_codes("the build", &stderr);
        let status = p.status_json("t");
        assert_eq!(status["error"]["kind"], "bad_response");
        assert_eq!(status["error"]["recoverable"], false);
        let failures = p.jsonl(".planexe/failures.jsonl");
        let last = failures.last().unwrap();
        assert_eq!(last["error_type"], "bad_response");
        assert_eq!(last["http_status"], 200);
        // The body as it came, its invalid bytes replaced.
        assert_eq!(
            last["raw_error"].as_str(),
            Some(String::from_utf8_lossy(body).as_ref())
        );
        let raw: serde_json::Value = serde_json::from_str(&p.read(".planexe/raw/t.json")).unwrap();
        assert_eq!(raw["status"], 200);
        let retried: Vec<bool> = failures
            .iter()
            .map(|f| f["retried"].as_bool().unwrap())
            .collect();
        seen.push((retried, server.requests().len()));
    }
    // Not UTF-8 or not JSON: the same failure, tried as often.
    assert_eq!(seen[0], seen[1]);
}

/// A project whose model streams its answers.
fn streamed_project(server: &Server) -> Project {
    Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n\n[models.local]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\n\n{TASK}",
        server.url
    ))
}

/// An OpenAI stream event of one content piece.
fn piece(content: &str, finish: Option<&str>) -> Vec<u8> {
    let data = serde_json::json!({"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]});
    format!("data: {data}\n\n").into_bytes()
}

/// The stream's bytes cut at `cuts`, each piece sent on its own.
fn chunks(bytes: &[u8], cuts: &[usize]) -> Reply {
    let mut chunks = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain([&bytes.len()]) {
        chunks.push(bytes[from..cut].to_vec());
        from = cut;
    }
    Reply::Chunks {
        chunks,
        pause: Duration::from_millis(30),
    }
}

#[test]
fn a_streamed_character_split_across_reads_decodes_as_sent() {
    let text = "héllo € 😀 done";
    let mut bytes = piece(text, None);
    bytes.extend(piece("", Some("stop")));
    bytes.extend(b"data: [DONE]\n\n");
    // Inside each of the 2-, 3- and 4-byte characters.
    let at = |c: &str, k: usize| {
        bytes
            .windows(c.len())
            .position(|w| w == c.as_bytes())
            .unwrap()
            + k
    };
    let cuts = [at("é", 1), at("€", 2), at("😀", 1), at("😀", 3)];
    let server = Server::start();
    server.default_reply(chunks(&bytes, &cuts));
    let p = streamed_project(&server);
    p.build().ok();
    assert_eq!(p.read("t.md"), text);
}

#[test]
fn a_stream_that_is_not_utf8_is_a_bad_response() {
    let mut bytes = piece("hello ", None);
    let bad_at = bytes.len() + 53;
    bytes.extend(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"bad \xff\xfe here\"},\"finish_reason\":null}]}\n\n");
    assert_eq!(bytes[bad_at], 0xff);
    bytes.extend(piece("", Some("stop")));
    let server = Server::start();
    // The invalid bytes in a read of their own too.
    server.default_reply(chunks(&bytes, &[bad_at, bad_at + 1]));
    let p = streamed_project(&server);
    let build = p.command(&["build"]).output().unwrap();
    assert_eq!(build.status.code(), Some(1), "{build:?}");
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(
        stderr.contains(&format!(
            "bad_response: the stream is not UTF-8 text: an invalid byte at offset {bad_at} of the stream, after 1 piece(s)"
        )),
        "{stderr}"
    );
    let status = p.status_json("t");
    assert_eq!(status["error"]["kind"], "bad_response");
    assert_eq!(status["error"]["recoverable"], false);
    let failures = p.jsonl(".planexe/failures.jsonl");
    let last = failures.last().unwrap();
    assert_eq!(last["error_type"], "bad_response");
    assert_eq!(last["http_status"], 200);
    assert!(
        last["raw_error"]
            .as_str()
            .unwrap()
            .contains("\"bad \u{fffd}\u{fffd} here\""),
        "{last}"
    );
    let raw: serde_json::Value = serde_json::from_str(&p.read(".planexe/raw/t.json")).unwrap();
    assert_eq!(raw["status"], 200);
    // Retried as any other bad_response, then given up: no hang.
    assert_eq!(server.requests().len(), failures.len());
}

#[test]
fn a_stream_cut_inside_a_character_is_a_broken_stream() {
    let bytes = piece("héllo", None);
    let cut = bytes.windows(2).position(|w| w == "é".as_bytes()).unwrap() + 1;
    broken_stream(&bytes[..cut], "the stream ended inside a character");
}

/// Streams `bytes` and closes: the build fails, its last failure a
/// recoverable `broken_stream` whose message says `message`.
#[track_caller]
fn broken_stream(bytes: &[u8], message: &str) {
    let (p, build) = streamed(bytes);
    assert_eq!(build.status.code(), Some(1), "{build:?}");
    let last = p.jsonl(".planexe/failures.jsonl").pop().unwrap();
    assert_eq!(last["error_type"], "broken_stream", "{last}");
    assert_eq!(last["recoverable"], true);
    assert!(
        last["message"].as_str().unwrap().contains(message),
        "{last}"
    );
}

/// A build of a streamed task whose server sends `bytes` and closes.
fn streamed(bytes: &[u8]) -> (Project, std::process::Output) {
    let server = Server::start();
    server.default_reply(chunks(bytes, &[]));
    let p = streamed_project(&server);
    let build = p.command(&["build"]).output().unwrap();
    (p, build)
}

#[test]
fn a_stream_cut_inside_an_event_is_a_broken_stream_and_a_whole_last_event_counts() {
    // Cut inside the second event's JSON: the connection broke.
    let mut bytes = piece("hello", None);
    let second = piece(" world", Some("stop"));
    bytes.extend(&second[..second.len() / 2]);
    broken_stream(&bytes, "the stream ended inside an event, after 1 piece(s)");

    // The last event whole, but without the blank line that ends it: the
    // answer is taken (servers that close right after it are common).
    let mut bytes = piece("hello", None);
    let finish = piece(" world", Some("stop"));
    bytes.extend(&finish[..finish.len() - 1]);
    let (p, build) = streamed(&bytes);
    assert_eq!(build.status.code(), Some(0), "{build:?}");
    assert_eq!(p.read("t.md"), "hello world");
}

/// Every file of the run directory but the pipeline file (which names
/// the webhook), and what `build`, `status` and `status t` printed, with
/// `URL_KEY` in the environment.
fn written_and_printed(p: &Project, code: i32) -> Vec<(String, String)> {
    let mut texts = Vec::new();
    for args in [&["build"][..], &["status"], &["status", "t"]] {
        let out = p.command(args).env("HUNT_KEY", URL_KEY).output().unwrap();
        if args == ["build"] {
            assert_eq!(out.status.code(), Some(code), "{out:?}");
        }
        texts.push((
            format!("the output of {args:?}"),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ));
    }
    let mut stack = vec![p.root().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else if entry.file_name() != "pipeline.toml" {
                let text =
                    String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap()).into_owned();
                texts.push((entry.path().display().to_string(), text));
            }
        }
    }
    texts
}

/// A key and a webhook token with characters a URL encodes.
const URL_KEY: &str = "sk-Ab/cd+ef==gh0123";
/// The token as the pipeline writes it (encoded), in a query.
const URL_TOKEN: &str = "Tok%20en/secret+0123456789";

#[test]
fn a_key_or_webhook_token_echoed_url_encoded_reaches_no_file_or_output() {
    // As a server quoting a URL spells them: encoded, in either case, a
    // space as `+` or `%20`, and encoded once more (a URL in a URL).
    let echoes = [
        "sk-Ab%2Fcd%2Bef%3D%3Dgh0123",
        "sk-Ab%2fcd%2bef%3d%3dgh0123",
        "sk-Ab%252Fcd%252Bef%253D%253Dgh0123",
        "Tok+en%2Fsecret%2B0123456789",
        "Tok%20en%2fsecret%2b0123456789",
        "Tok%2520en%252Fsecret%252B0123456789",
        "Tok en/secret+0123456789",
    ];
    let text = format!("see https://x.example/?k={}&t={} ok", echoes[0], echoes[3]);
    let hooks = Server::start();
    hooks.default_reply(json(200, serde_json::json!({})));
    let with_hook = |server: &Server| {
        Project::new(&format!(
            "[pipeline]\nmodel = \"local\"\n\n[[hooks]]\nurl = \"{}/hook?token={URL_TOKEN}\"\n\n[models.local]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\napi_key_env = \"HUNT_KEY\"\n\n{TASK}",
            hooks.url, server.url
        ))
    };
    for (reply, code) in [
        (openai_answer(&format!("{text} {}", echoes.join(" "))), 0),
        (
            json(
                401,
                serde_json::json!({"error": {"message": format!("bad key in {text} {}", echoes.join(" "))}}),
            ),
            1,
        ),
    ] {
        let server = Server::start();
        server.default_reply(reply);
        let p = with_hook(&server);
        let texts = written_and_printed(&p, code);
        for (name, text) in &texts {
            for echo in echoes.iter().chain([&URL_KEY]) {
                assert!(!text.contains(echo), "{echo} leaked into {name}:\n{text}");
            }
        }
        let raw = p.read(".planexe/raw/t.json");
        assert!(
            raw.contains("see https://x.example/?k=[REDACTED]&t=[REDACTED] ok"),
            "{raw}"
        );
        if code == 0 {
            assert_eq!(
                p.read("t.md"),
                format!(
                    "see https://x.example/?k=[REDACTED]&t=[REDACTED] ok{}",
                    " [REDACTED]".repeat(echoes.len())
                )
            );
        }
    }
}

/// Puts `message` and `model` in task `task`'s failed record, sidecar and
/// log alike, as a version that did not escape what servers said wrote it.
fn plant_failure(p: &Project, task: &str, message: &str, model: &str) {
    let sidecar = format!(".planexe/tasks/{task}.status");
    let mut status = p.status_json(task);
    status["error"]["message"] = message.into();
    status["model"] = model.into();
    p.write(&sidecar, &serde_json::to_string_pretty(&status).unwrap());
    let log: Vec<String> = p
        .read(".planexe/log")
        .lines()
        .map(|line| {
            let mut entry: serde_json::Value = serde_json::from_str(line).unwrap();
            if entry["task"] == task && entry["status"]["state"] == "failed" {
                entry["status"] = status.clone();
            }
            entry.to_string()
        })
        .collect();
    p.write(".planexe/log", &(log.join("\n") + "\n"));
}

#[test]
fn control_codes_in_the_records_of_an_earlier_version_are_escaped_on_the_terminal() {
    let p = Project::new("[tasks.t]\noutputs = [\"t.md\"]\ncommand = \"exit 3\"\n");
    p.build().code(1);
    let model = "m\x1b[31mRED\x1b[0m";
    plant_failure(&p, "t", NASTY, model);
    for args in [
        &["status"][..],
        &["status", "t"],
        &["status", "--full"],
        &["explain", "t"],
        &["build", "-n"],
    ] {
        let out = p.run(args);
        no_control_codes(&args.join(" "), &out.stdout);
        no_control_codes(&args.join(" "), &out.stderr);
        let all = out.stdout + &out.stderr;
        assert!(
            all.contains(r"denied \u{1b}[31mRED\u{1b}[0m"),
            "{args:?}: {all}"
        );
    }
    p.run(&["status"])
        .ok()
        .stdout_has(r"model m\u{1b}[31mRED\u{1b}[0m");
    let one = p.run(&["status", "t"]).stdout;
    assert!(one.contains(r"\u{1b}]0;pwned-title\u{7}"), "{one}");
    // JSON keeps the text, escaped by JSON's rules.
    let json = p.run(&["status", "--json"]);
    assert!(json.stdout.contains(r"\u001b[31mRED"), "{}", json.stdout);
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json["tasks"][0]["error"], NASTY.lines().next().unwrap());
    assert_eq!(json["tasks"][0]["model"], model);
    let one: serde_json::Value =
        serde_json::from_str(&p.run(&["status", "t", "--json"]).stdout).unwrap();
    assert_eq!(one["status"]["error"]["message"], NASTY);
}

#[test]
fn an_answer_whose_content_is_not_text_is_a_bad_response_not_an_empty_answer() {
    for content in ["12", "{\"text\": \"hi\"}", "[\"hi\"]", "true"] {
        let server = Server::start();
        server.default_reply(raw(
            200,
            &format!(
                "{{\"choices\":[{{\"message\":{{\"role\":\"assistant\",\"content\":{content}}},\"finish_reason\":\"stop\"}}]}}"
            ),
        ));
        let p = project(&server);
        let build = p
            .command(&["build"])
            .env("HUNT_KEY", "k-0123456789")
            .output()
            .unwrap();
        assert_eq!(build.status.code(), Some(1), "{build:?}");
        let stderr = String::from_utf8_lossy(&build.stderr);
        assert!(
            stderr.contains("bad_response: the response's `choices[0].message.content` is "),
            "{content}: {stderr}"
        );
        assert!(stderr.contains(", not text"), "{content}: {stderr}");
        let last = p.jsonl(".planexe/failures.jsonl").pop().unwrap();
        assert_eq!(last["error_type"], "bad_response", "{content}");
        assert_eq!(last["http_status"], 200);
    }
}

#[test]
fn a_stream_event_of_the_wrong_shape_is_named_as_such_not_as_an_error_the_server_reported() {
    for (event, said) in [
        (
            "data: {not json\n\n".to_string(),
            "the stream sent an event of the wrong shape: an event is not JSON",
        ),
        (
            "data: {\"choices\":[{\"delta\":{\"content\":12},\"finish_reason\":null}]}\n\n"
                .to_string(),
            "the stream sent an event of the wrong shape: an event's `choices[0].delta.content` is a number, not text",
        ),
    ] {
        let mut bytes = piece("hel", None);
        bytes.extend(event.as_bytes());
        bytes.extend(piece("lo", Some("stop")));
        let (p, build) = streamed(&bytes);
        assert_eq!(build.status.code(), Some(1), "{build:?}");
        let last = p.jsonl(".planexe/failures.jsonl").pop().unwrap();
        assert_eq!(last["error_type"], "bad_response", "{last}");
        assert!(last["message"].as_str().unwrap().contains(said), "{last}");
        assert!(!p.exists("t.md"), "no answer from a stream of the wrong shape");
    }
    // An error event the server sends is still reported as the server's.
    let bytes = b"data: {\"error\":{\"message\":\"the model crashed\"}}\n\n";
    let (p, _) = streamed(bytes);
    let last = p.jsonl(".planexe/failures.jsonl").pop().unwrap();
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("the stream reported an error: the model crashed"),
        "{last}"
    );
}

/// A 200 that is not the answer (a captive portal's page, another API's
/// JSON) said only `is not JSON: expected value at line 1 column 1`, or
/// `the response has no 'choices[0]'`, while the hint says the message
/// says what the server sent. It quotes the start now: one line, short,
/// scrubbed of the key.
#[test]
fn a_200_that_is_not_the_answer_is_quoted_in_the_message() {
    let key = "sk-portal-0123456789";
    let page = format!(
        "<!DOCTYPE html>\n<html>\n  <head><title>Hotel WiFi login</title></head>\n  <body>\n\x1b[31mSign in {key} to continue {}</body></html>",
        "lorem ipsum ".repeat(50)
    );
    for (reply, said) in [
        (
            Reply::Bytes {
                status: 200,
                content_type: "text/html".into(),
                body: page.into_bytes(),
            },
            "bad_response: the server's answer (HTTP 200) is not JSON: expected value at line 1 column 1; it begins: `<!DOCTYPE html> <html> <head><title>Hotel WiFi login</title></head> <body> \\u{1b}[31mSign in [REDACTED] t…`",
        ),
        (
            raw(200, "{\"object\": \"list\",\n \"data\": []}"),
            "bad_response: the response has no `choices[0]`; it begins: `{\"object\": \"list\", \"data\": []}`",
        ),
    ] {
        let server = Server::start();
        server.default_reply(reply);
        let p = project(&server);
        let build = p.command(&["build"]).env("HUNT_KEY", key).output().unwrap();
        assert_eq!(build.status.code(), Some(1), "{build:?}");
        let stderr = String::from_utf8_lossy(&build.stderr);
        assert!(stderr.contains(said), "{stderr}");
        assert!(!stderr.contains(key), "{stderr}");
        no_control_codes("build", &stderr);
    }
}
