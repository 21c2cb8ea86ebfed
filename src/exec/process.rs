//! The processes a task's command runs as, found again after a crash. A
//! crashed build leaves commands running in process groups of their own;
//! the next build stops them, but only once it is sure a group is the
//! task's: after a reboot or a long pause, a recorded pid can belong to
//! anything. A task's shell leads its own group, was started with the
//! task's `PLANEXE_TASK` and the run's `PLANEXE_RUN_DIR` in its
//! environment, and started no earlier than the journal says the task did.
//! Linux's `/proc` says all three.
//!
//! The shell may have ended while what it started runs on (a command put
//! in the background, a pipeline's last stage): an init or subreaper that
//! inherited it from the crashed build reaps it at once, another one late,
//! and it may be exiting as it is looked at. Its group outlives it, and
//! the kernel gives its number to no other process or group while a
//! member is left. The group is then the task's while one of its members
//! was started with the task's environment, after the task.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime};

use crate::store::process as store_process;

/// How much earlier than its journal entry a process may seem to have
/// started (the boot time `/proc` gives is whole seconds).
const CLOCK_SLACK: Duration = Duration::from_secs(2);

/// Why a recorded pid does not name a task's command that still runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotTheCommand {
    /// The command ended: no process of its group is left.
    Ended,
    /// Something runs there, but not the task's command: why not.
    Other(String),
}

/// Whether `pid` names the process group of a task's command that still
/// runs: `pid` leads it (or led it, and a member is left), and the leader
/// (once it has ended, a member) has every one of `vars` in its
/// environment and started no earlier than `not_before` (when known).
/// Otherwise, why not.
pub fn is_task_command(
    pid: u32,
    vars: &[(&str, &OsStr)],
    not_before: Option<SystemTime>,
) -> Result<(), NotTheCommand> {
    let Ok(signed) = i32::try_from(pid) else {
        return Err(other("it is not a process id"));
    };
    // SAFETY: getpgrp only reads this process's own group.
    let own_group = unsafe { libc::getpgrp() };
    if signed <= 1 || pid == std::process::id() || signed == own_group {
        return Err(other("it is not a process a task's command could be"));
    }
    if store_process::alive(pid) {
        // Read while it runs; empty once it is exiting (its memory gone).
        match std::fs::read(format!("/proc/{pid}/environ")) {
            Ok(environ) if !environ.is_empty() => {
                if group_of(pid) != Some(pid) {
                    return Err(other("it does not lead a process group of its own"));
                }
                if !holds(&environ, vars) {
                    return Err(other("its environment is not the task's"));
                }
                match started_in_time(pid, not_before) {
                    Some(true) => return Ok(()),
                    Some(false) => return Err(other("it started before the task did")),
                    // Gone as it was looked at: its group is judged below.
                    None => {}
                }
            }
            Ok(_) => {}
            Err(_) if store_process::alive(pid) => {
                return Err(other("its environment cannot be read"));
            }
            Err(_) => {}
        }
    }
    // The leader ended (reaped, a zombie, or exiting): its group.
    let members = group_members(pid);
    if members.is_empty() {
        return Err(NotTheCommand::Ended);
    }
    let ours: Vec<u32> = members
        .into_iter()
        .filter(|&m| started_with(m, vars))
        .collect();
    if ours.is_empty() {
        return Err(other("its group's environment is not the task's"));
    }
    let started: Vec<Option<bool>> = ours
        .iter()
        .map(|&m| started_in_time(m, not_before))
        .collect();
    if started.contains(&Some(true)) {
        Ok(())
    } else if started.contains(&Some(false)) {
        Err(other("its group started before the task did"))
    } else {
        // Every one of them ended as it was looked at.
        Err(NotTheCommand::Ended)
    }
}

fn other(why: &str) -> NotTheCommand {
    NotTheCommand::Other(why.to_string())
}

/// Whether `pid` started no earlier than `not_before` (always, when that
/// is not known); `None` when its start time cannot be read (it is gone).
fn started_in_time(pid: u32, not_before: Option<SystemTime>) -> Option<bool> {
    match not_before {
        None => Some(true),
        Some(limit) => Some(store_process::start_time(pid)? + CLOCK_SLACK >= limit),
    }
}

/// The process groups of live tasks' commands that `vars` and
/// `not_before` say are a task's (see [`is_task_command`]): how a build
/// finds a command that a crashed build started but did not live to
/// journal the pid of. Processes of other users, whose environment is
/// unreadable, are never matched.
pub fn task_commands(vars: &[(&str, &OsStr)], not_before: Option<SystemTime>) -> Vec<u32> {
    // A process that exited has no environment left to hold `vars`.
    let groups: BTreeSet<u32> = processes()
        .filter(|&p| started_with(p, vars))
        .filter_map(group_of)
        .collect();
    groups
        .into_iter()
        .filter(|&g| is_task_command(g, vars, not_before).is_ok())
        .collect()
}

/// Every process `/proc` lists, zombies included.
fn processes() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
}

/// The process group of `pid`, while it runs.
fn group_of(pid: u32) -> Option<u32> {
    let pid = i32::try_from(pid).ok()?;
    // SAFETY: getpgid only reads the process table.
    u32::try_from(unsafe { libc::getpgid(pid) }).ok()
}

/// The live processes of process group `pgid`, but its leader.
fn group_members(pgid: u32) -> Vec<u32> {
    processes()
        .filter(|&p| p != pgid && group_of(p) == Some(pgid))
        .filter(|&p| store_process::alive(p))
        .collect()
}

/// Whether the process was started with every one of `vars`.
fn started_with(pid: u32, vars: &[(&str, &OsStr)]) -> bool {
    std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| holds(&environ, vars))
}

/// Whether an environment as `/proc` gives it holds every one of `vars`.
fn holds(environ: &[u8], vars: &[(&str, &OsStr)]) -> bool {
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

    #[test]
    fn a_recorded_pid_that_could_name_this_process_or_every_process_is_refused() {
        // kill(-0) would signal this process's own group, kill(-1) every
        // process it may signal: a damaged journal must lead to neither.
        // SAFETY: getpgrp only reads this process's own group.
        let own_group = unsafe { libc::getpgrp() } as u32;
        for pid in [0, 1, std::process::id(), own_group, u32::MAX] {
            assert!(
                matches!(
                    is_task_command(pid, &[], None),
                    Err(NotTheCommand::Other(_))
                ),
                "{pid}"
            );
        }
    }

    #[test]
    fn an_environment_holds_a_variable_only_whole() {
        let environ = b"PLANEXE_TASK=ab\0PLANEXE_RUN_DIR=/r\0";
        let task = |v: &'static str| [("PLANEXE_TASK", OsStr::new(v))];
        assert!(holds(environ, &task("ab")));
        assert!(!holds(environ, &task("a")));
        assert!(!holds(environ, &task("abc")));
        assert!(!holds(b"", &task("ab")));
        assert!(holds(b"", &[]));
    }
}
