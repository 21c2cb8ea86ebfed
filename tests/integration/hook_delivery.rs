//! How events reach hooks at a build's end: the last event, the one a
//! chat channel or a dashboard shows, is never lost behind the others to a
//! slow endpoint, and the wait for it is bounded.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::llm_server::*;

/// The `event` of each request `server` got, in the order it got them.
fn got(server: &Server) -> Vec<String> {
    server
        .requests()
        .iter()
        .map(|r| r.json()["event"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// How many events the build's warning says were not delivered (0 when it
/// says none).
fn not_delivered(stderr: &str) -> usize {
    stderr
        .lines()
        .find_map(|l| {
            let (n, _) = l
                .strip_prefix("warning: ")?
                .split_once(" event(s) were not delivered to hooks: the build ended")?;
            n.parse().ok()
        })
        .unwrap_or(0)
}

/// Four quick tasks, and a fifth that fails when `fail`: ten or eleven
/// events, six seconds of a webhook that takes 600 ms to answer each.
fn quick_tasks(url: &str, fail: bool) -> String {
    let mut text = format!("[[hooks]]\nurl = \"{url}/hook/SECRETTOKEN\"\n");
    for t in ["a", "b", "c", "d"] {
        text.push_str(&format!(
            "[tasks.{t}]\noutputs = [\"{t}.txt\"]\ncommand = \"echo {t} > {t}.txt\"\n"
        ));
    }
    if fail {
        text.push_str("[tasks.bad]\noutputs = [\"bad.txt\"]\ncommand = \"exit 3\"\n");
    }
    text
}

/// With a webhook that takes 600 ms to answer each POST, the build's last
/// event reached it: it was queued behind every task event, and a build
/// waited a second for the queue before it gave up on all of it. Now the
/// task events still queued as the build ends are given up on (and said
/// to be), and the last event is sent.
#[test]
fn the_last_event_reaches_a_slow_webhook() {
    for (fail, last, code, events) in [
        (false, "pipeline.completed", 0, 10),
        (true, "pipeline.failed", 1, 12),
    ] {
        let slow = Server::start();
        slow.default_reply(delayed(
            json(200, serde_json::json!({})),
            Duration::from_millis(600),
        ));
        let p = Project::new(&quick_tasks(&slow.url, fail));
        let started = Instant::now();
        let run = p.build();
        run.code(code);
        // 1 s for the queue, then one attempt of 5 s at most for the last
        // (a generous bound, not a speed target).
        assert!(started.elapsed() < Duration::from_secs(9), "{last}");
        let got = got(&slow);
        assert_eq!(got.last().map(String::as_str), Some(last), "{got:?}");
        assert_eq!(got.iter().filter(|e| *e == last).count(), 1, "{got:?}");
        // The warning counts what did not arrive: the events the build gave
        // up on never reached the endpoint (but one on its way as the
        // build ended may have, unanswered yet when the warning was made).
        let left = not_delivered(&run.stderr);
        assert!(left > 0, "{}", run.stderr);
        let said = got.len() + left;
        assert!(
            said == events || said == events + 1,
            "{got:?}\n{}",
            run.stderr
        );
        assert!(!run.stderr.contains("SECRETTOKEN"), "{}", run.stderr);
    }
}

/// A pipeline whose hook at `url` is sent only `event`, and whose one task
/// runs for `secs` seconds (a build goes on while the hook is retried).
fn one_event(url: &str, event: &str, secs: u32) -> String {
    format!(
        "[[hooks]]\nurl = \"{url}/hook/SECRETTOKEN\"\nevents = [\"{event}\"]\n[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"sleep {secs}; echo a > a.txt\"\n"
    )
}

/// The time between the first two requests `server` got.
fn spacing(server: &Server) -> Duration {
    let got = server.requests();
    assert_eq!(got.len(), 2, "{got:?}");
    got[1].at.duration_since(got[0].at)
}

/// A webhook that answers 429 (or 503) with `Retry-After`, in seconds or
/// as an HTTP date, is tried again when it asked, not after a fixed
/// backoff of half a second, which it would refuse again.
#[test]
fn a_webhook_is_tried_again_when_its_retry_after_says() {
    // An HTTP date has whole seconds: 2 to 3 s from now.
    for (status, date, least) in [(429, false, 2000), (503, true, 1900)] {
        let after = match date {
            false => "2".to_string(),
            true => jiff::fmt::rfc2822::DateTimePrinter::new()
                .timestamp_to_rfc9110_string(
                    &(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3)),
                )
                .unwrap(),
        };
        let server = Server::start();
        server.script([with_header(
            json(status, serde_json::json!({})),
            "retry-after",
            &after,
        )]);
        server.default_reply(json(200, serde_json::json!({})));
        let p = Project::new(&one_event(&server.url, "pipeline.started", 5));
        let run = p.build();
        run.ok();
        assert!(!run.stderr.contains("webhook"), "{}", run.stderr);
        let waited = spacing(&server);
        assert!(
            waited >= Duration::from_millis(least) && waited < Duration::from_millis(3800),
            "{status} {after}: tried again after {waited:?}"
        );
    }
}

/// The build's last event is tried again as its `Retry-After` asks, within
/// the build's wait for it; a wait longer than planexe gives a webhook, or
/// than the build's end leaves, is no retry, and the warning says what the
/// server asked.
#[test]
fn a_retry_after_is_waited_for_within_bounds_and_a_longer_one_said() {
    let server = Server::start();
    server.script([with_header(
        json(429, serde_json::json!({})),
        "retry-after",
        "2",
    )]);
    server.default_reply(json(200, serde_json::json!({})));
    let p = Project::new(&one_event(&server.url, "pipeline.completed", 0));
    let run = p.build();
    run.ok();
    assert!(!run.stderr.contains("webhook"), "{}", run.stderr);
    assert!(spacing(&server) >= Duration::from_secs(2));

    for (event, asked, why) in [
        (
            "pipeline.started",
            "3600",
            "1h 0m (Retry-After), longer than planexe waits to retry a webhook (10s)",
        ),
        (
            "pipeline.completed",
            "8",
            "8s (Retry-After), longer than the build's end left for it (",
        ),
    ] {
        let server = Server::start();
        server.default_reply(with_header(
            json(429, serde_json::json!({})),
            "retry-after",
            asked,
        ));
        let p = Project::new(&one_event(&server.url, event, 0));
        let started = Instant::now();
        let run = p.build();
        run.ok().stderr_has(&format!(
            "warning: webhook {}/...: answered 429 (1 attempt); the server asked to wait {why}",
            server.url
        ));
        assert_eq!(server.requests().len(), 1, "{event}");
        assert!(started.elapsed() < Duration::from_secs(4), "{event}");
        assert!(!run.stderr.contains("SECRETTOKEN"), "{}", run.stderr);
    }
}

/// A command hook that logs `start EVENT` as it is given an event and
/// `end EVENT` once done with it, taking a moment over each task event
/// (a slow hook) and none over the build's last.
const LOGGING_HOOK: &str = r#"[[hooks]]
command = '''
e=$(cat | sed 's/^{"event":"\([^"]*\)".*/\1/')
echo "start $e" >> hook.log
case $e in pipeline.*) ;; *) sleep 0.3 ;; esac
echo "end $e" >> hook.log
'''
"#;

/// The build's last event could be sent to a hook while the worker was
/// still delivering a task event to it (a command hook ran both at once;
/// a task event's POST could start just after the last one's): now each
/// hook has one lane, and the last event goes down it once the event on
/// its way there is over, so a hook is given one event at a time, in
/// order, the last one last. The hook here is slow, so the worker is
/// still busy with a task event as the build ends.
#[test]
fn a_hook_gets_the_last_event_after_the_one_on_its_way() {
    for _ in 0..3 {
        let mut text = LOGGING_HOOK.to_string();
        for t in ["a", "b", "c", "d"] {
            text.push_str(&format!(
                "[tasks.{t}]\noutputs = [\"{t}.txt\"]\ncommand = \"echo {t} > {t}.txt\"\n"
            ));
        }
        let p = Project::new(&text);
        let run = p.build();
        run.ok();
        let log = p.read("hook.log");
        let lines: Vec<&str> = log.lines().collect();
        // Never two at once: each start is followed by its own end.
        for pair in lines.chunks(2) {
            let [start, end] = pair else {
                panic!("an event started and not ended: {log}\n{}", run.stderr);
            };
            let event = start.strip_prefix("start ").unwrap_or_default();
            assert_eq!(*end, format!("end {event}"), "{log}\n{}", run.stderr);
        }
        assert_eq!(lines.last(), Some(&"end pipeline.completed"), "{log}");
        assert_eq!(log.matches("pipeline.completed").count(), 2, "{log}");
    }
}

/// A hook command that writes its pid (and that of a process it started)
/// and then runs for minutes, for `event`.
fn lingering_hook(event: &str) -> String {
    format!(
        "[[hooks]]\nevents = [\"{event}\"]\ncommand = '''\nsleep 300 &\necho $! > child.pid\necho $$ > hook.tmp && mv hook.tmp hook.pid\nwait\n'''\n"
    )
}

/// Sends SIGINT to `child`.
fn interrupt(child: &std::process::Child) {
    // SAFETY: sending a signal to the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
}

/// A second Ctrl-C while planexe waited for its hooks at the end of a
/// build killed planexe outright, and the hook command it had started
/// went on running, an orphan. Now a signal during that wait ends it at
/// once: the hook commands are stopped (with what they started), the
/// warning says the events were not delivered, and planexe exits 130. A
/// Ctrl-C that comes during the wait of a build that completed ends it the
/// same way, and so the build is said to be interrupted.
#[test]
fn a_ctrl_c_while_planexe_waits_for_its_hooks_stops_them_and_exits_130() {
    for stopped in [true, false] {
        let (event, task) = match stopped {
            true => ("pipeline.stopped", "touch started; sleep 300"),
            false => ("pipeline.completed", "touch started"),
        };
        let p = Project::new(&format!(
            "{}[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"{task}; echo a > a.txt\"\n",
            lingering_hook(event)
        ));
        let child = p
            .command(&["build"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if stopped {
            wait_for("the task to start", || p.exists("started"));
            interrupt(&child);
        }
        wait_for("the hook to start", || p.exists("hook.pid"));
        interrupt(&child);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{event}: {out:?}");
        for pid in ["hook.pid", "child.pid"] {
            let pid = p.read(pid);
            assert!(ended(pid.trim()), "{event}: {pid} outlived planexe");
        }
        assert!(
            stderr.contains(
                "warning: 1 event(s) were not delivered to hooks: interrupted while planexe waited for them"
            ),
            "{event}: {stderr}"
        );
        let events = p.jsonl(".planexe/events.jsonl");
        assert_eq!(events.last().unwrap()["event"], event);
    }
}
