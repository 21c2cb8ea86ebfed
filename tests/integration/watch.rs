//! `planexe watch`: a real watch process, its stderr read line by line.
//! Timeouts are generous (these machines are slow) and nothing asserts a
//! timing: a test waits for the line it expects, and checks that no
//! unexpected rebuild line came within a quiet spell.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::harness::{wait_for, Project};

/// How long to wait for a line that should come.
pub const PATIENCE: Duration = Duration::from_secs(60);

const PIPELINE: &str = r#"
[tasks.outline]
inputs = ["plan.txt"]
outputs = ["outline.md"]
command = "tr a-z A-Z < plan.txt > outline.md"

[tasks.report]
inputs = ["outline.md"]
outputs = ["report.md"]
command = "cat outline.md > report.md"

[tasks.other]
inputs = ["other.txt"]
outputs = ["other.md"]
command = "cat other.txt > other.md"
"#;

fn project() -> Project {
    let p = Project::new(PIPELINE);
    p.write("plan.txt", "build a house\n");
    p.write("other.txt", "other\n");
    p
}

/// A running `planexe watch` and the lines of its stderr.
pub struct Watcher {
    pub child: Child,
    lines: Receiver<String>,
    /// Every line read so far (for messages).
    pub seen: Vec<String>,
}

impl Watcher {
    pub fn start(p: &Project, args: &[&str]) -> Watcher {
        let mut w = Watcher::spawn(p, args);
        w.expect("watching ");
        w
    }

    /// [`Watcher::start`] without waiting for the first build.
    pub fn spawn(p: &Project, args: &[&str]) -> Watcher {
        let mut child = p
            .command(&[&["watch"], args].concat())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start planexe watch");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watcher {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one contains `needle`; returns the lines read,
    /// that one included.
    #[track_caller]
    pub fn expect(&mut self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut read = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    read.push(line.clone());
                    if line.contains(needle) {
                        return read;
                    }
                }
                Err(e) => panic!(
                    "no line with {needle:?} ({e:?}); stderr so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Reads the next build's lines and asserts that a change of
    /// `changed` (as the watch names it) started it and that it ran
    /// `task` alone.
    #[track_caller]
    pub fn expect_rebuild_of(&mut self, changed: &str, task: &str) {
        let lines = self.expect("watch: ");
        assert_eq!(started(&lines), [task], "{lines:?}");
        assert_eq!(
            lines.last().map(String::as_str),
            Some(format!("watch: {changed} changed: ran 1 task(s)").as_str())
        );
    }

    /// Waits `spell` and asserts that no build ran meanwhile.
    #[track_caller]
    pub fn no_rebuild_for(&mut self, spell: Duration) {
        let after = self.quiet_for(spell);
        assert_eq!(rebuilds(&after), 0, "{after:?}");
    }

    /// The lines that come within `spell` (which are expected to be none
    /// of a rebuild's).
    pub fn quiet_for(&mut self, spell: Duration) -> Vec<String> {
        let deadline = Instant::now() + spell;
        let mut read = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    read.push(line);
                }
                Err(RecvTimeoutError::Timeout) => return read,
                Err(RecvTimeoutError::Disconnected) => return read,
            }
        }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: sends a signal to the child this test started.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Makes the changes `change` makes while the watch is stopped
    /// (SIGSTOP, until it is seen stopped), then lets it go on: it reads
    /// them all at once, as changes made in the same instant. A test that
    /// makes two changes one after the other cannot tell a loaded machine
    /// not to run the watch between them for longer than its debounce
    /// window, which makes them two builds.
    pub fn paused<R>(&self, change: impl FnOnce() -> R) -> R {
        self.signal(libc::SIGSTOP);
        let stat = format!("/proc/{}/stat", self.child.id());
        wait_for("the watch to stop", || {
            // `pid (comm) STATE ...`: the state follows the last `)`.
            std::fs::read_to_string(&stat)
                .is_ok_and(|s| s.rfind(") ").is_some_and(|at| s[at + 2..].starts_with('T')))
        });
        let changed = change();
        self.signal(libc::SIGCONT);
        changed
    }

    /// Interrupts the watch and returns its exit status.
    pub fn stop(mut self) -> i32 {
        self.signal(libc::SIGINT);
        self.exit_code()
    }

    pub fn exit_code(&mut self) -> i32 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "watch did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tasks started among `lines`, sorted.
pub fn started(lines: &[String]) -> Vec<String> {
    let mut names: Vec<String> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("start  "))
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

pub fn rebuilds(lines: &[String]) -> usize {
    lines.iter().filter(|l| l.starts_with("watch: ")).count()
}

#[test]
fn an_edited_source_rebuilds_exactly_its_dependents_and_the_lock_is_free_meanwhile() {
    let p = project();
    let mut w = Watcher::start(&p, &[]);
    assert!(w
        .seen
        .iter()
        .any(|l| l == "watch: first build: ran 3 task(s)"));
    // No lock is held between builds: a build from another terminal works.
    p.build().ok().stderr_has("nothing to do");
    std::fs::write(p.path("plan.txt"), "build a shed\n").unwrap();
    let lines = w.expect("watch: plan.txt changed");
    assert_eq!(started(&lines), ["outline", "report"]);
    assert!(lines.last().unwrap().ends_with("ran 2 task(s)"));
    assert_eq!(p.read("report.md"), "BUILD A SHED\n");
    assert_eq!(w.stop(), 130);
}

#[test]
fn an_atomic_save_is_one_change_and_the_same_bytes_run_nothing() {
    let p = project();
    let mut w = Watcher::start(&p, &[]);
    // An editor's save: a temporary file renamed over the real one.
    std::fs::write(p.path(".plan.txt.tmp"), "a new plan\n").unwrap();
    std::fs::rename(p.path(".plan.txt.tmp"), p.path("plan.txt")).unwrap();
    let lines = w.expect("watch: ");
    assert_eq!(
        lines.last().unwrap(),
        "watch: plan.txt changed: ran 2 task(s)"
    );
    w.no_rebuild_for(Duration::from_secs(2));
    // The same bytes again, truncated then written: nothing runs.
    std::fs::write(p.path("plan.txt"), "a new plan\n").unwrap();
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), Vec::<String>::new());
    assert_eq!(
        lines.last().unwrap(),
        "watch: plan.txt changed: ran 0 task(s)"
    );
    assert_eq!(w.stop(), 130);
}

#[test]
fn an_output_edited_by_hand_is_kept_and_what_reads_it_rebuilt() {
    let p = project();
    let mut w = Watcher::start(&p, &[]);
    // Changes to outputs just after a build are taken for the build's own
    // for a settle time (half a second): a hand edit comes after it.
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(p.path("outline.md"), "MY OWN OUTLINE\n").unwrap();
    let lines = w.expect("watch: outline.md changed");
    assert_eq!(started(&lines), ["report"]);
    assert!(lines
        .iter()
        .any(|l| l.contains("kept hand-edited outline.md")));
    assert_eq!(p.read("report.md"), "MY OWN OUTLINE\n");
    assert_eq!(w.stop(), 130);
}

#[test]
fn a_broken_pipeline_is_reported_and_a_fixed_one_builds_and_its_new_sources_are_watched() {
    let p = project();
    let mut w = Watcher::start(&p, &[]);
    std::fs::write(p.path("pipeline.toml"), format!("{PIPELINE}\nbroken\n")).unwrap();
    let lines = w.expect("watch: pipeline.toml changed");
    assert!(
        lines.iter().any(|l| l.starts_with("error: pipeline.toml:")
            && l.contains(&format!("{}:", PIPELINE.lines().count() + 2))),
        "{lines:?}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .ends_with("not built; waiting for a change that fixes it"),
        "{lines:?}"
    );
    // Fixed, with a task that reads a new source.
    p.write("extra.txt", "extra\n");
    let fixed = format!(
        "{PIPELINE}\n[tasks.extra]\ninputs = [\"extra.txt\"]\noutputs = [\"extra.md\"]\ncommand = \"cat extra.txt > extra.md\"\n"
    );
    std::fs::write(p.path("pipeline.toml"), fixed).unwrap();
    let lines = w.expect("watch: pipeline.toml changed");
    assert_eq!(started(&lines), ["extra"]);
    std::fs::write(p.path("extra.txt"), "more\n").unwrap();
    let lines = w.expect("watch: extra.txt changed");
    assert_eq!(started(&lines), ["extra"]);
    assert_eq!(w.stop(), 130);
}

/// An event for an output that is still as the last build left it is the
/// build's own, however late it arrives (a loaded machine delivers events
/// late): here, a change of its metadata that leaves size and mtime as
/// recorded, well after the settle time.
#[test]
fn a_late_event_for_an_output_as_the_build_left_it_rebuilds_nothing() {
    let p = project();
    let mut w = Watcher::start(&p, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let outline = p.path("outline.md");
    let mtime =
        filetime::FileTime::from_last_modification_time(&std::fs::metadata(&outline).unwrap());
    filetime::set_file_mtime(&outline, mtime).unwrap();
    w.no_rebuild_for(Duration::from_secs(2));
    assert_eq!(w.stop(), 130);
}

#[test]
fn a_change_during_a_build_makes_exactly_one_more_build() {
    // The command says it started (outside the run directory), so the
    // changes below land after the build read plan.txt, however late a
    // loaded machine starts it.
    let marks = tempfile::tempdir().unwrap();
    let began = marks.path().join("began");
    let p = Project::new(&format!(
        r#"
[tasks.slow]
inputs = ["plan.txt"]
outputs = ["slow.md"]
command = "touch '{}'; sleep 1; cat plan.txt > slow.md"
"#,
        began.display()
    ));
    p.write("plan.txt", "one\n");
    let mut w = Watcher::start(&p, &[]);
    std::fs::remove_file(&began).unwrap();
    std::fs::write(p.path("plan.txt"), "two\n").unwrap();
    w.expect("start  slow");
    wait_for("the build's command to start", || began.exists());
    std::fs::write(p.path("plan.txt"), "three\n").unwrap();
    std::fs::write(p.path("plan.txt"), "four\n").unwrap();
    w.expect("watch: plan.txt changed");
    let lines = w.expect("watch: plan.txt changed");
    assert_eq!(started(&lines), ["slow"]);
    w.no_rebuild_for(Duration::from_secs(3));
    assert_eq!(p.read("slow.md"), "four\n");
    assert_eq!(w.stop(), 130);
}

#[test]
fn polling_sees_a_change() {
    let p = project();
    let mut w = Watcher::start(&p, &["--poll", "200ms"]);
    std::fs::write(p.path("other.txt"), "changed, and longer\n").unwrap();
    let lines = w.expect("watch: other.txt changed");
    assert_eq!(started(&lines), ["other"]);
    assert_eq!(w.stop(), 130);
}

#[test]
fn sigint_while_idle_exits_130() {
    let p = project();
    let w = Watcher::start(&p, &[]);
    assert_eq!(w.stop(), 130);
}

/// Watching a run directory named with `-C`: the line the stop prints
/// says how to resume it from here.
#[test]
fn sigint_during_a_build_stops_it_and_exits_130() {
    let p = Project::new("");
    p.write(
        "r/pipeline.toml",
        r#"
[tasks.long]
inputs = ["plan.txt"]
outputs = ["long.md"]
command = "sleep 30; cat plan.txt > long.md"
"#,
    );
    p.write("r/plan.txt", "one\n");
    p.write("r/long.md", "old\n");
    p.run(&["touch", "-C", "r", "long"]).ok();
    let mut w = Watcher::start(&p, &["-C", "r"]);
    std::fs::write(p.path("r/plan.txt"), "two\n").unwrap();
    w.expect("start  long");
    w.signal(libc::SIGINT);
    w.expect("stopped: 0 task(s) finished, 1 stopped, 0 not started; run planexe build -C r again to resume");
    assert_eq!(w.exit_code(), 130);
    p.run(&["status", "-C", "r", "--json"])
        .ok()
        .stdout_has(r#""task":"long","state":"stopped""#);
}

#[test]
fn sigterm_while_idle_exits_130() {
    let p = project();
    let mut w = Watcher::start(&p, &[]);
    w.signal(libc::SIGTERM);
    assert_eq!(w.exit_code(), 130);
}

#[test]
fn a_poll_interval_too_short_to_be_meant_is_a_usage_error() {
    let p = project();
    for poll in ["0s", "1ms"] {
        p.run(&["watch", "--poll", poll])
            .code(2)
            .stderr_has(&format!("--poll {poll}: too short"))
            .stderr_has("hint: poll every 10ms or more");
    }
}

#[test]
fn an_unknown_target_is_a_usage_error() {
    let p = project();
    p.run(&["watch", "nope"])
        .code(2)
        .stderr_has("unknown target `nope`");
}

#[test]
fn a_build_writing_many_outputs_does_not_trigger_the_next() {
    let mut pipeline = String::new();
    for i in 0..20 {
        pipeline.push_str(&format!(
            "[tasks.t{i}]\ninputs = [\"plan.txt\"]\noutputs = [\"out/{i}.md\"]\ncommand = \"mkdir -p out; cat plan.txt > out/{i}.md\"\n\n"
        ));
    }
    let p = Project::new(&pipeline);
    p.write("plan.txt", "one\n");
    let mut w = Watcher::start(&p, &[]);
    wait_for("20 outputs", || p.exists("out/19.md"));
    std::fs::write(p.path("plan.txt"), "two\n").unwrap();
    let lines = w.expect("watch: plan.txt changed");
    assert_eq!(started(&lines).len(), 20);
    // The issue asks for 30 s of quiet; 5 s keeps CI fast and would
    // already show a build triggering the next.
    w.no_rebuild_for(Duration::from_secs(5));
    assert_eq!(w.stop(), 130);
}

#[test]
fn after_another_build_ends_the_watch_runs_only_what_is_still_stale() {
    // `a` waits while `hold` exists, so the other build runs as long as
    // the test wants.
    let p = Project::new(
        r#"
[tasks.a]
inputs = ["other.txt"]
outputs = ["a.txt"]
command = "while [ -e hold ]; do sleep 0.05; done; cp other.txt a.txt"

[tasks.b]
outputs = ["b.txt"]
command = "echo b > b.txt"
"#,
    );
    p.write("other.txt", "o\n");
    let mut w = Watcher::start(&p, &[]);
    // Past the settle time, when a change to an output is no longer taken
    // for the first build's own.
    w.no_rebuild_for(Duration::from_secs(1));
    p.write("hold", "");
    let other = super::harness::Background(Some(
        p.command(&["build", "-B", "a"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start planexe build"),
    ));
    // The other build sets `a.txt` aside when `a` starts: the watch sees
    // the change while that build holds the lock, and waits for it.
    w.expect("another planexe (pid");
    p.remove("hold");
    let out = other.wait();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // The other build made `a.txt`, and left it as its record says: no
    // change, and nothing to build (the watch used to build, and say
    // `watch: a.txt changed: ran 0 task(s)`).
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), Vec::<String>::new(), "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: what changed is what another planexe wrote; nothing to build"
    );
    let after = w.quiet_for(Duration::from_secs(2));
    assert!(after.iter().all(|l| !l.starts_with("start ")), "{after:?}");
    p.run(&["build", "-n"]).ok().stderr_has("nothing to do");
    assert_eq!(w.stop(), 130);
}

/// A change made while the watch waits for another planexe's lock is read
/// by the build that follows the wait: that build's line names it, and no
/// build of its own follows (it used to, saying `plan.txt changed: ran 0
/// task(s)`, while the line of the build that ran `outline` named only
/// what the other build wrote). What the other build wrote is no change,
/// and the line does not name it (it used to: `a.txt, plan.txt
/// changed`).
#[test]
fn a_change_made_while_waiting_for_the_lock_is_named_by_the_build_that_reads_it() {
    let p = Project::new(
        r#"
[tasks.a]
inputs = ["other.txt"]
outputs = ["a.txt"]
command = "while [ -e hold ]; do sleep 0.05; done; cp other.txt a.txt"

[tasks.outline]
inputs = ["plan.txt"]
outputs = ["outline.md"]
command = "tr a-z A-Z < plan.txt > outline.md"
"#,
    );
    p.write("other.txt", "o\n");
    p.write("plan.txt", "one\n");
    let mut w = Watcher::start(&p, &[]);
    w.no_rebuild_for(Duration::from_secs(1));
    p.write("hold", "");
    let other = super::harness::Background(Some(
        p.command(&["build", "-B", "a"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start planexe build"),
    ));
    w.expect("another planexe (pid");
    std::fs::write(p.path("plan.txt"), "two\n").unwrap();
    // Not a timing assertion: the event reaches the watch before the lock
    // is free (a loaded machine delivers events late).
    std::thread::sleep(Duration::from_millis(500));
    p.remove("hold");
    let out = other.wait();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["outline"], "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        "watch: plan.txt changed: ran 1 task(s)"
    );
    w.no_rebuild_for(Duration::from_secs(2));
    assert_eq!(p.read("outline.md"), "TWO\n");
    assert_eq!(w.stop(), 130);
}

/// A folder a glob reads, removed and made again faster than the watch
/// can look (one shell line): inotify's watch on the old folder died with
/// it, so the new one is watched afresh and rescanned. New files in it
/// rebuild (they used to go unseen until something else changed).
#[test]
fn a_glob_folder_removed_and_made_again_is_watched_again() {
    let p = Project::new(
        r#"
[tasks.report]
inputs = ["notes/*.md"]
outputs = ["report.md"]
command = "cat notes/*.md > report.md"
"#,
    );
    p.write("notes/a.md", "a\n");
    let mut w = Watcher::start(&p, &[]);
    // Past the settle time, when a new file a glob matches counts.
    w.no_rebuild_for(Duration::from_secs(1));
    let status = std::process::Command::new("sh")
        .args(["-c", "rm -rf notes && mkdir notes && echo x > notes/a.md"])
        .current_dir(p.root())
        .status()
        .unwrap();
    assert!(status.success());
    let lines = w.expect("watch: ");
    assert_eq!(started(&lines), ["report"], "{lines:?}");
    assert_eq!(p.read("report.md"), "x\n");
    w.quiet_for(Duration::from_secs(1));
    std::fs::write(p.path("notes/b.md"), "b\n").unwrap();
    let lines = w.expect("watch: notes/b.md changed");
    assert_eq!(started(&lines), ["report"], "{lines:?}");
    assert_eq!(p.read("report.md"), "x\nb\n");
    assert_eq!(w.stop(), 130);
}

/// A poll sees a folder's times change when a file is made in it: that is
/// no change of the folder (what changed in it counts on its own), so a
/// file no task reads rebuilds nothing. (It used to rebuild, as `watch:
/// changed: ran 0 task(s)`, naming the run directory as an empty name.)
#[test]
fn polling_a_file_no_task_reads_rebuilds_nothing() {
    let p = project();
    let mut w = Watcher::start(&p, &["--poll", "200ms"]);
    // Past the settle time, when a change to a folder would count.
    w.no_rebuild_for(Duration::from_secs(1));
    std::fs::write(p.path("unrelated.txt"), "x\n").unwrap();
    w.no_rebuild_for(Duration::from_secs(2));
    std::fs::write(p.path("other.txt"), "changed, and longer\n").unwrap();
    let lines = w.expect("watch: ");
    assert_eq!(
        lines.last().unwrap(),
        "watch: other.txt changed: ran 1 task(s)"
    );
    assert_eq!(w.stop(), 130);
}
