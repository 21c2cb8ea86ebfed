//! What a new certificate lists: every path the verdict "all up to date"
//! depends on, each stamped now. Two ways to get there:
//!
//! - [`collect`], the full way: every task's record is checked (done with
//!   its current definition, its `.DONE` marker there, every record of a
//!   task file saying the same of it) and every path is statted.
//! - [`collect_from`], after a build that checked only the tasks the last
//!   certificate's changes reached: the entries that certificate's judge
//!   found the same, for paths no task of this build touched, are taken as
//!   they were (nothing else changed them: the build held the lock, and a
//!   change made meanwhile shows at the next judge, which compares with
//!   the stat taken before); only the rest are checked and statted. What
//!   it cannot vouch for that way sends the caller to the full way.

use std::hash::BuildHasher;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rayon::prelude::*;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::stat::{file_id_on, Folders, LINK};
use super::{path_of, AsRead, Entry, Young, LOG};
use crate::model::{Graph, Pipeline, Task, TaskId};
use crate::store::rundir::{file, state_rel, status_rel};
use crate::store::stamp::{self, Meta, Stamp, Vouch};
use crate::store::{RunDir, StateStore};

/// The certificate a build judged, and which of its entries it found the
/// same (by index): what [`collect_from`] starts from.
#[derive(Debug)]
pub struct Base {
    pub(super) entries: Vec<Entry>,
    pub(super) same: Vec<bool>,
    /// When the judge began to stat them.
    pub(super) at: Instant,
}

impl Base {
    /// The stats the judge made of the task files it found as the
    /// certificate recorded them, and when it began: what a build's
    /// [`Stamper::vouched`](crate::store::Stamper::vouched) starts from.
    /// Looked up by path through an index made at the first question (by
    /// the path's hash: a path whose hash another took first is not
    /// vouched, and is statted).
    pub fn vouch(base: &Arc<Base>) -> (Vouch, Instant) {
        let at = base.at;
        let base = Arc::clone(base);
        let index: OnceLock<HashMap<u64, usize>> = OnceLock::new();
        let hash = |path: &str| rustc_hash::FxBuildHasher.hash_one(path);
        let vouch = move |rel: &str| -> Option<Meta> {
            let index = index.get_or_init(|| {
                let mut index = HashMap::default();
                for (i, e) in base.entries.iter().enumerate() {
                    if base.same[i] && e.task && e.id.kind == 1 {
                        index.entry(hash(&e.path)).or_insert(i);
                    }
                }
                index
            });
            let e = &base.entries[*index.get(&hash(rel))?];
            (e.path == rel).then_some(Meta {
                size: e.id.size,
                mtime_ns: e.id.mtime_ns,
            })
        };
        (Box::new(vouch), at)
    }
}

/// planexe's own files a certificate lists: every build changes them.
fn state_files() -> [String; 4] {
    [file::LOG, file::TASKS, file::RUN, file::PIPELINE].map(state_rel)
}

/// The paths a certificate of `graph` lists besides task files: the
/// pipeline's sources, outputs of tasks it no longer defines (a build
/// warns about those on disk, so one appearing must lead to the full
/// check), planexe's state files and each task's sidecar (one damaged in
/// place, its folder unchanged, must lead to the full check, which
/// repairs it).
fn owned_paths(pipeline: &Pipeline, graph: &Graph, store: &StateStore) -> Vec<String> {
    let mut owned: Vec<String> = graph.source_paths(pipeline);
    for (name, record) in store.records() {
        if graph.task(name).is_none() {
            owned.extend(record.done.iter().flat_map(|d| d.outputs.keys().cloned()));
        }
    }
    owned.extend(state_files());
    owned.extend(graph.tasks().map(|t| status_rel(&t.name)));
    owned
}

/// Checks the records of `tasks` and gathers the stamps of their files:
/// `None` when one is not done with its current definition, has no
/// `.DONE`, is known only from its sidecar (it could change without any
/// stat a certificate holds), or two records say different things of one
/// file.
fn recorded_stamps<'a>(
    run_dir: &RunDir,
    graph: &'a Graph,
    store: &'a StateStore,
    tasks: impl Iterator<Item = TaskId>,
) -> Option<HashMap<&'a str, &'a Stamp>> {
    let mut stamps: HashMap<&str, &Stamp> = HashMap::default();
    for id in tasks {
        let task = &graph[id];
        let record = store.record(&task.name)?;
        let done = record.done.as_ref()?;
        if record.last.is_some()
            || done.fingerprint != task.fingerprint
            || !store.has_marker(run_dir, &task.name)
        {
            return None;
        }
        let outputs = task.outputs.iter().map(|o| (&o.path, &done.outputs));
        let inputs = task.inputs.iter().map(|i| (&i.path, &done.inputs));
        for (path, recorded) in outputs.chain(inputs) {
            let stamp = recorded.get(path)?;
            match stamps.entry(path.as_str()) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(stamp);
                }
                std::collections::hash_map::Entry::Occupied(o) if *o.get() != stamp => return None,
                std::collections::hash_map::Entry::Occupied(_) => {}
            }
        }
    }
    Some(stamps)
}

/// Every path a certificate of `graph` lists, once, with whether it is a
/// task file: the files of `owned` outside `.planexe/` (the pipeline file,
/// prompt and schema files), then the sources (task inputs no task makes),
/// then planexe's own files (the state files, a sidecar per task), then the
/// other task files in task order, then every folder on the way to a
/// run-directory path (replaced by a symlink, it could lead out of the run
/// directory with every file below it unchanged, which the full check
/// refuses). What users edit comes first: the judge looks at entries from
/// the first on, and tells of the first change it can follow at once, so a
/// build can begin opening its session.
fn listed<'a>(owned: &'a [String], graph: &'a Graph) -> Vec<(&'a str, bool)> {
    let mut sources: Vec<&str> = Vec::new();
    let mut made: Vec<&str> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::default();
    for task in graph.tasks() {
        let outputs = task.outputs.iter().map(|o| (o.path.as_str(), false));
        let inputs = task
            .inputs
            .iter()
            .map(|i| (i.path.as_str(), i.producer.is_none()));
        for (path, source) in outputs.chain(inputs) {
            if seen.insert(path) {
                if source { &mut sources } else { &mut made }.push(path);
            }
        }
    }
    let mut entries: Vec<(&str, bool)> = Vec::new();
    let mut listed: HashSet<&str> = HashSet::default();
    let (state, edited): (Vec<&String>, Vec<&String>) =
        owned.iter().partition(|p| p.starts_with(".planexe/"));
    let owned = |paths: Vec<&'a String>| {
        paths
            .into_iter()
            .map(String::as_str)
            .filter(|p| !seen.contains(p))
            .map(|p| (p, false))
    };
    let files = owned(edited)
        .chain(sources.into_iter().map(|p| (p, true)))
        .chain(owned(state))
        .chain(made.into_iter().map(|p| (p, true)));
    for (path, task) in files {
        if listed.insert(path) {
            entries.push((path, task));
        }
    }
    let mut folders: Vec<(&str, bool)> = Vec::new();
    for &(path, _) in &entries {
        if path.starts_with('/') || path.starts_with(".planexe/") {
            continue;
        }
        let mut folder = path;
        while let Some((parent, _)) = folder.rsplit_once('/') {
            if listed.insert(parent) {
                folders.push((parent, false));
            }
            folder = parent;
        }
    }
    entries.extend(folders);
    entries
}

/// Stats `path` now and makes its entry (see [`Entry`]); `None` when a
/// task file is not what its record says, or the path cannot be statted.
fn entry_now(
    run_dir: &RunDir,
    folders: &Folders,
    path: &str,
    stamp: Option<&Stamp>,
    young: &Young,
) -> Option<Entry> {
    let full = path_of(run_dir, path);
    let (id, dev) = if path.starts_with('/') {
        file_id_on(&full, true)
    } else {
        // planexe's own files are never followed through a symlink.
        folders.stat_on(run_dir, path, !path.starts_with(".planexe/"))
    }
    .ok()?;
    if id.kind == LINK {
        // A symlink: the link itself, what it leads to listed after it
        // ([`follow_links`]). Young, it is vouched for by the path it holds.
        let racy = young.holds(&id, dev);
        return Some(Entry {
            path: path.to_string(),
            id,
            hash: if racy {
                Some(content_hash(&full, LINK)?)
            } else {
                None
            },
            task: false,
            racy,
        });
    }
    let racy = path != LOG.as_str() && young.holds(&id, dev);
    let hash = if let Some(stamp) = stamp {
        if id.kind != 1 || id.size != stamp.size || id.mtime_ns != stamp.mtime_ns {
            return None;
        }
        Some(stamp.blake3.clone())
    } else if racy {
        // Young: vouched for by its content from now on.
        Some(content_hash(&full, id.kind)?)
    } else {
        None
    };
    Some(Entry {
        path: path.to_string(),
        id,
        hash,
        task: stamp.is_some(),
        racy,
    })
}

/// Every path the verdict depended on, stamped now; `None` when a
/// certificate must not be written: a task not done with its current
/// definition, or a task file that differs from what a record says of it.
pub(super) fn collect(
    run_dir: &RunDir,
    pipeline: &Pipeline,
    graph: &Graph,
    store: &StateStore,
    read: &AsRead,
) -> Option<Vec<Entry>> {
    let young = Young::now(run_dir);
    let owned = owned_paths(pipeline, graph, store);
    // Every record of a task file must say the same of it, and (checked
    // below) what the file is now: then the full check finds every task
    // up to date without reading a byte.
    let stamps = recorded_stamps(run_dir, graph, store, graph.ids().iter().copied())?;
    let listed = listed(&owned, graph);
    let folders = Folders::open(run_dir, listed.iter().map(|&(p, _)| p));
    let mut entries: Vec<Entry> = listed
        .par_iter()
        .map(|&(path, task)| {
            let stamp = if task { Some(*stamps.get(path)?) } else { None };
            entry_now(run_dir, &folders, path, stamp, &young)
        })
        .collect::<Option<_>>()?;
    follow_links(run_dir, &folders, graph, store, &young, &mut entries)?;
    (!read.changed(run_dir, graph, &entries)).then_some(entries)
}

/// Lists, after each path `entries` holds as a symlink ([`LINK`]), what it
/// leads to, in the run directory (outside `.planexe/`, not another
/// symlink): for a task file, a regular file, as every record of the link
/// says; for any other path (a `foreach` list, a folder on the way to a
/// task file), a file or a folder. And each folder on the way to it. None
/// of them is a task file to the judge: a link changed, or the file it
/// leads to, sends the next build to the full check, which resolves the
/// link again (and refuses one that leads out of the run directory); a
/// folder it leads to is judged as any folder of the run. `None` when a
/// link leads anywhere else.
fn follow_links(
    run_dir: &RunDir,
    folders: &Folders,
    graph: &Graph,
    store: &StateStore,
    young: &Young,
    entries: &mut Vec<Entry>,
) -> Option<()> {
    let links: Vec<String> = entries
        .iter()
        .filter(|e| e.id.kind == LINK)
        .map(|e| e.path.clone())
        .collect();
    let names = |task: &Task, path: &str| {
        task.inputs.iter().any(|i| i.path == path) || task.outputs.iter().any(|o| o.path == path)
    };
    for link in links {
        let tasks: Vec<TaskId> = graph
            .ids()
            .iter()
            .copied()
            .filter(|&t| names(&graph[t], &link))
            .collect();
        let target = link_target(run_dir, &link)?;
        let mut entry = if tasks.is_empty() {
            let entry = entry_now(run_dir, folders, &target, None, young)?;
            if entry.id.kind != 1 && entry.id.kind != 2 {
                return None;
            }
            entry
        } else {
            let stamps = recorded_stamps(run_dir, graph, store, tasks.into_iter())?;
            let stamp = *stamps.get(link.as_str())?;
            let entry = entry_now(run_dir, folders, &target, Some(stamp), young)?;
            if entry.id.kind != 1 {
                return None;
            }
            entry
        };
        entry.task = false;
        entries.push(entry);
        let mut folder = target.as_str();
        while let Some((parent, _)) = folder.rsplit_once('/') {
            let entry = entry_now(run_dir, folders, parent, None, young)?;
            if entry.id.kind != 2 {
                return None;
            }
            entries.push(entry);
            folder = parent;
        }
    }
    Some(())
}

/// The run-directory path of the file the symlink `link` leads to,
/// spelled plainly (no `.` or `..` parts): `None` when it leads out of the
/// run directory or into `.planexe/`, or the plain spelling is not the
/// file the kernel finds through the link (a `..` after a folder that is
/// itself a symlink).
pub(super) fn link_target(run_dir: &RunDir, link: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let full = run_dir.path(link);
    let held = std::fs::read_link(&full).ok()?;
    let held = held.to_str()?;
    let (mut parts, rest): (Vec<&str>, &str) = match held.strip_prefix('/') {
        Some(_) => {
            let rest = held.strip_prefix(run_dir.root().to_str()?)?;
            if !rest.is_empty() && !rest.starts_with('/') {
                return None;
            }
            (Vec::new(), rest)
        }
        None => (
            link.rsplit_once('/')
                .map_or_else(Vec::new, |(dir, _)| dir.split('/').collect()),
            held,
        ),
    };
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    let target = parts.join("/");
    if target.is_empty() || parts.first() == Some(&".planexe") {
        return None;
    }
    let through = std::fs::metadata(&full).ok()?;
    let plain = std::fs::symlink_metadata(run_dir.path(&target)).ok()?;
    (through.dev() == plain.dev() && through.ino() == plain.ino()).then_some(target)
}

/// [`collect`] for a build that checked only some tasks (`rechecked`, by
/// id: those the certificate's changes reached and those the build ran),
/// from the certificate it judged: see the module. `None` when it cannot
/// vouch for the run that way (the caller then tries [`collect`]).
pub(super) fn collect_from(
    run_dir: &RunDir,
    pipeline: &Pipeline,
    graph: &Graph,
    store: &StateStore,
    base: &Base,
    rechecked: &[bool],
    read: &AsRead,
) -> Option<Vec<Entry>> {
    let young = Young::now(run_dir);
    let t = crate::phases::phase("certificate: from base: sets");
    // The files the rechecked tasks may have written: their outputs. A file
    // they only read kept its entry when the judge found it the same: had
    // it changed since, the next judge compares it with the stat taken
    // before, and sees it.
    let mut touched: Vec<bool> = (0..graph.id_bound())
        .map(|t| rechecked.get(t).copied().unwrap_or(false))
        .collect();
    let ids = graph.ids();
    let files: HashSet<&str> = ids
        .iter()
        .filter(|&&t| touched[t])
        .flat_map(|&t| graph[t].outputs.iter().map(|o| o.path.as_str()))
        .collect();
    // Every task that reads one of them: a reader of an output rewritten
    // with the same bytes is not run again, but its record of the file
    // must still agree (and a restamp rewrote its sidecar).
    for &t in ids {
        if !touched[t]
            && graph[t]
                .inputs
                .iter()
                .any(|i| files.contains(i.path.as_str()))
        {
            touched[t] = true;
        }
    }
    let stamps = recorded_stamps(
        run_dir,
        graph,
        store,
        ids.iter().copied().filter(|&t| touched[t]),
    )?;
    // What this build may have changed: those files and the folders on
    // the way to them, the touched tasks' sidecars, planexe's own files.
    let mut changed: HashSet<String> = HashSet::default();
    for &path in &files {
        let mut folder = path;
        while let Some((parent, _)) = folder.rsplit_once('/') {
            changed.insert(parent.to_string());
            folder = parent;
        }
    }
    changed.extend(
        ids.iter()
            .filter(|&&t| touched[t])
            .map(|&t| status_rel(&graph[t].name)),
    );
    changed.extend(state_files());
    let unchanged = |path: &str| !files.contains(path) && !changed.contains(path);
    let kept: HashMap<&str, &Entry> = base
        .entries
        .iter()
        .zip(&base.same)
        .filter(|(e, &same)| same && unchanged(&e.path))
        .map(|(e, _)| (e.path.as_str(), e))
        .collect();
    drop(t);
    let _t = crate::phases::phase("certificate: from base: entries");
    let t = crate::phases::phase("certificate: from base: listed");
    let owned = owned_paths(pipeline, graph, store);
    let listed = listed(&owned, graph);
    drop(t);
    let fresh = |path: &str, task: bool| kept.get(path).is_none_or(|e| e.task != task);
    let t = crate::phases::phase("certificate: from base: folders");
    let folders = Folders::open(
        run_dir,
        listed
            .iter()
            .filter(|&&(p, t)| fresh(p, t))
            .map(|&(p, _)| p),
    );
    drop(t);
    let _t2 = crate::phases::phase("certificate: from base: stamp");
    let mut entries: Vec<Entry> = listed
        .par_iter()
        .map(|&(path, task)| match kept.get(path) {
            Some(e) if e.task == task || (task && e.id.kind == LINK) => Some((*e).clone()),
            _ => {
                let stamp = if task { Some(*stamps.get(path)?) } else { None };
                entry_now(run_dir, &folders, path, stamp, &young)
            }
        })
        .collect::<Option<_>>()?;
    follow_links(run_dir, &folders, graph, store, &young, &mut entries)?;
    // An entry kept from the base holds the stat its judge found before
    // the session read anything: had the path changed since, the next
    // judge sees it; one statted now must be as the session read it.
    (!read.changed(run_dir, graph, &entries)).then_some(entries)
}

/// What a path holds, for comparing when its stat moved: a file's blake3,
/// a folder's sorted list of names, the blake3 of the path a symlink
/// holds. `None` for anything else.
pub(super) fn content_hash(path: &Path, kind: u8) -> Option<String> {
    match kind {
        1 => stamp::hash_file(path).ok(),
        LINK => {
            let held = std::fs::read_link(path).ok()?;
            Some(
                blake3::hash(held.as_os_str().as_encoded_bytes())
                    .to_hex()
                    .to_string(),
            )
        }
        2 => {
            let names: Vec<Vec<u8>> = std::fs::read_dir(path)
                .ok()?
                .map(|e| e.map(|e| e.file_name().into_encoded_bytes()))
                .collect::<std::io::Result<_>>()
                .ok()?;
            Some(stamp::names_hash(names))
        }
        _ => None,
    }
}
