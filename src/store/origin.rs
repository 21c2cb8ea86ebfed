//! `.planexe/origin.json`: how a run was made. Written once, when `planexe
//! new` or the MCP server's `run_create` makes the run directory: when, for
//! which pipeline file, the blake3 of the plan it was seeded with, and the
//! other files it was given ([`Input`]: `new --input`, `run_create`'s
//! `files`). It lets `run_create` return the run it made a moment ago for
//! the same plan, files and pipeline instead of making a second one, lets a
//! build refuse to overwrite a file the run was given, and says when the
//! run was created: the first build copies its time into `run.json`
//! ([`super::run_record::created_at`]). A run directory made by hand has
//! none; one made by a planexe that did not record the files has no
//! `inputs` (`None`: not known).

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
    /// The files the run was seeded with besides its plan, sorted by path;
    /// `None` when not known (made by a planexe that did not record them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<Input>>,
}

/// A file a run was seeded with besides its plan, as it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    /// Relative to the run directory, normalized (`notes/budget.md`).
    pub path: String,
    /// The blake3 of its bytes (64 hex digits).
    pub blake3: String,
    /// Its size in bytes.
    pub size: u64,
}

impl Input {
    /// The record of the file `path` written with `bytes`.
    pub fn of(path: &str, bytes: &[u8]) -> Input {
        Input {
            path: path.to_string(),
            blake3: blake3::hash(bytes).to_hex().to_string(),
            size: bytes.len() as u64,
        }
    }
}

impl Origin {
    /// The origin of a run made now, for `pipeline`, seeded with `plan`
    /// and `inputs` (recorded sorted by path).
    pub fn now(pipeline: &str, plan: &[u8], mut inputs: Vec<Input>) -> Origin {
        inputs.sort_by(|a, b| a.path.cmp(&b.path));
        Origin {
            created_at: crate::clock::now_rfc3339(),
            pipeline: pipeline.to_string(),
            plan_blake3: blake3::hash(plan).to_hex().to_string(),
            inputs: Some(inputs),
        }
    }

    /// The paths of the files the run was seeded with besides its plan
    /// (none when not known).
    pub fn input_paths(&self) -> impl Iterator<Item = &str> {
        self.inputs.iter().flatten().map(|i| i.path.as_str())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An origin written before the files were recorded loads, its
    /// `inputs` not known; one written now says them, sorted.
    #[test]
    fn inputs_are_recorded_sorted_and_missing_ones_are_unknown() {
        let old =
            r#"{"created_at": "2026-01-01T00:00:00Z", "pipeline": "/p.toml", "plan_blake3": "00"}"#;
        let old: Origin = serde_json::from_str(old).unwrap();
        assert_eq!(old.inputs, None);
        assert_eq!(old.input_paths().count(), 0);
        let new = Origin::now(
            "/p.toml",
            b"plan\n",
            vec![Input::of("b.md", b"b"), Input::of("a/x.md", b"xy")],
        );
        let text = serde_json::to_string(&new).unwrap();
        let back: Origin = serde_json::from_str(&text).unwrap();
        assert_eq!(back, new);
        assert_eq!(back.input_paths().collect::<Vec<_>>(), ["a/x.md", "b.md"]);
        let first = &back.inputs.as_ref().unwrap()[0];
        assert_eq!(first.size, 2);
        assert_eq!(first.blake3, blake3::hash(b"xy").to_hex().to_string());
    }
}
