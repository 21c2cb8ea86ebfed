//! Fan-out: `foreach` over a JSON list built in the same build, `matrix`
//! cross products, gathering in item order, re-expansion, resume of single
//! instances, and the errors.

use crate::harness::*;
use crate::llm_server::*;

const PIPELINE: &str = r#"
[tasks.list]
inputs = ["items.json"]
outputs = ["wbs2.json"]
command = "cp items.json wbs2.json"

[tasks.wbs3]
foreach = { file = "wbs2.json", items = "/work_packages", key = "id" }
inputs = ["plan.txt"]
outputs = ["wbs3/{{ key }}.txt"]
command = "echo '{{ item.title }}' > {outputs}; echo '{{ key }}' >> runs.log"

[tasks.merged]
inputs = ["wbs3"]
outputs = ["merged.txt"]
command = "cat {inputs} > {outputs}"
"#;

fn items(ids: &[(&str, &str)]) -> String {
    let list: Vec<String> = ids
        .iter()
        .map(|(id, title)| format!("{{\"id\": \"{id}\", \"title\": \"{title}\"}}"))
        .collect();
    format!("{{\"work_packages\": [{}]}}", list.join(", "))
}

fn runs(p: &Project) -> Vec<String> {
    if !p.exists("runs.log") {
        return Vec::new();
    }
    let mut r: Vec<String> = p.read("runs.log").lines().map(str::to_string).collect();
    r.sort();
    std::fs::remove_file(p.path("runs.log")).unwrap();
    r
}

fn project() -> Project {
    let p = Project::new(PIPELINE);
    p.write("plan.txt", "plan");
    p.write(
        "items.json",
        &items(&[("a", "dig"), ("b", "build"), ("c", "paint")]),
    );
    p
}

#[test]
fn a_list_built_in_the_same_build_expands_and_is_gathered_in_order() {
    let p = project();
    assert_eq!(
        p.run(&["build", "-n"]).stdout,
        "list: never built\nwbs3: expands when wbs2.json is built\nmerged: never built\n"
    );
    p.build()
        .ok()
        .ran(&["list", "wbs3[a]", "wbs3[b]", "wbs3[c]", "merged"]);
    assert_eq!(p.read("merged.txt"), "dig\nbuild\npaint\n");
    assert!(p.exists(".planexe/tasks/wbs3[b].DONE"));
    assert_eq!(runs(&p), ["a", "b", "c"]);
    p.build().ok().ran(&[]);
    let status = p.run(&["status"]).stdout;
    assert!(status.contains("FAN-OUT\n  wbs3     3/3 done"), "{status}");
    let one = p.run(&["status", "wbs3"]).stdout;
    assert_eq!(
        one.lines().filter(|l| l.contains("wbs3[")).count(),
        3,
        "{one}"
    );
}

#[test]
fn only_changed_or_new_items_run_and_gone_items_lose_their_outputs() {
    let p = project();
    p.build().ok();
    runs(&p);
    // One item edited, one removed, one added.
    p.write_at(
        "items.json",
        &items(&[("a", "dig deeper"), ("c", "paint"), ("d", "roof")]),
        2_000_000,
    );
    let run = p.build();
    run.ok().ran(&["list", "wbs3[a]", "wbs3[d]", "merged"]);
    run.stderr_has("removed wbs3[b] (its item is gone): wbs3/b.txt");
    assert!(!p.exists("wbs3/b.txt"));
    assert_eq!(p.read("merged.txt"), "dig deeper\npaint\nroof\n");
    assert_eq!(runs(&p), ["a", "d"]);

    // Reordering items with stable keys runs nothing but the list copy.
    p.write_at(
        "items.json",
        &items(&[("d", "roof"), ("a", "dig deeper"), ("c", "paint")]),
        3_000_000,
    );
    p.build().ok().ran(&["list"]);
    assert!(runs(&p).is_empty());
}

#[test]
fn a_failed_instance_fails_the_build_and_resume_runs_only_it() {
    let p = Project::new(&PIPELINE.replace(
        "command = \"echo '{{ item.title }}' > {outputs}; echo '{{ key }}' >> runs.log\"",
        "command = \"echo '{{ key }}' >> runs.log; test ! -e fail-{{ key }} && echo '{{ item.title }}' > {outputs}\"",
    ));
    p.write("plan.txt", "plan");
    p.write(
        "items.json",
        &items(&[("a", "dig"), ("b", "build"), ("c", "paint")]),
    );
    p.write("fail-b", "");
    p.run(&["build", "-k"]).code(1).stderr_has("FAILED wbs3[b]");
    assert_eq!(runs(&p), ["a", "b", "c"]);
    assert!(!p.exists("merged.txt"));
    let status = p.run(&["status"]).stdout;
    assert!(status.contains("2/3 done, 1 failed"), "{status}");
    p.remove("fail-b");
    p.build().ok().ran(&["wbs3[b]", "merged"]);
    assert_eq!(runs(&p), ["b"]);
    assert_eq!(p.read("merged.txt"), "dig\nbuild\npaint\n");
}

#[test]
fn matrices_expand_to_cross_products() {
    let p = Project::new(
        r#"
[tasks.review]
matrix = { expert = ["finance", "legal"], round = [1, 2] }
outputs = ["reviews/{{ expert }}-{{ round }}.md"]
command = "echo {{ expert }} {{ round }} > {outputs}"

[tasks.all]
inputs = ["review"]
outputs = ["all.md"]
command = "cat {inputs} > {outputs}"
"#,
    );
    p.build().ok().ran(&[
        "review[finance,1]",
        "review[finance,2]",
        "review[legal,1]",
        "review[legal,2]",
        "all",
    ]);
    assert_eq!(p.read("all.md"), "finance 1\nfinance 2\nlegal 1\nlegal 2\n");
    p.run(&["clean", "review[legal,2]", "--downstream", "-y"])
        .ok();
    assert!(!p.exists("all.md"));
    p.build().ok().ran(&["review[legal,2]", "all"]);
    p.run(&["clean", "review", "-y"]).ok();
    assert!(!p.exists("reviews/finance-1.md"));
}

#[test]
fn prompt_instances_see_their_item() {
    let server = Server::start();
    server.default_reply(openai_answer("ok"));
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"m\"\n[models.m]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"x\"\nstream = false\n[tasks.wbs3]\nforeach = {{ file = \"list.json\" }}\noutputs = [\"out/{{{{ key }}}}.md\"]\nprompt = \"Break down {{{{ item | tojson }}}} ({{{{ task }}}})\"\n",
        server.url
    ));
    p.write("list.json", "[\"alpha\", \"beta\"]");
    p.build().ok().ran(&["wbs3[0]", "wbs3[1]"]);
    let mut prompts: Vec<String> = server
        .requests()
        .iter()
        .map(|r| {
            r.json()["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    prompts.sort();
    assert_eq!(
        prompts,
        [
            "Break down \"alpha\" (wbs3[0])",
            "Break down \"beta\" (wbs3[1])"
        ]
    );
}

#[test]
fn an_empty_list_is_valid() {
    let p = project();
    p.write("items.json", "{\"work_packages\": []}");
    p.build().ok().ran(&["list", "merged"]);
    assert_eq!(p.read("merged.txt"), "");
}

#[test]
fn bad_lists_are_clear_errors() {
    for (list, message) in [
        (items(&[("a", "x"), ("a", "y")]), "key `a` is used twice"),
        (
            "{\"other\": []}".to_string(),
            "nothing at pointer `/work_packages`",
        ),
        ("{\"work_packages\": {}}".to_string(), "is not an array"),
        (items(&[("../x", "y")]), "cannot name a file"),
        ("not json".to_string(), "not JSON"),
    ] {
        let p = project();
        p.write("items.json", &list);
        let run = p.build();
        run.code(2)
            .stderr_has("task `wbs3`: list file wbs2.json")
            .stderr_has(message);
    }
}
