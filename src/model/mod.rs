//! The model: what a pipeline is, in three forms with three lifetimes.
//! [`pipeline`]: the parsed `pipeline.toml` (every TOML definition, never
//! mutated, with the text for `file:line:col`; a big file is parsed in
//! [`pieces`] at once); [`graph`]: the resolved,
//! checked graph of tasks, built by [`resolve`] and grown by
//! [`Graph::expand`]; and the pieces resolution is made of: [`template`]s,
//! [`fanout`] instances (and the paths they may write and read, from
//! their templates: `fanout_paths`), [`models`], [`prompt`] specs, [`hooks`],
//! [`fingerprint`]s, output [`checks`], the [`globs`] among inputs (and
//! the outputs they leave out); and the [`limits`] a pipeline is held to.
//!
//! Above the store (it reads list files and stats sources through it),
//! below the plan. Knows nothing of what was built.

pub mod advice;
pub mod bounds;
pub mod checks;
pub mod endpoint;
pub mod extra_body;
pub mod fanout;
pub(super) mod fanout_paths;
pub mod fingerprint;
mod frame;
mod glob_overlap;
pub mod globs;
pub mod graph;
mod hidden_url;
pub mod hooks;
pub mod judge;
pub mod limits;
mod list_schema;
pub mod models;
pub mod names;
pub mod pieces;
pub mod pipeline;
pub mod prompt;
pub mod reads;
pub mod resolve;
pub mod schema;
pub mod shell_template;
pub mod size;
pub mod source;
pub mod template;
pub mod template_files;
mod wrong_type;

pub use advice::{Advice, ModelSourceKind, Trouble};
pub use graph::{Action, FanoutGroup, Graph, Pool, Task, TaskId};
pub use pipeline::Pipeline;
pub use resolve::{Expansion, Lists};

use std::collections::BTreeSet;

impl Graph {
    /// What is worth saying about the pipeline before a build runs it:
    /// schemas constrained decoding may never end under
    /// ([`bounds::warnings`]), globs that leave out outputs of other tasks
    /// ([`Graph::glob_warnings`]). `show` gives a path as messages show
    /// it.
    pub fn warnings(&self, show: &dyn Fn(&std::path::Path) -> String) -> Vec<String> {
        let mut out = bounds::warnings(self, show);
        out.extend(self.glob_warnings(None));
        out
    }

    /// Every path the graph depends on beyond what the state records: the
    /// pipeline file, prompt and schema files, `foreach` list files, and
    /// what resolution looked at ([`Graph::watched`]). Paths beside the
    /// pipeline are absolute; the others relative to the run directory.
    pub fn source_paths(&self, pipeline: &Pipeline) -> Vec<String> {
        self.source_paths_of(pipeline, None)
    }

    /// [`Graph::source_paths`] of the tasks `wanted` (by id; every task:
    /// `None`), and the pipeline file: what building them reads beyond
    /// their inputs.
    pub fn source_paths_of(&self, pipeline: &Pipeline, wanted: Option<&[bool]>) -> Vec<String> {
        let defs: Option<BTreeSet<&str>> = wanted.map(|wanted| {
            self.tasks()
                .filter(|t| wanted.get(t.id).copied().unwrap_or(false))
                .map(|t| t.origin.def.as_str())
                .collect()
        });
        let mut paths = vec![pipeline.path.to_string_lossy().into_owned()];
        for (name, def) in &pipeline.def.tasks {
            if defs
                .as_ref()
                .is_some_and(|d| !d.contains(name.get_ref().as_str()))
            {
                continue;
            }
            for rel in [&def.prompt_file, &def.schema].into_iter().flatten() {
                paths.push(prompt::read_path(pipeline, rel));
            }
            if let Some(foreach) = &def.foreach {
                paths.push(foreach.get_ref().file.clone());
            }
        }
        let mut seen = BTreeSet::new();
        paths.extend(self.watched(wanted).map(str::to_string));
        paths.retain(|p| seen.insert(p.clone()));
        paths
    }
}
