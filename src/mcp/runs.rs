//! The root and the runs in it. A run is a folder directly under the root
//! with a `.planexe/` folder, addressed by its name alone: a plain name
//! (letters, digits, `.`, `_`, `-`, not starting with `.` or `-`), never a
//! path, so nothing a client names leads outside the root. A run folder
//! that is a symlink is refused. (Which pipeline files the server takes:
//! [`super::pipelines`].)
//!
//! Making a run ([`Root::create`]) is [`new_run::create`] with a name
//! chosen here, and idempotent: a run made less than [`IDEMPOTENT_FOR`]
//! ago for the same pipeline and the same files, whose `plan.txt` still
//! holds the same plan, is returned instead of making another. Listing ([`Root::list`]) reads
//! each run's origin, run record and archive marker, newest first.
//!
//! A client cannot pass `-f`: a run keeps the pipeline it was made with,
//! and [`ADVICE`](super::advice::ADVICE) says what to do about one that cannot be used in the
//! terms of the tools (`run_create`'s `pipeline`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::advice::ADVICE;
use super::seeds::{self, holds};
use crate::error::{Error, Result};
use crate::exec::new_run::{self, Seed, PLAN};
use crate::model::Lists;
use crate::observe::status::run_state;
use crate::plan::session::{Location, ModelChoice};
use crate::plan::Session;
use crate::store::archive::Archived;
use crate::store::origin::Origin;
use crate::store::run_record::{self, Counts, RunRecord};
use crate::store::rundir::{holds_run, STATE_DIR};
use crate::store::{files, wrong_kind, RunDir};

/// How long `run_create` returns the run it made for the same plan and
/// pipeline instead of making another.
pub const IDEMPOTENT_FOR: Duration = Duration::from_secs(10 * 60);

/// The largest plan `run_create` takes, in bytes.
pub const MAX_PLAN_BYTES: usize = 1 << 20;

/// The longest run name.
const MAX_NAME: usize = super::limits::RUN_NAME_MAX_BYTES;

/// The folder runs live in.
#[derive(Debug, Clone)]
pub struct Root {
    /// Canonical.
    dir: PathBuf,
}

/// A run made, or found made a moment ago, by [`Root::create`].
pub struct Created {
    pub name: String,
    /// Whether this call made it.
    pub made: bool,
    pub run_dir: PathBuf,
    pub pipeline: String,
    pub created_at: String,
    /// Where the results will be: the outputs no task reads.
    pub results: Vec<String>,
    pub warnings: Vec<String>,
}

/// One run, as `runs` lists it.
#[derive(Debug, serde::Serialize)]
pub struct Listed {
    pub run: String,
    pub state: &'static str,
    pub created_at: Option<String>,
    pub last_build_started_at: Option<String>,
    pub last_build_finished_at: Option<String>,
    pub archived: bool,
    pub archived_at: Option<String>,
    pub counts: Option<Counts>,
    /// The first line of its plan, shortened.
    pub plan: Option<String>,
}

/// What the maker of the run `name` of `session` (its pipeline `shown` as
/// the maker named it), given `seeds`, should know, whether its call made
/// the run or found it made by an earlier one: that no task reads its plan
/// or one of the files, and each replay model its tasks ask.
fn creation_warnings(session: &Session, shown: &str, name: &str, seeds: &[Seed]) -> Vec<String> {
    let mut warnings = Vec::new();
    if !new_run::reads_plan(session) {
        warnings.push(format!(
            "no task of {shown} reads {PLAN}; a run's tasks take their plan from {PLAN} in the run \
             directory (inputs = [\"{PLAN}\"])"
        ));
    }
    for seed in seeds.iter().filter(|s| !new_run::reads(session, &s.path)) {
        let path = &seed.path;
        warnings.push(format!(
            "no task of {shown} reads {path} (given in `files`): a task reads the files its \
             inputs name"
        ));
    }
    // A replay model's answers were recorded for another plan: the first
    // build misses them unless it asks the live model.
    warnings.extend(new_run::replay_notes(session, name));
    warnings
}

/// Refuses a run name that is not a plain folder name.
pub fn check_name(name: &str) -> Result<()> {
    let refuse = |why: &str| {
        Error::usage(format!(
            "`{}` is not a run name: {why}",
            super::limits::quoted(name)
        ))
        .hint("name a run by its folder name alone, as run_create and runs return it")
    };
    if name.is_empty() {
        return Err(refuse("it is empty"));
    }
    if name.len() > MAX_NAME {
        return Err(refuse(&format!("it is longer than {MAX_NAME} bytes")));
    }
    if name == "." || name == ".." {
        return Err(refuse(
            "it names the root or the folder above it, not a run",
        ));
    }
    if name.contains('/') || name.contains('\\') {
        return Err(refuse(
            "it is a path; runs are folders directly under the root",
        ));
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err(refuse("it starts with '.' or '-'"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(refuse(&format!(
            "it holds {c:?}; use letters, digits, '.', '_' and '-'"
        )));
    }
    Ok(())
}

impl Root {
    /// The root at `dir`, which must be an existing folder.
    pub fn open(dir: &Path) -> Result<Root> {
        // The OS's words alone ("failed to canonicalize path ...: No such
        // file or directory (os error 2)") repeat the path and say nothing
        // of what to do.
        let canonical = std::fs::canonicalize(dir).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "it does not exist".to_string(),
                _ => wrong_kind::why(dir, dir, &e),
            };
            Error::usage(format!("cannot serve runs from {}: {why}", dir.display()))
                .hint("pass an existing folder to --root (make it first, with mkdir -p)")
        })?;
        if !canonical.is_dir() {
            return Err(Error::usage(format!(
                "cannot serve runs from {}: it is not a folder",
                dir.display()
            ))
            .hint("pass an existing folder to --root"));
        }
        Ok(Root { dir: canonical })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The folder of the run `name`: a real folder directly under the
    /// root, with a `.planexe/` folder.
    pub fn run(&self, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        let path = self.dir.join(name);
        let not_a_run = |why: &str| {
            Error::usage(format!(
                "no run `{name}` under {}: {why}",
                self.dir.display()
            ))
            .hint("runs lists the runs; run_create makes one")
        };
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(not_a_run("there is no such folder"))
            }
            Err(e) => return Err(Error::io_at(&path, e)),
        };
        if meta.file_type().is_symlink() {
            return Err(not_a_run(
                "it is a symlink; runs are real folders inside the root",
            ));
        }
        if !meta.is_dir() {
            return Err(not_a_run("it is not a folder"));
        }
        if !std::fs::symlink_metadata(path.join(STATE_DIR)).is_ok_and(|m| m.is_dir()) {
            return Err(not_a_run(&format!(
                "it has no {STATE_DIR} folder, so it is not a run"
            )));
        }
        Ok(path)
    }

    /// Makes a run seeded with `plan` for `pipeline` (a canonical path and
    /// how to show it), named `name` or a name made from the time and the
    /// plan; or returns the run an earlier call made for the same plan and
    /// pipeline (see [`IDEMPOTENT_FOR`]). The caller serializes calls.
    pub fn create(
        &self,
        plan: &str,
        seeds: &[Seed],
        pipeline: (PathBuf, String),
        name: Option<&str>,
    ) -> Result<Created> {
        let plan = plan_bytes(plan)?;
        if let Some(name) = name {
            check_name(name)?;
        }
        // As `.planexe/pipeline` records it: canonical.
        let recorded = std::fs::canonicalize(&pipeline.0)
            .unwrap_or_else(|_| pipeline.0.clone())
            .to_string_lossy()
            .into_owned();
        let candidates: Vec<String> = match name {
            Some(name) => vec![name.to_string()],
            None => self.names(),
        };
        let mut recent: Vec<(String, Origin)> = candidates
            .into_iter()
            .filter_map(|n| {
                let origin = self.recent_origin(&n, &recorded, &plan, seeds)?;
                Some((n, origin))
            })
            .collect();
        let time = |o: &Origin| o.created_at.parse::<jiff::Timestamp>().ok();
        recent.sort_by_key(|(_, o)| std::cmp::Reverse(time(o)));
        if let Some((found, origin)) = recent.into_iter().next() {
            return Ok(self.found(found, origin, seeds));
        }
        let name = match name {
            Some(name) => {
                self.check_taken(name)?;
                name.to_string()
            }
            None => self.fresh_name(&String::from_utf8_lossy(&plan)),
        };
        let run_dir = self.dir.join(&name);
        let session = new_run::create(&run_dir, &name, &plan, seeds, pipeline, ADVICE)?;
        let warnings = creation_warnings(&session, &session.pipeline.display, &name, seeds);
        let created_at = Origin::load(&session.run_dir)
            .map(|o| o.created_at)
            .unwrap_or_default();
        Ok(Created {
            name,
            made: true,
            run_dir: session.run_dir.root().to_path_buf(),
            pipeline: session.pipeline.display.clone(),
            created_at,
            results: session.graph.results(),
            warnings,
        })
    }

    /// Refuses the name of a new run where a run is (not the one an
    /// earlier call made: `create` returned that), or a file or a link. A
    /// folder with no run is [`new_run::create`]'s to judge: it makes the
    /// run in an empty one, else says what the folder holds.
    fn check_taken(&self, name: &str) -> Result<()> {
        let path = self.dir.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            return Ok(());
        };
        if !meta.is_dir() {
            let what = if meta.file_type().is_symlink() {
                "a symlink"
            } else if meta.is_file() {
                "a file"
            } else {
                "a special file (a FIFO, a socket or a device)"
            };
            return Err(Error::usage(format!(
                "the name `{name}` is taken: {what} of that name is under the root, not a folder, so no run can be made there"
            ))
            .hint("choose another name, or leave name out for a fresh one"));
        }
        if !holds_run(&path) {
            return Ok(());
        }
        let made = match RunDir::open(&path).ok().and_then(|r| Origin::load(&r)) {
            Some(_) => format!(
                "made for another plan, files or pipeline (or more than {} minutes ago)",
                IDEMPOTENT_FOR.as_secs() / 60
            ),
            None => "made by a build in its folder, not by run_create".to_string(),
        };
        Err(Error::usage(format!("a run `{name}` already exists, {made}")).hint(
            "choose another name, or leave name out for a fresh one; build resumes an existing run",
        ))
    }

    /// The origin of run `name` when it was made less than
    /// [`IDEMPOTENT_FOR`] ago for `pipeline`, its `plan.txt` still holds
    /// `plan`, and it was given `seeds` exactly ([`seeds::same_files`]).
    fn recent_origin(
        &self,
        name: &str,
        pipeline: &str,
        plan: &[u8],
        seeds: &[Seed],
    ) -> Option<Origin> {
        let run_dir = RunDir::open(&self.run(name).ok()?).ok()?;
        let origin = Origin::load(&run_dir)?;
        let age = crate::clock::since(&origin.created_at)?;
        if age >= IDEMPOTENT_FOR || origin.pipeline != pipeline {
            return None;
        }
        let same = holds(&run_dir.path(PLAN), plan) && seeds::same_files(&origin, &run_dir, seeds);
        same.then_some(origin)
    }

    /// What [`Root::create`] says of a run an earlier call made, given `seeds`.
    fn found(&self, name: String, origin: Origin, seeds: &[Seed]) -> Created {
        let run_dir = self.dir.join(&name);
        let shown = Path::new(&origin.pipeline)
            .strip_prefix(&self.dir)
            .map_or_else(|_| origin.pipeline.clone(), |p| p.display().to_string());
        // Where the results will be, as the run's recorded pipeline says
        // now (none when it no longer loads: its build will say why).
        let location = Location {
            run_dir: run_dir.clone(),
            file: None,
            env_file: None,
            named_dir: true,
            advice: ADVICE,
        };
        let session = location
            .locate()
            .and_then(|l| Session::open(l, &ModelChoice::default(), Lists::Present))
            .ok();
        let results = session
            .as_ref()
            .map(|s| s.graph.results())
            .unwrap_or_default();
        // What the call that made it warned of holds still: said again.
        let warnings = session
            .as_ref()
            .map(|s| creation_warnings(s, &shown, &name, seeds))
            .unwrap_or_default();
        // Built since, its record says when it was created.
        let created_at = RunDir::open(&run_dir)
            .ok()
            .and_then(|d| run_record::created_at(&d, RunRecord::load(&d).as_ref()))
            .unwrap_or(origin.created_at);
        Created {
            name,
            made: false,
            run_dir,
            pipeline: shown,
            created_at,
            results,
            warnings,
        }
    }

    /// The names of the folders under the root that are runs.
    fn names(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| check_name(n).is_ok() && self.run(n).is_ok())
            .collect()
    }

    /// A name for a new run: the time (UTC) and the plan's first words
    /// (their Latin letters with accents written without: `Café` is
    /// `cafe`, not `caf`), with `-2`, `-3`, ... when taken.
    fn fresh_name(&self, plan: &str) -> String {
        let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string();
        let plain: String = plan.chars().take(200).map(unaccented).collect();
        let mut slug = String::new();
        for word in plain
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            if slug.len() + word.len() + 1 > 32 {
                break;
            }
            slug.push('-');
            slug.push_str(&word.to_ascii_lowercase());
        }
        let base = format!("{stamp}{slug}");
        let mut name = base.clone();
        let mut n = 2;
        while std::fs::symlink_metadata(self.dir.join(&name)).is_ok() {
            name = format!("{base}-{n}");
            n += 1;
        }
        name
    }

    /// The runs under the root, newest first; archived ones only with
    /// `archived`. `running` says whether a build runs in a run (the
    /// server knows of builds it started before their run record does).
    /// Returns the runs and how many archived ones were left out.
    pub fn list(&self, archived: bool, running: impl Fn(&RunDir) -> bool) -> (Vec<Listed>, usize) {
        let mut listed = Vec::new();
        let mut hidden = 0;
        for name in self.names() {
            let Ok(run_dir) = RunDir::open(&self.dir.join(&name)) else {
                continue;
            };
            let marker = Archived::load(&run_dir);
            if marker.is_some() && !archived {
                hidden += 1;
                continue;
            }
            let record = RunRecord::load(&run_dir);
            let last = record.as_ref().and_then(|r| r.builds.last());
            let state = if running(&run_dir) {
                "running"
            } else {
                run_state(&run_dir, record.as_ref())
            };
            let created_at = run_record::created_at(&run_dir, record.as_ref());
            listed.push(Listed {
                run: name,
                state,
                created_at,
                last_build_started_at: last.map(|b| b.started_at.clone()),
                last_build_finished_at: last.and_then(|b| b.finished_at.clone()),
                archived: marker.is_some(),
                archived_at: marker.map(|m| m.archived_at).filter(|a| !a.is_empty()),
                counts: record.map(|r| r.counts),
                plan: plan_line(&run_dir),
            });
        }
        // Runs without a time go last. (Times are parsed: their fractions
        // of a second have no fixed length, so they do not sort as text.)
        let time = |l: &Listed| {
            l.created_at
                .as_deref()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        };
        listed.sort_by(|a, b| time(b).cmp(&time(a)).then_with(|| a.run.cmp(&b.run)));
        (listed, hidden)
    }
}

/// The bytes of a new plan.txt: the text with a trailing newline. Refuses
/// a plan that is blank, too large or holds NUL bytes.
fn plan_bytes(plan: &str) -> Result<Vec<u8>> {
    let refuse =
        |why: &str| Error::usage(format!("the plan {why}")).hint("pass the plan as text in `plan`");
    if plan.trim().is_empty() {
        return Err(refuse("is empty"));
    }
    if plan.len() > MAX_PLAN_BYTES {
        return Err(refuse(&format!(
            "is {} bytes; at most {MAX_PLAN_BYTES} are taken",
            plan.len()
        )));
    }
    if plan.contains('\0') {
        return Err(refuse("holds NUL bytes, not text"));
    }
    let mut bytes = plan.as_bytes().to_vec();
    if !plan.ends_with('\n') {
        bytes.push(b'\n');
    }
    Ok(bytes)
}

/// The first line of a run's plan, at most 120 characters.
fn plan_line(run_dir: &RunDir) -> Option<String> {
    use std::io::Read;
    let mut head = Vec::new();
    let file = files::open_read(&run_dir.path(PLAN)).ok()?;
    file.take(4096).read_to_end(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head);
    let line = text.lines().find(|l| !l.trim().is_empty())?.trim();
    let mut short: String = line.chars().take(120).collect();
    if line.chars().count() > 120 {
        short.push('…');
    }
    Some(short)
}

/// `c` as ASCII: a Latin letter with an accent as the letter without
/// (`ß` as `ss`, `æ` as `ae`), any other character as a space.
fn unaccented(c: char) -> std::borrow::Cow<'static, str> {
    if c.is_ascii() {
        return c.to_string().into();
    }
    let lower = c.to_lowercase().next().unwrap_or(c);
    let plain = match lower {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
        'ğ' => "g",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' | 'i' => "i",
        'ł' | 'ľ' => "l",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'œ' => "oe",
        'ř' => "r",
        'ś' | 'š' | 'ş' | 'ș' => "s",
        'ß' => "ss",
        'ť' | 'ţ' | 'ț' => "t",
        'þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        _ => " ",
    };
    plain.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_folder_names_are_run_names() {
        for good in ["a", "run-1", "20260101-120000-open-a-bakery", "A_b.c"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", ".", "..", ".planexe", "-rf", "a/b", "../x", "/etc", "a\\b", "a b", "é", "a\0b",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(MAX_NAME + 1)).is_err());
    }

    /// A folder that holds no run is `new_run`'s to judge (as is one made
    /// between the server's check and the run): its hint is the server's,
    /// not `planexe build -C`, and offers no resume.
    #[test]
    fn a_taken_run_folder_is_told_in_the_tools_terms() {
        let root = tempfile::tempdir().unwrap();
        let pipeline = root.path().join("pipeline.toml");
        std::fs::write(
            &pipeline,
            "[tasks.a]\ninputs = [\"plan.txt\"]\noutputs = [\"a.txt\"]\ncommand = \"cp plan.txt a.txt\"\n",
        )
        .unwrap();
        let run = root.path().join("r");
        std::fs::create_dir(&run).unwrap();
        std::fs::write(run.join("notes.txt"), "mine\n").unwrap();
        let refused = new_run::create(
            &run,
            "r",
            b"a shed\n",
            &[],
            (pipeline, "pipeline.toml".into()),
            ADVICE,
        )
        .err()
        .unwrap();
        assert!(
            refused.to_string().contains("holds no planexe run"),
            "{refused}"
        );
        assert_eq!(
            refused.hints(),
            [ADVICE.hint(&crate::model::Trouble::FolderTaken { run: "r" })]
        );
        assert!(refused.hints()[0].contains("leave `name` out"));
        assert!(!run.join(PLAN).exists());
    }

    #[test]
    fn plans_get_a_newline_and_blank_ones_are_refused() {
        assert_eq!(plan_bytes("a shed").unwrap(), b"a shed\n");
        assert_eq!(plan_bytes("a shed\n").unwrap(), b"a shed\n");
        assert!(plan_bytes(" \n\t").is_err());
        assert!(plan_bytes("a\0b").is_err());
    }
}
