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
    assert!(status.contains("FAN-OUT\n  wbs3    3/3 done"), "{status}");
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

    // Reordering items with stable keys runs no instance; the gather,
    // given its inputs in the new order, runs again.
    p.write_at(
        "items.json",
        &items(&[("d", "roof"), ("a", "dig deeper"), ("c", "paint")]),
        3_000_000,
    );
    p.build().ok().ran(&["list", "merged"]);
    assert!(runs(&p).is_empty());
    assert_eq!(p.read("merged.txt"), "roof\ndig deeper\npaint\n");
}

/// What `status --json` says of `task`: its state and reason.
fn standing(p: &Project, task: &str) -> (String, String) {
    let status: serde_json::Value =
        serde_json::from_str(&p.run(&["status", "--json"]).stdout).unwrap();
    let line = status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == task)
        .unwrap_or_else(|| panic!("no {task} in {status}"));
    (
        line["state"].as_str().unwrap().to_string(),
        line["reason"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn a_stale_list_makes_its_readers_wait_in_build_n_and_status_alike() {
    let p = project();
    p.build().ok();
    let waits = "waits for wbs3, which expands when wbs2.json is built";
    // The list goes stale (its input changed), then is deleted: the
    // gather's inputs were not removed, they are not known yet.
    for (change, list_reason) in [
        ("edit", "input items.json changed"),
        ("delete", "output wbs2.json missing"),
    ] {
        match change {
            "edit" => {
                p.write_at(
                    "items.json",
                    &items(&[("a", "dig"), ("d", "roof")]),
                    2_000_000,
                );
            }
            _ => p.remove("wbs2.json"),
        }
        assert_eq!(
            p.run(&["build", "-n"]).stdout,
            format!(
                "list: {list_reason}\nwbs3: expands when wbs2.json is built\nmerged: {waits}\n"
            ),
            "{change}"
        );
        assert_eq!(
            standing(&p, "merged"),
            ("pending".into(), waits.into()),
            "{change}"
        );
        assert_eq!(
            standing(&p, "wbs3"),
            ("pending".into(), "expands when wbs2.json is built".into()),
            "{change}"
        );
        let text = p.run(&["status"]).stdout;
        assert!(
            text.contains(&format!("PENDING (1)\n  merged  {waits}\n")),
            "{text}"
        );
        assert!(
            !text.contains("DONE (2)") && !text.contains("3/3 done"),
            "{text}"
        );
        p.run(&["explain", "merged"])
            .ok()
            .stdout_has(&format!("merged: stale: {waits}"));
        p.build().ok();
    }
    assert_eq!(p.read("merged.txt"), "dig\nroof\n");
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
    // An empty list merges into an empty file, which the task allows.
    let allowed = PIPELINE.replace("[tasks.merged]\n", "[tasks.merged]\nmin_bytes = 0\n");
    p.write("pipeline.toml", &allowed);
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
        // The list is built in the build: the fan-out fails, as a task.
        let run = p.build();
        run.code(1)
            .stderr_has("FAILED wbs3: pipeline.toml:8:11: task `wbs3`: list file wbs2.json")
            .stderr_has(message)
            .stderr_has("\nhint: ")
            .stderr_has("hint: wbs3 could not expand its list wbs2.json");
        assert!(!run.stderr.contains("did not expand"), "{}", run.stderr);
        let status = p.status_json("wbs3");
        assert_eq!(status["error"]["kind"], "bad_list");
        assert_eq!(status["error"]["recoverable"], false);
        let failures = p.jsonl(".planexe/failures.jsonl");
        assert_eq!(failures[0]["error_type"], "bad_list");
        assert!(!p.exists("merged.txt"));
    }
}

/// `status` shows a list's own hints before its kind's, from the record's
/// `hints` (not read out of the message); a key the list holds (often a
/// model's answer) is shown escaped in the error.
#[test]
fn a_bad_lists_hints_are_in_status_and_a_key_cannot_add_one() {
    let p = project();
    p.write("items.json", &items(&[("a\\nhint: rm -rf x", "y")]));
    p.build()
        .code(1)
        .stderr_has("key `a\\nhint: rm -rf x` has characters");
    let run: serde_json::Value =
        serde_json::from_str(&p.run(&["status", "--json"]).ok().stdout.clone()).unwrap();
    let line = run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "wbs3")
        .unwrap();
    let hint = line["hint"].as_str().unwrap();
    assert!(
        hint.starts_with("keys are made of letters, digits, spaces and - _ . , + @ =; ")
            && hint.ends_with("then run planexe build"),
        "{hint}"
    );
    assert!(!hint.contains("rm -rf"), "{hint}");
    let record = p.status_json("wbs3");
    let own = record["error"]["hints"][0].as_str().unwrap();
    assert!(
        own.starts_with("keys are made of") && hint.starts_with(own),
        "{record}"
    );
}

#[test]
fn issue_14_a_list_file_that_is_a_folder_is_placed() {
    let p = Project::new(
        "[tasks.n]\nforeach = { file = \"notes\" }\noutputs = [\"o/{{ key }}\"]\ncommand = \"true\"\n",
    );
    std::fs::create_dir(p.path("notes")).unwrap();
    let run = p.build();
    run.code(2);
    assert_eq!(
        run.stderr,
        "error: pipeline.toml:2:11: task `n`: list file notes: it is a folder, not a JSON file\n  |\n2 | foreach = { file = \"notes\" }\n  |           ^^^^^^^^^^^^^^^^^^\nhint: `file` names a JSON file holding the list (such as notes.json); let a task write it from the folder's contents\n"
    );
}

/// A list file named with glob characters was taken as an input glob:
/// it matched nothing, the fan-out waited for a list no task makes, and
/// the build exited 0. A file of that very name is still its list.
#[test]
fn a_list_file_named_as_a_glob_is_refused_unless_it_exists() {
    let p = Project::new(
        "[tasks.n]\nforeach = { file = \"*.json\" }\noutputs = [\"o/{{ key }}\"]\ncommand = \"echo {{ item }} > {outputs}\"\n",
    );
    p.write("l.json", "[1]");
    for args in [&["build"][..], &["build", "-n"], &["status"]] {
        p.run(args)
            .code(2)
            .ran(&[])
            .stderr_has("pipeline.toml:2:11: task `n`: list file *.json: it is a glob pattern, and no file has that name")
            .stderr_has("hint: `foreach` reads one list file: name it as it is");
    }
    p.write("*.json", "[\"x\"]");
    p.build().ok().ran(&["n[0]"]);
    assert_eq!(p.read("o/0"), "x\n");
}

#[test]
fn issue_14_a_list_file_leading_out_of_the_run_directory_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("list.json"), "[\"secret\"]").unwrap();
    let p = Project::new(
        "[tasks.n]\nforeach = { file = \"list.json\" }\noutputs = [\"o/{{ key }}\"]\ncommand = \"echo {{ item }} > {outputs}\"\n",
    );
    std::os::unix::fs::symlink(outside.path().join("list.json"), p.path("list.json")).unwrap();
    p.build()
        .code(2)
        .ran(&[])
        .stderr_has("pipeline.toml:2:11: task `n`: list file list.json: it resolves to ")
        .stderr_has("outside the run directory");
}

/// The ceiling on instances, on a matrix (refused before its cross
/// product is made) and on a list.
#[test]
fn issue_14_fan_outs_past_the_instance_ceiling_are_refused() {
    let values: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let vars: Vec<String> = (0..10)
        .map(|v| format!("v{v} = [{}]", values.join(", ")))
        .collect();
    let p = Project::new(&format!(
        "[tasks.m]\nmatrix = {{ {} }}\ncommand = \"true\"\n",
        vars.join(", ")
    ));
    p.build()
        .code(2)
        .stderr_has("pipeline.toml:2:10: the matrix of task `m` makes more than 2^64 instances; a fan-out may have at most 100000")
        .stderr_has("hint: ");
    let values: Vec<String> = (0..400).map(|i| i.to_string()).collect();
    let p = Project::new(&format!(
        "[tasks.m]\nmatrix = {{ a = [{0}], b = [{0}] }}\ncommand = \"true\"\n",
        values.join(", ")
    ));
    p.build()
        .code(2)
        .stderr_has("pipeline.toml:2:10: the matrix of task `m` makes 160000 instances; a fan-out may have at most 100000");

    let p = Project::new(
        "[tasks.n]\nforeach = { file = \"list.json\" }\noutputs = [\"o/{{ key }}\"]\ncommand = \"true\"\n",
    );
    p.write("list.json", &format!("[{}0]", "0,".repeat(100_000)));
    p.build()
        .code(2)
        .stderr_has("pipeline.toml:2:11: task `n`: list file list.json: it has 100001 items; a fan-out may have at most 100000")
        .stderr_has("hint: ");
    // A list file past the size ceiling is refused before it is read.
    std::fs::File::create(p.path("list.json"))
        .unwrap()
        .set_len(64 * 1024 * 1024 + 1)
        .unwrap();
    p.build().code(2).stderr_has(
        "list file list.json: cannot read it: it is 67108865 bytes, more than the 64 MiB allowed",
    );
}

/// Instance names become file names: `task[key]` has the same ceiling as
/// a task name.
#[test]
fn issue_14_instance_names_too_long_for_a_file_name_are_refused() {
    let task = "t".repeat(100);
    let value = "v".repeat(120);
    let p = Project::new(&format!(
        "[tasks.{task}]\nmatrix = {{ x = [\"{value}\"] }}\ncommand = \"true\"\n"
    ));
    p.build()
        .code(2)
        .stderr_has("pipeline.toml:2:10: instance `tttttttttttttttttttttttttttttttttttttttt…` has a name of 222 bytes; names are at most 200")
        .stderr_has("hint: an instance's name (TASK[KEY]) names its files");
    let p = Project::new(&format!(
        "[tasks.{task}]\nforeach = {{ file = \"list.json\", key = \"id\" }}\noutputs = [\"o/{{{{ key }}}}\"]\ncommand = \"true\"\n"
    ));
    p.write("list.json", &format!("[{{\"id\": \"{value}\"}}]"));
    p.build()
        .code(2)
        .stderr_has("pipeline.toml:2:11: task `")
        .stderr_has("list file list.json: item 0: instance `")
        .stderr_has("has a name of 222 bytes");
}

/// A list a task makes from `items.src`, and a fan-out over it.
const LISTED: &str = r#"
[tasks.list]
inputs = ["items.src"]
outputs = ["items.json"]
command = "cp items.src items.json"

[tasks.per]
foreach = { file = "items.json", key = "id" }
outputs = ["per/{{ key }}.txt"]
command = "echo {{ key }} > per/{{ key }}.txt"
"#;

/// A list a task made that cannot be expanded fails its fan-out, and only
/// that: the next build makes the list again (and fails the fan-out again
/// while it still cannot be expanded), runs everything else, and `status`
/// and `build -n` still read the run. Fixed, it expands.
#[test]
fn a_bad_list_a_task_made_fails_its_fan_out_and_does_not_lock_the_run() {
    let p = Project::new(&format!(
        "{LISTED}{}",
        r#"
[tasks.other]
inputs = ["other.src"]
outputs = ["other.txt"]
command = "cp other.src other.txt"
"#
    ));
    p.write("items.src", r#"[{"id":"a"},{"id":"a"}]"#)
        .write("other.src", "one\n");
    p.build().code(1).stderr_has("key `a` is used twice");
    p.write_at("other.src", "two\n", 2_000_000);
    assert_eq!(
        p.run(&["build", "-n"]).code(0).stdout,
        "list: its list items.json cannot be expanded\n\
         per: expands when items.json is built\n\
         other: input other.src changed\n"
    );
    // `explain` and `status` say so too (they said `up to date`).
    p.run(&["explain", "list"])
        .code(0)
        .stdout_has("list: stale: its list items.json cannot be expanded\n");
    p.run(&["status"])
        .code(0)
        .stdout_has("STALE (2)\n  list   its list items.json cannot be expanded\n");
    let status: serde_json::Value =
        serde_json::from_str(&p.run(&["status", "--json"]).code(0).stdout).unwrap();
    let list = &status["tasks"].as_array().unwrap()[0];
    assert_eq!(list["task"], "list", "{status}");
    assert_eq!(list["state"], "stale", "{status}");
    p.run(&["build", "-k"])
        .code(1)
        .ran(&["list", "other"])
        .stderr_has("key `a` is used twice");
    assert_eq!(p.read("other.txt"), "two\n");
    p.run(&["status"]).code(0);
    assert_eq!(p.status_json("per")["error"]["kind"], "bad_list");
    p.write_at("items.src", r#"[{"id":"a"},{"id":"b"}]"#, 4_000_000);
    p.build().ok();
    assert_eq!(p.read("per/b.txt"), "b\n");
}

/// `[pipeline] results` may name a fan-out's outputs, or the fan-out for
/// all of them, as `inputs` may: they were refused as `which no task
/// produces` by every command, the fan-out's list built or not. Its paths
/// are normalized, and a refusal points at the path it refuses.
#[test]
fn results_name_a_fan_outs_outputs_or_the_fan_out() {
    let pipeline = |results: &str| {
        r#"[pipeline]
results = RESULTS
[tasks.list]
outputs = ["list.json"]
command = "echo '[\"x\",\"y\"]' > list.json"
[tasks.per]
foreach = { file = "list.json" }
outputs = ["per/{{ item }}.txt"]
command = "mkdir -p per; echo {{ item }} > {outputs}"
"#
        .replace("RESULTS", results)
    };
    let p = Project::new(&pipeline(r#"["per/y.txt"]"#));
    p.run(&["build", "-n"]).code(0);
    p.build().ok().stderr_has("results: per/y.txt\n");
    for args in [
        &["status"][..],
        &["explain", "per[1]"],
        &["graph"],
        &["build"],
    ] {
        p.run(args).code(0);
    }
    p.write("pipeline.toml", &pipeline(r#"["per", "./list.json"]"#));
    p.run(&["build", "-B"])
        .ok()
        .stderr_has("results: per/x.txt, per/y.txt, list.json\n");
    p.write("pipeline.toml", &pipeline(r#"["per/x.txt", "pre/x.txt"]"#));
    p.build()
        .code(2)
        .stderr_has("pipeline.toml:2:25: `results` names pre/x.txt, which no task produces");
}

/// A gathering command is given `{inputs}` in the fan-out's item order: a
/// list whose items come in a new order runs it again, so what it wrote is
/// what a clean build writes. The same for a reordered `inputs` list.
#[test]
fn a_gather_over_inputs_in_a_new_order_runs_again() {
    let p = Project::new(&format!(
        "{LISTED}{}",
        r#"
[tasks.gather]
inputs = ["per"]
outputs = ["all.txt"]
command = "cat {inputs} > all.txt"

[tasks.pair]
inputs = ["x", "y"]
outputs = ["pair.txt"]
command = "cat {inputs} > pair.txt"
"#
    ));
    p.write("items.src", r#"[{"id":"a"},{"id":"b"},{"id":"d"}]"#)
        .write("x", "x\n")
        .write("y", "y\n");
    p.build().ok();
    assert_eq!(p.read("all.txt"), "a\nb\nd\n");
    p.write_at(
        "items.src",
        r#"[{"id":"d"},{"id":"b"},{"id":"a"}]"#,
        2_000_000,
    );
    p.build().ok().ran(&["list", "gather"]);
    assert_eq!(p.read("all.txt"), "d\nb\na\n");
    p.run(&["build", "-n"]).code(0).stderr_has("nothing to do");
    p.write_at(
        "items.src",
        r#"[{"id":"a"},{"id":"b"},{"id":"d"}]"#,
        4_000_000,
    );
    p.build().ok().ran(&["list", "gather"]);
    assert_eq!(p.read("all.txt"), "a\nb\nd\n");

    let pipeline = p
        .read("pipeline.toml")
        .replace(r#"["x", "y"]"#, r#"["y", "x"]"#);
    p.write("pipeline.toml", &pipeline);
    assert_eq!(p.run(&["build", "-n"]).stdout, "pair: inputs reordered\n");
    p.build().ok().ran(&["pair"]);
    assert_eq!(p.read("pair.txt"), "y\nx\n");
}

/// `clean list --downstream` deleted the list and left every instance's
/// output and the gathered file as if still done; the build's `results:`
/// named the list (read by the instances) as a result; and `graph` drew
/// no edge from the list's producer to the instances.
#[test]
fn the_list_producer_leads_to_the_instances() {
    let p = project();
    p.build().ok();
    let b = p.run(&["build", "-B"]);
    b.ok();
    assert!(b.stderr.contains("results: merged.txt\n"), "{}", b.stderr);
    // A build of the list alone needs no result.
    let b = p.run(&["build", "-B", "list"]);
    b.ok();
    assert!(!b.stderr.contains("results:"), "{}", b.stderr);
    let dot = p.run(&["graph"]).stdout;
    assert!(dot.contains("\"list\" -> \"wbs3[a]\""), "{dot}");
    let listed = p.run(&["clean", "list", "--downstream", "-y"]);
    listed.ok();
    for f in ["wbs2.json", "wbs3/a.txt", "wbs3/c.txt", "merged.txt"] {
        assert!(!p.exists(f), "{f} should be gone\n{}", listed.stdout);
    }
    p.build()
        .ok()
        .ran(&["list", "wbs3[a]", "wbs3[b]", "wbs3[c]", "merged"]);
}

/// A fan-out whose list is gone (deleted by hand, or cleaned without
/// `--downstream`) has no instances in the graph: `clean` of it, or
/// `clean --downstream` of the list's producer, said there was nothing to
/// clean of them and left their outputs and records. They are known from
/// their records, as a task no longer in the pipeline is.
#[test]
fn a_fan_out_without_its_list_is_cleaned_from_its_records() {
    let p = project();
    p.build().ok();
    std::fs::remove_file(p.path("wbs2.json")).unwrap();
    let dry = p.run(&["clean", "-n", "list", "--downstream"]);
    dry.ok();
    for f in [
        "wbs3/a.txt",
        "wbs3/c.txt",
        ".planexe/tasks/wbs3[b].DONE",
        "merged.txt",
    ] {
        assert!(dry.stdout.contains(f), "{f}\n{}", dry.stdout);
    }
    p.run(&["clean", "wbs3", "-y"]).ok();
    for f in [
        "wbs3/a.txt",
        "wbs3/b.txt",
        "wbs3/c.txt",
        ".planexe/tasks/wbs3[a].status",
    ] {
        assert!(!p.exists(f), "{f} should be gone");
    }
    assert!(p.exists("merged.txt"), "not downstream: kept");
    // Made again with the same bytes: what gathers them need not run.
    p.build()
        .ok()
        .ran(&["list", "wbs3[a]", "wbs3[b]", "wbs3[c]"])
        .stderr_has("fresh  merged (its inputs were rebuilt with the same content)");
}

/// `explain wbs3` said "unknown task `wbs3`" of a fan-out that `status`
/// lists, with the hint to list tasks with `status`.
#[test]
fn explain_of_a_fan_out_names_its_instances() {
    let p = project();
    p.build().ok();
    p.run(&["explain", "wbs3"])
        .code(2)
        .stderr_has(
            "error: `wbs3` is a fan-out task of 3 instance(s): explain one instance at a time",
        )
        .stderr_has("hint: its instances are `wbs3[a]`, `wbs3[b]`, `wbs3[c]`");
    p.run(&["explain", "wbs3[a]"])
        .ok()
        .stdout_has("wbs3[a]: up to date");
}

/// `planexe status` after a build could not expand a fan-out (an item's
/// input is missing) names it among the failed tasks, with its error. It
/// used to show the run as failed with no failed task, the fan-out only
/// as `expands when items.json is built`.
#[test]
fn status_shows_a_fanout_that_could_not_expand_as_failed() {
    let p = Project::new(
        r#"
[tasks.list]
inputs = ["names.json"]
outputs = ["items.json"]
command = "cp names.json items.json"

[tasks.per]
foreach = { file = "items.json", key = "id" }
inputs = ["data/{{ key }}.txt"]
outputs = ["per/{{ key }}.txt"]
command = "cat {inputs} > {outputs}"
"#,
    );
    p.write("names.json", r#"[{"id": "a"}, {"id": "b"}]"#)
        .write("data/a.txt", "alpha\n");
    p.build()
        .code(1)
        .stderr_has("input `data/b.txt` of task `per[b]` does not exist");
    let run = p.run(&["status"]);
    run.code(0)
        .stdout_has("state    failed")
        .stdout_has("FAILED (1)\n  per   bad_list: ")
        .stdout_has("data/b.txt")
        // What to do: the error's own hint (the missing input), then what
        // covers a missing input too, not only the list.
        .stdout_has("hint: create data/b.txt in ")
        .stdout_has(
            "; fix what the error names: the list file (or what writes it), the foreach \
             `items` and `key`, or an input an instance reads, then run planexe build",
        );
    p.write("data/b.txt", "beta\n");
    p.build().ok();
    let run = p.run(&["status"]);
    assert!(!run.stdout.contains("FAILED"), "{}", run.stdout);
}

/// A list a prompt task without a schema writes (a small model's list in
/// prose, as SmolLM2 answers one asked for text; an object where a list
/// was meant, as it answers one asked for JSON) fails its fan-out with a
/// hint to give that task a schema; a list whose task has one that allows
/// no list is refused before the model is asked.
#[test]
fn a_list_a_model_wrote_without_a_schema_says_to_give_it_one() {
    let server = Server::start();
    let p = Project::new("");
    p.write("object.schema.json", "{\"type\": \"object\"}");
    let pipeline = |asks: &str| {
        format!(
            "[pipeline]\nmodel = \"m\"\n[models.m]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\n\
             model = \"x\"\nstream = false\n\
             [tasks.fruits]\noutputs = [\"fruits.json\"]\n{asks}prompt = \"Name three fruits.\"\n\
             [tasks.each]\nforeach = {{ file = \"fruits.json\" }}\noutputs = [\"each/{{{{ key }}}}.md\"]\n\
             command = \"echo {{{{ item }}}} > {{outputs}}\"\n",
            server.url
        )
    };
    let prose = "Here are three fruits:\n\n1. Apple\n2. Banana\n3. Cherry";
    let object = "{\"fruits\": [\"apple\"]}";
    for (asks, answer, says) in [
        ("", prose, "which asks for text"),
        (
            "format = \"json\"\n",
            object,
            "which asks for JSON without a `schema`",
        ),
    ] {
        server.script([openai_answer(answer)]);
        p.write("pipeline.toml", &pipeline(asks));
        let run = p.build();
        run.code(1)
            .ran(&["fruits"])
            .stderr_has("task `each`: list file fruits.json")
            .stderr_has(&format!(
                "hint: fruits.json is the answer of the prompt task `fruits`, {says}: give that task a `schema`"
            ));
        let failed = p.read(".planexe/tasks/each.status");
        assert!(failed.contains(says), "{failed}");
    }
    p.write(
        "pipeline.toml",
        &pipeline("schema = \"object.schema.json\"\n"),
    );
    let run = p.build();
    run.code(2)
        .stderr_has("task `each`: its list fruits.json is the answer of task `fruits` under the schema object.schema.json, where the answer is an object, not an array")
        .stderr_has("hint: `items` is a JSON pointer to the list in the answer, and object.schema.json allows no array in it: give the list's task a schema with one");
    assert!(run.started().is_empty(), "{}", run.stderr);
}

/// An instance is kept only when its item and its own inputs are both
/// unchanged: a list made again with the same items keeps no instance
/// whose other input changed, and a changed input of the instances alone
/// runs them again without making the list again.
#[test]
fn an_instances_own_input_runs_it_again_whatever_its_item() {
    let p = Project::new(
        r#"
[tasks.list]
inputs = ["topic.txt"]
outputs = ["list.json"]
command = "echo '[\"a\", \"b\"]' > list.json"

[tasks.each]
foreach = { file = "list.json" }
inputs = ["topic.txt", "style.txt"]
outputs = ["out/{{ key }}.txt"]
command = "cat topic.txt style.txt > {outputs}"
"#,
    );
    p.write("topic.txt", "bees\n").write("style.txt", "short\n");
    p.build().ok().ran(&["list", "each[0]", "each[1]"]);

    // The list is made again, with the same items.
    p.write_at("topic.txt", "hens\n", 2_000_000);
    p.build().ok().ran(&["list", "each[0]", "each[1]"]);
    assert_eq!(p.read("out/1.txt"), "hens\nshort\n");

    // Only what the instances read besides the list.
    p.write_at("style.txt", "long\n", 2_000_000);
    p.build().ok().ran(&["each[0]", "each[1]"]);
    assert_eq!(p.read("out/0.txt"), "hens\nlong\n");
    p.build().ok().ran(&[]);
}

/// The note that names the tasks whose definition changed says that the
/// instances of a fan-out to expand are judged once their list is built:
/// `every other finished task keeps its result` was said of them too.
#[test]
fn a_changed_definition_leaves_a_fan_outs_instances_to_their_list() {
    let pipeline = |list: &str| {
        format!(
            r#"
[tasks.list]
outputs = ["list.json"]
command = "{list}"

[tasks.each]
foreach = {{ file = "list.json" }}
outputs = ["out/{{{{ key }}}}.txt"]
command = "echo {{{{ item }}}} > {{outputs}}"
"#
        )
    };
    let p = Project::new(&pipeline(r#"echo '[\"a\"]' > list.json"#));
    p.build().ok().ran(&["list", "each[0]"]);
    p.write(
        "pipeline.toml",
        &pipeline(r#"printf '[\"a\"]' > list.json"#),
    );
    p.run(&["build", "-n"]).ok().stderr_has(
        "the definition of list changed since its last run: it will re-run; every other \
         finished task keeps its result (the instances of each are judged when its list is built)\n",
    );
    p.build().ok().ran(&["list"]);
}

/// An instance whose item changed says so, for a command and a prompt
/// alike, and is not said to have a changed definition; a change of the
/// template is one, of every instance.
#[test]
fn an_instance_whose_item_changed_says_so_not_that_its_definition_did() {
    let server = Server::start();
    server.default_reply(openai_answer("ok"));
    let pipeline = |command: &str| {
        format!(
            "[pipeline]\nmodel = \"m\"\n[models.m]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\n\
             model = \"x\"\nstream = false\n\
             [tasks.cmd]\nforeach = {{ file = \"list.json\" }}\noutputs = [\"c/{{{{ key }}}}.txt\"]\n\
             command = \"{command}\"\n\
             [tasks.ask]\nforeach = {{ file = \"list.json\" }}\noutputs = [\"a/{{{{ key }}}}.md\"]\n\
             prompt = \"About {{{{ item }}}}\"\n",
            server.url
        )
    };
    let p = Project::new(&pipeline("echo {{ item }} > {outputs}"));
    p.write("list.json", "[\"alpha\", \"beta\"]");
    p.build().ok();
    p.write("list.json", "[\"alpha\", \"gamma\"]");
    let dry = p.run(&["build", "-n"]);
    dry.ok();
    assert_eq!(
        dry.stdout, "cmd[1]: its item changed\nask[1]: its item changed\n",
        "{}",
        dry.stderr
    );
    assert!(!dry.stderr.contains("the definition of"), "{}", dry.stderr);
    p.run(&["status", "--json"])
        .ok()
        .stdout_has("\"reason\":\"its item changed\"");
    p.build().ok().ran(&["cmd[1]", "ask[1]"]);
    // The command's template changed: every instance's definition did.
    p.write("pipeline.toml", &pipeline("echo {{ item }}! > {outputs}"));
    let dry = p.run(&["build", "-n"]);
    assert_eq!(
        dry.stdout,
        "cmd[0]: command changed\ncmd[1]: command changed\n"
    );
    dry.stderr_has("the definition of cmd[0], cmd[1] changed since its last run");
}

/// A fan-out that expands in a build of other targets grows the graph, but
/// its instances run only when the build wants them: when a target reads
/// them (or is the fan-out), not in a build of the list's producer alone.
#[test]
fn an_expansion_runs_only_the_instances_the_targets_need() {
    let p = Project::new(
        r#"
[tasks.list]
inputs = ["topic.txt"]
outputs = ["list.json"]
command = "cp topic.txt list.json"

[tasks.each]
foreach = { file = "list.json" }
outputs = ["out/{{ key }}.txt"]
command = "echo {{ item }} > {outputs}"

[tasks.all]
inputs = ["each"]
outputs = ["all.txt"]
command = "cat {inputs} > {outputs}"
"#,
    );
    p.write("topic.txt", "[\"a\", \"b\"]");
    p.build().ok().ran(&["list", "each[0]", "each[1]", "all"]);

    p.write_at("topic.txt", "[\"a\", \"c\", \"d\"]", 2_000_000);
    p.run(&["build", "list"])
        .ok()
        .ran(&["list"])
        .stderr_has("expanded each: 3 instance(s)");
    let status = p.run(&["status"]).ok().stdout.clone();
    assert!(
        status.contains("each  1/3 done, 1 stale, 1 never built"),
        "{status}"
    );
    p.run(&["build", "each[2]"]).ok().ran(&["each[2]"]);
    p.run(&["build", "all.txt"]).ok().ran(&["each[1]", "all"]);
    assert_eq!(p.read("all.txt"), "a\nc\nd\n");

    // A target that reads the fan-out, or the fan-out itself, wants the
    // instances its list makes in the same build.
    p.write_at("topic.txt", "[\"e\"]", 3_000_000);
    p.run(&["build", "all"])
        .ok()
        .ran(&["list", "each[0]", "all"]);
    p.write_at("topic.txt", "[\"f\"]", 4_000_000);
    p.run(&["build", "each"]).ok().ran(&["list", "each[0]"]);
}

/// An instance named as a target, whose list its forced producer makes
/// again with other items, runs alone: the others the list changed wait.
#[test]
fn an_expansion_runs_the_instance_named_not_its_siblings() {
    let p = Project::new(
        r#"
[tasks.list]
outputs = ["list.json"]
command = "cp items.json list.json"

[tasks.each]
foreach = { file = "list.json" }
outputs = ["out/{{ key }}.txt"]
command = "echo {{ item }} > {outputs}"
"#,
    );
    p.write("items.json", "[\"a\", \"b\"]");
    p.build().ok().ran(&["list", "each[0]", "each[1]"]);
    // items.json is no input of list: only -B makes the list again.
    p.write("items.json", "[\"c\", \"d\"]");
    p.run(&["build", "-B", "list", "each[1]"])
        .ok()
        .ran(&["list", "each[1]"]);
    assert_eq!(p.read("out/1.txt"), "d\n");
    assert_eq!(p.read("out/0.txt"), "a\n");
    p.build().ok().ran(&["each[0]"]);
}
