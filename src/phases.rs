//! Where one invocation's time goes: named phases (loading the pipeline,
//! reading the state log, planning, writing the summary...), timed only
//! when asked. The CLI turns timing on for `PLANEXE_STATS=1` and prints
//! the table on stderr when the command ends, as ninja's `-d stats` does;
//! otherwise a phase costs one relaxed atomic load.
//!
//! Phases may nest and may run on several threads at once; each is
//! reported with its count and its total time, in the order first seen.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);
static TOTALS: Mutex<Vec<(&'static str, u32, Duration)>> = Mutex::new(Vec::new());

/// Turns timing on for the rest of the process.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether phases are timed.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Times the phase `name` until the guard is dropped.
#[must_use = "the phase ends when the guard is dropped"]
pub fn phase(name: &'static str) -> Phase {
    Phase {
        name,
        start: enabled().then(Instant::now),
    }
}

/// A phase being timed (see [`phase`]).
pub struct Phase {
    name: &'static str,
    start: Option<Instant>,
}

impl Drop for Phase {
    fn drop(&mut self) {
        if let Some(start) = self.start {
            add(self.name, start.elapsed());
        }
    }
}

fn add(name: &'static str, took: Duration) {
    let mut totals = TOTALS.lock().unwrap_or_else(|p| p.into_inner());
    match totals.iter_mut().find(|(n, _, _)| *n == name) {
        Some((_, count, total)) => {
            *count += 1;
            *total += took;
        }
        None => totals.push((name, 1, took)),
    }
}

/// The phases timed so far, as table lines (empty when timing is off).
pub fn report() -> Vec<String> {
    let totals = TOTALS.lock().unwrap_or_else(|p| p.into_inner());
    if totals.is_empty() {
        return Vec::new();
    }
    let width = totals.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
    let mut lines = vec![format!(
        "{:<width$} {:>7} {:>10}",
        "phase", "count", "total ms"
    )];
    for (name, count, total) in totals.iter() {
        lines.push(format!(
            "{name:<width$} {count:>7} {:>10.3}",
            total.as_secs_f64() * 1000.0
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_add_up_by_name_in_the_order_first_seen() {
        enable();
        drop(phase("test.a"));
        drop(phase("test.b"));
        drop(phase("test.a"));
        let lines = report();
        let a = lines.iter().position(|l| l.starts_with("test.a")).unwrap();
        let b = lines.iter().position(|l| l.starts_with("test.b")).unwrap();
        assert!(a < b);
        assert!(lines[a].split_whitespace().nth(1) == Some("2"));
    }
}
