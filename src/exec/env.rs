//! The environment a build runs in: the variables its commands inherit and
//! its model calls read (API keys, by the names the pipeline gives; retry
//! pacing). The caller gives it (the CLI: the process's own environment, read
//! once), so nothing below reads the process environment behind its back,
//! and a library user can run builds with an environment of its choosing.

use std::ffi::{OsStr, OsString};

/// Variables, as the process environment holds them.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: Vec<(OsString, OsString)>,
}

impl Env {
    pub fn new(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Env {
        Env {
            vars: vars.into_iter().collect(),
        }
    }

    /// Every variable, in order.
    pub fn vars(&self) -> &[(OsString, OsString)] {
        &self.vars
    }

    /// A variable's value, when it is set and valid UTF-8 (the last one
    /// wins, as for a process).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == OsStr::new(name))
            .and_then(|(_, v)| v.to_str())
    }
}
