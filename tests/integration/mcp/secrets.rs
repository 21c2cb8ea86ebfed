//! The API keys of the server's environment never reach a client: not
//! through what a build printed (`.planexe/build.log`), nor a task's log,
//! nor an output a command wrote, whole, cut by `max_bytes` or read from an
//! `offset` inside the key.

use serde_json::json;

use super::Client;
use crate::harness::*;

const KEY: &str = "sk-mcp-secret-5b1e0c77d2";

/// A model that needs the key (no task asks it), and commands that print
/// the key they inherit: one that writes it to its output, then one that
/// fails (after it, so a failure cannot stop the build before the write).
const LEAKY: &str = r#"
[models.local]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"
api_key_env = "PLANEXE_MCP_KEY"

[tasks.leak]
inputs = ["written.txt"]
outputs = ["leak.txt"]
command = "echo \"key=$PLANEXE_MCP_KEY\"; echo \"err=$PLANEXE_MCP_KEY\" >&2; exit 1"

[tasks.write]
inputs = ["plan.txt"]
outputs = ["written.txt"]
command = "printf 'abcdefgh%s tail\n' \"$PLANEXE_MCP_KEY\" > written.txt"
"#;

#[test]
fn a_key_a_command_prints_is_in_no_answer() {
    let p = Project::new(LEAKY);
    let mut c = Client::start_with_env(&p, &[], &[("PLANEXE_MCP_KEY", KEY)]);
    c.ok("run_create", json!({"plan": "a shed", "name": "shed"}));
    c.ok("build", json!({"run": "shed"}));
    let status = c.ok("wait", json!({"run": "shed", "timeout_s": 30}));
    assert_eq!(status["state"], "failed", "{status}");
    // The command did print it, and wrote it to its output: the output
    // is the command's own, its log is planexe's (scrubbed once it ended).
    assert!(p.read("shed/written.txt").contains(KEY));
    assert!(!p.read("shed/.planexe/logs/leak.log").contains(KEY));
    let log = c.ok(
        "read_output",
        json!({"run": "shed", "path": ".planexe/build.log"}),
    );
    let text = log["text"].as_str().unwrap();
    assert!(text.contains("| key=[REDACTED]"), "{text}");
    for path in [".planexe/logs/leak.log", "written.txt"] {
        let read = c.ok("read_output", json!({"run": "shed", "path": path}));
        let text = read["text"].as_str().unwrap();
        assert!(text.contains("[REDACTED]"), "{path}: {text}");
        assert!(!text.contains(KEY), "{path}: {text}");
    }
    // Cut by the limit in the middle of the key: none of it is returned.
    for max in 9..(8 + KEY.len() as u64) {
        let read = c.ok(
            "read_output",
            json!({"run": "shed", "path": "written.txt", "max_bytes": max}),
        );
        let text = read["text"].as_str().unwrap();
        assert!(!text.contains("sk-"), "{max}: {text}");
        assert!(text.len() as u64 <= max, "{max}: {text}");
        assert_eq!(read["truncated"], true);
    }
    let all = serde_json::to_string(&c.ok("status", json!({"run": "shed"}))).unwrap();
    assert!(!all.contains(KEY), "{all}");
    assert!(c.close().success());
}

/// A read that starts inside a key starts with its `[REDACTED]`: none of
/// the key's end is returned.
#[test]
fn a_read_from_inside_a_key_returns_none_of_it() {
    let p = Project::new(LEAKY);
    let mut c = Client::start_with_env(&p, &[], &[("PLANEXE_MCP_KEY", KEY)]);
    c.ok("run_create", json!({"plan": "a shed", "name": "shed"}));
    p.write("shed/key.txt", &format!("abcdefgh{KEY} tail\n"));
    for offset in 8..(8 + KEY.len() as u64) {
        let read = c.ok(
            "read_output",
            json!({"run": "shed", "path": "key.txt", "offset": offset}),
        );
        let text = read["text"].as_str().unwrap();
        assert_eq!(text, "[REDACTED] tail\n", "{offset}");
        assert_eq!(read["offset"], offset, "{offset}");
    }
    // Read a few bytes at a time from next_offset: the key is never
    // pieced together, and nothing after it is lost.
    let mut offset = 0;
    let mut all = String::new();
    loop {
        let read = c.ok(
            "read_output",
            json!({"run": "shed", "path": "key.txt", "offset": offset, "max_bytes": 12}),
        );
        all.push_str(read["text"].as_str().unwrap());
        match read["next_offset"].as_u64() {
            Some(next) => offset = next,
            None => break,
        }
    }
    assert!(!all.contains(&KEY[KEY.len() - 6..]), "{all}");
    assert!(all.starts_with("abcdefgh["), "{all}");
    assert!(all.ends_with(" tail\n"), "{all}");
    assert!(c.close().success());
}

/// A provider's key no model of the pipeline names (`OPENAI_API_KEY`, in
/// the server's environment for another pipeline), which a command prints,
/// is in no answer either.
#[test]
fn a_provider_key_no_model_names_is_in_no_answer() {
    let key = "sk-unnamed-9f3c2a41b7";
    let p = Project::new(
        r#"
[tasks.write]
inputs = ["plan.txt"]
outputs = ["leak.txt"]
command = "echo \"key=$OPENAI_API_KEY\" > leak.txt; echo \"log=$OPENAI_API_KEY\""

[tasks.fail]
inputs = ["leak.txt"]
outputs = ["never.txt"]
command = "echo \"tail=$OPENAI_API_KEY\"; exit 1"
"#,
    );
    let mut c = Client::start_with_env(&p, &[], &[("OPENAI_API_KEY", key)]);
    c.ok("run_create", json!({"plan": "a shed", "name": "shed"}));
    c.ok("build", json!({"run": "shed"}));
    let status = c.ok("wait", json!({"run": "shed", "timeout_s": 30}));
    assert_eq!(status["state"], "failed", "{status}");
    assert!(p.read("shed/leak.txt").contains(key));
    assert!(!status.to_string().contains(key), "{status}");
    assert_eq!(status["error"]["failed_task"], "fail", "{status}");
    for path in [
        "leak.txt",
        ".planexe/logs/write.log",
        ".planexe/logs/fail.log",
        ".planexe/build.log",
    ] {
        let read = c.ok("read_output", json!({"run": "shed", "path": path}));
        let text = read["text"].as_str().unwrap();
        assert!(!text.contains(key), "{path}: {text}");
        assert!(text.contains("[REDACTED]"), "{path}: {text}");
    }
    assert!(c.close().success());
}
