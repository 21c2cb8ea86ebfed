//! How an answer ended, as the server names it (`finish_reason` of an
//! OpenAI-compatible server, Anthropic's `stop_reason`), sorted into what
//! planexe does with it: the model finished (the answer may be taken), the
//! token limit cut it (`truncated`), a content filter or the model itself
//! refused it (`refused`), or it ended some other way (`server_error`).
//!
//! The rule (docs/llm.md, "How an answer ends"): incomplete output is never
//! taken for a result, and a legitimate completion a server spells its own
//! way is not failed. Known names come first; an unknown one counts as the
//! model finishing only when one of its words says it ended (`stop`, `end`,
//! `eos`, ...), as a refusal when one says it was filtered or refused, and
//! as unfinished otherwise (vLLM's `abort`, an `error`). Pure: what a
//! failure of each is, is [`verdict`](super::verdict)'s.

/// How an answer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// The model finished its answer.
    Stop,
    /// The token limit cut it off.
    Length,
    /// A content filter stopped it, or the model refused (the reason as
    /// the server named it).
    Refused(String),
    /// The server ended it for a reason that does not say the model
    /// finished (`abort`, `error`, one planexe does not know).
    Unfinished(String),
}

/// Reasons that say the model ended its turn: a stop, an end of sequence,
/// a tool call (no tools are offered, so what it wrote is judged as is).
const COMPLETE: &[&str] = &[
    "stop",
    "end_turn",
    "stop_sequence",
    "eos",
    "eos_token",
    "tool_calls",
    "function_call",
    "tool_use",
];

/// Reasons that say the token limit (or the context) cut the answer.
const CUT: &[&str] = &[
    "length",
    "max_tokens",
    "model_length",
    "model_context_window_exceeded",
];

/// Words of a reason that say the answer was withheld: a filter, a
/// refusal, a safety or policy stop (`content_filter`, `refusal`,
/// `safety`, `recitation`, `prohibited_content`, `blocklist`, `spii`).
const REFUSAL_WORDS: &[&str] = &[
    "filter",
    "filtered",
    "refusal",
    "refused",
    "safety",
    "recitation",
    "prohibited",
    "blocklist",
    "blocked",
    "spii",
    "moderation",
    "policy",
];

/// Words of an unknown reason that say the model ended of itself.
const END_WORDS: &[&str] = &[
    "stop",
    "stopped",
    "end",
    "ended",
    "eos",
    "eot",
    "done",
    "complete",
    "completed",
    "finish",
    "finished",
];

/// Sorts a reason the server named.
pub fn finish_of(reason: &str) -> Finish {
    let lower = reason.trim().to_ascii_lowercase();
    // An empty reason says no more than an absent one.
    if lower.is_empty() || COMPLETE.contains(&lower.as_str()) {
        return Finish::Stop;
    }
    if CUT.contains(&lower.as_str()) {
        return Finish::Length;
    }
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if words.iter().any(|w| REFUSAL_WORDS.contains(w)) {
        Finish::Refused(reason.to_string())
    } else if words.iter().any(|w| END_WORDS.contains(w)) {
        Finish::Stop
    } else {
        Finish::Unfinished(reason.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_sort() {
        for complete in [
            "stop",
            "end_turn",
            "stop_sequence",
            "eos",
            "STOP",
            "tool_calls",
            "end_of_turn",
            "eot_id",
            "completed",
            "",
        ] {
            assert_eq!(finish_of(complete), Finish::Stop, "{complete}");
        }
        for cut in ["length", "max_tokens", "model_context_window_exceeded"] {
            assert_eq!(finish_of(cut), Finish::Length, "{cut}");
        }
        for refused in [
            "content_filter",
            "refusal",
            "SAFETY",
            "recitation",
            "prohibited_content",
            "blocklist",
        ] {
            assert!(
                matches!(finish_of(refused), Finish::Refused(_)),
                "{refused}"
            );
        }
        for other in ["abort", "error", "cancelled", "pause_turn", "weird"] {
            assert!(matches!(finish_of(other), Finish::Unfinished(_)), "{other}");
        }
    }
}
