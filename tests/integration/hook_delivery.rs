//! How events reach hooks at a build's end: the last event, the one a
//! chat channel or a dashboard shows, is never lost behind the others to a
//! slow endpoint, and the wait for it is bounded.

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
