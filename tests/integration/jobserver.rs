//! planexe under GNU make: the jobserver (make's pipe, and a fifo this test
//! plays make for), every token given back, and `make -n`/`-q`/`-t`.
//!
//! Tasks record how many run at once: each makes a marker file in a shared
//! folder, logs the number of markers, and removes its own when it ends.
//! Concurrency is asserted from those counts, never from timings.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::harness::{bin, wait_for};

/// Marks its run in `marks/`, logs how many tasks run, waits, logs again,
/// clears its mark and writes its output (`$1`). `$2`: seconds to wait;
/// `$3` = `fail`: fails instead.
const TRACK: &str = r#"#!/bin/sh
shared=$(dirname "$0")
mark="$shared/marks/$$"
touch "$mark"
ls "$shared/marks" | wc -l >> "$shared/peaks"
sleep "$2"
ls "$shared/marks" | wc -l >> "$shared/peaks"
rm -f "$mark"
[ "$3" = fail ] && exit 1
echo done > "$1"
"#;

/// A folder with the tracking script and `count` run directories, each a
/// pipeline of `tasks` independent tasks waiting `secs` and a last one that
/// reads them all.
struct Shared {
    dir: tempfile::TempDir,
}

impl Shared {
    fn new(dirs: &[&str], tasks: usize, secs: &str) -> Shared {
        let shared = Shared {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir(shared.path("marks")).unwrap();
        fs::write(shared.path("track.sh"), TRACK).unwrap();
        for d in dirs {
            shared.pipeline(d, tasks, secs, "");
        }
        shared
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `d/pipeline.toml`; `last_arg`: the last task's third argument.
    fn pipeline(&self, d: &str, tasks: usize, secs: &str, last_arg: &str) {
        fs::create_dir_all(self.path(d)).unwrap();
        let track = self.path("track.sh");
        let track = track.display();
        let mut text = String::new();
        let mut inputs = Vec::new();
        for i in 0..tasks {
            text.push_str(&format!(
                "[tasks.t{i}]\noutputs = [\"o{i}\"]\ncommand = \"sh {track} o{i} {secs}\"\n"
            ));
            inputs.push(format!("\"o{i}\""));
        }
        text.push_str(&format!(
            "[tasks.last]\ninputs = [{}]\noutputs = [\"last\"]\ncommand = \"sh {track} last 0 {last_arg}\"\n",
            inputs.join(", ")
        ));
        fs::write(self.path(d).join("pipeline.toml"), text).unwrap();
    }

    /// The most tasks any of them saw running at once; 0 when none ran.
    fn peak(&self) -> usize {
        fs::read_to_string(self.path("peaks"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .max()
            .unwrap_or(0)
    }

    fn makefile(&self, dirs: &[&str], recipe: &str) {
        let mut text = format!("all: {}\n", dirs.join(" "));
        text.push_str(&format!("{}:\n\t{recipe}\n", dirs.join(" ")));
        text.push_str(&format!(".PHONY: all {}\n", dirs.join(" ")));
        fs::write(self.path("Makefile"), text).unwrap();
    }

    fn make(&self, args: &[&str]) -> Output {
        Command::new("make")
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("MAKELEVEL")
            .env_remove("PLANEXE_PIPELINE")
            .env_remove("PLANEXE_MODEL")
            .stdin(Stdio::null())
            .output()
            .expect("run make (GNU make must be installed)")
    }

    /// planexe in run directory `d` with `makeflags` as `MAKEFLAGS`.
    fn planexe(&self, d: &str, makeflags: &str, args: &[&str]) -> Command {
        let mut command = Command::new(bin());
        command
            .args(["-C", d])
            .args(args)
            .current_dir(self.dir.path())
            .env("MAKEFLAGS", makeflags)
            .env_remove("PLANEXE_PIPELINE")
            .env_remove("PLANEXE_MODEL")
            .stdin(Stdio::null());
        command
    }
}

const DIRS: [&str; 3] = ["a", "b", "c"];

fn recipe() -> String {
    format!("+{} -C $@ build", bin())
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn make_j3_runs_at_most_three_tasks_across_three_builds() {
    let shared = Shared::new(&DIRS, 4, "0.2");
    shared.makefile(&DIRS, &recipe());
    let out = shared.make(&["-j3"]);
    assert!(out.status.success(), "{}", text(&out));
    for d in DIRS {
        assert!(shared.path(d).join("last").exists());
    }
    let peak = shared.peak();
    assert!((1..=3).contains(&peak), "peak {peak}");
    // make checks at its end that every token came back, and says so if not.
    assert!(!text(&out).contains("jobserver"), "{}", text(&out));
}

#[test]
fn make_j6_lets_the_builds_run_more_than_three() {
    let shared = Shared::new(&DIRS, 4, "0.5");
    shared.makefile(&DIRS, &recipe());
    let out = shared.make(&["-j6"]);
    assert!(out.status.success(), "{}", text(&out));
    let peak = shared.peak();
    assert!((4..=6).contains(&peak), "peak {peak}");
}

#[test]
fn make_n_runs_no_task() {
    let shared = Shared::new(&DIRS, 2, "0");
    shared.makefile(&DIRS, &recipe());
    let out = shared.make(&["-n", "-j3"]);
    assert!(out.status.success(), "{}", text(&out));
    // The dry run says what would run, and runs nothing.
    assert!(text(&out).contains("never built"), "{}", text(&out));
    assert_eq!(shared.peak(), 0);
    assert!(!shared.path("a/o0").exists());
}

#[test]
fn make_k_keeps_going_past_a_failed_task() {
    let shared = Shared::new(&[], 0, "0");
    fs::create_dir(shared.path("a")).unwrap();
    // One task at a time, ties in declaration order: `bad` fails while
    // `good`, which does not depend on it, waits for its slot.
    fs::write(
        shared.path("a/pipeline.toml"),
        "[pipeline]\njobs = 1\n\
         [tasks.bad]\noutputs = [\"bad\"]\ncommand = \"exit 1\"\n\
         [tasks.good]\noutputs = [\"good\"]\ncommand = \"echo ok > good\"\n",
    )
    .unwrap();
    shared.makefile(&["a"], &format!("{} -C $@ build", bin()));
    let out = shared.make(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!shared.path("a/good").exists(), "{}", text(&out));
    let out = shared.make(&["-k"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(shared.path("a/good").exists(), "{}", text(&out));
}

#[test]
fn make_t_runs_no_task() {
    let shared = Shared::new(&DIRS, 2, "0");
    shared.makefile(&DIRS, &recipe());
    // make runs a `+` recipe under -t instead of touching its target.
    let out = shared.make(&["-t", "-j3"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("make -t: planexe runs no task"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("never built"), "{}", text(&out));
    assert_eq!(shared.peak(), 0);
    for d in DIRS {
        assert!(!shared.path(d).join("o0").exists());
        assert!(!shared.path(d).join(".planexe/tasks/last.DONE").exists());
    }
}

#[test]
fn planexe_build_q_in_a_recipe_fails_make_when_stale() {
    let shared = Shared::new(&["a"], 2, "0");
    shared.makefile(&["a"], &format!("{} -C $@ build -q", bin()));
    let out = shared.make(&[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(shared.peak(), 0);
    // `make -q` with a `+` recipe asks the same question.
    shared.makefile(&["a"], &recipe());
    let out = shared.make(&["-q"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(shared.peak(), 0);
    let out = shared.make(&[]);
    assert!(out.status.success(), "{}", text(&out));
    shared.makefile(&["a"], &format!("{} -C $@ build -q", bin()));
    let out = shared.make(&[]);
    assert!(out.status.success(), "{}", text(&out));
}

/// A fifo holding `tokens` bytes, as make 4.4 makes one; the handle keeps
/// it open so its bytes stay.
fn fifo(dir: &Path, tokens: usize) -> (PathBuf, fs::File) {
    let path = dir.join("jobserver.fifo");
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates the file.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap();
    file.write_all(&vec![b'+'; tokens]).unwrap();
    (path, file)
}

/// The tokens in the fifo now (read out).
fn tokens_back(file: &mut fs::File) -> usize {
    let mut buf = [0u8; 64];
    match file.read(&mut buf) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn the_fifo_form_caps_the_build_and_gets_every_token_back() {
    let shared = Shared::new(&["a"], 6, "0.2");
    let (path, mut file) = fifo(shared.dir.path(), 2);
    let flags = format!(" -j3 --jobserver-auth=fifo:{}", path.display());
    let out = shared.planexe("a", &flags, &["build"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("warning"), "{}", text(&out));
    let peak = shared.peak();
    assert!((1..=3).contains(&peak), "peak {peak}");
    assert_eq!(tokens_back(&mut file), 2);

    // After a failure, too.
    shared.pipeline("b", 4, "0.1", "fail");
    file.write_all(b"++").unwrap();
    let out = shared.planexe("b", &flags, &["build"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(tokens_back(&mut file), 2);
}

#[test]
fn ctrl_c_gives_every_token_back() {
    let shared = Shared::new(&["a"], 5, "30");
    let (path, mut file) = fifo(shared.dir.path(), 2);
    let flags = format!(" -j3 --jobserver-auth=fifo:{}", path.display());
    let mut child = shared
        .planexe("a", &flags, &["build"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let marks = shared.path("marks");
    // Three tasks run: the implicit slot and both tokens are taken.
    wait_for("three tasks running", || {
        fs::read_dir(&marks).map_or(0, |d| d.count()) == 3
    });
    // SAFETY: signals our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(tokens_back(&mut file), 2);
    assert!(shared.peak() <= 3);
}

#[test]
fn a_broken_jobserver_is_a_warning_and_the_build_completes() {
    let shared = Shared::new(&["a"], 3, "0");
    let missing = shared.path("no.fifo");
    for flags in [
        " -j3 --jobserver-auth=900,901".to_string(),
        " -j3 --jobserver-fds=900,901".to_string(),
        format!(" -j3 --jobserver-auth=fifo:{}", missing.display()),
    ] {
        let _ = fs::remove_dir_all(shared.path("a/.planexe"));
        let out = shared.planexe("a", &flags, &["build"]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.matches("warning: the make jobserver").count(), 1);
        assert!(shared.path("a/last").exists());
    }
}
