//! The pause before a model is asked again after a transient failure:
//! full jitter, `base * 2^n` capped (`PLANEXE_RETRY_BASE_MS` and
//! `PLANEXE_RETRY_CAP_MS` change both, so tests need no real waits).

use std::time::Duration;

use crate::exec::env::Env;

/// Backoff settings: full jitter, `base * 2^n` capped.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// 1 s base and 60 s cap, or `PLANEXE_RETRY_BASE_MS` and
    /// `PLANEXE_RETRY_CAP_MS` (tests use them to avoid real waits).
    pub fn from_env(env: &Env) -> Backoff {
        let ms = |name: &str, default: u64| {
            env.get(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(default)
        };
        Backoff {
            base: Duration::from_millis(ms("PLANEXE_RETRY_BASE_MS", 1000)),
            cap: Duration::from_millis(ms("PLANEXE_RETRY_CAP_MS", 60_000)),
        }
    }

    /// The pause before retry number `n` (0-based).
    pub fn delay(&self, n: u32) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << n.min(20)).min(self.cap);
        ceiling.mul_f64(fastrand::f64())
    }
}
