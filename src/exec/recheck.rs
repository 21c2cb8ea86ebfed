//! `planexe check`: the output checks of finished tasks run again on their
//! current outputs (`min_bytes`, a prompt task's answer format and schema,
//! `check`, the judge), changing no output and no record. Only the checks'
//! logs are written, and the judges' calls are model calls like any other
//! (`usage.jsonl`, `failures.jsonl`, record, replay and the cache).

use super::actions::Actions;
use super::attempt::{Executor, Turn};
use super::checks::{self, Inspectors, Judgement};
use super::command::Watchdog;
use super::env::{self, Env};
use super::interrupt::Interrupt;
use super::llm::{recording::Answers, Llm};
use crate::error;
use crate::model::judge::Judge;
use crate::model::prompt::Format;
use crate::model::{Action, Task, TaskId};
use crate::plan::Session;
use crate::store::{ErrorKind, TaskError};

/// One task's checks, examined again by [`recheck`].
pub struct Rechecked {
    pub task: String,
    pub judgement: Judgement,
}

/// Runs the checks of the tasks `names` (none: every done task with a
/// check, a judge, a `min_bytes` or a JSON answer) on their current
/// outputs, a prompt task's answer format and schema among them. `answers`
/// says where judges' answers come from. A task with no successful run, or
/// whose output is missing, fails.
pub fn recheck(
    session: &Session,
    env: &Env,
    names: &[String],
    answers: Answers,
    interrupt: Interrupt,
) -> error::Result<Vec<Rechecked>> {
    let graph = &session.graph;
    let done = |name: &str| {
        session
            .store
            .done_record(&session.run_dir, name)
            .map(std::borrow::Cow::into_owned)
    };
    let ids: Vec<TaskId> = if names.is_empty() {
        graph
            .tasks()
            .filter(|t| (t.checks.any() || answers_json(t)) && done(&t.name).is_some())
            .map(|t| t.id)
            .collect()
    } else {
        session.tasks_named(names)?
    };
    let mut judged = vec![false; graph.id_bound()];
    for &t in &ids {
        judged[t] = graph[t].checks.judge.is_some();
    }
    let llm = if judged.iter().any(|&j| j) {
        let answers = answers.or_cache(graph.cache.as_ref());
        Some(Llm::new(
            graph,
            &judged,
            &session.run_dir,
            env,
            interrupt.clone(),
            answers,
        )?)
    } else {
        None
    };
    let watchdog = Watchdog::start(interrupt);
    // What the checks say is printed: never a secret in it.
    let secrets = env::secrets_of(graph, env);
    let actions = Actions::new(
        &session.run_dir,
        session.pipeline.dir(),
        &watchdog,
        llm.as_ref(),
        env,
        &secrets,
    );
    let turn = Turn::unjournaled(&session.run_dir);
    let mut rechecked = Vec::with_capacity(ids.len());
    for id in ids {
        let task = &graph[id];
        let refused = |message: String| Judgement {
            error: Some(TaskError::new(ErrorKind::CheckFailed, message)),
            ..Judgement::default()
        };
        let missing = task
            .outputs
            .iter()
            .find(|o| std::fs::symlink_metadata(session.run_dir.path(&o.path)).is_err());
        let judgement = match done(&task.name) {
            None => refused("no successful run is recorded".into()),
            Some(_) if missing.is_some() => refused(format!(
                "output {} is missing",
                missing.map_or("", |o| o.path.as_str())
            )),
            Some(mut record) => checks::examine(
                &session.run_dir,
                task,
                false,
                None,
                Inspectors {
                    answer: Some(&secrets),
                    check: |script: &str| actions.check(task, script, &turn),
                    judge: Some(|j: &Judge| actions.judge(task, j, &mut record, &turn)),
                },
            ),
        };
        rechecked.push(Rechecked {
            task: task.name.clone(),
            judgement,
        });
    }
    Ok(rechecked)
}

/// Whether `task` is a prompt task whose answer is JSON (`format = "json"`
/// or a `schema`): its output is checked as one.
pub fn answers_json(task: &Task) -> bool {
    matches!(&task.action, Action::Prompt(spec) if spec.format == Format::Json)
}
