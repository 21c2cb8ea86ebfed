//! A build the server did not start: one a script started in the
//! background (`planexe build &`), which ignores SIGINT as such jobs do
//! (`exec::interrupt`). The stop tool stops it all the same.

use serde_json::json;

use super::{alive, Client};
use crate::harness::*;

/// stop sent SIGINT, which a script's background build ignores: it
/// said it had stopped the build, which ran on.
#[test]
fn stop_stops_a_build_a_script_started_in_the_background() {
    let p = Project::new(
        r#"
[tasks.slow]
inputs = ["plan.txt"]
outputs = ["slow.txt"]
command = "touch started; sleep 100; cp plan.txt slow.txt"
"#,
    );
    let mut c = Client::start(&p, &[]);
    c.ok("run_create", json!({"plan": "a shed", "name": "r"}));
    let script = "\"$0\" \"$@\" & echo $! > bgpid; wait $!";
    let mut build = wrapped("sh", ["-c", script], &p.command(&["build", "-C", "r"]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("slow to start", || p.exists("r/started"));
    let pid: u64 = p.read("bgpid").trim().parse().unwrap();
    let stopped = c.ok("stop", json!({"run": "r"}));
    assert_eq!(stopped["stopped_pid"], pid, "{stopped}");
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    assert_eq!(build.wait().unwrap().code(), Some(130));
    assert!(!alive(pid));
    assert!(c.close().success());
}
