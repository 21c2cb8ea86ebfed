//! The public face of a task's state, one pair of files per task:
//! `.planexe/tasks/NAME.status` (JSON, rewritten atomically at every state
//! change) and `NAME.DONE` (present while the last run succeeded, written
//! last). [`publish`] is the one place that orders the two.

use std::path::Path;

use super::files;
use super::record::{Status, TaskState};
use super::rundir::RunDir;
use crate::error::Result;

/// Writes the public face of a task's new state: the sidecar, then, for
/// `done`, the `.DONE` marker last; for a failure or a run, the marker goes
/// first, as it must never outlive the run it vouches for (`pending` only
/// announces a run, so the last good one still stands). Safe from any
/// thread: it touches only this task's files. Returns the sidecar's
/// length, which the state log keeps to tell a damaged sidecar.
pub fn publish(run_dir: &RunDir, status: &Status) -> Result<u64> {
    publish_as(run_dir, status, false)
}

/// [`publish`]; with `first`, the task is not known to have a sidecar yet
/// (no spare is looked for first: see [`super::spare::write_atomic_reusing`]).
pub fn publish_as(run_dir: &RunDir, status: &Status, first: bool) -> Result<u64> {
    if !matches!(status.state, TaskState::Done | TaskState::Pending) {
        files::remove_if_exists(&run_dir.done_path(&status.task))?;
    }
    let len = write_sidecar_at_as(&run_dir.status_path(&status.task), status, first)?;
    if status.state == TaskState::Done {
        write_marker(run_dir, &status.task)?;
    }
    Ok(len)
}

/// Writes the `.DONE` marker of a task whose `done` sidecar was just
/// written: a second name for that sidecar (so its mtime is the moment of
/// success and its content the record it vouches for), which costs a
/// directory entry where a new file would cost an inode; an empty file on
/// a file system without hard links. Either appears whole, at once.
fn write_marker(run_dir: &RunDir, task: &str) -> Result<()> {
    let done = run_dir.done_path(task);
    let sidecar = run_dir.status_path(task);
    match std::fs::hard_link(&sidecar, &done) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            files::remove_if_exists(&done)?;
            write_marker_again(&sidecar, &done)
        }
        Err(_) => write_marker_again(&sidecar, &done),
    }
}

fn write_marker_again(sidecar: &Path, done: &Path) -> Result<()> {
    if std::fs::hard_link(sidecar, done).is_err() {
        files::create(done)?;
    }
    Ok(())
}

/// Reads a task's `.status` sidecar; `None` when absent or unreadable.
pub fn read_status(run_dir: &RunDir, task: &str) -> Option<Status> {
    read_status_sized(run_dir, task).map(|(status, _)| status)
}

/// [`read_status`], with the sidecar's length in bytes.
pub fn read_status_sized(run_dir: &RunDir, task: &str) -> Option<(Status, u64)> {
    let bytes = files::read(&run_dir.status_path(task)).ok()?;
    let status = serde_json::from_slice(&bytes).ok()?;
    Some((status, bytes.len() as u64))
}

/// Writes a task's `.status` sidecar atomically; returns its length.
pub fn write_sidecar(run_dir: &RunDir, status: &Status) -> Result<u64> {
    write_sidecar_at(&run_dir.status_path(&status.task), status)
}

/// Writes a task's `.status` sidecar, at `path`, atomically; the sidecar it
/// replaces is kept as the next one's spare (see
/// [`super::spare::write_atomic_reusing`]).
pub fn write_sidecar_at(path: &Path, status: &Status) -> Result<u64> {
    write_sidecar_at_as(path, status, false)
}

fn write_sidecar_at_as(path: &Path, status: &Status, first: bool) -> Result<u64> {
    // Sized for a usual sidecar, so serializing it does not grow the buffer
    // again and again.
    let mut bytes = Vec::with_capacity(2048);
    serde_json::to_writer_pretty(&mut bytes, status).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    super::spare::write_atomic_reusing(path, &super::rundir::spare_of(path), &bytes, first)?;
    Ok(bytes.len() as u64)
}

/// Whether the `.DONE` marker of a task exists.
pub fn has_marker(run_dir: &RunDir, task: &str) -> bool {
    Path::new(&run_dir.done_path(task)).exists()
}
