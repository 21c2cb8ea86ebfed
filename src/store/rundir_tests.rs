//! Tests of the run directory: paths normalized and kept inside, the
//! layout of `.planexe/`.

use super::*;

#[test]
fn normalizes_and_refuses_escapes() {
    assert_eq!(normalize("./a//b/./c.md").unwrap(), "a/b/c.md");
    assert!(normalize("/etc/passwd").unwrap_err().contains("absolute"));
    assert!(normalize("a/../../b").unwrap_err().contains(".."));
    assert!(normalize(".").is_err());
    assert!(normalize(".planexe/x").is_err());
    assert!(normalize(".planexe").is_err());
    assert_eq!(normalize("a/b.md").unwrap(), "a/b.md");
    assert_eq!(normalize("a/b/").unwrap(), "a/b");
    assert_eq!(normalize("./a").unwrap(), "a");
    assert_eq!(normalize(".planexe-x/y").unwrap(), ".planexe-x/y");
    assert!(normalize("").is_err());
    assert!(normalize("/").is_err());
    assert!(normalize("a\0b").unwrap_err().contains("NUL byte"));
}

#[test]
fn a_folder_is_inside_unless_a_symlink_on_its_way_leads_out() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    symlink(elsewhere.path(), dir.path().join("a/out")).unwrap();
    symlink(dir.path().join("a"), dir.path().join("in")).unwrap();
    symlink(dir.path().join("nowhere"), dir.path().join("dangling")).unwrap();
    let run_dir = RunDir::open(dir.path()).unwrap();
    for inside in [
        "top.txt",
        "a/b/c.txt",
        "a/b/new/deep/c.txt",
        "in/b/c.txt",
        "dangling/c",
    ] {
        assert_eq!(run_dir.check_inside(inside), Ok(()), "{inside}");
    }
    for outside in ["a/out/c.txt", "a/out/x/y/c.txt", "in/out/c.txt", ""] {
        assert!(run_dir.check_inside(outside).is_err(), "{outside}");
    }
    // Cached answers are the same answers.
    assert!(run_dir.check_inside("a/out/z.txt").is_err());
    assert_eq!(run_dir.check_inside("a/b/z.txt"), Ok(()));
}

#[test]
fn task_files_are_where_joining_puts_them() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = RunDir::open(dir.path()).unwrap();
    let tasks = run_dir.tasks_dir();
    assert_eq!(run_dir.status_path("a b"), tasks.join("a b.status"));
    assert_eq!(run_dir.done_path("x[1]"), tasks.join("x[1].DONE"));
    assert_eq!(
        run_dir.task_log_path("t"),
        run_dir.state_dir().join(file::LOGS).join("t.log")
    );
    assert_eq!(
        run_dir.root().join(status_rel("t")),
        run_dir.status_path("t")
    );
}
