//! The run directory a watch works in, pinned where it was when the watch
//! started: a full path, found once from the current directory and `-C`
//! (and `-f` from the current directory then). A run directory moved away
//! or removed while watched is said to be so, where it was, and what to
//! do; it is not followed to where it went (the process's current
//! directory moves with a folder moved, and its recorded pipeline file,
//! named by its old path, would then be said to be missing), nor is its
//! absence taken for a missing `-C` folder.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::plan::session::Location;
use crate::store::stamp::lexical;

/// Where a watch works.
pub struct Pinned {
    location: Location,
    /// The run directory's full path, as it was at the start.
    root: PathBuf,
}

impl Pinned {
    /// Pins `location`, whose paths are full (made from the current
    /// directory at the start).
    pub fn new(location: Location) -> Pinned {
        let root = lexical(&location.run_dir);
        Pinned { location, root }
    }

    /// Where the watch works: the same every time.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Whether the run directory is still where the watch started: the
    /// error that says it is not (moved or removed, or another thing in
    /// its place), and what to do; `Ok` when it is a folder there, or
    /// when looking fails otherwise (the load then says why).
    pub fn still_there(&self) -> Result<()> {
        let shown = self.root.display();
        let what = match std::fs::metadata(&self.root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "was moved or removed",
            Ok(meta) if !meta.is_dir() => "was replaced by something that is not a folder",
            _ => return Ok(()),
        };
        Err(Error::usage(format!(
            "the run directory {shown} {what} while it was watched"
        ))
        .hint(format!(
            "the watch goes on and builds when the folder is back at {shown}; to watch the run in its new place, stop this watch (Ctrl-C) and run `planexe watch -C NEW_PLACE`"
        )))
    }
}
