//! Filter, then debounce: the pure half of `planexe watch`'s loop.
//!
//! A file-system event first goes through [`Filter::admit`]: events that
//! change nothing (reads), paths the watch set does not name, and paths a
//! build writes ([`Class::Written`]) while it runs or settles are dropped
//! there, so a build never triggers the next (the watch takes back an
//! output that a record says should be otherwise: it was removed or edited
//! meanwhile, not by the build). What is left is collected in
//! a [`Batch`] until no event came for the debounce window (or the batch
//! is [`MAX_WAIT`] old), then one build runs. A batch is a set of paths:
//! an atomic save's rename and a truncate-then-write's several writes are
//! one change to the real file. A watch that polls waits longer
//! ([`Window::new`]): one poll may see a file mid-write, so the batch
//! waits for the next poll to see it whole.
//!
//! An event can also say that events were lost ([`News::Lost`]: the
//! kernel's queue overflowed): anything may have changed, so it always
//! counts, whenever it comes, and the build it starts checks everything
//! (as every build does; no path is needed to start one).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, MetadataKind, ModifyKind};
use notify::{Event, EventKind};

use super::sources::{Class, WatchSet};

/// The longest a batch waits for quiet before its build runs anyway: a
/// file written without pause must not hold builds off for ever.
pub const MAX_WAIT: Duration = Duration::from_secs(2);

/// How long a batch waits: for `quiet` after its last change, at most
/// `most` after its first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub quiet: Duration,
    pub most: Duration,
}

impl Window {
    /// The window of `--debounce`, and of `--poll` when the watch polls:
    /// then the quiet is at least one and a half poll intervals, so the
    /// poll after one that saw a file mid-write (truncated, its bytes to
    /// come) comes before the build and sees it whole; and the longest
    /// wait leaves room for that poll too.
    pub fn new(debounce: Duration, poll: Option<Duration>) -> Window {
        let Some(poll) = poll else {
            return Window {
                quiet: debounce,
                most: MAX_WAIT,
            };
        };
        let quiet = debounce.max(poll + poll / 2);
        Window {
            quiet,
            most: MAX_WAIT.max(quiet + poll),
        }
    }
}

/// Whether an event of this kind can change what a build reads: reads,
/// opens and access times cannot.
pub fn changes(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        _ => true,
    }
}

/// Whether an event of this kind can make or remove a folder (so the
/// watched folders may have to change).
pub fn reshapes(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
    )
}

/// What one event from the watcher tells the watch, before the filter.
#[derive(Debug, PartialEq, Eq)]
pub enum News {
    /// Events were lost (inotify's queue overflowed: notify's `Rescan`
    /// flag): anything may have changed, folders may have been made or
    /// removed, and no event says which.
    Lost,
    /// These paths may have changed; `reshaped`: a folder among them may
    /// have been made, removed or renamed.
    Changed { paths: Vec<PathBuf>, reshaped: bool },
    /// Nothing a build reads changed (a read, an access time).
    Nothing,
}

/// What `event` tells the watch.
pub fn news(event: Event) -> News {
    // Before the kind: an overflow comes as `Other`, with no path.
    if event.need_rescan() {
        return News::Lost;
    }
    if !changes(&event.kind) {
        return News::Nothing;
    }
    News::Changed {
        reshaped: reshapes(&event.kind),
        paths: event.paths,
    }
}

/// Decides which event paths count, knowing when the last build wrote.
#[derive(Debug, Default)]
pub struct Filter {
    /// The last build's writing time: from its start to its end plus the
    /// settle time. Events for written paths stamped inside it are the
    /// build's own.
    writing: Option<(Instant, Instant)>,
}

impl Filter {
    /// Remembers that a build wrote from `start` until `until` (its end
    /// plus the time events take to arrive).
    pub fn build_wrote(&mut self, start: Instant, until: Instant) {
        self.writing = Some((start, until));
    }

    /// Whether a change to `path`, seen at `at`, counts.
    pub fn admit(&self, set: &WatchSet, path: &Path, at: Instant) -> bool {
        match set.classify(path) {
            None => false,
            Some(Class::Source) => true,
            Some(Class::Written) => !self
                .writing
                .is_some_and(|(start, until)| start <= at && at <= until),
        }
    }
}

/// What counted as changed since the last build.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The changed paths, sorted.
    pub paths: BTreeSet<PathBuf>,
    /// Events were lost: anything may have changed.
    pub lost: bool,
}

impl Changes {
    /// Changes that are only `paths`.
    pub fn of(paths: impl IntoIterator<Item = PathBuf>) -> Changes {
        Changes {
            paths: paths.into_iter().collect(),
            lost: false,
        }
    }

    /// Events were lost.
    pub fn lost() -> Changes {
        Changes {
            paths: BTreeSet::new(),
            lost: true,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && !self.lost
    }

    pub fn extend(&mut self, other: Changes) {
        self.paths.extend(other.paths);
        self.lost |= other.lost;
    }
}

/// Changes collected until the debounce window passes without one.
#[derive(Debug, Default)]
pub struct Batch {
    changed: Changes,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Batch {
    /// Adds `changes` seen at `at` (nothing, when they are empty).
    pub fn add(&mut self, changes: Changes, at: Instant) {
        if changes.is_empty() {
            return;
        }
        self.changed.extend(changes);
        self.first.get_or_insert(at);
        self.last = Some(self.last.map_or(at, |last| last.max(at)));
    }

    /// When the batch is due: `window.quiet` after its last change, at
    /// most `window.most` after its first; `None` while it is empty.
    pub fn due(&self, window: Window) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some((last + window.quiet).min(first + window.most))
    }

    /// What changed; the batch is empty again.
    pub fn take(&mut self) -> Changes {
        self.first = None;
        self.last = None;
        std::mem::take(&mut self.changed)
    }
}

/// What one rebuild line says changed: the first few names, and how many
/// more.
pub fn describe(names: &[String]) -> String {
    const SHOWN: usize = 3;
    match names.len() {
        0 => "nothing".to_string(),
        n if n <= SHOWN => names.join(", "),
        n => format!("{} and {} more", names[..SHOWN].join(", "), n - SHOWN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> WatchSet {
        WatchSet::new(
            Path::new("/run"),
            ["plan.txt".to_string()],
            ["outline.md".to_string()],
        )
    }

    #[test]
    fn outputs_written_while_a_build_writes_are_its_own() {
        let t0 = Instant::now();
        let mut filter = Filter::default();
        let set = set();
        let outline = Path::new("/run/outline.md");
        assert!(filter.admit(&set, outline, t0));
        filter.build_wrote(t0, t0 + Duration::from_secs(2));
        assert!(!filter.admit(&set, outline, t0 + Duration::from_secs(1)));
        // A source changed during the build is queued, not dropped.
        assert!(filter.admit(
            &set,
            Path::new("/run/plan.txt"),
            t0 + Duration::from_secs(1)
        ));
        // A hand edit after the build settled counts.
        assert!(filter.admit(&set, outline, t0 + Duration::from_secs(3)));
        assert!(!filter.admit(&set, Path::new("/run/.planexe-tmp-1-x"), t0));
    }

    #[test]
    fn a_batch_is_due_after_quiet_or_at_most_max_wait() {
        let t0 = Instant::now();
        let debounce = Duration::from_millis(100);
        let window = Window::new(debounce, None);
        let mut batch = Batch::default();
        assert_eq!(batch.due(window), None);
        let add = |batch: &mut Batch, path: &str, at| batch.add(Changes::of([path.into()]), at);
        add(&mut batch, "/run/plan.txt", t0);
        assert_eq!(batch.due(window), Some(t0 + debounce));
        add(&mut batch, "/run/plan.txt", t0 + Duration::from_millis(50));
        assert_eq!(batch.due(window), Some(t0 + Duration::from_millis(150)));
        for ms in (100..5000).step_by(50) {
            add(&mut batch, "/run/b", t0 + Duration::from_millis(ms));
        }
        assert_eq!(batch.due(window), Some(t0 + MAX_WAIT));
        // An atomic save and repeated writes are one change per file.
        assert_eq!(batch.take().paths.len(), 2);
        assert_eq!(batch.due(window), None);
    }

    /// The event notify's inotify watcher sends when the kernel's queue
    /// overflowed (`IN_Q_OVERFLOW`): `Other`, no path, the `Rescan` flag.
    fn overflow() -> Event {
        Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan)
    }

    #[test]
    fn an_overflow_is_news_that_events_were_lost_and_starts_a_build() {
        assert_eq!(news(overflow()), News::Lost);
        // Whatever its kind and paths: lost is lost.
        let mut event = overflow();
        event.kind = EventKind::Access(AccessKind::Open(AccessMode::Read));
        event.paths = vec!["/run/plan.txt".into()];
        assert_eq!(news(event), News::Lost);
        // An event without the flag is what it says.
        let mut event = Event::new(EventKind::Other);
        event.paths = vec!["/run/plan.txt".into()];
        assert_eq!(
            news(event),
            News::Changed {
                paths: vec!["/run/plan.txt".into()],
                reshaped: false
            }
        );

        // Lost events make a batch due, with no path, like any change.
        let t0 = Instant::now();
        let debounce = Duration::from_millis(100);
        let window = Window::new(debounce, None);
        let mut batch = Batch::default();
        batch.add(Changes::default(), t0);
        assert_eq!(batch.due(window), None);
        batch.add(Changes::lost(), t0);
        assert_eq!(batch.due(window), Some(t0 + debounce));
        batch.add(Changes::of(["/run/plan.txt".into()]), t0);
        let taken = batch.take();
        assert!(taken.lost);
        assert_eq!(taken.paths.len(), 1);
        assert!(batch.take().is_empty());
    }

    /// A poll may see a file truncated, its bytes to come: the batch
    /// waits for the next poll (`--poll 100ms`: 150 ms of quiet, not
    /// 100), and for a slow poll longer than [`MAX_WAIT`] at most.
    #[test]
    fn a_watch_that_polls_waits_for_the_next_poll() {
        let debounce = Duration::from_millis(100);
        let ms = Duration::from_millis;
        assert_eq!(
            Window::new(debounce, Some(ms(100))),
            Window {
                quiet: ms(150),
                most: MAX_WAIT
            }
        );
        assert_eq!(Window::new(ms(500), Some(ms(100))).quiet, ms(500));
        let slow = Window::new(debounce, Some(ms(2000)));
        assert_eq!(
            slow,
            Window {
                quiet: ms(3000),
                most: ms(5000)
            }
        );
        // A change seen at t0, the same file whole at the next poll: one
        // batch, due after the poll that finds nothing more.
        let t0 = Instant::now();
        let mut batch = Batch::default();
        let window = Window::new(debounce, Some(ms(100)));
        batch.add(Changes::of(["/run/plan.txt".into()]), t0);
        assert!(batch.due(window).unwrap() > t0 + ms(100));
        batch.add(Changes::of(["/run/plan.txt".into()]), t0 + ms(100));
        assert_eq!(batch.due(window), Some(t0 + ms(250)));
    }

    #[test]
    fn reads_change_nothing() {
        assert!(!changes(&EventKind::Access(AccessKind::Open(
            notify::event::AccessMode::Read
        ))));
        assert!(changes(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(changes(&EventKind::Modify(ModifyKind::Name(
            notify::event::RenameMode::To
        ))));
    }

    #[test]
    fn a_change_line_names_the_first_few() {
        let names: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        assert_eq!(describe(&names[..2]), "a, b");
        assert_eq!(describe(&names), "a, b, c and 2 more");
    }
}
