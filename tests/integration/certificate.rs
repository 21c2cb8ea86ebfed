//! The up-to-date certificate: a no-op build answered from stats alone must
//! never hide a change the full check would see.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use crate::harness::*;

const CERT: &str = ".planexe/uptodate";

/// Lets every stamp age past the racy window, then runs a no-op build,
/// which writes the certificate.
#[track_caller]
fn certify(p: &Project) {
    std::thread::sleep(Duration::from_millis(250));
    p.build()
        .ok()
        .ran(&[])
        .stderr_has("nothing to do: 2 task(s)");
    assert!(p.exists(CERT), "a no-op build wrote no certificate");
}

#[test]
fn a_certified_no_op_still_sees_every_kind_of_change() {
    let p = demo();
    // A model the override below can name (no task asks one).
    p.write("pipeline.toml", &format!("{DEMO}\n{OTHER_MODEL}"));
    p.build().ok().ran(&["outline", "report"]);
    certify(&p);
    // Trusted: the next builds say so without the full check.
    p.build()
        .ok()
        .ran(&[])
        .stderr_has("nothing to do: 2 task(s)");
    p.run(&["build", "-q"]).ok();
    p.run(&["build", "-n"])
        .ok()
        .stderr_has("nothing to do: 2 task(s)");

    // New bytes in a source.
    p.write("plan.txt", "build a bigger house\n");
    p.run(&["build", "-q"]).code(1);
    p.build().ok().ran(&["outline", "report"]);

    // Same size, new bytes: the stat moves, the hash differs.
    certify(&p);
    p.write_at("plan.txt", "build a bigger mouse\n", 2_000_000);
    p.build().ok().ran(&["outline", "report"]);

    // A new file matching a glob input.
    certify(&p);
    p.write("notes/c.md", "note c\n");
    p.build().ok().ran(&["report"]);

    // A deleted marker.
    certify(&p);
    p.remove(".planexe/tasks/outline.DONE");
    p.build().ok().ran(&["outline"]);

    // A deleted output.
    certify(&p);
    p.remove("report.md");
    p.build().ok().ran(&["report"]);

    // A hand-edited output is kept, and its readers re-run.
    certify(&p);
    p.write("outline.md", "EDITED BY HAND\n");
    p.build()
        .ok()
        .ran(&["report"])
        .stderr_has("kept hand-edited outline.md");

    // A changed definition.
    certify(&p);
    let pipeline = p
        .read("pipeline.toml")
        .replace("cat {inputs}", "cat  {inputs}");
    p.write("pipeline.toml", &pipeline);
    p.build().ok().ran(&["report"]);

    // A trusted no-op leaves the certificate as it is; another model
    // override is not what it was written for, so the full check runs
    // (and writes one for that override).
    certify(&p);
    let changed = || {
        std::fs::metadata(p.path(CERT))
            .map(|m| (m.ctime(), m.ctime_nsec()))
            .ok()
    };
    let before = changed();
    p.build().ok().ran(&[]);
    assert_eq!(changed(), before, "a trusted no-op rewrote the certificate");
    let run = p
        .command(&["build"])
        .env("PLANEXE_MODEL", "other")
        .output()
        .expect("run planexe");
    assert!(run.status.success(), "{run:?}");
    let cert = std::fs::read(p.path(CERT)).unwrap_or_default();
    assert!(
        cert.windows(5).any(|w| w == b"other"),
        "another model override trusted the certificate"
    );
}

#[test]
fn a_touched_input_is_accepted_and_its_new_stamp_recorded() {
    let p = demo();
    p.build().ok();
    certify(&p);
    p.set_mtime("plan.txt", 5_000_000);
    p.build().ok().ran(&[]);
    // The new mtime was recorded (a restamp line), so by mtime alone
    // nothing changed, with or without the certificate.
    p.run(&["build", "--check", "mtime"]).ok().ran(&[]);
    p.remove(CERT);
    p.run(&["build", "--check", "mtime"]).ok().ran(&[]);

    // In mtime mode a moved stat is a change, certificate or not.
    certify(&p);
    p.set_mtime("plan.txt", 6_000_000);
    p.run(&["build", "--check", "mtime"])
        .ok()
        .ran(&["outline", "report"]);
}

#[test]
fn a_damaged_certificate_is_ignored_and_state_commands_remove_it() {
    let p = demo();
    p.build().ok();
    certify(&p);
    // Torn: the full check decides, and writes a new one.
    let bytes = std::fs::read(p.path(CERT)).unwrap();
    std::fs::write(p.path(CERT), &bytes[..bytes.len() / 2]).unwrap();
    p.write("plan.txt", "a changed plan\n");
    p.build().ok().ran(&["outline", "report"]);

    certify(&p);
    p.run(&["touch", "outline"]).ok();
    assert!(!p.exists(CERT), "touch left the certificate");
    certify(&p);
    p.run(&["clean", "-y", "report"]).ok();
    assert!(!p.exists(CERT), "clean left the certificate");
    p.build().ok().ran(&["report"]);

    // status trusts it too, and agrees with the full check.
    certify(&p);
    let status = p.run(&["status", "--json"]);
    status.ok();
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(json["counts"]["done"], 2, "{json:#}");
}

#[test]
fn a_certified_fan_out_sees_a_new_item_in_its_list() {
    let p = Project::new(
        r#"
[tasks.each]
foreach = { file = "items.json", items = "/items", key = "id" }
outputs = ["out/{{ key }}.txt"]
command = "echo '{{ key }}' > {outputs}"
"#,
    );
    p.write("items.json", r#"{"items": [{"id": "a"}]}"#);
    p.build().ok().ran(&["each[a]"]);
    std::thread::sleep(Duration::from_millis(250));
    p.build().ok().ran(&[]);
    assert!(p.exists(CERT), "a no-op build wrote no certificate");
    p.write_at(
        "items.json",
        r#"{"items": [{"id": "a"}, {"id": "b"}]}"#,
        2_000_000,
    );
    p.build().ok().ran(&["each[b]"]);
    assert_eq!(p.read("out/b.txt"), "b\n");
}

#[test]
fn a_certified_folder_swapped_for_a_symlink_out_of_the_run_directory_is_refused() {
    let p = Project::new(
        r#"
[tasks.a]
inputs = ["src/a.txt"]
outputs = ["out/a.txt"]
command = "cat src/a.txt > out/a.txt"
"#,
    );
    p.write("src/a.txt", "a\n");
    std::fs::create_dir_all(p.path("out")).unwrap();
    p.build().ok().ran(&["a"]);
    std::thread::sleep(Duration::from_millis(250));
    p.build().ok().ran(&[]);
    assert!(p.exists(CERT), "a no-op build wrote no certificate");
    // Same files, same inodes, now outside the run directory.
    let outside = tempfile::tempdir_in(p.root().parent().unwrap()).unwrap();
    std::fs::rename(p.path("out"), outside.path().join("out")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("out"), p.path("out")).unwrap();
    p.build().code(2).stderr_has("out/a.txt");
}

/// A source that is a symlink to a file in the run directory (the main
/// job's `plan.txt` is one) is certified through it: a no-op build writes
/// a certificate, and every change behind the link is still seen: the
/// file it leads to edited, touched, moved; the link pointed elsewhere in
/// the run, or out of it (refused, as without a certificate).
#[test]
fn a_source_behind_a_symlink_in_the_run_is_certified_and_every_change_seen() {
    use std::os::unix::fs::symlink;
    let p = Project::new(
        r#"
[tasks.a]
inputs = ["plan.txt"]
outputs = ["out/a.txt"]
command = "cat plan.txt > out/a.txt"

[tasks.b]
inputs = ["out/a.txt"]
outputs = ["out/b.txt"]
command = "cat out/a.txt > out/b.txt"
"#,
    );
    p.write("examples/one/plan.txt", "one\n");
    p.write("examples/two.txt", "two\n");
    symlink("examples/one/plan.txt", p.path("plan.txt")).unwrap();
    p.build().ok().ran(&["a", "b"]);
    let certified = |p: &Project| {
        std::fs::remove_file(p.path(CERT)).ok();
        certify(p);
    };
    certified(&p);
    // The same bytes under a new stat: nothing to run, and still certified.
    std::fs::write(p.path("examples/one/plan.txt"), "one\n").unwrap();
    p.build().ok().ran(&[]);
    certified(&p);
    // Edited behind the link.
    std::fs::write(p.path("examples/one/plan.txt"), "one, edited\n").unwrap();
    p.build().ok().ran(&["a", "b"]);
    assert_eq!(p.read("out/b.txt"), "one, edited\n");
    certified(&p);
    // The link pointed at another file of the run.
    std::fs::remove_file(p.path("plan.txt")).unwrap();
    symlink("examples/two.txt", p.path("plan.txt")).unwrap();
    p.build().ok().ran(&["a", "b"]);
    assert_eq!(p.read("out/b.txt"), "two\n");
    certified(&p);
    // The folder on the way swapped for a copy of it: same bytes, new file.
    std::fs::remove_file(p.path("plan.txt")).unwrap();
    symlink("examples/one/plan.txt", p.path("plan.txt")).unwrap();
    p.build().ok().ran(&["a", "b"]);
    certified(&p);
    std::fs::rename(p.path("examples/one"), p.path("examples/old")).unwrap();
    p.write("examples/one/plan.txt", "one, copied\n");
    p.build().ok().ran(&["a", "b"]);
    assert_eq!(p.read("out/b.txt"), "one, copied\n");
    certified(&p);
    // Pointed out of the run directory, at a file with the same bytes.
    let outside = tempfile::tempdir_in(p.root().parent().unwrap()).unwrap();
    std::fs::write(outside.path().join("plan.txt"), "one, copied\n").unwrap();
    std::fs::remove_file(p.path("plan.txt")).unwrap();
    symlink(outside.path().join("plan.txt"), p.path("plan.txt")).unwrap();
    p.build()
        .code(2)
        .stderr_has("plan.txt is a symlink to")
        .stderr_has("outside the run directory");
}

/// A folder on the way to a source that is a symlink to another folder of
/// the run (a shared data folder linked in), and a `foreach` list that is
/// a symlink to another file of the run: both certified (no certificate at
/// all before), and every change seen: an edit behind either link, a link
/// pointed elsewhere in the run, a link pointed out of the run (refused).
#[test]
fn a_folder_or_a_list_behind_a_symlink_in_the_run_is_certified_and_every_change_seen() {
    use std::os::unix::fs::symlink;
    let p = Project::new(
        r#"
[tasks.a]
inputs = ["data/a.txt"]
outputs = ["out/a.txt"]
command = "cat data/a.txt > out/a.txt"

[tasks.per]
foreach = { file = "lists/topics.json" }
outputs = ["out/{{ item }}.md"]
command = "echo {{ item }} > out/{{ item }}.md"
"#,
    );
    p.write("store/one/a.txt", "one\n");
    p.write("store/two/a.txt", "two\n");
    p.write("lists/first.json", r#"["p"]"#);
    p.write("lists/second.json", r#"["p", "q"]"#);
    symlink("store/one", p.path("data")).unwrap();
    symlink("first.json", p.path("lists/topics.json")).unwrap();
    p.build().ok().ran(&["a", "per[0]"]);
    let certified = |p: &Project, tasks: usize| {
        std::fs::remove_file(p.path(CERT)).ok();
        std::thread::sleep(Duration::from_millis(250));
        p.build()
            .ok()
            .ran(&[])
            .stderr_has(&format!("nothing to do: {tasks} task(s)"));
        assert!(p.exists(CERT), "a no-op build wrote no certificate");
    };
    certified(&p, 2);
    // Edited behind the folder link.
    p.write("store/one/a.txt", "one, edited\n");
    p.build().ok().ran(&["a"]);
    assert_eq!(p.read("out/a.txt"), "one, edited\n");
    certified(&p, 2);
    // The folder link pointed at another folder of the run.
    std::fs::remove_file(p.path("data")).unwrap();
    symlink("store/two", p.path("data")).unwrap();
    p.build().ok().ran(&["a"]);
    assert_eq!(p.read("out/a.txt"), "two\n");
    certified(&p, 2);
    // The list edited behind its link: a new item.
    p.write("lists/first.json", r#"["p", "r"]"#);
    p.build().ok().ran(&["per[1]"]);
    assert_eq!(p.read("out/r.md"), "r\n");
    certified(&p, 3);
    // The list's link pointed at another list of the run.
    std::fs::remove_file(p.path("lists/topics.json")).unwrap();
    symlink("second.json", p.path("lists/topics.json")).unwrap();
    p.build().ok().ran(&["per[1]"]);
    assert_eq!(p.read("out/q.md"), "q\n");
    certified(&p, 3);
    // The folder link pointed out of the run directory.
    let outside = tempfile::tempdir_in(p.root().parent().unwrap()).unwrap();
    std::fs::write(outside.path().join("a.txt"), "two\n").unwrap();
    std::fs::remove_file(p.path("data")).unwrap();
    symlink(outside.path(), p.path("data")).unwrap();
    p.build()
        .code(2)
        .stderr_has("data is a symlink to")
        .stderr_has("name a file in a folder of the run directory");
}

/// A folder a glob walks that is a symlink is not vouched for (what the
/// glob read of it is not held against what the link leads to): no
/// certificate, and every build checks every task, the glob with them.
#[test]
fn a_globbed_folder_behind_a_symlink_is_checked_by_every_build() {
    let p = Project::new(
        r#"
[tasks.all]
inputs = ["notes/*.md"]
outputs = ["all.txt"]
command = "cat notes/*.md > all.txt"
"#,
    );
    p.write("store/notes/a.md", "a\n");
    std::os::unix::fs::symlink("store/notes", p.path("notes")).unwrap();
    p.build().ok().ran(&["all"]);
    std::thread::sleep(Duration::from_millis(250));
    p.build().ok().ran(&[]);
    assert!(
        !p.exists(CERT),
        "a certificate vouched for a globbed folder behind a link"
    );
    p.write("store/notes/b.md", "b\n");
    p.build().ok().ran(&["all"]);
    assert_eq!(p.read("all.txt"), "a\nb\n");
}

#[test]
fn a_pipeline_file_behind_a_symlink_is_certified_through_it() {
    let p = demo();
    let shared = tempfile::tempdir_in(p.root().parent().unwrap()).unwrap();
    let target = shared.path().join("shared.toml");
    std::fs::copy(p.path("pipeline.toml"), &target).unwrap();
    std::fs::remove_file(p.path("pipeline.toml")).unwrap();
    std::os::unix::fs::symlink(&target, p.path("pipeline.toml")).unwrap();
    p.build().ok().ran(&["outline", "report"]);
    certify(&p);
    let text = std::fs::read_to_string(&target).unwrap();
    std::fs::write(&target, text.replace("tr a-z A-Z", "tr  a-z A-Z")).unwrap();
    p.build().ok().ran(&["outline"]);
}

#[test]
fn a_change_right_after_a_build_is_seen_even_within_one_clock_tick() {
    // The build writes the certificate while its files are young: they are
    // compared by content until they settle.
    let p = demo();
    p.build().ok().ran(&["outline", "report"]);
    assert!(p.exists(CERT), "a complete build wrote no certificate");
    p.write("notes/c.md", "note c\n");
    p.build().ok().ran(&["report"]);
    p.write_at("outline.md", "HAND EDIT SAME\n", 1_000_000);
    p.build()
        .ok()
        .ran(&["report"])
        .stderr_has("kept hand-edited outline.md");
}

#[test]
fn status_from_the_snapshot_says_what_the_full_check_says() {
    let p = Project::new(
        r#"
[pipeline]
model = "m"

[models.m]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"

[tasks.list]
outputs = ["list.json"]
command = "echo '{\"items\": [{\"id\": \"a\"}, {\"id\": \"b\"}]}' > list.json"

[tasks.each]
foreach = { file = "list.json", items = "/items", key = "id" }
outputs = ["out/{{ key }}.txt"]
command = "echo '{{ key }}' > {outputs}"

[tasks.all]
inputs = ["each"]
outputs = ["all.txt"]
command = "cat {inputs} > {outputs}"
"#,
    );
    p.build().ok().ran(&["list", "each[a]", "each[b]", "all"]);
    assert!(p.exists(".planexe/status.snapshot"));
    let fast_json = p.run(&["status", "--json"]);
    let fast_text = p.run(&["status"]);
    std::fs::remove_file(p.path(".planexe/status.snapshot")).unwrap();
    let full_json = p.run(&["status", "--json"]);
    let full_text = p.run(&["status"]);
    fast_json.ok();
    assert_eq!(fast_json.stdout, full_json.stdout);
    assert_eq!(timeless(&fast_text.stdout), timeless(&full_text.stdout));
    assert!(
        fast_text
            .stdout
            .lines()
            .any(|l| l.trim_start().starts_with("each ") && l.ends_with("2/2 done")),
        "{}",
        fast_text.stdout
    );

    // A failed build leaves no certificate: status checks every task.
    p.write(
        "pipeline.toml",
        &p.read("pipeline.toml").replace("cat {inputs}", "false"),
    );
    p.build().code(1);
    assert!(!p.exists(CERT));
    let status = p.run(&["status"]);
    status.ok();
    assert!(status.stdout.contains("FAILED (1)"), "{}", status.stdout);
}

#[test]
fn status_during_a_build_reads_the_builds_snapshot_and_agrees_with_the_full_check() {
    let p = Project::new(
        r#"
[tasks.a]
outputs = ["a.txt"]
command = "echo a > a.txt"

[tasks.b]
inputs = ["a.txt"]
outputs = ["b.txt"]
command = "while [ ! -e go ]; do sleep 0.05; done; cat a.txt > b.txt"

[tasks.c]
outputs = ["c.txt"]
command = "echo c > c.txt"
"#,
    );
    // Stopped if the test fails before it ends (b waits for `go`).
    let build = Background(Some(
        p.command(&["build", "-j2"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start planexe build"),
    ));
    // "task=state" for every task `status --json` lists.
    let states = |run: &Run| -> String {
        let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
        let tasks = json["tasks"].as_array().cloned().unwrap_or_default();
        let pairs: Vec<String> = tasks
            .iter()
            .map(|t| {
                format!(
                    "{}={}",
                    t["task"].as_str().unwrap_or(""),
                    t["state"].as_str().unwrap_or("")
                )
            })
            .collect();
        pairs.join(" ")
    };
    // Once the build keeps a snapshot (from 100 ms after its start), b's
    // running sidecar is out (100 ms after it starts) and a snapshot taken
    // since says so: before, the snapshot shows b without the pid the full
    // check reads from that sidecar.
    wait_for("a and c done, b running with its pid", || {
        let run = p.run(&["status", "--json"]);
        let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
        p.exists(".planexe/status.snapshot")
            && states(&run) == "a=done b=running c=done"
            && json["tasks"][1]["pid"].is_u64()
    });
    let live = p.run(&["status", "--json"]);
    assert!(
        live.stdout.contains("\"state\":\"running\""),
        "{}",
        live.stdout
    );
    // The build keeps a snapshot for status; the full check agrees with it.
    assert!(
        p.exists(".planexe/status.snapshot"),
        "the build keeps no snapshot"
    );
    std::fs::remove_file(p.path(".planexe/status.snapshot")).unwrap();
    let full = p.run(&["status", "--json"]);
    let tasks = |run: &Run| {
        let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        json["tasks"].clone()
    };
    assert_eq!(tasks(&live), tasks(&full));

    p.write("go", "");
    assert!(build.wait().status.success());
    let after = p.run(&["status", "--json"]);
    assert_eq!(states(&after), "a=done b=done c=done");
}

#[test]
fn an_output_of_a_removed_task_appearing_again_is_warned_about() {
    let p = demo();
    p.build().ok();
    // `report` leaves the pipeline, its output goes: nothing to warn about.
    let pipeline = p.read("pipeline.toml");
    let cut = pipeline.find("[tasks.report]").unwrap();
    p.write("pipeline.toml", &pipeline[..cut]);
    p.remove("report.md");
    p.build().ok().ran(&[]);
    assert!(p.exists(CERT));
    p.write("report.md", "back\n");
    p.build()
        .ok()
        .ran(&[])
        .stderr_has("task report is no longer in the pipeline");
}

#[test]
fn a_warning_about_the_pipeline_choice_is_printed_once_per_build() {
    let p = demo();
    p.build().ok();
    p.write("other.toml", &p.read("pipeline.toml"));
    for round in 0..3 {
        // Changed or not, the warning is said once.
        if round > 0 {
            p.write("plan.txt", &"x".repeat(round));
        }
        let run = p
            .command(&["build"])
            .env("PLANEXE_PIPELINE", "other.toml")
            .output()
            .expect("run planexe");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{stderr}");
        assert_eq!(
            stderr.matches("recorded by an earlier build here").count(),
            1,
            "{stderr}"
        );
    }
}

/// After each kind of edit, what `build -n` says with the certificate's
/// list of changes (only the tasks they reach are checked) is what it says
/// checking every task.
#[test]
fn the_tasks_a_certificate_s_changes_reach_are_all_that_is_stale() {
    reach_agrees_with_the_full_check(true);
}

/// The same with each edit right after the build before it: the
/// certificate those builds write is made from the one they judged (only
/// what they checked or ran is statted again), and must vouch for exactly
/// what a full check would.
#[test]
fn a_certificate_made_from_the_last_one_vouches_for_what_the_full_check_would() {
    reach_agrees_with_the_full_check(false);
}

fn reach_agrees_with_the_full_check(settle: bool) {
    let p = Project::new(
        r#"
[tasks.a]
inputs = ["src/one.txt"]
outputs = ["out/a.txt"]
command = "cat src/one.txt > out/a.txt"
[tasks.b]
inputs = ["src/two.txt"]
outputs = ["out/b.txt"]
command = "cat src/two.txt > out/b.txt"
[tasks.c]
inputs = ["out/a.txt", "out/b.txt"]
outputs = ["out/c.txt"]
command = "cat out/a.txt out/b.txt > out/c.txt"
[tasks.notes]
inputs = ["notes/*.md"]
outputs = ["out/notes.txt"]
command = "cat {inputs} > out/notes.txt"
min_bytes = 0
[tasks.d]
inputs = ["out/c.txt", "out/notes.txt"]
outputs = ["out/d.txt"]
command = "cat out/c.txt out/notes.txt > out/d.txt"
"#,
    );
    p.write("src/one.txt", "1\n");
    p.write("src/two.txt", "2\n");
    p.write("notes/x.md", "x\n");
    let both = |p: &Project| {
        let with = p.run(&["build", "-n"]);
        std::fs::rename(p.path(CERT), p.path(".planexe/aside")).unwrap();
        let without = p.run(&["build", "-n"]);
        std::fs::rename(p.path(".planexe/aside"), p.path(CERT)).unwrap();
        assert_eq!(with.stdout, without.stdout, "{}", with.stderr);
        with.stdout
    };
    type Edit<'a> = (&'a str, &'a dyn Fn(&Project));
    let edits: [Edit; 6] = [
        ("a source", &|p| {
            p.write_at("src/one.txt", "9\n", 2_000_000);
        }),
        ("a touch", &|p| p.set_mtime("src/two.txt", 3_000_000)),
        ("an output by hand", &|p| {
            p.write("out/b.txt", "hand\n");
        }),
        ("a deleted output", &|p| p.remove("out/c.txt")),
        ("a new note for the glob", &|p| {
            p.write("notes/y.md", "y\n");
        }),
        ("a deleted marker", &|p| p.remove(".planexe/tasks/a.DONE")),
    ];
    for (what, edit) in edits {
        p.build().ok();
        if settle {
            std::thread::sleep(Duration::from_millis(250));
            p.build().ok();
        }
        assert!(p.exists(CERT), "no certificate before {what}");
        edit(&p);
        let said = both(&p);
        // A touch leaves the same bytes: nothing is stale.
        assert_eq!(said.is_empty(), what == "a touch", "{what}: {said}");
    }
    // And once more after the last edit: the build it makes writes a
    // certificate that holds, then sees a new change.
    p.build().ok();
    p.build().ok().stderr_has("nothing to do");
    p.write("src/two.txt", "two again\n");
    assert_eq!(both(&p).lines().count(), 3, "b, c and d are stale");
}

/// An edit right after a build (its state files still too young for
/// their stats to be trusted, so judged by content) is answered from the
/// certificate's list of changes: only the tasks it reaches are checked,
/// never every task (`PLANEXE_STATS` names the phases a build went
/// through; the full check begins with the damaged-sidecar scan).
#[test]
fn an_edit_right_after_a_build_checks_only_what_it_reaches() {
    let p = two_sources();
    assert!(p.exists(CERT));
    p.write("src/one.txt", "one\n");
    let stderr = stats_build(&p);
    assert!(stderr.contains("start  a"), "{stderr}");
    assert!(!stderr.contains("start  b"), "{stderr}");
    assert!(stderr.contains("stats: plan"), "{stderr}");
    assert!(
        !stderr.contains("damaged-sidecar scan"),
        "the edit took the full check: {stderr}"
    );
}

/// The tasks an edit ran wrote their outputs just before the certificate
/// that followed, too young for their stats to be trusted: the next edit
/// finds them by content as recorded, which is no change, and checks only
/// the tasks it reaches itself (`PLANEXE_STATS` counts the tasks checked),
/// not again those the edit before ran.
#[test]
fn an_edit_does_not_check_again_what_the_edit_before_it_ran() {
    let p = Project::new(
        r#"
[tasks.a]
inputs = ["src/one.txt"]
outputs = ["out/a.txt"]
command = "cat src/one.txt > out/a.txt"
[tasks.b]
inputs = ["src/two.txt"]
outputs = ["out/b.txt"]
command = "cat src/two.txt > out/b.txt"
[tasks.c]
inputs = ["out/a.txt", "out/b.txt"]
outputs = ["out/c.txt"]
command = "cat out/a.txt out/b.txt > out/c.txt"
"#,
    );
    p.write("src/one.txt", "1\n");
    p.write("src/two.txt", "2\n");
    p.build().ok().ran(&["a", "b", "c"]);
    p.write("src/one.txt", "one\n");
    p.build().ok().ran(&["a", "c"]);
    assert!(p.exists(CERT));
    p.write("src/two.txt", "two\n");
    let stderr = stats_build(&p);
    assert!(
        stderr.contains("start  b") && stderr.contains("start  c"),
        "{stderr}"
    );
    assert!(!stderr.contains("start  a"), "{stderr}");
    // b, which reads the edited file, and c, judged once b is done.
    let checked = stderr
        .lines()
        .find(|l| l.starts_with("stats: plan: check a task"))
        .and_then(|l| l.split_whitespace().nth_back(1))
        .unwrap_or_else(|| panic!("no count of tasks checked: {stderr}"));
    assert_eq!(checked, "2", "{stderr}");
    assert_eq!(p.read("out/c.txt"), "one\ntwo\n");
}

/// A build with `PLANEXE_STATS=1`, which must succeed: its stderr, where
/// the phases it went through are named.
#[track_caller]
fn stats_build(p: &Project) -> String {
    let out = p
        .command(&["build"])
        .env("PLANEXE_STATS", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// Two tasks that read a source each, just built (the certificate written,
/// its entries still young).
fn two_sources() -> Project {
    let p = Project::new(
        r#"
[tasks.a]
inputs = ["src/one.txt"]
outputs = ["out/a.txt"]
command = "cat src/one.txt > out/a.txt"
[tasks.b]
inputs = ["src/two.txt"]
outputs = ["out/b.txt"]
command = "cat src/two.txt > out/b.txt"
"#,
    );
    p.write("src/one.txt", "1\n");
    p.write("src/two.txt", "2\n");
    p.build().ok().ran(&["a", "b"]);
    p
}

/// A build begins to open the pipeline as soon as the certificate's
/// judgement finds an edit, before it ends. When the judgement then finds
/// planexe's own state changed too (a status file damaged in place), that
/// opening, made for state the certificate vouches for, is not the one the
/// build uses: the full check finds the damage and repairs it.
#[test]
fn an_edit_found_beside_a_damaged_status_file_still_has_it_repaired() {
    let p = two_sources();
    certify(&p);
    let full = p.read(".planexe/tasks/b.status");
    std::fs::write(p.path(".planexe/tasks/b.status"), &full[..40]).unwrap();
    p.write("src/one.txt", "one\n");
    p.build()
        .ok()
        .ran(&["a"])
        .stderr_has("b.status was damaged; rewrote it from the state log");
    assert_eq!(p.status_json("b")["state"], "done");
    p.build().ok().ran(&[]).stderr_has("nothing to do");
}

/// What a no-op or a touch costs stays the certificate's judgement: no
/// change it finds begins to open the pipeline (`PLANEXE_STATS` names the
/// phases a build went through). An edit does.
#[test]
fn only_an_edit_begins_to_open_the_pipeline() {
    let p = two_sources();
    certify(&p);
    let noop = stats_build(&p);
    assert!(noop.contains("nothing to do"), "{noop}");
    assert!(!noop.contains("pipeline: parse"), "{noop}");
    // New stats, the same bytes.
    p.write_at("src/two.txt", "2\n", 2_000_000);
    let touched = stats_build(&p);
    assert!(touched.contains("nothing to do"), "{touched}");
    assert!(!touched.contains("pipeline: parse"), "{touched}");
    p.write("src/two.txt", "two\n");
    let edit = stats_build(&p);
    assert!(edit.contains("start  b"), "{edit}");
    assert!(edit.contains("pipeline: parse"), "{edit}");
    assert_eq!(p.read("out/b.txt"), "two\n");
}

/// Runs a build whose first task waits (it touches `started`, then waits
/// for `go`), makes `edit` while it waits, each side of it a moment older
/// than the window in which a stamp is too young to trust (the
/// certificate would take the edited file's stat at its word), and lets
/// the build end.
fn edit_while_building(p: &Project, edit: impl FnOnce()) {
    let mut build = p
        .command(&["build"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run planexe");
    wait_for("the first task to start", || p.exists("started"));
    std::thread::sleep(Duration::from_millis(250));
    edit();
    std::thread::sleep(Duration::from_millis(250));
    p.write("go", "");
    assert!(build.wait().unwrap().success());
}

/// The pipeline file edited while a build runs: that build read the file
/// before the edit, so its certificate must not vouch for the file as it
/// is after it (the next build said `nothing to do` and never ran the
/// task whose command the edit changed).
#[test]
fn a_pipeline_edited_during_a_build_is_not_vouched_for_by_its_certificate() {
    const BEFORE: &str = r#"
[tasks.a]
outputs = ["a.txt"]
command = "touch started; while [ ! -e go ]; do sleep 0.02; done; echo a > a.txt"

[tasks.b]
inputs = ["a.txt"]
outputs = ["b.txt"]
command = "cp a.txt b.txt"
"#;
    let p = Project::new(BEFORE);
    edit_while_building(&p, || {
        p.write(
            "pipeline.toml",
            &BEFORE.replace("cp a.txt b.txt", "cp a.txt b.txt && echo edited >> b.txt"),
        );
    });
    p.run(&["build", "-n"]).ok().stdout_has("b: ");
    p.build().ok().ran(&["b"]);
    assert_eq!(p.read("b.txt"), "a\nedited\n");
}

/// A file a glob input matches, made while a build runs: the build
/// resolved the glob before it existed, so its certificate must not vouch
/// for the folder as it is after (the next build found nothing to do, and
/// the task that reads the glob never read the new file).
#[test]
fn a_file_a_glob_matches_made_during_a_build_is_read_by_the_next() {
    let p = Project::new(
        r#"
[tasks.wait]
outputs = ["w.txt"]
command = "touch started; while [ ! -e go ]; do sleep 0.02; done; echo w > w.txt"

[tasks.all]
inputs = ["w.txt", "notes/*.md"]
outputs = ["all.txt"]
command = "cat notes/*.md > all.txt"
"#,
    );
    p.write("notes/a.md", "a\n");
    edit_while_building(&p, || {
        p.write("notes/b.md", "b\n");
    });
    p.build().ok().ran(&["all"]);
    assert_eq!(p.read("all.txt"), "a\nb\n");
}

/// A build whose own task writes into a folder a glob walks: the folder's
/// stat moves, but not what the glob matches (a file a task produces is
/// never matched), so the build still leaves a certificate; one more
/// source in the folder is still seen.
#[test]
fn a_task_writing_into_a_globbed_folder_leaves_a_certificate_that_sees_a_new_source() {
    let p = Project::new(
        r#"
[tasks.gen]
outputs = ["notes/gen.md"]
command = "echo g > notes/gen.md"

[tasks.all]
inputs = ["notes/*.md", "notes/gen.md"]
outputs = ["all.txt"]
command = "cat notes/*.md > all.txt"
"#,
    );
    p.write("notes/a.md", "a\n");
    p.build().ok().ran(&["gen", "all"]);
    assert!(p.exists(CERT), "the build left no certificate");
    p.build()
        .ok()
        .ran(&[])
        .stderr_has("nothing to do: 2 task(s)");
    p.write("notes/b.md", "b\n");
    p.build().ok().ran(&["all"]);
    assert_eq!(p.read("all.txt"), "a\nb\ng\n");
}
