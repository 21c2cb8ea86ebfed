//! The page of a gathered [`Page`], as HTML: a pure function of it. The
//! HTML is in minijinja templates (`templates/`, compiled into the binary
//! with `include_str!`), registered in one [`Environment`] built here; the
//! data they show is the view model of [`super::view`]. This module owns
//! the environment and the escaping every printed value goes through.
//!
//! Escaping: every template is auto-escaped, and the environment's
//! formatter runs every value that is not marked safe through [`esc`],
//! whatever the template says. No value is marked safe: the only markup is
//! in the templates.

use std::sync::LazyLock;

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, Error, Output, State, UndefinedBehavior};

use super::view::View;
use super::Page;
// The tests build pages with timelines.
#[cfg(test)]
use super::Timeline;

/// The templates, by name: the page and what it includes.
const TEMPLATES: [(&str, &str); 7] = [
    ("page.html", include_str!("templates/page.html")),
    ("style.css", include_str!("templates/style.css")),
    ("header.html", include_str!("templates/header.html")),
    ("failures.html", include_str!("templates/failures.html")),
    ("timelines.html", include_str!("templates/timelines.html")),
    ("graph.html", include_str!("templates/graph.html")),
    ("tasks.html", include_str!("templates/tasks.html")),
];

/// The report's template environment, built once; or what was wrong with
/// a template (a bug in planexe, caught by its tests).
static TEMPLATE_ENV: LazyLock<Result<Environment<'static>, String>> = LazyLock::new(|| {
    let mut env = environment();
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .map_err(|e| format!("report template {name}: {e:#}"))?;
    }
    Ok(env)
});

/// The environment the templates are rendered in (without them).
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // A name the view model does not have is a bug, not an empty string.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_formatter(format);
    env
}

/// How the templates print a value: a string marked safe as it is (the
/// view model marks none, and no template uses `safe` or `escape`), nothing
/// for none, anything else through [`esc`], even where a template turned
/// auto-escaping off.
fn format(out: &mut Output, _: &State, value: &Value) -> Result<(), Error> {
    if value.is_safe() {
        out.write_str(value.as_str().unwrap_or_default())?;
    } else if let Some(text) = value.as_str() {
        out.write_str(&esc(text))?;
    } else if !value.is_none() && !value.is_undefined() {
        out.write_str(&esc(&value.to_string()))?;
    }
    Ok(())
}

/// `text`, safe as HTML text and as a quoted attribute value. Terminal
/// escape sequences in logs (colours, titles: `ESC [ 31 m`, `ESC ] 0 ; T
/// BEL`) are dropped whole, parsed by `vte` as a terminal would, and so is
/// every other control character but newline and tab. A bidirectional
/// override or isolate shows as its code (`\u{202e}`), as `status` shows
/// it: it would turn the rest of its line backwards (a log line, a file's
/// name), and a reader could not tell.
fn esc(text: &str) -> String {
    let mut out = Escaped(String::with_capacity(text.len()));
    if text.contains('\x1b') || text.contains('\u{9b}') {
        vte::Parser::new().advance(&mut out, text.as_bytes());
    } else {
        text.chars().for_each(|c| out.push(c));
    }
    out.0
}

/// HTML text being escaped, fed what is left of a text once its terminal
/// escapes are parsed out.
struct Escaped(String);

impl Escaped {
    fn push(&mut self, c: char) {
        match c {
            '&' => self.0.push_str("&amp;"),
            '<' => self.0.push_str("&lt;"),
            '>' => self.0.push_str("&gt;"),
            '"' => self.0.push_str("&quot;"),
            '\'' => self.0.push_str("&#39;"),
            '\n' | '\t' => self.0.push(c),
            c if c.is_control() => {}
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                self.0.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => self.0.push(c),
        }
    }
}

impl vte::Perform for Escaped {
    fn print(&mut self, c: char) {
        self.push(c);
    }

    fn execute(&mut self, byte: u8) {
        self.push(char::from(byte));
    }
}

/// The page, as HTML. The templates are part of the binary, so an error is
/// a bug in them; it is reported, not a panic.
pub fn try_render(page: &Page) -> Result<String, crate::error::Error> {
    let bug = |m: String| {
        crate::error::Error::Io(std::io::Error::other(format!(
            "the report template failed (a bug in planexe): {m}"
        )))
    };
    let env = TEMPLATE_ENV.as_ref().map_err(|m| bug(m.clone()))?;
    env.get_template("page.html")
        .and_then(|t| t.render(View::of(page)))
        .map_err(|e| bug(format!("{e:#}")))
}

/// [`try_render`], for tests.
#[cfg(test)]
pub fn render(page: &Page) -> String {
    match try_render(page) {
        Ok(html) => html,
        Err(e) => panic!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::labels::{duration, fit, money, tick_step};
    use super::super::{Span, TaskDetail};
    use super::*;
    use crate::observe::summary::{Outcome, Summary, TaskSummary};
    use crate::observe::Standing;
    use crate::store::run_record::Counts;
    use crate::store::{ErrorKind, TaskError, Usage};

    const EVIL: &str = "<script>alert(1)</script>";

    fn row(task: &str, state: Outcome) -> TaskSummary {
        TaskSummary {
            task: task.to_string(),
            state,
            duration_ms: Some(1500),
            finished_at: Some("2026-11-22T16:42:01.5Z".to_string()),
            outputs: Vec::new(),
            model: None,
            total_tokens: None,
            cost_usd: None,
            tokens_estimated: false,
            judge_usage: None,
            judge: None,
            error_kind: None,
            error: None,
            error_id: None,
            recoverable: None,
            rescued: false,
            warnings: Vec::new(),
        }
    }

    fn detail(deps: Vec<usize>, depth: usize) -> TaskDetail {
        TaskDetail {
            kind: "command",
            deps,
            depth,
            error: None,
            log_tail: Vec::new(),
            standing: Standing::Done,
        }
    }

    /// Two tasks, the second failed, with hostile text wherever a user or a
    /// server can put text.
    fn hostile_page() -> Page {
        let mut failed = row("wbs3[7]", Outcome::Failed);
        failed.error_kind = Some("exit".to_string());
        failed.error = Some(EVIL.to_string());
        failed.model = Some(format!("m{EVIL}"));
        failed.warnings = vec![format!("output {EVIL} is empty")];
        let mut bad = detail(vec![0], 1);
        bad.error = Some(TaskError {
            kind: ErrorKind::Exit,
            message: format!("first line\n{EVIL}\n<img src=x onerror=alert(2)>"),
            error_id: Some(format!("id{EVIL}")),
            recoverable: false,
            exit_code: Some(1),
            signal: None,
            judge: false,
            hints: vec![format!("hint {EVIL}")],
            log_tail: Some(format!("log {EVIL}")),
        });
        bad.log_tail = vec![format!("\x1b[31mlog {EVIL}\x1b[0m")];
        bad.standing = Standing::Failed;
        Page {
            name: format!("demo {EVIL} & \"co\""),
            summary: Summary {
                run_id: None,
                pipeline: format!("/p/{EVIL}/pipeline.toml"),
                run_dir: format!("/runs/{EVIL}"),
                generated_at: "2026-11-22T16:43:00Z".to_string(),
                outcome: Some("failed".to_string()),
                counts: Counts {
                    tasks: 2,
                    done: 1,
                    failed: 1,
                    ..Default::default()
                },
                rescued: 0,
                usage: Usage::default(),
                calls: 0,
                judge_usage: Default::default(),
                warnings: vec![format!("wbs3[7]: {EVIL}")],
                totals: Default::default(),
                tasks: vec![row("outline", Outcome::Done), failed],
            },
            run: None,
            tasks: vec![detail(Vec::new(), 0), bad],
            timelines: vec![Timeline {
                label: format!("Build {EVIL}"),
                spans: vec![
                    Span {
                        name: "outline".to_string(),
                        call: false,
                        lane: 0,
                        start_us: 0,
                        dur_us: 1_000_000,
                        state: "done".to_string(),
                        note: None,
                    },
                    Span {
                        name: "wbs3[7]".to_string(),
                        call: false,
                        lane: 1,
                        start_us: 1_000_000,
                        dur_us: 500_000,
                        state: "failed".to_string(),
                        note: Some(EVIL.to_string()),
                    },
                    Span {
                        name: format!("local{EVIL} #1"),
                        call: true,
                        lane: 1,
                        start_us: 1_100_000,
                        dur_us: 200_000,
                        state: format!("auth{EVIL}"),
                        note: Some(format!("\"{EVIL}")),
                    },
                ],
            }],
            omitted: 0,
            counts: vec![(Standing::Failed, 1), (Standing::Done, 1)],
        }
    }

    #[test]
    fn hostile_text_is_escaped_everywhere() {
        let html = render(&hostile_page());
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains('\x1b'));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;"));
        // An attribute value cannot be closed early by a quote.
        assert!(html.contains("&quot;&lt;script&gt;"));
        assert!(html.contains("demo &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;co&quot;"));
    }

    #[test]
    fn the_page_loads_nothing_and_runs_nothing() {
        let html = render(&hostile_page());
        for needle in [
            "http:", "https:", "<script", "<img", "<link", "<iframe", "<object", "<embed",
            "@import", "url(",
        ] {
            assert!(!html.contains(needle), "{needle} in\n{html}");
        }
        assert!(html.contains("default-src 'none'; style-src 'unsafe-inline'"));
    }

    #[test]
    fn every_task_is_in_the_graph_and_the_table() {
        let html = render(&hostile_page());
        for id in ["task-0", "task-1"] {
            assert!(html.contains(&format!("<tr id=\"{id}\">")));
            assert!(html.contains(&format!("<a href=\"#{id}\">")));
        }
        assert!(html.contains("<code>wbs3[7]</code>"));
        assert!(html.contains("<path d="), "an edge outline -> wbs3[7]");
    }

    /// A graph node's name is cut by the columns it takes, as a font
    /// draws it: CJK characters twice as wide as Latin ones. (It was cut
    /// at 22 characters: a CJK key ran 15 columns past its box.)
    #[test]
    fn a_graph_node_cuts_a_wide_name_by_its_columns() {
        let mut page = hostile_page();
        page.summary.tasks[0].task = format!("review[{}]", "計画".repeat(12));
        let html = render(&page);
        assert!(html.contains(">review[計画計画計画計…</text>"), "{html}");
        assert_eq!(fit("कुकु", 1), "कु…");
        assert_eq!(fit("outline", 22), "outline");
    }

    #[test]
    fn durations_and_ticks_read_well() {
        assert_eq!(duration(340), "340 ms");
        assert_eq!(duration(1250), "1.25 s");
        assert_eq!(duration(12_500), "12.5 s");
        assert_eq!(duration(123_000), "2m 03s");
        assert_eq!(duration(3_720_000), "1h 02m");
        assert_eq!(money(0.0), "$0.00");
        assert_eq!(money(12.345), "$12.35");
        assert_eq!(money(0.0156), "$0.0156");
        assert_eq!(money(0.000025), "$0.000025");
        assert_eq!(tick_step(1_500_000), 200_000);
        assert_eq!(tick_step(1), 1_000);
        assert!(10 * 3_600_000_000 / tick_step(10 * 3_600_000_000) <= 8);
    }

    #[test]
    fn terminal_escapes_are_dropped_whole() {
        assert_eq!(
            esc("\x1b[31mRED\x1b[0m\tok \x1b]0;title\x07done \x1b[2J\r<b>\n"),
            "RED\tok done &lt;b&gt;\n"
        );
        assert_eq!(esc("plain\ttext & more"), "plain\ttext &amp; more");
    }

    /// A right-to-left override in a log line or a name shows as its
    /// code, not as text turned backwards. (`exe.\u{202e}txt` read as
    /// `exe.txt` reversed: `txt.exe`.)
    #[test]
    fn bidirectional_overrides_show_as_their_code() {
        assert_eq!(
            esc("report\u{202e}fdp.exe and \u{2067}isolated\u{2069}"),
            "report\\u{202e}fdp.exe and \\u{2067}isolated\\u{2069}"
        );
        assert_eq!(esc("\x1b[31m\u{202e}x"), "\\u{202e}x");
    }

    #[test]
    fn the_environment_escapes_every_value_as_esc_does() {
        let source = "{{ s }}|{{ n }}|{{ none }}|{% autoescape false %}{{ s }}{% endautoescape %}";
        let mut env = environment();
        env.add_template("probe.html", source).unwrap();
        let s = "a/b <i>&\"'\x1b[31m\tz\n";
        let out = (env.get_template("probe.html").unwrap())
            .render(minijinja::context! { s, n => 1.5, none => () })
            .unwrap();
        let e = "a/b &lt;i&gt;&amp;&quot;&#39;\tz\n";
        assert_eq!(out, format!("{e}|1.5||{e}"));
    }
}
