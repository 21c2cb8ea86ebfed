//! `run_create`'s `files`: a pipeline that reads a source file besides
//! plan.txt gets it from the client, written into the new run; every
//! path or size it refuses, with nothing left behind; and `clean`, which
//! keeps such a file when a task names it later, and says so.

use serde_json::json;

use super::Client;
use crate::harness::*;

/// Reads plan.txt and two source files, one in a folder.
const READS_NOTES: &str = r#"
[tasks.join]
inputs = ["plan.txt", "notes.md", "data/items.json"]
outputs = ["out.txt"]
command = "cat plan.txt notes.md data/items.json > out.txt"
"#;

#[test]
fn a_pipeline_reading_notes_builds_with_the_files_given() {
    let p = Project::new(READS_NOTES);
    let mut c = Client::start(&p, &[]);
    let files = json!({"notes.md": "# notes\nbe brief\n", "./data//items.json": "[1, 2]"});
    let made = c.ok(
        "run_create",
        json!({"plan": "a shed", "name": "r", "files": files}),
    );
    assert_eq!(made["created"], true, "{made}");
    assert_eq!(p.read("r/notes.md"), "# notes\nbe brief\n");
    // Normalized, its folder made, written as given (no newline added).
    assert_eq!(p.read("r/data/items.json"), "[1, 2]");
    // The same call again is the same run; other files make another.
    let again = c.ok(
        "run_create",
        json!({"plan": "a shed", "files": {"notes.md": "# notes\nbe brief\n", "data/items.json": "[1, 2]"}}),
    );
    assert_eq!(again["created"], false, "{again}");
    assert_eq!(again["run"], "r", "{again}");
    let other = c.ok(
        "run_create",
        json!({"plan": "a shed", "files": {"notes.md": "other\n", "data/items.json": "[]"}}),
    );
    assert_eq!(other["created"], true, "{other}");
    c.ok("build", json!({"run": "r"}));
    let status = c.ok("wait", json!({"run": "r", "timeout_s": 30}));
    assert_eq!(status["state"], "completed", "{status}");
    assert_eq!(
        c.ok("read_output", json!({"run": "r", "path": "out.txt"}))["text"],
        "a shed\n# notes\nbe brief\n[1, 2]"
    );
    assert!(c.close().success());
}

#[test]
fn each_bad_file_is_refused_saying_which_and_why_with_nothing_made() {
    let p = Project::new(READS_NOTES);
    let mut c = Client::start(&p, &[]);
    let ok = json!("[]");
    let refused = |c: &mut Client, files: serde_json::Value, says: &[&str]| {
        let message = c.err(
            "run_create",
            json!({"plan": "a shed", "name": "r", "files": files}),
        );
        for s in says {
            assert!(message.contains(s), "{s:?} not in: {message}");
        }
        assert!(
            message.contains("hint:") || message.contains("hint"),
            "{message}"
        );
        assert!(!p.exists("r"), "a refusal left the run folder: {message}");
    };
    refused(
        &mut c,
        json!({"../escape.md": "x", "notes.md": "n"}),
        &["`../escape.md`", "holds `..`"],
    );
    refused(
        &mut c,
        json!({"/tmp/abs.md": "x", "notes.md": "n"}),
        &["`/tmp/abs.md`", "absolute path"],
    );
    refused(
        &mut c,
        json!({".planexe/pipeline": "/etc/passwd", "notes.md": "n"}),
        &["`.planexe/pipeline`", "inside .planexe/"],
    );
    refused(
        &mut c,
        json!({"plan.txt": "another plan", "notes.md": "n"}),
        &["`plan.txt`", "give it as the plan"],
    );
    refused(
        &mut c,
        json!({"notes.md": "n", "./notes.md": "m", "data/items.json": ok}),
        &["names the same file"],
    );
    // A task's output: written, then found out and undone whole.
    refused(
        &mut c,
        json!({"notes.md": "n", "data/items.json": ok, "out.txt": "fake"}),
        &["out.txt", "task `join` writes it", "leave this one out"],
    );
    // Sizes, with the bound said.
    let big = "x".repeat((1 << 20) + 1);
    refused(
        &mut c,
        json!({"notes.md": big, "data/items.json": ok}),
        &["`notes.md`", "a file is at most 1048576 bytes"],
    );
    let mb = "x".repeat(1 << 20);
    let many: serde_json::Map<String, serde_json::Value> =
        (0..5).map(|i| (format!("f{i}.md"), json!(mb))).collect();
    refused(
        &mut c,
        json!(many),
        &["run_create takes at most 4194304 bytes"],
    );
    // A source left out: the hint names `files`.
    refused(
        &mut c,
        json!({"notes.md": "n"}),
        &["data/items.json", "in `files`"],
    );
    // The limits are told.
    let info = c.ok("server_info", json!({}));
    assert_eq!(info["limits"]["file_max_bytes"], 1 << 20, "{info}");
    assert_eq!(info["limits"]["files_max_total_bytes"], 4 << 20, "{info}");
    assert!(c.close().success());
}

/// A run folder given by its maker, empty, is kept when a refusal undoes
/// what the run wrote into it.
#[test]
fn a_refusal_in_an_empty_folder_keeps_the_folder_and_removes_the_files() {
    let p = Project::new(READS_NOTES);
    std::fs::create_dir(p.path("r")).unwrap();
    let mut c = Client::start(&p, &[]);
    let message = c.err(
        "run_create",
        json!({"plan": "a shed", "name": "r", "files": {"deep/er/out.txt": "x", "notes.md": "n"}}),
    );
    assert!(message.contains("data/items.json"), "{message}");
    assert!(p.exists("r"));
    assert_eq!(
        std::fs::read_dir(p.path("r")).unwrap().count(),
        0,
        "{message}"
    );
    assert!(c.close().success());
}

/// A file no task reads is written all the same, and the call says so, as
/// `planexe new --input` does; said again when the call is repeated.
#[test]
fn a_file_no_task_reads_is_warned_about() {
    let p = Project::new(READS_NOTES);
    let mut c = Client::start(&p, &[]);
    let files = json!({"notes.md": "n\n", "data/items.json": "[]", "extra/unread.md": "u\n"});
    for created in [true, false] {
        let made = c.ok(
            "run_create",
            json!({"plan": "a shed", "name": "r", "files": files}),
        );
        assert_eq!(made["created"], created, "{made}");
        let warnings = made["warnings"].as_array().unwrap();
        assert_eq!(warnings.len(), 1, "{made}");
        let warning = warnings[0].as_str().unwrap();
        assert!(
            warning.contains("reads extra/unread.md (given in `files`)"),
            "{warning}"
        );
    }
    assert_eq!(p.read("r/extra/unread.md"), "u\n");
    assert!(c.close().success());
}

/// A fan-out whose instances read `notes/ITEM.md` and write `out/ITEM.md`,
/// over `topics.json`: made by a task from the plan (the fan-out a
/// placeholder when the run is made), or given in `files` (expanded).
/// A file a fan-out's instance would write is refused, and one it would
/// read is not warned about, whether the list is still to be made or
/// given: the templates say, for any item.
#[test]
fn the_files_of_a_fan_out_are_judged_by_its_templates() {
    for (pipeline, list) in [
        (format!("{TOPICS}{PER_TOPIC}"), json!({})),
        (PER_TOPIC.to_string(), json!({"topics.json": "[\"a\"]"})),
    ] {
        let p = Project::new(&pipeline);
        let mut c = Client::start(&p, &[]);
        let files = |extra: serde_json::Value| {
            let mut files = json!({"notes/a.md": "a\n"});
            for (k, v) in list
                .as_object()
                .unwrap()
                .iter()
                .chain(extra.as_object().unwrap())
            {
                files[k] = v.clone();
            }
            files
        };
        let message = c.err(
            "run_create",
            json!({"plan": "x", "name": "r", "files": files(json!({"out/b.md": "mine\n"}))}),
        );
        for says in [
            "cannot seed the run with out/b.md: fan-out `per` may write it",
            "`out/{{ item }}.md`",
            "hint",
        ] {
            assert!(message.contains(says), "{says:?} not in: {message}");
        }
        assert!(!p.exists("r"), "{message}");
        let made = c.ok(
            "run_create",
            json!({"plan": "x", "name": "r", "files": files(json!({"notes/b.md": "b\n"}))}),
        );
        assert_eq!(made["created"], true, "{made}");
        assert_eq!(made["warnings"], json!([]), "{pipeline}\n{made}");
        assert_eq!(p.read("r/notes/b.md"), "b\n");
        assert!(c.close().success());
    }
}

/// Reads two notes by a glob: a file the caller did not give would be read.
const READS_GLOB: &str = r#"
[tasks.join]
inputs = ["plan.txt", "notes/*.md"]
outputs = ["out.txt"]
command = "cat {inputs} > out.txt"
"#;

/// `run_create` returns an earlier run only when it was given exactly the
/// same files: not one that holds a file this call did not give (the
/// pipeline's glob would read it).
#[test]
fn run_create_with_fewer_files_makes_another_run() {
    let p = Project::new(READS_GLOB);
    let mut c = Client::start(&p, &[]);
    let both = json!({"notes/a.md": "a\n", "notes/b.md": "b\n"});
    let first = c.ok("run_create", json!({"plan": "a shed", "files": both}));
    assert_eq!(first["created"], true, "{first}");
    let again = c.ok("run_create", json!({"plan": "a shed", "files": both}));
    assert_eq!(
        (again["created"].clone(), &again["run"]),
        (json!(false), &first["run"])
    );
    // The same files spelled otherwise (`./notes/b.md` comes before
    // `notes/a.md` as given, after it as recorded): the same run.
    let spelled = json!({"./notes/b.md": "b\n", "notes/a.md": "a\n"});
    let again = c.ok("run_create", json!({"plan": "a shed", "files": spelled}));
    assert_eq!(
        (again["created"].clone(), &again["run"]),
        (json!(false), &first["run"])
    );
    let fewer = c.ok(
        "run_create",
        json!({"plan": "a shed", "files": {"notes/a.md": "a\n"}}),
    );
    assert_eq!(fewer["created"], true, "{fewer}");
    assert_ne!(fewer["run"], first["run"], "{fewer}");
    let fewer_run = fewer["run"].as_str().unwrap();
    assert!(!p.exists(&format!("{fewer_run}/notes/b.md")));
    let none = c.ok("run_create", json!({"plan": "a shed"}));
    assert_eq!(none["created"], true, "{none}");
    assert!(c.close().success());
}

/// `.planexe/origin.json` records the files a run was given; a run made
/// before it did (its origin has no `inputs`) is the same only for a call
/// that gives no files.
#[test]
fn run_create_records_the_files_and_an_unrecorded_run_is_the_same_only_without_files() {
    let p = Project::new(READS_GLOB);
    let mut c = Client::start(&p, &[]);
    let both = json!({"notes/b.md": "b\n", "notes/a.md": "a\n"});
    let first = c.ok("run_create", json!({"plan": "a shed", "files": both}));
    let run = first["run"].as_str().unwrap().to_string();
    let path = format!("{run}/.planexe/origin.json");
    let mut origin: serde_json::Value = serde_json::from_str(&p.read(&path)).unwrap();
    let hash = |text: &str| blake3::hash(text.as_bytes()).to_hex().to_string();
    assert_eq!(
        origin["inputs"],
        json!([
            {"path": "notes/a.md", "blake3": hash("a\n"), "size": 2},
            {"path": "notes/b.md", "blake3": hash("b\n"), "size": 2},
        ]),
        "{origin}"
    );
    origin.as_object_mut().unwrap().remove("inputs");
    p.write(&path, &origin.to_string());
    let given = c.ok("run_create", json!({"plan": "a shed", "files": both}));
    assert_eq!(given["created"], true, "{given}");
    assert_ne!(given["run"], first["run"], "{given}");
    let bare = c.ok("run_create", json!({"plan": "a shed"}));
    assert_eq!(
        (bare["created"].clone(), &bare["run"]),
        (json!(false), &first["run"])
    );
    assert!(c.close().success());
}

/// `clean` of a task that now names a file the run was given as its
/// output (the pipeline edited since) leaves the file, and says so as
/// data: `kept`, each with its task and why (`given`); as it does a file
/// a task the pipeline no longer has wrote, which the pipeline now reads
/// (`source`).
#[test]
fn clean_says_which_files_it_kept_and_why() {
    let reads_note = r#"
[tasks.brief]
inputs = ["plan.txt", "notes/x.md"]
outputs = ["brief.txt"]
command = "cat plan.txt notes/x.md > brief.txt"
"#;
    let draft = r#"
[tasks.draft]
inputs = ["plan.txt"]
outputs = ["notes/x.md"]
command = "echo drafted > notes/x.md"
"#;
    let p = Project::new(reads_note);
    let mut c = Client::start(&p, &[]);
    let note = "# mine\nkeep me\n";
    c.ok(
        "run_create",
        json!({"plan": "a shed", "name": "r", "files": {"notes/x.md": note}}),
    );
    c.ok("build", json!({"run": "r"}));
    assert_eq!(c.ok("wait", json!({"run": "r"}))["state"], "completed");
    p.write("pipeline.toml", &format!("{draft}{reads_note}"));
    let cleaned = c.ok("clean", json!({"run": "r", "tasks": ["draft"]}));
    assert_eq!(
        cleaned["kept"],
        json!([{"path": "notes/x.md", "task": "draft", "why": "given"}]),
        "{cleaned}"
    );
    assert_eq!(cleaned["kept_omitted"], 0, "{cleaned}");
    assert!(
        !cleaned["deleted"].to_string().contains("notes/x.md"),
        "{cleaned}"
    );
    assert_eq!(p.read("r/notes/x.md"), note);

    // brief is gone from the pipeline, and a task reads what it wrote.
    p.write(
        "pipeline.toml",
        "[tasks.after]\ninputs = [\"brief.txt\"]\noutputs = [\"after.txt\"]\n\
         command = \"cp brief.txt after.txt\"\n",
    );
    let cleaned = c.ok("clean", json!({"run": "r", "tasks": ["brief"]}));
    assert_eq!(
        cleaned["kept"],
        json!([{"path": "brief.txt", "task": "brief", "why": "source"}]),
        "{cleaned}"
    );
    assert!(p.exists("r/brief.txt"));
    // Nothing kept: an empty list.
    let cleaned = c.ok("clean", json!({"run": "r", "tasks": ["after"]}));
    assert_eq!(cleaned["kept"], json!([]), "{cleaned}");
    assert!(c.close().success());
}
