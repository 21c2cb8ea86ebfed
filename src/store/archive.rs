//! `.planexe/archived`: the marker of an archived run. An archived run is
//! kept whole and stays readable; the MCP server's `runs` leaves it out
//! unless asked, and its `build` refuses it until it is restored. The
//! marker says when it was archived; restoring removes it.

use serde::{Deserialize, Serialize};

use super::files;
use super::rundir::RunDir;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Archived {
    /// When the run was archived (RFC 3339, UTC).
    pub archived_at: String,
}

impl Archived {
    /// Whether the run is archived, and since when. A marker that is not
    /// what planexe writes still marks the run archived, since an unknown
    /// time.
    pub fn load(run_dir: &RunDir) -> Option<Archived> {
        let bytes = files::read(&run_dir.archived_path()).ok()?;
        Some(serde_json::from_slice(&bytes).unwrap_or(Archived {
            archived_at: String::new(),
        }))
    }

    /// Archives the run now.
    pub fn mark(run_dir: &RunDir) -> Result<Archived> {
        let archived = Archived {
            archived_at: crate::clock::now_rfc3339(),
        };
        let mut text = serde_json::to_vec_pretty(&archived).map_err(std::io::Error::other)?;
        text.push(b'\n');
        files::write_atomic(&run_dir.archived_path(), &text)?;
        Ok(archived)
    }

    /// Restores the run: it is no longer archived.
    pub fn restore(run_dir: &RunDir) -> Result<()> {
        files::remove_if_exists(&run_dir.archived_path()).map(|_| ())
    }
}
