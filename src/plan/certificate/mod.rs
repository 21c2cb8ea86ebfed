//! The up-to-date certificate, `.planexe/uptodate`: what lets a no-op build
//! (and `status`) answer from stats alone, without parsing the pipeline or
//! the state log.
//!
//! A build of the whole pipeline that ends with every task up to date writes
//! it, once it has checked that every task is done with its current
//! definition and every task file is what each record of it says. It lists
//! every path that verdict depends on (the pipeline file, prompt and schema
//! files, `foreach` lists, folders a glob walked, every task's inputs and
//! outputs and the folders on the way to them, the state log, the
//! task-state folder, the run record), each with its kind, size, mtime,
//! ctime and inode, and for task files the recorded blake3. Later, for the
//! same pipeline path, planexe version and model override, a build that
//! finds every entry unchanged has nothing to do. A task file whose stat
//! moved but whose bytes did not (a `touch`) still counts as unchanged in
//! content mode, as in the full check, and its new stamp is recorded the
//! same way (a `restamp` line in the log).
//!
//! Anything else falls back to the full check: a missing, torn or foreign
//! certificate, any other difference, a symlink inside the run directory
//! other than one to a file or folder of it (listed with what it leads
//! to), a folder a glob walks that is a symlink.
//!
//! File times tick at the kernel clock's resolution, so a path changed
//! within the same tick as its recorded stat would look unchanged. As in
//! git's index, an entry young when recorded ([`Young`]: within [`RACY`]
//! of the system clock, or, on the run directory's file system, not older
//! than that file system's clock as the certificate is made) is marked
//! racy and compared by content
//! on every check (a file by its blake3, a folder by its sorted names)
//! until a build finds it settled. The log only grows or is replaced, so
//! its size or inode always moves: it is never racy.
//!
//! The certificate needs no invalidation to be correct (it names the state
//! it vouches for); every command that takes the run directory's lock still
//! removes it (`store::lock`), so it never outlives that state.

mod as_read;
mod collect;
mod excerpt;
mod format;
mod stat;

pub use as_read::{AsRead, PipelineStat};
pub use excerpt::{generation, read_excerpt, Excerpt, Kind, Watch};

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;

use crate::model::{Graph, Pipeline};
use crate::store::log::{self, Restamp};
use crate::store::rundir::{file, state_rel};
use crate::store::stamp::{CheckMode, Stamp};
use crate::store::{files, RunDir, StateStore};
pub use collect::Base;
use collect::{collect, collect_from, content_hash};
use stat::{file_id, FileId, Folders};

const MAGIC: &[u8] = b"planexe uptodate 1\n";

/// Entries younger than this when recorded are compared by content until
/// they settle.
pub const RACY: Duration = Duration::from_millis(100);

/// One path the verdict depended on.
#[derive(Debug, Clone)]
struct Entry {
    /// Relative to the run directory, or absolute (files beside the
    /// pipeline file).
    path: String,
    id: FileId,
    /// What it holds: the recorded blake3 (hex) of a task's input or
    /// output; for other paths, set when recorded young (a file's blake3,
    /// a folder's list of names).
    hash: Option<String>,
    /// A task's input or output (judged like the full check judges them).
    task: bool,
    /// Recorded within [`RACY`] of its last change: its content is
    /// compared on every check.
    racy: bool,
}

impl Entry {
    /// Whether a change of this entry is one a build can follow from the
    /// certificate's changes (a task file, a folder in the run directory);
    /// any other sends it to the full check.
    fn followed(&self) -> bool {
        self.task
            || (self.id.kind == 2
                && !self.path.starts_with('/')
                && !self.path.starts_with(".planexe"))
    }
}

/// The log's path, relative to the run directory.
static LOG: LazyLock<String> = LazyLock::new(|| state_rel(file::LOG));

/// Who the certificate is for: the same pipeline file and model override.
pub struct Key<'a> {
    pub pipeline: &'a Path,
    pub model: Option<&'a str>,
}

/// A certificate read back from disk.
pub struct Certificate {
    /// Set when the full check writes one, kept when a no-op build records
    /// touched files in it: what a `status` snapshot is saved against.
    generation: u64,
    pipeline: String,
    model: Option<String>,
    tasks: u64,
    entries: Vec<Entry>,
}

/// The outcome of checking a certificate against disk.
pub struct Holds {
    /// How many tasks it vouches for.
    pub tasks: u64,
    /// Entries found with a new stat over the recorded content, or racy
    /// ones verified by their content: (entry, what the stat says now).
    touched: Vec<(usize, FileId)>,
    /// Whether something is worth recording: a new stamp, or a racy entry
    /// that has settled.
    news: bool,
}

impl Holds {
    /// Whether holding leaves nothing to record.
    pub fn clean(&self) -> bool {
        !self.news
    }
}

/// How a certificate stands on disk ([`Certificate::judge`]).
pub enum Judged {
    /// Nothing changed but stamps over the same content.
    Holds(Holds),
    /// Only task files and folders changed.
    Changed(Changes),
    /// Something else changed: every task must be checked.
    Stale,
}

/// What changed since a certificate was written ([`Certificate::judge`]).
#[derive(Debug, Default, Clone)]
pub struct Changes {
    /// Task inputs and outputs whose stat moved (touched ones too).
    pub files: Vec<String>,
    /// Folders whose listing or kind changed (a glob may match otherwise).
    pub folders: Vec<String>,
    /// The certificate judged and what of it was found the same: what the
    /// build writes its next certificate from ([`write`]).
    pub base: Option<Arc<Base>>,
}

/// How one entry compares with disk.
enum Verdict {
    Same,
    /// Same content; the stat it has now.
    Touched(FileId),
    Differs,
}

/// The first moment (ns since the epoch) whose stamps count as young now.
fn young_from(now: SystemTime) -> i64 {
    now.checked_sub(RACY)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(i64::MAX, |d| d.as_nanos() as i64)
}

fn is_young(id: &FileId, young: i64) -> bool {
    id.kind != 0 && (id.ctime_ns >= young || id.mtime_ns >= young)
}

/// Which stamps count as young as a certificate is collected: those
/// within [`RACY`] of the system clock, and, on the run directory's file
/// system, those not older than that file system's clock now (the time it
/// gives a file written in `.planexe/`; where it cannot make one, the
/// state log's last write, which comes after every task's outputs,
/// sidecar and marker). A path changed before that time shows any later
/// change by a later time, as git judges its index against the index
/// file's own time; so the files and folders the build's last tasks
/// changed a moment ago need not be compared by content at every check
/// (a folder by its listing, which at ten thousand tasks costs more than
/// the rest of a check).
struct Young {
    /// [`RACY`] ago, by the system clock.
    system: i64,
    /// The run directory's file-system clock (ns), and its device.
    fs: Option<(i64, u64)>,
}

impl Young {
    /// As things stand now: call before the stats it judges.
    fn now(run_dir: &RunDir) -> Young {
        let system = young_from(SystemTime::now());
        use std::os::unix::fs::MetadataExt;
        let probe = || {
            let m = files::clock(&run_dir.state_dir())?;
            Some((stat::id_of(&m).ok()?, m.dev()))
        };
        let log = || stat::file_id_on(&run_dir.path(LOG.as_str()), false).ok();
        let fs = probe()
            .or_else(log)
            .filter(|(id, _)| id.kind == 1)
            .map(|(id, dev)| (id.mtime_ns.max(id.ctime_ns), dev));
        Young { system, fs }
    }

    /// Whether a path stamped `id`, on device `dev`, is young.
    fn holds(&self, id: &FileId, dev: u64) -> bool {
        let from = match self.fs {
            Some((at, on)) if on == dev => self.system.max(at),
            _ => self.system,
        };
        is_young(id, from)
    }
}

fn path_of(run_dir: &RunDir, path: &str) -> PathBuf {
    if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        run_dir.path(path)
    }
}

/// Writes a certificate that every task is up to date, and returns its
/// generation. Quietly writes nothing when that is not so, or cannot be
/// vouched for by stats: a task not done with its current definition, a
/// task file that differs from its records, a task known only from its
/// sidecar, a symlink inside the run directory that leads out of it.
///
/// `from`: after a build that checked only the tasks the changes of the
/// certificate it judged reached, that certificate's [`Base`] and the
/// tasks the build checked or ran (by id): the entries it found the same
/// for paths those tasks do not touch are taken as they were. `read`: the
/// files the build's pipeline was resolved from, as it read them; one
/// changed since (the pipeline file edited during the build) writes
/// nothing.
pub fn write(
    run_dir: &RunDir,
    pipeline: &Pipeline,
    graph: &Graph,
    store: &StateStore,
    key: &Key,
    from: Option<(&Base, &[bool])>,
    read: &AsRead,
) -> crate::error::Result<Option<u64>> {
    let entries = from
        .and_then(|(base, rechecked)| {
            collect_from(run_dir, pipeline, graph, store, base, rechecked, read)
        })
        .or_else(|| collect(run_dir, pipeline, graph, store, read));
    let Some(entries) = entries else {
        // Seen with PLANEXE_STATS: every later no-op checks every task.
        drop(crate::phases::phase(
            "certificate: none written (a path or record it cannot vouch for)",
        ));
        return Ok(None);
    };
    let mut seed = blake3::Hasher::new();
    seed.update(&std::process::id().to_le_bytes());
    seed.update(&format!("{:?}", SystemTime::now()).into_bytes());
    let generation =
        u64::from_le_bytes(seed.finalize().as_bytes()[..8].try_into().unwrap_or([0; 8]));
    let cert = Certificate {
        generation,
        pipeline: key.pipeline.to_string_lossy().into_owned(),
        model: key.model.map(str::to_string),
        tasks: graph.len() as u64,
        entries,
    };
    let _t = crate::phases::phase("certificate: encode and write");
    crate::store::spare::rewrite(&run_dir.certificate_path(), &[&cert.encode()])?;
    Ok(Some(generation))
}

impl Certificate {
    /// Reads the certificate of a run directory; `None` when there is none
    /// or it is not one this planexe wrote whole.
    pub fn read(run_dir: &RunDir) -> Option<Certificate> {
        let bytes = files::read(&run_dir.certificate_path()).ok()?;
        Certificate::decode(&bytes)
    }

    /// Which `status` snapshot goes with this certificate.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether this certificate vouches for `key` and still holds on disk.
    pub fn holds(&self, run_dir: &RunDir, key: &Key, mode: CheckMode) -> Option<Holds> {
        self.holds_where(run_dir, key, mode, |_| true)
    }

    fn holds_where(
        &self,
        run_dir: &RunDir,
        key: &Key,
        mode: CheckMode,
        wanted: impl Fn(&Entry) -> bool + Sync,
    ) -> Option<Holds> {
        if self.pipeline.as_str() != key.pipeline.to_string_lossy()
            || self.model.as_deref() != key.model
        {
            return None;
        }
        let folders = Folders::open(run_dir, self.entries.iter().map(|e| e.path.as_str()));
        let touched: Vec<(usize, FileId)> = self
            .entries
            .par_iter()
            .enumerate()
            .filter(|(_, e)| wanted(e))
            .filter_map(|(i, e)| match check(run_dir, &folders, e, mode) {
                Verdict::Same => None,
                Verdict::Touched(id) => Some(Some((i, id))),
                Verdict::Differs => Some(None),
            })
            .collect::<Option<_>>()?;
        Some(self.holds_of(touched))
    }

    /// What holding with these `touched` entries leaves to record.
    fn holds_of(&self, touched: Vec<(usize, FileId)>) -> Holds {
        let young = young_from(SystemTime::now());
        let news = touched
            .iter()
            .any(|(i, now)| self.entries[*i].id != *now || !is_young(now, young));
        Holds {
            tasks: self.tasks,
            touched,
            news,
        }
    }

    /// Whether this certificate still holds, and when it does not, what
    /// changed, when no more than task files (inputs and outputs) and
    /// folders did: every other task is as the certificate vouches, so a
    /// build need check only the tasks the changes reach. One stat of
    /// every entry. `None` when it is for another pipeline file or model.
    ///
    /// `changing` is called, on the pool's threads and maybe more than
    /// once, as soon as an entry is found to have changed in a way the
    /// verdict can follow (a task file, a run-directory folder): the
    /// verdict is then `Changed`, or `Stale` if another entry changed
    /// otherwise, never `Holds`. A caller that will open the pipeline in
    /// that case can begin meanwhile.
    pub fn judge(
        &self,
        run_dir: &RunDir,
        key: &Key,
        mode: CheckMode,
        changing: &(dyn Fn() + Sync),
    ) -> Option<Judged> {
        if self.pipeline.as_str() != key.pipeline.to_string_lossy()
            || self.model.as_deref() != key.model
        {
            return None;
        }
        let at = std::time::Instant::now();
        let folders = Folders::open(run_dir, self.entries.iter().map(|e| e.path.as_str()));
        let verdicts: Vec<(usize, Verdict)> = self
            .entries
            .par_iter()
            .enumerate()
            .map(|(i, e)| {
                let verdict = check(run_dir, &folders, e, mode);
                if matches!(verdict, Verdict::Differs) && e.followed() {
                    let _t = crate::phases::phase("certificate: a change found");
                    changing();
                }
                (i, verdict)
            })
            .filter(|(_, v)| !matches!(v, Verdict::Same))
            .collect();
        if verdicts
            .iter()
            .all(|(_, v)| matches!(v, Verdict::Touched(_)))
        {
            let touched: Vec<(usize, FileId)> = verdicts
                .into_iter()
                .filter_map(|(i, v)| match v {
                    Verdict::Touched(id) => Some((i, id)),
                    _ => None,
                })
                .collect();
            return Some(Judged::Holds(self.holds_of(touched)));
        }
        // An entry recorded too young to trust its stat, found with that
        // same stat and the content recorded: nothing changed (its tasks'
        // records hold, as they did when the certificate was written). It
        // is kept, settled once old enough. Files the last build wrote just
        // before its certificate are such entries: were they changes, every
        // edit would check again the tasks the edit before it ran.
        let young = young_from(SystemTime::now());
        let mut entries = self.entries.clone();
        let mut same = vec![true; self.entries.len()];
        let verdicts: Vec<(usize, Verdict)> = verdicts
            .into_iter()
            .filter(|(i, verdict)| match verdict {
                Verdict::Touched(now) if *now == self.entries[*i].id => {
                    entries[*i].racy = is_young(now, young);
                    false
                }
                _ => {
                    same[*i] = false;
                    true
                }
            })
            .collect();
        let mut changes = Changes {
            base: Some(Arc::new(Base { entries, same, at })),
            ..Changes::default()
        };
        for (i, verdict) in verdicts {
            let e = &self.entries[i];
            // A touched task file is checked (and restamped) with the
            // tasks it belongs to; anything else with its content as
            // recorded (a young state file or folder, hashed because its
            // stat was too recent to trust) is no change at all.
            if matches!(verdict, Verdict::Touched(_)) && !e.task {
                continue;
            }
            if !e.followed() {
                return Some(Judged::Stale);
            } else if e.task {
                changes.files.push(e.path.clone());
            } else {
                changes.folders.push(e.path.clone());
            }
        }
        Some(Judged::Changed(changes))
    }

    /// Whether the log is still as this certificate recorded it (which
    /// `holds` found true): no command changed the state since.
    pub fn log_unchanged(&self, run_dir: &RunDir) -> bool {
        self.entries
            .iter()
            .find(|e| e.path == *LOG)
            .is_some_and(|e| file_id(&run_dir.path(&LOG), false) == Ok(e.id))
    }

    /// Records what `holds` found: a `restamp` log line for every task file
    /// with a new stat, and a new certificate. The caller holds the run
    /// directory's lock and has checked [`Certificate::log_unchanged`]
    /// under it.
    pub fn record(mut self, run_dir: &RunDir, holds: &Holds) -> crate::error::Result<()> {
        let restamps: Vec<Restamp> = holds
            .touched
            .iter()
            .filter(|(i, now)| self.entries[*i].task && self.entries[*i].id != *now)
            .filter_map(|&(i, now)| {
                let e = &self.entries[i];
                Some(Restamp {
                    path: e.path.clone(),
                    stamp: Stamp {
                        size: now.size,
                        mtime_ns: now.mtime_ns,
                        blake3: e.hash.clone()?,
                    },
                })
            })
            .collect();
        if !restamps.is_empty() {
            log::append_restamps(run_dir, restamps)?;
        }
        let young = young_from(SystemTime::now());
        for &(i, now) in &holds.touched {
            let e = &mut self.entries[i];
            e.id = now;
            e.racy = is_young(&now, young);
        }
        if let Some(log) = self.entries.iter_mut().find(|e| e.path == *LOG) {
            match file_id(&run_dir.path(&LOG), false) {
                Ok(id) => log.id = id,
                Err(()) => return Ok(()),
            }
        }
        crate::store::spare::rewrite(&run_dir.certificate_path(), &[&self.encode()])
    }
}

/// How one entry compares with disk.
fn check(run_dir: &RunDir, folders: &Folders, e: &Entry, mode: CheckMode) -> Verdict {
    // The whole path only when needed: most entries are statted by name.
    let path = || path_of(run_dir, &e.path);
    let now = if e.path.starts_with('/') {
        file_id(&path(), true)
    } else {
        folders.id_as(run_dir, &e.path, e.id.kind)
    };
    let Ok(now) = now else {
        return Verdict::Differs;
    };
    if now == e.id && !e.racy {
        return Verdict::Same;
    }
    // The same content under a new stat: for a task file what the full
    // check calls touched (in content mode only); a racy entry is trusted
    // only by its content.
    let Some(hash) = &e.hash else {
        return Verdict::Differs;
    };
    let comparable = now.kind == e.id.kind
        && (now.kind != 1 || now.size == e.id.size)
        && (!e.task || mode == CheckMode::Content || now == e.id);
    if comparable && content_hash(&path(), now.kind).is_some_and(|h| &h == hash) {
        Verdict::Touched(now)
    } else {
        Verdict::Differs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ns: i64) -> FileId {
        FileId {
            kind: 1,
            size: 1,
            mtime_ns: ns,
            ctime_ns: ns,
            ino: 7,
        }
    }

    #[test]
    fn young_is_what_changed_since_the_clock_on_its_device_or_within_racy() {
        let young = Young {
            system: 1_000,
            fs: Some((5_000, 42)),
        };
        // On the run directory's device: before its clock's time is
        // settled, at that time (one clock tick) or after is young.
        assert!(!young.holds(&at(4_999), 42));
        assert!(young.holds(&at(5_000), 42));
        assert!(young.holds(&at(6_000), 42));
        // A ctime at the log's time is enough (a rename, a new link).
        let renamed = FileId {
            ctime_ns: 5_000,
            ..at(10)
        };
        assert!(young.holds(&renamed, 42));
        // Elsewhere (another clock), the system clock's window alone.
        assert!(young.holds(&at(4_999), 43));
        assert!(young.holds(&at(1_000), 43));
        assert!(!young.holds(&at(999), 43));
        // A clock behind the window changes nothing.
        let old_log = Young {
            system: 1_000,
            fs: Some((500, 42)),
        };
        assert!(old_log.holds(&at(1_000), 42));
        assert!(!old_log.holds(&at(999), 42));
        // Absent paths are never young.
        assert!(!young.holds(&stat::ABSENT, 42));
    }

    #[test]
    fn young_reads_the_clock_of_the_run_directory_s_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = RunDir::open(dir.path()).unwrap();
        // No `.planexe/` yet, no log: the system clock alone.
        assert!(Young::now(&run_dir).fs.is_none());
        let log = run_dir.path(LOG.as_str());
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        std::fs::write(&log, "{}\n").unwrap();
        let (written, dev) = stat::file_id_on(&log, false).unwrap();
        let young = Young::now(&run_dir);
        let (at, on) = young.fs.unwrap();
        assert_eq!(on, dev);
        // The clock read after the log's write is not behind it.
        assert!(at >= written.mtime_ns.max(written.ctime_ns));
        // What is written after the clock is read is young.
        std::fs::write(&log, "{}\n{}\n").unwrap();
        let (later, _) = stat::file_id_on(&log, false).unwrap();
        assert!(young.holds(&later, dev));
    }
}
