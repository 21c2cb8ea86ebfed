//! The one palette: each state's colour on a page (`graph`, the HTML
//! report), on a terminal (ANSI), and its symbol. Whether a terminal gets
//! colour at all is decided once, by the caller ([`Paint::new`]).

use super::standing::Standing;

/// A state's fill colour on a page.
pub fn colour(standing: Standing) -> &'static str {
    match standing {
        Standing::Done => "#9be29b",
        Standing::Failed => "#f28b82",
        Standing::Running => "#8ab4f8",
        Standing::FailedPendingCheck => "#ff9e40",
        Standing::Stopped => "#fbbc04",
        Standing::Stale => "#fdd663",
        Standing::Pending | Standing::NeverBuilt => "#dadce0",
    }
}

/// The colour of a state named in a file (a trace, a run record, the
/// summary): grey for what is not a state of a task.
pub fn colour_of(state: &str) -> &'static str {
    match state {
        "done" | "completed" => colour(Standing::Done),
        "failed" => colour(Standing::Failed),
        "stopped" => colour(Standing::Stopped),
        "running" => colour(Standing::Running),
        "failed-pending-check" => colour(Standing::FailedPendingCheck),
        "stale" => colour(Standing::Stale),
        _ => colour(Standing::NeverBuilt),
    }
}

/// A model call's colour: answered, or failed.
pub fn call_colour(ok: bool) -> &'static str {
    if ok {
        "#d7aefb"
    } else {
        colour(Standing::Failed)
    }
}

/// ANSI styles of terminal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `error:` and FAILED.
    Error,
    Warning,
    Hint,
    Success,
    Bold,
    /// A heading of tasks in this state.
    State(Standing),
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Error => "1;31",
            Style::Warning => "1;33",
            Style::Hint => "1;36",
            Style::Success => "32",
            Style::Bold => "1",
            Style::State(s) => match s {
                Standing::Failed => "1;31",
                Standing::Running => "1;34",
                // Orange (256 colours).
                Standing::FailedPendingCheck => "1;38;5;208",
                Standing::Stopped => "1;33",
                Standing::Stale | Standing::NeverBuilt => "33",
                Standing::Pending => "2",
                Standing::Done => "32",
            },
        }
    }
}

/// Paints terminal text, or leaves it plain.
#[derive(Debug, Clone, Copy)]
pub struct Paint {
    enabled: bool,
}

impl Paint {
    /// `enabled`: the text gets colour (decided by the caller).
    pub fn new(enabled: bool) -> Paint {
        Paint { enabled }
    }

    pub fn paint(&self, style: Style, text: &str) -> String {
        if self.enabled {
            format!("\x1b[{}m{text}\x1b[0m", style.code())
        } else {
            text.to_string()
        }
    }

    /// A state's symbol before a task's name (none on plain text).
    pub fn symbol(&self, standing: Standing) -> &'static str {
        if !self.enabled {
            return "";
        }
        match standing {
            Standing::Failed => "✗ ",
            Standing::Running => "▶ ",
            Standing::FailedPendingCheck => "? ",
            Standing::Stopped => "■ ",
            Standing::Stale | Standing::NeverBuilt => "• ",
            Standing::Pending => "… ",
            Standing::Done => "✓ ",
        }
    }
}
