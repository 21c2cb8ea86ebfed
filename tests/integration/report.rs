//! `planexe report`: a self-contained HTML page, written without a lock and
//! without a word on stdout, that shows every task (fan-out instances
//! included), escapes what users and servers wrote, and loads in a real
//! browser without a single console message.
//!
//! The browser is Debian's headless Chromium at /usr/bin/chromium (CI
//! installs it with `.ci/chromium.sh`). When it is missing the browser
//! tests fail and say so; `PLANEXE_SKIP_BROWSER=1` skips the browser part
//! (every other check still runs).

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::llm_server::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// How long one page load may take before the test gives up.
const LOAD_TIMEOUT: Duration = Duration::from_secs(90);

/// Three plain tasks and a matrix fan-out: `broken` fails (printing HTML
/// to its log), so `final` never runs. The pipeline's name is HTML too.
const PIPELINE: &str = r#"
[pipeline]
name = "<script>alert('name')</script> & co"

[tasks.outline]
outputs = ["outline.txt"]
command = "echo outline > outline.txt"

[tasks.review]
matrix = { expert = ["finance", "legal"] }
inputs = ["outline.txt"]
outputs = ["reviews/{{ expert }}.txt"]
command = "echo {{ expert }} > {outputs}"

[tasks.broken]
inputs = ["outline.txt"]
outputs = ["broken.txt"]
command = "echo '<img src=x onerror=alert(1)>'; exit 3"

[tasks.final]
inputs = ["review", "broken.txt"]
outputs = ["final.txt"]
command = "cat {inputs} > {outputs}"
"#;

const TASKS: [&str; 5] = [
    "outline",
    "review[finance]",
    "review[legal]",
    "broken",
    "final",
];

/// What the browser made of a page.
struct Loaded {
    /// The DOM after loading (`--dump-dom`).
    dom: String,
    /// Every console message and uncaught exception (see [`console`]).
    console: Vec<String>,
}

/// Loads `page` in headless Chromium. `None` (after a note) when
/// `PLANEXE_SKIP_BROWSER=1`; a failed test when Chromium is missing.
fn load(page: &Path) -> Option<Loaded> {
    if std::env::var("PLANEXE_SKIP_BROWSER").as_deref() == Ok("1") {
        eprintln!(
            "note: PLANEXE_SKIP_BROWSER=1: not loading {} in Chromium",
            page.display()
        );
        return None;
    }
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the report tests load the page in headless Chromium. \
         Install it with `apt-get install -y chromium` (CI runs .ci/chromium.sh), \
         or set PLANEXE_SKIP_BROWSER=1 to skip the browser checks"
    );
    let scratch = tempfile::tempdir().unwrap();
    let dom_path = scratch.path().join("dom.html");
    let log_path = scratch.path().join("stderr.txt");
    // Output goes to files, not pipes: nobody reads a pipe while we wait.
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,900",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.path().join("profile").display()
        ))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(File::create(&dom_path).unwrap())
        .stderr(File::create(&log_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
    let deadline = Instant::now() + LOAD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "Chromium did not load {} within {LOAD_TIMEOUT:?}",
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = String::from_utf8_lossy(&std::fs::read(&log_path).unwrap()).into_owned();
    let dom = String::from_utf8_lossy(&std::fs::read(&dom_path).unwrap()).into_owned();
    assert!(status.success(), "Chromium failed ({status}):\n{log}");
    assert!(dom.contains("</html>"), "Chromium dumped no DOM:\n{log}");
    Some(Loaded {
        dom,
        console: console(&log),
    })
}

/// The page's console, from Chromium's log on stderr. With
/// `--enable-logging=stderr`, Chromium (156, Debian 12) logs every console
/// message at level INFO whatever its level (`console.error` included) as
/// `[pid:tid:time:INFO:CONSOLE:LINE] "message", source: URL (LINE)`; an
/// uncaught exception is such a message starting with `Uncaught`, and so is
/// every Content-Security-Policy violation (a blocked script, image or
/// fetch). Lines that merely say `ERROR` come from Chromium itself (dbus in
/// a container) and are not the page's. The report writes nothing to the
/// console, so every console line counts as an error.
fn console(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect()
}

/// The text a reader sees in a dumped DOM: tags and the content of
/// `<style>`, `<script>` and `<title>` (tooltips) removed, entities decoded.
/// Sound because the serializer escapes every `<` and `&` in text.
fn visible_text(dom: &str) -> String {
    let mut text = String::new();
    let mut rest = dom;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        let tag = &rest[open + 1..];
        let Some(close) = tag.find('>') else {
            break;
        };
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        rest = &tag[close + 1..];
        if ["style", "script", "title"].contains(&name.as_str()) {
            let end = format!("</{name}");
            rest = rest.find(&end).map_or("", |i| &rest[i..]);
        }
        text.push(' ');
    }
    text.push_str(rest);
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

#[test]
fn the_report_shows_every_task_and_loads_without_console_errors() {
    let p = Project::new(PIPELINE);
    p.run(&["build", "-k"]).code(1);
    let run = p.run(&["report", "-o", "report.html"]);
    run.ok().stderr_has("wrote report.html");
    assert_eq!(run.stdout, "", "report prints nothing on stdout");

    let html = p.read("report.html");
    assert!(!html.contains("<script"), "user text reached the page raw");
    assert!(!html.contains("<img"), "log text reached the page raw");
    assert!(
        !html.contains("http:") && !html.contains("https:"),
        "the page names a URL"
    );

    let Some(page) = load(&p.path("report.html")) else {
        return;
    };
    assert!(
        page.console.is_empty(),
        "console errors:\n{}",
        page.console.join("\n")
    );
    let text = visible_text(&page.dom);
    for task in TASKS {
        assert!(text.contains(task), "{task} is not on the page:\n{text}");
    }
    // What users and tasks wrote shows as text, not as markup.
    for shown in [
        "<script>alert('name')</script> & co",
        "<img src=x onerror=alert(1)>",
        "exit status 3",
        "never built",
    ] {
        assert!(
            text.contains(shown),
            "{shown:?} is not on the page:\n{text}"
        );
    }
}

/// The console check itself: it must see `console.error`, an uncaught
/// exception and a blocked load, and nothing on a quiet page, or the test
/// above could never fail.
#[test]
fn the_console_check_sees_script_errors_and_blocked_loads() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.html");
    std::fs::write(
        &broken,
        "<!DOCTYPE html><html><head>\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'\">\
         </head><body><p>broken</p><img src=\"pixel.png\">\
         <script>console.error('deliberate console error'); notAFunction();</script></body></html>",
    )
    .unwrap();
    let quiet = dir.path().join("quiet.html");
    std::fs::write(
        &quiet,
        "<!DOCTYPE html><html><body><p>quiet</p></body></html>",
    )
    .unwrap();

    let Some(page) = load(&broken) else {
        return;
    };
    let seen = page.console.join("\n");
    for expected in [
        "deliberate console error",
        "Uncaught ReferenceError: notAFunction is not defined",
        "Content Security Policy",
    ] {
        assert!(seen.contains(expected), "missed {expected:?} in:\n{seen}");
    }
    let Some(page) = load(&quiet) else {
        return;
    };
    assert!(page.console.is_empty(), "{:?}", page.console);
}

#[test]
fn prompt_tasks_show_tokens_cost_and_model_calls_per_build() {
    let server = Server::start();
    server.default_reply(openai_answer("Step 1: dig the foundation."));
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n\n[models.local]\nprovider = \"openai\"\n\
         base_url = \"{}/v1\"\nmodel = \"test-model\"\nstream = false\n\
         input_cost_per_mtok = 100.0\noutput_cost_per_mtok = 200.0\n\n\
         [tasks.ask]\ninputs = [\"plan.txt\"]\noutputs = [\"answer.md\"]\n\
         prompt = \"Plan: {{{{ inputs['plan.txt'] }}}}\"\n",
        server.url
    ));
    p.write("plan.txt", "build a shed");
    p.build().ok();
    p.run(&["build", "-B"]).ok();
    p.run(&["report", "-o", "out/run.html"]).ok();

    let html = p.read("out/run.html");
    // 11 prompt + 7 completion tokens at $100 and $200 per million, a
    // call per build: the header says what the run spent, the task's row
    // its last run.
    assert!(html.contains("<b>36</b> tokens (22 prompt, 14 completion) in <b>2</b> model call(s)"));
    assert!(html.contains("<td class=\"num\">18</td><td class=\"num\">$0.0025</td>"));
    assert!(html.contains("<td>Run</td><td></td><td></td><td></td><td></td><td></td><td class=\"num\">36</td><td class=\"num\">$0.0050</td>"));
    assert!(html.contains("<td>local</td>"), "the model that answered");
    // One timeline per build, each with the model call under its task.
    assert_eq!(html.matches("<details class=\"build\"").count(), 2);
    assert_eq!(html.matches("class=\"call\"").count(), 2);
    assert!(html.contains("title=\"local #1 · "));

    let Some(page) = load(&p.path("out/run.html")) else {
        return;
    };
    assert!(page.console.is_empty(), "{:?}", page.console);
    assert!(visible_text(&page.dom).contains("ask"));
}

/// The page counts what the run spent as `status` does, every model call
/// of it, when an edit sends a `foreach` fan-out back to waiting for its
/// list: its instances leave the graph, not the run's bill. (The header
/// summed the last runs of the tasks in the graph: 18 tokens, the list's
/// one call, where `status` said 72 for the four the run made.)
#[test]
fn the_run_s_tokens_do_not_shrink_when_a_fan_out_waits_for_its_list_again() {
    let server = Server::start();
    server.script([openai_answer("[\"a\", \"b\", \"c\"]")]);
    server.default_reply(openai_answer("A review of the item."));
    let pipeline = |version: &str| {
        format!(
            "[pipeline]\nmodel = \"local\"\n\n[models.local]\nprovider = \"openai\"\n\
             base_url = \"{}/v1\"\nmodel = \"test-model\"\nstream = false\n\
             input_cost_per_mtok = 100.0\noutput_cost_per_mtok = 200.0\n\n\
             [tasks.list]\ninputs = [\"plan.txt\"]\noutputs = [\"list.json\"]\n\
             prompt = \"List the parts ({version}): {{{{ inputs['plan.txt'] }}}}\"\n\n\
             [tasks.each]\nforeach = {{ file = \"list.json\" }}\n\
             outputs = [\"each/{{{{ key }}}}.md\"]\nprompt = \"Review {{{{ item }}}}\"\n",
            server.url
        )
    };
    let p = Project::new(&pipeline("v1"));
    p.write("plan.txt", "build a shed");
    p.build().ok().stderr_has("expanded each: 3 instance(s)");
    // The list is to be made again: the fan-out is its placeholder.
    p.write("pipeline.toml", &pipeline("v2"));
    let status = p.run(&["status"]).ok().stdout.clone();
    assert!(status.contains("3 instance(s) done before"), "{status}");
    let spent = "72 tokens (44 in, 28 out), $0.0100";
    assert!(
        status.contains(&format!("model calls 4 (0 failed), {spent}")),
        "{status}"
    );
    p.run(&["report", "-o", "r.html"]).ok();
    let html = p.read("r.html");
    assert!(
        html.contains("<b>72</b> tokens (44 prompt, 28 completion) in <b>4</b> model call(s)</li><li><b>$0.0100</b>"),
        "{html}"
    );
    // The table's rows are the tasks in the graph; its last row is the run.
    assert!(
        html.contains("<td class=\"num\">72</td><td class=\"num\">$0.0100</td>"),
        "{html}"
    );

    // A build whose list the server refuses leaves the fan-out waiting:
    // summary.json's totals are still the run's, as `status` sums them.
    server.script([json(400, serde_json::json!({"error": {"message": "no"}}))]);
    p.build().code(1);
    let summary: serde_json::Value =
        serde_json::from_str(&p.read(".planexe/summary.json")).unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&p.run(&["status", "--json"]).ok().stdout.clone()).unwrap();
    assert_eq!(summary["totals"], status["totals"], "{summary}");
    assert_eq!(summary["totals"]["calls"], 5, "{summary}");
    assert!(
        summary["totals"]["total_tokens"].as_u64().unwrap() >= 72,
        "{summary}"
    );
}

#[test]
fn a_run_never_built_gets_a_page_and_nothing_else_changes() {
    let p = Project::new(PIPELINE);
    let run = p.run(&["--quiet", "report"]);
    run.ok();
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("", ""));
    assert!(!p.exists(".planexe"), "report only reads");
    let html = p.read("report.html");
    assert!(html.contains("no build has run here yet"));
    assert!(html.contains("Nothing has run yet."));
    // As `status` says of them.
    assert_eq!(html.matches("never built</span></td>").count(), TASKS.len());
}

#[test]
fn report_dash_o_dash_writes_on_stdout_not_a_file_named_dash() {
    let p = Project::new(PIPELINE);
    p.run(&["build", "-k"]).code(1);
    let html = p.run(&["report", "-o", "-"]);
    html.ok();
    assert!(
        html.stdout.trim_start().starts_with("<!DOCTYPE html>"),
        "{}",
        html.stdout
    );
    assert!(html.stdout.contains("review[legal]"));
    assert!(!html.stderr.contains("wrote"), "{}", html.stderr);
    let junit = p.run(&["report", "--format", "junit", "-o", "-"]);
    junit.ok();
    assert!(junit.stdout.starts_with("<?xml"), "{}", junit.stdout);
    assert!(junit.stdout.contains("<testsuite"));
    assert!(!p.exists("-"), "wrote a file named -");
    // A file named `-` is still one path away.
    p.run(&["report", "-o", "./-"]).ok().stderr_has("wrote ./-");
    assert!(p.read("-").trim_start().starts_with("<!DOCTYPE html>"));
}

/// A failed command whose last line is longer than the 16 KiB of its log
/// read back (a traceback or an error on one line) shows that line's end
/// on the page and in JUnit. (Both showed no log at all: the read started
/// mid-line and dropped that piece, the only one.)
#[test]
fn a_log_ending_in_a_line_longer_than_the_window_shows_its_end() {
    let p = Project::new(
        r#"
[tasks.long]
outputs = ["long.txt"]
command = "head -c 20000 /dev/zero | tr '\\0' x; echo ' <b>the-end</b> of the line'; exit 3"
"#,
    );
    p.run(&["build"]).code(1);
    p.run(&["report"]).ok();
    let html = p.read("report.html");
    let failures = html.split("id=\"failures\"").nth(1).unwrap();
    let failures = failures.split("</section>").next().unwrap();
    assert!(
        failures.contains("…&lt;b&gt;the-end&lt;/b&gt; of the line"),
        "the end of the long line is not on the page:\n{failures}"
    );
    assert!(
        !failures.contains("xxx"),
        "the cut piece is shown from its blank"
    );
    p.run(&["report", "--format", "junit"]).ok();
    assert!(p
        .read("junit.xml")
        .contains("…&lt;b&gt;the-end&lt;/b&gt; of the line"));
}

/// A long unbroken error (a server's 400 quoting a request, a check's
/// output, a path) wraps in the task table's notes instead of widening the page: the page fits
/// the window it is opened in. (The table grew as wide as the error, the
/// page scrolled sideways and every other column was squeezed.)
#[test]
fn a_long_unbroken_error_does_not_widen_the_page() {
    let long = "x".repeat(3000);
    let p = Project::new(&format!(
        r#"
[tasks.wide]
outputs = ["wide.txt"]
command = "echo wide > wide.txt"
check = "echo 'the check says {long}'; exit 1"

[tasks.warned]
outputs = ["warned.txt"]
command = "echo warned > warned.txt"
check = "echo 'the check warns {long}'; exit 1"
severity = "warn"
"#
    ));
    p.run(&["build"]).code(1);
    assert_within_the_window(&p);
}

/// A task name too long for its cell (a fan-out's key of 120 characters)
/// wraps in the task table and in its failure's heading. (The page grew
/// as wide as the name, and scrolled sideways.)
#[test]
fn a_long_task_name_does_not_widen_the_page() {
    let long = "k".repeat(120);
    let p = Project::new(&format!(
        r#"
[tasks.{}]
matrix = {{ k = ["{long}"] }}
outputs = ["m/{{{{ k }}}}.txt"]
command = "exit 1"
"#,
        "n".repeat(70)
    ));
    p.run(&["build"]).code(1);
    assert_within_the_window(&p);
}

/// Writes the run's report and checks, in the browser, that the page is
/// no wider than its window.
fn assert_within_the_window(p: &Project) {
    p.run(&["report"]).ok();
    // The page as written, less its policy, plus a script that measures it.
    let html = p.read("report.html");
    let csp = html
        .find("<meta http-equiv=\"Content-Security-Policy\"")
        .unwrap();
    let csp_end = csp + html[csp..].find('>').unwrap() + 1;
    let measured = format!(
        "{}{}",
        &html[..csp],
        html[csp_end..].replace(
            "</body>",
            "<script>document.body.insertAdjacentHTML('beforeend', \
             '<p id=\"measure\">' + document.documentElement.scrollWidth + ' ' + \
             document.documentElement.clientWidth + '</p>')</script></body>"
        )
    );
    p.write("measured.html", &measured);
    let Some(page) = load(&p.path("measured.html")) else {
        return;
    };
    // The last one: the first is in the script itself.
    let at = page.dom.rfind("<p id=\"measure\">").unwrap() + 16;
    let numbers = &page.dom[at..at + page.dom[at..].find('<').unwrap()];
    let (wide, window) = numbers.split_once(' ').unwrap();
    let parse = |n: &str| -> u32 {
        n.parse()
            .unwrap_or_else(|_| panic!("not a width: {numbers:?}"))
    };
    let (wide, window) = (parse(wide), parse(window));
    // Give or take a scrollbar: Chromium may measure the page once before
    // it lays out its vertical scrollbar (1189px in a 1185px window).
    assert!(
        wide <= window + 20,
        "the page is {wide}px wide in a {window}px window"
    );
}

/// A fan-out whose instances fail by the dozen shows every failure, but
/// the logs of the first ten only open: the others are folded, so the
/// timeline and the table stay within reach. (Each failure's 15 log lines
/// were open: 111 failures were 43000px of logs above the timeline.)
#[test]
fn the_logs_of_many_failures_past_the_tenth_are_folded() {
    let p = Project::new(
        r#"
[tasks.fan]
matrix = { n = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"] }
outputs = ["out/{{ n }}.txt"]
command = "echo 'log of {{ n }}'; exit 1"
"#,
    );
    p.run(&["build", "-k"]).code(1);
    p.run(&["report"]).ok();
    let html = p.read("report.html");
    assert_eq!(html.matches("<article class=\"failure\"").count(), 12);
    assert_eq!(
        html.matches("<details open><summary>Last lines of").count(),
        10
    );
    assert_eq!(html.matches("<details><summary>Last lines of").count(), 2);
    for n in 1..=12 {
        assert!(
            html.contains(&format!("log of {n}\n")),
            "the log of {n} is on the page"
        );
    }
}

/// The counts of a page's header, by state as `status --json` names them.
fn page_counts(html: &str) -> std::collections::BTreeMap<String, u64> {
    let list = html.split("<ul class=\"counts\">").nth(1).unwrap();
    let list = list.split("</ul>").next().unwrap();
    list.lines()
        .filter_map(|l| {
            let (n, label) = l.split_once("<b>")?.1.split_once("</b> ")?;
            let label = label.strip_suffix("</li>")?;
            (label != "tasks").then(|| (label.replace(' ', "-"), n.parse().unwrap()))
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// A page made while a build runs counts the tasks as `status` does at
/// the same moment: the running task running. (It counted last outcomes:
/// the running task and the one waiting for it as `not run`, beside `0
/// failed` and `0 stopped`, while its table said `running`.)
#[test]
fn report_counts_tasks_as_status_does_while_a_build_runs() {
    let p = Project::new(
        r#"
[tasks.quick]
outputs = ["quick.txt"]
command = "echo quick > quick.txt"

[tasks.held]
outputs = ["held.txt"]
command = "while [ ! -e go ]; do sleep 0.02; done; echo done > held.txt"

[tasks.after]
inputs = ["held.txt"]
outputs = ["after.txt"]
command = "cat held.txt > after.txt"
"#,
    );
    let mut build = p.spawn_quiet(&["build", "-j", "2"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let counts = |json: &serde_json::Value| -> std::collections::BTreeMap<String, u64> {
        serde_json::from_value(json["counts"].clone()).unwrap()
    };
    // What `status` says itself: `quick` done, `held` running. (An output
    // on disk does not say its task is recorded done, nor when `status`
    // read the run.)
    let status = loop {
        let run = p.run(&["status", "--json"]);
        let status: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let now = counts(&status);
        if now.get("running") == Some(&1) && now.get("done") == Some(&1) {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the build never ran quick and held: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = p.run(&["report"]);
    let again = p.run(&["status", "--json"]);
    p.write("go", "");
    assert!(build.wait().unwrap().success());
    run.ok();
    let html = p.read("report.html");
    let (status, again) = (
        counts(&status),
        counts(&serde_json::from_str(&again.stdout).unwrap()),
    );
    assert_eq!(status, again, "the run moved on meanwhile");
    assert_eq!(page_counts(&html), status, "{status:?}");
    assert_eq!(status.get("running"), Some(&1), "{status:?}");
    // Once the build is over, they agree again.
    p.run(&["report"]).ok();
    let run = p.run(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(page_counts(&p.read("report.html")), counts(&status));
}

#[test]
fn report_works_while_a_build_holds_the_lock() {
    let p = Project::new(
        r#"
[tasks.held]
outputs = ["held.txt"]
command = "while [ ! -e go ]; do sleep 0.02; done; echo done > held.txt"
"#,
    );
    let mut build = p.spawn_quiet(&["build"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(p.exists(".planexe/tasks/held.status") && p.status_json("held")["state"] == "running") {
        assert!(Instant::now() < deadline, "the build never started held");
        std::thread::sleep(Duration::from_millis(20));
    }
    let run = p.run(&["report"]);
    p.write("go", "");
    let status = build.wait().unwrap();
    run.ok();
    assert!(status.success());
    assert!(p
        .read("report.html")
        .contains(">last build running</span></h1>"));
}
