//! Whether text gets colour: the one decision, made for each stream
//! (stderr for the printer, stdout for `status`) from `--color`, the
//! environment and whether the stream is a terminal.
//!
//! Precedence: `--color always|never` > `$NO_COLOR` (not empty: off) >
//! `$CLICOLOR_FORCE` (not empty and not `0`: on) > a terminal whose
//! `$TERM` is set and not `dumb` (the caller's `terminal`).

use std::ffi::OsStr;

use super::args::ColorArg;

/// What the environment says about colour, read once (by `Context`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ColourEnv {
    /// `$NO_COLOR` is set and not empty.
    pub no_color: bool,
    /// `$CLICOLOR_FORCE` is set, not empty and not `0`.
    pub force: bool,
}

impl ColourEnv {
    /// From the values of `$NO_COLOR` and `$CLICOLOR_FORCE`.
    pub fn from_vars(no_color: Option<&OsStr>, force: Option<&OsStr>) -> ColourEnv {
        ColourEnv {
            no_color: no_color.is_some_and(|v| !v.is_empty()),
            force: force.is_some_and(|v| !v.is_empty() && v != "0"),
        }
    }
}

/// Whether a stream gets colour: `flag` is `--color`, `terminal` whether
/// the stream is a terminal that shows colour (`$TERM` set, not `dumb`).
pub fn decide(flag: ColorArg, env: ColourEnv, terminal: bool) -> bool {
    match flag {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto if env.no_color => false,
        ColorArg::Auto if env.force => true,
        ColorArg::Auto => terminal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(no_color: Option<&str>, force: Option<&str>) -> ColourEnv {
        ColourEnv::from_vars(no_color.map(OsStr::new), force.map(OsStr::new))
    }

    #[test]
    fn the_flag_wins_then_no_color_then_clicolor_force_then_the_terminal() {
        let both = env(Some("1"), Some("1"));
        assert!(decide(ColorArg::Always, both, false));
        assert!(!decide(ColorArg::Never, env(None, Some("1")), true));
        assert!(!decide(ColorArg::Auto, both, true));
        assert!(decide(ColorArg::Auto, env(None, Some("1")), false));
        assert!(decide(ColorArg::Auto, env(None, None), true));
        assert!(!decide(ColorArg::Auto, env(None, None), false));
    }

    #[test]
    fn empty_values_and_a_zero_force_count_as_unset() {
        assert_eq!(env(Some(""), Some("")), ColourEnv::default());
        assert!(!env(None, Some("0")).force);
        assert!(env(None, Some("yes")).force);
    }
}
