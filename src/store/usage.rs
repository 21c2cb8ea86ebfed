//! What model calls used: token counts and cost ([`Usage`]) of a call, a
//! task's last run or a whole run, and the judges' share of them
//! ([`JudgeUsage`]). Sums saturate and stay exact to the nanodollar.

use serde::{Deserialize, Serialize};

/// Token counts and cost, of a call, a task or a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub cost_usd: f64,
    /// Some of the counts are estimates: a call the server reported no
    /// usage for (one that failed, was cut or stopped) counts the pieces
    /// it streamed.
    #[serde(default)]
    pub tokens_estimated: bool,
    /// Some of the calls were of a model with no prices: `cost_usd` counts
    /// only the priced ones (0 when none was). Written only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unpriced: bool,
}

impl Usage {
    /// Adds `other` to this sum. Counts come from servers, so the sums
    /// saturate instead of overflowing, and the cost stays finite (JSON has
    /// no infinity: it would be written as null and never read back) and
    /// exact to the nanodollar ([`nano_usd`]).
    pub fn add(&mut self, other: &Usage) {
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
        self.total_tokens = self.total_tokens.saturating_add(other.total_tokens);
        self.tokens_estimated |= other.tokens_estimated;
        self.unpriced |= other.unpriced;
        let cost = self.cost_usd + other.cost_usd;
        self.cost_usd = if cost.is_finite() {
            nano_usd(cost)
        } else if cost.is_nan() {
            self.cost_usd
        } else {
            f64::MAX.copysign(cost)
        };
    }
}

/// A cost in USD rounded to the nanodollar, as every cost planexe computes
/// or sums is: binary floats make a sum of decimal prices inexact
/// (`0.10880000000000001`), and written to JSON the noise shows. Rounded at
/// each step, a sum is the exact decimal sum of its parts (each addition
/// is off by far less than half a nanodollar) and is written as that
/// decimal (`0.1088`). A cost past what an f64 holds to the nanodollar
/// (about $9 million) is left as it is.
pub fn nano_usd(usd: f64) -> f64 {
    let nanos = usd * 1e9;
    if nanos.is_finite() && nanos.abs() < 9.0e15 {
        nanos.round() / 1e9
    } else {
        usd
    }
}

/// The judges' share of a sum of model calls (a task's last run, every
/// task's, or `usage.jsonl`): how many calls were a judge's, and their
/// tokens and cost, counted in the sum as well.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JudgeUsage {
    pub calls: u64,
    #[serde(flatten)]
    pub usage: Usage,
}

impl JudgeUsage {
    /// Adds `other` to this sum (saturating, as [`Usage::add`]).
    pub fn add(&mut self, other: &JudgeUsage) {
        self.calls = self.calls.saturating_add(other.calls);
        self.usage.add(&other.usage);
    }
}
