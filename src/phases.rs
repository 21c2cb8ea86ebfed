//! Where one invocation's time goes: named phases (loading the pipeline,
//! reading the state log, planning, writing the summary...), timed only
//! when asked. The CLI turns timing on for `PLANEXE_STATS=1` and prints
//! the table on stderr when the command ends, as ninja's `-d stats` does;
//! otherwise a phase costs one relaxed atomic load.
//!
//! Phases may nest and may run on several threads at once; each is
//! reported with its count and its total time, in the order first seen.
//! With `PLANEXE_STATS=timeline`, each phase is also listed as it ran:
//! its start and end (ms since timing was turned on) and its thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);
static TOTALS: Mutex<Vec<(&'static str, u32, Duration)>> = Mutex::new(Vec::new());
/// With a timeline: when timing was turned on, and every phase as it ran.
static TIMELINE: Mutex<Option<Timeline>> = Mutex::new(None);

struct Timeline {
    origin: Instant,
    spans: Vec<(&'static str, Instant, Instant, String)>,
}

impl Timeline {
    /// The phases as they ran, by start. A phase that ran more than a few
    /// times (once per task) is one line: how many, the first start and the
    /// last end.
    fn lines(&mut self, width: usize) -> Vec<String> {
        const EACH: usize = 4;
        self.spans.sort_by_key(|s| s.1);
        let ms = |t: Instant| t.saturating_duration_since(self.origin).as_secs_f64() * 1000.0;
        let mut counts: Vec<(&str, usize, Instant)> = Vec::new();
        for (name, _, end, _) in &self.spans {
            match counts.iter_mut().find(|(n, _, _)| n == name) {
                Some((_, count, last)) => {
                    *count += 1;
                    *last = (*last).max(*end);
                }
                None => counts.push((name, 1, *end)),
            }
        }
        let mut lines = vec![format!(
            "{:<width$} {:>9} {:>9}  thread",
            "timeline", "start ms", "end ms"
        )];
        let mut summarized: Vec<&str> = Vec::new();
        for (name, start, end, thread) in &self.spans {
            let Some(&(_, count, last)) = counts.iter().find(|(n, _, _)| n == name) else {
                continue;
            };
            if count <= EACH {
                lines.push(format!(
                    "{name:<width$} {:>9.3} {:>9.3}  {thread}",
                    ms(*start),
                    ms(*end)
                ));
            } else if !summarized.contains(name) {
                summarized.push(name);
                lines.push(format!(
                    "{name:<width$} {:>9.3} {:>9.3}  {count} times",
                    ms(*start),
                    ms(last)
                ));
            }
        }
        lines
    }
}

/// Turns timing on for the rest of the process.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Turns timing on, and keeps every phase's start and end for the report.
pub fn enable_timeline() {
    enable();
    let mut timeline = TIMELINE.lock().unwrap_or_else(|p| p.into_inner());
    timeline.get_or_insert_with(|| Timeline {
        origin: Instant::now(),
        spans: Vec::new(),
    });
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

/// Runs `f` as the phase `name`.
pub fn timed<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    let _phase = phase(name);
    f()
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
            let mut timeline = TIMELINE.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(timeline) = timeline.as_mut() {
                let thread = std::thread::current();
                let thread = thread
                    .name()
                    .map_or_else(|| format!("{:?}", thread.id()), str::to_string);
                timeline
                    .spans
                    .push((self.name, start, Instant::now(), thread));
            }
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
    if let Some(timeline) = TIMELINE.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        lines.extend(timeline.lines(width));
    }
    if let Some((user, system, peak_kb)) = own_usage() {
        lines.push(format!(
            "cpu of planexe itself (not its commands): user {user:.3} ms, system {system:.3} ms; peak RSS {peak_kb} KiB"
        ));
    }
    lines
}

/// The processor time this process spent (user, system, in ms) and its
/// peak resident set: its own, without the commands it ran.
fn own_usage() -> Option<(f64, f64, i64)> {
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid
    // initial value for it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage struct, RUSAGE_SELF.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    Some((ms(usage.ru_utime), ms(usage.ru_stime), usage.ru_maxrss))
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
        assert_eq!(timed("test.c", || 7), 7);
        assert!(report().iter().any(|l| l.starts_with("test.c")));
        assert!(report()
            .last()
            .unwrap()
            .starts_with("cpu of planexe itself"));
    }

    #[test]
    fn a_timeline_lists_phases_by_start_and_sums_up_those_run_many_times() {
        let origin = Instant::now();
        let at = |ms: u64| origin + Duration::from_millis(ms);
        let mut timeline = Timeline {
            origin,
            spans: vec![
                ("late", at(9), at(10), "main".into()),
                ("early", at(1), at(3), "main".into()),
            ],
        };
        for i in 0..6 {
            timeline
                .spans
                .push(("task", at(4 + i), at(5 + i), "job".into()));
        }
        let lines = timeline.lines(5);
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(lines[1].starts_with("early") && lines[1].contains("1.000"));
        assert!(lines[2].starts_with("task") && lines[2].ends_with("6 times"));
        assert!(lines[2].contains("10.000"), "{}", lines[2]);
        assert!(lines[3].starts_with("late"));
    }
}
