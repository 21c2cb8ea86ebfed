//! The processes a task's command runs as, found again after a crash. A
//! crashed build leaves commands running in process groups of their own;
//! the next build stops them, but only once it is sure a process is the
//! task's command: after a reboot or a long pause, a recorded pid can
//! belong to anything. A task's shell leads its own group, was started
//! with the task's `PLANEXE_TASK` and the run's `PLANEXE_RUN_DIR` in its
//! environment, and started no earlier than the journal says the task did.
//! Linux's `/proc` says all three.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime};

use crate::store::process as store_process;

/// How much earlier than its journal entry a process may seem to have
/// started (the boot time `/proc` gives is whole seconds).
const CLOCK_SLACK: Duration = Duration::from_secs(2);

/// Whether `pid` is alive and leads its own process group, as the shell of
/// a planexe task does.
pub fn is_group_leader(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: getpgid only reads the process table.
    unsafe { libc::getpgid(pid) == pid }
}

/// Whether `pid` is the command of a task: it leads its own group, its
/// environment holds every one of `vars`, and it started no earlier than
/// `not_before` (when known). Otherwise, why not.
pub fn is_task_command(
    pid: u32,
    vars: &[(&str, &OsStr)],
    not_before: Option<SystemTime>,
) -> Result<(), String> {
    if pid == std::process::id() || !is_group_leader(pid) {
        return Err("it does not lead a process group of its own".into());
    }
    if !store_process::alive(pid) {
        // The shell exited (a zombie nobody reaped yet): its group is the
        // task's while a process of it still runs with the task's
        // environment (a child the shell left behind).
        let members = group_members(pid);
        if members.is_empty() {
            return Err("it has exited".into());
        }
        if !members.iter().any(|&m| started_with(m, vars)) {
            return Err("its group's environment is not the task's".into());
        }
    } else if !started_with(pid, vars) {
        return Err("its environment is not the task's".into());
    }
    // A zombie keeps its start time.
    match (not_before, store_process::start_time(pid)) {
        (Some(limit), Some(started)) if started + CLOCK_SLACK < limit => {
            Err("it started before the task did".into())
        }
        (Some(_), None) => Err("its start time cannot be read".into()),
        _ => Ok(()),
    }
}

/// The live processes that are the command of a task (see
/// [`is_task_command`]): how a build finds a command that a crashed build
/// started but did not live to journal the pid of. Processes of other
/// users, whose environment is unreadable, are never matched.
pub fn task_commands(vars: &[(&str, &OsStr)], not_before: Option<SystemTime>) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| is_task_command(pid, vars, not_before).is_ok())
        .collect()
}

/// The live processes of process group `pgid`, but its leader.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| p != pgid && store_process::alive(p))
        .filter(|&p| {
            let Ok(pid) = i32::try_from(p) else {
                return false;
            };
            // SAFETY: getpgid only reads the process table.
            unsafe { libc::getpgid(pid) == pgid as i32 }
        })
        .collect()
}

/// Whether the process was started with every one of `vars`.
fn started_with(pid: u32, vars: &[(&str, &OsStr)]) -> bool {
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let have: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
    vars.iter().all(|(name, value)| {
        let wanted = [name.as_bytes(), b"=", value.as_bytes()].concat();
        have.contains(&wanted.as_slice())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_that_started_before_the_task_is_not_its_command() {
        let me = std::process::id();
        let started = store_process::start_time(me).expect("this process's start time");
        let now = SystemTime::now();
        assert!(started <= now + CLOCK_SLACK, "{started:?} {now:?}");
        assert!(now
            .duration_since(started)
            .is_ok_and(|d| d < Duration::from_secs(3600)));
        // The test process leads no group of its own and has no task's
        // environment: never a task's command.
        let vars = [("PLANEXE_TASK", OsStr::new("x"))];
        assert!(is_task_command(me, &vars, None).is_err());
        assert!(task_commands(&vars, None).is_empty());
    }
}
