//! The tools the server offers, as `tools/list` declares them: name,
//! description, the JSON Schema of the arguments (`inputSchema`, checked on
//! every call) and of the structured result (`outputSchema`, which every
//! successful result matches). The numbers an agent needs to know (the
//! longest wait, the read cap, the idempotency window) are stated in the
//! descriptions from the same constants the handlers use.

use serde_json::{json, Value};

use super::answers::STATUS_TASKS_MAX;
use super::builds::{START_WAIT, STOP_WAIT, WAIT_MAX_S};
use super::limits::{PATH_MAX_BYTES, RUN_NAME_MAX_BYTES, TARGETS_MAX, TEXT_MAX_CHARS};
use super::outputs::{DEFAULT_BYTES, MAX_BYTES, OFFSET_MAX};
use super::runs::{IDEMPOTENT_FOR, MAX_PLAN_BYTES};
use super::seeds::{FILES_MAX, FILES_MAX_TOTAL_BYTES, FILE_MAX_BYTES};

/// One tool.
pub struct Tool {
    pub name: &'static str,
    pub title: &'static str,
    pub description: String,
    pub input: Value,
    pub output: Value,
}

impl Tool {
    /// The tool as `tools/list` shows it.
    pub fn listing(&self) -> Value {
        json!({
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": self.input,
            "outputSchema": self.output,
        })
    }
}

/// The schema of arguments: an object of these properties, `required`
/// among them, nothing else.
fn input(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn run_arg() -> Value {
    json!({
        "type": "string",
        "maxLength": RUN_NAME_MAX_BYTES,
        "description": "The run: its folder's name under the server's root, as run_create and runs return it \
                        (letters, digits, '.', '_' and '-'; not starting with '.' or '-')."
    })
}

fn nullable(kind: &str) -> Value {
    json!({"type": [kind, "null"]})
}

/// Why a run's pipeline file cannot be used, and where
/// (`answers::pipeline_error`), `described` as the answer it is in.
fn pipeline_error(described: &str) -> Value {
    json!({
        "type": "object",
        "description": described,
        "properties": {
            "message": {"type": "string"},
            "where": {
                "type": ["object", "null"],
                "description": "Where in the file the error points, null when it does not: \
                                the start (line, col) and, when known, the last character \
                                of the span (end_line, end_col, inclusive). Lines and columns \
                                count from 1, columns in characters.",
                "properties": {
                    "file": {"type": "string"},
                    "line": {"type": "integer"},
                    "col": {"type": "integer"},
                    "end_line": {"type": "integer"},
                    "end_col": {"type": "integer"},
                },
                "required": ["file", "line", "col"],
            },
            "detail": nullable("string"),
            "hints": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["message", "where", "hints"],
    })
}

/// The output schema of a tool that needs the run's pipeline file
/// (`explain`, `clean`): its answer, an object of `properties` with
/// `required`; or, as the `structuredContent` of its refusal (`isError`)
/// when the file cannot be used, `pipeline_error` alone. A client may check
/// an error's content against the schema too.
fn needing_pipeline(properties: Value, required: &[&str]) -> Value {
    refused_for_pipeline(
        properties,
        required,
        "Only in the refusal (isError: true) when the run's pipeline file cannot be used (a TOML \
         syntax error, an unknown key, an input gone): why, and where, as status gives it; the \
         result holds nothing else. status answers meanwhile from the run's records.",
    )
}

/// An answer of `properties` with `required`, or `pipeline_error` alone,
/// `described` (see [`needing_pipeline`]).
fn refused_for_pipeline(properties: Value, required: &[&str], described: &str) -> Value {
    let mut properties = properties;
    properties["pipeline_error"] = pipeline_error(described);
    json!({
        "type": "object",
        "properties": properties,
        "anyOf": [{"required": required}, {"required": ["pipeline_error"]}],
    })
}

/// The status object (as `planexe status --json`, with `run` and, when a
/// task failed, `error`), with `extra` properties.
fn status_output(extra: Value) -> Value {
    let mut properties = json!({
        "run": {"type": "string"},
        "run_dir": {"type": "string"},
        "pipeline": {"type": "string"},
        "pipeline_file": {"type": "string"},
        "run_id": nullable("string"),
        "model": nullable("string"),
        "created_at": nullable("string"),
        "last_build_started_at": nullable("string"),
        "last_build_finished_at": nullable("string"),
        "state": {"enum": ["running", "completed", "failed", "stopped", "never-built"]},
        "build_pid": nullable("integer"),
        "last_progress_at": nullable("string"),
        "stalled": {"type": "boolean"},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "totals": {"type": "object"},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "tasks_omitted": {
            "type": "integer",
            "description": "Task lines left out: a status lists at most status_tasks_max (server_info), those \
                            that need attention first (failed, running, stopped, waiting, to build, done). counts \
                            has every task; explain says one's state.",
        },
        "tasks": {
            "type": "array",
            "description": "The tasks in the pipeline's order, each without its null fields.",
            "items": {
                "type": "object",
                "properties": {
                    "task": {"type": "string"},
                    "state": {"type": "string"},
                    "reason": nullable("string"),
                    "error": nullable("string"),
                    "error_kind": nullable("string"),
                    "error_id": nullable("string"),
                    "error_judge": nullable("boolean"),
                    "recoverable": nullable("boolean"),
                    "hint": nullable("string"),
                    "log_tail": nullable("string"),
                    "edited": {"type": ["array", "null"], "items": {"type": "string"}},
                },
                "required": ["task", "state"],
            },
        },
        "pipeline_error": pipeline_error(
            "Present only when the run's pipeline file cannot be used (a TOML syntax error, \
             an unknown key, an input gone): why, and where. The rest of the status is then \
             what the run's records say, no task checked: the tasks they name, in name order, \
             each as its last run left it. build, explain and clean refuse until it is fixed.",
        ),
        "error": {
            "type": "object",
            "description": "Present only when a task failed: the first failed task's error.",
            "properties": {
                "kind": {"type": "string"},
                "failed_task": {"type": "string"},
                "message": {"type": "string"},
                "error_id": nullable("string"),
                "recoverable": {"type": "boolean"},
                "hint": nullable("string"),
                "log_tail": {
                    "type": ["string", "null"],
                    "description": "A failed command: the end of what it printed (its log's last 2 KB, scrubbed of secrets).",
                },
                "failed_tasks": {"type": "integer"},
            },
            "required": ["kind", "failed_task", "message", "error_id", "recoverable"],
        },
    });
    if let (Some(all), Value::Object(more)) = (properties.as_object_mut(), extra) {
        all.extend(more);
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": ["run", "run_dir", "state", "counts", "warnings", "tasks", "tasks_omitted"],
    })
}

/// Every tool, in the order `tools/list` gives them.
pub fn tools() -> Vec<Tool> {
    let idempotent_min = IDEMPOTENT_FOR.as_secs() / 60;
    vec![
        Tool {
            name: "run_create",
            title: "Create a run",
            description: format!(
                "Create a run: a new folder under the server's root seeded with plan.txt (as `planexe new`), \
                 for the pipeline file `pipeline` (relative to the root; default: the server's pipeline). \
                 A pipeline that reads source files besides plan.txt (inputs no task writes, such as notes.md) \
                 gets them from `files`, written into the run before its inputs are checked. A pipeline \
                 file that cannot be used is refused with pipeline_error (why and where) as the error's \
                 structured content. Idempotent: the same plan, files and pipeline within {idempotent_min} minutes of an earlier \
                 run_create return that run (created: false) instead of making another. Then call build."
            ),
            input: input(
                json!({
                    "plan": {"type": "string", "minLength": 1, "maxLength": MAX_PLAN_BYTES,
                             "description": "The plan, as text: written to plan.txt with a trailing newline."},
                    "pipeline": {"type": "string", "maxLength": PATH_MAX_BYTES,
                                 "description": "The pipeline file, relative to the server's root and not inside a run (default: the server's)."},
                    "name": {"type": "string", "maxLength": RUN_NAME_MAX_BYTES,
                             "description": "The run's folder name (default: made from the time and the plan's first words)."},
                    "files": {"type": "object", "maxProperties": FILES_MAX,
                              "propertyNames": {"minLength": 1, "maxLength": PATH_MAX_BYTES},
                              "additionalProperties": {"type": "string", "maxLength": FILE_MAX_BYTES},
                              "description": format!("Source files to write into the run besides plan.txt: each key a path \
                                              relative to the run's folder (`notes.md`, `data/items.json`; folders are made; \
                                              no `..`, no absolute path, nothing in .planexe/, not plan.txt, not a task's \
                                              output), each value its UTF-8 text, written as given. At most {FILES_MAX} files, \
                                              {FILE_MAX_BYTES} bytes each, {FILES_MAX_TOTAL_BYTES} bytes in all.")},
                }),
                &["plan"],
            ),
            output: refused_for_pipeline(
                json!({
                    "run": {"type": "string"},
                    "created": {"type": "boolean", "description": "false: an earlier run_create made this run"},
                    "run_dir": {"type": "string"},
                    "pipeline": {"type": "string"},
                    "created_at": {"type": "string"},
                    "results": {"type": "array", "items": {"type": "string"}},
                    "warnings": {"type": "array", "items": {"type": "string"}},
                }),
                &["run", "created", "run_dir", "pipeline", "created_at", "results", "warnings"],
                "Only in the refusal (isError: true) when the pipeline file cannot be used (a TOML \
                 syntax error, an unknown key, a task that names no task): why, and where; no run \
                 was made, and the result holds nothing else. Not for a source file missing or a \
                 file of `files` refused: their refusal has no data.",
            ),
        },
        Tool {
            name: "build",
            title: "Start a build",
            description: format!(
                "Start `planexe build` in a run, in the background, and return at once (after at most {} s) \
                 with its pid: only stale tasks run; a failed or stopped run resumes where it ended. \
                 Refuses while a build runs there, and while the run's pipeline file cannot be used, with \
                 pipeline_error (as status gives it) as the error's structured content. The build goes on \
                 if the server exits. Follow it with wait (blocking) or status; its output is in \
                 .planexe/build.log (read_output).",
                START_WAIT.as_secs()
            ),
            input: input(
                json!({
                    "run": run_arg(),
                    "targets": {"type": "array", "maxItems": TARGETS_MAX,
                                "items": {"type": "string", "maxLength": TEXT_MAX_CHARS},
                                "description": "Task names or output paths to build, with what they need (default: all)."},
                    "model": {"type": "string", "maxLength": TEXT_MAX_CHARS, "description": "A [models.NAME] of the pipeline to ask for every prompt task; remembered by the run."},
                    "force": {"type": "boolean", "description": "Rebuild the targets even if up to date (-B)."},
                }),
                &["run"],
            ),
            output: needing_pipeline(
                json!({
                    "run": {"type": "string"},
                    "pid": {"type": "integer"},
                    "state": {"enum": ["starting", "running", "completed", "failed", "stopped"]},
                    "exit_code": nullable("integer"),
                    "log": {"type": "string"},
                }),
                &["run", "pid", "state", "exit_code", "log"],
            ),
        },
        Tool {
            name: "status",
            title: "Status of a run",
            description: format!(
                "The run at a glance: the object `planexe status --json` prints (state: running, \
                 completed, failed, stopped or never-built; each task's state; totals; quality \
                 warnings), plus `error` when a task failed: kind, failed_task, message, error_id, \
                 and recoverable (true: building again may fix it by itself; false: change an \
                 input, the prompt or the pipeline first). Lists at most {STATUS_TASKS_MAX} tasks, those \
                 that need attention first, without their null fields; tasks_omitted counts the others. \
                 When the run's pipeline file cannot be used, pipeline_error says why and where (file, \
                 line, col, and end_line, end_col where the bad value ends), and the rest is what \
                 the run's records say, no task checked."
            ),
            input: input(json!({"run": run_arg()}), &["run"]),
            output: status_output(json!({})),
        },
        Tool {
            name: "wait",
            title: "Wait for a build",
            description: format!(
                "Block until the build running in the run ends, or `timeout_s` passes (at most {WAIT_MAX_S} s, \
                 below the usual 60 s client request timeout; default {WAIT_MAX_S}), then return the status \
                 (as the status tool) with timed_out. Call it again while timed_out is true. Returns at \
                 once when no build runs."
            ),
            input: input(
                json!({
                    "run": run_arg(),
                    "timeout_s": {"type": "number", "minimum": 0, "maximum": WAIT_MAX_S,
                                  "description": format!("How long to wait, in seconds (0 to {WAIT_MAX_S}).")},
                }),
                &["run"],
            ),
            output: status_output(json!({"timed_out": {"type": "boolean"}})),
        },
        Tool {
            name: "stop",
            title: "Stop a build",
            description: format!(
                "Stop the build running in the run as Ctrl-C would (with SIGTERM): it stops its running tasks, \
                 keeps what finished, and the run is `stopped`, not `failed`; build resumes it. Waits up to \
                 {} s for it to end and returns the status with the pid it signalled (null: no build was \
                 running).",
                STOP_WAIT.as_secs()
            ),
            input: input(json!({"run": run_arg()}), &["run"]),
            output: status_output(json!({
                "stopped_pid": nullable("integer"),
                "still_stopping": {"type": "boolean"},
            })),
        },
        Tool {
            name: "clean",
            title: "Clean tasks",
            description: format!(
                "Delete what tasks produced (their outputs, records and logs), optionally with every \
                          task downstream, so the next build runs them again. Never deletes a source file \
                          nor a file the run was given (run_create's files): kept lists those it left on disk \
                          that a task names, and why. Refuses while a build runs. Lists at most \
                          {STATUS_TASKS_MAX} tasks, {STATUS_TASKS_MAX} paths deleted and {STATUS_TASKS_MAX} kept; \
                          tasks_omitted, deleted_omitted and kept_omitted count the others. Refused while the \
                          run's pipeline file cannot be used, with pipeline_error (as status gives it) as the \
                          error's structured content."
            ),
            input: input(
                json!({
                    "run": run_arg(),
                    "tasks": {"type": "array", "items": {"type": "string", "maxLength": TEXT_MAX_CHARS},
                              "minItems": 1, "maxItems": TARGETS_MAX,
                              "description": "Tasks (or fan-out instances, or output paths: the task that writes each) to clean."},
                    "downstream": {"type": "boolean", "description": "Also clean every task that depends on them."},
                }),
                &["run", "tasks"],
            ),
            output: needing_pipeline(
                json!({
                    "run": {"type": "string"},
                    "tasks": {"type": "array", "items": {"type": "string"}},
                    "tasks_omitted": {"type": "integer"},
                    "deleted": {"type": "array", "items": {"type": "string"}},
                    "deleted_omitted": {"type": "integer"},
                    "kept": {
                        "type": "array",
                        "description": "Files a cleaned task names that were left on disk: `given`, the run was \
                                        given it (run_create's files) and the task never wrote it; `source`, a \
                                        task the pipeline no longer has wrote it, and the pipeline now reads it.",
                        "items": {
                            "type": "object",
                            "properties": {
                                "path": {"type": "string"},
                                "task": {"type": "string"},
                                "why": {"enum": ["given", "source"]},
                            },
                            "required": ["path", "task", "why"],
                        },
                    },
                    "kept_omitted": {"type": "integer"},
                }),
                &["run", "tasks", "tasks_omitted", "deleted", "deleted_omitted", "kept", "kept_omitted"],
            ),
        },
        Tool {
            name: "explain",
            title: "Explain a task",
            description: format!(
                "Why a task is or is not stale: its verdict, its last successful run and \
                          fingerprint (with a diff of its definition when that changed), its last error, \
                          each input and output against its recorded stamp, and the upstream tasks that will \
                          run first. Lists at most {STATUS_TASKS_MAX} inputs, outputs and upstream tasks, those that \
                          make it stale first; inputs_omitted, outputs_omitted and upstream_omitted count the others. \
                          Refused while the run's pipeline file cannot be used, with pipeline_error (as status \
                          gives it) as the error's structured content."
            ),
            input: input(
                json!({"run": run_arg(), "task": {"type": "string", "maxLength": TEXT_MAX_CHARS, "description": "The task (or fan-out instance, or an output path: the task that writes it)."}}),
                &["run", "task"],
            ),
            output: needing_pipeline(
                json!({
                    "run": {"type": "string"},
                    "task": {"type": "string"},
                    "stale": {"type": "boolean"},
                    "reason": nullable("string"),
                    "last_success": {"type": ["object", "null"]},
                    "last_error": {"type": ["object", "null"]},
                    "inputs": {"type": "array", "items": {"type": "object"}},
                    "outputs": {"type": "array", "items": {"type": "object"}},
                    "upstream": {"type": "array", "items": {"type": "string"}},
                    "inputs_omitted": {"type": "integer"},
                    "outputs_omitted": {"type": "integer"},
                    "upstream_omitted": {"type": "integer"},
                    "done_marker": {"type": "boolean"},
                }),
                &["run", "task", "stale", "reason", "inputs", "outputs", "upstream", "inputs_omitted",
                  "outputs_omitted", "upstream_omitted"],
            ),
        },
        Tool {
            name: "summary",
            title: "Summary of a run",
            description: "The run after its last build, in one object (.planexe/summary.json): counts, each \
                          task's state, outputs, duration, tokens and cost, quality warnings. Written by \
                          every build that ran something. Its tasks are bounded as the status tool's are \
                          (tasks_omitted)."
                .into(),
            input: input(json!({"run": run_arg()}), &["run"]),
            output: json!({"type": "object"}),
        },
        Tool {
            name: "runs",
            title: "List runs",
            description: format!(
                "The runs under the server's root with their state, newest first, at most {STATUS_TASKS_MAX} \
                 (runs_omitted counts the older ones). Archived runs are left out unless `archived` is true."
            ),
            input: input(
                json!({"archived": {"type": "boolean", "description": "Also list archived runs."}}),
                &[],
            ),
            output: json!({
                "type": "object",
                "properties": {
                    "root": {"type": "string"},
                    "runs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "run": {"type": "string"},
                                "state": {"type": "string"},
                                "created_at": nullable("string"),
                                "archived": {"type": "boolean"},
                            },
                            "required": ["run", "state", "created_at", "archived"],
                        },
                    },
                    "archived_hidden": {"type": "integer"},
                    "runs_omitted": {"type": "integer", "description": "Older runs past the newest status_tasks_max, left out."},
                },
                "required": ["root", "runs", "archived_hidden", "runs_omitted"],
            }),
        },
        Tool {
            name: "archive",
            title: "Archive a run",
            description: "Archive a run: it is kept whole and stays readable, but runs leaves it out and build \
                          and clean refuse it. `restore: true` undoes it. Refuses while a build runs."
                .into(),
            input: input(
                json!({"run": run_arg(), "restore": {"type": "boolean", "description": "Restore an archived run instead."}}),
                &["run"],
            ),
            output: json!({
                "type": "object",
                "properties": {
                    "run": {"type": "string"},
                    "archived": {"type": "boolean"},
                    "archived_at": nullable("string"),
                },
                "required": ["run", "archived", "archived_at"],
            }),
        },
        Tool {
            name: "read_output",
            title: "Read a file of a run",
            description: format!(
                "The text of one file of a run: an output, plan.txt, a task's log (.planexe/logs/NAME.log), \
                 the server's build log (.planexe/build.log), every failed call (.planexe/failures.jsonl) or a \
                 prompt task's last response (.planexe/raw/NAME.json). `path` is relative to the run; paths that \
                 leave it are refused. At most `max_bytes` (default {DEFAULT_BYTES}, at most {MAX_BYTES}) \
                 bytes are returned from `offset` (default 0); truncated says whether there is more after \
                 them, and next_offset where to go on. To read the end of a long log, pass offset = size - \
                 max_bytes (size is the file's, in every answer)."
            ),
            input: input(
                json!({
                    "run": run_arg(),
                    "path": {"type": "string", "maxLength": PATH_MAX_BYTES, "description": "The file, relative to the run's folder."},
                    "max_bytes": {"type": "integer", "minimum": 1, "maximum": MAX_BYTES},
                    "offset": {"type": "integer", "minimum": 0, "maximum": OFFSET_MAX,
                               "description": "Where to start, in bytes from the file's start (next_offset of an earlier read)."},
                }),
                &["run", "path"],
            ),
            output: json!({
                "type": "object",
                "properties": {
                    "run": {"type": "string"},
                    "path": {"type": "string"},
                    "size": {"type": "integer"},
                    "offset": {"type": "integer"},
                    "truncated": {"type": "boolean"},
                    "next_offset": nullable("integer"),
                    "text": {"type": "string"},
                },
                "required": ["run", "path", "size", "offset", "truncated", "next_offset", "text"],
            }),
        },
        Tool {
            name: "server_info",
            title: "About this server",
            description: "The server's name and version, its root, the protocol version in use, its \
                          capabilities, tools and limits."
                .into(),
            input: input(json!({}), &[]),
            output: json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "version": {"type": "string"},
                    "root": {"type": "string"},
                    "protocol_version": nullable("string"),
                    "supported_protocol_versions": {"type": "array", "items": {"type": "string"}},
                    "capabilities": {"type": "object"},
                    "tools": {"type": "array", "items": {"type": "string"}},
                    "limits": {
                        "type": "object",
                        "description": "The bounds the server keeps: on waits, reads and plans, and on what a client \
                                        sends (the input schemas say the same).",
                        "properties": {
                            "wait_max_s": {"type": "integer"},
                            "build_start_wait_s": {"type": "integer"},
                            "stop_wait_s": {"type": "integer"},
                            "read_output_default_bytes": {"type": "integer"},
                            "read_output_max_bytes": {"type": "integer"},
                            "plan_max_bytes": {"type": "integer"},
                            "run_create_idempotent_s": {"type": "integer"},
                            "run_name_max_bytes": {"type": "integer"},
                            "path_max_bytes": {"type": "integer"},
                            "text_max_chars": {"type": "integer", "description": "A task, target or model name."},
                            "targets_max": {"type": "integer", "description": "Targets of a build, tasks of a clean."},
                            "status_tasks_max": {"type": "integer", "description": "Task lines a status lists."},
                            "files_max": {"type": "integer", "description": "Files of a run_create."},
                            "file_max_bytes": {"type": "integer", "description": "One file of a run_create."},
                            "files_max_total_bytes": {"type": "integer", "description": "All files of a run_create together."},
                        },
                        "required": ["wait_max_s", "build_start_wait_s", "stop_wait_s", "read_output_default_bytes",
                                     "read_output_max_bytes", "plan_max_bytes", "run_create_idempotent_s",
                                     "run_name_max_bytes", "path_max_bytes", "text_max_chars", "targets_max",
                                     "status_tasks_max", "files_max", "file_max_bytes", "files_max_total_bytes"],
                    },
                },
                "required": ["name", "version", "root", "protocol_version", "capabilities", "tools", "limits"],
            }),
        },
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_schema_compiles_and_names_are_unique() {
        let tools = super::tools();
        let mut names: Vec<&str> = tools.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), tools.len());
        for tool in &tools {
            for schema in [&tool.input, &tool.output] {
                assert!(jsonschema::validator_for(schema).is_ok(), "{}", tool.name);
                assert_eq!(schema["type"], "object", "{}", tool.name);
            }
        }
    }
}
