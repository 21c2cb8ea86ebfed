//! `.planexe/status.snapshot`: what `status` would report, saved so that it
//! need not check every task. Two kinds: an idle snapshot, saved with the
//! up-to-date certificate and valid while that certificate (of the same
//! generation) holds; and a live one, kept by a running build and valid
//! while that build runs. This module owns the file and its framing (this
//! planexe's version, which certificate or build it goes with); the
//! payload is whatever the status query saves.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::files;
use super::rundir::RunDir;

/// Which running build wrote a live snapshot: as in its run record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Live {
    pub pid: u32,
    pub started_at: String,
}

/// A snapshot and what it goes with.
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot<T> {
    version: String,
    /// The certificate generation it goes with (idle snapshots).
    pub generation: u64,
    /// The build that wrote it while running (live snapshots).
    pub live: Option<Live>,
    pub payload: T,
}

impl<T> Snapshot<T> {
    /// A snapshot saved with the certificate of `generation`.
    pub fn idle(generation: u64, payload: T) -> Snapshot<T> {
        Snapshot {
            version: env!("CARGO_PKG_VERSION").to_string(),
            generation,
            live: None,
            payload,
        }
    }

    /// A snapshot kept by the running build `live`.
    pub fn live(live: Live, payload: T) -> Snapshot<T> {
        Snapshot {
            version: env!("CARGO_PKG_VERSION").to_string(),
            generation: 0,
            live: Some(live),
            payload,
        }
    }
}

impl<T: Serialize> Snapshot<T> {
    /// Saves the snapshot. Best effort: without one, `status` checks every
    /// task, as it would anyway.
    pub fn write(&self, run_dir: &RunDir) {
        if let Ok(bytes) = postcard::to_allocvec(self) {
            let _ = files::write_atomic(&run_dir.snapshot_path(), &bytes);
        }
    }
}

impl<T: DeserializeOwned> Snapshot<T> {
    /// The saved snapshot, when this planexe wrote it.
    pub fn read(run_dir: &RunDir) -> Option<Snapshot<T>> {
        let bytes = files::read(&run_dir.snapshot_path()).ok()?;
        let snapshot: Snapshot<T> = postcard::from_bytes(&bytes).ok()?;
        (snapshot.version == env!("CARGO_PKG_VERSION")).then_some(snapshot)
    }
}
