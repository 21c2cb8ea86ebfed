//! Record, replay and the response cache (docs/llm.md#record-replay-and-the-response-cache).
//!
//! An entry answers a prompt task's *initial* request to one model, under
//! the key of that request (`key.rs`: a cache's keys name the server, a
//! recording's do not). Its value is the answer the model gave last, the
//! one that was accepted, as the model wrote it: a replay judges it again
//! (extraction, schema) and makes one call where the recording may have
//! needed re-asks and retries.
//!
//! Entries are pretty JSON files `DIR/<hex>.json`, written atomically and
//! scrubbed of secrets. One that cannot be read, does not parse or names
//! another key is a miss with a warning, never an answer.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

mod key;

pub(super) use key::request_key;
pub use key::{key, replay_holds};

use super::answer;
use super::provider::Message;
use super::{CallProgress, Llm, PromptResult, Stop};
use crate::error::Error;
use crate::model::judge;
use crate::model::models::{ModelConfig, Replay};
use crate::model::prompt::{Format, PromptSpec};
use crate::model::template_files::Files;
use crate::store::ledger::UsageLine;
use crate::store::{files, wrong_kind, AttemptRecord, ErrorKind, Usage};

/// Where a build's answers come from (one mode per build).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Answers {
    /// Every answer from a model.
    #[default]
    Live,
    /// `--record DIR`: ask the models, store every accepted answer.
    Record(PathBuf),
    /// `--replay DIR`: answer only from DIR; never call a server.
    Replay(PathBuf),
    /// `--cache DIR` or `[pipeline] cache`: answer from DIR on a hit, ask
    /// and store on a miss.
    Cache(PathBuf),
}

impl Answers {
    /// Whether a build's `--model` becomes the run's model: not for a
    /// recording or a replay, a session of its own (the answers recorded
    /// are there for the pipeline's replay model, which later builds then
    /// ask, as docs/llm.md says), so that neither turns a replayed run
    /// into one that calls a live model from then on.
    pub fn remembers_model(&self) -> bool {
        matches!(self, Answers::Live | Answers::Cache(_))
    }
}

impl Answers {
    /// Whether no model is ever called.
    pub fn offline(&self) -> bool {
        matches!(self, Answers::Replay(_))
    }

    /// These answers, or with none named on the command line, the
    /// pipeline's response cache (`[pipeline] cache`).
    pub fn or_cache(&self, cache: Option<&PathBuf>) -> Answers {
        match (self, cache) {
            (Answers::Live, Some(cache)) => Answers::Cache(cache.clone()),
            (answers, _) => answers.clone(),
        }
    }
}

/// What one model of a task's chain does with recorded answers.
pub(super) struct Plan<'a> {
    /// Look the request up here first.
    pub lookup: Option<&'a Path>,
    /// Ask the model when the lookup misses.
    pub live: bool,
    /// Store the accepted answer here.
    pub store: Option<&'a Path>,
    /// The server the keys name (`base_url`): the response cache's only.
    pub server: Option<&'a str>,
    /// `lookup` and `store` are the response cache (`--cache`, `[pipeline]
    /// cache`), not a recording: an answer the task's checks refuse is
    /// removed from it ([`super::PromptResult::cached`]).
    pub cache: bool,
}

/// One recorded answer, as stored in `DIR/<key>.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    /// What was asked, for people reading the file; the key decides.
    pub request: Value,
    pub answer: EntryAnswer,
    pub recorded_at: String,
    pub task: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EntryAnswer {
    /// The answer as the model wrote it, before extraction.
    pub text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reasoning: String,
    pub usage: EntryUsage,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct EntryUsage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

/// What a lookup found.
pub enum Lookup {
    Hit(Entry),
    Miss,
    /// A file is there but is no answer: why, for a warning.
    Corrupt(String),
}

/// The file of `key` in `dir`.
pub fn entry_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.json"))
}

/// Looks `key` up in `dir`.
pub fn lookup(dir: &Path, key: &str) -> Lookup {
    let path = entry_path(dir, key);
    let bytes = match files::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Miss,
        Err(e) => {
            return Lookup::Corrupt(format!(
                "cannot read the recorded answer {}: {e}; asked as a miss",
                path.display()
            ))
        }
    };
    match serde_json::from_slice::<Entry>(&bytes) {
        Ok(entry) if entry.key == key => Lookup::Hit(entry),
        Ok(entry) => Lookup::Corrupt(format!(
            "the recorded answer {} holds the key {}, not its name's: ignored (a miss)",
            path.display(),
            entry.key
        )),
        Err(e) => Lookup::Corrupt(format!(
            "the recorded answer {} is damaged ({e}): ignored (a miss)",
            path.display()
        )),
    }
}

/// Writes `entry` as `dir/<key>.json`, creating `dir`.
pub fn store(dir: &Path, entry: &Entry) -> crate::error::Result<()> {
    fs_err::create_dir_all(dir)?;
    let mut text = serde_json::to_string_pretty(entry).unwrap_or_default();
    text.push('\n');
    files::write_atomic(&entry_path(dir, &entry.key), text.as_bytes())
}

/// What a lookup gave a task's model.
pub(super) enum Replayed {
    /// The accepted answer, to write.
    Answer(String),
    /// The recorded answer failed the judging.
    Rejected(Stop),
    Miss,
}

impl Llm<'_> {
    /// Whether the task's prompt would be answered from recorded answers,
    /// with no call to its model's server: by a replay (a hit or a miss),
    /// or by a response-cache entry for its initial request. `inputs`
    /// reads the task's inputs, only when the cache must be looked in. A
    /// task whose judge (its model `judge`) may ask a server counts as
    /// calling one. What the scheduler asks before it holds a ready task
    /// for its model's pool: a task that calls no server takes none of the
    /// model's `max_concurrency`. A guess, not a promise: an entry found
    /// unusable is a miss, and that call waits for the model's limit like
    /// any other.
    pub fn answers_without_a_call(
        &self,
        task: &str,
        spec: &PromptSpec,
        judge: Option<usize>,
        inputs: impl FnOnce() -> Files,
    ) -> bool {
        let Some(model) = self.models.get(spec.model) else {
            return false;
        };
        let replay_only = |m: &ModelConfig| !self.plan(m).live;
        if judge.is_some_and(|j| !self.models.get(j).is_some_and(replay_only)) {
            return false;
        }
        let plan = self.plan(model);
        let Some(dir) = plan.lookup else {
            return false;
        };
        if !plan.live {
            return true;
        }
        let Ok((prompt, system)) = spec.render(&inputs(), task) else {
            return false;
        };
        let system = system.map(|s| self.scrub(&s));
        let messages = [Message {
            role: "user",
            content: self.scrub(&prompt),
        }];
        let key = request_key(model, plan.server, spec, &messages, system.as_deref());
        matches!(lookup(dir, &key), Lookup::Hit(_))
    }

    /// What model `model` does with recorded answers in this build.
    pub(super) fn plan<'s>(&'s self, model: &'s ModelConfig) -> Plan<'s> {
        if let Some(replay) = &model.replay {
            return Plan {
                lookup: Some(&replay.dir),
                live: false,
                store: None,
                server: None,
                cache: false,
            };
        }
        let (lookup, live, store) = match &self.answers {
            Answers::Live => (None, true, None),
            Answers::Record(dir) => (None, true, Some(dir.as_path())),
            Answers::Replay(dir) => (Some(dir.as_path()), false, None),
            Answers::Cache(dir) => (Some(dir.as_path()), true, Some(dir.as_path())),
        };
        let cache = matches!(self.answers, Answers::Cache(_));
        Plan {
            lookup,
            live,
            store,
            server: cache.then_some(model.base_url.as_str()),
            cache,
        }
    }

    /// A warning for the build to print, once.
    fn warn(&self, warning: String) {
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        if warned.insert(warning.clone()) {
            self.warnings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(self.redact(&warning));
        }
    }

    /// The warnings not yet printed.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A ledger line that could not be written, said once a build.
    pub fn take_lost(&self) -> Option<String> {
        self.ledger.take_lost()
    }

    /// Answers `key` from `dir`, as a call: a line in `usage.jsonl`
    /// (`replayed: true`), an attempt, the raw answer, and the judging.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn replay(
        &self,
        task: &str,
        spec: &PromptSpec,
        model: &ModelConfig,
        dir: &Path,
        key: &str,
        attempt_no: &mut u32,
        progress: &CallProgress,
        on_attempt: &mut dyn FnMut(u32, &str),
        result: &mut PromptResult,
    ) -> Replayed {
        let entry = match lookup(dir, key) {
            Lookup::Hit(entry) => entry,
            Lookup::Miss => return Replayed::Miss,
            Lookup::Corrupt(warning) => {
                self.warn(warning);
                return Replayed::Miss;
            }
        };
        let started = Instant::now();
        let started_at = crate::clock::now_rfc3339();
        *attempt_no += 1;
        progress.begin(&model.name, *attempt_no);
        on_attempt(*attempt_no, &model.name);
        let text = self.scrub(&entry.answer.text);
        let judged = answer::judge(&text, &answer::Expect::of(spec)).map(|t| self.scrub(&t));
        let path = entry_path(dir, key);
        self.ledger.raw(
            self.run_dir,
            task,
            &json!({
                "model": model.name,
                "provider": model.provider.as_str(),
                "replayed_from": path.display().to_string(),
                "response": {"text": text, "reasoning": self.scrub(&entry.answer.reasoning)},
            }),
        );
        let (prompt, completion) = (
            entry.answer.usage.prompt_tokens,
            entry.answer.usage.completion_tokens,
        );
        let usage = Usage {
            prompt_tokens: prompt.unwrap_or(0),
            completion_tokens: completion.unwrap_or(0),
            total_tokens: prompt.unwrap_or(0).saturating_add(completion.unwrap_or(0)),
            cost_usd: 0.0,
            tokens_estimated: false,
            unpriced: false,
        };
        result.count(&usage, spec.judge);
        let rejected = judged.as_ref().err();
        let error_id = rejected.map(|_| uuid::Uuid::new_v4().to_string());
        let duration_ms = started.elapsed().as_millis() as u64;
        self.ledger.usage(&UsageLine {
            timestamp_utc: crate::clock::now_rfc3339(),
            task,
            model: &model.name,
            provider: model.provider.as_str(),
            attempt: *attempt_no,
            duration_ms,
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: match (prompt, completion) {
                (None, None) => None,
                (p, c) => Some(p.unwrap_or(0).saturating_add(c.unwrap_or(0))),
            },
            tokens_estimated: false,
            cost_usd: None,
            status: if rejected.is_some() { "error" } else { "ok" },
            error_id: error_id.clone(),
            replayed: true,
            judge: spec.judge,
            score: judged
                .as_ref()
                .ok()
                .filter(|_| spec.judge)
                .map(|text| judge::read_answer(text).0),
        });
        result.attempts.push(AttemptRecord::call(
            &model.name,
            *attempt_no,
            started_at,
            duration_ms,
            rejected.map_or("ok", |r| r.kind.as_str()),
            error_id.clone(),
        ));
        match judged {
            Ok(text) => Replayed::Answer(text),
            Err(rejection) => {
                let error_id = error_id.unwrap_or_default();
                let message = format!(
                    "the recorded answer {} was rejected: {}",
                    path.display(),
                    rejection.message
                );
                self.record_failure(
                    task,
                    model,
                    spec.judge,
                    *attempt_no,
                    rejection.kind,
                    &message,
                    None,
                    rejection.missing_fields,
                    rejection.invalid_fields,
                    super::provider::truncate(&text, 2048).to_string(),
                    &error_id,
                    false,
                );
                Replayed::Rejected(Stop::Failed {
                    kind: rejection.kind,
                    message: format!("{}: {message}", rejection.kind.as_str()),
                    error_id,
                })
            }
        }
    }

    /// The failure of a model with no recorded answer for the request: an
    /// attempt of the task's run as a replayed answer would have been (its
    /// number, the sidecar's call in flight, an entry in `attempts`), that
    /// failed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn replay_miss(
        &self,
        task: &str,
        spec: &PromptSpec,
        model: &ModelConfig,
        dir: &Path,
        key: &str,
        attempt_no: &mut u32,
        progress: &CallProgress,
        on_attempt: &mut dyn FnMut(u32, &str),
        result: &mut PromptResult,
    ) -> Stop {
        let started_at = crate::clock::now_rfc3339();
        *attempt_no += 1;
        progress.begin(&model.name, *attempt_no);
        on_attempt(*attempt_no, &model.name);
        // What and where only: what to do is the door's (the remedy of
        // `replay_miss`), since the MCP server's clients read this too.
        let message = format!(
            "no recorded answer for task `{task}` (request {key}) in {}",
            dir.display()
        );
        let error_id = uuid::Uuid::new_v4().to_string();
        result.attempts.push(AttemptRecord::call(
            &model.name,
            *attempt_no,
            started_at,
            0,
            ErrorKind::ReplayMiss.as_str(),
            Some(error_id.clone()),
        ));
        self.record_failure(
            task,
            model,
            spec.judge,
            *attempt_no,
            ErrorKind::ReplayMiss,
            &message,
            None,
            Vec::new(),
            Vec::new(),
            String::new(),
            &error_id,
            false,
        );
        Stop::Failed {
            kind: ErrorKind::ReplayMiss,
            message: format!("replay_miss: {message}"),
            error_id,
        }
    }

    /// Stores the accepted answer to the request `key` in `dir`. A write
    /// that fails is a warning: the answer itself is good.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record(
        &self,
        dir: &Path,
        key: &str,
        task: &str,
        spec: &PromptSpec,
        model: &ModelConfig,
        initial: &[Message],
        system: Option<&str>,
        answer: &super::provider::Answer,
        tokens: (u64, u64),
    ) {
        let messages: Vec<Value> = initial
            .iter()
            .map(|m| json!({"role": m.role, "content": self.scrub(&m.content)}))
            .collect();
        let mut request = json!({
            "provider": model.provider.as_str(),
            "model": model.model,
            "messages": messages,
            "system": system.map(|s| self.scrub(s)),
            "temperature": model.temperature,
            "max_tokens": spec.max_tokens.or(model.max_tokens),
            "seed": model.seed,
            "format": if spec.format == Format::Json { "json" } else { "text" },
        });
        if let Some(schema) = &spec.schema {
            request["schema"] = schema.value.clone();
        }
        if let Some(server) = self.plan(model).server {
            request["base_url"] = self.scrub(server).into();
        }
        let entry = Entry {
            key: key.to_string(),
            request,
            answer: EntryAnswer {
                text: self.scrub(&answer.text),
                reasoning: self.scrub(&answer.reasoning),
                usage: EntryUsage {
                    prompt_tokens: Some(tokens.0),
                    completion_tokens: Some(tokens.1),
                },
            },
            recorded_at: crate::clock::now_rfc3339(),
            task: task.to_string(),
        };
        if let Err(e) = store(dir, &entry) {
            self.warn(format!("cannot record the answer of task {task}: {e}"));
        }
    }
}

/// Which recorded entries a build may need, by folder: those that must
/// exist before it starts.
pub(super) fn required_dirs<'a>(
    answers: &'a Answers,
    models: &'a [ModelConfig],
    reachable: &[bool],
) -> HashSet<&'a Path> {
    let mut dirs = HashSet::new();
    if let Answers::Replay(dir) = answers {
        dirs.insert(dir.as_path());
    }
    for (m, model) in models.iter().enumerate() {
        if let (true, Some(r)) = (reachable[m], &model.replay) {
            dirs.insert(r.dir.as_path());
        }
    }
    dirs
}

/// The error of a folder of recorded answers (`--replay DIR`, `shown`, or
/// a replay model's `dir`, with its `file:line:col` message) that is not
/// a folder: there is nothing there (`record`: the hint to record answers
/// there), or something that is not a folder (a file, or a file where a
/// folder on its way should be), which recording cannot fix.
pub(super) fn absent(dir: &Path, replay: Option<&Replay>, shown: &str, record: String) -> Error {
    let blocked = wrong_kind::blocked(dir, Path::new(shown));
    let hint = match blocked {
        Some(_) => wrong_kind::hint(shown),
        None => record,
    };
    if let Some(replay) = replay {
        Error::pipeline(replay.missing.clone()).hint(hint)
    } else if let Some(blocked) = blocked {
        Error::usage(format!(
            "--replay {shown}: {blocked}; --replay takes the folder of recorded answers"
        ))
        .hint(hint)
    } else if dir.exists() {
        Error::usage(format!(
            "--replay {shown}: not a folder; --replay takes the folder of recorded answers"
        ))
        .hint("pass the folder that planexe build --record DIR filled, not a file")
    } else {
        Error::usage(format!(
            "--replay {shown}: no such folder of recorded answers"
        ))
        .hint(hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_entries_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let k = "ab".repeat(32);
        assert!(matches!(lookup(dir.path(), &k), Lookup::Miss));
        std::fs::write(entry_path(dir.path(), &k), "{\"key\": \"ab").unwrap();
        assert!(matches!(lookup(dir.path(), &k), Lookup::Corrupt(_)));
        let other = json!({"key": "cd", "request": {}, "answer": {"text": "x", "usage": {}}, "recorded_at": "", "task": "t"});
        std::fs::write(entry_path(dir.path(), &k), other.to_string()).unwrap();
        assert!(matches!(lookup(dir.path(), &k), Lookup::Corrupt(_)));
    }
}
