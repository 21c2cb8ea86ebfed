//! Pass 1 of resolution: each `[tasks.NAME]` table becomes the entries of
//! the tasks it defines: one plain task, the instances of a `matrix`, or
//! the placeholder of a `foreach` (whose instances come when its list is
//! read, [`instances`]). Checks task names (characters and length) and
//! the fan-out keys.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::super::fanout::{self, Instance};
use super::super::limits::{self, MAX_NAME_BYTES};
use super::super::pipeline::{Source, TaskDef};
use super::super::template::Vars;
use crate::error::{Error, Result};
use crate::store::rundir;

/// A task before resolution: a plain task, one instance of a fan-out, or
/// the placeholder of an unexpanded `foreach`.
pub(super) struct Entry<'a> {
    pub name: String,
    pub name_span: Range<usize>,
    /// The table's name.
    pub def_name: &'a str,
    pub def: &'a TaskDef,
    pub vars: Option<Vars>,
    /// The list file, for a placeholder.
    pub placeholder: Option<String>,
}

/// A fan-out group as pass 1 finds it: its members' names.
pub(super) struct Group {
    pub names: Vec<String>,
    pub placeholder: bool,
    pub list: Option<String>,
    /// A `foreach` task's outputs, as templates.
    pub templates: Vec<String>,
    /// Its inputs, as templates.
    pub input_templates: Vec<String>,
}

/// The entries of every table, in declaration order, and the fan-out
/// groups they form.
pub(super) fn entries<'a>(
    source: &Source,
    sorted: &[(&'a Spanned<String>, &'a TaskDef)],
) -> Result<(Vec<Entry<'a>>, BTreeMap<String, Group>)> {
    let err = |span: Range<usize>, message: &str| Error::pipeline(source.diagnostic(span, message));
    let mut entries = Vec::new();
    let mut groups = BTreeMap::new();
    for &(name, task) in sorted {
        let base = name.get_ref();
        if !valid_task_name(base) {
            return Err(err(
                name.span(),
                &format!("task name `{base}` is not a plain identifier"),
            )
            .hint("use only ASCII letters, digits, `-` and `_` in task names"));
        }
        if base.len() > MAX_NAME_BYTES {
            return Err(err(
                name.span(),
                &format!(
                    "task name `{}` is {} bytes long; names are at most {MAX_NAME_BYTES}",
                    limits::shorten(base),
                    base.len()
                ),
            )
            .hint("a task's name names its files under .planexe/tasks/: choose a shorter one"));
        }
        match (&task.foreach, &task.matrix) {
            (None, None) => entries.push(Entry {
                name: base.clone(),
                name_span: name.span(),
                def_name: base,
                def: task,
                vars: None,
                placeholder: None,
            }),
            (Some(f), Some(_)) => {
                return Err(err(
                    f.span(),
                    &format!("task `{base}` has both `foreach` and `matrix`"),
                )
                .hint("a task fans out over a list or over a matrix, not both"))
            }
            (None, Some(m)) => {
                let found = instances(
                    name,
                    task,
                    fanout::matrix_instances(source, base, m.span(), m.get_ref())?,
                );
                groups.insert(
                    base.clone(),
                    Group {
                        names: found.iter().map(|e| e.name.clone()).collect(),
                        placeholder: false,
                        list: None,
                        templates: Vec::new(),
                        input_templates: Vec::new(),
                    },
                );
                entries.extend(found);
            }
            (Some(f), None) => {
                let items = &f.get_ref().items;
                if !items.is_empty() && !items.starts_with('/') {
                    return Err(err(
                        f.span(),
                        &format!("`items` of task `{base}` is `{items}`, which is not a JSON pointer"),
                    )
                    .hint(format!("a JSON pointer starts with `/` (items = \"/{items}\"), or is empty for the whole document")));
                }
                let list = rundir::normalize(&f.get_ref().file).map_err(|m| {
                    err(f.span(), &format!("list file of task `{base}`: {m}"))
                        .hint("name the list file relative to the run directory, without `..`")
                })?;
                groups.insert(
                    base.clone(),
                    Group {
                        names: vec![base.clone()],
                        placeholder: true,
                        list: Some(list.clone()),
                        templates: task.outputs.iter().map(|o| o.get_ref().clone()).collect(),
                        input_templates: task.inputs.iter().map(|i| i.get_ref().clone()).collect(),
                    },
                );
                entries.push(Entry {
                    name: base.clone(),
                    name_span: name.span(),
                    def_name: base,
                    def: task,
                    vars: None,
                    placeholder: Some(list),
                });
            }
        }
    }
    Ok((entries, groups))
}

/// The entries of a fan-out's instances.
pub(super) fn instances<'a>(
    name: &'a Spanned<String>,
    def: &'a TaskDef,
    instances: Vec<Instance>,
) -> Vec<Entry<'a>> {
    let base = name.get_ref();
    instances
        .into_iter()
        .map(|instance| Entry {
            name: fanout::instance_name(base, &instance.key),
            name_span: name.span(),
            def_name: base,
            def,
            vars: Some(instance.vars),
            placeholder: None,
        })
        .collect()
}

/// Whether a task name is a plain identifier.
pub fn valid_task_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
