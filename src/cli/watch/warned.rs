//! What a watch has warned of about its pipeline, so each warning is said
//! once per watch session: the pipeline's warnings at a load
//! ([`crate::model::Graph::warnings`]) and those its builds give as they
//! expand fan-outs ([`crate::exec::Notice::GlobLeavesOut`], given by every
//! build that expands one, since a watch loads fan-outs whose list a task
//! makes as placeholders), and that of a task no longer in the pipeline
//! whose outputs stay ([`crate::exec::Notice::TaskLeft`], given by every
//! build). A warning is said again only when its text
//! changes, or when it comes back after a round that built without it.

use std::sync::Mutex;

/// The warnings of the last round that built, and of the round now
/// running.
#[derive(Debug, Default)]
pub struct Warned(Mutex<Rounds>);

#[derive(Debug, Default)]
struct Rounds {
    /// What the last round that built warned of (said then or before).
    before: Vec<String>,
    /// What this round warned of so far.
    now: Vec<String>,
}

impl Warned {
    /// Whether to say `warning` now: not when the last round that built
    /// had it, nor when this round had it already. Either way it is one of
    /// this round's.
    pub fn fresh(&self, warning: &str) -> bool {
        let mut rounds = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if rounds.now.iter().any(|w| w == warning) {
            return false;
        }
        rounds.now.push(warning.to_string());
        !rounds.before.iter().any(|w| w == warning)
    }

    /// The round is over. One that `built` says what is current, so a
    /// warning it did not have is said again if it comes back; one that
    /// did not build (a pipeline that stopped loading) knows too little to
    /// forget anything.
    pub fn round_over(&self, built: bool) {
        let mut rounds = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::mem::take(&mut rounds.now);
        if built {
            rounds.before = now;
        } else {
            for warning in now {
                if !rounds.before.contains(&warning) {
                    rounds.before.push(warning);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_is_said_once_and_again_only_after_a_build_without_it() {
        let warned = Warned::default();
        assert!(warned.fresh("a"));
        assert!(!warned.fresh("a"));
        warned.round_over(true);
        assert!(!warned.fresh("a"));
        assert!(warned.fresh("b"));
        warned.round_over(true);
        // A round that did not build forgets nothing.
        warned.round_over(false);
        assert!(!warned.fresh("a"));
        warned.round_over(true);
        // Gone for a build, then back: said again.
        warned.round_over(true);
        assert!(warned.fresh("a"));
    }
}
