//! `clean`, `touch` and `status`.

use crate::harness::*;

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

const CHAIN: &str = r#"
[tasks.a]
inputs = ["src.txt"]
outputs = ["a.txt"]
command = "cat src.txt > a.txt"
[tasks.b]
inputs = ["a.txt"]
outputs = ["b.txt"]
command = "cat a.txt > b.txt; echo b"
[tasks.c]
inputs = ["b.txt"]
outputs = ["c.txt"]
command = "cat b.txt > c.txt; echo c"
[tasks.other]
outputs = ["other.txt"]
command = "echo o > other.txt"
"#;

fn chain() -> Project {
    let p = Project::new(CHAIN);
    p.write("src.txt", "s");
    p.build().ok();
    p
}

#[test]
fn clean_downstream_deletes_exactly_the_listed_files() {
    let p = chain();
    let listed = p.run(&["clean", "b", "--downstream", "--dry-run"]);
    listed.ok();
    let expected = vec![
        "b.txt",
        ".planexe/tasks/b.status",
        ".planexe/tasks/b.DONE",
        ".planexe/logs/b.log",
        "c.txt",
        ".planexe/tasks/c.status",
        ".planexe/tasks/c.DONE",
        ".planexe/logs/c.log",
    ];
    assert_eq!(lines(&listed.stdout), expected);
    assert!(p.exists("b.txt"), "dry run deletes nothing");

    let run = p.run(&["clean", "b", "--downstream", "-y"]);
    run.ok();
    assert_eq!(lines(&run.stdout), expected);
    // The up-to-date certificate goes too, counted, not listed.
    for f in expected.iter().chain(&[".planexe/uptodate"]) {
        assert!(!p.exists(f), "{f} should be gone");
    }
    for f in ["src.txt", "a.txt", "other.txt", ".planexe/tasks/a.DONE"] {
        assert!(p.exists(f), "{f} should remain");
    }
    p.build().ok().ran(&["b", "c"]);
}

/// Whether the kernel grants write leases on files in `dir`.
fn leases_work(dir: &std::path::Path) -> bool {
    use std::os::fd::AsRawFd;
    let probe = dir.join("lease-probe");
    let file = std::fs::File::create(&probe).unwrap();
    // SAFETY: fcntl on a descriptor we own; F_SETLEASE takes an int.
    let ok = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) } == 0;
    drop(file);
    std::fs::remove_file(&probe).unwrap();
    ok
}

/// A task run again rewrites its sidecar over the file the last rewrite
/// replaced (its spare), swapped in: no file is made or deleted for its
/// record, `.DONE` stays a second name of the sidecar, and `clean` deletes
/// the spare with the rest.
#[test]
fn a_rerun_rewrites_the_sidecar_over_its_spare_and_clean_deletes_it() {
    use std::os::unix::fs::MetadataExt;
    let p = chain();
    let ino = |rel: &str| std::fs::metadata(p.path(rel)).unwrap().ino();
    let spare = ".planexe/tasks/.a.status.spare";
    assert!(!p.exists(spare), "a first run replaces nothing");
    p.run(&["build", "-B", "a"]).ok().ran(&["a"]);
    assert!(p.exists(spare));
    // From now on the sidecar and its spare trade places: the same two
    // files, whatever the number of runs (a `pending` record, then the
    // outcome, each time).
    let pair = || {
        let mut v = vec![ino(".planexe/tasks/a.status"), ino(spare)];
        v.sort_unstable();
        v
    };
    let files = pair();
    for _ in 0..2 {
        p.run(&["build", "-B", "a"]).ok().ran(&["a"]);
        // (Where the file system grants no leases, spares are replaced.)
        if leases_work(p.root()) {
            assert_eq!(pair(), files);
        }
        assert_eq!(p.status_json("a")["state"], "done");
        assert_eq!(ino(".planexe/tasks/a.DONE"), ino(".planexe/tasks/a.status"));
        assert_eq!(
            p.read(".planexe/tasks/a.DONE"),
            p.read(".planexe/tasks/a.status")
        );
    }
    p.run(&["clean", "a", "-y"]).ok();
    assert!(!p.exists(spare));
    p.build().ok().ran(&["a"]);
}

/// Every build rewrites `summary.json`, `status.snapshot`, `run.json` and
/// the up-to-date certificate (set aside when the build begins) over the
/// files it replaced, as sidecars are: the same two files each, whatever
/// the number of builds, each always whole.
#[test]
fn every_build_rewrites_its_state_files_over_the_files_they_replaced() {
    use std::os::unix::fs::MetadataExt;
    let p = chain();
    let files = [
        ".planexe/summary.json",
        ".planexe/status.snapshot",
        ".planexe/run.json",
        ".planexe/uptodate",
    ];
    let inodes = || -> Vec<u64> {
        files
            .iter()
            .map(|f| std::fs::metadata(p.path(f)).unwrap().ino())
            .collect()
    };
    let mut seen: Vec<std::collections::BTreeSet<u64>> = vec![Default::default(); files.len()];
    for n in 0..4 {
        p.write_at("src.txt", &format!("edit {n}"), 2_000_000 + n);
        p.build().ok().ran(&["a", "b", "c"]);
        for (i, ino) in inodes().into_iter().enumerate() {
            seen[i].insert(ino);
        }
        let summary: serde_json::Value =
            serde_json::from_str(&p.read(".planexe/summary.json")).unwrap();
        assert_eq!(summary["counts"]["done"], 4);
        p.run(&["status"]).ok().stdout_has("DONE (4)");
        p.build().ok().stderr_has("nothing to do");
    }
    // (Where the file system grants no leases, spares are replaced.)
    if leases_work(p.root()) {
        for (f, inodes) in files.iter().zip(&seen) {
            assert!(inodes.len() <= 2, "{f} was {} files", inodes.len());
        }
    }
    assert!(p.exists(".planexe/.summary.json.spare"));
    assert!(p.exists(".planexe/.status.snapshot.spare"));
    assert!(p.exists(".planexe/.run.json.spare"));
}

/// `clean` listed planexe's internal files (a sidecar's spare, the
/// up-to-date certificate) among the user's outputs and records; it now
/// deletes them with the task and counts them in one line.
#[test]
fn clean_lists_outputs_and_records_not_internal_files() {
    let p = chain();
    // Every task again: a's sidecar is rewritten (its spare appears) and
    // the certificate is written anew.
    p.run(&["build", "-B"]).ok();
    let internal = [".planexe/tasks/.a.status.spare", ".planexe/uptodate"];
    for f in internal {
        assert!(p.exists(f), "{f} should be there to clean");
    }
    let shown = vec!["a.txt", ".planexe/tasks/a.status", ".planexe/tasks/a.DONE"];
    let listed = p.run(&["clean", "a", "--dry-run"]);
    listed
        .ok()
        .stderr_has("would delete 3 file(s), and 2 internal file(s) of planexe's own");
    assert_eq!(lines(&listed.stdout), shown);
    // `-n`, as for `build`.
    assert_eq!(p.run(&["clean", "a", "-n"]).ok().stdout, listed.stdout);
    let run = p.run(&["clean", "a", "-y"]);
    run.ok()
        .stderr_has("deleted 3 file(s), and 2 internal file(s) of planexe's own");
    assert_eq!(lines(&run.stdout), shown);
    for f in shown.iter().chain(&internal) {
        assert!(!p.exists(f), "{f} should be gone");
    }
    p.build().ok().ran(&["a"]);
}

#[test]
fn clean_needs_confirmation_off_a_terminal() {
    let p = chain();
    let run = p.run(&["clean", "a"]);
    run.code(2).stderr_has("hint: pass -y");
    assert!(p.exists("a.txt"));
}

#[test]
fn clean_all_never_deletes_sources() {
    let p = chain();
    assert!(p.exists(".planexe/run.json"));
    p.run(&["clean", "--all", "-y"]).ok();
    for f in ["a.txt", "b.txt", "c.txt", "other.txt", ".planexe/run.json"] {
        assert!(!p.exists(f));
    }
    // The next build starts a new run: no resume summary.
    let run = p.build();
    run.ok();
    assert!(!run.stderr.contains("resuming run"), "{}", run.stderr);
    assert!(p.exists("src.txt"));
    assert!(p.exists("pipeline.toml"));
    p.run(&["clean", "nope", "-y"])
        .code(2)
        .stderr_has("unknown task `nope`");
}

#[test]
fn touch_accepts_outputs_without_running() {
    let p = Project::new(CHAIN);
    p.write("src.txt", "s");
    p.write("a.txt", "written by hand");
    p.run(&["touch", "a"]).ok();
    assert!(p.exists(".planexe/tasks/a.DONE"));
    p.build().ok().ran(&["b", "c", "other"]);
    assert_eq!(p.read("c.txt"), "written by hand");

    // Touching after a change makes dependents stale. The marker is
    // replaced: it is the record of the accepted outputs.
    p.write_at("a.txt", "edited", 2_000_000);
    p.run(&["touch", "a"]).ok();
    let marker: serde_json::Value = serde_json::from_str(&p.read(".planexe/tasks/a.DONE")).unwrap();
    assert_eq!(marker, p.status_json("a"));
    assert_eq!(marker["outputs"]["a.txt"]["size"], 6);
    assert_eq!(
        p.run(&["build", "-n"]).stdout,
        "b: input a.txt changed\nc: upstream b will re-run\n"
    );
    p.remove("a.txt");
    p.run(&["touch", "a"])
        .code(2)
        .stderr_has("output a.txt does not exist");
}

#[test]
fn status_groups_tasks_and_explains_failures() {
    let p = Project::new(&format!(
        "{CHAIN}\n[tasks.broken]\noutputs = [\"x\"]\ncommand = \"echo 'bad things happened' >&2; exit 3\"\n"
    ));
    p.write("src.txt", "s");
    let run = p.run(&["status"]);
    run.ok();
    assert!(
        run.stdout.contains("state    never-built"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("STALE (5)\n  a       never built"),
        "{}",
        run.stdout
    );

    p.run(&["build", "-k"]).code(1);
    p.write_at("src.txt", "new", 2_000_000);
    let text = p.run(&["status"]).stdout;
    let body = &text[text.find("\nFAILED").expect(&text)..];
    let id = p.status_json("broken")["error"]["error_id"]
        .as_str()
        .expect("an error_id")
        .to_string();
    let body = body.replace(&id, "ID");
    assert_eq!(
        body,
        "\nFAILED (1)\n  broken  exit: exit status 3 (error_id ID), attempt 1, not recoverable\n          | bad things happened\n          hint: fix the command or its inputs, then run planexe build\n\nSTALE (1)\n  a       input src.txt changed\n\nPENDING (2)\n  b       upstream a will re-run\n  c       upstream b will re-run\n\nDONE (1)\n  other   0.00s"
            .replace("0.00s", body.rsplit(' ').next().unwrap()),
    );
    assert!(text.contains("state    failed"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&p.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(json["state"], "failed");
    assert_eq!(json["tasks"][0]["task"], "a");
    assert_eq!(json["tasks"][0]["state"], "stale");
    assert_eq!(json["tasks"][0]["reason"], "input src.txt changed");
    assert_eq!(json["tasks"][1]["state"], "pending");
    assert_eq!(json["tasks"][3]["state"], "done");
    assert_eq!(json["tasks"][4]["state"], "failed");
    assert_eq!(json["tasks"][4]["error"], "exit status 3");
    assert_eq!(json["tasks"][4]["error_kind"], "exit");
    assert_eq!(json["tasks"][4]["recoverable"], false);
    assert_eq!(json["counts"]["pending"], 2);

    let one = p.run(&["status", "broken"]).stdout;
    assert!(
        one.starts_with("broken: stale: failed last time: exit status 3\n  state     failed"),
        "{one}"
    );
}

#[test]
fn status_of_a_task_shows_its_outputs_now_and_as_recorded() {
    let p = chain();
    let text = p.run(&["status", "b"]).stdout;
    assert!(text.contains("  output    b.txt ("), "{text}");
    assert!(text.contains(" B, blake3 "), "{text}");
    std::fs::write(p.path("b.txt"), "edited by hand, longer\n").unwrap();
    let text = p.run(&["status", "b"]).stdout;
    assert!(text.contains(" B now; recorded "), "{text}");
    // Kept by the next build, as every view of the run says.
    assert!(text.contains("; edited by hand, kept)"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&p.run(&["status", "b", "--json"]).stdout).unwrap();
    assert_eq!(json["outputs"][0]["edited"], true);
    let all = p.run(&["status"]).stdout;
    assert!(all.contains(", b.txt edited by hand (kept)"), "{all}");
    p.run(&["explain", "b"])
        .ok()
        .stdout_has("b: up to date\n")
        .stdout_has("; edited by hand, kept (what reads it re-runs)\n");
    let json: serde_json::Value =
        serde_json::from_str(&p.run(&["status", "--json"]).stdout).unwrap();
    let tasks = json["tasks"].as_array().unwrap();
    let b = tasks.iter().find(|t| t["task"] == "b").unwrap();
    assert_eq!(b["edited"], serde_json::json!(["b.txt"]));
    assert!(tasks
        .iter()
        .filter(|t| t["task"] != "b")
        .all(|t| t["edited"].is_null()));
    // Once a build has kept it, it is what the task's record says.
    p.build().ok();
    assert!(!p.run(&["status"]).stdout.contains("edited by hand"));
    std::fs::write(p.path("b.txt"), "edited by hand, longer still\n").unwrap();
    std::fs::remove_file(p.path("b.txt")).unwrap();
    let text = p.run(&["status", "b"]).stdout;
    assert!(text.contains("  output    b.txt (missing)"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&p.run(&["status", "b", "--json"]).stdout).unwrap();
    assert_eq!(json["outputs"][0]["path"], "b.txt");
    assert!(json["outputs"][0]["size"].is_null());
    assert!(json["outputs"][0]["recorded"]["blake3"].is_string());
}

/// A task the pipeline no longer defines can be cleaned by name: its
/// outputs go (but for one a task of the pipeline now produces), its
/// records are forgotten, and the warning about it ends.
#[test]
fn a_task_no_longer_in_the_pipeline_can_be_cleaned_by_name() {
    let p = Project::new(
        "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo a > a.txt\"\n\
         [tasks.gen]\noutputs = [\"g.txt\", \"shared.txt\"]\ncommand = \"echo g > g.txt; echo s > shared.txt\"\n",
    );
    p.build().ok();
    p.write(
        "pipeline.toml",
        "[tasks.a]\noutputs = [\"a.txt\", \"shared.txt\"]\ncommand = \"echo a > a.txt; echo t > shared.txt\"\n",
    );
    p.build()
        .ok()
        .stderr_has("task gen is no longer in the pipeline; its outputs stay on disk: g.txt (`planexe clean gen` deletes them and forgets it)");
    p.run(&["clean", "gen", "-y"]).ok();
    assert!(!p.exists("g.txt"));
    assert_eq!(p.read("shared.txt"), "t\n", "a's output now");
    assert!(!p.exists(".planexe/tasks/gen.status"));
    let run = p.build();
    run.ok().ran(&[]);
    assert!(
        !run.stderr.contains("no longer in the pipeline"),
        "{}",
        run.stderr
    );
    p.run(&["clean", "gen", "-y"])
        .code(2)
        .stderr_has("unknown task `gen`");
}

#[test]
fn clean_without_a_task_shows_both_ways_to_call_it() {
    let p = chain();
    p.run(&["clean"])
        .code(2)
        .stderr_has("planexe clean [OPTIONS] <TASK>...")
        .stderr_has("planexe clean [OPTIONS] --all");
}

#[test]
fn a_mistyped_task_name_gets_the_closest_one() {
    let p = demo();
    p.build().ok();
    for args in [
        &["build", "outlin"][..],
        &["clean", "outlin", "-y"],
        &["touch", "outlin"],
        &["status", "outlin"],
        &["explain", "outlin"],
    ] {
        p.run(args)
            .code(2)
            .stderr_has("hint: did you mean `outline`?");
    }
    // An output path too; nothing close: no guess.
    p.run(&["build", "outline.mdx"])
        .code(2)
        .stderr_has("hint: did you mean `outline.md`?");
    let far = p.run(&["build", "zzz"]);
    far.code(2);
    assert!(!far.stderr.contains("did you mean"), "{}", far.stderr);
}

/// `clean`, `touch`, `check`, `explain` and `status` take an output path
/// for the task that writes it, as `build` takes targets (and `ninja -t
/// clean` and `make -t` take files), by its absolute path too; a source
/// file is refused as one, and a path near an output is offered it.
#[test]
fn an_output_path_names_the_task_that_writes_it() {
    let p = chain();
    let by_path = p.run(&["clean", "b.txt", "--downstream", "--dry-run"]);
    by_path.ok();
    assert_eq!(
        by_path.stdout,
        p.run(&["clean", "b", "--downstream", "--dry-run"]).stdout
    );
    let absolute = p.path("c.txt").to_string_lossy().into_owned();
    p.run(&["clean", &absolute, "-y"]).ok();
    assert!(!p.exists("c.txt") && p.exists("b.txt"));
    p.build().ok().ran(&["c"]);

    p.write_at("b.txt", "edited", 2_000_000);
    p.run(&["explain", "./b.txt"]).ok().stdout_has("b: ");
    p.run(&["touch", "b.txt"]).ok().stderr_has("touched b");
    p.build().ok().ran(&["c"]);
    p.run(&["check", "a.txt"]).ok().stdout_has("ok a");
    assert!(p
        .run(&["status", "c.txt"])
        .ok()
        .stdout
        .starts_with("c: up to date"));

    for cmd in ["clean", "touch", "explain", "status"] {
        p.run(&[cmd, "src.txt"])
            .code(2)
            .stderr_has(
                "unknown task `src.txt`: no task has that name and no task produces that file",
            )
            .stderr_has("hint: src.txt is a source file: a reads it, and no task writes it");
    }
    p.run(&["build", "src.txt"])
        .code(2)
        .stderr_has("hint: src.txt is a source file: a reads it, and no task writes it");
    p.run(&["clean", "c.tx", "-y"])
        .code(2)
        .stderr_has("did you mean `c.txt`?");
    assert!(p.exists("c.txt") && p.exists("src.txt"));
}

/// `clean --dry-run --print0` lists the paths NUL-terminated, for `xargs
/// -0` (a path with a space needed `xargs -d '\n'`); without --dry-run it
/// is refused before anything is deleted.
#[test]
fn clean_dry_run_print0_lists_paths_nul_terminated() {
    let p =
        Project::new("[tasks.a]\noutputs = [\"my a.txt\"]\ncommand = \"echo a > 'my a.txt'\"\n");
    p.build().ok();
    let listed = p.run(&["clean", "a", "--dry-run", "--print0"]);
    listed.ok();
    assert_eq!(
        listed.stdout,
        "my a.txt\0.planexe/tasks/a.status\0.planexe/tasks/a.DONE\0"
    );
    let short = p.run(&["clean", "-n0", "a"]);
    short.ok();
    assert_eq!(short.stdout, listed.stdout);

    let refused = p.run(&["clean", "a", "-0", "-y"]);
    refused
        .code(2)
        .stderr_has("error: --print0 lists what clean would delete: it needs --dry-run");
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);
    assert!(p.exists("my a.txt"), "a refused clean deletes nothing");
}

/// `touch b` while a task b reads is stale (its input changed) warns
/// that the next build runs it and b again, naming why it is stale and
/// the touch that keeps b (it accepted b silently, and the next build ran
/// a then b); `touch a --downstream` touches both, and warns of nothing.
#[test]
fn touch_below_a_stale_task_warns_of_it() {
    let p = chain();
    p.write("src.txt", "s2");
    let run = p.run(&["touch", "b"]);
    run.ok().stderr_has(
        "touched b\nwarning: a, upstream of b, is stale (input src.txt changed): the next build \
         runs it, then b again if a's outputs change; `planexe touch a --downstream` keeps b \
         (or touch b after building a)",
    );
    let run = p.run(&["touch", "c"]);
    run.ok()
        .stderr_has("warning: a, upstream of c, is stale (input src.txt changed)");
    assert!(!run.stderr.contains("upstream of b"), "{}", run.stderr);

    let run = p.run(&["touch", "a", "--downstream"]);
    run.ok();
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    p.build().ok().ran(&[]);
    // Nothing stale upstream: no warning.
    let run = p.run(&["touch", "b"]);
    run.ok();
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
}

/// The header's state is the last build's outcome, and says so, with how
/// many tasks are not up to date since (`state    completed` read as the
/// run's while an input had changed and tasks were stale).
#[test]
fn status_header_says_the_state_is_the_last_builds() {
    let p = chain();
    p.run(&["status"])
        .ok()
        .stdout_has("\nstate    completed (last build)\n");
    p.write("src.txt", "s2");
    p.run(&["status"])
        .ok()
        .stdout_has("\nstate    completed (last build); 3 task(s) not up to date\n");
    // `--json` keeps its `state`, beside `counts`.
    let json: serde_json::Value =
        serde_json::from_str(&p.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(json["state"], "completed");
    assert_eq!(json["counts"]["stale"], 1);
}
