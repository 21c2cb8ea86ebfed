//! Surgical invalidation as a user of make would try it: `clean` of a
//! task, an output, a fan-out or one of its instances, `touch`, and what
//! `status`, `explain` and `build -n` say afterwards.

use crate::harness::*;

/// A file a task no longer in the pipeline once wrote, which the pipeline
/// now reads as a source (kept by hand), is not deleted by `clean` of that
/// task nor by `clean --all`: clean never deletes a source file.
#[test]
fn clean_of_a_removed_task_keeps_what_the_pipeline_now_reads_as_a_source() {
    let p = Project::new(
        "[tasks.old]\noutputs = [\"notes.txt\"]\ncommand = \"echo made > notes.txt\"\n",
    );
    p.build().ok();
    p.write(
        "pipeline.toml",
        "[tasks.b]\ninputs = [\"notes.txt\"]\noutputs = [\"b.txt\"]\ncommand = \"cp notes.txt b.txt\"\n",
    );
    p.write("notes.txt", "kept by hand\n");
    p.build().ok();
    let listed = p.run(&["clean", "old", "--dry-run"]);
    listed.ok().stderr_has(
        "keeping notes.txt: old wrote it, but no task writes it now and the pipeline reads it: it is a source file",
    );
    assert!(!listed.stdout.contains("notes.txt\n"), "{}", listed.stdout);
    let all = p.run(&["clean", "--all", "--dry-run"]);
    all.ok().stderr_has("keeping notes.txt");
    assert!(!all.stdout.contains("notes.txt\n"), "{}", all.stdout);
    p.run(&["clean", "old", "-y"]).ok();
    assert_eq!(p.read("notes.txt"), "kept by hand\n");
    assert!(!p.exists(".planexe/tasks/old.status"));
    p.run(&["build", "-n"]).ok().stderr_has("nothing to do");
}

const CHAIN: &str = r#"
[tasks.a]
inputs = ["src.txt"]
outputs = ["a.txt"]
command = "cat src.txt > a.txt"
[tasks.b]
inputs = ["a.txt"]
outputs = ["b.txt"]
command = "cat a.txt > b.txt"
[tasks.m]
matrix = { e = ["p", "q"] }
outputs = ["m/{{ e }}.txt"]
command = "mkdir -p m && echo {{ e }} > m/{{ e }}.txt"
"#;

/// A task built, then cleaned, is `cleaned` to `status`, `build -n` and
/// `explain`, not `never built`, until it runs again; so is a fan-out
/// instance.
#[test]
fn a_cleaned_task_is_told_cleaned_not_never_built() {
    let p = Project::new(CHAIN);
    p.write("src.txt", "s");
    p.build().ok();
    p.run(&["clean", "a", "m[q]", "-y"]).ok();
    let status = p.run(&["status"]);
    status.ok();
    assert!(
        status.stdout.contains("  a  cleaned\n"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("  m  1/2 done, 1 cleaned\n"),
        "{}",
        status.stdout
    );
    let dry = p.run(&["build", "-n"]);
    dry.ok();
    assert_eq!(
        dry.stdout.lines().collect::<Vec<_>>(),
        ["a: cleaned", "b: upstream a will re-run", "m[q]: cleaned"]
    );
    p.run(&["explain", "a"]).ok().stdout_has(
        "a: stale: cleaned\n  no successful run is recorded: `planexe clean` forgot the last one\n",
    );
    let json = p.run(&["status", "--json"]);
    json.ok()
        .stdout_has(r#""task":"a","state":"never-built","reason":"cleaned""#);
    // A task never built at all is still `never built`.
    p.write(
        "pipeline.toml",
        &format!("{CHAIN}[tasks.new]\noutputs = [\"n.txt\"]\ncommand = \"echo n > n.txt\"\n"),
    );
    p.run(&["build", "-n"])
        .ok()
        .stdout_has("new: never built\n");
    p.build().ok();
    p.run(&["build", "-n"]).ok().stderr_has("nothing to do");
    p.run(&["status"]).ok();
}

const FANOUT: &str = r#"
[tasks.list]
inputs = ["src.txt"]
outputs = ["list.json"]
command = "printf '[\"x\",\"y\"]' > list.json"
[tasks.per]
foreach = { file = "list.json" }
outputs = ["per/{{ item }}.txt"]
command = "mkdir -p per && echo {{ item }} > per/{{ item }}.txt"
[tasks.gather]
inputs = ["per"]
outputs = ["all.txt"]
command = "cat {inputs} > all.txt"
"#;

/// `touch` of a task that reads a fan-out whose list is to be built is
/// refused, and changes nothing: it would have recorded a run that read
/// none of the instances' outputs in place of the last good one, so the
/// task ran again once the list was rebuilt as it was.
#[test]
fn touch_of_a_task_reading_a_fanout_to_expand_is_refused_and_changes_nothing() {
    let p = Project::new(FANOUT);
    p.write("src.txt", "s");
    p.build().ok();
    p.run(&["clean", "list", "-y"]).ok();
    let before = p.read(".planexe/tasks/gather.status");
    p.run(&["touch", "gather"])
        .code(2)
        .stderr_has("cannot touch gather: it reads per, which expands when list.json is built")
        .stderr_has("hint: run `planexe build list` first (it expands per), then touch gather");
    assert_eq!(p.read(".planexe/tasks/gather.status"), before);
    // The list made again as it was: nothing else runs.
    p.build().ok().ran(&["list"]);
}

/// After a hand edit of an output, `touch --downstream` accepts it and
/// every task that depends on it, through a fan-out's list to its
/// instances and their gather, so the next build runs nothing.
#[test]
fn touch_downstream_accepts_a_hand_edit_and_everything_below_it() {
    let p = Project::new(FANOUT);
    p.write("src.txt", "s");
    p.build().ok();
    p.write("per/x.txt", "x, edited\n");
    let touched = p.run(&["touch", "per[0]", "--downstream"]);
    touched.ok();
    assert_eq!(
        touched.stderr.lines().collect::<Vec<_>>(),
        ["touched per[0]", "touched gather"]
    );
    p.build().ok().ran(&[]);
    p.write("src.txt", "t");
    let touched = p.run(&["touch", "list", "--downstream"]);
    touched.ok().stderr_has("touched per[1]\ntouched gather");
    p.build().ok().ran(&[]);
    assert_eq!(p.read("per/x.txt"), "x, edited\n");
}

/// `clean 'per[1]' --downstream` cleans what gathers the fan-out also
/// while the fan-out waits for its list (the instance known from its
/// records only), as it does once the fan-out has expanded.
#[test]
fn clean_downstream_of_an_instance_waiting_for_its_list_reaches_the_gather() {
    let p = Project::new(FANOUT);
    p.write("src.txt", "s");
    p.build().ok();
    let expanded = p.run(&["clean", "per[1]", "--downstream", "--dry-run"]);
    expanded
        .ok()
        .stdout_has("per/y.txt\n")
        .stdout_has("all.txt\n");
    p.run(&["clean", "list", "-y"]).ok();
    let waiting = p.run(&["clean", "per[1]", "--downstream", "--dry-run"]);
    waiting
        .ok()
        .stdout_has("per/y.txt\n")
        .stdout_has("all.txt\n");
    p.run(&["clean", "per[1]", "--downstream", "-y"]).ok();
    assert!(!p.exists("all.txt") && !p.exists("per/y.txt"));
    assert!(p.exists("per/x.txt"));
    p.build().ok().ran(&["list", "per[1]", "gather"]);
}

/// `touch` of an instance of a fan-out waiting for its list says what to
/// build first, not to name the fan-out (which cannot be touched either).
#[test]
fn touch_of_an_instance_waiting_for_its_list_says_to_build_the_list() {
    let p = Project::new(FANOUT);
    p.write("src.txt", "s");
    p.build().ok();
    p.run(&["clean", "list", "-y"]).ok();
    p.run(&["touch", "per[1]"])
        .code(2)
        .stderr_has("cannot touch per[1]: per expands when list.json is built, and has no instances until then")
        .stderr_has("hint: run `planexe build list` first (it expands per), then touch 'per[1]'");
    p.run(&["build", "list"]).ok();
    p.run(&["touch", "per[1]"])
        .ok()
        .stderr_has("touched per[1]");
}
