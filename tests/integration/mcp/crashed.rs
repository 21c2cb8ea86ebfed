//! After a build crashed: the pid its run record names can be given to
//! another process. A build runs while its process holds the run's lock,
//! as everywhere in planexe, so the tools neither refuse to build, nor
//! wait for, nor signal a stranger that has the crashed build's pid.

use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::{alive, Client};
use crate::harness::*;

/// The build tool refused with "a build (pid N) is already running" as
/// long as the process given the crashed build's pid lived, because it
/// trusted any live pid its run record named; status, runs and wait said
/// the run was running too.
#[test]
fn a_crashed_builds_pid_given_to_another_process_is_no_running_build() {
    let p = Project::new(
        r#"
[tasks.slow]
inputs = ["plan.txt"]
outputs = ["slow.txt"]
command = "touch started; while [ ! -f go ]; do sleep 0.02; done; cp plan.txt slow.txt"
"#,
    );
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    let crashed = c.ok("build", json!({"run": "r"}))["pid"].as_u64().unwrap();
    wait_for("slow to start", || p.exists("r/started"));
    // SAFETY: a signal to the build this test started.
    assert_eq!(unsafe { libc::kill(crashed as i32, libc::SIGKILL) }, 0);
    c.ok("wait", json!({"run": "r"}));
    assert!(!alive(crashed));

    // The crashed build's pid now belongs to an unrelated process.
    let mut stranger = Command::new("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = stranger.id();
    let mut run: Value = serde_json::from_str(&p.read("r/.planexe/run.json")).unwrap();
    let last = run["builds"].as_array_mut().unwrap().last_mut().unwrap();
    assert_eq!(last["outcome"], "running", "{last}");
    assert_eq!(last["pid"], crashed);
    last["pid"] = pid.into();
    p.write("r/.planexe/run.json", &run.to_string());

    // Nothing runs, whoever asks.
    let status = c.ok("status", json!({"run": "r"}));
    assert_eq!(
        (status["state"].as_str(), &status["build_pid"]),
        (Some("stopped"), &Value::Null),
        "{status}"
    );
    assert_eq!(c.ok("runs", json!({}))["runs"][0]["state"], "stopped");
    let waited = c.ok("wait", json!({"run": "r", "timeout_s": 0.2}));
    assert_eq!(waited["timed_out"], false, "{waited}");
    assert_eq!(
        c.ok("stop", json!({"run": "r"}))["stopped_pid"],
        Value::Null
    );
    let cli: Value = serde_json::from_str(&p.run(&["status", "-C", "r", "--json"]).stdout).unwrap();
    assert_eq!(cli["state"], "stopped", "{cli}");

    // The build tool starts a build, which resumes the run.
    p.write("r/go", "");
    let started = c.ok("build", json!({"run": "r"}));
    assert_ne!(started["pid"], pid, "{started}");
    let status = c.ok("wait", json!({"run": "r", "timeout_s": 30}));
    assert_eq!(status["state"], "completed", "{status}");
    assert_eq!(p.read("r/slow.txt"), "a shed\n");
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "the stranger was signalled"
    );
    assert!(c.close().success());
    let _ = stranger.kill();
    let _ = stranger.wait();
}
