//! Which tasks of a state log have a sidecar and a `.DONE` marker: from
//! one listing of `.planexe/tasks/` made at load, kept up to date by the
//! store's own writes, or, where it did not list the folder, a stat for
//! each marker it did not write or remove itself, once (a listing too says
//! what the folder held when it was made).

use super::StateStore;
use crate::store::rundir::RunDir;
use crate::store::sidecar;

impl StateStore {
    /// Whether `task` had a sidecar when this store was loaded (true when
    /// the listing could not tell). A sidecar written since, by this
    /// process or another, is not known here: only for questions that a
    /// sidecar written since cannot change the answer to.
    pub fn had_sidecar(&self, task: &str) -> bool {
        self.sidecars.as_ref().is_none_or(|s| s.contains(task))
    }

    /// Whether the `.DONE` marker of a task exists, from one listing of
    /// `.planexe/tasks/` made when the state was loaded (kept up to date by
    /// this store's own writes), else by a stat, made once (unless this
    /// store wrote or removed the marker itself): the check of a task and
    /// its start, which removes the marker, ask in turn. A task assumed done
    /// ([`StateStore::assume_done`]) has one.
    pub fn has_marker(&self, run_dir: &RunDir, task: &str) -> bool {
        if !self.assumed.is_empty() && self.assumed.contains_key(task) {
            return true;
        }
        match &self.markers {
            Some(set) => set.lock().unwrap_or_else(|p| p.into_inner()).contains(task),
            None => {
                let own = || self.own_markers.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(&present) = own().get(task) {
                    return present;
                }
                // Statted without the lock (checks ask from many threads);
                // a write of the marker meanwhile is what stands.
                let present = sidecar::has_marker(run_dir, task);
                *own().entry(task.to_string()).or_insert(present)
            }
        }
    }

    /// Notes that a marker was created or removed outside `write_status`.
    pub fn note_marker(&self, task: &str, present: bool) {
        match &self.markers {
            Some(set) => {
                let mut set = set.lock().unwrap_or_else(|p| p.into_inner());
                if present {
                    set.insert(task.to_string());
                } else {
                    set.remove(task);
                }
            }
            None => {
                let mut own = self.own_markers.lock().unwrap_or_else(|p| p.into_inner());
                own.insert(task.to_string(), present);
            }
        }
    }
}
