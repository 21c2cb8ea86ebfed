//! The root pipeline (the README's main job) and the examples build on a
//! fresh copy, and a second build is a no-op.

use crate::harness::*;

fn copy(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() == ".planexe" {
                continue;
            }
            std::fs::create_dir_all(&target).unwrap();
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn the_main_job_builds_from_a_fresh_checkout() {
    // What a newcomer's `planexe build` in the repository does: the whole
    // reference pipeline, from the recorded answers, with no network and
    // no key.
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = Project::new(&std::fs::read_to_string(repo.join("pipeline.toml")).unwrap());
    for dir in ["prompts", "schemas", "scripts", "examples/plan"] {
        std::fs::create_dir_all(p.path(dir)).unwrap();
        copy(&repo.join(dir), &p.path(dir));
    }
    // As in the checkout: plan.txt is a link to the example's plan.
    let link = std::fs::read_link(repo.join("plan.txt")).unwrap();
    std::os::unix::fs::symlink(link, p.path("plan.txt")).unwrap();
    let run = p
        .command(&["build"])
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.ends_with("results: out/report.md, out/report.html\n"),
        "{stderr}"
    );
    let report = p.read("out/report.md");
    assert!(
        report.starts_with("# Plan\n\n> Build a community solar microgrid"),
        "{report}"
    );
    for section in [
        "## Executive summary",
        "## Risks",
        "## Expert reviews",
        "## Schedule",
        "## Budget",
    ] {
        assert!(report.contains(section), "{section} missing:\n{report}");
    }
    let html = p.read("out/report.html");
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("<h2>Risks</h2>"),
        "{html}"
    );
    // The plan, quoted in the Markdown, is a quote in the page: one
    // paragraph, no `>` of the Markdown left in its text.
    let quote = html
        .split_once("<blockquote>")
        .and_then(|(_, rest)| rest.split_once("</blockquote>"))
        .map(|(quote, _)| quote)
        .unwrap_or_else(|| panic!("no quote in the page:\n{html}"));
    assert!(
        quote.starts_with("\n<p>Build a community solar microgrid") && !quote.contains("&gt;"),
        "{quote}"
    );
    // Self-contained: nothing fetched, nothing run (a model's text that
    // mentions a URL stays text).
    for fetch in ["<script", "<link", "src=", "href=", "@import"] {
        assert!(!html.contains(fetch), "{fetch} in the report");
    }
    // Every answer came from the recording.
    let usage = p.read(".planexe/usage.jsonl");
    let calls: Vec<serde_json::Value> = usage
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(calls.len() >= 25, "{}", calls.len());
    assert!(calls.iter().all(|c| c["replayed"] == true), "{usage}");
    p.build().ok().ran(&[]);
    // Once its files are older than the racy window, a no-op leaves the
    // up-to-date certificate, and the next is answered from it.
    std::thread::sleep(std::time::Duration::from_millis(250));
    p.build().ok().ran(&[]);
    assert!(
        p.exists(".planexe/uptodate"),
        "a no-op build of the main job left no certificate"
    );
}

#[test]
fn the_demo_example_builds() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = Project::new("");
    copy(&repo.join("examples/demo"), p.root());
    p.build().ok().ran(&["outline", "report"]);
    assert_eq!(
        p.read("report.md"),
        "BUILD A HOUSE WITH A GARDEN\nnote: budget is fixed\nnote: the garden faces south\n"
    );
}
