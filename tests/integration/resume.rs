//! Resume: the run record, the resume summary, the lock, and a stress test
//! that kills planexe at random moments and checks that nothing finished
//! runs again, nothing half-written is kept, and the end result equals an
//! uninterrupted build.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::llm_server::*;

#[test]
fn the_resume_summary_says_where_the_run_stands() {
    let p = Project::new(
        r#"
[tasks.a]
outputs = ["a.txt"]
command = "echo a > a.txt"
[tasks.b]
outputs = ["b.txt"]
command = "echo b > b.txt"
[tasks.broken]
inputs = ["a.txt"]
outputs = ["x.txt"]
command = "echo 'no disk left' >&2; exit 1"
[tasks.after]
inputs = ["x.txt", "b.txt"]
outputs = ["y.txt"]
command = "cat x.txt b.txt > y.txt"
"#,
    );
    p.run(&["build", "-k"]).code(1);
    let run: serde_json::Value = serde_json::from_str(&p.read(".planexe/run.json")).unwrap();
    assert_eq!(run["builds"][0]["outcome"], "failed");
    assert_eq!(run["counts"]["failed"], 1);
    assert_eq!(run["run_id"].as_str().unwrap().len(), 36);

    let dry = p.run(&["build", "-n"]);
    dry.ok();
    assert!(
        dry.stderr.contains(
            ": 2 done, 1 failed (broken: exit status 1), 2 to run; would start with broken"
        ),
        "{}",
        dry.stderr
    );
    // A dry run starts nothing: it says what a build would do.
    assert!(dry.stderr.contains("would resume run 20"), "{}", dry.stderr);
    assert!(!dry.stderr.contains("resuming"), "{}", dry.stderr);
    assert!(!dry.stderr.contains("starting with"), "{}", dry.stderr);
    assert_eq!(
        dry.stdout,
        "broken: failed last time: exit status 1\nafter: never built\n"
    );
}

#[test]
fn a_changed_definition_is_named_in_the_summary() {
    let p = demo();
    p.build().ok();
    p.write(
        "pipeline.toml",
        &DEMO.replace("cat {inputs}", "cat -- {inputs}"),
    );
    p.build()
        .ok()
        .ran(&["report"])
        .stderr_has("the definition of report changed since its last run");
}

#[test]
fn a_task_removed_from_the_pipeline_leaves_its_outputs_with_a_warning() {
    let p = demo();
    p.build().ok();
    p.write(
        "pipeline.toml",
        "[tasks.outline]\ninputs = [\"plan.txt\"]\noutputs = [\"outline.md\"]\ncommand = \"tr a-z A-Z < plan.txt > outline.md\"\n",
    );
    p.build().ok().stderr_has(
        "task report is no longer in the pipeline; its outputs stay on disk: report.md (`planexe clean report` deletes them and forgets it)",
    );
    assert!(p.exists("report.md"));
}

/// An output renamed leaves the old file on disk, where a glob still finds
/// it: the build that runs the task under its new definition says so,
/// once; not for a file a task now reads.
#[test]
fn an_output_no_longer_declared_is_warned_of_once() {
    let p = Project::new(
        "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo a > a.txt\"\n\
         [tasks.m]\nmatrix = { n = [\"1\", \"2\"] }\noutputs = [\"m{{ n }}.txt\"]\ncommand = \"echo {{ n }} > m{{ n }}.txt\"\n",
    );
    p.build().ok();
    p.write(
        "pipeline.toml",
        "[tasks.a]\noutputs = [\"b.txt\"]\ncommand = \"echo a > b.txt\"\n\
         [tasks.m]\nmatrix = { n = [\"1\", \"2\"] }\noutputs = [\"n{{ n }}.txt\"]\ncommand = \"echo {{ n }} > n{{ n }}.txt\"\n",
    );
    p.run(&["build", "-n"]).ok().stderr_has(
        "warning: outputs their tasks no longer declare stay on disk from their last runs, and no task makes them now: a.txt (a), m1.txt (m[1]), m2.txt (m[2]); delete them if nothing needs them (a glob still finds them)\n",
    );
    let run = p.build();
    run.ok()
        .ran(&["a", "m[1]", "m[2]"])
        .stderr_has("m2.txt (m[2]); delete them");
    assert!(p.exists("a.txt"), "kept: the warning is all");
    let again = p.build();
    assert!(
        !again.stderr.contains("no longer declare"),
        "{}",
        again.stderr
    );
    // Moved to a task that reads it: meant to stay, and not warned of.
    p.write(
        "pipeline.toml",
        "[tasks.a]\noutputs = [\"c.txt\"]\ncommand = \"echo a > c.txt\"\n\
         [tasks.r]\ninputs = [\"b.txt\"]\noutputs = [\"r.txt\"]\ncommand = \"cat b.txt > r.txt\"\n",
    );
    let run = p.build();
    run.ok();
    assert!(!run.stderr.contains("no longer declare"), "{}", run.stderr);
}

/// A task renamed keeps its output under its new name: nothing is left
/// behind to warn about, and the next no-op takes the certificate's path.
#[test]
fn a_renamed_task_leaves_nothing_behind() {
    let p = demo();
    p.build().ok();
    let renamed = p
        .read("pipeline.toml")
        .replace("[tasks.report]", "[tasks.summary]");
    p.write("pipeline.toml", &renamed);
    let run = p.build();
    run.ok().ran(&["summary"]);
    assert!(
        !run.stderr.contains("no longer in the pipeline"),
        "{}",
        run.stderr
    );
    let again = p.build();
    again.ok().ran(&[]);
    assert!(
        !again.stderr.contains("no longer in the pipeline"),
        "{}",
        again.stderr
    );
    assert!(p.exists(".planexe/uptodate"));
}

#[test]
fn a_model_chosen_with_flag_is_remembered_for_the_run() {
    let server = Server::start();
    server.default_reply(openai_answer("ok"));
    let models = format!(
        "[models.local]\nprovider = \"openai\"\nbase_url = \"{0}/v1\"\nmodel = \"m1\"\nstream = false\n[models.other]\nprovider = \"openai\"\nbase_url = \"{0}/v1\"\nmodel = \"m2\"\nstream = false\n",
        server.url
    );
    let p = Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n{models}[tasks.a]\noutputs = [\"a.md\"]\nprompt = \"A\"\n[tasks.b]\ninputs = [\"a.md\"]\noutputs = [\"b.md\"]\nprompt = \"B\"\n[tasks.c]\ninputs = [\"b.md\"]\noutputs = [\"c.md\"]\nprompt = \"C\"\n"
    ));
    p.run(&["build", "--model", "other", "a"]).ok();
    let run = p.build();
    run.ok()
        .stderr_has("using model other, chosen for this run by an earlier --model");
    let models: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.json()["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(models, ["m2", "m2", "m2"]);
}

/// The model a run remembers, removed from the pipeline since: `status`,
/// `explain` and `graph` still report on the run (exit 0), saying the
/// model is set aside; a build (and `build -n`) still refuses it, and
/// `--model` chooses another.
#[test]
fn a_remembered_model_the_pipeline_dropped_is_set_aside_by_what_only_reads() {
    let server = Server::start();
    server.default_reply(openai_answer("ok"));
    let model = |name: &str| {
        format!(
            "[models.{name}]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m-{name}\"\nstream = false\n",
            server.url
        )
    };
    let tasks = "[tasks.a]\noutputs = [\"a.md\"]\nprompt = \"A\"\nmodel = \"local\"\n";
    let p = Project::new(&format!("{}{}{tasks}", model("local"), model("other")));
    p.run(&["build", "--model", "other"]).ok();
    p.write("pipeline.toml", &format!("{}{tasks}", model("local")));
    let warning = "warning: this run remembers model `other` from an earlier --model, but the \
                   pipeline has no [models.other] any more: set aside here; a build \
                   refuses it until `planexe build --model NAME` chooses another (models are: \
                   local)";
    p.run(&["status"]).ok().stderr_has(warning).stdout_has("a");
    p.run(&["status", "--json"]).ok().stderr_has(warning);
    p.run(&["explain", "a"]).ok().stderr_has(warning);
    p.run(&["graph"]).ok().stderr_has(warning);
    for args in [&["build"][..], &["build", "-n"]] {
        p.run(args)
            .code(2)
            .stderr_has("unknown model `other` (chosen for this run by an earlier --model");
    }
    // Another model is no reason to ask again (docs/llm.md): the build
    // only records the choice.
    p.run(&["build", "--model", "local"]).ok().ran(&[]);
    let status = p.run(&["status"]);
    assert!(!status.stderr.contains("warning"), "{}", status.stderr);
}

#[test]
fn the_lock_names_its_holder_and_dies_with_it() {
    let p =
        Project::new("[tasks.long]\noutputs = [\"o\"]\ncommand = \"touch started; sleep 100\"\n");
    let mut child = p.spawn_quiet(&["build"]);
    wait_for("the condition", || p.exists("started"));
    let run = p.run(&["build", "--no-wait"]);
    run.code(2)
        .stderr_has(&format!("another build (pid {}, started ", child.id()))
        .stderr_has("is running in this directory");
    // Read-only commands work during a build.
    p.run(&["status"]).ok();
    p.run(&["build", "-n"]).ok();
    child.kill().unwrap();
    child.wait().unwrap();
    // The killed build's lock is taken over silently, and the task it left
    // running is stopped and run again.
    p.write(
        "pipeline.toml",
        "[tasks.long]\noutputs = [\"o\"]\ncommand = \"echo done > o\"\n",
    );
    let run = p.build();
    run.ok()
        .ran(&["long"])
        .stderr_has("left running by a build that crashed");
}

/// 50 tasks: layers of commands and prompt tasks, each command appending
/// its name to `runs.log` when it finishes its work.
fn stress_pipeline(server: &Server) -> String {
    let mut text = format!(
        "[pipeline]\nmodel = \"local\"\n[models.local]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\n",
        server.url
    );
    let mut previous: Vec<String> = vec!["seed.txt".into()];
    let mut n = 0;
    for layer in 0..10 {
        let mut current = Vec::new();
        for i in 0..5 {
            let name = format!("t{layer}_{i}");
            let out = format!("out/{name}.txt");
            let inputs: Vec<String> = previous
                .iter()
                .skip(i % previous.len())
                .take(2)
                .cloned()
                .collect();
            let quoted: Vec<String> = inputs.iter().map(|s| format!("\"{s}\"")).collect();
            if n % 3 == 2 {
                text.push_str(&format!(
                    "[tasks.{name}]\ninputs = [{}]\noutputs = [\"{out}\"]\nprompt = \"Task {{{{ task }}}}\"\n",
                    quoted.join(", ")
                ));
            } else {
                text.push_str(&format!(
                    "[tasks.{name}]\ninputs = [{}]\noutputs = [\"{out}\"]\ncommand = \"cat {{inputs}} > {{outputs}}.part; sleep 0.{}; echo {name} >> {{outputs}}.part; mv {{outputs}}.part {{outputs}}; echo {name} >> runs.log\"\n",
                    quoted.join(", "),
                    1 + n % 3
                ));
            }
            current.push(out);
            n += 1;
        }
        previous = current;
    }
    text
}

fn run_counts(p: &Project, server: &Server) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    if p.exists("runs.log") {
        for line in p.read("runs.log").lines() {
            *counts.entry(line.to_string()).or_default() += 1;
        }
    }
    for r in server.requests() {
        let prompt = r.json()["messages"][0]["content"]
            .as_str()
            .unwrap()
            .to_string();
        let task = prompt.trim_start_matches("Task ").to_string();
        *counts.entry(task).or_default() += 1;
    }
    counts
}

fn done_tasks(p: &Project) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(p.path(".planexe/tasks")) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".DONE")
                .map(str::to_string)
        })
        .collect()
}

fn outputs(p: &Project) -> BTreeMap<String, String> {
    std::fs::read_dir(p.path("out"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".part"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Kills (or interrupts) planexe at `$PLANEXE_STRESS_KILLS` (default 30)
/// random moments, resuming each time.
fn stress(signal: i32) {
    let kills: usize = std::env::var("PLANEXE_STRESS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let server = Server::start();
    server.default_reply(delayed(
        openai_answer("an answer"),
        Duration::from_millis(100),
    ));
    let reference_server = Server::start();
    reference_server.default_reply(openai_answer("an answer"));

    let reference = Project::new(&stress_pipeline(&reference_server));
    reference.write("seed.txt", "seed\n");
    reference.run(&["build", "-j", "4"]).ok();
    let expected = outputs(&reference);
    assert_eq!(expected.len(), 50);

    let p = Project::new(&stress_pipeline(&server));
    p.write("seed.txt", "seed\n");
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut partial_rounds = 0;
    for round in 0..kills {
        let done_before = done_tasks(&p);
        let counts_before = run_counts(&p, &server);
        let log_before = std::fs::read(p.path(".planexe/log")).unwrap_or_default();
        let mut child = p
            .command(&["build", "-j", "4"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(10 + rng % 150));
        // SAFETY: signalling the child we spawned.
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
        let status = child.wait().unwrap();
        if signal == libc::SIGINT {
            // Caught (130), too late (0), or too early: a signal that comes
            // before planexe's `main` takes its default action, as in any
            // program (a loaded machine can take longer than the shortest
            // wait to start one). Then planexe had done nothing yet.
            use std::os::unix::process::ExitStatusExt;
            let early = status.signal() == Some(libc::SIGINT);
            assert!(
                matches!(status.code(), Some(130) | Some(0)) || early,
                "round {round}: {status:?}"
            );
            if early {
                assert_eq!(
                    std::fs::read(p.path(".planexe/log")).unwrap_or_default(),
                    log_before,
                    "round {round}: planexe died of the SIGINT after it recorded something"
                );
                assert_eq!(
                    run_counts(&p, &server),
                    counts_before,
                    "round {round}: planexe died of the SIGINT after it started a task"
                );
            }
        }
        // Let orphans (after SIGKILL) finish what they were doing.
        std::thread::sleep(Duration::from_millis(50));
        let counts_after = run_counts(&p, &server);
        if done_tasks(&p).len() < 50 {
            partial_rounds += 1;
        }
        for task in &done_before {
            assert_eq!(
                counts_before.get(task),
                counts_after.get(task),
                "round {round}: {task} was done and ran again"
            );
        }
        for entry in std::fs::read_dir(p.path(".planexe/tasks"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.file_name().to_string_lossy().ends_with(".status") {
                let text = std::fs::read_to_string(entry.path()).unwrap();
                assert!(
                    serde_json::from_str::<serde_json::Value>(&text).is_ok(),
                    "round {round}: {} does not parse: {text}",
                    entry.path().display()
                );
            }
        }
    }
    assert!(
        partial_rounds * 2 >= kills,
        "only {partial_rounds} of {kills} rounds stopped a build mid-way"
    );
    p.run(&["build", "-j", "4"]).ok();
    assert_eq!(
        outputs(&p),
        expected,
        "the resumed result differs from an uninterrupted build"
    );
    p.build().ok().ran(&[]);
}

#[test]
fn killing_planexe_at_random_moments_loses_nothing() {
    stress(libc::SIGKILL);
}

#[test]
fn interrupting_planexe_at_random_moments_loses_nothing() {
    stress(libc::SIGINT);
}

#[test]
fn an_unreadable_state_file_means_not_built_with_a_warning() {
    let p = demo();
    p.build().ok();
    std::fs::write(p.path(".planexe/tasks/report.status"), "{\"task\": \"rep").unwrap();
    std::fs::remove_file(p.path(".planexe/log")).unwrap();
    let run = p.build();
    run.ok().ran(&["report"]);
    run.stderr_has(
        "warning: .planexe/tasks/report.status is unreadable; report counts as not built",
    );
}

#[test]
fn a_stop_does_not_wait_for_tasks_that_ignore_sigterm() {
    let p = Project::new(
        "[tasks.stubborn]\noutputs = [\"o\"]\ncommand = \"trap '' TERM; touch started; while true; do sleep 0.05; done\"\n",
    );
    let child = p.spawn_quiet(&["build"]);
    wait_for("the condition", || p.exists("started"));
    let stopped_at = Instant::now();
    // SAFETY: signalling the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    // Well under the 3 s a timeout grants (a loose bound, not a target).
    assert!(
        stopped_at.elapsed() < Duration::from_millis(2500),
        "{:?}",
        stopped_at.elapsed()
    );
    assert_eq!(p.status_json("stubborn")["state"], "stopped");
    let status = p.run(&["status"]).stdout;
    assert!(status.contains("state    stopped"), "{status}");
    assert!(status.contains("STOPPED (1)"), "{status}");
    assert!(
        status.contains("hint: run planexe build again to resume"),
        "{status}"
    );
}

#[test]
fn the_lock_names_a_holder_that_has_not_written_its_name_yet() {
    let p = demo();
    p.build().ok();
    // A holder of the lock that wrote nothing in it (as a build does for a
    // moment after taking it): the kernel says who it is.
    std::fs::write(p.path(".planexe/lock"), "").unwrap();
    let mut holder = std::process::Command::new("flock")
        .arg(p.path(".planexe/lock"))
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    wait_for("the lock to be held", || {
        std::fs::read_to_string("/proc/locks")
            .is_ok_and(|l| l.contains(&format!(" {} ", holder.id())))
    });
    p.write_at("plan.txt", "a different house\n", 2_000_000);
    p.run(&["build", "--no-wait"])
        .code(2)
        .stderr_has(&format!("(pid {}, started ", holder.id()))
        .stderr_has("flock");
    holder.kill().unwrap();
    holder.wait().unwrap();
}

#[test]
fn a_damaged_status_file_is_reported_and_rewritten_from_the_log() {
    let p = demo();
    p.build().ok();
    let full = p.read(".planexe/tasks/outline.status");
    // Truncated in place: the folder, and so the certificate's view of
    // it, unchanged.
    std::fs::write(p.path(".planexe/tasks/outline.status"), &full[..40]).unwrap();
    // `status` from its snapshot vouches for the tasks' states, not for
    // planexe's own view of them: it still says done.
    let status = p.run(&["status"]);
    status.ok().stdout_has("DONE (2)");
    // Checking every task (no snapshot), it says the file is damaged.
    p.remove(".planexe/status.snapshot");
    p.run(&["status"])
        .ok()
        .stdout_has(".planexe/tasks/outline.status is damaged");
    p.run(&["build", "-n"])
        .ok()
        .stderr_has(".planexe/tasks/outline.status is damaged");
    p.build()
        .ok()
        .ran(&[])
        .stderr_has("was damaged; rewrote it from the state log");
    assert_eq!(p.status_json("outline")["state"], "done");
    assert!(p.exists(".planexe/tasks/outline.DONE"));
    p.build().ok().ran(&[]).stderr_has("nothing to do");
    // A damaged status the log cannot vouch for: the task runs again.
    std::fs::remove_file(p.path(".planexe/log")).unwrap();
    std::fs::write(p.path(".planexe/tasks/report.status"), "{\"task\": \"rep").unwrap();
    p.build()
        .ok()
        .ran(&["report"])
        .stderr_has("is unreadable; report counts as not built");
}

#[test]
fn a_damaged_record_of_the_pipeline_file_says_what_it_holds() {
    for (bytes, says) in [
        (&b"\x00\xff\xfe"[..], "it is not text"),
        (
            &b"hello\x1b[31m\n"[..],
            "it holds \"hello\\u{1b}[31m\", neither an absolute path nor one inside the run directory",
        ),
    ] {
        let p = demo();
        p.build().ok();
        std::fs::write(p.path(".planexe/pipeline"), bytes).unwrap();
        for args in [&["build"][..], &["status"]] {
            p.run(args)
                .code(2)
                .stderr_has(".planexe/pipeline should hold the path of the pipeline file")
                .stderr_has(says)
                .stderr_has("hint: pass -f FILE");
        }
        p.run(&["-f", "pipeline.toml", "build"]).ok();
    }
}

/// The `resuming run` line of a run's stderr (a dry run's `would resume
/// run`), from its counts on.
fn resume_line(run: &Run) -> String {
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("resuming run ") || l.starts_with("would resume run "))
        .unwrap_or_else(|| panic!("no resume line in {}", run.stderr));
    line.split_once("Z: ").unwrap().1.to_string()
}

#[test]
fn the_resume_line_counts_what_runs_and_names_only_what_starts_first() {
    // After an edit: the tasks reading what is rebuilt may be skipped.
    let p = Project::new(
        r#"
[tasks.a]
inputs = ["src.txt"]
outputs = ["a.txt"]
command = "cut -c1 src.txt > a.txt"
[tasks.b]
inputs = ["a.txt"]
outputs = ["b.txt"]
command = "cp a.txt b.txt"
[tasks.c]
inputs = ["b.txt"]
outputs = ["c.txt"]
command = "cp b.txt c.txt"
[tasks.d]
outputs = ["d.txt"]
command = "echo d > d.txt"
[tasks.e]
outputs = ["e.txt"]
command = "echo e > e.txt"
"#,
    );
    p.write("src.txt", "hello\n");
    p.build().ok();
    p.remove("d.txt");
    p.write_at("src.txt", "help\n", 2_000_000);
    assert_eq!(
        resume_line(&p.run(&["build", "-n"])),
        "1 done, 2 to run, 2 more if what they read changes; would start with a, d"
    );
    let run = p.build();
    run.ok().ran(&["a", "d"]).stderr_has("2 found up to date");
    assert_eq!(
        resume_line(&run),
        "1 done, 2 to run, 2 more if what they read changes; starting with a, d"
    );

    // A fan-out whose list is stale: it expands once the list is built,
    // and what reads it waits; forced, the instances wait for the list.
    let p = list_fanout("cp items.json list.json");
    p.write("items.json", "[\"a\", \"b\"]");
    p.build().ok();
    assert_eq!(
        resume_line(&p.run(&["build", "-n", "-B"])),
        "0 done, 4 to run (4 forced by -B); would start with list"
    );
    p.write_at("items.json", "[\"a\", \"c\"]", 2_000_000);
    assert_eq!(
        resume_line(&p.run(&["build", "-n"])),
        "0 done, 1 to run, 1 more if what they read changes, 1 fan-out(s) to expand once their list is built (per; 2 instance(s) done before, each kept if its item and its inputs are unchanged); would start with list"
    );
}

/// A project whose `list` task runs `list_command` to make the list of the
/// fan-out `per`, gathered by `gather`.
fn list_fanout(list_command: &str) -> Project {
    Project::new(&format!(
        r#"
[tasks.list]
inputs = ["items.json"]
outputs = ["list.json"]
command = "{list_command}"
[tasks.per]
foreach = {{ file = "list.json" }}
outputs = ["per/{{{{ key }}}}.txt"]
command = "echo {{{{ item }}}} > {{outputs}}"
[tasks.gather]
inputs = ["per"]
outputs = ["all.txt"]
command = "cat {{inputs}} > {{outputs}}"
"#
    ))
}

/// A build killed while a fan-out's list was being built again: the
/// `resuming run` line counted `0 done`, leaving out the instances done
/// before, behind the list still to be read; it now counts them beside the
/// fan-out (which of them keep their result, the list decides).
#[test]
fn the_resume_line_counts_the_instances_behind_a_list_to_be_read_again() {
    let p =
        list_fanout("cp items.json list.json; if [ -e hold ]; then touch started; sleep 30; fi");
    p.write("items.json", "[\"a\", \"b\", \"c\"]");
    p.build().ok();
    p.write_at("items.json", "[\"a\", \"b\", \"d\"]", 2_000_000);
    p.write("hold", "");
    let mut child = p.spawn_quiet(&["build"]);
    wait_for("the list to be built again", || p.exists("started"));
    child.kill().unwrap();
    child.wait().unwrap();
    p.remove("hold");
    let expected = "0 done, 1 stopped, 1 to run, 1 more if what they read changes, \
         1 fan-out(s) to expand once their list is built \
         (per; 3 instance(s) done before, each kept if its item and its inputs are unchanged); starting with list";
    assert_eq!(
        resume_line(&p.run(&["build", "-n"])),
        expected.replace("; starting with", "; would start with")
    );
    let run = p.build();
    run.ok().ran(&["list", "per[2]", "gather"]);
    assert_eq!(resume_line(&run), expected);
    assert_eq!(p.read("all.txt"), "a\nb\nd\n");
}

/// `status` of a fan-out whose list is to be built again said only
/// `expands when list.json is built`, as if none of its instances had
/// ever run; it now counts those done before, as `build -n` does, in text
/// and in `done_before` of `--json`.
#[test]
fn status_counts_the_instances_behind_a_list_to_be_built_again() {
    let p = list_fanout("cp items.json list.json");
    p.write("items.json", "[\"a\", \"b\", \"c\"]");
    p.build().ok();
    p.write_at("items.json", "[\"a\", \"d\"]", 2_000_000);
    let status = p.run(&["status"]);
    status.ok().stdout_has(
        "per     expands when list.json is built; 3 instance(s) done before, \
         each kept if its item and its inputs are unchanged",
    );
    let status = p.run(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status.ok().stdout).unwrap();
    let line = |name: &str| {
        let tasks = json["tasks"].as_array().unwrap();
        tasks.iter().find(|t| t["task"] == name).unwrap().clone()
    };
    assert_eq!(line("per")["done_before"], 3, "{json:#}");
    assert_eq!(line("list")["done_before"], serde_json::Value::Null);
    // `explain` says it too.
    p.run(&["explain", "per"]).ok().stdout_has(
        "  no successful run is recorded\n  3 instance(s) done before, each kept if its item and its inputs are unchanged\n",
    );
    // An instance is no name yet (it said `unknown task`, as of a typo).
    for args in [["explain", "per[0]"], ["build", "per[0]"]] {
        p.run(&args)
            .code(2)
            .stderr_has("error: `per[0]` is an instance of the fan-out `per`, which has none yet: it expands when list.json is built\nhint: name the fan-out, `per`, until its list is built\n");
    }

    // Once it expands, the instances stand for themselves.
    p.build().ok().ran(&["list", "per[1]", "gather"]);
    let status = p.run(&["status"]);
    status.ok().stdout_has("per     2/2 done");
    assert!(!status.stdout.contains("done before"), "{}", status.stdout);
}

/// Rewrites line `n` (from 1) of the state log with what `damage` makes of
/// it, in place.
fn damage_log_line(p: &Project, n: usize, damage: impl FnOnce(&mut Vec<u8>)) {
    let log = std::fs::read(p.path(".planexe/log")).unwrap();
    let mut lines: Vec<Vec<u8>> = log.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    damage(&mut lines[n - 1]);
    std::fs::write(p.path(".planexe/log"), lines.join(&b'\n')).unwrap();
}

#[test]
fn a_log_line_damaged_in_the_middle_is_reported_and_its_run_recovered_from_the_sidecar() {
    let p = demo();
    p.build().ok();
    p.write_at("plan.txt", "build a barn\n", 2_000_000);
    p.build().ok().ran(&["outline", "report"]);
    // Lines: outline, report, then the same again. outline's last success
    // (line 3) gets a bad byte, and is no longer JSON: the log still knows
    // its first run, of another plan.txt.
    let line = |n: usize| {
        p.read(".planexe/log")
            .lines()
            .nth(n - 1)
            .unwrap()
            .to_string()
    };
    assert!(line(3).starts_with(r#"{"task":"outline","status""#));
    damage_log_line(&p, 3, |l| l[100] = 0xff);
    let said = ".planexe/log is damaged at line 3 (not a record planexe can read); \
                recovered the last run of outline from .planexe/tasks/outline.status, \
                so it does not run again";
    p.run(&["status"])
        .ok()
        .stdout_has(said)
        .stdout_has("DONE (2)");
    p.run(&["build", "-n"]).ok().stderr_has(&format!(
        "warning: {said}; `planexe build` rewrites the log without that line"
    ));
    p.build().ok().ran(&[]).stderr_has(&format!(
        "warning: {said}; rewrote the log without that line"
    ));
    // Said once: the log no longer holds the line.
    let run = p.build();
    run.ok().ran(&[]);
    assert!(!run.stderr.contains("damaged"), "{}", run.stderr);
    assert!(!p.run(&["status"]).stdout.contains("damaged"));

    // Overwritten with garbage, naming no task, while the sidecar it would
    // be recovered from is damaged too: the run is lost and says so.
    p.write_at("plan.txt", "build a shed\n", 3_000_000);
    p.build().ok().ran(&["outline", "report"]);
    p.remove(".planexe/status.snapshot");
    let n = p.read(".planexe/log").lines().count();
    assert!(line(n - 1).starts_with(r#"{"task":"outline","status""#));
    damage_log_line(&p, n - 1, |l| l.truncate(30));
    std::fs::write(p.path(".planexe/tasks/outline.status"), "{\"task\": \"out").unwrap();
    p.build()
        .ok()
        .ran(&["outline"])
        .stderr_has("the last run of outline is lost (its sidecar does not hold it)");
}

#[test]
fn a_damaged_first_log_line_is_reported() {
    let p = demo();
    p.build().ok();
    // The first line (a task's only record) overwritten: no name left.
    damage_log_line(&p, 1, |l| l.fill(b'#'));
    p.build()
        .ok()
        .ran(&[])
        .stderr_has(".planexe/log is damaged at line 1 (not a record planexe can read); recovered the last run of ");
    p.build().ok().ran(&[]).stderr_has("nothing to do");
}

/// Copies the run directory `from` to `to` as a user would (`cp -a`).
fn copy_run(p: &Project, from: &str, to: &str) {
    let status = std::process::Command::new("cp")
        .args(["-a", from, to])
        .current_dir(p.root())
        .status()
        .unwrap();
    assert!(status.success());
}

/// A run directory whose pipeline file is inside it, copied (`cp -a run1
/// run2`, to try an edit) or moved: the copy builds its own pipeline file.
/// The record held the original's absolute path, so the copy built the
/// original's pipeline (its edit never seen: `nothing to do`) and a moved
/// run refused to build.
#[test]
fn a_copied_or_moved_run_directory_builds_its_own_pipeline_file() {
    let p = Project::new("");
    p.write(
        "run1/pipeline.toml",
        "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo one > a.txt\"\n",
    );
    p.run(&["build", "-C", "run1"]).ok();
    assert_eq!(p.read("run1/.planexe/pipeline"), "pipeline.toml\n");
    copy_run(&p, "run1", "run2");
    p.write(
        "run2/pipeline.toml",
        "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo two > a.txt\"\n",
    );
    p.run(&["build", "-C", "run2"]).ok().stderr_has("done   a");
    assert_eq!(p.read("run2/a.txt"), "two\n");
    assert_eq!(p.read("run1/a.txt"), "one\n");
    p.run(&["build", "-C", "run1"])
        .ok()
        .stderr_has("nothing to do");
    std::fs::rename(p.path("run2"), p.path("run3")).unwrap();
    p.run(&["build", "-C", "run3"])
        .ok()
        .stderr_has("nothing to do");
    // A pipeline file outside the run directory is recorded by its
    // absolute path, as before: one pipeline serves many runs.
    p.write(
        "shared.toml",
        "[tasks.b]\noutputs = [\"b.txt\"]\ncommand = \"echo b > b.txt\"\n",
    );
    p.run(&["build", "-C", "run1", "-f", "shared.toml"]).ok();
    let shared = std::fs::canonicalize(p.path("shared.toml")).unwrap();
    assert_eq!(
        p.read("run1/.planexe/pipeline"),
        format!("{}\n", shared.display())
    );
}

/// A copy of a run directory made when `.planexe/pipeline` held the
/// absolute path of a file inside the run directory still names the
/// original's file: a build warns, saying how to take its own.
#[test]
fn a_copy_whose_record_names_the_original_s_pipeline_file_is_warned_about() {
    let p = Project::new("");
    let pipeline = |word: &str| {
        format!("[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo {word} > a.txt\"\n")
    };
    p.write("run1/pipeline.toml", &pipeline("one"));
    p.run(&["build", "-C", "run1"]).ok();
    copy_run(&p, "run1", "run2");
    // As a planexe before relative records wrote it.
    let original = std::fs::canonicalize(p.path("run1/pipeline.toml")).unwrap();
    p.write(
        "run2/.planexe/pipeline",
        &format!("{}\n", original.display()),
    );
    p.write("run2/pipeline.toml", &pipeline("two"));
    let own = std::fs::canonicalize(p.path("run2/pipeline.toml")).unwrap();
    p.run(&["build", "-C", "run2"])
        .ok()
        .stderr_has("which is in another run directory")
        .stderr_has(&format!("pass -f {} once", own.display()));
    p.run(&["build", "-C", "run2", "-f", &own.display().to_string()])
        .ok()
        .stderr_has("done   a");
    assert_eq!(p.read("run2/a.txt"), "two\n");
    let again = p.run(&["build", "-C", "run2"]);
    again.ok().stderr_has("nothing to do");
    assert!(
        !again.stderr.contains("another run directory"),
        "{}",
        again.stderr
    );
    // The original, which records its own file, is not warned about.
    let first = p.run(&["build", "-C", "run1"]);
    first.ok();
    assert!(
        !first.stderr.contains("another run directory"),
        "{}",
        first.stderr
    );
}
