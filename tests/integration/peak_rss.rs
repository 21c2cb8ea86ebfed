//! The peak resident memory of a planexe run, for the tests that bound
//! it (a server sending endless or huge answers).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A finished run: exit code, stderr, and peak resident memory.
pub struct Measured {
    pub code: i32,
    pub stderr: String,
    pub peak_rss_bytes: u64,
    pub elapsed: Duration,
}

/// Runs `command` and measures its peak RSS. `/usr/bin/time` reports it
/// exactly. (`wait4` from this process would not: the child's memory
/// before `exec` is a copy of this test process's, and counts.) Without
/// it, `VmHWM` is polled while the child runs, which may miss the last
/// milliseconds: a lower bound, still far above the cap were memory
/// unbounded.
pub fn measured(command: Command) -> Measured {
    let started = Instant::now();
    let time = std::path::Path::new("/usr/bin/time");
    let report = tempfile::NamedTempFile::new().unwrap();
    let mut run = if time.exists() {
        let args = [
            "-f".as_ref(),
            "%M".as_ref(),
            "-o".as_ref(),
            report.path().as_os_str(),
        ];
        crate::harness::wrapped(time, args, &command)
    } else {
        command
    };
    let mut child = run
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });
    let mut polled_kib = 0u64;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let proc_status =
            std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
        if let Some(kib) = proc_status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            polled_kib = polled_kib.max(kib);
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let peak_kib = if time.exists() {
        let text = std::fs::read_to_string(report.path()).unwrap();
        // The last line: `time` prints "Command exited with non-zero
        // status N" before it.
        text.lines()
            .last()
            .and_then(|l| l.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("cannot read /usr/bin/time's report: {text:?}"))
    } else {
        polled_kib
    };
    Measured {
        code: status.code().unwrap_or(-1),
        stderr: reader.join().unwrap(),
        peak_rss_bytes: peak_kib * 1024,
        elapsed: started.elapsed(),
    }
}
