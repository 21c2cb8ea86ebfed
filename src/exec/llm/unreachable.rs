//! Whether a model's server was last found unreachable, for one build:
//! once a task's call has failed with `connection` on every attempt its
//! retries allow, a call of any task to that model that finds no server
//! either is not retried (each retry waits, and the server that did not
//! answer five attempts with their waits will not answer this one's
//! either), until a call to the model is answered again. So a build kept
//! going (`-k`) over a dead server ends in moments rather than spending
//! every prompt task's retries, and a fallback model is asked at once.

use std::sync::Mutex;

/// One model's: the task whose attempts all found no server, while none
/// has been answered since.
#[derive(Debug, Default)]
pub struct Unreachable {
    found_by: Mutex<Option<String>>,
}

impl Unreachable {
    /// Every attempt of `task`'s call found no server.
    pub fn found(&self, task: &str) {
        *self.lock() = Some(task.to_string());
    }

    /// A call was answered (with any HTTP status): the server is there.
    pub fn answered(&self) {
        let mut found = self.lock();
        if found.is_some() {
            *found = None;
        }
    }

    /// The task that found the server unreachable, while no call has been
    /// answered since.
    pub fn found_by(&self) -> Option<String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A name is written whole: a panic elsewhere leaves it usable.
        self.found_by.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a failure not retried because the server was found unreachable
/// says after its message: its attempts, and who found it so.
pub fn not_retried(attempts: u32, found_by: &str) -> String {
    let attempts = match attempts {
        1 => "1 attempt".to_string(),
        n => format!("{n} attempts"),
    };
    format!(
        " ({attempts}, not retried: the server did not answer any attempt of {found_by} either)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_until_answered() {
        let model = Unreachable::default();
        assert_eq!(model.found_by(), None);
        model.found("t0");
        model.found("t1");
        assert_eq!(model.found_by().as_deref(), Some("t1"));
        model.answered();
        assert_eq!(model.found_by(), None);
        assert_eq!(
            not_retried(1, "t1"),
            " (1 attempt, not retried: the server did not answer any attempt of t1 either)"
        );
    }
}
