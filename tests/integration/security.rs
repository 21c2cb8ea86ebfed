//! What planexe never does, however a run directory is prepared: write,
//! truncate, append or delete through a symlink planted in `.planexe/` or
//! in an output's folder; replace a device it was asked to write into; kill
//! a process that is not the command of one of its tasks; delete the
//! up-to-date certificate when it changes nothing. Each case plants the
//! trap, runs the real binary, and checks the file outside is untouched.
//! (docs/security.md lists the guarantees and where each is tested.)

use std::os::unix::fs::{symlink, FileTypeExt};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

/// A file outside the run directory that a trap points at.
struct Outside {
    dir: tempfile::TempDir,
}

impl Outside {
    fn new() -> Outside {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("victim.txt"), "precious\n").unwrap();
        Outside { dir }
    }

    fn file(&self) -> std::path::PathBuf {
        self.dir.path().join("victim.txt")
    }

    #[track_caller]
    fn untouched(&self) {
        assert_eq!(
            std::fs::read_to_string(self.file()).unwrap(),
            "precious\n",
            "the file outside the run directory was changed"
        );
        let names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["victim.txt"], "files appeared outside");
    }
}

#[test]
fn a_state_file_planted_as_a_symlink_is_refused_and_never_written_through() {
    for name in [
        "lock",
        "log",
        "inflight",
        "run.json",
        "events.jsonl",
        "events.1.jsonl",
        "trace.json",
        "trace.1.json",
        "usage.jsonl",
        "uptodate",
    ] {
        let p = demo();
        let outside = Outside::new();
        std::fs::create_dir_all(p.path(".planexe")).unwrap();
        symlink(outside.file(), p.path(&format!(".planexe/{name}"))).unwrap();
        for args in [&["build"][..], &["status"], &["clean", "outline", "-y"]] {
            p.run(args)
                .code(2)
                .stderr_has(&format!(".planexe/{name} is a symlink"))
                .stderr_has("hint: remove it");
        }
        outside.untouched();
    }
}

#[test]
fn a_state_folder_planted_as_a_symlink_is_refused() {
    for name in [
        ".planexe",
        ".planexe/tasks",
        ".planexe/logs",
        ".planexe/raw",
    ] {
        let p = demo();
        let outside = Outside::new();
        if name != ".planexe" {
            std::fs::create_dir_all(p.path(".planexe")).unwrap();
        }
        symlink(outside.dir.path(), p.path(name)).unwrap();
        p.build()
            .code(2)
            .stderr_has(&format!("{name} is a symlink"))
            .stderr_has("real files and folders");
        outside.untouched();
    }
}

#[test]
fn a_task_log_planted_as_a_symlink_is_not_written_through() {
    let p = demo();
    let outside = Outside::new();
    std::fs::create_dir_all(p.path(".planexe/logs")).unwrap();
    symlink(outside.file(), p.path(".planexe/logs/outline.log")).unwrap();
    p.build()
        .code(1)
        .stderr_has("FAILED outline")
        .stderr_has("is a symlink");
    outside.untouched();
}

const FANOUT: &str = r#"
[tasks.each]
matrix = { k = ["a", "b"] }
outputs = ["o/{{ k }}/x.txt"]
command = "echo {{ k }} > {outputs}"
"#;

#[test]
fn a_vanished_instance_is_not_removed_through_a_symlinked_folder() {
    let p = Project::new(FANOUT);
    p.build().ok();
    // The folder of `each[b]`'s output now leads outside, and the item goes.
    let outside = Outside::new();
    std::fs::copy(outside.file(), outside.dir.path().join("x.txt")).unwrap();
    std::fs::remove_dir_all(p.path("o/b")).unwrap();
    symlink(outside.dir.path(), p.path("o/b")).unwrap();
    p.write(
        "pipeline.toml",
        &FANOUT.replace("[\"a\", \"b\"]", "[\"a\"]"),
    );
    p.build()
        .code(2)
        .stderr_has("not removing o/b/x.txt")
        .stderr_has("outside the run directory");
    assert!(outside.dir.path().join("x.txt").exists(), "deleted outside");
}

#[test]
fn a_set_aside_folder_planted_as_a_symlink_is_not_moved_from_or_into() {
    let p = demo();
    p.build().ok();
    // `.planexe/prev/outline` leads outside, where a file waits to be
    // "restored" over the task's output.
    let outside = Outside::new();
    std::fs::write(outside.dir.path().join("outline.md"), "planted\n").unwrap();
    std::fs::create_dir_all(p.path(".planexe/prev")).unwrap();
    symlink(outside.dir.path(), p.path(".planexe/prev/outline")).unwrap();
    p.write_at("plan.txt", "a different house\n", 2_000_000);
    // The task refuses to set its output aside through the link: nothing
    // moves out or in.
    p.build()
        .code(1)
        .stderr_has("FAILED outline: refusing to move .planexe/prev/outline/outline.md")
        .stderr_has("outside the run directory");
    assert_eq!(
        std::fs::read_to_string(outside.dir.path().join("outline.md")).unwrap(),
        "planted\n"
    );
    assert_eq!(p.read("outline.md"), "BUILD A HOUSE\n");
    // After a crash, what is set aside is restored: never through a link.
    let mut run: serde_json::Value = serde_json::from_str(&p.read(".planexe/run.json")).unwrap();
    let last = run["builds"].as_array().unwrap().len() - 1;
    run["builds"][last]["outcome"] = "running".into();
    run["builds"][last]["finished_at"] = serde_json::Value::Null;
    p.write(".planexe/run.json", &run.to_string());
    p.build()
        .code(2)
        .stderr_has("not restoring outline.md of outline")
        .stderr_has("outside the run directory");
    assert_eq!(p.read("outline.md"), "BUILD A HOUSE\n");
    // The link removed, the build goes on.
    std::fs::remove_file(p.path(".planexe/prev/outline")).unwrap();
    std::fs::remove_file(outside.dir.path().join("outline.md")).unwrap();
    p.build().ok();
    outside.untouched();
}

#[test]
fn report_writes_into_a_device_and_says_when_it_cannot() {
    let p = demo();
    p.build().ok();
    p.run(&["report", "-o", "/dev/full"])
        .code(2)
        .stderr_has("/dev/full")
        .stderr_has("No space left on device");
    let meta = std::fs::metadata("/dev/full").unwrap();
    assert!(meta.file_type().is_char_device(), "/dev/full was replaced");
    p.run(&["report", "-o", "/dev/null"]).ok();
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    std::fs::create_dir(p.path("folder")).unwrap();
    p.run(&["report", "-o", "folder"])
        .code(2)
        .stderr_has("it is a folder");
}

#[test]
fn a_recorded_pid_that_is_not_the_tasks_command_is_left_alone() {
    let p = demo();
    p.build().ok();
    // An unrelated process group leader: what a recycled pid could be.
    let mut stranger = Command::new("setsid")
        .args(["sleep", "30"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = stranger.id();
    // A crashed build's journal that names it for `outline`.
    let mut run: serde_json::Value = serde_json::from_str(&p.read(".planexe/run.json")).unwrap();
    run["builds"][0]["outcome"] = "running".into();
    p.write(".planexe/run.json", &run.to_string());
    p.write(
        ".planexe/inflight",
        &format!(
            "{{\"started\":{{\"task\":\"outline\",\"pid\":{pid},\"started_at\":\"2026-01-01T00:00:00Z\",\"attempt\":1,\"fingerprint\":\"f\"}}}}\n"
        ),
    );
    p.write_at("plan.txt", "a different house\n", 2_000_000);
    p.build()
        .ok()
        .stderr_has(&format!("left pid {pid} alone"))
        .stderr_has("environment is not the task's");
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "the stranger was killed"
    );
    let _ = stranger.kill();
    let _ = stranger.wait();
}

#[test]
fn a_dry_run_or_a_refused_clean_keeps_the_certificate_and_clean_counts_it() {
    let p = demo();
    p.build().ok();
    assert!(p.exists(".planexe/uptodate"));
    let listed = p.run(&["clean", "report", "--dry-run"]);
    // planexe's own file: counted, not listed with the user's.
    listed
        .ok()
        .stderr_has("and 1 internal file(s) of planexe's own");
    assert!(
        !listed.stdout.contains(".planexe/uptodate"),
        "{}",
        listed.stdout
    );
    assert!(p.exists(".planexe/uptodate"), "a dry run deleted it");
    // No -y and no terminal: refused, nothing changes.
    p.run(&["clean", "report"]).code(2);
    assert!(p.exists(".planexe/uptodate"), "a refused clean deleted it");
    p.build().ok().stderr_has("nothing to do");
    p.run(&["clean", "report", "-y"]).ok();
    assert!(!p.exists(".planexe/uptodate"));
}

#[test]
fn a_state_file_planted_as_a_fifo_is_refused_and_never_waited_on() {
    for name in [
        "log", "pipeline", "run.json", "uptodate", "inflight", "lock",
    ] {
        let p = demo();
        p.mkfifo(&format!(".planexe/{name}"));
        for args in [&["build"][..], &["status"], &["clean", "outline", "-y"]] {
            p.run_bounded(args)
                .code(2)
                .stderr_has(&format!(".planexe/{name} is a FIFO"))
                .stderr_has("hint: remove it");
        }
    }
}

#[test]
fn a_sidecar_or_task_log_planted_as_a_fifo_holds_nothing_up() {
    let p = demo();
    p.build().ok();
    // A sidecar: unreadable, so rewritten from the state log.
    std::fs::remove_file(p.path(".planexe/tasks/outline.status")).unwrap();
    p.mkfifo(".planexe/tasks/outline.status");
    p.run_bounded(&["status"]).ok();
    p.run_bounded(&["build"])
        .ok()
        .stderr_has("outline.status was damaged; rewrote it");
    assert!(std::fs::metadata(p.path(".planexe/tasks/outline.status"))
        .unwrap()
        .is_file());
    // A task log: removed before the command runs, as any old log is.
    let _ = std::fs::remove_file(p.path(".planexe/logs/outline.log"));
    p.mkfifo(".planexe/logs/outline.log");
    p.write_at("plan.txt", "a different house\n", 2_000_000);
    p.run_bounded(&["build"]).ok();
    assert!(!p.exists(".planexe/logs/outline.log"));
}

#[test]
fn an_output_that_turns_out_a_fifo_fails_its_task_and_a_glob_skips_one() {
    let p = Project::new(
        "[tasks.a]\noutputs = [\"ff\"]\ncommand = \"mkfifo ff\"\n\
         [tasks.b]\ninputs = [\"in/*\"]\noutputs = [\"o\"]\ncommand = \"echo {inputs} > o\"\n",
    );
    p.write("in/x", "x\n");
    p.mkfifo("in/y");
    p.run_bounded(&["build", "--keep-going"])
        .code(1)
        .stderr_has("FAILED a")
        .stderr_has("ff is a FIFO, not a regular file")
        .stderr_has("done   b");
    assert_eq!(p.read("o"), "in/x\n");
}

/// A glob's walk ends whatever links a run directory holds: `**` does not
/// go into a symlinked folder, so a link leading back up is not followed
/// round (it used to be, to the limit of the file system, the inputs
/// multiplying with every such link); a `*` before any `**` goes through
/// a symlinked folder, no deeper than the pattern; a link named in the
/// pattern is followed.
#[test]
fn a_glob_does_not_follow_symlinked_folders_round_a_loop() {
    let p = Project::new(
        "[tasks.a]\ninputs = [\"docs/**/*.md\"]\noutputs = [\"o\"]\ncommand = \"echo {inputs} > o\"\n\
         [tasks.b]\ninputs = [\"docs/*/*.md\"]\noutputs = [\"p\"]\ncommand = \"echo {inputs} > p\"\n\
         [tasks.c]\ninputs = [\"docs/real/**/*.md\"]\noutputs = [\"q\"]\ncommand = \"echo {inputs} > q\"\n",
    );
    p.write("docs/a/x.md", "x\n");
    p.write("docs/y.md", "y\n");
    p.write("real/r.md", "r\n");
    symlink(".", p.path("docs/loop")).unwrap();
    p.run_bounded(&["build"]).ok();
    assert_eq!(p.read("o"), "docs/a/x.md docs/y.md\n");
    // Links up, across and back, and out of the globbed folder.
    symlink("..", p.path("docs/a/b")).unwrap();
    symlink("../..", p.path("docs/a/up")).unwrap();
    std::fs::create_dir(p.path("docs/c")).unwrap();
    symlink("../c", p.path("docs/a/fwd")).unwrap();
    symlink("../a", p.path("docs/c/back")).unwrap();
    symlink("../real", p.path("docs/real")).unwrap();
    p.run_bounded(&["build"]).ok().ran(&["b", "c"]);
    assert_eq!(p.read("o"), "docs/a/x.md docs/y.md\n");
    assert_eq!(p.read("p"), "docs/a/x.md docs/loop/y.md docs/real/r.md\n");
    assert_eq!(p.read("q"), "docs/real/r.md\n");
    p.run_bounded(&["build"]).ok().ran(&[]);
}

/// A `foreach` list is data, often a model's answer: an item printed into
/// a command is quoted for the shell wherever it lands, never run as shell
/// syntax, and a place no quoting holds (a here-document) is refused.
#[test]
fn an_item_printed_into_a_command_is_data_not_shell() {
    let hostile = [
        "x; touch pwned",
        "$(touch pwned)",
        "it's \"quoted\" `touch pwned`",
        "'; touch pwned; '",
    ];
    let p = Project::new(
        "[tasks.list]\noutputs = [\"list.json\"]\ncommand = \"cp src.json list.json\"\ninputs = [\"src.json\"]\n\
         [tasks.each]\nforeach = { file = \"list.json\" }\noutputs = [\"out/{{ key }}.txt\"]\n\
         command = \"printf '%s|' {{ item }} '{{ item }}' > {outputs}; printf %s \\\"{{ item }}\\\" >> {outputs}\"\n",
    );
    p.write("src.json", &serde_json::to_string(&hostile).unwrap());
    p.build().ok();
    assert!(!p.exists("pwned"), "an item ran as shell syntax");
    for (i, item) in hostile.iter().enumerate() {
        assert_eq!(
            p.read(&format!("out/{i}.txt")),
            format!("{item}|{item}|{item}")
        );
    }
    // What cannot be quoted is refused, where it is written.
    p.write(
        "pipeline.toml",
        "[tasks.list]\noutputs = [\"list.json\"]\ncommand = \"cp src.json list.json\"\ninputs = [\"src.json\"]\n\
         [tasks.each]\nforeach = { file = \"list.json\" }\noutputs = [\"out/{{ key }}.txt\"]\n\
         command = \"cat > {outputs} <<EOF\\n{{ item }}\\nEOF\"\n",
    );
    p.build()
        .code(1)
        .stderr_has("pipeline.toml:8:11: task `each[0]`: `x; touch pwned` is printed after `<<`")
        .stderr_has("`{{ flags | raw }}` prints one as it is");
    assert!(!p.exists("pwned"));
}

/// A command whose output is a symlink leading out of the run directory
/// fails, and what reads it does not run. The build's hint said `then run
/// planexe build` and then `run planexe build again`: it now says what to
/// change once.
#[test]
fn an_output_made_a_symlink_out_of_the_run_directory_fails_its_task() {
    let p = Project::new(
        "[tasks.b]\noutputs = [\"b.txt\"]\ncommand = \"ln -s /etc/hostname b.txt\"\n[tasks.c]\ninputs = [\"b.txt\"]\noutputs = [\"c.txt\"]\ncommand = \"cat b.txt > c.txt\"\n",
    );
    let run = p.build();
    run.code(1)
        .stderr_has("FAILED b: b.txt is a symlink to /etc/hostname, outside the run directory; replace it with a copy or a link that stays inside")
        .stderr_has("hint: fix what the message names (for example a full disk, permissions or a missing /bin/sh); finished tasks are kept");
    assert!(
        !run.stderr.contains("then run planexe build;"),
        "{}",
        run.stderr
    );
    assert!(!p.exists("c.txt"));
    assert!(!p.exists("b.txt"), "the link was set aside");
}
