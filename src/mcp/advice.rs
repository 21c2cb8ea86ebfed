//! What the server tells a client, in the terms of its tools rather than
//! the command line's (`-f FILE`, `--model`, `planexe status`, `planexe
//! build`): [`ADVICE`], the [`Advice`] the server's sessions are opened
//! with, and the one the builds it starts speak with (`planexe build
//! --advice mcp`, a flag the server alone passes), so what a build says in
//! `.planexe/build.log` (its notices, the hints of its errors), which
//! clients read, names the tools too.

use crate::model::advice::{remedy_first, remedy_words};
use crate::model::{Advice, ModelSourceKind, Trouble};
use crate::store::remedy::{Remedy, Then};

/// What the server tells a client whose run's pipeline file cannot be
/// used, who named a task or model the pipeline does not have, whose task
/// failed, or who reads what a build it started said: what the tools
/// offer, not the command line's `-f FILE`, `--model`, `planexe status` or
/// `planexe build`.
pub const ADVICE: Advice = Advice::new(advise);

fn advise(trouble: &Trouble<'_>) -> String {
    const NEW_RUN: &str = "make a new run with run_create, its `pipeline` argument naming \
                           a pipeline file (TOML text) by its path relative to the server's root";
    match trouble {
        Trouble::Missing | Trouble::Unreadable | Trouble::RunAbove { .. } => format!(
            "{NEW_RUN} (left out, the server's default: server_info's default_pipeline); a run \
             keeps the pipeline it was made with"
        ),
        Trouble::Binary => {
            format!("this looks like a binary file, not a pipeline: {NEW_RUN}")
        }
        Trouble::RecordedGone => {
            format!("put the pipeline file back at that path, or {NEW_RUN}")
        }
        Trouble::RecordedElsewhere { .. } => format!(
            "write the path of the run's own pipeline file in its .planexe/pipeline; or {NEW_RUN}"
        ),
        Trouble::RecordBroken { record } => format!(
            "write the absolute path of the run's pipeline file in {record} (in the run's folder), \
             or {NEW_RUN}"
        ),
        Trouble::EnvGone => format!(
            "the run records no pipeline, so it takes the server's $PLANEXE_PIPELINE, which its \
             operator must fix; or {NEW_RUN}"
        ),
        Trouble::Moved { recorded, .. } => {
            format!("build again: the run now builds with {recorded}")
        }
        Trouble::UnknownTask | Trouble::UnknownTarget => {
            "call the status tool to list the run's tasks".into()
        }
        Trouble::ModelOverride { from } => match from {
            ModelSourceKind::Flag => "from the build tool's `model` argument".into(),
            ModelSourceKind::Env => "from the server's $PLANEXE_MODEL, which its operator sets; \
                                     the build tool's `model` argument chooses another"
                .into(),
            ModelSourceKind::Run => "chosen for this run by an earlier build's `model`, which \
                                     the run remembers; the build tool's `model` argument \
                                     chooses another"
                .into(),
        },
        Trouble::DamagedSidecar => {
            "the next build (the build tool) rewrites it from the state log".into()
        }
        Trouble::DamagedLog => "the next build (the build tool)".into(),
        Trouble::Failed(Remedy {
            change,
            then: Then::BuildAgainFirst(why),
        }) => remedy_first(format!("call the build tool again; {why}"), *change),
        Trouble::Failed(remedy) => {
            let then = match remedy.then {
                Then::Nothing | Then::BuildAgainFirst(_) => None,
                Then::Build => Some("then call the build tool".to_string()),
                Then::BuildAgain(why) => Some(format!("call the build tool again; {why}")),
                Then::Resume => Some("call the build tool to resume".into()),
                // No tool records answers: a client can ask a live model
                // instead, and recording is the operator's.
                Then::Record => Some(
                    "no answer to this request is recorded: call the build tool with `model` \
                     naming a live model of the pipeline (the replay model's `replays`) to ask \
                     it instead, or have the server's operator record answers with a live model \
                     (`planexe build --record DIR` on the command line)"
                        .into(),
                ),
            };
            remedy_words(remedy.change, then)
        }
        Trouble::TasksFailed => {
            "finished tasks are kept, so fix the cause and call the build tool again".into()
        }
        Trouble::OthersFailed { count } => {
            format!("the status tool says why the other {count} failed")
        }
        Trouble::MissingKey { var } => format!(
            "builds read ${var} from the server's environment, which its operator sets (the \
             `env` of the server's entry in the MCP client's configuration); or call the build \
             tool with `model` naming another of the pipeline's models"
        ),
        Trouble::NoRecordings {
            dir,
            live: Some(live),
        } => format!(
            "have the server's operator record answers there with a live model (`planexe build \
             --record {dir} --model {live}` on the command line), or fix the model's `dir`; the \
             build tool's `model` argument naming `{live}` asks it live instead"
        ),
        Trouble::NoRecordings { dir, live: None } => format!(
            "have the server's operator record answers there with a live model (`planexe build \
             --record {dir}` on the command line)"
        ),
        Trouble::Busy => "wait for it to end (the wait tool; status works meanwhile), or stop \
                          a build with the stop tool, then call the build tool again"
            .into(),
        Trouble::NoSpace { dir } => format!(
            "free space on the disk that holds {dir} (what failed tasks wrote is kept in .planexe/failed/), then call the build tool again: tasks already done are kept and do not run again"
        ),
        Trouble::ModelFromRun => "chosen for this run by an earlier build's `model` (the build \
                                  tool's `model` argument changes it)"
            .into(),
        Trouble::TaskLeft { task } => {
            format!("the clean tool with `tasks: [\"{task}\"]` deletes them and forgets it")
        }
        Trouble::ReplayForNewRun { live, .. } => format!(
            "to ask the live model it replays, call the build tool with `model` naming `{live}` \
             (the run remembers it for later builds)"
        ),
        Trouble::RunExists { run } => format!(
            "choose another name, or leave `name` out for a fresh one; the build tool with `run` \
             naming `{run}` resumes it"
        ),
        Trouble::FolderTaken { run } => format!(
            "a run is made only where no folder is, or an empty one: choose another name, or \
             leave `name` out for a fresh one (what `{run}` holds is the operator's to move away)"
        ),
        Trouble::SourceMissing {
            path,
            new_run: true,
            ..
        } => format!(
            "no task of this pipeline produces {path}, so the run's maker gives it: call \
             run_create again with its text in `files` (`\"files\": {{\"{path}\": \"...\"}}`, \
             a path relative to the run's folder); or have the server's operator add a task \
             with `outputs = [\"{path}\"]` to this pipeline"
        ),
        Trouble::SourceMissing { path, dir, .. } => format!(
            "create {path} in the run's folder ({dir}) with your own file access, then call the \
             tool again; or have the server's operator add a task with `outputs = [\"{path}\"]` \
             to the pipeline"
        ),
        Trouble::Forced => "the build tool's `force`".into(),
        Trouble::ReplayMissed { dir, live } => format!(
            "call the build tool with `model` naming `{live}`, the live model it replays, to ask \
             it (the run remembers it for later builds); recording its answers into {dir} is for \
             the server's operator (`planexe build --record {dir} --model {live}` on the command \
             line)"
        ),
    }
}
