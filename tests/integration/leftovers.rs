//! What a crashed build's task leaves running when its shell has ended:
//! a process the command put in the background runs on in the task's
//! process group. Whether the shell is then a zombie (the init that
//! inherited it reaps late) or gone (systemd, or any init or subreaper
//! that reaps at once), the next build stops the group, whether or not
//! the journal had the shell's pid.

use crate::harness::*;

/// Starts a process in the background, then its shell sleeps a second and
/// exits.
const LONG: &str =
    "[tasks.long]\noutputs = [\"o\"]\ncommand = \"sleep 300 & echo $! > bg.pid; touch started; sleep 1\"\n";

const QUICK: &str = "[tasks.long]\noutputs = [\"o\"]\ncommand = \"echo done > o\"\n";

/// The next build stops the group of the task's shell and says so, and
/// calls nothing there someone else's process.
fn resumes_stopping(p: &Project, shell: u32, background: u32) {
    // SAFETY: signal 0 only asks whether the process exists.
    assert_eq!(
        unsafe { libc::kill(background as i32, 0) },
        0,
        "the background sleep ended early"
    );
    p.write("pipeline.toml", QUICK);
    let run = p.build();
    run.ok().ran(&["long"]).stderr_has(&format!(
        "stopped long (pid {shell}), left running by a build that crashed"
    ));
    assert!(!run.stderr.contains("alone"), "{}", run.stderr);
    wait_for("the background sleep to be stopped", || ended(background));
}

/// A crashed build's task whose shell exited while a process it started
/// in the background still runs: a zombie where the init that inherited
/// it reaps late (as in this sandbox), gone where it reaps at once.
#[test]
fn a_leftover_whose_shell_exited_has_its_group_stopped() {
    let p = Project::new(LONG);
    let mut child = p.spawn_quiet(&["build"]);
    wait_for("the task to start", || p.exists("started"));
    child.kill().unwrap();
    child.wait().unwrap();
    let background: u32 = p.read("bg.pid").trim().parse().unwrap();
    let shell = group_of(background);
    // The shell ends its `sleep 1` and exits, unreaped; `sleep 300` runs on.
    wait_for("the shell to exit", || ended(shell));
    resumes_stopping(&p, shell, background);
}

/// Becomes the subreaper of what planexe starts (as systemd, or an init
/// that reaps at once, is for a build in a terminal), runs `ARGV[1:]` until
/// the task has started and planexe's journal holds its spawn (the task's
/// command can get there first), kills it, and reaps the task's shell as
/// soon as it exits. Prints the shell's pid.
const SUBREAPER: &str = r#"
import ctypes, os, signal, sys, time
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
null = os.open(os.devnull, os.O_RDWR)
planexe = os.fork()
if planexe == 0:
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.execv(sys.argv[1], sys.argv[1:])
def spawned():
    try:
        return '"spawned"' in open(".planexe/inflight").read()
    except OSError:
        return False
deadline = time.time() + 60
while not (os.path.exists("started") and spawned()):
    if time.time() > deadline:
        sys.exit("the task did not start")
    time.sleep(0.01)
os.kill(planexe, signal.SIGKILL)
os.waitpid(planexe, 0)
shell = os.getpgid(int(open("bg.pid").read()))
os.waitpid(shell, 0)
print(shell)
"#;

/// The task's shell was reaped as soon as it exited, so neither its pid
/// nor a zombie of it is left: only its group, with `sleep 300` in it.
/// With `forget_pid`, the journal lost the shell's pid as well (the crash
/// came between the spawn and its journal line).
fn reaped_shell(forget_pid: bool) {
    let p = Project::new(LONG);
    let out = wrapped("python3", ["-c", SUBREAPER], &p.command(&["build"]))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shell: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let background: u32 = p.read("bg.pid").trim().parse().unwrap();
    assert_eq!(group_of(background), shell);
    assert!(
        std::fs::metadata(format!("/proc/{shell}")).is_err(),
        "the shell was reaped"
    );
    let journal = p.read(".planexe/inflight");
    assert!(
        journal.contains(&format!("{{\"spawned\":[\"long\",{shell}]}}")),
        "{journal}"
    );
    if forget_pid {
        forget_spawned(&p);
    }
    resumes_stopping(&p, shell, background);
}

#[test]
fn a_leftover_whose_shell_was_reaped_has_its_group_stopped() {
    reaped_shell(false);
}

#[test]
fn a_leftover_whose_shell_was_reaped_before_its_pid_was_journaled_is_found() {
    reaped_shell(true);
}

/// The process group of `pid`.
fn group_of(pid: u32) -> u32 {
    // SAFETY: getpgid only reads the process table.
    let group = unsafe { libc::getpgid(pid as i32) };
    assert!(group > 0, "process {pid} has no group");
    group as u32
}
