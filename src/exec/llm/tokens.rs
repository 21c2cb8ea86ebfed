//! The tokens and cost of one model call: as the server reported them, or
//! estimated when it reported none, so a failed call costs what it cost;
//! and their sum over a task's calls, the judge's share apart.

use super::call::{self, CallError};
use super::provider::Message;
use super::PromptResult;
use crate::model::models::ModelConfig;
use crate::store::record::nano_usd;
use crate::store::{ErrorKind, Usage};

impl PromptResult {
    /// Counts the tokens and cost of a call, in the judge's share as well
    /// when it was the judge's.
    pub(super) fn count(&mut self, usage: &Usage, judge: bool) {
        self.usage.add(usage);
        if judge {
            self.judge_usage.add(usage);
        }
    }

    /// [`PromptResult::count`] for a call that went to a server: one that
    /// cost tokens makes the result [`PromptResult::paid`] for.
    pub(super) fn count_call(&mut self, usage: &Usage, judge: bool) {
        self.count(usage, judge);
        self.paid |= usage.total_tokens > 0;
    }
}

/// The tokens of one call: as the server reported them, or estimated when
/// it reported none (from the pieces streamed, the answer's length, the
/// prompt's length), so a failed call costs what it cost.
pub(super) struct Tokens {
    pub prompt: u64,
    pub completion: u64,
    pub estimated: bool,
    /// Whether the request reached a server at all (a refused connection
    /// costs nothing and counts nothing).
    pub reached: bool,
}

impl Tokens {
    pub fn of(
        outcome: &std::result::Result<call::CallOk, CallError>,
        pieces: u64,
        messages: &[Message],
        system: Option<&str>,
    ) -> Tokens {
        let (reported, answer_len) = match outcome {
            Ok(ok) => (ok.answer.usage, ok.answer.text.len()),
            Err(e) if e.kind == ErrorKind::Connection => {
                return Tokens {
                    prompt: 0,
                    completion: 0,
                    estimated: false,
                    reached: false,
                }
            }
            Err(e) => (e.usage, 0),
        };
        let mut estimated = false;
        let prompt = reported.prompt_tokens.unwrap_or_else(|| {
            estimated = true;
            let chars: usize = messages.iter().map(|m| m.content.len()).sum::<usize>()
                + system.map_or(0, str::len);
            estimate_tokens(chars)
        });
        let completion = reported.completion_tokens.unwrap_or_else(|| {
            estimated = true;
            pieces.max(estimate_tokens(answer_len))
        });
        Tokens {
            prompt,
            completion,
            estimated,
            reached: true,
        }
    }
}

/// Tokens in `bytes` of text, by the usual rule of thumb (four bytes of
/// English text a token), rounded up.
fn estimate_tokens(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(4)
}

/// The cost of a call in USD, when the model has prices.
pub(super) fn cost(model: &ModelConfig, prompt_tokens: u64, completion_tokens: u64) -> Option<f64> {
    if model.input_cost_per_mtok.is_none() && model.output_cost_per_mtok.is_none() {
        return None;
    }
    let input = prompt_tokens as f64 * model.input_cost_per_mtok.unwrap_or(0.0);
    let output = completion_tokens as f64 * model.output_cost_per_mtok.unwrap_or(0.0);
    // Prices are bounded when loaded, so this is finite; a cost that is
    // not would be written as null and lost. To the nanodollar, as its
    // sums are: `0.7` per million tokens is not exact in binary.
    Some(nano_usd((input + output) / 1_000_000.0)).filter(|c| c.is_finite())
}
