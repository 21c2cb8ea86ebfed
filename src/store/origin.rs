//! `.planexe/origin.json`: how a run was made. Written once, when `planexe
//! new` or the MCP server's `run_create` makes the run directory: when, for
//! which pipeline file, and the blake3 of the plan it was seeded with. It
//! lets `run_create` return the run it made a moment ago for the same plan
//! and pipeline instead of making a second one, and says when the run was
//! created: the first build copies its time into `run.json`
//! ([`super::run_record::created_at`]). A run directory made by hand has
//! none.

use serde::{Deserialize, Serialize};

use super::files;
use super::rundir::RunDir;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// When the run directory was made (RFC 3339, UTC).
    pub created_at: String,
    /// The pipeline file's absolute path (the file `.planexe/pipeline` records).
    pub pipeline: String,
    /// The blake3 of the `plan.txt` the run was seeded with (64 hex digits).
    pub plan_blake3: String,
}

impl Origin {
    /// The origin of a run made now, for `pipeline`, seeded with `plan`.
    pub fn now(pipeline: &str, plan: &[u8]) -> Origin {
        Origin {
            created_at: crate::clock::now_rfc3339(),
            pipeline: pipeline.to_string(),
            plan_blake3: blake3::hash(plan).to_hex().to_string(),
        }
    }

    /// The run's origin; none when it has none or it is damaged.
    pub fn load(run_dir: &RunDir) -> Option<Origin> {
        let bytes = files::read(&run_dir.origin_path()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn save(&self, run_dir: &RunDir) -> Result<()> {
        let mut text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        text.push(b'\n');
        files::write_atomic(&run_dir.origin_path(), &text)
    }
}
