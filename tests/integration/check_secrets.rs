//! What a `check` command printed when it refused an output is quoted in
//! the task's record, the FAILED and warn lines, events, hooks,
//! `summary.json`, `failures.jsonl`, the reports and `planexe check`'s
//! lines: scrubbed of the build's secrets (the API keys its models name,
//! the webhook's token) wherever it goes, the check's own log,
//! `.planexe/logs/TASK.check.txt`, included once the check ended.

use std::path::Path;

use crate::harness::*;

const KEY: &str = "sk-test-SECRET123";

/// A model whose key is in `$CHECK_KEY`, and tasks whose checks print it:
/// `a` refused (severity error), `w` warned (severity warn), `r` a rescue
/// refused; every hook event is appended to `hook.jsonl`.
const PRINTS_THE_KEY: &str = r#"
[models.m]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "x"
api_key_env = "CHECK_KEY"

[[hooks]]
command = "cat >> hook.jsonl; echo >> hook.jsonl"

[tasks.a]
outputs = ["a.txt"]
command = "echo a > a.txt"
check = "echo key=$CHECK_KEY; exit 1"

[tasks.w]
outputs = ["w.txt"]
command = "echo w > w.txt"
check = "echo warnkey=$CHECK_KEY; exit 1"
severity = "warn"

[tasks.r]
outputs = ["r.txt"]
command = "echo r > r.txt; exit 3"
check = "echo rescuekey=$CHECK_KEY >&2; exit 1"
rescue = true
"#;

/// Runs planexe in `p` with the key (and `extra` variables) set: exit
/// code, stdout and stderr.
fn run(p: &Project, args: &[&str], extra: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = p.command(args);
    command.env("CHECK_KEY", KEY);
    for (k, v) in extra {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file under `dir` that holds `secret`, by path.
fn files_with(dir: &Path, secret: &str, root: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_with(&path, secret, root, found);
        } else if String::from_utf8_lossy(&std::fs::read(&path).unwrap()).contains(secret) {
            found.push(path.strip_prefix(root).unwrap().display().to_string());
        }
    }
}

#[track_caller]
fn no_file_holds(p: &Project, secret: &str) {
    let mut found = Vec::new();
    files_with(p.root(), secret, p.root(), &mut found);
    assert!(found.is_empty(), "{secret} is in {found:?}");
}

#[test]
fn a_key_a_check_printed_is_in_no_record_event_hook_report_or_line() {
    let p = Project::new(PRINTS_THE_KEY);
    let (code, stdout, stderr) = run(&p, &["build", "-k"], &[]);
    assert_eq!(code, 1, "{stderr}");
    for line in [
        "FAILED a: the check failed (exit status 1): key=[REDACTED] (error_id",
        "warn   w: check: the check failed (exit status 1): warnkey=[REDACTED]\n",
        "FAILED r: exit status 3, and the check failed (exit status 1): rescuekey=[REDACTED] (error_id",
    ] {
        assert!(stderr.contains(line), "{line}\n{stderr}");
    }
    let mut shown = stdout + &stderr;
    assert_eq!(
        p.status_json("w")["checks"][0]["message"],
        "the check failed (exit status 1): warnkey=[REDACTED]"
    );
    assert_eq!(
        p.status_json("a")["error"]["message"],
        "the check failed (exit status 1): key=[REDACTED]"
    );
    let hooked = p.read("hook.jsonl");
    assert!(hooked.contains("check: the check failed (exit status 1): key=[REDACTED]"));
    // What everything else shows of the run.
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["check", "w"],
        &["report", "-o", "r.html"],
        &["report", "--format", "junit", "-o", "j.xml"],
    ] {
        let (_, stdout, stderr) = run(&p, args, &[]);
        shown += &stdout;
        shown += &stderr;
    }
    assert!(shown.contains("warn w: check: the check failed (exit status 1): warnkey=[REDACTED]"));
    assert!(!shown.contains("SECRET123"), "{shown}");
    no_file_holds(&p, "SECRET123");
    // The check's own log keeps what it printed, but the key.
    assert!(p.read(".planexe/logs/a.check.txt").contains("[REDACTED]"));
}

/// A key that straddles the start of the 2 KB a message quotes is
/// scrubbed before the cut: no end of it is left.
#[test]
fn a_key_cut_by_the_quoted_tail_leaves_no_end_of_it() {
    let p = Project::new(&PRINTS_THE_KEY.replace(
        "echo key=$CHECK_KEY; exit 1",
        "printf %s $CHECK_KEY; i=0; while [ $i -lt 2040 ]; do printf x; i=$((i+1)); done; exit 1",
    ));
    let (code, _, stderr) = run(&p, &["build", "a"], &[]);
    assert_eq!(code, 1, "{stderr}");
    let message = p.status_json("a")["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.ends_with(&"x".repeat(2040)), "{message}");
    assert!(!message.contains("ECRET123"), "{message}");
    assert!(!stderr.contains("ECRET123"), "{stderr}");
}

/// `planexe check` scrubs what a check printed of the API keys and of
/// `$PLANEXE_WEBHOOK_URL`'s token, as a build does.
#[test]
fn planexe_check_scrubs_what_a_check_printed() {
    let p = Project::new(concat!(
        "[models.m]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n",
        "model = \"x\"\napi_key_env = \"CHECK_KEY\"\n",
        "[tasks.t]\noutputs = [\"t.txt\"]\ncommand = \"echo t > t.txt\"\n",
        "check = \"echo key=$CHECK_KEY hook=$PLANEXE_WEBHOOK_URL; test ! -e refuse\"\n",
    ));
    let (code, _, stderr) = run(&p, &["build"], &[]);
    assert_eq!(code, 0, "{stderr}");
    p.write("refuse", "");
    let token = "TOKEN-0123456789abcdef";
    let url = format!("http://127.0.0.1:9/hook/{token}");
    let (code, stdout, stderr) = run(&p, &["check"], &[("PLANEXE_WEBHOOK_URL", &url)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stdout.contains("FAILED t: the check failed (exit status 1): key=[REDACTED] hook="),
        "{stdout}"
    );
    let shown = stdout + &stderr;
    assert!(
        !shown.contains("SECRET123") && !shown.contains(token),
        "{shown}"
    );
    no_file_holds(&p, "SECRET123");
    no_file_holds(&p, token);
}

/// `planexe touch` scrubs what a check printed (a refusal, a warning kept
/// in the record) and what a schema check quotes of the file.
#[test]
fn touch_scrubs_what_its_checks_say() {
    let p = Project::new(&format!(
        "{PRINTS_THE_KEY}\n[tasks.j]\noutputs = [\"j.json\"]\nprompt = \"p\"\nmodel = \"m\"\nschema = \"s.json\"\n"
    ));
    p.write(
        "s.json",
        r#"{"type": "object", "properties": {"n": {"type": "number"}}}"#,
    );
    for (task, file, content) in [
        ("a", "a.txt", "a\n"),
        ("w", "w.txt", "w\n"),
        ("j", "j.json", &format!("{{\"n\": \"{KEY}\"}}")),
    ] {
        p.write(file, content);
        let (code, stdout, stderr) = run(&p, &["touch", task], &[]);
        let shown = stdout + &stderr;
        assert_eq!(code, if task == "w" { 0 } else { 2 }, "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
        assert!(!shown.contains("SECRET123"), "{shown}");
    }
    // The key is in no file but the one written with it.
    p.remove("j.json");
    no_file_holds(&p, "SECRET123");
}

/// A `$PLANEXE_WEBHOOK_URL` with a space or a line end around it (a line
/// of a `.env` file written on Windows) reaches its webhook trimmed, and
/// its token is scrubbed as the token it is, not only followed by them.
#[test]
fn a_webhook_url_set_with_a_line_end_has_its_token_scrubbed() {
    let token = "TOKEN-0123456789abcdef";
    // The token comes from the environment, as a command's would.
    let p = Project::new("[tasks.t]\noutputs = [\"t.txt\"]\ncommand = \"echo hook=$T; exit 1\"\n");
    for around in [" ", "\r", "\r\n", "\t"] {
        let url = format!("http://127.0.0.1:9/hook/{token}{around}");
        let env = [("PLANEXE_WEBHOOK_URL", url.as_str()), ("T", token)];
        let (code, stdout, stderr) = run(&p, &["build"], &env);
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains("| hook=[REDACTED]"), "{around:?}: {stderr}");
        assert!(!(stdout + &stderr).contains(token), "{around:?}");
        no_file_holds(&p, token);
    }
}
