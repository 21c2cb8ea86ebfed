//! What `planexe watch` watches, computed from a loaded pipeline (with
//! targets, from the tasks their build wants, and the pipeline file): the
//! sources a build reads (inputs no task produces, the pipeline file,
//! prompt and schema files, `foreach` list files), the folders a glob
//! walks and the new files it would match, the declared outputs (so an
//! edit by hand is seen), and the folders holding them, watched
//! non-recursively so an editor's atomic save (a temporary file renamed
//! over the real one) is seen as a change to the real file. A source or
//! an output that is a symlink is watched with the files it leads to
//! ([`Links`]): a build stamps it through the link, so editing one of
//! those changes it (its event names that file, not the link). A file an
//! output leads to is the output's: the build may write it, and its change
//! counts as one of the output would.
//!
//! [`WatchSet::classify`] says what one event path means; it keeps the
//! invariant that only the exact paths of the set (and the folders on the
//! way to them, and new files a glob would match) ever count, and never
//! anything under `.planexe/`. A build writes only its outputs, the
//! folders on the way to them, and `.planexe/`: only outputs and those
//! folders (and the files an output leads to, with the folders on their
//! way) are [`Class::Written`]; a change to anything else is the
//! user's, whenever it comes (`rm -rf notes && mkdir notes` while a build
//! runs).

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::links::Links;
use crate::model::{Graph, Pipeline};
use crate::store::rundir::STATE_DIR;
use crate::store::stamp::lexical;

/// What a changed path is to the watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// What no build writes: a source the pipeline reads, a new file a
    /// glob would match, a folder a glob walks or one on the way to a
    /// source. Its change always counts, even when it comes while a build
    /// runs.
    Source,
    /// An output, or a folder on the way to one: counts only when no build
    /// is writing (a build writes outputs and makes their folders itself),
    /// or when it leaves an output otherwise than the build did.
    Written,
}

/// The paths one loaded pipeline makes the watch look at.
#[derive(Debug, Clone, Default)]
pub struct WatchSet {
    /// The run directory.
    root: PathBuf,
    /// Sources, absolute.
    sources: BTreeSet<PathBuf>,
    /// Declared outputs, absolute.
    outputs: BTreeSet<PathBuf>,
    /// The sources and outputs that are symlinks, and the files they lead
    /// through.
    links: Links,
    /// The folders the sources it was made with ask for: their parents,
    /// and those that were folders (a folder a glob walked, named as a
    /// source: its listing is what counts).
    named: BTreeSet<PathBuf>,
    /// Input glob patterns, relative to the run directory.
    globs: Option<GlobSet>,
    /// The folders a glob walks, absolute, whether they exist or not: what
    /// counts is what their globs match, and a build makes such a folder
    /// for its outputs (`per/` of `per/*.md` and of `per/{{ key }}.txt`).
    walked: BTreeSet<PathBuf>,
    /// The folders to watch, absolute, with every folder on the way to them
    /// (an event for one of those is a folder made or removed).
    folders: BTreeSet<PathBuf>,
    ancestors: BTreeSet<PathBuf>,
    /// The folders on the way to an output (or to a file an output leads
    /// to), absolute: a build makes them (`per/` of `per/{{ key }}.txt`,
    /// which a glob `per/*.md` may walk).
    made: BTreeSet<PathBuf>,
}

impl WatchSet {
    /// The watch set of a loaded pipeline in run directory `root`, for a
    /// build of the tasks `wanted` (by id; every task: `None`): their
    /// sources and outputs, and the pipeline file. A file only other
    /// tasks read is not watched: its change would build nothing wanted.
    pub fn of(
        root: &Path,
        graph: &Graph,
        pipeline: &Pipeline,
        wanted: Option<&[bool]>,
    ) -> WatchSet {
        let mut outputs = Vec::new();
        let mut sources = Vec::new();
        let mut templates = Vec::new();
        let tasks = graph
            .tasks()
            .filter(|t| wanted.is_none_or(|w| w.get(t.id).copied().unwrap_or(false)));
        for task in tasks {
            outputs.extend(task.outputs.iter().map(|o| o.path.clone()));
            sources.extend(
                task.inputs
                    .iter()
                    .filter(|i| i.producer.is_none())
                    .map(|i| i.path.clone()),
            );
            // A fan-out still waiting for its list (its expansion failed:
            // an item's input is missing): what its instances will read,
            // as patterns, so making the missing input is seen.
            if task.origin.placeholder.is_some() {
                templates.extend(instance_inputs(pipeline, &task.origin.def));
            }
        }
        let walked_templates: Vec<String> =
            templates.iter().filter_map(|t| glob_folder(t)).collect();
        sources.extend(templates);
        // The pipeline file, prompts, schemas, list files, what a glob
        // walked; a list file some task produces is an output.
        sources.extend(
            graph
                .source_paths_of(pipeline, wanted)
                .into_iter()
                .filter(|p| graph.producer(p).is_none()),
        );
        // What resolution looked at, but for glob patterns, is a folder a
        // glob walked (it may not exist yet).
        let walked = graph
            .watched(wanted)
            .filter(|p| !is_pattern(p))
            .map(str::to_string);
        WatchSet::new(root, sources, outputs).walking(walked.chain(walked_templates))
    }

    /// What a pipeline that parses but does not resolve makes the watch
    /// look at: every path its text names (the pipeline file, inputs,
    /// outputs, prompt and schema files, list files), so the change that
    /// fixes it is seen, most often the missing input made. A glob input
    /// is a pattern, and the folder before its first glob character a
    /// source. A fan-out's input (`data/{{ key }}.txt`) is a pattern too,
    /// each of its templates any name (`data/*.txt`): the input of an
    /// instance that does not exist yet (`data/d.txt`, for an item just
    /// added to the list) is one it matches.
    pub fn named(root: &Path, pipeline: &Pipeline) -> WatchSet {
        let mut sources = vec![pipeline.path.to_string_lossy().into_owned()];
        let mut outputs = Vec::new();
        let mut walked = Vec::new();
        for def in pipeline.def.tasks.values() {
            for input in &def.inputs {
                let input = any_instance(input.get_ref());
                walked.extend(glob_folder(&input));
                sources.push(input);
            }
            outputs.extend(def.outputs.iter().map(|o| o.get_ref().clone()));
            for rel in [&def.prompt_file, &def.schema].into_iter().flatten() {
                let path = pipeline.dir().join(rel.get_ref());
                sources.push(path.to_string_lossy().into_owned());
            }
            if let Some(foreach) = &def.foreach {
                sources.push(foreach.get_ref().file.clone());
            }
        }
        WatchSet::new(root, sources, outputs).walking(walked)
    }

    /// Only the pipeline file: what a watch looks at while the pipeline
    /// does not parse.
    pub fn pipeline_only(root: &Path, pipeline: &Path) -> WatchSet {
        WatchSet::new(root, [pipeline.to_string_lossy().into_owned()], [])
    }

    /// A set from paths relative to `root` (or absolute). Source entries
    /// with glob characters are patterns a new file may match.
    pub fn new(
        root: &Path,
        sources: impl IntoIterator<Item = String>,
        outputs: impl IntoIterator<Item = String>,
    ) -> WatchSet {
        let mut set = WatchSet {
            root: lexical(root),
            ..WatchSet::default()
        };
        let mut globs = GlobSetBuilder::new();
        let mut any_glob = false;
        for source in sources {
            if is_pattern(&source) {
                if let Ok(glob) = GlobBuilder::new(&source).literal_separator(true).build() {
                    globs.add(glob);
                    any_glob = true;
                }
                continue;
            }
            let path = set.absolute(&source);
            if path.is_dir() {
                set.named.insert(path.clone());
            }
            set.named.extend(path.parent().map(Path::to_path_buf));
            set.sources.insert(path);
        }
        for output in outputs {
            let path = set.absolute(&output);
            set.sources.remove(&path);
            set.outputs.insert(path);
        }
        set.globs = any_glob.then(|| globs.build().ok()).flatten();
        set.links = Links::of(set.sources.iter().chain(&set.outputs));
        set.derive();
        set
    }

    /// The set with `folders` (relative to the root, or absolute) as
    /// folders a glob walks: watched (through their nearest existing
    /// ancestor while they do not exist), and counted when made or
    /// removed, as folders are, not as files read (a poll sees a folder's
    /// times change when a file is made in it): such a file counts on its
    /// own. One on the way to an output is made by a build
    /// ([`Class::Written`]).
    pub fn walking(mut self, folders: impl IntoIterator<Item = String>) -> WatchSet {
        for folder in folders {
            let path = self.absolute(&folder);
            if self.outputs.contains(&path) {
                continue;
            }
            self.sources.remove(&path);
            self.walked.insert(path);
        }
        self.derive();
        self
    }

    /// The files the set's links lead through that are none of its own
    /// sources or outputs, each with whether it is written
    /// ([`WatchSet::written_hop`]: a file a build may write).
    fn hops(&self) -> impl Iterator<Item = (&PathBuf, bool)> {
        self.links
            .hops()
            .filter(|hop| !self.sources.contains(*hop) && !self.outputs.contains(*hop))
            .map(|hop| (hop, self.written_hop(hop)))
    }

    /// The folders to watch, those on the way to them, and those a build
    /// makes, from what the set names and where its links lead.
    fn derive(&mut self) {
        let written = (self.hops())
            .filter(|&(_, written)| written)
            .map(|(hop, _)| hop);
        self.made = (self.outputs.iter().chain(written))
            .flat_map(|o| o.ancestors().skip(1).map(Path::to_path_buf))
            .collect();
        let files = (self.outputs.iter()).chain(self.hops().map(|(hop, _)| hop));
        let parents = files.filter_map(|f| f.parent()).map(Path::to_path_buf);
        let folders: BTreeSet<PathBuf> = (self.named.iter().chain(&self.walked).cloned())
            .chain(parents)
            .collect();
        self.ancestors = (folders.iter())
            .flat_map(|f| f.ancestors().map(Path::to_path_buf))
            .collect();
        self.folders = folders;
    }

    /// Follows again the links an event for `path` may have re-pointed
    /// (its own, or those leading through it): `true` when the folders to
    /// watch may have changed.
    pub fn relink(&mut self, path: &Path) -> bool {
        let path = lexical(path);
        let watched = self.sources.contains(&path) || self.outputs.contains(&path);
        if !self.links.relink(&path, watched) {
            return false;
        }
        self.derive();
        true
    }

    /// The outputs whose symlinks lead to `path`: its change is theirs
    /// too, whatever else `path` is (another task's output, a source).
    pub fn outputs_through(&self, path: &Path) -> Vec<PathBuf> {
        let path = lexical(path);
        (self.links.led_from(&path))
            .filter(|p| self.outputs.contains(*p))
            .cloned()
            .collect()
    }

    /// Whether `path` is a file none but outputs' symlinks lead to, and
    /// nothing of the set itself: its change is theirs alone.
    pub fn is_outputs_own(&self, path: &Path) -> bool {
        let path = lexical(path);
        self.classify(&path) == Some(Class::Written)
            && !self.outputs.contains(&path)
            && self.links.led_from(&path).next().is_some()
    }

    fn absolute(&self, path: &str) -> PathBuf {
        lexical(&self.root.join(path))
    }

    /// The folders to watch, non-recursively.
    pub fn folders(&self) -> &BTreeSet<PathBuf> {
        &self.folders
    }

    /// Whether `path` is a folder to watch or one on the way to one.
    pub fn is_folder(&self, path: &Path) -> bool {
        self.ancestors.contains(&lexical(path))
    }

    /// Whether `path` is a declared output of the set.
    pub fn is_output(&self, path: &Path) -> bool {
        self.outputs.contains(&lexical(path))
    }

    /// How many files the set names (sources and outputs, and the files
    /// their links lead to; and the folders globs walk, which are read as
    /// files are).
    pub fn files(&self) -> usize {
        self.sources.len() + self.outputs.len() + self.hops().count() + self.walked.len()
    }

    /// What a change to `path` is to the watch; `None`: nothing it cares
    /// about (an editor's temporary file, planexe's own state, a file no
    /// task names).
    pub fn classify(&self, path: &Path) -> Option<Class> {
        let path = lexical(path);
        if self.in_state_dir(&path) || ignored_name(&path) {
            return None;
        }
        if self.sources.contains(&path) {
            return Some(Class::Source);
        }
        if self.outputs.contains(&path) || self.made.contains(&path) {
            return Some(Class::Written);
        }
        // A file a link leads to: an output's is written, unless a build
        // reads it too.
        if self.links.led_from(&path).next().is_some() {
            return Some(if self.written_hop(&path) {
                Class::Written
            } else {
                Class::Source
            });
        }
        if self.ancestors.contains(&path) || self.globbed(&path) {
            return Some(Class::Source);
        }
        None
    }

    /// Whether a file links lead to is written: only outputs lead to it,
    /// and no glob a build reads matches it.
    fn written_hop(&self, hop: &Path) -> bool {
        self.links.led_from(hop).all(|p| self.outputs.contains(p)) && !self.globbed(hop)
    }

    /// Whether an input glob matches `path`.
    fn globbed(&self, path: &Path) -> bool {
        self.globs.as_ref().is_some_and(|globs| {
            path.strip_prefix(&self.root)
                .is_ok_and(|rel| globs.is_match(rel))
        })
    }

    fn in_state_dir(&self, path: &Path) -> bool {
        path.strip_prefix(&self.root)
            .is_ok_and(|rel| rel.components().next() == Some(Component::Normal(STATE_DIR.as_ref())))
    }

    /// `path` as messages show it: relative to the run directory when it
    /// is inside; the run directory itself (removed, or made again) as
    /// its full path.
    pub fn show(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
            _ => path.display().to_string(),
        }
    }
}

/// Whether a path of the watch set is a glob pattern.
fn is_pattern(path: &str) -> bool {
    path.contains(['*', '?', '[', '{'])
}

/// The inputs of fan-out `def`'s instances that depend on their item, as
/// the patterns they match (`data/*.txt` of `data/{{ key }}.txt`).
fn instance_inputs(pipeline: &Pipeline, def: &str) -> Vec<String> {
    let Some((_, def)) = pipeline
        .def
        .tasks
        .iter()
        .find(|(name, _)| name.get_ref() == def)
    else {
        return Vec::new();
    };
    (def.inputs.iter())
        .map(|input| any_instance(input.get_ref()))
        .filter(|input| is_pattern(input))
        .collect()
}

/// A path with templates (`data/{{ key }}.txt`, a fan-out's) as the
/// glob pattern its instances' paths match (`data/*.txt`); a path without
/// one as it is.
fn any_instance(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(at) = rest.find('{') {
        let close = match &rest[at..] {
            r if r.starts_with("{{") => "}}",
            r if r.starts_with("{%") => "%}",
            _ => {
                out.push_str(&rest[..=at]);
                rest = &rest[at + 1..];
                continue;
            }
        };
        let Some(end) = rest[at + 2..].find(close) else {
            break;
        };
        out.push_str(&rest[..at]);
        if !out.ends_with('*') {
            out.push('*');
        }
        rest = &rest[at + 2 + end + 2..];
    }
    out.push_str(rest);
    out
}

/// The folder a glob pattern walks: its part before the first component
/// with a glob character (`notes` of `notes/*.md`); `None` for a plain
/// path or a pattern that starts with one.
fn glob_folder(pattern: &str) -> Option<String> {
    let parts: Vec<&str> = pattern.split('/').collect();
    let first = parts
        .iter()
        .position(|p| p.contains(['*', '?', '[', '{']))?;
    (first > 0).then(|| parts[..first].join("/"))
}

/// Files no build reads and no user means: planexe's own temporaries and
/// editors' swap, backup and probe files (vim writes `4913` to test a
/// folder).
pub fn ignored_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.starts_with(crate::store::files::TEMP_PREFIX)
        || name.starts_with(".#")
        || name.ends_with('~')
        || [".swp", ".swx", ".swo"].iter().any(|s| name.ends_with(s))
        || name == "4913"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> WatchSet {
        WatchSet::new(
            Path::new("/run"),
            [
                "plan.txt".to_string(),
                "/pipes/pipeline.toml".to_string(),
                "/pipes/sub/../prompts/a.txt".to_string(),
                "notes/*.md".to_string(),
            ],
            ["out/outline.md".to_string()],
        )
    }

    /// What a build writes is its outputs and the folders on the way to
    /// them, nothing else: a new file a glob matches, and a folder a glob
    /// walks that holds no output, are the user's (`rm -rf notes && mkdir
    /// notes` while a build runs).
    #[test]
    fn sources_count_always_and_outputs_only_as_written() {
        let set = set().walking(["notes".to_string(), "out".to_string()]);
        assert_eq!(
            set.classify(Path::new("/run/plan.txt")),
            Some(Class::Source)
        );
        assert_eq!(
            set.classify(Path::new("/pipes/prompts/a.txt")),
            Some(Class::Source)
        );
        assert_eq!(
            set.classify(Path::new("/run/./out/outline.md")),
            Some(Class::Written)
        );
        assert_eq!(set.classify(Path::new("/run/out")), Some(Class::Written));
        assert_eq!(set.classify(Path::new("/run")), Some(Class::Written));
        assert_eq!(
            set.classify(Path::new("/run/notes/new.md")),
            Some(Class::Source)
        );
        assert_eq!(set.classify(Path::new("/run/notes")), Some(Class::Source));
        assert_eq!(set.classify(Path::new("/pipes")), Some(Class::Source));
        assert_eq!(set.classify(Path::new("/run/notes/new.txt")), None);
        assert_eq!(set.classify(Path::new("/run/other.txt")), None);
    }

    #[test]
    fn temporaries_swap_files_and_state_never_count() {
        let set = set();
        for path in [
            "/run/.planexe-tmp-12-plan.txt",
            "/run/.plan.txt.swp",
            "/run/plan.txt~",
            "/run/4913",
            "/run/.planexe/log",
            "/run/.planexe",
        ] {
            assert_eq!(set.classify(Path::new(path)), None, "{path}");
        }
    }

    /// A file an output's link leads to is written (a change to it is the
    /// output's), and so are the folders on its way; one a source's link
    /// leads to is read, even when an output's leads there too.
    #[test]
    fn files_links_lead_to_are_their_outputs_or_sources() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("store/deep")).unwrap();
        std::os::unix::fs::symlink("store/deep/real.txt", root.join("out.txt")).unwrap();
        std::os::unix::fs::symlink("store/plan.txt", root.join("plan.txt")).unwrap();
        std::os::unix::fs::symlink("store/plan.txt", root.join("copy.txt")).unwrap();
        let set = WatchSet::new(
            root,
            ["plan.txt".to_string()],
            ["out.txt".to_string(), "copy.txt".to_string()],
        );
        let real = root.join("store/deep/real.txt");
        assert_eq!(set.classify(&real), Some(Class::Written));
        assert_eq!(set.outputs_through(&real), [root.join("out.txt")]);
        assert!(set.is_outputs_own(&real));
        assert_eq!(set.classify(&root.join("store/deep")), Some(Class::Written));
        let plan = root.join("store/plan.txt");
        assert_eq!(set.classify(&plan), Some(Class::Source));
        // An output's link leads there too: its change is that output's
        // as well as a source's.
        assert_eq!(set.outputs_through(&plan), [root.join("copy.txt")]);
        assert!(!set.is_outputs_own(&plan));
        assert!(set.outputs_through(&root.join("out.txt")).is_empty());
        assert!(!set.is_outputs_own(&root.join("out.txt")));
        assert!(set.folders().contains(&root.join("store/deep")));
        assert_eq!(set.files(), 5);
        // A glob a build reads matches it: read.
        let globbed = WatchSet::new(
            root,
            ["store/deep/*.txt".to_string()],
            ["out.txt".to_string()],
        );
        assert_eq!(globbed.classify(&real), Some(Class::Source));
        assert!(!globbed.is_outputs_own(&real));
    }

    #[test]
    fn a_fan_outs_template_matches_any_instance() {
        assert_eq!(any_instance("data/{{ key }}.txt"), "data/*.txt");
        assert_eq!(any_instance("{{ a }}/{{b}}-{{ c }}.md"), "*/*-*.md");
        assert_eq!(any_instance("x/{% if a %}y{% endif %}.md"), "x/*y*.md");
        assert_eq!(any_instance("notes/{a,b}.md"), "notes/{a,b}.md");
        assert_eq!(any_instance("plan.txt"), "plan.txt");
        assert_eq!(any_instance("odd/{{ open.txt"), "odd/{{ open.txt");
    }

    #[test]
    fn a_glob_walks_the_folder_before_its_first_glob_character() {
        assert_eq!(glob_folder("notes/*.md").as_deref(), Some("notes"));
        assert_eq!(glob_folder("a/b/**/c?.md").as_deref(), Some("a/b"));
        assert_eq!(glob_folder("*.md"), None);
        assert_eq!(glob_folder("plan.txt"), None);
    }

    #[test]
    fn folders_are_the_parents_of_what_is_watched() {
        let folders: Vec<String> = set()
            .folders()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(folders, ["/pipes", "/pipes/prompts", "/run", "/run/out"]);
    }
}
