//! Resolution: from a parsed [`Pipeline`] to a checked [`Graph`], in passes
//! that each own one concern:
//!
//! 1. `entries`: each `[tasks.NAME]` table becomes tasks: a plain task,
//!    the instances of a `matrix`, or the placeholder of a `foreach`;
//! 2. `task`: each task's action, timeout and outputs (producers known);
//! 3. `foreach` lists that are ready expand into instances ([`Lists`]);
//! 4. `inputs`: each task's inputs (globs walked by `paths`), `after`
//!    and edges;
//! 5. `finish`: prompt templates and judges ([`prompt`]), checked
//!    against inputs; fingerprints;
//! 6. `order`: ranks, dependents and the topological order (cycles).
//!
//! Passes 4 and 5 read the graph and change one task each: a pipeline of
//! many tasks has them found at once on the pool's threads, then put in
//! the graph in the listing's order (so a refusal is the first task's in
//! the file, whatever the threads). So is what pass 2 finds from a task's
//! table alone (`task::prepare`); who produces each output, and ids, are
//! given one task after another (`task::commit`).
//!
//! [`Graph::expand`] runs the same passes for the instances of one
//! `foreach` task when its list is built, and passes 4 to 6 again only for
//! the tasks that can see the difference: those that name the fan-out, read
//! a glob, or read a file an instance now produces.

mod entries;
mod expansion;
mod finish;
mod inputs;
mod order;
mod paths;
mod task;
#[cfg(test)]
mod tests;

pub use expansion::Expansion;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;
use std::time::Duration;

use rayon::prelude::*;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use toml::Spanned;

use super::advice::{Advice, ModelSourceKind, Trouble};
use super::fanout;
use super::graph::{Action, FanoutGroup, Graph, TaskId};
use super::hooks;
use super::models;
use super::pipeline::{parse_timeout, Pipeline, Source, TaskDef};
use super::prompt::Format;
use super::reads::{Produced, Reads};
use crate::error::{Error, Result};
use crate::store::{rundir, RunDir};

/// Which `foreach` tasks [`Graph::resolve`] expands from the list files on
/// disk; the others stay placeholders until [`Graph::expand`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lists {
    /// Every one whose list file exists (the run as it is on disk: what
    /// `clean`, `touch` and `check` name).
    Present,
    /// Those whose list file exists and no task produces (a build, and a
    /// command reporting on the run, which expand the others once they
    /// know their list is up to date: `Session::expand_ready`).
    Unproduced,
}

/// What every pass needs: the pipeline, its tables by name, the run
/// directory, and what earlier checks found.
struct Resolver<'a> {
    pipeline: &'a Pipeline,
    source: Source<'a>,
    run_dir: &'a RunDir,
    /// `[tasks.NAME]` tables by name.
    defs: HashMap<&'a str, (&'a Spanned<String>, &'a TaskDef)>,
    default_timeout: Option<Duration>,
    model_index: HashMap<String, usize>,
    /// Source files already found on disk (many tasks read the same);
    /// behind a lock, as tasks are resolved at once.
    checked_sources: Mutex<HashSet<String>>,
    /// The files and folders read beyond the pipeline file, as read.
    reads: Reads,
    /// The folders on the way to what tasks produce, once a glob walks.
    produced: std::sync::OnceLock<Produced>,
}

/// How many tasks one thread resolves at least, when they are resolved at
/// once (a pipeline of a few dozen tasks is not worth a second thread).
const AT_ONCE: usize = 256;

impl<'a> Resolver<'a> {
    fn new(
        pipeline: &'a Pipeline,
        run_dir: &'a RunDir,
        models: &[models::ModelConfig],
    ) -> Result<Self> {
        let source = pipeline.source();
        let default_timeout = match &pipeline.def.pipeline.timeout {
            None => None,
            Some(t) => Some(parse_timeout(t.get_ref()).map_err(|m| {
                Error::pipeline(source.diagnostic(t.span(), &m))
                    .hint("write a timeout as \"90s\", \"10m\", \"1h\" or a number of seconds")
            })?),
        };
        Ok(Resolver {
            pipeline,
            source,
            run_dir,
            defs: pipeline
                .def
                .tasks
                .iter()
                .map(|(name, def)| (name.get_ref().as_str(), (name, &**def)))
                .collect(),
            default_timeout,
            model_index: models
                .iter()
                .enumerate()
                .map(|(i, m)| (m.name.clone(), i))
                .collect(),
            checked_sources: Mutex::default(),
            reads: Reads::default(),
            produced: std::sync::OnceLock::new(),
        })
    }

    /// Whether the source file `path` was found on disk already.
    fn source_checked(&self, path: &str) -> bool {
        self.checked_sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(path)
    }

    /// Notes that the source file `path` is on disk.
    fn source_found(&self, path: &str) {
        self.checked_sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_string());
    }

    fn err(&self, span: Range<usize>, message: &str) -> Error {
        Error::pipeline(self.source.diagnostic(span, message))
    }

    fn def(&self, name: &str) -> &'a TaskDef {
        // Every task comes from a table of this pipeline.
        self.defs.get(name).map(|(_, def)| *def).unwrap_or_else(|| {
            unreachable!("task table `{name}` is in the pipeline it was resolved from")
        })
    }

    /// Reads and checks the list of the fan-out `group`, changing nothing:
    /// `None` when it has no list, its list file does not exist, or the
    /// file is the one its instances came from.
    fn read_list(&self, graph: &Graph, group: &str) -> Result<Option<fanout::List>> {
        let Some(fan) = graph.fanouts.get(group) else {
            return Ok(None);
        };
        let Some(list) = fan.list.clone() else {
            return Ok(None);
        };
        let (_, def) = self.defs[group];
        let Some(foreach) = &def.foreach else {
            return Ok(None);
        };
        let mut read = foreach.get_ref().clone();
        read.file = list;
        let read =
            fanout::foreach_instances(self.run_dir, &self.source, group, &read, foreach.span())
                .map_err(|e| asked_without_schema(graph, &read.file, e))?;
        if let Some(list) = &read {
            self.reads
                .put_hash(fan.list.clone().unwrap_or_default(), list.read.clone());
        }
        Ok(read.filter(|r| fan.expanded_from.as_deref() != Some(r.hash.as_str())))
    }

    /// Makes the instances of `group` what its list file says
    /// ([`Resolver::read_list`], then [`Resolver::expand_read`]).
    fn expand_group(&mut self, graph: &mut Graph, group: &str) -> Result<Option<Expansion>> {
        match self.read_list(graph, group)? {
            Some(read) => self.expand_read(graph, group, read).map(Some),
            None => Ok(None),
        }
    }

    /// Makes the instances of `group` what its list `read` says: an
    /// instance whose item is unchanged keeps its id; one whose item is
    /// gone or changed is retired (out of the listing, its name and outputs
    /// free); new and changed items get new ids. The first expansion
    /// retires the placeholder. The new members take the old ones' place
    /// in the listing. Returns the tasks added and retired and the
    /// outputs no longer produced.
    fn expand_read(
        &mut self,
        graph: &mut Graph,
        group: &str,
        read: fanout::List,
    ) -> Result<Expansion> {
        let (name, def) = self.defs[group];
        let fan = &graph.fanouts[group];
        let old = fan.members.clone();
        let entries = entries::instances(name, def, read.instances);
        // Which old instances stay as they are.
        let mut kept: Vec<Option<TaskId>> = Vec::with_capacity(entries.len());
        for entry in &entries {
            kept.push(
                graph
                    .by_name
                    .get(&entry.name)
                    .copied()
                    .filter(|id| old.contains(id))
                    .filter(|&id| graph.tasks[id].origin.vars == entry.vars),
            );
        }
        let mut gone_outputs = Vec::new();
        let mut retired = Vec::new();
        for &id in &old {
            if kept.contains(&Some(id)) {
                continue;
            }
            retired.push(id);
            let task = &mut graph.tasks[id];
            for out in &task.outputs {
                if graph.producers.get(&out.path) == Some(&id) {
                    graph.producers.remove(&out.path);
                    gone_outputs.push(out.path.clone());
                }
            }
            if graph.by_name.get(&task.name) == Some(&id) {
                graph.by_name.remove(&task.name);
            }
            task.deps.clear();
        }
        let mut members = Vec::with_capacity(entries.len());
        let mut added = Vec::new();
        for (entry, kept) in entries.iter().zip(kept) {
            let id = match kept {
                Some(id) => id,
                None => {
                    let id = task::add(self, graph, entry)?;
                    added.push(id);
                    id
                }
            };
            members.push(id);
        }
        // The group's place in the listing: where its first member was.
        let position = graph
            .listing
            .iter()
            .position(|t| old.contains(t))
            .unwrap_or(graph.listing.len());
        graph.listing.retain(|t| !old.contains(t));
        graph
            .listing
            .splice(position..position, members.iter().copied());
        if let Some(fan) = graph.fanouts.get_mut(group) {
            fan.members = members;
            fan.placeholder = false;
            fan.expanded_from = Some(read.hash);
        }
        Ok(Expansion {
            added,
            retired,
            relinked: Vec::new(),
            gone_outputs,
        })
    }
}

/// A list that cannot be read, when a prompt task without a `schema`
/// writes it: the model's answer was taken as it came (a small model wraps
/// a list in prose or numbers it, and, asked for JSON, may answer an
/// object), so say how to have it checked as a list, and asked for again
/// when it is not, before the list is read.
fn asked_without_schema(graph: &Graph, list: &str, refused: Error) -> Error {
    let Some(producer) = graph.producer(list) else {
        return refused;
    };
    let asks = match &graph[producer].action {
        Action::Prompt(spec) if spec.schema.is_some() => return refused,
        Action::Prompt(spec) if spec.format == Format::Text => "for text",
        Action::Prompt(_) => "for JSON without a `schema`",
        _ => return refused,
    };
    refused.hint(format!(
        "{list} is the answer of the prompt task `{}`, which asks {asks}: give that task a \
         `schema` (an array, with `maxItems`), so that its answer is checked as a list, and \
         asked for again when it is not",
        graph[producer].name
    ))
}

impl Graph {
    /// Resolves and checks `pipeline` against the files in `run_dir`.
    /// `model_override` (from `--model`, `$PLANEXE_MODEL` or the run's
    /// record, as its kind says) replaces every prompt task's model; `lists` says which `foreach` tasks expand now.
    /// Names the graph does not have are refused in the command line's
    /// terms.
    pub fn resolve(
        pipeline: &Pipeline,
        run_dir: &RunDir,
        model_override: Option<(ModelSourceKind, &str)>,
        lists: Lists,
    ) -> Result<Graph> {
        Graph::resolve_with(
            pipeline,
            run_dir,
            model_override,
            lists,
            Advice::COMMAND_LINE,
        )
    }

    /// [`Graph::resolve`], with `advice` saying what to do about a name the
    /// graph does not have (a task, a target, the model override), now and
    /// whenever the graph is asked for one, in the caller's terms.
    pub fn resolve_with(
        pipeline: &Pipeline,
        run_dir: &RunDir,
        model_override: Option<(ModelSourceKind, &str)>,
        lists: Lists,
        advice: Advice,
    ) -> Result<Graph> {
        let source = pipeline.source();
        let def = &pipeline.def;
        let jobs = match &def.pipeline.jobs {
            None => None,
            Some(j) if *j.get_ref() >= 1 => Some(*j.get_ref() as usize),
            Some(j) => {
                return Err(Error::pipeline(
                    source.diagnostic(j.span(), "`jobs` must be at least 1"),
                )
                .hint("remove `jobs` to use one job per CPU"))
            }
        };
        let cache = match &def.pipeline.cache {
            None => None,
            Some(c) if c.get_ref().trim().is_empty() => return Err(Error::pipeline(
                source.diagnostic(c.span(), "`cache` is empty"),
            )
            .hint(
                "name a folder for cached answers, such as cache = \"answers\", or remove the key",
            )),
            Some(c) => Some(pipeline.dir().join(c.get_ref())),
        };
        let name = def.pipeline.name(&source)?.unwrap_or_else(|| {
            pipeline
                .dir()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("pipeline")
                .to_string()
        });
        // Declaration order: by position in the file.
        let mut sorted: Vec<_> = def.tasks.iter().map(|(name, def)| (name, &**def)).collect();
        sorted.sort_by_key(|(name, _)| name.span().start);
        if sorted.is_empty() {
            return Err(
                Error::pipeline(format!("{}: the pipeline has no tasks", source.display))
                    .hint("add a [tasks.NAME] table with a `command`; see docs/pipeline.md"),
            );
        }
        let (entries, groups) = entries::entries(&source, &sorted)?;
        let (models, _) = models::resolve_models(pipeline)?;
        let hooks = hooks::resolve(pipeline)?;
        let mut graph = Graph {
            name,
            jobs,
            cache,
            results: Vec::new(),
            tasks: Vec::with_capacity(entries.len()),
            listing: Vec::with_capacity(entries.len()),
            rank: Vec::new(),
            by_name: HashMap::with_capacity_and_hasher(entries.len(), Default::default()),
            producers: HashMap::default(),
            order: Vec::new(),
            models,
            fanouts: BTreeMap::new(),
            hooks,
            watched: Vec::new(),
            read_as: Default::default(),
            globs: Vec::new(),
            model_override: model_override.map(|(k, m)| (k, m.to_string())),
            advice,
        };
        let mut resolver = Resolver::new(pipeline, run_dir, &graph.models)?;
        // A model override names a model of the pipeline, whether or not a
        // task asks one yet: a run must not remember a name it cannot use.
        if let Some((from, m)) = &graph.model_override {
            if !resolver.model_index.contains_key(m) {
                return Err(Error::usage(format!(
                    "unknown model `{m}` ({})",
                    graph.advice.hint(&Trouble::ModelOverride { from: *from })
                ))
                .hint(models::unknown_hint(m, &resolver.model_index)));
            }
        }
        // Pass 2 at once for every table, then each task added in order
        // (the first refusal in the file is the one given).
        let prepared: Vec<Result<task::Prepared>> = entries
            .par_iter()
            .with_min_len(AT_ONCE)
            .map(|entry| task::prepare(&resolver, entry))
            .collect();
        for (entry, prepared) in entries.iter().zip(prepared) {
            let id = task::commit(&resolver, &mut graph, entry, prepared?)?;
            graph.listing.push(id);
        }
        for (name, group) in groups {
            let members = group
                .names
                .iter()
                .filter_map(|n| graph.by_name.get(n).copied())
                .collect();
            graph.fanouts.insert(
                name,
                FanoutGroup {
                    members,
                    placeholder: group.placeholder,
                    list: group.list,
                    expanded_from: None,
                    templates: group.templates,
                    input_templates: group.input_templates,
                },
            );
        }
        // Lists ready now expand before any input is resolved.
        let ready: Vec<String> = graph
            .placeholders()
            .filter(|&(_, list)| lists == Lists::Present || graph.producer(list).is_none())
            .map(|(name, _)| name.to_string())
            .collect();
        for group in ready {
            // A reader of the run sees a list a task made that cannot be
            // expanded as its fan-out waiting for it (the build re-makes
            // it, and fails the fan-out if it still cannot): one bad list
            // must not hide the whole run.
            let made = graph
                .fanouts
                .get(&group)
                .and_then(|f| f.list.as_deref())
                .is_some_and(|list| graph.producer(list).is_some());
            let read = match resolver.read_list(&graph, &group) {
                Err(_) if made => continue,
                read => read?,
            };
            if let Some(read) = read {
                resolver.expand_read(&mut graph, &group, read)?;
            }
        }
        // Passes 4 and 5 read the graph and write one task each: tasks are
        // resolved at once, then put in the graph in the listing's order
        // (the first refusal in that order is the one given).
        let listing = graph.listing.clone();
        let found: Vec<Result<inputs::Found>> = listing
            .par_iter()
            .with_min_len(AT_ONCE)
            .map(|&id| inputs::find(&resolver, &graph, id))
            .collect();
        for found in found {
            inputs::apply(&mut graph, found?);
        }
        let finished: Vec<Result<finish::Finished>> = listing
            .par_iter()
            .with_min_len(AT_ONCE)
            .map(|&id| resolver.finished(&graph, id))
            .collect();
        for finished in finished {
            finished?.apply(&mut graph);
        }
        resolver.lists_under_schemas(&graph)?;
        order::link(&mut graph, &source)?;
        if let Some(results) = &def.pipeline.results {
            let mut named = Vec::with_capacity(results.get_ref().len());
            for raw in results.get_ref() {
                let refuse = |message: &str| {
                    Error::pipeline(source.diagnostic(raw.span(), message))
                        .hint("name outputs of tasks, such as results = [\"out/report.md\"], or a fan-out for all of its instances' outputs")
                };
                let path = rundir::normalize(raw.get_ref())
                    .map_err(|m| refuse(&format!("`results` names {}: {m}", raw.get_ref())))?;
                // A fan-out names its instances' outputs, as in `inputs`;
                // an output a `foreach` fan-out's templates may make is
                // taken before its list is (`fanout_paths`).
                if graph.producer(&path).is_none()
                    && !graph.fanouts.contains_key(&path)
                    && graph.fan_out_writing(&path).is_none()
                {
                    return Err(refuse(&format!(
                        "`results` names {path}, which no task produces"
                    )));
                }
                named.push(path);
            }
            graph.results = named;
        }
        graph.read_as = std::mem::take(&mut resolver.reads).into_map();
        Ok(graph)
    }
}
