//! How the page says times, durations, money, tokens and states, and
//! where the timeline's axis ticks fall: labels the view model is made of.

use serde::Serialize;
use unicode_width::UnicodeWidthChar;

use crate::observe::status::totals::cost_in;
use crate::store::Usage;

/// An RFC 3339 time as `2026-11-22 16:42:00 UTC`; anything else as it is.
pub(super) fn when(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

/// `340 ms`, `1.25 s`, `12.5 s`, `2m 03s`, `1h 02m`.
pub(super) fn duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..10_000 => format!("{:.2} s", ms as f64 / 1000.0),
        10_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// `$1.25`, `$0.0156`, `$0.000025`: cents hide what a model call costs.
pub(super) fn money(usd: f64) -> String {
    let places = if usd == 0.0 || usd >= 1.0 {
        2
    } else if usd >= 0.0001 {
        4
    } else {
        6
    };
    format!("${usd:.places$}")
}

/// The state as a reader says it.
pub(super) fn state_label(state: &str) -> &str {
    match state {
        "not-run" => "not run",
        "never-built" => "never built",
        _ => state,
    }
}

/// A round step between axis ticks that gives at most about eight of them.
pub(super) fn tick_step(total_us: i64) -> i64 {
    const MS: i64 = 1_000;
    const S: i64 = 1_000 * MS;
    const STEPS: [i64; 21] = [
        MS,
        2 * MS,
        5 * MS,
        10 * MS,
        20 * MS,
        50 * MS,
        100 * MS,
        200 * MS,
        500 * MS,
        S,
        2 * S,
        5 * S,
        10 * S,
        15 * S,
        30 * S,
        60 * S,
        120 * S,
        300 * S,
        600 * S,
        1800 * S,
        3600 * S,
    ];
    STEPS
        .into_iter()
        .find(|&step| total_us / step <= 8)
        .unwrap_or_else(|| (total_us / 8 / (3600 * S) + 1) * 3600 * S)
}

#[derive(Serialize)]
pub(super) struct Tokens {
    total: u64,
    prompt: u64,
    completion: u64,
    cost: String,
    /// Some calls reported no usage.
    estimated: bool,
}

/// The judges' calls and their share of the tokens and cost.
#[derive(Serialize)]
pub(super) struct Judging {
    pub(super) calls: u64,
    pub(super) tokens: Tokens,
}

impl Tokens {
    pub(super) fn of(u: &Usage) -> Tokens {
        Tokens {
            total: u.total_tokens,
            prompt: u.prompt_tokens,
            completion: u.completion_tokens,
            cost: cost_in(u, money),
            estimated: u.tokens_estimated,
        }
    }
}

/// Whether two sums of tokens and cost differ by more than the order of
/// their float additions.
pub(super) fn differ(a: &Usage, b: &Usage) -> bool {
    a.total_tokens != b.total_tokens || (a.cost_usd - b.cost_usd).abs() > 1e-9
}

/// `text` cut to `columns` columns of a terminal (a CJK character two, a
/// combining one none, kept with the character it marks), with `…` when
/// cut: a graph node's name, which a proportional font draws about as
/// wide.
pub(super) fn fit(text: &str, columns: usize) -> String {
    let mut used = 0;
    for (at, c) in text.char_indices() {
        used += c.width().unwrap_or(0);
        if used > columns {
            return format!("{}…", &text[..at]);
        }
    }
    text.to_string()
}
