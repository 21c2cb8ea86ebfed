//! Other processes the store hears of: the build named in `run.json`, the
//! writer of a temporary file. Whether one is alive decides whether its
//! traces are a live build's or a crash's leftovers.

/// Whether a process with this pid exists (also when it belongs to another
/// user, which signal 0 reports as `EPERM`).
pub fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    exists || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_is_alive_and_pid_zero_is_not_a_process() {
        assert!(super::alive(std::process::id()));
        assert!(!super::alive(0));
        assert!(!super::alive(u32::MAX));
    }
}
