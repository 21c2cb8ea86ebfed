//! `planexe new` (one pipeline, many runs) and `planexe init` (a starter
//! pipeline): the real binary in temp directories.

use std::process::Stdio;

use crate::harness::*;

/// A command-only pipeline whose task reads the run's plan.
const UPPER: &str = r#"
[pipeline]
name = "upper"

[tasks.upper]
inputs = ["plan.txt"]
outputs = ["upper.txt"]
command = "tr a-z A-Z < plan.txt > upper.txt"
"#;

/// Runs planexe with `args` in `rel`, a folder of the project.
fn run_in(p: &Project, rel: &str, args: &[&str]) -> Run {
    let output = p
        .command(args)
        .current_dir(p.path(rel))
        .stdin(Stdio::null())
        .output()
        .expect("run planexe");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// An empty temp folder.
fn empty() -> Project {
    Project {
        dir: tempfile::tempdir().expect("temp dir"),
    }
}

#[test]
fn new_with_plan_text_seeds_the_run_and_records_the_pipeline() {
    let p = Project::new(UPPER);
    let made = p.run(&["new", "runs/one", "--plan", "Build a shed."]);
    made.ok()
        .stderr_has("planexe build -C runs/one")
        .stderr_has("runs/one/upper.txt");
    // No prompt task asks a replay model: no word of another model.
    assert!(!made.stderr.contains("--model"), "{}", made.stderr);
    assert_eq!(p.read("runs/one/plan.txt"), "Build a shed.\n");
    let pipeline = std::fs::canonicalize(p.path("pipeline.toml")).unwrap();
    assert_eq!(
        p.read("runs/one/.planexe/pipeline"),
        format!("{}\n", pipeline.display())
    );
    // When, for which pipeline and which plan the run was made.
    let origin: serde_json::Value =
        serde_json::from_str(&p.read("runs/one/.planexe/origin.json")).unwrap();
    assert_eq!(origin["pipeline"], pipeline.display().to_string());
    assert_eq!(
        origin["plan_blake3"],
        blake3::hash(b"Build a shed.\n").to_hex().to_string()
    );
    assert!(origin["created_at"].as_str().unwrap().ends_with('Z'));
    // The command it printed builds the run.
    p.run(&["build", "-C", "runs/one"]).ok().ran(&["upper"]);
    assert_eq!(p.read("runs/one/upper.txt"), "BUILD A SHED.\n");
}

#[test]
fn new_with_plan_file_copies_it() {
    let p = Project::new(UPPER);
    p.write("briefs/shed.md", "# Shed\n\nBuild it by May.");
    p.run(&["new", "runs/shed", "--plan-file", "briefs/shed.md"])
        .ok();
    assert_eq!(p.read("runs/shed/plan.txt"), "# Shed\n\nBuild it by May.");
}

#[test]
fn a_plain_build_in_the_run_directory_uses_the_recorded_pipeline() {
    // No pipeline.toml anywhere: only the file named by -f.
    let p = empty();
    p.write("pipelines/upper.toml", UPPER);
    p.run(&[
        "new",
        "runs/x",
        "-f",
        "pipelines/upper.toml",
        "--plan",
        "hello",
    ])
    .ok();
    run_in(&p, "runs/x", &["build", "-n"])
        .ok()
        .stdout_has("upper: never built");
    run_in(&p, "runs/x", &["build"]).ok().ran(&["upper"]);
    assert_eq!(p.read("runs/x/upper.txt"), "HELLO\n");
}

#[test]
fn two_runs_of_one_pipeline_stay_independent() {
    let p = Project::new(UPPER);
    p.run(&["new", "runs/a", "--plan", "first"]).ok();
    p.run(&["new", "runs/b", "--plan", "second"]).ok();
    p.run(&["build", "-C", "runs/a"]).ok().ran(&["upper"]);
    assert_eq!(p.read("runs/a/upper.txt"), "FIRST\n");
    assert!(!p.exists("runs/b/upper.txt"));
    p.run(&["build", "-C", "runs/b", "-n"])
        .ok()
        .stdout_has("upper: never built");
    p.run(&["build", "-C", "runs/a", "-n"])
        .ok()
        .stderr_has("up to date");
    p.run(&["build", "-C", "runs/b"]).ok().ran(&["upper"]);
    assert_eq!(p.read("runs/b/upper.txt"), "SECOND\n");
    assert_eq!(p.read("runs/a/upper.txt"), "FIRST\n");
}

#[test]
fn new_accepts_an_existing_empty_folder() {
    let p = Project::new(UPPER);
    std::fs::create_dir_all(p.path("runs/empty")).unwrap();
    p.run(&["new", "runs/empty", "--plan", "x"]).ok();
    assert_eq!(p.read("runs/empty/plan.txt"), "x\n");
}

/// A folder made by hand, not empty, holds no run: it is said so, with
/// what it holds, and not offered to be resumed (it used to be: `choose
/// another name, or planexe build -C runs/old to resume it`).
#[test]
fn new_refuses_a_folder_that_is_not_empty() {
    let p = Project::new(UPPER);
    p.write("runs/old/notes.md", "mine");
    p.run(&["new", "runs/old", "--plan", "x"])
        .code(2)
        .stderr_has(
            "error: run directory runs/old already exists and is not empty, but holds no planexe run: notes.md\n",
        )
        .stderr_has(
            "hint: a new run is made only in a folder that is missing or empty: choose another name, or move what runs/old holds away; to build in it as it is, put plan.txt in it and run `planexe build -C runs/old`",
        );
    assert!(!p.exists("runs/old/plan.txt"));
    assert!(!p.exists("runs/old/.planexe"));
}

/// A pipeline copied into a folder by hand, and a `.planexe/` made by
/// hand (or left half copied) with no record of a run in it: no run.
#[test]
fn new_says_a_hand_made_run_folder_holds_no_run() {
    let p = Project::new(UPPER);
    p.write("runs/copied/pipeline.toml", UPPER);
    let copied = p.run(&["new", "runs/copied", "--plan", "x"]);
    copied.code(2).stderr_has(
        "runs/copied already exists and is not empty, but holds no planexe run: pipeline.toml",
    );
    assert!(!copied.stderr.contains("resume"), "{}", copied.stderr);
    std::fs::create_dir_all(p.path("runs/partial/.planexe/logs")).unwrap();
    let partial = p.run(&["new", "runs/partial", "--plan", "x"]);
    partial.code(2).stderr_has(
        "runs/partial already exists and is not empty, but holds no planexe run: .planexe/ (with no record of a run)",
    );
    assert!(!partial.stderr.contains("resume"), "{}", partial.stderr);
    // Built as it is, it is a run.
    p.write("runs/copied/plan.txt", "by hand\n");
    p.run(&["build", "-C", "runs/copied"]).ok().ran(&["upper"]);
    p.run(&["new", "runs/copied", "--plan", "x"])
        .code(2)
        .stderr_has("error: run directory runs/copied already exists and holds a planexe run\n")
        .stderr_has("hint: choose another name, or `planexe build -C runs/copied` to resume it");
}

#[test]
fn new_refuses_a_plan_file_that_is_missing_or_not_text() {
    let p = Project::new(UPPER);
    p.run(&["new", "runs/a", "--plan-file", "nope.md"])
        .code(2)
        .stderr_has("cannot use nope.md as the plan: it does not exist")
        .stderr_has("hint:");
    std::fs::create_dir_all(p.path("folder")).unwrap();
    p.run(&["new", "runs/a", "--plan-file", "folder"])
        .code(2)
        .stderr_has("it is a folder");
    std::fs::write(p.path("binary"), [0xff, 0xfe, 0x00, 0x41]).unwrap();
    p.run(&["new", "runs/a", "--plan-file", "binary"])
        .code(2)
        .stderr_has("it is not UTF-8 text");
    assert!(!p.exists("runs"));
}

#[test]
fn new_refuses_an_empty_plan() {
    let p = Project::new(UPPER);
    p.run(&["new", "runs/a", "--plan", " \n "])
        .code(2)
        .stderr_has("the plan (--plan) is empty")
        .stderr_has("hint:");
    p.write("blank.txt", "\n\n");
    p.run(&["new", "runs/a", "--plan-file", "blank.txt"])
        .code(2)
        .stderr_has("the plan (blank.txt) is empty");
    assert!(!p.exists("runs"));
}

#[test]
fn new_needs_exactly_one_of_plan_and_plan_file() {
    let p = Project::new(UPPER);
    p.write("brief.md", "x");
    p.run(&["new", "runs/a"]).code(2).stderr_has("--plan");
    p.run(&["new", "runs/a", "--plan", "x", "--plan-file", "brief.md"])
        .code(2)
        .stderr_has("cannot be used with");
    assert!(!p.exists("runs"));
}

#[test]
fn new_refuses_a_broken_pipeline_and_makes_nothing() {
    let p = Project::new("[tasks.a]\ninputs = [\"plan.txt\"]\noutputs = [\"o\"]\ncommand = 3\n");
    p.run(&["new", "runs/a", "--plan", "x"])
        .code(2)
        .stderr_has("pipeline.toml:4:11");
    assert!(!p.exists("runs"));
    // Broken past parsing (found while resolving, in the new folder): the
    // folders it made are removed again.
    p.write(
        "pipeline.toml",
        "[tasks.a]\ninputs = [\"plan.txt\"]\noutputs = [\"o\"]\ncommand = \"true\"\nafter = [\"zz\"]\n",
    );
    p.run(&["new", "runs/deep/a", "--plan", "x"])
        .code(2)
        .stderr_has("pipeline.toml:5:10")
        .stderr_has("unknown task `zz`");
    assert!(!p.exists("runs"));
}

#[test]
fn new_refuses_a_missing_pipeline() {
    let p = empty();
    p.run(&["new", "runs/a", "--plan", "x"])
        .code(2)
        .stderr_has("pipeline file pipeline.toml not found");
    assert!(!p.exists("runs"));
}

#[test]
fn new_warns_when_no_task_reads_the_plan() {
    let p = Project::new("[tasks.a]\noutputs = [\"o\"]\ncommand = \"echo > o\"\n");
    p.run(&["new", "runs/a", "--plan", "x"])
        .ok()
        .stderr_has("warning: no task of")
        .stderr_has("reads plan.txt");
    let quiet = Project::new(UPPER);
    let run = quiet.run(&["new", "runs/a", "--plan", "x"]);
    assert!(!run.ok().stderr.contains("warning"), "{}", run.stderr);
}

/// A pipeline that reads the plan, a note and the files of a folder no
/// task writes, and goes through a `foreach` list no task writes.
const WITH_SOURCES: &str = r#"
[tasks.brief]
inputs = ["plan.txt", "notes/budget.md", "data/*.csv"]
outputs = ["brief.txt"]
command = "cat {inputs} > brief.txt"

[tasks.per]
foreach = { file = "items.json" }
outputs = ["per/{{ item }}.txt"]
command = "echo {{ item }} > per/{{ item }}.txt"
"#;

#[test]
fn new_with_inputs_copies_the_sources_a_pipeline_reads() {
    let p = Project::new(WITH_SOURCES);
    p.write("notes/budget.md", "200 euros\n");
    p.write("data/a.csv", "a,1\n");
    p.write("data/b.csv", "b,2\n");
    p.write("items.json", r#"["x", "y"]"#);
    // Without them the run is refused, undone, and told of --input.
    p.run(&["new", "runs/a", "--plan", "A shed."])
        .code(2)
        .stderr_has("input `notes/budget.md` of task `brief` does not exist")
        .stderr_has("again with `--input notes/budget.md`");
    assert!(!p.exists("runs"));
    let made = p.run(&[
        "new",
        "runs/a",
        "--plan",
        "A shed.",
        "--input",
        "notes/budget.md",
        "--input",
        "./data/a.csv",
        "data/b.csv",
        "items.json",
        "--input",
        "notes/budget.md",
    ]);
    made.ok();
    assert!(!made.stderr.contains("warning"), "{}", made.stderr);
    assert_eq!(p.read("runs/a/notes/budget.md"), "200 euros\n");
    assert_eq!(p.read("runs/a/data/b.csv"), "b,2\n");
    // The files are the run's own: an edit here does not reach it.
    p.write("notes/budget.md", "changed\n");
    p.run(&["build", "-C", "runs/a"])
        .ok()
        .ran(&["brief", "per[0]", "per[1]"]);
    assert_eq!(p.read("runs/a/brief.txt"), "A shed.\n200 euros\na,1\nb,2\n");
    assert_eq!(p.read("runs/a/per/y.txt"), "y\n");
}

/// A script copied with `--input` keeps its mode: a task runs it by its
/// path, as it ran beside the pipeline; a read-only note stays read-only.
#[test]
fn new_with_inputs_keeps_each_file_s_permission_bits() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new(
        "[tasks.go]\ninputs = [\"plan.txt\", \"tools/go.sh\", \"notes/fixed.md\"]\n\
         outputs = [\"out.txt\"]\ncommand = \"./tools/go.sh > out.txt\"\n",
    );
    p.write("tools/go.sh", "#!/bin/sh\necho ran\n");
    p.write("notes/fixed.md", "as is\n");
    let mode = |path: &str, mode: u32| {
        std::fs::set_permissions(p.path(path), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    mode("tools/go.sh", 0o750);
    mode("notes/fixed.md", 0o444);
    p.run(&[
        "new",
        "runs/a",
        "--plan",
        "x",
        "--input",
        "tools/go.sh",
        "notes/fixed.md",
    ])
    .ok();
    let got = |path: &str| {
        std::fs::metadata(p.path(path))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(got("runs/a/tools/go.sh"), 0o750);
    assert_eq!(got("runs/a/notes/fixed.md"), 0o444);
    p.run(&["build", "-C", "runs/a"]).ok().ran(&["go"]);
    assert_eq!(p.read("runs/a/out.txt"), "ran\n");
}

#[test]
fn new_refuses_an_input_it_cannot_copy_and_makes_nothing() {
    let p = Project::new(WITH_SOURCES);
    p.write("notes/budget.md", "200 euros\n");
    p.write("items.json", "[]");
    p.write("brief.txt", "a task's output\n");
    let base = [
        "new",
        "runs/a",
        "--plan",
        "x",
        "--input",
        "notes/budget.md",
        "--input",
        "items.json",
    ];
    for (input, says) in [
        (
            "nope.md",
            "cannot copy nope.md into the new run: it does not exist",
        ),
        (
            "notes",
            "cannot copy notes into the new run: it is a folder",
        ),
        (
            "../outside.md",
            "holds `..`; files stay inside the run directory",
        ),
        (
            "/etc/hostname",
            "cannot copy /etc/hostname into the new run",
        ),
        (".planexe/x", "inside .planexe/"),
        ("plan.txt", "plan.txt is the plan"),
        ("brief.txt", "task `brief` writes it"),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(["--input", input]).collect();
        p.run(&args).code(2).stderr_has(says).stderr_has("hint:");
        assert!(!p.exists("runs"), "{input}");
    }
}

#[test]
fn new_warns_of_an_input_no_task_reads() {
    let p = Project::new(UPPER);
    p.write("notes.md", "n\n");
    p.run(&["new", "runs/a", "--plan", "x", "--input", "notes.md"])
        .ok()
        .stderr_has("warning: no task of")
        .stderr_has("reads notes.md (copied into the run with --input)");
    assert_eq!(p.read("runs/a/notes.md"), "n\n");
}

/// A file a fan-out's instance would write is refused whether its list is
/// still to be made (the fan-out a placeholder, its outputs only their
/// template) or given (its instances known): an instance of another item
/// would overwrite it all the same. A file one would read is not warned
/// about, in both cases.
#[test]
fn new_judges_the_files_of_a_fan_out_by_its_templates() {
    for (pipeline, list) in [
        (format!("{TOPICS}{PER_TOPIC}"), &[][..]),
        (PER_TOPIC.to_string(), &["topics.json"][..]),
    ] {
        let p = Project::new(&pipeline);
        p.write("topics.json", r#"["a"]"#);
        p.write("notes/a.md", "a\n");
        p.write("notes/b.md", "b\n");
        p.write("out/b.md", "mine\n");
        let mut args = vec!["new", "runs/a", "--plan", "x", "--input", "notes/a.md"];
        args.extend(list.iter().flat_map(|l| ["--input", *l]));
        let refused: Vec<&str> = args
            .iter()
            .copied()
            .chain(["--input", "out/b.md"])
            .collect();
        p.run(&refused)
            .code(2)
            .stderr_has("cannot seed the run with out/b.md: fan-out `per` may write it")
            .stderr_has("`out/{{ item }}.md`")
            .stderr_has("hint:");
        assert!(!p.exists("runs"), "{pipeline}");
        let read: Vec<&str> = args
            .iter()
            .copied()
            .chain(["--input", "notes/b.md"])
            .collect();
        let made = p.run(&read);
        made.ok();
        assert!(
            !made.stderr.contains("warning"),
            "{pipeline}\n{}",
            made.stderr
        );
        assert_eq!(p.read("runs/a/notes/b.md"), "b\n");
    }
}

const INIT_FILES: [&str; 4] = [
    "pipeline.toml",
    "prompts/summary.md",
    "schemas/steps.json",
    "plan.txt",
];

#[test]
fn init_writes_a_pipeline_that_builds_as_it_stands() {
    let p = empty();
    let run = p.run(&["init"]);
    run.ok()
        .stderr_has("planexe build -n")
        .stderr_has("planexe status");
    for file in INIT_FILES {
        assert!(p.exists(file), "{file}");
        assert!(run.stdout.contains(file), "{}", run.stdout);
    }
    let schema: serde_json::Value = serde_json::from_str(&p.read("schemas/steps.json")).unwrap();
    assert!(schema["properties"]["steps"]["maxItems"].is_u64());
    assert!(schema["properties"]["steps"]["items"]["maxLength"].is_u64());
    // A dry run needs no model server; it warns about nothing.
    let dry = p.run(&["build", "-n"]);
    dry.ok()
        .stdout_has("stats: never built")
        .stdout_has("summary: never built")
        .stdout_has("steps: never built");
    assert!(!dry.stderr.contains("warning"), "{}", dry.stderr);
    // The command task builds alone.
    p.run(&["build", "stats"]).ok().ran(&["stats"]);
    assert_eq!(p.read("out/stats.txt"), "lines: 3\nwords: 35\n");
    p.run(&["build", "stats"]).ok().ran(&[]);
    // Everything builds offline from the recorded answers: no server, no
    // key, one replayed call per prompt task.
    p.build()
        .ok()
        .ran(&["summary", "steps"])
        .stderr_has("results: out/stats.txt, out/steps.json");
    let steps: serde_json::Value = serde_json::from_str(&p.read("out/steps.json")).unwrap();
    assert!(
        steps["steps"].as_array().is_some_and(|s| !s.is_empty()),
        "{steps}"
    );
    let usage = p.read(".planexe/usage.jsonl");
    assert_eq!(usage.lines().count(), 2, "{usage}");
    assert!(
        usage.lines().all(|l| l.contains("\"replayed\":true")),
        "{usage}"
    );
    p.build().ok().ran(&[]);
}

#[test]
fn init_into_a_named_folder() {
    let p = empty();
    p.run(&["init", "starter"])
        .ok()
        .stdout_has("starter/pipeline.toml")
        .stderr_has("planexe build -C starter -n");
    for file in INIT_FILES {
        assert!(p.exists(&format!("starter/{file}")), "{file}");
    }
    p.run(&["build", "-C", "starter", "-n"]).ok();
    p.run(&["build", "-C", "starter", "stats"])
        .ok()
        .ran(&["stats"]);
}

#[test]
fn init_overwrites_nothing() {
    let p = empty();
    p.write("plan.txt", "my own plan\n");
    p.run(&["init"])
        .code(2)
        .stderr_has("plan.txt already exists")
        .stderr_has("wrote nothing")
        .stderr_has("hint:");
    assert_eq!(p.read("plan.txt"), "my own plan\n");
    for file in &INIT_FILES[..3] {
        assert!(!p.exists(file), "{file}");
    }
    // After a full init, a second one refuses, naming every file.
    let q = empty();
    q.run(&["init"]).ok();
    let again = q.run(&["init"]);
    again.code(2);
    for file in INIT_FILES {
        again.stderr_has(file);
    }
}

#[test]
fn a_run_of_the_init_pipeline() {
    // `init`, then `new` with its pipeline: the run reads its own plan.
    let p = empty();
    p.run(&["init"]).ok();
    // Its prompt tasks ask `recorded`, whose answers were recorded for
    // init's own plan: `new` names the live model that build needs.
    p.run(&["new", "runs/two", "--plan", "one two three"])
        .ok()
        .stderr_has("runs/two/out/steps.json")
        .stderr_has("model `recorded` answers prompts only from answers recorded for another plan")
        .stderr_has("planexe build -C runs/two --model local");
    p.run(&["build", "-C", "runs/two", "stats"])
        .ok()
        .ran(&["stats"]);
    assert_eq!(p.read("runs/two/out/stats.txt"), "lines: 1\nwords: 3\n");
    assert!(!p.exists("out/stats.txt"));
    // And indeed: replayed, the new plan's prompts miss.
    p.run(&["build", "-C", "runs/two"])
        .code(1)
        .stderr_has("replay_miss");
    // A run of the plan the answers were recorded for is answered: no note
    // sends its maker to a live model (it did, whatever the plan).
    let same = p.run(&["new", "runs/same", "--plan-file", "plan.txt"]);
    same.ok();
    assert!(
        !same.stderr.contains("recorded for another plan"),
        "{}",
        same.stderr
    );
    p.run(&["build", "-C", "runs/same"]).ok();
}

#[test]
fn new_and_init_refuse_options_they_do_not_use() {
    let p = Project::new(UPPER);
    p.run(&["-C", "runs", "new", "a", "--plan", "x"])
        .code(2)
        .stderr_has("not -C");
    p.run(&["init", "-f", "other.toml"])
        .code(2)
        .stderr_has("-f is not used");
    p.run(&["-C", "one", "init", "two"])
        .code(2)
        .stderr_has("both DIR and -C DIR");
    assert!(!p.exists("runs") && !p.exists("one") && !p.exists("two"));
}
