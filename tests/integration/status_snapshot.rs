//! `status` from its snapshot (issue 21): it must see every change to a
//! source that the full check sees, and check every task itself whenever
//! the snapshot cannot be trusted (damaged, of another version, for
//! another model override).
//!
//! The snapshot trusts task outputs in folders: an output there edited in
//! place by hand leaves `status` saying DONE (2) from the snapshot, where
//! the full check says `report` is stale. That difference tells which of
//! the two answered. (Outputs directly in the run directory are statted.)

use std::process::Stdio;
use std::time::Duration;

use crate::harness::*;

const SNAPSHOT: &str = ".planexe/status.snapshot";
const MAGIC: &[u8] = b"planexe status.snapshot 6\n";

/// The demo with its outline in a folder, built, with `status` answering
/// from the snapshot.
fn built() -> Project {
    let p = demo();
    p.write(
        "pipeline.toml",
        // With a model a model override can name (no task asks one).
        &format!(
            "{}\n{OTHER_MODEL}",
            DEMO.replace("outline.md", "out/outline.md")
        ),
    );
    p.build().ok().ran(&["outline", "report"]);
    assert!(p.exists(SNAPSHOT), "a complete build saved no snapshot");
    p.run(&["status"]).ok().stdout_has("DONE (2)");
    p
}

/// Edits an output in a folder in place: only the full check sees it.
fn edit_an_output(p: &Project) {
    p.write("out/outline.md", "EDITED BY HAND\n");
}

#[track_caller]
fn answered_from_the_snapshot(run: &Run) {
    run.ok().stdout_has("DONE (2)");
    assert!(!run.stdout.contains("STALE"), "{}", run.stdout);
}

#[track_caller]
fn checked_every_task(run: &Run) {
    run.ok()
        .stdout_has("STALE (1)")
        .stdout_has("input out/outline.md changed");
}

#[test]
fn status_from_the_snapshot_sees_every_change_to_a_source() {
    // New bytes in a source, text and JSON alike.
    let p = built();
    p.write("plan.txt", "build a bigger house\n");
    p.run(&["status"])
        .ok()
        .stdout_has("STALE (1)")
        .stdout_has("input plan.txt changed")
        .stdout_has("upstream outline will re-run");
    let json: serde_json::Value =
        serde_json::from_str(&p.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(json["counts"]["stale"], 1, "{json:#}");

    // Same size, new bytes, right after the build (its stat recorded
    // young, so compared by content too).
    let p = built();
    p.write_at("plan.txt", "build a mouse\n", 2_000_000);
    p.run(&["status"]).ok().stdout_has("input plan.txt changed");

    // A new file matching a glob input.
    let p = built();
    p.write("notes/c.md", "note c\n");
    p.run(&["status"]).ok().stdout_has("STALE (1)");

    // A changed definition.
    let p = built();
    p.write(
        "pipeline.toml",
        &p.read("pipeline.toml")
            .replace("cat {inputs}", "cat  {inputs}"),
    );
    p.run(&["status"]).ok().stdout_has("STALE (1)");

    // A deleted marker, in planexe's own folder of task states.
    let p = built();
    p.remove(".planexe/tasks/outline.DONE");
    p.run(&["status"]).ok().stdout_has(".DONE marker missing");
}

#[test]
fn status_from_the_snapshot_sees_an_output_in_the_root_deleted_or_replaced() {
    // The demo's outputs sit in the run directory itself, which the
    // certificate does not list.
    let p = demo();
    p.build().ok().ran(&["outline", "report"]);
    p.run(&["status"]).ok().stdout_has("DONE (2)");
    p.remove("report.md");
    p.run(&["status"])
        .ok()
        .stdout_has("STALE (1)")
        .stdout_has("output report.md missing");
    p.build().ok().ran(&["report"]);
    p.run(&["status"]).ok().stdout_has("DONE (2)");
    std::fs::write(p.path("other"), "REPLACED\n").unwrap();
    std::fs::rename(p.path("other"), p.path("outline.md")).unwrap();
    p.run(&["status"])
        .ok()
        .stdout_has("STALE (1)")
        .stdout_has("input outline.md changed");
    let json: serde_json::Value =
        serde_json::from_str(&p.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(json["counts"]["stale"], 1, "{json:#}");

    // Any other file coming or going in the root leaves the snapshot
    // trusted: the task lines are not checked again.
    let p = built();
    p.write("unrelated.txt", "x\n");
    edit_an_output(&p);
    answered_from_the_snapshot(&p.run(&["status"]));
}

#[test]
fn status_trusts_outputs_and_with_full_checks_every_task() {
    let p = built();
    edit_an_output(&p);
    answered_from_the_snapshot(&p.run(&["status"]));
    checked_every_task(&p.run(&["status", "--full"]));
    let json: serde_json::Value =
        serde_json::from_str(&p.run(&["status", "--json", "--full"]).stdout).unwrap();
    assert_eq!(json["counts"]["stale"], 1, "{json:#}");
    p.build()
        .ok()
        .ran(&["report"])
        .stderr_has("kept hand-edited out/outline.md");
}

/// Makes the blake3 after the snapshot's head that of the head.
fn resum_head(bytes: &mut [u8]) {
    let start = MAGIC.len() + 8;
    let len = u64::from_le_bytes(bytes[MAGIC.len()..start].try_into().unwrap()) as usize;
    let sum = blake3::hash(&bytes[start..start + len]);
    bytes[start + len..start + len + 32].copy_from_slice(sum.as_bytes());
}

#[test]
fn a_damaged_or_foreign_snapshot_leads_to_the_full_check() {
    let p = built();
    let good = std::fs::read(p.path(SNAPSHOT)).unwrap();
    assert!(good.starts_with(MAGIC));
    edit_an_output(&p);
    answered_from_the_snapshot(&p.run(&["status"]));

    // A damaged head.
    let mut bytes = good.clone();
    bytes[MAGIC.len() + 8 + 3] ^= 1;
    std::fs::write(p.path(SNAPSHOT), &bytes).unwrap();
    checked_every_task(&p.run(&["status"]));
    let json: serde_json::Value =
        serde_json::from_str(&p.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(json["counts"]["stale"], 1, "{json:#}");

    // Torn.
    std::fs::write(p.path(SNAPSHOT), &good[..good.len() - 1]).unwrap();
    checked_every_task(&p.run(&["status"]));

    // Written by another version: the head begins with the version (a
    // length, then its bytes), summed again as that version would.
    let mut bytes = good.clone();
    let at = MAGIC.len() + 8;
    let len = bytes[at] as usize;
    assert_eq!(
        &bytes[at + 1..at + 1 + len],
        env!("CARGO_PKG_VERSION").as_bytes()
    );
    bytes[at + len] = if bytes[at + len] == b'9' { b'8' } else { b'9' };
    resum_head(&mut bytes);
    std::fs::write(p.path(SNAPSHOT), &bytes).unwrap();
    checked_every_task(&p.run(&["status"]));

    // Saved for another model override.
    std::fs::write(p.path(SNAPSHOT), &good).unwrap();
    answered_from_the_snapshot(&p.run(&["status"]));
    let other = p
        .command(&["status"])
        .env("PLANEXE_MODEL", "other")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&other.stdout).contains("STALE (1)"),
        "{other:?}"
    );
}

#[test]
fn a_damaged_rendering_is_rendered_again_from_the_lines() {
    let p = built();
    let json = p.run(&["status", "--json"]);
    let text = p.run(&["status"]);
    // The JSON is the file's last section: damage its last byte.
    let mut bytes = std::fs::read(p.path(SNAPSHOT)).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    std::fs::write(p.path(SNAPSHOT), &bytes).unwrap();
    assert_eq!(p.run(&["status", "--json"]).ok().stdout, json.stdout);
    // The text, before it: damage its first line of groups.
    let mut bytes = std::fs::read(p.path(SNAPSHOT)).unwrap();
    // Found in the bytes: a lossy string of them would put each byte that
    // is not UTF-8 (the binary head, hashes) as three, and shift the
    // offset past the text, or out of the file.
    let groups = bytes.windows(8).position(|w| w == b"DONE (2)").unwrap();
    bytes[groups] ^= 1;
    std::fs::write(p.path(SNAPSHOT), &bytes).unwrap();
    let again = p.run(&["status"]);
    assert_eq!(timeless(&again.ok().stdout), timeless(&text.stdout));
}

#[test]
fn files_touched_and_recorded_by_a_no_op_build_keep_the_snapshot_trusted() {
    let p = built();
    std::thread::sleep(Duration::from_millis(250));
    // Same bytes, new mtime: the no-op build records it (a restamp line
    // in the log, the certificate rewritten with its generation).
    p.set_mtime("plan.txt", 5_000_000);
    p.build()
        .ok()
        .ran(&[])
        .stderr_has("nothing to do: 2 task(s)");
    assert!(p.read(".planexe/log").contains("\"restamp\""));
    edit_an_output(&p);
    answered_from_the_snapshot(&p.run(&["status"]));
    // By mtime alone, a moved stat is a change: every task is checked.
    checked_every_task(&p.run(&["status", "--check", "mtime"]));
}

/// `status` lines with the clock taken out: the progress line, how long a
/// task has been running (`(3s)`), and how long the build has
/// (`state    running (pid 12, 3s)`: two calls a moment apart may fall on
/// either side of a second).
fn clockless(text: &str) -> Vec<String> {
    timeless(text)
        .into_iter()
        .map(|l| match (l.find(" ("), l.find("s), attempt")) {
            (Some(open), Some(close)) if open < close => {
                format!("{}{}", &l[..open], &l[close + 2..])
            }
            _ => match l.rfind(", ") {
                Some(comma) if l.starts_with("state ") && l.ends_with("s)") => {
                    format!("{})", &l[..comma])
                }
                _ => l.to_string(),
            },
        })
        .collect()
}

#[test]
fn status_while_a_build_runs_says_what_the_full_check_says() {
    // A failure, a task running until told, one done, two waiting on the
    // running one, a fan-out's instances: every group but STOPPED.
    let p = Project::new(concat!(
        "[tasks.broken]\noutputs = [\"b\"]\ncommand = \"exit 3\"\n",
        "[tasks.quick]\noutputs = [\"q\"]\ncommand = \"echo q > q\"\n",
        "[tasks.held]\noutputs = [\"h\"]\n",
        "command = \"while [ ! -e go ]; do sleep 0.05; done; echo h > h\"\n",
        "[tasks.after]\ninputs = [\"h\"]\noutputs = [\"a\"]\ncommand = \"cp h a\"\n",
        "[tasks.last]\ninputs = [\"a\"]\noutputs = [\"l\"]\ncommand = \"cp a l\"\n",
        "[tasks.each]\nmatrix = { v = [\"x\", \"y\"] }\noutputs = [\"e-{{ v }}\"]\n",
        "command = \"echo {{ v }} > e-{{ v }}\"\n",
    ));
    // Stopped if the test fails before it ends (`held` waits for `go`).
    let build = in_background(&p, &["build", "-k", "-j4"]);
    // The live snapshot is saved as the build goes: wait for the one that
    // has seen every other task end, and `held`'s `running` sidecar, which
    // is published only once it has run a while (its pid and start time,
    // which the full check reads from the build's journal at once).
    wait_for(
        "the live snapshot to show the held task alone running, with its pid",
        || {
            // Saved from 100 ms after the build's start; until then
            // `status` checks every task.
            if !p.exists(SNAPSHOT) {
                return false;
            }
            let out = p.run(&["status"]).stdout;
            out.contains("RUNNING (1)")
                && out.contains("FAILED (1)")
                && out.contains("2/2 done")
                && out
                    .lines()
                    .any(|l| l.starts_with("  held ") && l.contains(", pid "))
        },
    );
    let live = p.run(&["status"]);
    let full = p.run(&["status", "--full"]);
    p.write("go", "");
    assert_eq!(build.wait().status.code(), Some(1));
    assert_eq!(clockless(&live.ok().stdout), clockless(&full.ok().stdout));
    // The groups in their order, the clocked one between the others.
    let order: Vec<usize> = [
        "FAILED (1)",
        "RUNNING (1)",
        "STALE (2)",
        "DONE (1)",
        "FAN-OUT",
    ]
    .iter()
    .map(|g| {
        live.stdout
            .find(g)
            .unwrap_or_else(|| panic!("{g}: {}", live.stdout))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", live.stdout);
    assert!(
        live.stdout
            .lines()
            .any(|l| l.starts_with("  held ") && l.contains(" since ")),
        "{}",
        live.stdout
    );
}

/// A build of some targets (`planexe build b`) checks only what they need;
/// a task it leaves out whose input changed is stale all the same, and
/// `status` says so while the build runs (from the build's live snapshot)
/// and after it, as `build -n` does: it was said to be done.
#[test]
fn a_task_a_targeted_build_leaves_out_is_stale_in_status_while_it_runs() {
    let p = Project::new(concat!(
        "[tasks.a]\ninputs = [\"src_a.txt\"]\noutputs = [\"a.txt\"]\ncommand = \"cp src_a.txt a.txt\"\n",
        "[tasks.b]\ninputs = [\"a.txt\"]\noutputs = [\"b.txt\"]\n",
        "command = \"while [ ! -e go ]; do sleep 0.05; done; cp a.txt b.txt\"\n",
        "[tasks.c]\ninputs = [\"src_c.txt\"]\noutputs = [\"c.txt\"]\ncommand = \"cp src_c.txt c.txt\"\n",
        "[tasks.d]\ninputs = [\"a.txt\"]\noutputs = [\"d.txt\"]\ncommand = \"cp a.txt d.txt\"\n",
    ));
    p.write("src_a.txt", "a\n")
        .write("src_c.txt", "c\n")
        .write("go", "");
    p.build().ok().ran(&["a", "b", "c", "d"]);
    p.remove("go");
    p.write("src_a.txt", "a2\n").write("src_c.txt", "c2\n");
    let dry = p.run(&["build", "-n"]).ok().stdout.clone();
    assert!(dry.contains("c: input src_c.txt changed"), "{dry}");
    let idle = std::fs::metadata(p.path(SNAPSHOT)).unwrap();
    // Stopped if the test fails before it ends (`b` waits for `go`).
    let build = in_background(&p, &["build", "b"]);
    wait_for("the build's live snapshot with b running", || {
        use std::os::unix::fs::MetadataExt;
        let live = std::fs::metadata(p.path(SNAPSHOT)).ok();
        let rewritten =
            live.is_some_and(|m| (m.ino(), m.mtime_nsec()) != (idle.ino(), idle.mtime_nsec()));
        rewritten && p.run(&["status"]).stdout.contains("RUNNING (1)")
    });
    let said = |p: &Project| {
        let text = p.run(&["status"]).ok().stdout.clone();
        assert!(text.contains("STALE (2)"), "{text}");
        assert!(text.contains("  c  input src_c.txt changed"), "{text}");
        assert!(
            text.contains("  d  upstream a will re-run")
                || text.contains("  d  input a.txt changed"),
            "{text}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&p.run(&["status", "--json"]).ok().stdout).unwrap();
        let c = json["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["task"] == "c")
            .unwrap()
            .clone();
        assert_eq!(
            (c["state"].as_str(), c["reason"].as_str()),
            (Some("stale"), Some("input src_c.txt changed"))
        );
        assert_eq!(json["counts"]["stale"], 2, "{json}");
        p.run(&["status", "c"])
            .ok()
            .stdout_has("c: stale: input src_c.txt changed");
    };
    said(&p);
    p.write("go", "");
    build.wait();
    said(&p);
    let dry = p.run(&["build", "-n"]).ok().stdout.clone();
    assert!(
        dry.contains("c: input src_c.txt changed") && dry.contains("d: input a.txt changed"),
        "{dry}"
    );
}

/// The tasks a build of some targets leaves out are judged again as the
/// build runs what they read: `d`, left out, read "upstream a will
/// re-run" to the end of the build, after `a` had run (its output in a
/// folder, which `status` trusts the snapshot for).
#[test]
fn a_task_a_targeted_build_leaves_out_follows_the_build() {
    let p = Project::new(concat!(
        "[tasks.a]\ninputs = [\"src_a.txt\"]\noutputs = [\"out/a.txt\"]\n",
        "command = \"while [ ! -e go_a ]; do sleep 0.05; done; mkdir -p out; cp src_a.txt out/a.txt\"\n",
        "[tasks.b]\ninputs = [\"out/a.txt\"]\noutputs = [\"b.txt\"]\n",
        "command = \"while [ ! -e go_b ]; do sleep 0.05; done; cp out/a.txt b.txt\"\n",
        "[tasks.d]\ninputs = [\"out/a.txt\"]\noutputs = [\"d.txt\"]\ncommand = \"cp out/a.txt d.txt\"\n",
    ));
    p.write("src_a.txt", "a\n")
        .write("go_a", "")
        .write("go_b", "");
    p.build().ok().ran(&["a", "b", "d"]);
    p.remove("go_a");
    p.remove("go_b");
    p.write("src_a.txt", "a2\n");
    let idle = std::fs::metadata(p.path(SNAPSHOT)).unwrap();
    // Stopped if the test fails before it ends (`a` and `b` wait).
    let build = in_background(&p, &["build", "b"]);
    let status = |p: &Project| p.run(&["status"]).ok().stdout.clone();
    // From the build's live snapshot, not from status's own check: `a`
    // ends only after the build judged `d` once.
    wait_for("the build's live snapshot with a running", || {
        use std::os::unix::fs::MetadataExt;
        let live = std::fs::metadata(p.path(SNAPSHOT)).ok();
        let rewritten =
            live.is_some_and(|m| (m.ino(), m.mtime_nsec()) != (idle.ino(), idle.mtime_nsec()));
        let text = status(&p);
        rewritten && text.contains("RUNNING (1)") && text.contains("  d  upstream a will re-run")
    });
    p.write("go_a", "");
    wait_for("d judged again once a ran", || {
        let text = status(&p);
        text.contains("RUNNING (1)") && text.contains("  d  input out/a.txt changed")
    });
    let text = status(&p);
    assert!(!text.contains("  d  upstream a will re-run"), "{text}");
    assert!(text.contains("STALE (1)"), "{text}");
    p.write("go_b", "");
    build.wait();
    p.run(&["status"])
        .ok()
        .stdout_has("  d  input out/a.txt changed");
}

/// The live snapshot of a build of some targets judges the tasks it
/// leaves out, as `build -n` does, but asks no more whether their outputs
/// could be written (a listing of their folders, one of ten thousand
/// files in a large pipeline): the build writes none of them. Only the
/// build's own plan looks at outputs (`PLANEXE_STATS` counts it), and its
/// first snapshot comes once its tasks have started.
#[test]
fn the_tasks_a_targeted_build_leaves_out_are_judged_without_looking_at_their_outputs() {
    let p = Project::new(concat!(
        "[tasks.a]\ninputs = [\"src_a.txt\"]\noutputs = [\"out/a.txt\"]\n",
        "command = \"sleep 0.6; mkdir -p out; cp src_a.txt out/a.txt\"\n",
        "[tasks.c]\ninputs = [\"src_c.txt\"]\noutputs = [\"out/c.txt\"]\n",
        "command = \"mkdir -p out; cp src_c.txt out/c.txt\"\n",
    ));
    p.write("src_a.txt", "a\n").write("src_c.txt", "c\n");
    p.build().ok().ran(&["a", "c"]);
    p.write("src_a.txt", "a2\n").write("src_c.txt", "c2\n");
    let out = p
        .command(&["build", "a"])
        .env("PLANEXE_STATS", "timeline")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let count = |phase: &str| {
        stderr
            .lines()
            .filter_map(|l| l.strip_prefix("stats: "))
            .filter_map(|l| l.strip_prefix(phase))
            .map(|rest| rest.split_whitespace().collect::<Vec<_>>())
            .find(|words| words.len() == 2)
            .map(|words| words[0].to_string())
    };
    assert_eq!(
        count("status snapshot: judge the tasks left out ").as_deref(),
        Some("1"),
        "{stderr}"
    );
    assert_eq!(
        count("plan: outputs of what runs ").as_deref(),
        Some("1"),
        "{stderr}"
    );
    let started = |phase: &str| -> f64 {
        let line = (stderr.lines().filter_map(|l| l.strip_prefix("stats: ")))
            .filter_map(|l| l.strip_prefix(phase))
            .map(|rest| rest.split_whitespace().collect::<Vec<_>>())
            .find(|words| words.len() == 3 && words[0].contains('.'))
            .unwrap_or_else(|| panic!("no {phase} in the timeline: {stderr}"));
        line[0].parse().unwrap()
    };
    assert!(
        started("status snapshot: live ") >= started("build loop: start a task ") + 100.0,
        "{stderr}"
    );
    p.run(&["status"])
        .ok()
        .stdout_has("  c  input src_c.txt changed");
}

/// planexe run in `p` with `args`, quiet, stopped when dropped.
fn in_background(p: &Project, args: &[&str]) -> Background {
    Background(Some(
        p.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ))
}
