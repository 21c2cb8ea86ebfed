//! Where a task stands, as `status`, `graph` and a build's live snapshot
//! show it: the plan's reason it must run, read together with its latest
//! record (the one derivation of a task's last run is the store's
//! [`Recorded`](crate::store::Recorded); this one adds the plan's view and
//! whether a running task is really running).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::plan::Reason;
use crate::store::{Builder, Status, TaskState};

/// Where a task stands. Ordered by name, as `status --json` lists counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standing {
    Done,
    Failed,
    NeverBuilt,
    /// Waits for an upstream task (or a `foreach` list).
    Pending,
    Running,
    /// Running still: its command failed after writing every output, and
    /// its rescue's checks examine what it wrote.
    FailedPendingCheck,
    /// Will run: something it depends on changed.
    Stale,
    Stopped,
}

impl Standing {
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Done => "done",
            Standing::Stale => "stale",
            Standing::Pending => "pending",
            Standing::Failed => "failed",
            Standing::Running => "running",
            Standing::FailedPendingCheck => "failed-pending-check",
            Standing::Stopped => "stopped",
            Standing::NeverBuilt => "never-built",
        }
    }

    /// Where a task stands, from the plan's `reason` for running it (none:
    /// up to date). An interrupted task is running when its `latest`
    /// status says so and its process lives or `running`, the build that
    /// runs now, started it (see [`Status::runs_now`]); otherwise it
    /// stopped.
    pub fn of(reason: Option<&Reason>, latest: Option<&Status>, running: Builder<'_>) -> Standing {
        match reason {
            None => Standing::Done,
            Some(Reason::NeverBuilt { .. }) => Standing::NeverBuilt,
            Some(Reason::FailedLastTime { .. }) => Standing::Failed,
            Some(Reason::InterruptedLastTime { .. }) => match latest {
                Some(s) if runs(s, running) => match s.state {
                    TaskState::FailedPendingCheck => Standing::FailedPendingCheck,
                    _ => Standing::Running,
                },
                _ => Standing::Stopped,
            },
            Some(Reason::Upstream(_) | Reason::AwaitsList(_) | Reason::AwaitsFanout { .. }) => {
                Standing::Pending
            }
            Some(_) => Standing::Stale,
        }
    }
}

/// Whether a status says its task runs now.
pub fn runs(status: &Status, running: Builder<'_>) -> bool {
    status.runs_now(running)
}

impl fmt::Display for Standing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
