//! examples/makefile: real GNU make (`make -j4`) builds every run of the
//! pipeline through planexe, a second `make` starts nothing, an edited
//! plan rebuilds its run only, and `make clean` cleans every run. And a
//! recipe that names its target by its absolute path (`$(abspath $@)`).

use std::path::Path;
use std::process::Command;

use crate::harness::bin;

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        // What a local build of the example left behind.
        if name == ".planexe" || name == "out" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

pub struct Make {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `make ARGS` in `dir`, with the planexe under test first on PATH.
pub fn make(dir: &Path, args: &[&str]) -> Make {
    let folder = Path::new(bin()).parent().unwrap();
    let path = std::env::join_paths(std::iter::once(folder.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let out = Command::new("make")
        .args(args)
        .current_dir(dir)
        .env("PATH", path)
        // Not the jobserver of a make that may run cargo.
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL")
        .env_remove("PLANEXE_PIPELINE")
        .env_remove("PLANEXE_MODEL")
        .env_remove("GITHUB_ACTIONS")
        .output()
        .expect("GNU make runs");
    Make {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn started(run: &Make) -> usize {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("start  "))
        .count()
}

#[test]
fn make_builds_every_run_then_nothing_then_only_what_changed() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/makefile");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("makefile");
    copy(&example, &dir);

    let first = make(&dir, &["-j4"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    // The recipe takes part in make's jobserver (its `+`): no planexe
    // finds it closed.
    assert!(!first.stderr.contains("warning:"), "{}", first.stderr);
    assert_eq!(started(&first), 6, "{}", first.stderr);
    for (run, line) in [
        ("a", "- Open a bakery"),
        ("b", "- Repaint the library"),
        ("c", "- Plant an orchard"),
    ] {
        let report =
            std::fs::read_to_string(dir.join(format!("runs/{run}/out/report.md"))).unwrap();
        assert!(report.starts_with("# Report\n"), "{report}");
        assert!(report.contains(line), "{report}");
    }

    let second = make(&dir, &["-j4"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.stdout.contains("Nothing to be done"),
        "{}",
        second.stdout
    );
    assert!(
        !second.stdout.contains("planexe build"),
        "{}",
        second.stdout
    );
    assert_eq!(started(&second), 0, "{}", second.stderr);

    // An edited plan, newer than its run's .DONE: that run alone.
    let plan = dir.join("runs/b/plan.txt");
    std::fs::write(&plan, "Repaint the library\nSell bread\n").unwrap();
    let done = std::fs::metadata(dir.join("runs/b/.planexe/tasks/report.DONE"))
        .unwrap()
        .modified()
        .unwrap();
    filetime::set_file_mtime(
        &plan,
        filetime::FileTime::from_system_time(done + std::time::Duration::from_secs(10)),
    )
    .unwrap();
    let third = make(&dir, &["-j4"]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert!(
        third.stdout.contains("planexe build -C runs/b") && !third.stdout.contains("runs/a"),
        "{}",
        third.stdout
    );
    assert_eq!(started(&third), 2, "{}", third.stderr);
    let report = std::fs::read_to_string(dir.join("runs/b/out/report.md")).unwrap();
    assert!(report.contains("- Sell bread"), "{report}");

    let clean = make(&dir, &["clean"]);
    assert_eq!(clean.code, 0, "{}", clean.stderr);
    for run in ["a", "b", "c"] {
        assert!(!dir.join(format!("runs/{run}/out/report.md")).exists());
        assert!(!dir
            .join(format!("runs/{run}/.planexe/tasks/report.DONE"))
            .exists());
        assert!(dir.join(format!("runs/{run}/plan.txt")).exists());
    }
}

#[test]
fn a_recipe_may_name_its_target_by_its_absolute_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("pipeline.toml"),
        "[tasks.r]\noutputs = [\"out/r.md\"]\ncommand = \"mkdir -p out && echo r > out/r.md\"\n\
         [tasks.s]\noutputs = [\"s.md\"]\ncommand = \"echo s > s.md\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("Makefile"),
        "out/r.md: pipeline.toml\n\t+planexe build $(abspath $@)\n",
    )
    .unwrap();
    let first = make(dir, &[]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert_eq!(started(&first), 1, "{}", first.stderr);
    assert!(dir.join("out/r.md").exists());
    // Only what the target needs: not `s`.
    assert!(!dir.join("s.md").exists());
    let second = make(dir, &[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(second.stdout.contains("is up to date"), "{}", second.stdout);

    // From elsewhere, through -C: the path as the shell spells it.
    let abs = dir.join("s.md");
    let out = Command::new(bin())
        .arg("-C")
        .arg(dir)
        .args(["build", "-q"])
        .arg(&abs)
        .current_dir("/")
        .env_remove("MAKEFLAGS")
        .env_remove("PLANEXE_PIPELINE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // A path outside the run directory is no target.
    let out = Command::new(bin())
        .arg("-C")
        .arg(dir)
        .args(["build", "/nowhere/s.md"])
        .env_remove("MAKEFLAGS")
        .env_remove("PLANEXE_PIPELINE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown target `/nowhere/s.md`"));
}

/// A `+` recipe runs under `make -n` (and `-q`, `-t`): `planexe clean` in
/// one lists what it would delete and deletes nothing, `planexe touch`
/// names what it would touch and records nothing, as `planexe build`
/// becomes a dry run. Without the flag, they do their work.
#[test]
fn clean_and_touch_in_a_plus_recipe_change_nothing_under_make_n() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("pipeline.toml"),
        "[tasks.r]\noutputs = [\"r.md\"]\ncommand = \"echo r > r.md\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("Makefile"),
        "all: r.md\nr.md: pipeline.toml\n\t+planexe build\n\
         clean:\n\t+planexe clean --all -y\n\
         accept:\n\t+planexe touch r\n\
         .PHONY: clean accept\n",
    )
    .unwrap();
    assert_eq!(make(dir, &[]).code, 0);
    let log = std::fs::read(dir.join(".planexe/log")).unwrap();
    for flag in ["-n", "-q", "-t"] {
        let dry = make(dir, &[flag, "clean"]);
        assert!(
            dry.stderr.contains(&format!(
                "make {flag}: planexe clean deletes nothing; it lists what it would delete"
            )),
            "{}",
            dry.stderr
        );
        assert!(dir.join("r.md").exists(), "make {flag} clean deleted r.md");
        assert!(dry.stderr.contains("would delete"), "{}", dry.stderr);
        let dry = make(dir, &[flag, "accept"]);
        assert!(
            dry.stderr.contains(&format!(
                "make {flag}: planexe touch changes nothing; it would touch r"
            )),
            "{}",
            dry.stderr
        );
        assert_eq!(std::fs::read(dir.join(".planexe/log")).unwrap(), log);
    }
    let real = make(dir, &["clean"]);
    assert_eq!(real.code, 0, "{}", real.stderr);
    assert!(!dir.join("r.md").exists());
}
