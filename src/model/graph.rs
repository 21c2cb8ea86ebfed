//! The resolved graph: tasks with normalized paths, edges as ids, a
//! topological order, and each task's fingerprint. Built by
//! [`Graph::resolve`] (see `resolve/`), which is where every refusal of a
//! pipeline that cannot be built happens, before anything runs.
//!
//! Task ids are append-only: a task keeps its id for the life of the
//! graph, and [`Graph::expand`] adds the instances of a `foreach` task
//! without renumbering anything (its placeholder is retired, never
//! reused). The order a user reads tasks in, declaration order with each
//! fan-out's instances in place of the task, is kept apart from ids: the
//! listing ([`Graph::tasks`]) and each task's [`Graph::rank`] in it, which
//! also breaks ties wherever order is free (the topological order, which
//! ready task starts first).

use std::collections::BTreeMap;
use std::ops::{Index, Range};
use std::time::Duration;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::advice::{Advice, ModelSourceKind};
use super::checks::Checks;
use super::fingerprint::Fingerprint;
use super::models::ModelConfig;
use super::pipeline::HookDef;
use super::prompt::PromptSpec;
use super::reads::Produced;
use super::template::Vars;

pub type TaskId = usize;

/// A limit on how many tasks of a kind run at once ([`Graph::pool`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// The model's index in [`Graph::models`].
    pub id: usize,
    /// Its `max_concurrency`.
    pub depth: usize,
}

/// What a task does when it runs.
#[derive(Debug, Clone)]
pub enum Action {
    /// A shell command, run with `sh -c` in the run directory.
    Command(String),
    /// A prompt for a model (handled by the LLM runner).
    Prompt(Box<PromptSpec>),
    /// A `foreach` task whose list file is not built yet: it expands into
    /// instances once it is, and never runs itself.
    Expand(String),
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Command(_) => "command",
            Action::Prompt(_) => "prompt",
            Action::Expand(_) => "foreach",
        }
    }

    /// The text `explain` diffs: a command, or what a prompt task's
    /// fingerprint covers ([`super::prompt::PromptSpec::definition`]).
    pub fn definition(&self) -> Option<String> {
        match self {
            Action::Command(c) => Some(c.clone()),
            Action::Prompt(p) => Some(p.definition()),
            Action::Expand(_) => None,
        }
    }

    /// The fingerprint of a command (or placeholder); prompt tasks have
    /// theirs from [`super::prompt::prompt_fingerprint`].
    pub fn fingerprint(&self) -> String {
        let mut fp = Fingerprint::new(self.kind());
        if let Action::Command(c) = self {
            fp.field("command", c.as_bytes());
        }
        fp.finish()
    }
}

/// One input file of a task, after glob expansion.
#[derive(Debug, Clone)]
pub struct Input {
    /// Normalized run-directory-relative path.
    pub path: String,
    /// The task that produces it, if any; otherwise it is a source file.
    pub producer: Option<TaskId>,
    /// Where the input (or the glob it came from) is written.
    pub span: Range<usize>,
}

#[derive(Debug, Clone)]
pub struct Output {
    pub path: String,
    pub span: Range<usize>,
}

/// Where a task comes from: its `[tasks.NAME]` table, and for a fan-out
/// instance its variables. What resolution needs to resolve it again.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The name of the table.
    pub def: String,
    pub vars: Option<Vars>,
    /// The list file, for the placeholder of an unexpanded `foreach`.
    pub placeholder: Option<String>,
    /// Fan-out tasks named in its `inputs` or `after`.
    pub groups: Vec<String>,
    /// Whether an input is a glob pattern (what it matches depends on
    /// which files tasks produce).
    pub globs: bool,
    /// A placeholder: the models its instances will ask (a prompt's, a
    /// judge's), so a build can set them up before the list is built.
    pub asks: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: TaskId,
    pub name: String,
    pub name_span: Range<usize>,
    pub inputs: Vec<Input>,
    pub outputs: Vec<Output>,
    /// Tasks this one waits for (producers of inputs, and `after`), sorted.
    pub deps: Vec<TaskId>,
    /// Tasks that wait for this one, sorted.
    pub dependents: Vec<TaskId>,
    pub action: Action,
    pub timeout: Option<Duration>,
    /// Output checks: `check`, `min_bytes`, `severity`, `rescue`.
    pub checks: Checks,
    /// What the task does and checks (its record's `fingerprint`).
    pub fingerprint: String,
    /// What it does, without its checks: a task whose checks alone changed
    /// has its current outputs checked again instead of running.
    pub action_fingerprint: String,
    /// A fan-out instance's: what it does before its item is put in (its
    /// command's template, its prompt's fingerprint, which holds the
    /// templates): a run whose action changed with this the same was
    /// of another item.
    pub template_fingerprint: Option<String>,
    pub origin: Origin,
}

impl Task {
    /// For a command that names `{inputs}` (which it is given in their
    /// order): a hash of its inputs in that order, recorded with each run,
    /// so inputs that come in a new order (a reordered `inputs` list, a
    /// fan-out's items in a new order) run it again. `None` for any other
    /// task: the order of its inputs makes no difference to it.
    pub fn input_order(&self) -> Option<String> {
        let Action::Command(command) = &self.action else {
            return None;
        };
        if !command.contains("{inputs}") {
            return None;
        }
        let mut fp = Fingerprint::new("input order");
        for input in &self.inputs {
            fp.field("input", input.path.as_bytes());
        }
        Some(fp.finish())
    }

    /// The 1-based line of its `[tasks.NAME]` table in the pipeline file
    /// whose text is `pipeline_text` (an instance: its table's line). What
    /// CI annotations point at.
    pub fn line(&self, pipeline_text: &str) -> usize {
        crate::error::Position::of_offset(pipeline_text, self.name_span.start).line
    }
}

/// One glob in a task's `inputs`, as resolved (what it leaves out:
/// [`Graph::glob_warnings`]).
#[derive(Debug, Clone)]
pub struct GlobInput {
    pub task: TaskId,
    /// The pattern, normalized (relative to the run directory).
    pub pattern: String,
    /// The literal folder it walks from (`""`: the run directory).
    pub base: String,
    pub matcher: globset::GlobMatcher,
}

/// The tasks a fan-out expanded into.
#[derive(Debug, Clone)]
pub struct FanoutGroup {
    /// Instances in item order (or the placeholder alone).
    pub members: Vec<TaskId>,
    /// Whether the group is a placeholder waiting for its list file.
    pub placeholder: bool,
    /// The list file of a `foreach`.
    pub list: Option<String>,
    /// What the instances were expanded from: the list's hash.
    pub expanded_from: Option<String>,
    /// The outputs of a `foreach` task's instances, as templates: what a
    /// glob that would match them is warned of before the list exists.
    pub templates: Vec<String>,
    /// The inputs of a `foreach` task's instances, as templates: what the
    /// instances of any item may read ([`Graph::fan_out_reading`]).
    pub input_templates: Vec<String>,
}

/// Marks a retired task's rank.
pub(super) const RETIRED: usize = usize::MAX;

#[derive(Debug, Clone)]
pub struct Graph {
    pub name: String,
    pub jobs: Option<usize>,
    /// `[pipeline] cache`: the response cache folder, resolved against the
    /// pipeline file's folder.
    pub cache: Option<std::path::PathBuf>,
    /// `[pipeline] results`: outputs checked to exist in the pipeline.
    pub(super) results: Vec<String>,
    /// By id; retired placeholders stay, out of the listing.
    pub(super) tasks: Vec<Task>,
    /// Live tasks in declaration order, instances in place of their task.
    pub(super) listing: Vec<TaskId>,
    /// Each task's position in the listing ([`RETIRED`] when retired).
    pub(super) rank: Vec<usize>,
    pub(super) by_name: HashMap<String, TaskId>,
    /// Output path to the task that produces it.
    pub(super) producers: HashMap<String, TaskId>,
    /// Every live task after all of its dependencies.
    pub(super) order: Vec<TaskId>,
    /// `[models.*]`, in declaration order.
    pub models: Vec<ModelConfig>,
    /// Fan-out tasks by name.
    pub fanouts: BTreeMap<String, FanoutGroup>,
    /// `[[hooks]]`, checked.
    pub hooks: Vec<HookDef>,
    /// Paths whose existence or listing decided the resolution beyond the
    /// task files themselves: folders a glob walked, and glob patterns that
    /// would be taken literally if such a file appeared; each with the
    /// task whose inputs it decided.
    pub(super) watched: Vec<(TaskId, String)>,
    /// What resolution read of the files and folders beyond the pipeline
    /// file, by path: a hash of the content read ([`super::reads`]).
    pub(super) read_as: std::collections::HashMap<String, String>,
    /// Every glob input, as resolved ([`Graph::glob_warnings`]).
    pub(super) globs: Vec<GlobInput>,
    /// `--model`, `$PLANEXE_MODEL` or the run's remembered model, which
    /// replaces every prompt task's model (kept to resolve instances added
    /// later), and where it came from.
    pub(super) model_override: Option<(ModelSourceKind, String)>,
    /// How refusals of names the graph does not have (and of an unknown
    /// model override) say what to do, in the caller's terms.
    pub(super) advice: Advice,
}

impl Index<TaskId> for Graph {
    type Output = Task;

    fn index(&self, id: TaskId) -> &Task {
        &self.tasks[id]
    }
}

impl Graph {
    /// How to say what to do, in the terms of the door the graph was
    /// resolved for (a build's refusals say it in them too).
    pub fn advice(&self) -> &Advice {
        &self.advice
    }

    /// A hash of what resolution read of `path` (a file or folder beyond
    /// the pipeline file, as [`Graph::source_paths`] names it), in the
    /// form `store::stamp` hashes it; `None` when it read nothing there.
    pub fn read_as(&self, path: &str) -> Option<&str> {
        self.read_as.get(path).map(String::as_str)
    }

    /// The hash [`Graph::read_as`] has for the folder `dir` when it holds
    /// `names` (the names of what tasks produce left out, as `produced`,
    /// this graph's, says).
    pub fn listing_hash(&self, dir: &str, names: Vec<Vec<u8>>, produced: &Produced) -> String {
        produced.listing_hash(dir, names, |p| self.producers.contains_key(p))
    }

    /// The folders on the way to what this graph's tasks produce.
    pub fn produced(&self) -> Produced {
        Produced::of(self.producers.keys().map(String::as_str))
    }

    /// What a build makes for people to read: `[pipeline] results`, else
    /// the outputs of the tasks nothing else reads.
    pub fn results(&self) -> Vec<String> {
        if !self.results.is_empty() {
            // A fan-out named stands for its instances' outputs.
            return self
                .results
                .iter()
                .flat_map(
                    |named| match (self.producer(named), self.fanouts.get(named)) {
                        (None, Some(group)) => group
                            .members
                            .iter()
                            .filter(|&&m| self.tasks[m].origin.placeholder.is_none())
                            .flat_map(|&m| self.tasks[m].outputs.iter().map(|o| o.path.clone()))
                            .collect(),
                        _ => vec![named.clone()],
                    },
                )
                .collect();
        }
        // A `foreach` list is read by the fan-out's instances, which do
        // not list it in their deps.
        let lists: HashSet<TaskId> = self
            .lists()
            .filter_map(|(_, list)| self.producer(list))
            .collect();
        self.tasks()
            .filter(|t| t.dependents.is_empty() && !lists.contains(&t.id))
            .flat_map(|t| t.outputs.iter().map(|o| o.path.clone()))
            .collect()
    }

    /// How many tasks the graph has (retired placeholders not counted).
    pub fn len(&self) -> usize {
        self.listing.len()
    }

    pub fn is_empty(&self) -> bool {
        self.listing.is_empty()
    }

    /// One more than the largest id ever given: the length of a vector
    /// indexed by task id.
    pub fn id_bound(&self) -> usize {
        self.tasks.len()
    }

    /// Every task, in declaration order (fan-out instances in item order,
    /// in place of their task).
    pub fn tasks(&self) -> impl ExactSizeIterator<Item = &Task> + '_ {
        self.listing.iter().map(|&id| &self.tasks[id])
    }

    /// The ids of [`Graph::tasks`], in the same order.
    pub fn ids(&self) -> &[TaskId] {
        &self.listing
    }

    /// A task's position in declaration order.
    pub fn rank(&self, id: TaskId) -> usize {
        self.rank[id]
    }

    /// Where a recorded answer for a request that model `model` found none
    /// for would come from: the folder of that replay model and the live
    /// model it replays ([`Trouble::ReplayMissed`]); `None` when `model` is
    /// not a replay model (`--replay DIR` answers for any model).
    pub fn replay_missed(&self, model: &str) -> Option<(String, &str)> {
        let replay = self
            .models
            .iter()
            .find(|m| m.name == model)?
            .replay
            .as_ref()?;
        let live = self.models.get(replay.of)?.name.as_str();
        Some((replay.dir.display().to_string(), live))
    }

    /// The pool a task starts in, as ninja's pools: a prompt task whose
    /// model has a `max_concurrency` counts against it from its start to
    /// its end, so no more of that model's tasks run at once than it takes
    /// calls (the others wait, ready, without taking a job slot).
    pub fn pool(&self, id: TaskId) -> Option<Pool> {
        let Action::Prompt(spec) = &self.tasks.get(id)?.action else {
            return None;
        };
        let depth = self.models.get(spec.model)?.max_concurrency?;
        Some(Pool {
            id: spec.model,
            depth,
        })
    }

    /// Whether a task is in the graph (not a retired placeholder).
    pub fn is_live(&self, id: TaskId) -> bool {
        self.rank.get(id).is_some_and(|&r| r != RETIRED)
    }

    /// Every task after all of its dependencies; ties in declaration order.
    pub fn order(&self) -> &[TaskId] {
        &self.order
    }

    /// The task that produces a path.
    pub fn producer(&self, path: &str) -> Option<TaskId> {
        self.producers.get(path).copied()
    }

    /// Paths the resolution of the tasks `wanted` (every task: `None`)
    /// depended on beyond task files (see the field).
    pub fn watched<'a>(&'a self, wanted: Option<&'a [bool]>) -> impl Iterator<Item = &'a str> {
        self.watched
            .iter()
            .filter(move |(t, _)| wanted.is_none_or(|w| w.get(*t).copied().unwrap_or(false)))
            .map(|(_, path)| path.as_str())
    }

    pub fn task(&self, name: &str) -> Option<&Task> {
        self.by_name.get(name).map(|&id| &self.tasks[id])
    }

    /// `foreach` tasks still waiting for their list file: (name, list).
    pub fn placeholders(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lists()
            .filter(|&(name, _)| self.fanouts[name].placeholder)
    }

    /// Every `foreach` task, expanded or not: (name, list).
    pub fn lists(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fanouts
            .iter()
            .filter_map(|(name, g)| Some((name.as_str(), g.list.as_deref()?)))
    }

    /// The tasks `roots` need, transitively, including the roots: their
    /// deps, and for an instance of an expanded `foreach`, the task that
    /// writes its list (an instance depends on its item, not the whole
    /// list, so its deps do not name that task; but its item comes from
    /// the list, and a change to the list's sources changes it). What a
    /// build of targets considers, and what a watch of them watches.
    pub fn closure(&self, roots: &[TaskId]) -> Vec<bool> {
        self.reach(roots, |t| t.deps.iter().chain(self.list_producer_of(t)))
    }

    /// The producer of the list of `task`, an instance of an expanded
    /// `foreach` (see [`Graph::list_producer`]), as the graph holds it.
    fn list_producer_of(&self, task: &Task) -> Option<&TaskId> {
        task.origin.vars.as_ref()?;
        let group = self.fanouts.get(&task.origin.def)?;
        if group.placeholder {
            return None;
        }
        self.producers.get(group.list.as_deref()?)
    }

    /// The tasks that depend on `roots`, transitively, including the roots.
    pub fn downstream(&self, roots: &[TaskId]) -> Vec<bool> {
        self.reach(roots, |t| &t.dependents)
    }

    /// [`Graph::downstream`], and through the list of an expanded
    /// `foreach` to its instances, which wait for the list's producer
    /// without naming it in their deps (an instance depends on its item,
    /// not the whole list): what `clean --downstream` deletes.
    pub fn downstream_through_lists(&self, roots: &[TaskId]) -> Vec<bool> {
        let mut readers: HashMap<TaskId, Vec<TaskId>> = HashMap::default();
        for t in self.tasks() {
            if let Some(p) = self.list_producer(t.id) {
                readers.entry(p).or_default().push(t.id);
            }
        }
        self.reach(roots, |t| {
            t.dependents
                .iter()
                .chain(readers.get(&t.id).into_iter().flatten())
        })
    }

    /// For an instance of an expanded `foreach`: the task that writes its
    /// list, if a task does.
    pub fn list_producer(&self, t: TaskId) -> Option<TaskId> {
        self.list_producer_of(&self.tasks[t]).copied()
    }

    fn reach<'a, I>(&'a self, roots: &[TaskId], next: impl Fn(&'a Task) -> I) -> Vec<bool>
    where
        I: IntoIterator<Item = &'a TaskId>,
    {
        let mut marked = vec![false; self.id_bound()];
        let mut stack: Vec<TaskId> = roots.to_vec();
        while let Some(t) = stack.pop() {
            if !std::mem::replace(&mut marked[t], true) {
                stack.extend(next(&self.tasks[t]));
            }
        }
        marked
    }
}
