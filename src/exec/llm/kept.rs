//! What `.planexe/raw/TASK.json` keeps of a call: the response as the
//! server sent it (a stream's first and last events), or, for a call that
//! failed after something came back (a status, an error body, a stream's
//! first events, a body cut short, a stream the task's own timeout gave
//! up on), what did come, with how the call failed. A call that got
//! nothing back (refused, reset, timed out before a byte, or given up on
//! by an interrupt, or by the task's timeout before a stream began)
//! leaves the file as it was, and its attempt says so, so no hint points
//! at an earlier call's response as if it were this one's.
//!
//! Everything is scrubbed of the build's secrets first; a stream's events
//! whose text carried one (split across events, so in none of them whole)
//! are left out for the text, scrubbed. A 2xx body of the wrong shape is
//! scrubbed whole before its start is quoted in the failure's message.

use serde_json::{json, Value};

use super::call::{CallError, CallOk, Partial};
use super::fault::begins;
use super::provider::truncate;
use super::Llm;
use crate::model::models::ModelConfig;

impl Llm<'_> {
    /// Scrubs the answer of a call that succeeded, and its events.
    pub(super) fn scrub_ok(&self, ok: &mut CallOk) {
        let text = self.scrub(&ok.answer.text);
        let reasoning = self.scrub(&ok.answer.reasoning);
        let carried = text != ok.answer.text || reasoning != ok.answer.reasoning;
        if carried {
            left_out(&mut ok.raw, &text, &reasoning);
        }
        ok.answer.text = text;
        ok.answer.reasoning = reasoning;
    }

    /// Scrubs what a failed call says and what came of it.
    pub(super) fn scrub_err(&self, e: &mut CallError) {
        e.message = self.scrub(&e.message);
        e.raw = self.scrub(&e.raw);
        if std::mem::take(&mut e.quote) {
            e.message = format!("{}; it begins: {}", e.message, begins(&e.raw));
            e.raw = truncate(&e.raw, 2048).to_string();
        }
        if let Some(partial) = e.response.as_deref_mut() {
            let Partial {
                raw,
                text,
                reasoning,
            } = partial;
            let scrubbed = (self.scrub(text), self.scrub(reasoning));
            if scrubbed.0 != *text || scrubbed.1 != *reasoning {
                left_out(raw, &scrubbed.0, &scrubbed.1);
            }
            (*text, *reasoning) = scrubbed;
        }
    }

    /// Writes what came back of a call to `.planexe/raw/TASK.json`, and
    /// says whether anything did (else the file is left as it was).
    pub(super) fn keep_raw(
        &self,
        task: &str,
        model: &ModelConfig,
        outcome: &Result<CallOk, CallError>,
    ) -> bool {
        let mut kept = json!({"model": model.name, "provider": model.provider.as_str()});
        match outcome {
            Ok(ok) => {
                kept["response"] = ok.raw.clone();
                if let Some(note) = &ok.answer.finish_note {
                    kept["note"] = json!(note);
                }
            }
            Err(e) if e.answered() => {
                kept["status"] = json!(e.status);
                kept["error"] = json!(e.raw);
                if let Some(partial) = &e.response {
                    kept["response"] = partial.raw.clone();
                    kept["failed"] = json!(format!("{}: {}", e.kind.as_str(), e.message));
                }
            }
            Err(_) => return false,
        }
        self.ledger.raw(self.run_dir, task, &kept);
        true
    }
}

/// A stream's events, replaced by its text when that carried a secret.
fn left_out(raw: &mut Value, text: &str, reasoning: &str) {
    if raw.get("stream") == Some(&true.into()) {
        *raw = json!({
            "stream": true,
            "text": text,
            "reasoning": reasoning,
            "events": "left out: the answer carried a secret",
        });
    }
}
