//! Per-model limits shared by every task of a build: at most
//! `max_concurrency` requests in flight, and request starts spaced to stay
//! within `requests_per_minute`. Waiting is interruptible and bounded by the
//! task's deadline, and said as it starts ([`Wait`]), so `status` can tell a
//! task queued for its model from one whose call is in flight.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::exec::interrupt::Interrupt;
pub use crate::exec::observer::{Queued, Wait};

/// Why a wait ended without a permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    Interrupted,
    Deadline,
}

/// How a task queued for `model` says what it waits for, after "while":
/// `queued for model local (max_concurrency = 2, all in flight)`.
pub fn queued_for(model: &str, wait: Wait) -> String {
    match wait {
        Wait::Slot { max } => {
            format!("queued for model {model} (max_concurrency = {max}, all in flight)")
        }
        Wait::Rate { .. } => format!("queued for model {model} (its requests_per_minute)"),
    }
}

#[derive(Debug)]
pub struct Gate {
    max: Option<usize>,
    in_flight: Mutex<usize>,
    freed: Condvar,
    spacing: Option<Duration>,
    next_start: Mutex<Option<Instant>>,
}

/// Held while a request is in flight; frees its slot on drop.
#[derive(Debug)]
pub struct Permit {
    gate: Arc<Gate>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.gate.max.is_some() {
            let mut n = self
                .gate
                .in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *n = n.saturating_sub(1);
            self.gate.freed.notify_one();
        }
    }
}

const POLL: Duration = Duration::from_millis(50);
/// The longest pause between two request starts (a day).
const MAX_SPACING: Duration = Duration::from_secs(86_400);

impl Gate {
    pub fn new(max_concurrency: Option<usize>, requests_per_minute: Option<f64>) -> Arc<Gate> {
        Arc::new(Gate {
            max: max_concurrency,
            in_flight: Mutex::new(0),
            freed: Condvar::new(),
            // The pipeline loader bounds the rate; a library caller's odd
            // value is clamped, never a panic.
            spacing: requests_per_minute.map(|rpm| {
                Duration::try_from_secs_f64(60.0 / rpm)
                    .unwrap_or(if rpm > 0.0 {
                        MAX_SPACING
                    } else {
                        Duration::ZERO
                    })
                    .min(MAX_SPACING)
            }),
            next_start: Mutex::new(None),
        })
    }

    /// Waits for a slot and for the rate limit, then returns a permit.
    /// `waiting` hears of each wait as it begins (none when the call can
    /// start at once).
    pub fn acquire(
        self: &Arc<Gate>,
        deadline: Option<Instant>,
        interrupt: &Interrupt,
        waiting: &mut dyn FnMut(Wait),
    ) -> Result<Permit, Abort> {
        if let Some(max) = self.max {
            let mut n = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            if *n >= max {
                waiting(Wait::Slot { max });
            }
            while *n >= max {
                check(deadline, interrupt)?;
                n = self
                    .freed
                    .wait_timeout(n, POLL)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            *n += 1;
        }
        let permit = Permit {
            gate: Arc::clone(self),
        };
        if let Some(spacing) = self.spacing {
            let start = {
                let mut next = self.next_start.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                let start = next.map_or(now, |n| n.max(now));
                *next = Some(start.checked_add(spacing).unwrap_or(start));
                start
            };
            let now = Instant::now();
            if start > now {
                waiting(Wait::Rate {
                    until: std::time::SystemTime::now() + (start - now),
                });
            }
            sleep_until(start, deadline, interrupt)?;
        }
        Ok(permit)
    }
}

fn check(deadline: Option<Instant>, interrupt: &Interrupt) -> Result<(), Abort> {
    if interrupt.requested() {
        return Err(Abort::Interrupted);
    }
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return Err(Abort::Deadline);
    }
    Ok(())
}

/// Sleeps until `until`, waking to honour an interrupt or the deadline.
pub fn sleep_until(
    until: Instant,
    deadline: Option<Instant>,
    interrupt: &Interrupt,
) -> Result<(), Abort> {
    loop {
        check(deadline, interrupt)?;
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        let mut step = (until - now).min(POLL);
        if let Some(d) = deadline {
            step = step.min(d.saturating_duration_since(now));
        }
        std::thread::sleep(step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_is_capped_and_freed() {
        let gate = Gate::new(Some(1), None);
        let interrupt = Interrupt::new();
        let mut waits = Vec::new();
        let first = gate
            .acquire(None, &interrupt, &mut |w| waits.push(w))
            .unwrap();
        assert_eq!(waits, [], "the first call starts at once");
        let soon = Some(Instant::now() + Duration::from_millis(60));
        let queued = gate.acquire(soon, &interrupt, &mut |w| waits.push(w));
        assert_eq!(queued.unwrap_err(), Abort::Deadline);
        assert_eq!(waits, [Wait::Slot { max: 1 }]);
        drop(first);
        assert!(gate.acquire(None, &interrupt, &mut |_| {}).is_ok());
    }

    #[test]
    fn a_wait_for_the_rate_says_when_the_call_starts() {
        let gate = Gate::new(None, Some(600.0));
        let interrupt = Interrupt::new();
        let mut waits = Vec::new();
        gate.acquire(None, &interrupt, &mut |w| waits.push(w))
            .unwrap();
        assert_eq!(waits, []);
        let before = std::time::SystemTime::now();
        gate.acquire(None, &interrupt, &mut |w| waits.push(w))
            .unwrap();
        match waits[..] {
            [Wait::Rate { until }] => {
                let ahead = until.duration_since(before).unwrap_or_default();
                assert!(ahead <= Duration::from_millis(100), "{ahead:?}");
            }
            _ => panic!("{waits:?}"),
        }
    }

    #[test]
    fn odd_rates_never_panic() {
        for rpm in [1e-300, 0.0, -1.0, f64::NAN, f64::INFINITY, 1e300] {
            let gate = Gate::new(None, Some(rpm));
            assert!(gate.spacing.is_some_and(|s| s <= MAX_SPACING), "{rpm}");
        }
    }
}
