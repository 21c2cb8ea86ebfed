//! The pipeline a build the server starts runs with: the server's, or the
//! one `run_create` named (under the root, outside any run), always passed
//! as `-f`; never a file inside a run, which clients and models write.

use serde_json::{json, Value};

use super::{Client, COMMANDS};
use crate::harness::*;

/// A pipeline whose command leaves a mark outside its run.
const EVIL: &str = r#"
[tasks.evil]
outputs = ["evil.txt"]
command = "touch ../pwned; echo x > evil.txt"
"#;

#[track_caller]
fn build_and_wait(c: &mut Client, run: &str) -> Value {
    c.ok("build", json!({"run": run}));
    loop {
        let status = c.ok("wait", json!({"run": run}));
        if status["timed_out"] == false {
            return status;
        }
    }
}

/// A `pipeline.toml` written into a run (by a command, or a model's
/// answer kept as an output) used to be what a build the server started
/// ran, once the run recorded no pipeline file (or recorded that one):
/// its commands ran as the server's user.
#[test]
fn a_build_never_runs_a_pipeline_file_inside_a_run() {
    let p = Project::new(COMMANDS);
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    p.write("r/pipeline.toml", EVIL);
    p.remove("r/.planexe/pipeline");
    let status = build_and_wait(&mut c, "r");
    assert!(!p.exists("pwned"), "the run's own pipeline.toml was built");
    assert_eq!(status["state"], "completed", "{status}");
    assert_eq!(p.read("r/upper.txt"), "A SHED\n");
    let log = p.read("r/.planexe/build.log");
    assert!(!log.contains("evil"), "{log}");

    // A record naming a file inside a run (this one or another) is refused
    // by every tool that opens the run with its pipeline.
    c.ok("run_create", json!({"plan": "a barn", "name": "other"}));
    p.write("other/notes.toml", EVIL);
    for inside in ["r/pipeline.toml", "other/notes.toml"] {
        let canonical = std::fs::canonicalize(p.path(inside)).unwrap();
        p.write("r/.planexe/pipeline", &format!("{}\n", canonical.display()));
        // Build and clean say so, with the error as data.
        for (tool, arguments) in [
            ("build", json!({"run": "r", "force": true})),
            ("clean", json!({"run": "r", "tasks": ["evil"]})),
        ] {
            let (message, data) = c.refused(tool, arguments);
            assert!(message.contains("inside the run"), "{message}");
            assert!(message.contains("run_create"), "{message}");
            let error = data["pipeline_error"]["message"].as_str().unwrap();
            assert!(error.contains("inside the run"), "{data}");
        }
        // Status says what the run's records hold, and why its pipeline
        // file is refused.
        let status = c.ok("status", json!({"run": "r"}));
        let error = status["pipeline_error"].to_string();
        assert!(error.contains("inside the run"), "{status}");
        assert!(error.contains("run_create"), "{status}");
        assert!(!p.exists("pwned"), "{inside} was built");
    }
    assert!(c.close().success());
}

/// The pipeline `run_create` named is the one its builds are given, by
/// its path, whatever the run holds.
#[test]
fn a_run_is_built_with_the_pipeline_run_create_named() {
    let p = Project::new(EVIL);
    p.write("tools/upper.toml", COMMANDS);
    let mut c = Client::start(&p, &[]);
    let made = c.ok(
        "run_create",
        json!({"plan": "a shed", "name": "r", "pipeline": "tools/upper.toml"}),
    );
    assert_eq!(made["pipeline"], "tools/upper.toml", "{made}");
    p.write("r/pipeline.toml", EVIL);
    let status = build_and_wait(&mut c, "r");
    assert_eq!(status["state"], "completed", "{status}");
    assert_eq!(p.read("r/upper.txt"), "A SHED\n");
    assert!(!p.exists("pwned"));
    // A pipeline named inside a run is refused at run_create, as before.
    let message = c.err(
        "run_create",
        json!({"plan": "p", "pipeline": "r/pipeline.toml"}),
    );
    assert!(message.contains("inside the run `r`"), "{message}");
    assert!(c.close().success());
}
