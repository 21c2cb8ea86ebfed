//! A run directory whose disk fills up mid-build (`ENOSPC`), on a small
//! tmpfs of its own: what was done stays done, the error names the file
//! and says to free space, and the next build resumes. Mounting needs
//! root: where the mount is refused (a CI container), the test says so
//! and passes without running.

use std::path::Path;
use std::process::{Command, Stdio};

use super::harness::{wait_for, Background, Project};

/// A tmpfs of a few hundred KiB mounted on a temp dir, unmounted when
/// dropped (also when the test fails).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (and a line on stderr) where the mount is refused.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs { dir }),
            Ok(out) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs (not root?): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process the failed test left with its cwd there must
        // not keep the mount.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A project on a full-able disk; the project's folder goes before the
/// mount does.
struct Full {
    project: Project,
    _mount: Tmpfs,
}

fn on_tmpfs(size: &str, pipeline: &str) -> Option<Full> {
    let mount = Tmpfs::mount(size)?;
    let project = Project {
        dir: tempfile::tempdir_in(mount.dir.path()).expect("temp dir on the tmpfs"),
    };
    project.write("pipeline.toml", pipeline);
    Some(Full {
        project,
        _mount: mount,
    })
}

/// `planexe ARGS` in `p`, its output piped, stopped if the test fails.
fn in_background(p: &Project, args: &[&str]) -> Background {
    Background(Some(
        p.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run planexe"),
    ))
}

/// Fills the disk that holds `path` with a file there (until `ENOSPC`).
fn fill(path: &Path) {
    let _ = std::fs::write(path, vec![0u8; 4 << 20]);
}

const THREE: &str = r#"
[pipeline]
name = "full"
jobs = 1

[tasks.a]
outputs = ["a.txt"]
command = "echo a > a.txt"

[tasks.b]
outputs = ["b.txt"]
after = ["a"]
command = "echo b > b.txt; while [ -e hold ]; do sleep 0.01; done"

[tasks.c]
outputs = ["c.txt"]
after = ["b"]
command = "echo c > c.txt"
"#;

/// The disk fills while `b` runs, so recording its end fails: no task
/// starts after that (its outcome could not be kept), the error names the
/// file and says to free space; `status` still answers; once space is
/// freed the next build runs `b` and `c` only, and loads the state log
/// whole.
#[test]
fn a_disk_that_fills_mid_build_stops_it_and_the_next_build_resumes() {
    let Some(full) = on_tmpfs("300k", THREE) else {
        return;
    };
    let p = &full.project;
    p.write("hold", "");
    let build = in_background(p, &["build"]);
    wait_for("b to write its output", || p.exists("b.txt"));
    fill(&p.path("filler"));
    p.remove("hold");
    let out = build.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        !stderr.contains("start  c"),
        "a task started on a full disk\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line\n{stderr}"));
    assert!(error.contains("No space left on device"), "{stderr}");
    assert!(
        error.contains("/.planexe/"),
        "the error names no file\n{stderr}"
    );
    let root = p.root().display().to_string();
    assert!(
        stderr.contains(&format!(
            "hint: free space on the disk that holds {root} (what failed tasks wrote is kept in .planexe/failed/), then run planexe build again: tasks already done are kept"
        )),
        "{stderr}"
    );
    assert_eq!(p.read("a.txt"), "a\n");

    // Reading needs no space.
    let status = p.run(&["status"]);
    status.ok().stdout_has("a ");
    let json = p.run(&["status", "--json"]);
    json.ok();
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("status --json");
    assert_eq!(doc["counts"]["done"], 1, "{}", json.stdout);

    p.remove("filler");
    let again = p.build();
    again.ok().ran(&["b", "c"]);
    assert!(!again.stderr.contains("damaged"), "{}", again.stderr);
    assert_eq!(p.read("c.txt"), "c\n");
    p.build().ok().ran(&[]);
}

const FILLS: &str = r#"
[pipeline]
name = "fills"
jobs = 1

[tasks.a]
outputs = ["a.txt"]
command = "echo a > a.txt"

[tasks.big]
outputs = ["out.txt"]
after = ["a"]
command = "if [ -e flag ]; then head -c 4M /dev/zero > out.txt; else echo small > out.txt; fi"

[tasks.c]
outputs = ["c.txt"]
after = ["big"]
command = "echo c > c.txt"
"#;

/// A task's command fills the disk: the task fails, says which file it
/// could not write and that a full disk is the thing to fix (not the
/// command), its last good output is back, what it wrote is kept aside,
/// and the other tasks' results stand; freed, the next build runs it.
#[test]
fn a_task_that_fills_the_disk_fails_and_keeps_the_last_good_output() {
    let Some(full) = on_tmpfs("300k", FILLS) else {
        return;
    };
    let p = &full.project;
    p.build().ok();
    p.write("flag", "");
    let run = p.run(&["build", "-B", "big"]);
    run.code(2)
        .stderr_has("FAILED big: cannot keep the command's output: ")
        .stderr_has("/.planexe/logs/big.log: No space left on device")
        .stderr_has("hint: free space on the disk that holds");
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert_eq!(p.read("out.txt"), "small\n");
    assert_eq!(p.read("a.txt"), "a\n");
    assert_eq!(p.read("c.txt"), "c\n");
    assert!(p.exists(".planexe/failed/big/out.txt"));

    let status = p.run(&["status"]);
    status
        .ok()
        .stdout_has("/.planexe/logs/big.log: No space left on device")
        .stdout_has("hint: fix what the message names (for example a full disk, permissions or a missing /bin/sh), then run planexe build");
    let json = p.run(&["status", "--json"]);
    json.ok()
        .stdout_has("fix what the message names (for example a full disk");

    p.remove("flag");
    p.remove(".planexe/failed/big/out.txt");
    let again = p.build();
    again.ok();
    assert!(
        !again.started().contains(&"a".to_string()),
        "{}",
        again.stderr
    );
    assert!(
        again.started().contains(&"big".to_string()),
        "{}",
        again.stderr
    );
    assert!(!again.stderr.contains("damaged"), "{}", again.stderr);
    p.build().ok().ran(&[]);
}

/// Every line of a JSON-lines file of planexe's, the last one included,
/// parses: none is half written.
#[track_caller]
fn whole_lines(p: &Project, rel: &str) {
    let text = std::fs::read(p.path(rel)).unwrap_or_default();
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        if !line.is_empty() {
            assert!(
                serde_json::from_slice::<serde_json::Value>(line).is_ok(),
                "{rel}: line {} is not whole: {}",
                n + 1,
                String::from_utf8_lossy(&line[..line.len().min(160)])
            );
        }
    }
}

/// The disk fills while `b`'s long line (forty inputs) is appended to the
/// state log, so only part of it fits; space is freed and `d` ends: its
/// line must not land behind the half of `b`'s (a line damaged in the
/// middle of the log). No file of lines holds half a line; the next build
/// runs `b` only.
#[test]
fn a_line_cut_short_by_a_full_disk_is_taken_back() {
    let mut pipeline = String::from(
        r#"
[pipeline]
name = "torn"
jobs = 2

[tasks.a]
outputs = ["a.txt"]
command = "echo a > a.txt"

[tasks.b]
inputs = ["in/*.txt"]
outputs = ["b.txt"]
after = ["a"]
command = "echo b > b.txt; while [ -e hold ]; do sleep 0.01; done"

[tasks.d]
outputs = ["d.txt"]
after = ["a"]
command = "echo d > d.txt; while [ -e hold2 ]; do sleep 0.01; done"
"#,
    );
    pipeline.push('\n');
    let Some(full) = on_tmpfs("400k", &pipeline) else {
        return;
    };
    let p = &full.project;
    for i in 0..40 {
        p.write(&format!("in/f{i:02}.txt"), &format!("{i}\n"));
    }
    p.write("hold", "");
    p.write("hold2", "");
    // Off the full disk: the build's stderr, read while it runs.
    let err_dir = tempfile::tempdir().expect("temp dir");
    let err_path = err_dir.path().join("stderr");
    let build = Background(Some(
        p.command(&["build"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_path).expect("stderr file"))
            .spawn()
            .expect("run planexe"),
    ));
    wait_for("b and d to write their outputs", || {
        p.exists("b.txt") && p.exists("d.txt")
    });
    fill(&p.path("filler"));
    p.remove("hold");
    // Said once its end is recorded (or not, for want of space).
    wait_for("b's end", || {
        std::fs::read_to_string(&err_path)
            .is_ok_and(|e| e.contains("done   b") || e.contains("ran    b"))
    });
    p.remove("filler");
    p.remove("hold2");
    let out = build.wait();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    for rel in [".planexe/log", ".planexe/inflight", ".planexe/events.jsonl"] {
        whole_lines(p, rel);
    }

    let status = p.run(&["status"]);
    status.ok();
    assert!(!status.stderr.contains("damaged"), "{}", status.stderr);
    let again = p.build();
    // What the full build said, should the next one not do what it must.
    assert!(
        again.code == 0 && again.started() == ["b"],
        "the full build said:\n{stderr}\nthe next build: {again:#?}"
    );
    assert!(!again.stderr.contains("damaged"), "{}", again.stderr);
}

/// `touch` and `clean` on a full disk: `touch` records what it can (it
/// deletes the up-to-date certificate first, and a log line may fit in
/// what its last block has left); once it cannot, it says so (the file,
/// what to do) and the task's records stay whole. `clean`, which frees
/// space, works; freed, `touch` works again.
#[test]
fn touch_and_clean_on_a_full_disk() {
    let Some(full) = on_tmpfs(
        "300k",
        r#"
[pipeline]
name = "tc"

[tasks.a]
outputs = ["a.txt"]
command = "echo a > a.txt"

[tasks.b]
inputs = ["a.txt"]
outputs = ["b.txt"]
command = "cat a.txt > b.txt"

[tasks.c]
inputs = ["b.txt"]
outputs = ["c.txt"]
command = "cat b.txt > c.txt"
"#,
    ) else {
        return;
    };
    let p = &full.project;
    p.build().ok();
    fill(&p.path("filler"));
    // Each touch adds a line to the log: within a few the log needs a
    // block the disk does not have.
    let failed = (0..20)
        .map(|_| p.run(&["touch", "b"]))
        .find(|r| r.code != 0);
    let touch = failed.expect("a touch on a full disk that never failed");
    touch
        .code(2)
        .stderr_has("No space left on device")
        .stderr_has("hint: free space on the disk that holds it, then run the command again");
    assert!(touch.stderr.contains("/.planexe/"), "{}", touch.stderr);
    assert_eq!(p.status_json("b")["state"], "done");
    assert!(p.exists(".planexe/tasks/b.DONE"));
    let status = p.run(&["status"]);
    status.ok().stdout_has("DONE (3)");
    assert!(!status.stderr.contains("damaged"), "{}", status.stderr);

    p.run(&["clean", "c", "--downstream", "-y"]).ok();
    assert!(!p.exists("c.txt"));
    p.remove("filler");
    p.run(&["touch", "b"]).ok();
    let build = p.build();
    build.ok().ran(&["c"]);
    assert!(!build.stderr.contains("damaged"), "{}", build.stderr);
}

/// `THREE` with `d` beside `b` (both after `a`), held by `hold2`, and a
/// hook that copies every event to `events`, off the full disk.
fn beside(events: &Path) -> String {
    format!(
        r#"{THREE}
[tasks.d]
outputs = ["d.txt"]
after = ["a"]
command = "echo d > d.txt; while [ -e hold2 ]; do sleep 0.01; done"

[[hooks]]
command = "cat >> '{0}'; echo >> '{0}'"
"#,
        events.display()
    )
    .replace("jobs = 1", "jobs = 2")
}

/// The events a hook copied to `path`, of `task`.
fn events_of(path: &Path, task: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["task"] == task)
        .collect()
}

/// Runs `beside`'s build: `b` ends on a full disk (its result cannot be
/// recorded), then space is freed and `d` ends. Returns the build's
/// stderr.
fn b_ends_on_a_full_disk(p: &Project, err_path: &Path) -> String {
    p.write("hold", "");
    p.write("hold2", "");
    let build = Background(Some(
        p.command(&["build"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(err_path).expect("stderr file"))
            .spawn()
            .expect("run planexe"),
    ));
    wait_for("b and d to write their outputs", || {
        p.exists("b.txt") && p.exists("d.txt")
    });
    fill(&p.path("filler"));
    p.remove("hold");
    wait_for("b's end", || {
        std::fs::read_to_string(err_path)
            .is_ok_and(|e| e.contains("done   b") || e.contains("ran    b"))
    });
    p.remove("filler");
    p.remove("hold2");
    let out = build.wait();
    let stderr = std::fs::read_to_string(err_path).unwrap_or_default();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// A task whose result could not be recorded does not say `done` (it runs
/// again next build): it says it ran but its result was not recorded, and
/// its event is `task.unrecorded`, not `task.completed`.
#[test]
fn a_task_whose_result_is_not_recorded_is_not_said_to_be_done() {
    let off = tempfile::tempdir().expect("temp dir");
    let events = off.path().join("events");
    let Some(full) = on_tmpfs("300k", &beside(&events)) else {
        return;
    };
    let p = &full.project;
    let stderr = b_ends_on_a_full_disk(p, &off.path().join("stderr"));
    assert!(
        !stderr.contains("done   b"),
        "b said done, its result unrecorded\n{stderr}"
    );
    assert!(
        stderr
            .contains("): it ran, but its result could not be recorded; it runs again next build")
            && stderr.contains("ran    b ("),
        "{stderr}"
    );
    assert!(stderr.contains("done   d"), "{stderr}");
    let b = events_of(&events, "b");
    let names: Vec<&str> = b.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(!names.contains(&"task.completed"), "{names:?}");
    let unrecorded = b
        .iter()
        .find(|e| e["event"] == "task.unrecorded")
        .unwrap_or_else(|| panic!("no task.unrecorded event: {names:?}"));
    let summary = unrecorded["error_summary"].as_str().unwrap_or_default();
    assert!(summary.contains("No space left on device"), "{summary}");
    assert!(summary.contains("/.planexe/"), "{summary}");
    assert!(events_of(&events, "d")
        .iter()
        .any(|e| e["event"] == "task.completed"));

    let again = p.build();
    again.ok().ran(&["b", "c"]);
    assert!(!again.stderr.contains("damaged"), "{}", again.stderr);
}

/// The build that stopped on a full disk closes its `run.json` entry as
/// `failed` once space is back (here before it ends): the next build
/// resumes it as one that ended, not as a crash, and runs only `b` (whose
/// result was not recorded) and what waits for it.
#[test]
fn a_build_stopped_by_a_full_disk_records_its_end_when_it_can() {
    let off = tempfile::tempdir().expect("temp dir");
    let Some(full) = on_tmpfs("300k", &beside(&off.path().join("events"))) else {
        return;
    };
    let p = &full.project;
    b_ends_on_a_full_disk(p, &off.path().join("stderr"));
    let run: serde_json::Value = serde_json::from_str(&p.read(".planexe/run.json")).unwrap();
    let last = &run["builds"][0];
    assert_eq!(last["outcome"], "failed", "{run}");
    assert!(last["finished_at"].is_string(), "{run}");
    assert_eq!(run["last_completed_task"], "d", "{run}");

    let again = p.build();
    eprintln!("{}", again.stderr);
    again.ok().ran(&["b", "c"]);
    assert!(!again.stderr.contains("damaged"), "{}", again.stderr);
    assert!(
        again.stderr.contains("resuming run ") && again.stderr.contains(": 2 done, "),
        "{}",
        again.stderr
    );
    assert!(
        !again.stderr.contains("crashed") && !again.stderr.contains("restored"),
        "{}",
        again.stderr
    );
    p.build().ok().ran(&[]);
}

/// A prompt task's pipeline on the tmpfs, its model the stand-in server.
fn asking(server: &super::llm_server::Server, extra: &str) -> String {
    format!(
        r#"
[pipeline]
name = "asks"
model = "local"
jobs = 1
{extra}
[models.local]
provider = "openai"
base_url = "{}/v1"
model = "test-model"
stream = false
input_cost_per_mtok = 1.0
output_cost_per_mtok = 2.0

[tasks.ask]
inputs = ["plan.txt"]
outputs = ["answer.md"]
prompt = 'Plan: {{{{ inputs["plan.txt"] }}}}'

[tasks.after]
inputs = ["answer.md"]
outputs = ["after.txt"]
command = "cat answer.md > after.txt"
"#,
        server.url
    )
}

/// The disk fills while the model answers: the answer, paid for, cannot
/// be written. The build stops (exit 2) naming the answer's file, saying
/// the answer was lost and what to do; no half answer stands; the ledgers
/// hold whole lines; freed, the next build asks again and finishes.
#[test]
fn a_prompt_answer_the_disk_has_no_room_for() {
    answer_on_a_full_disk(
        None,
        "the answer could not be written; the model call that made it was paid for, and the next build asks again",
    );
}

/// The same with a response cache off the full disk: the answer lost is
/// in the cache, which the message says, and the next build takes it
/// from there, asking no model.
#[test]
fn a_prompt_answer_the_disk_has_no_room_for_is_kept_by_the_cache() {
    let cache = tempfile::tempdir().expect("temp dir");
    answer_on_a_full_disk(
        Some(cache.path()),
        "the answer could not be written; the model call that made it was paid for: the response cache kept its answer for the next build",
    );
}

fn answer_on_a_full_disk(cache: Option<&Path>, said: &str) {
    use super::llm_server::{delayed, openai_answer, Server};
    let server = Server::start();
    server.script([delayed(
        openai_answer("Step 1: dig."),
        std::time::Duration::from_millis(800),
    )]);
    server.default_reply(openai_answer("Step 1: dig."));
    let extra = cache.map_or(String::new(), |c| format!("cache = '{}'\n", c.display()));
    let Some(full) = on_tmpfs("300k", &asking(&server, &extra)) else {
        return;
    };
    let p = &full.project;
    p.write("plan.txt", "build a shed");
    let build = in_background(p, &["build"]);
    wait_for("the model's call", || !server.requests().is_empty());
    fill(&p.path("filler"));
    let out = build.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("start  after"), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line\n{stderr}"));
    assert!(
        error.contains("/answer.md: No space left on device"),
        "{stderr}"
    );
    assert!(error.contains(said), "{stderr}");
    assert!(
        stderr.contains("hint: free space on the disk that holds"),
        "{stderr}"
    );
    assert!(
        !p.exists("answer.md") || p.read("answer.md") == "Step 1: dig.",
        "a half answer: {:?}",
        p.read("answer.md")
    );
    for rel in [
        ".planexe/usage.jsonl",
        ".planexe/failures.jsonl",
        ".planexe/log",
        ".planexe/events.jsonl",
    ] {
        whole_lines(p, rel);
    }

    p.remove("filler");
    let again = p.build();
    again.ok().ran(&["ask", "after"]);
    let asked = if cache.is_some() { 1 } else { 2 };
    assert_eq!(server.requests().len(), asked, "{}", again.stderr);
    assert_eq!(p.read("answer.md"), "Step 1: dig.");
    assert_eq!(p.read("after.txt"), "Step 1: dig.");
    p.build().ok().ran(&[]);
}

/// Two tasks fail on a full disk: their lines of `failures.jsonl` cannot
/// be written. That is best effort, but said, once, naming the file.
#[test]
fn a_failure_line_the_disk_has_no_room_for_is_said_once() {
    let Some(full) = on_tmpfs(
        "300k",
        r#"
[pipeline]
name = "lost"
jobs = 2

[tasks.one]
outputs = ["one.txt"]
command = "while [ -e hold ]; do sleep 0.01; done; exit 1"

[tasks.two]
outputs = ["two.txt"]
command = "while [ -e hold ]; do sleep 0.01; done; exit 1"
"#,
    ) else {
        return;
    };
    let p = &full.project;
    p.write("hold", "");
    let build = in_background(p, &["build", "-k"]);
    wait_for("both tasks to start", || {
        p.exists(".planexe/tasks/one.status") && p.exists(".planexe/tasks/two.status")
    });
    fill(&p.path("filler"));
    p.remove("hold");
    let out = build.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("FAILED one"), "{stderr}");
    assert!(stderr.contains("FAILED two"), "{stderr}");
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("failures.jsonl"))
        .collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(
        said[0].starts_with("warning: ")
            && said[0].contains("/.planexe/failures.jsonl: No space left on device")
            && said[0].contains("could not be written"),
        "{stderr}"
    );
}
