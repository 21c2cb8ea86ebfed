//! A new run: a fresh run directory seeded with `plan.txt`, its pipeline
//! file recorded, so that a plain `planexe build` in it builds it. One
//! definition for `planexe new` and the MCP server's `run_create`.
//!
//! Nothing is made unless everything checks out first: the run directory
//! (missing or empty; one that is not is said to hold a run, or files but
//! no run) and the pipeline (parsed and resolved by the same
//! code as a build, so a broken one is refused with `file:line:col`). What
//! only resolution can find is found once the directory exists, and then
//! undone. The record of the pipeline is the one a build writes
//! ([`Session::record_pipeline`]); `.planexe/origin.json` says when the run
//! was made, for which pipeline and plan, and with which seeds (each its
//! path, blake3 and size). What its maker should know (a
//! replay model that will miss, where a run exists already) is said in the
//! words of the door it came in by ([`Advice`]).
//!
//! Besides the plan, a new run may be seeded with files its maker gives
//! ([`Seed`]: a source file such as `notes.md` that no task writes), at a
//! path [`seed_path`] has normalized and kept inside the run directory.
//! They are written (each atomically, folders made as needed) before the
//! pipeline's inputs are checked; one that is also a task's output, or
//! that a `foreach` fan-out's instance may write (its output template may
//! render the path, for some item: `model::fanout_paths`, the same whether
//! its list exists yet or not), is refused, and a refusal removes every
//! file and folder the run made. Whether a task reads a seed ([`reads`])
//! counts what such an instance may read, by its input templates, alike.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::exec::llm::recording::replay_holds;
use crate::model::graph::Action;
use crate::model::{Advice, Lists, Pipeline, Trouble};
use crate::plan::session::{Location, ModelChoice};
use crate::plan::Session;
use crate::store::origin::{Input, Origin};
use crate::store::rundir::{holds_run, STATE_DIR};
use crate::store::untrusted::printable;
use crate::store::{files, wrong_kind};

/// The file every run's tasks take their plan from, in the run directory.
pub const PLAN: &str = "plan.txt";

/// A file a new run is seeded with besides its plan.
pub struct Seed {
    /// Relative to the run directory, as [`seed_path`] normalized it.
    pub path: String,
    pub bytes: Vec<u8>,
    /// The permission bits the copy takes (a script's executable bits), as
    /// its source had them; `None`: as a new file gets them.
    pub mode: Option<u32>,
}

impl Seed {
    /// What `.planexe/origin.json` records of it.
    pub fn recorded(&self) -> Input {
        Input::of(&self.path, &self.bytes)
    }
}

/// `path` as a file of a new run: relative, `/`-separated, with no empty
/// or `.` parts; or why it cannot be one (outside the run directory, in
/// its `.planexe/`, or the plan).
pub fn seed_path(path: &str) -> std::result::Result<String, String> {
    if path.contains('\0') {
        return Err("it holds a NUL byte".into());
    }
    if path.contains('\\') {
        return Err("it holds `\\`; separate folders with `/`".into());
    }
    if path.starts_with('/') {
        return Err("it is an absolute path; files are named relative to the run directory".into());
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("it holds `..`; files stay inside the run directory".into()),
            _ => parts.push(part),
        }
    }
    if path.ends_with('/') {
        return Err("it ends with `/`, so it names a folder, not a file".into());
    }
    if parts.is_empty() {
        return Err("it names the run directory itself, not a file in it".into());
    }
    if parts[0] == STATE_DIR {
        return Err(format!("it is inside {STATE_DIR}/, which is planexe's own"));
    }
    let path = parts.join("/");
    if path == PLAN {
        return Err(format!("{PLAN} is the plan; give it as the plan"));
    }
    Ok(path)
}

/// Makes the run directory `run_dir` (shown in messages as `shown`) with
/// `plan` as its `plan.txt` and each of `seeds` (paths [`seed_path`]
/// normalized) written beside it, for the pipeline file `pipeline` (its
/// path and how messages show it), and returns the session of the new
/// run. The plan and the seeds' sizes are taken as they are: checking them
/// is the caller's; a seed that is a task's output, or that a fan-out's
/// instance may write, is refused here. `advice` says what to do
/// about a pipeline file that cannot be used, or a run directory that is
/// taken, in the caller's terms; the session keeps it.
pub fn create(
    run_dir: &Path,
    shown: &str,
    plan: &[u8],
    seeds: &[Seed],
    pipeline: (PathBuf, String),
    advice: Advice,
) -> Result<Session> {
    check_fresh(run_dir, shown, &advice)?;
    let (file, file_shown) = pipeline;
    // Parsed before anything is made; resolved (which needs the run
    // directory) once it exists, and undone if that fails.
    Pipeline::load_with(&file, file_shown.clone(), &advice)?;

    let mut made = make_dirs(run_dir)?;
    let plan_path = run_dir.join(PLAN);
    let mut written = vec![plan_path.clone()];
    let opened = write_new(&plan_path, plan)
        .and_then(|()| write_seeds(run_dir, seeds, &mut written, &mut made))
        .and_then(|()| {
            let location = Location {
                run_dir: run_dir.to_path_buf(),
                file: Some((file, file_shown)),
                env_file: None,
                named_dir: true,
                // A refusal undoes the run: no hint sends its user into it.
                advice: advice.making_run(),
            };
            let session =
                Session::open(location.locate()?, &ModelChoice::default(), Lists::Present)?;
            check_not_outputs(&session, seeds)?;
            Ok(session)
        });
    let session = match opened {
        Ok(session) => session,
        Err(e) => {
            undo(&written, &made);
            return Err(e);
        }
    };
    session.record_pipeline()?;
    let inputs = seeds.iter().map(Seed::recorded).collect();
    Origin::now(&session.pipeline.path.to_string_lossy(), plan, inputs).save(&session.run_dir)?;
    Ok(session)
}

/// Whether some task of the run's pipeline reads `plan.txt`.
pub fn reads_plan(session: &Session) -> bool {
    reads(session, PLAN)
}

/// Whether some task of the run's pipeline reads `path` (relative to the
/// run directory): as an input (a glob's match included), as the list of
/// a `foreach` fan-out, or as an input an instance of one may read, for
/// any item (its input templates say; whether the list exists yet or not,
/// since the list may change).
pub fn reads(session: &Session, path: &str) -> bool {
    let graph = &session.graph;
    graph
        .tasks()
        .any(|t| t.inputs.iter().any(|i| i.path == path))
        || graph.lists().any(|(_, list)| list == path)
        || graph.fan_out_reading(path).is_some()
}

/// One note per replay model (`provider = "replay"`) the tasks of the new
/// run in `session` ask (`shown` as its maker names it): a prompt task's
/// model, a judge's (of any task), or one a fan-out's instances will ask.
/// Their recorded answers were made for another plan, so the run's first
/// build misses them. Each says how to ask the live model it replays
/// instead: a build's model, in the words of the session's door; but a
/// judge that names its model asks it whatever the build's model, so for
/// a replay model only such judges ask, the judge's `model` in the
/// pipeline.
pub fn replay_notes(session: &Session, shown: &str) -> Vec<String> {
    let models = &session.graph.models;
    // Each replay model, the live one it replays, and the task whose judge
    // names it while no build's model would change it (`None` once one
    // would).
    let mut found: Vec<(&str, &str, Option<&str>)> = Vec::new();
    for task in session.graph.tasks() {
        let prompt = match &task.action {
            Action::Prompt(spec) => Some(spec.model),
            _ => None,
        };
        let judge = task.checks.judge.as_ref();
        let named_judge = judge
            .filter(|j| j.model_named.is_some())
            .map(|j| (j.model, task.name.as_str()));
        let followers = judge.filter(|j| j.model_named.is_none()).map(|j| j.model);
        let asked = prompt
            .iter()
            .chain(&followers)
            .chain(&task.origin.asks)
            .map(|&m| (m, None))
            .chain(named_judge.map(|(m, t)| (m, Some(t))));
        for (m, judge_of) in asked {
            let model = &models[m];
            let Some(replay) = &model.replay else {
                continue;
            };
            let (name, live) = (model.name.as_str(), models[replay.of].name.as_str());
            match found.iter_mut().find(|f| f.0 == name) {
                Some(f) if judge_of.is_none() => f.2 = None,
                Some(_) => {}
                None => found.push((name, live, judge_of)),
            }
        }
    }
    // A plan the answers were recorded for is answered: every prompt task
    // of a replay model that reads only sources finds its answer.
    let answered = |replay: &str| {
        let mut roots = session
            .graph
            .tasks()
            .filter(|t| t.inputs.iter().all(|i| i.producer.is_none()))
            .filter_map(|t| match &t.action {
                Action::Prompt(spec) if models[spec.model].name == replay => Some((t, spec)),
                _ => None,
            })
            .peekable();
        roots.peek().is_some()
            && roots.all(|(task, spec)| {
                let inputs = crate::exec::actions::prompt_inputs(&session.run_dir, task);
                replay_holds(&models[spec.model], spec, &task.name, &inputs) == Some(true)
            })
    };
    found
        .into_iter()
        .filter(|&(replay, _, judge_of)| judge_of.is_some() || !answered(replay))
        .map(|(replay, live, judge_of)| {
            let advice = match judge_of {
                Some(task) => format!(
                    "the judge of `{task}` names it, whatever model a build asks: to have it \
                     ask the live model it replays, set the judge's `model` to `{live}`"
                ),
                None => session
                    .advice()
                    .hint(&Trouble::ReplayForNewRun { live, run: shown }),
            };
            format!(
                "model `{replay}` answers prompts only from answers recorded for another plan; \
                 {advice}"
            )
        })
        .collect()
}

/// Refuses a run directory that exists and is not an empty folder.
fn check_fresh(run_dir: &Path, shown: &str, advice: &Advice) -> Result<()> {
    let meta = match std::fs::symlink_metadata(run_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            let why = wrong_kind::why(run_dir, Path::new(shown), &e);
            return Err(
                Error::usage(format!("cannot make run directory {shown}: {why}"))
                    .hint(wrong_kind::hint(shown)),
            );
        }
        Ok(meta) => meta,
    };
    if !std::fs::metadata(run_dir).is_ok_and(|m| m.is_dir()) {
        let kind = if meta.file_type().is_symlink() {
            "a symlink that leads to no folder"
        } else {
            "a file"
        };
        return Err(Error::usage(format!(
            "cannot make run directory {shown}: it exists and is {kind}"
        ))
        .hint("choose another name for the run directory"));
    }
    let mut names: Vec<String> = fs_err::read_dir(run_dir)?
        .filter_map(|e| e.ok())
        .map(|e| printable(&e.file_name().to_string_lossy()).into_owned())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    if holds_run(run_dir) {
        return Err(Error::usage(format!(
            "run directory {shown} already exists and holds a planexe run"
        ))
        .hint(advice.hint(&Trouble::RunExists { run: shown })));
    }
    // A folder made by hand (a pipeline copied in, a `.planexe/` made or
    // left half copied): no run, and nothing planexe would resume.
    names.sort();
    let mut shown_names: Vec<String> = names
        .iter()
        .take(SHOWN_NAMES)
        .map(|n| match n.as_str() {
            STATE_DIR => format!("{STATE_DIR}/ (with no record of a run)"),
            _ => n.clone(),
        })
        .collect();
    if names.len() > SHOWN_NAMES {
        shown_names.push(format!("{} more", names.len() - SHOWN_NAMES));
    }
    Err(Error::usage(format!(
        "run directory {shown} already exists and is not empty, but holds no planexe run: {}",
        shown_names.join(", ")
    ))
    .hint(advice.hint(&Trouble::FolderTaken { run: shown })))
}

/// The most names of a folder's entries a refusal lists.
const SHOWN_NAMES: usize = 4;

/// Makes `dir` and its missing parents; returns those it made, outermost
/// first.
fn make_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| std::fs::symlink_metadata(d).is_err())
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    fs_err::create_dir_all(dir)?;
    Ok(missing)
}

/// Writes each of `seeds` into `run_dir` atomically, making its folders;
/// adds what it writes to `written` and the folders it makes to `made`.
fn write_seeds(
    run_dir: &Path,
    seeds: &[Seed],
    written: &mut Vec<PathBuf>,
    made: &mut Vec<PathBuf>,
) -> Result<()> {
    for seed in seeds {
        let path = run_dir.join(&seed.path);
        if let Some(parent) = path.parent() {
            made.extend(make_dirs(parent)?);
        }
        written.push(path.clone());
        files::write_atomic(&path, &seed.bytes)?;
        if let Some(mode) = seed.mode {
            use std::os::unix::fs::PermissionsExt;
            fs_err::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o777))?;
        }
    }
    Ok(())
}

/// Refuses a seed that is also a task's output, or that an instance of a
/// `foreach` fan-out may write: the task would overwrite it, and a build
/// would take it for the task's work. An instance is judged by its output
/// templates, for any item, expanded or not: the list may change.
fn check_not_outputs(session: &Session, seeds: &[Seed]) -> Result<()> {
    let graph = &session.graph;
    for seed in seeds {
        if let Some(task) = graph
            .tasks()
            .find(|t| t.outputs.iter().any(|o| o.path == seed.path))
        {
            return Err(Error::usage(format!(
                "cannot seed the run with {}: task `{}` writes it (it is one of its outputs)",
                seed.path, task.name
            ))
            .hint("give only source files, the inputs no task writes; leave this one out and the build makes it"));
        }
        if let Some((fanout, template, list)) = graph.fan_out_writing(&seed.path) {
            return Err(Error::usage(format!(
                "cannot seed the run with {}: fan-out `{fanout}` may write it (for some item of its list {list}, its output `{template}` is that path)",
                seed.path
            ))
            .hint(format!(
                "give only source files, the inputs no task writes: the instance of `{fanout}` for such an item would overwrite this one; leave it out, or give it a name `{template}` cannot make"
            )));
        }
    }
    Ok(())
}

/// Writes a file that must not exist yet.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)?;
    Ok(())
}

/// Removes what a refused run made: the files it wrote (the plan, its
/// seeds), then the folders it made (innermost first, only while empty).
fn undo(written: &[PathBuf], made: &[PathBuf]) {
    for file in written {
        let _ = std::fs::remove_file(file);
    }
    for dir in made.iter().rev() {
        let _ = std::fs::remove_dir(dir);
    }
}
