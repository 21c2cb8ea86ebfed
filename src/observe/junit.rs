//! `planexe report --format junit`: the run as JUnit XML, which CI systems
//! (GitHub Actions test reporters, GitLab, Jenkins) show as a test report.
//! One `<testcase>` per task (classname: the pipeline's name; name: the
//! task): done passes; failed is a `<failure>` whose message is `KIND:
//! first line` and whose body holds the whole error, its `error_id` and
//! the tail of the task's log; stopped, running and not run (never built,
//! pending, stale) are `<skipped>` with why.
//!
//! Gathering ([`gather`]) reads the run once, as `status` sees it (every
//! task checked) with the summary's durations; rendering ([`render`]) is a
//! pure function of the [`Suite`]. Every string goes through [`escape`]:
//! markup is escaped, and characters XML 1.0 cannot hold at all (control
//! characters other than tab, LF and CR; U+FFFE, U+FFFF) are replaced, so
//! whatever a model or a command wrote, the file parses.

use std::fmt::Write;

use super::report::log_tail;
use super::standing::Standing;
use super::{status, summary};
use crate::error::Result;
use crate::plan::Session;
use crate::store::untrusted::Secrets;
use crate::store::{CheckMode, Recorded};

/// The whole file: one suite, the run's pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    /// The pipeline's name (each case's classname).
    pub name: String,
    /// When the last build started (else when the report was made), as
    /// `YYYY-MM-DDTHH:MM:SS` in UTC.
    pub timestamp: String,
    pub cases: Vec<Case>,
}

/// One task.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub name: String,
    /// Its last run's duration, in seconds (0 when it never ran).
    pub seconds: f64,
    pub result: CaseResult,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CaseResult {
    Passed,
    Failed {
        /// The error kind, as `status` names it.
        kind: String,
        /// The whole error message.
        message: String,
        error_id: Option<String>,
        /// The last lines of the task's log.
        log_tail: Vec<String>,
    },
    /// Stopped, running, or not run: why.
    Skipped(String),
}

/// The suite of the session's run, every task checked with `mode`; the
/// log lines it holds are scrubbed of `secrets`.
pub fn gather(session: &Session, mode: CheckMode, secrets: &Secrets) -> Result<Suite> {
    let graph = &session.graph;
    let plan = session.plan_all(mode)?;
    let lines = status::task_lines(
        graph,
        &session.store,
        &session.run_dir,
        &plan.reasons,
        session.builder(),
    );
    let summary = summary::build(
        graph,
        &session.store,
        &session.run_dir,
        session.run.as_ref(),
        "",
    );
    let cases = lines
        .into_iter()
        .zip(&summary.tasks)
        .map(|(line, row)| {
            let seconds = row.duration_ms.unwrap_or(0) as f64 / 1000.0;
            let reason = line.reason.as_deref().unwrap_or("not run");
            let result = match line.state {
                Standing::Done => CaseResult::Passed,
                Standing::Failed => {
                    let error = match session.store.recorded(&session.run_dir, &line.task) {
                        Recorded::Failed(s) => s.error.clone(),
                        _ => None,
                    };
                    CaseResult::Failed {
                        kind: line.error_kind.clone().unwrap_or_else(|| "failed".into()),
                        message: error.map_or_else(
                            || line.error.clone().unwrap_or_else(|| reason.to_string()),
                            |e| e.message,
                        ),
                        error_id: line.error_id.clone(),
                        log_tail: log_tail(&session.run_dir.task_log_path(&line.task), secrets),
                    }
                }
                Standing::Stopped => CaseResult::Skipped(match &line.error {
                    Some(e) => format!("stopped: {e}"),
                    None => "stopped".to_string(),
                }),
                Standing::Running => CaseResult::Skipped("running".to_string()),
                Standing::FailedPendingCheck => {
                    CaseResult::Skipped("failed-pending-check: its rescue's checks run".to_string())
                }
                Standing::NeverBuilt | Standing::Pending | Standing::Stale => {
                    CaseResult::Skipped(format!("not run: {reason}"))
                }
            };
            Case {
                name: line.task,
                seconds,
                result,
            }
        })
        .collect();
    let started = session
        .run
        .as_ref()
        .and_then(|r| r.builds.last())
        .map(|b| b.started_at.clone())
        .unwrap_or(summary.generated_at);
    Ok(Suite {
        name: graph.name.clone(),
        timestamp: timestamp(&started),
        cases,
    })
}

/// An RFC 3339 time as JUnit's `timestamp` (UTC, no zone); unchanged when
/// it does not parse.
fn timestamp(rfc3339: &str) -> String {
    rfc3339
        .parse::<jiff::Timestamp>()
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// The XML document.
pub fn render(suite: &Suite) -> String {
    let count = |f: fn(&CaseResult) -> bool| suite.cases.iter().filter(|c| f(&c.result)).count();
    let failures = count(|r| matches!(r, CaseResult::Failed { .. }));
    let skipped = count(|r| matches!(r, CaseResult::Skipped(_)));
    let tests = suite.cases.len();
    let time: f64 = suite.cases.iter().map(|c| c.seconds).sum();
    let name = escape(&suite.name);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{name}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" \
         skipped=\"{skipped}\" time=\"{time:.3}\">"
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{name}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" \
         skipped=\"{skipped}\" time=\"{time:.3}\" timestamp=\"{}\">",
        escape(&suite.timestamp)
    );
    for case in &suite.cases {
        let open = format!(
            "    <testcase classname=\"{name}\" name=\"{}\" time=\"{:.3}\"",
            escape(&case.name),
            case.seconds
        );
        match &case.result {
            CaseResult::Passed => {
                let _ = writeln!(out, "{open}/>");
            }
            CaseResult::Skipped(why) => {
                let _ = writeln!(out, "{open}>");
                let _ = writeln!(out, "      <skipped message=\"{}\"/>", escape(why));
                let _ = writeln!(out, "    </testcase>");
            }
            CaseResult::Failed {
                kind,
                message,
                error_id,
                log_tail,
            } => {
                let first = crate::store::record::first_line(message);
                let mut body = message.trim_end().to_string();
                if let Some(id) = error_id {
                    let _ = write!(body, "\nerror_id: {id}");
                }
                if !log_tail.is_empty() {
                    body.push_str("\n\nlast lines of the task's log:\n");
                    body.push_str(&log_tail.join("\n"));
                }
                let _ = writeln!(out, "{open}>");
                let _ = writeln!(
                    out,
                    "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                    escape(&crate::store::record::with_kind(kind, first)),
                    escape(kind),
                    escape_text(&body)
                );
                let _ = writeln!(out, "    </testcase>");
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// An attribute value fit for XML 1.0: `& < > " '` as entities, line
/// breaks and tabs as character references (a parser would fold them into
/// spaces), and characters XML cannot hold as `\xNN` (controls) or
/// U+FFFD.
pub fn escape(text: &str) -> String {
    escape_as(text, true)
}

/// Element content fit for XML 1.0: as [`escape`], but LF and tab stay
/// themselves, so the body reads as the log did.
pub fn escape_text(text: &str) -> String {
    escape_as(text, false)
}

fn escape_as(text: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' if !attribute => out.push(c),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{FFFE}' | '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_characters_xml_cannot_hold_are_escaped() {
        assert_eq!(
            escape("a<b>&\"c\" ]]> 'd'"),
            "a&lt;b&gt;&amp;&quot;c&quot; ]]&gt; &apos;d&apos;"
        );
        assert_eq!(escape("x\u{1b}[31m\0\u{FFFF}"), "x\\x1b[31m\\x00\u{FFFD}");
        assert_eq!(escape("l1\r\n\tl2"), "l1&#13;&#10;&#9;l2");
        assert_eq!(escape_text("l1\r\n\tl2<"), "l1&#13;\n\tl2&lt;");
        assert_eq!(escape("ünïcode ✓ 🦀"), "ünïcode ✓ 🦀");
    }

    #[test]
    fn counts_and_results_are_rendered() {
        let suite = Suite {
            name: "p<&>".to_string(),
            timestamp: "2026-01-02T03:04:05".to_string(),
            cases: vec![
                Case {
                    name: "a".to_string(),
                    seconds: 1.5,
                    result: CaseResult::Passed,
                },
                Case {
                    name: "b".to_string(),
                    seconds: 0.25,
                    result: CaseResult::Failed {
                        kind: "command".to_string(),
                        message: "exit 3\nmore".to_string(),
                        error_id: Some("id-1".to_string()),
                        log_tail: vec!["last".to_string()],
                    },
                },
                Case {
                    name: "c".to_string(),
                    seconds: 0.0,
                    result: CaseResult::Skipped("not run".to_string()),
                },
            ],
        };
        let xml = render(&suite);
        assert!(xml.contains(
            "<testsuite name=\"p&lt;&amp;&gt;\" tests=\"3\" failures=\"1\" errors=\"0\" \
             skipped=\"1\" time=\"1.750\" timestamp=\"2026-01-02T03:04:05\">"
        ));
        assert!(xml.contains(
            "<failure message=\"command: exit 3\" type=\"command\">exit 3\nmore\n\
             error_id: id-1\n\nlast lines of the task&apos;s log:\nlast</failure>"
        ));
        assert!(xml.contains("<skipped message=\"not run\"/>"));
    }

    #[test]
    fn timestamps_lose_their_zone() {
        assert_eq!(timestamp("2026-03-06T19:47:01.123Z"), "2026-03-06T19:47:01");
        assert_eq!(timestamp("garbage"), "garbage");
    }
}
