//! Record, replay and the response cache: answers recorded against the
//! scripted server are given back byte for byte without it, a changed
//! prompt misses, a cache shared by two run directories asks once, damaged
//! entries are never answers, and replay models answer what another model
//! recorded.

use std::path::Path;

use serde_json::Value;

use crate::harness::*;
use crate::llm_server::*;

const KEY: &str = "sk-replay-test-secret-0123456789";

fn pipeline(server: &Server, prompt: &str, extra_models: &str, default: &str) -> String {
    format!(
        "[pipeline]\nmodel = \"{default}\"\n\n[models.local]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"local-model\"\napi_key_env = \"REPLAY_TEST_KEY\"\ntemperature = 0\nseed = 7\n\n{extra_models}\n[tasks.ask]\noutputs = [\"a.json\"]\nformat = \"json\"\nprompt = \"{prompt}\"\n",
        server.url
    )
}

/// Runs planexe in `p` with the API key set.
fn run(p: &Project, args: &[&str]) -> Run {
    let output = p
        .command(args)
        .env("REPLAY_TEST_KEY", KEY)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn entries(dir: &Path) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(e.path()).unwrap();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn usage(p: &Project) -> Vec<Value> {
    p.read(".planexe/usage.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn hex_keys(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .filter(|w| w.len() == 64)
        .map(str::to_string)
        .collect()
}

#[test]
fn a_recording_replays_byte_for_byte_with_one_call_and_no_server() {
    let server = Server::start();
    // The first answer is no JSON: the recording needs a re-ask.
    server.script([openai_answer("no json here"), openai_answer("{\"a\": 1}")]);
    let tape = tempfile::tempdir().unwrap();
    let dir = tape.path().join("answers");
    let dir_arg = dir.to_str().unwrap();
    let text = pipeline(&server, "Plan it", "", "local");
    let live = Project::new(&text);
    run(&live, &["build", "--record", dir_arg]).ok();
    assert_eq!(server.requests().len(), 2);

    let recorded = entries(&dir);
    assert_eq!(recorded.len(), 1, "one entry per initial request");
    let (name, entry) = &recorded[0];
    assert_eq!(name, &format!("{}.json", entry["key"].as_str().unwrap()));
    assert_eq!(entry["answer"]["text"], "{\"a\": 1}");
    assert_eq!(entry["task"], "ask");
    assert_eq!(entry["request"]["model"], "local-model");
    assert_eq!(entry["request"]["provider"], "openai");
    assert_eq!(entry["request"]["seed"], 7);
    assert_eq!(entry["request"]["messages"][0]["content"], "Plan it");
    let raw = std::fs::read_to_string(dir.join(name)).unwrap();
    assert!(!raw.contains(KEY), "no API key in an entry");
    assert!(raw.contains('\n'), "pretty JSON");

    // A replay after the live build re-runs nothing.
    run(&live, &["build", "--replay", dir_arg])
        .ok()
        .stderr_has("nothing to do");

    // A fresh run dir, no key in the environment, replayed.
    let replay = Project::new(&text);
    replay.run(&["build", "--replay", dir_arg]).ok();
    assert_eq!(server.requests().len(), 2, "no HTTP call in replay mode");
    assert_eq!(replay.read("a.json"), live.read("a.json"));
    let calls = usage(&replay);
    assert_eq!(calls.len(), 1, "one call, though the recording re-asked");
    assert_eq!(calls[0]["replayed"], true);
    assert_eq!(calls[0]["cost_usd"], Value::Null);
    assert_eq!(calls[0]["status"], "ok");
    assert!(usage(&live).iter().all(|c| c["replayed"] == false));
    let status = replay.run(&["status", "--json"]);
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["totals"]["replayed_calls"], 1, "{status}");
    replay.run(&["status"]).ok().stdout_has("replayed");

    // A changed prompt misses: exit 1, the request's hash and the folder.
    let changed = Project::new(&pipeline(&server, "Plan it again", "", "local"));
    let run = changed.run(&["build", "--replay", dir_arg]);
    run.code(1).stderr_has("replay_miss").stderr_has(dir_arg);
    let missed = hex_keys(&run.stderr);
    assert!(!missed.is_empty(), "{}", run.stderr);
    assert!(missed.iter().all(|k| !name.starts_with(k.as_str())));
    assert_eq!(changed.status_json("ask")["error"]["kind"], "replay_miss");
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn a_cache_shared_by_two_run_dirs_asks_once() {
    let server = Server::start();
    server.default_reply(openai_answer("{\"a\": 2}"));
    let shared = tempfile::tempdir().unwrap();
    let cache = shared.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    let text = pipeline(&server, "Plan it", "", "local");
    let first = Project::new(&text);
    run(&first, &["build", "--cache", cache_arg]).ok();
    assert_eq!(server.requests().len(), 1);
    let second = Project::new(&text);
    run(&second, &["build", "--cache", cache_arg]).ok();
    assert_eq!(server.requests().len(), 1, "a hit asks nothing");
    assert_eq!(second.read("a.json"), first.read("a.json"));
    assert_eq!(usage(&second)[0]["replayed"], true);

    // The pipeline's own cache, relative to its folder.
    let keyed = Project::new(&text.replace("[pipeline]\n", "[pipeline]\ncache = \"answers\"\n"));
    run(&keyed, &["build"]).ok();
    run(&keyed, &["build", "-B"]).ok();
    assert_eq!(server.requests().len(), 2);
    assert_eq!(entries(&keyed.path("answers")).len(), 1);
}

#[test]
fn a_damaged_entry_is_asked_again_in_cache_mode_and_a_miss_in_replay_mode() {
    let server = Server::start();
    server.default_reply(openai_answer("{\"a\": 3}"));
    let shared = tempfile::tempdir().unwrap();
    let text = pipeline(&server, "Plan it", "", "local");
    // Damages the one entry of `dir`.
    let truncate = |dir: &Path| {
        let (name, _) = entries(dir).remove(0);
        let path = dir.join(&name);
        let whole = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
    };

    let cache = shared.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    run(&Project::new(&text), &["build", "--cache", cache_arg]).ok();
    truncate(&cache);
    let cached = Project::new(&text);
    run(&cached, &["build", "--cache", cache_arg])
        .ok()
        .stderr_has("warning")
        .stderr_has("damaged");
    assert_eq!(server.requests().len(), 2, "asked again");
    assert_eq!(entries(&cache).len(), 1, "and stored whole again");

    let dir = shared.path().join("answers");
    let dir_arg = dir.to_str().unwrap();
    run(&Project::new(&text), &["build", "--record", dir_arg]).ok();
    truncate(&dir);
    let replayed = Project::new(&text);
    replayed
        .run(&["build", "--replay", dir_arg])
        .code(1)
        .stderr_has("damaged")
        .stderr_has("replay_miss");
    assert_eq!(server.requests().len(), 3);
}

/// Two models that differ only by their server (`base_url`: two
/// llama-servers, or LM Studio and Ollama both serving "llama3") shared
/// the response cache's entries, whose keys named the provider and the
/// request body but not the server: one server's answer was given for the
/// other's. A cache's keys now name the server, so each task gets its own
/// server's answer, first asked and then from the cache; a recording's
/// keys do not, so recordings replay as before.
#[test]
fn the_response_cache_keeps_two_servers_answers_apart() {
    let (one, two) = (Server::start(), Server::start());
    one.default_reply(openai_answer("{\"from\": \"one\"}"));
    two.default_reply(openai_answer("{\"from\": \"two\"}"));
    let model = |name: &str, server: &Server, slash: &str| {
        format!(
            "[models.{name}]\nprovider = \"openai\"\nbase_url = \"{}/v1{slash}\"\nmodel = \"llama3\"\napi_key_env = \"REPLAY_TEST_KEY\"\ntemperature = 0\nseed = 7\n\n",
            server.url
        )
    };
    let task = |name: &str, model: &str, after: &str| {
        format!("[tasks.{name}]\noutputs = [\"{name}.json\"]\nformat = \"json\"\nprompt = \"Plan it\"\nmodel = \"{model}\"\nafter = [{after}]\n\n")
    };
    // `b` after `a`, so on the old code `b` finds `a`'s entry.
    let text = format!(
        "{}{}{}{}",
        model("one", &one, ""),
        model("two", &two, "/"),
        task("a", "one", ""),
        task("b", "two", "\"a\"")
    );
    let shared = tempfile::tempdir().unwrap();
    let cache = shared.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    let asked = || (one.requests().len(), two.requests().len());
    let from = |p: &Project, file: &str| {
        let answer: Value = serde_json::from_str(&p.read(file)).unwrap();
        answer["from"].as_str().unwrap().to_string()
    };

    let first = Project::new(&text);
    run(&first, &["build", "--cache", cache_arg]).ok();
    assert_eq!(from(&first, "a.json"), "one");
    assert_eq!(
        from(&first, "b.json"),
        "two",
        "b has its own server's answer"
    );
    assert_eq!(asked(), (1, 1), "each server asked once");
    let stored = entries(&cache);
    assert_eq!(stored.len(), 2, "an entry per server");
    let servers: Vec<&str> = stored
        .iter()
        .map(|(_, e)| e["request"]["base_url"].as_str().unwrap())
        .collect();
    assert!(
        servers.contains(&format!("{}/v1", one.url).as_str()),
        "{servers:?}"
    );
    assert!(
        servers.contains(&format!("{}/v1", two.url).as_str()),
        "{servers:?}"
    );
    for (name, _) in &stored {
        let raw = std::fs::read_to_string(cache.join(name)).unwrap();
        assert!(!raw.contains(KEY), "no API key in an entry");
    }

    // A second run directory: both from the cache, each its own.
    let second = Project::new(&text);
    run(&second, &["build", "--cache", cache_arg]).ok();
    assert_eq!(asked(), (1, 1), "both were hits");
    assert_eq!(from(&second, "a.json"), "one");
    assert_eq!(from(&second, "b.json"), "two");
    assert!(usage(&second).iter().all(|c| c["replayed"] == true));

    // A recording does not name the server: what model `one` recorded,
    // model `two` replays (their requests are the same).
    let tape = shared.path().join("answers");
    let tape_arg = tape.to_str().unwrap();
    let recorded = Project::new(&text);
    run(&recorded, &["build", "--record", tape_arg, "a"]).ok();
    assert_eq!(entries(&tape).len(), 1);
    assert!(entries(&tape)[0].1["request"].get("base_url").is_none());
    let replayed = Project::new(&text);
    replayed.run(&["build", "--replay", tape_arg]).ok();
    assert_eq!(from(&replayed, "b.json"), "one");
}

#[test]
fn a_replay_model_answers_what_its_model_recorded() {
    let server = Server::start();
    server.default_reply(openai_answer("{\"a\": 4}"));
    let shared = tempfile::tempdir().unwrap();
    let dir = shared.path().join("answers");
    let replay_model = format!(
        "[models.recorded]\nprovider = \"replay\"\ndir = \"{}\"\nreplays = \"local\"\n",
        dir.display()
    );
    let text = pipeline(&server, "Plan it", &replay_model, "recorded");
    let live = Project::new(&text);
    run(
        &live,
        &[
            "build",
            "--model",
            "local",
            "--record",
            dir.to_str().unwrap(),
        ],
    )
    .ok();
    assert_eq!(server.requests().len(), 1);
    // A recording is a session of its own: the run does not remember its
    // `--model`, so the next build there replays what it recorded (it
    // asked `local` again, from then on).
    let again = run(&live, &["build", "-B"]);
    again.ok();
    assert!(
        !again.stderr.contains("chosen for this run"),
        "{}",
        again.stderr
    );
    assert_eq!(server.requests().len(), 1, "replayed, not asked");
    assert_eq!(usage(&live).last().unwrap()["model"], "recorded");

    // No key needed: the replay model calls no server.
    let replayed = Project::new(&text);
    replayed.build().ok();
    assert_eq!(server.requests().len(), 1);
    assert_eq!(replayed.read("a.json"), live.read("a.json"));
    assert_eq!(usage(&replayed)[0]["model"], "recorded");
    assert_eq!(usage(&replayed)[0]["replayed"], true);

    run(&replayed, &["build", "-B", "--model", "local"]).ok();
    assert_eq!(server.requests().len(), 2, "--model local asks the server");
}

#[test]
fn replay_models_are_checked_with_file_line_col() {
    let server = Server::start();
    let bad = |models: &str, needle: &str| {
        let p = Project::new(&pipeline(&server, "Plan it", models, "recorded"));
        p.build()
            .code(2)
            .stderr_has(needle)
            .stderr_has("pipeline.toml:");
    };
    bad(
        "[models.recorded]\nprovider = \"replay\"\ndir = \"answers\"\nreplays = \"nope\"\n",
        "unknown model `nope`",
    );
    bad(
        "[models.recorded]\nprovider = \"replay\"\ndir = \"answers\"\nreplays = \"other\"\n\n[models.other]\nprovider = \"replay\"\ndir = \"answers\"\nreplays = \"local\"\n",
        "itself a replay model",
    );
    bad(
        "[models.recorded]\nprovider = \"replay\"\ndir = \"answers\"\n",
        "has no `replays`",
    );
    bad(
        "[models.recorded]\nprovider = \"replay\"\ndir = \"answers\"\nreplays = \"local\"\nbase_url = \"http://x\"\n",
        "does not apply to a replay model",
    );
    // The folder is checked when a build needs it.
    let p = Project::new(&pipeline(
        &server,
        "Plan it",
        "[models.recorded]\nprovider = \"replay\"\ndir = \"answers\"\nreplays = \"local\"\n",
        "recorded",
    ));
    p.build()
        .code(2)
        .stderr_has("pipeline.toml:14:7")
        .stderr_has("does not exist")
        .stderr_has("--record");
    // A file where the folder should be is named as such.
    p.write("answers", "not a folder\n");
    p.build()
        .code(2)
        .stderr_has("pipeline.toml:14:7")
        .stderr_has("answers is not a folder");
    // A file on the way to the folder: named, and no advice to record
    // answers where none can be.
    p.write(
        "pipeline.toml",
        &p.read("pipeline.toml")
            .replace("dir = \"answers\"", "dir = \"answers/x\""),
    );
    let run = p.build();
    run.code(2)
        .stderr_has("pipeline.toml:14:7")
        .stderr_has("cannot exist: ")
        .stderr_has("answers is a file, not a folder")
        .stderr_has("hint: a file stands where a folder on the way to ");
    assert!(!run.stderr.contains("--record"), "{}", run.stderr);
    std::fs::remove_file(p.path("answers")).unwrap();
    p.run(&["build", "--replay", "x", "--cache", "y"]).code(2);
    let live = Project::new(&pipeline(&server, "Plan it", "", "local"));
    live.run(&["build", "--replay", "missing"])
        .code(2)
        .stderr_has(&format!(
            "error: --replay {}: no such folder of recorded answers\n",
            live.path("missing").display()
        ));
    // A file is there, but it is not a folder: said so, not "no such folder".
    live.write("answers.jsonl", "{}\n");
    let run = live.run(&["build", "--replay", "answers.jsonl"]);
    run.code(2)
        .stderr_has(&format!(
            "error: --replay {}: not a folder; --replay takes the folder of recorded answers\n",
            live.path("answers.jsonl").display()
        ))
        .stderr_has("hint: pass the folder that planexe build --record DIR filled, not a file");
    assert!(!run.stderr.contains("no such folder"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("record answers first"),
        "{}",
        run.stderr
    );
    // A folder behind that file: the file is named, and recording there
    // is not advised (it could not be).
    let run = live.run(&["build", "--replay", "answers.jsonl/x"]);
    run.code(2)
        .stderr_has(
            "answers.jsonl is a file, not a folder; --replay takes the folder of recorded answers",
        )
        .stderr_has("hint: a file stands where a folder on the way to ");
    for wrong in ["no such folder", "record answers first", "os error"] {
        assert!(!run.stderr.contains(wrong), "{wrong}: {}", run.stderr);
    }
}

#[test]
fn a_replay_miss_records_the_attempt_it_was() {
    let server = Server::start();
    let empty = tempfile::tempdir().unwrap();
    // Two replay models with nothing recorded: the first falls back to
    // the second, and each miss is an attempt of its own.
    let models = format!(
        "[models.recorded]\nprovider = \"replay\"\ndir = \"{0}\"\nreplays = \"local\"\nfallback = [\"again\"]\n\n[models.again]\nprovider = \"replay\"\ndir = \"{0}\"\nreplays = \"local\"\n",
        empty.path().display()
    );
    let p = Project::new(&pipeline(&server, "Plan it", &models, "recorded"));
    // How to have an answer: ask the live model it replays, and record.
    let how = format!(
        "ask the live model it replays: planexe build --model local (add --record {} to keep its answers for the replay)",
        empty.path().display()
    );
    p.build()
        .code(1)
        .stderr_has("replay_miss")
        .stderr_has(&format!(
        "hint: ask has no recorded answer for its requests to model recorded, model again; {how}; "
    ));
    let shown: Value = serde_json::from_str(&p.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(shown["tasks"][0]["hint"], how.as_str());
    let status = p.status_json("ask");
    assert_eq!(status["error"]["kind"], "replay_miss");
    assert_eq!(status["attempt"], 2, "{status:#}");
    let attempts: Vec<(Value, Value)> = status["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["attempt"].clone(), a["outcome"].clone()))
        .collect();
    assert_eq!(
        attempts,
        [
            (1.into(), "replay_miss".into()),
            (2.into(), "replay_miss".into())
        ]
    );
    let failures = p.jsonl(".planexe/failures.jsonl");
    let numbers: Vec<(Value, Value)> = failures
        .iter()
        .map(|f| (f["model"].clone(), f["attempt"].clone()))
        .collect();
    assert_eq!(
        numbers,
        [("recorded".into(), 1.into()), ("again".into(), 2.into())]
    );
    assert_eq!(status["error"]["error_id"], failures[1]["error_id"]);
    p.run(&["status"]).ok().stdout_has("attempt 2, model again");
    assert!(server.requests().is_empty(), "no HTTP call");

    // `--replay DIR`, one model: attempt 1.
    let p = Project::new(&pipeline(&server, "Plan it", "", "local"));
    p.run(&["build", "--replay", empty.path().to_str().unwrap()])
        .code(1)
        .stderr_has("replay_miss")
        .stderr_has("record it: planexe build --record DIR (with a live model)");
    assert_eq!(p.status_json("ask")["attempt"], 1);
    assert_eq!(p.jsonl(".planexe/failures.jsonl")[0]["attempt"], 1);
}

/// A task answered from the response cache calls no server, so it takes
/// none of its model's `max_concurrency`: with the model's one slot held
/// by a slow live call, the cached tasks finish at once instead of
/// waiting for it. A live call still waits for the slot.
#[test]
fn cache_hits_do_not_wait_for_the_models_full_pool() {
    let server = Server::start();
    server.default_reply(openai_answer("{\"a\": 4}"));
    let shared = tempfile::tempdir().unwrap();
    let cache = shared.path().join("cache");
    let cache_arg = cache.to_str().unwrap();
    let mut text = pipeline(&server, "Slow one", "", "local").replace(
        "seed = 7\n",
        "seed = 7\nmax_concurrency = 1\nstream = false\n",
    );
    for name in ["b", "c", "d"] {
        text.push_str(&format!(
            "\n[tasks.{name}]\noutputs = [\"{name}.json\"]\nformat = \"json\"\nprompt = \"Plan {name}\"\n"
        ));
    }
    let p = Project::new(&text);
    run(&p, &["build", "--cache", cache_arg, "b", "c", "d"]).ok();
    assert_eq!(server.requests().len(), 3);
    assert_eq!(entries(&cache).len(), 3);
    // `ask`, declared first, starts first and holds the slot for 3 s.
    server.default_reply(delayed(
        openai_answer("{\"a\": 5}"),
        std::time::Duration::from_secs(3),
    ));
    p.run(&["clean", "-y", "b", "c", "d"]).ok();
    run(&p, &["build", "--cache", cache_arg, "-j", "4"]).ok();
    assert_eq!(server.requests().len(), 4, "only `ask` called the server");
    let done: Vec<String> = p
        .jsonl(".planexe/events.jsonl")
        .iter()
        .filter(|e| e["event"] == "task.completed")
        .map(|e| e["task"].as_str().unwrap().to_string())
        .collect();
    let last = done.len() - 4;
    assert_eq!(
        done[last + 3],
        "ask",
        "the cached tasks ended first: {done:?}"
    );
    let answer: Value = serde_json::from_str(&p.read("a.json")).unwrap();
    assert_eq!(answer["a"], 5);
    for name in ["b", "c", "d"] {
        assert_eq!(
            usage(&p).iter().rfind(|u| u["task"] == name).unwrap()["replayed"],
            true
        );
    }
}

#[test]
fn a_record_or_cache_folder_that_cannot_be_made_stops_the_build_before_any_call() {
    let server = Server::start();
    server.default_reply(openai_answer("{\"a\": 1}"));
    let p = Project::new(&pipeline(&server, "hi", "", "local"));
    p.write("plain.txt", "a file, not a folder");
    for flag in ["--record", "--cache"] {
        for dir in ["plain.txt", "plain.txt/answers"] {
            let run = run(&p, &["build", flag, dir]);
            run.code(2).ran(&[]);
            // As docs/llm.md quotes it: DIR by its absolute path.
            run.stderr_has(&format!(
                "error: {flag} {}: cannot make the folder of recorded answers: ",
                p.path(dir).display()
            ))
            .stderr_has(&format!("hint: pass {flag} a folder planexe can write"));
            // What is wrong, in words: the file in the way, not the OS's
            // "Not a directory (os error 20)".
            run.stderr_has(if dir == "plain.txt" {
                "recorded answers: it is a file, not a folder"
            } else {
                "plain.txt is a file, not a folder"
            });
            assert!(!run.stderr.contains("os error"), "{}", run.stderr);
        }
    }
    assert!(server.requests().is_empty(), "no model was asked");
    // A dry run makes no folder.
    run(&p, &["build", "-n", "--record", "new"]).ok();
    assert!(!p.exists("new"));
    run(&p, &["build", "--record", "new"]).ok();
    assert_eq!(entries(&p.path("new")).len(), 1);
}

/// `[pipeline] cache = "DIR"`, the pipeline file's spelling of `--cache`,
/// was not made before the build: one that could not be was a warning
/// per answer, after the calls were paid for. It now stops the build (and
/// `planexe check`) before any call, pointing at the key, as the flag's
/// folder does.
#[test]
fn a_pipeline_cache_folder_that_cannot_be_made_stops_the_build_before_any_call() {
    let server = Server::start();
    server.default_reply(openai_answer("{\"a\": 1}"));
    let text = pipeline(&server, "hi", "", "local");
    let p = Project::new(&text);
    p.write("plain.txt", "a file, not a folder");
    for dir in ["plain.txt", "plain.txt/answers"] {
        p.write(
            "pipeline.toml",
            &text.replacen(
                "[pipeline]\n",
                &format!("[pipeline]\ncache = \"{dir}\"\n"),
                1,
            ),
        );
        for args in [&["build"][..], &["check"]] {
            let run = run(&p, args);
            run.code(2).ran(&[]);
            run.stderr_has("error: pipeline.toml:2:9: cache = ")
                .stderr_has(": cannot make the folder of cached answers (")
                .stderr_has("2 | cache = ")
                .stderr_has("hint: name a folder planexe can write");
            run.stderr_has(if dir == "plain.txt" {
                "): it is a file, not a folder"
            } else {
                "): plain.txt is a file, not a folder"
            });
            assert!(!run.stderr.contains("os error"), "{}", run.stderr);
        }
    }
    assert!(server.requests().is_empty(), "no model was asked");
    assert!(!p.exists(".planexe/usage.jsonl"));
    // A dry run makes no folder; a build makes it and stores there.
    p.write(
        "pipeline.toml",
        &text.replacen("[pipeline]\n", "[pipeline]\ncache = \"answers\"\n", 1),
    );
    run(&p, &["build", "-n"]).ok();
    assert!(!p.exists("answers"));
    run(&p, &["build"]).ok();
    assert_eq!(entries(&p.path("answers")).len(), 1);
}

/// A task asking a scripted server, with a response cache and `extra`
/// (a check, a judge).
fn cached(server: &Server, extra: &str) -> Project {
    Project::new(&format!(
        "[pipeline]\ncache = \"answers\"\nmodel = \"local\"\n\n[models.local]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\n\n[tasks.ask]\noutputs = [\"a.md\"]\nprompt = \"Plan it\"\n{extra}",
        server.url
    ))
}

fn answers(p: &Project) -> Vec<String> {
    entries(&p.path("answers"))
        .into_iter()
        .map(|(_, entry)| entry["answer"]["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_answer_its_check_refuses_leaves_the_response_cache() {
    let server = Server::start();
    server
        .script([openai_answer("a bad plan")])
        .default_reply(openai_answer("a good plan"));
    let p = cached(&server, "check = \"grep -q good \\\"$1\\\"\"\n");
    p.build()
        .code(1)
        .stderr_has(
            "; its answer was removed from the response cache answers/, so the next build asks the model again",
        );
    assert!(answers(&p).is_empty());
    // The next build asks again, rather than replay the answer refused.
    p.build().ok().ran(&["ask"]);
    assert_eq!(p.read("a.md"), "a good plan");
    assert_eq!(server.requests().len(), 2);
    // An answer its check accepts stays, and is replayed.
    assert_eq!(answers(&p), ["a good plan"]);
    p.run(&["clean", "-y", "ask"]).ok();
    p.build().ok().ran(&["ask"]);
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn answers_its_judge_refused_leave_the_response_cache() {
    let server = Server::start();
    let verdict =
        |score: f64| openai_answer(&format!("{{\"score\": {score}, \"reason\": \"thin\"}}"));
    server.script([
        openai_answer("a bad plan"),
        verdict(0.1),
        openai_answer("a worse plan"),
        verdict(0.1),
    ]);
    let judge =
        "[tasks.ask.judge]\nprompt = \"Score {{ output }}\"\nthreshold = 0.5\nretries = 1\n";
    let p = cached(&server, judge);
    p.build()
        .code(1)
        .stderr_has("judge_rejected")
        .stderr_has("its 2 answers were removed from the response cache answers/, so the next");
    // The task's answers are gone; the judge's verdicts, keyed by the
    // answers they scored, may stay.
    let left = answers(&p);
    assert!(left.iter().all(|text| !text.contains("plan")), "{left:?}");
    assert_eq!(server.requests().len(), 4);
}
