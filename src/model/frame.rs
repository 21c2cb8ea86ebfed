//! The line a diagnostic shows under its message, and the carets under
//! its span, laid out in terminal columns: a CJK character or an emoji
//! takes two, a combining mark none, a control character one (shown as
//! `�`, so the terminal is safe), and a tab the spaces to the next multiple
//! of [`TAB`] columns (expanded, so the carets stay aligned whatever the
//! terminal's or pager's tab stops). A line wider than [`SHOWN`] columns
//! (a minified or binary one can be megabytes long) is shown as a window
//! of at most [`SHOWN`] columns around the span's start, each cut end
//! marked `…`; carets stop at the cut, and the `file:line:col` above them
//! stays exact. Two passes over the line, no copy of it. A span over
//! several lines is framed one line at a time, its first and its last
//! ([`Source::diagnostic`](super::source::Source::diagnostic)).

use std::ops::Range;

use unicode_width::UnicodeWidthChar;

/// The most columns a shown line takes, its `…` marks included.
const SHOWN: usize = 120;
/// How many columns of a cut line are shown before the span (when the
/// span starts further in than that).
const BEFORE: usize = SHOWN / 3;
/// A tab in a shown line reaches the next multiple of this many columns.
const TAB: usize = 4;

/// `line` (without its line ending) as shown, and what goes under it:
/// spaces, then a caret for each column the bytes `span` of the line take
/// (at least one: an empty span, or one at `line.len()`, the end of the
/// line, gets one caret where it is). The bytes in `hidden` show as `*`.
pub(super) fn frame(line: &str, span: Range<usize>, hidden: &[Range<usize>]) -> (String, String) {
    let mut total = 0;
    let (mut from, mut to) = (None, None);
    for cell in cells(line, hidden) {
        if from.is_none() && cell.byte >= span.start {
            from = Some(cell.col);
        }
        if to.is_none() && cell.byte >= span.end {
            to = Some(cell.col);
        }
        total = cell.col + cell.width;
    }
    let from = from.unwrap_or(total);
    let to = to.unwrap_or(total).max(from);
    // The columns `start..end` of the line shown, each `…` taking one of
    // the [`SHOWN`]; a span near the end of a line gets a full window.
    let (start, end) = if total <= SHOWN {
        (0, total)
    } else if from <= BEFORE {
        (0, SHOWN - 1)
    } else {
        let start = (from - BEFORE).min(total - (SHOWN - 1));
        let end = if total - start < SHOWN {
            total
        } else {
            start + SHOWN - 2
        };
        (start, end)
    };
    let mut shown = String::new();
    if start > 0 {
        shown.push('…');
    }
    // The columns the window's text really spans: a wide character across
    // a cut is left out whole, and a combining mark goes with the
    // character it follows.
    let mut first = None;
    let mut last = start;
    for cell in cells(line, hidden) {
        if cell.col + cell.width > end {
            break;
        }
        if first.is_none() {
            if cell.col < start || (start > 0 && cell.col == start && cell.width == 0) {
                continue;
            }
            first = Some(cell.col);
        }
        cell.push_to(&mut shown);
        last = cell.col + cell.width;
    }
    let first = first.unwrap_or(start);
    if end < total {
        shown.push('…');
    }
    let lead = usize::from(start > 0);
    let from = from.clamp(first, last);
    let to = to.clamp(from, last);
    let mut under = " ".repeat(lead + from - first);
    under.push_str(&"^".repeat((to - from).max(1)));
    (shown, under)
}

/// One character of a line as shown: where it was, where it goes, what
/// it shows as.
struct Cell {
    /// Its byte offset in the line.
    byte: usize,
    /// The column it starts at (0-based) in the whole line as shown.
    col: usize,
    /// The columns it takes.
    width: usize,
    shown: Shown,
}

enum Shown {
    Char(char),
    Repeat(char, usize),
}

impl Cell {
    fn push_to(&self, out: &mut String) {
        match self.shown {
            Shown::Char(c) => out.push(c),
            Shown::Repeat(c, n) => out.extend(std::iter::repeat_n(c, n)),
        }
    }
}

/// `line`'s characters as shown, in order.
fn cells<'a>(line: &'a str, hidden: &'a [Range<usize>]) -> impl Iterator<Item = Cell> + 'a {
    let mut col = 0;
    line.char_indices().map(move |(byte, c)| {
        let shown = if hidden.iter().any(|r| r.contains(&byte)) {
            // As many `*` as the character has bytes, as the rest of the
            // file hides a secret.
            Shown::Repeat('*', c.len_utf8())
        } else if c == '\t' {
            Shown::Repeat(' ', TAB - col % TAB)
        } else if c.is_control() {
            Shown::Char('\u{FFFD}')
        } else {
            Shown::Char(c)
        };
        let width = match shown {
            Shown::Char(c) => c.width().unwrap_or(0),
            Shown::Repeat(_, n) => n,
        };
        let cell = Cell {
            byte,
            col,
            width,
            shown,
        };
        col += width;
        cell
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(line: &str, span: Range<usize>) -> String {
        let (line, under) = frame(line, span, &[]);
        format!("{line}\n{under}")
    }

    #[test]
    fn a_short_line_is_shown_whole() {
        assert_eq!(shown("ab = 1", 0..2), "ab = 1\n^^");
        assert_eq!(shown("ab", 2..2), "ab\n  ^");
        assert_eq!(shown("計画 = 1", 0..6), "計画 = 1\n^^^^");
        assert_eq!(shown("\tx\ty", 1..3), "    x   y\n    ^^^^");
        assert_eq!(shown("a\u{1b}b", 2..3), "a\u{FFFD}b\n  ^");
    }

    #[test]
    fn a_wide_line_is_cut_in_columns() {
        let line = "計".repeat(100);
        let (text, under) = frame(&line, 150..153, &[]);
        assert_eq!(text.chars().count(), 1 + 59 + 1);
        assert!(text.starts_with('…') && text.ends_with('…'));
        assert_eq!(under, format!("{}^^", " ".repeat(1 + 40)));
    }

    #[test]
    fn carets_stop_at_the_cut() {
        let line = format!("k{} = 1", "x".repeat(300));
        let (text, under) = frame(&line, 0..301, &[]);
        assert_eq!(text, format!("k{}…", "x".repeat(118)));
        assert_eq!(under, "^".repeat(119));
    }

    #[test]
    fn a_span_far_in_is_brought_into_view() {
        let line = format!("{}bogus = 1", "x".repeat(300));
        let (text, under) = frame(&line, 300..305, &[]);
        assert_eq!(text, format!("…{}bogus = 1", "x".repeat(110)));
        assert_eq!(under, format!("{}^^^^^", " ".repeat(111)));
        let (text, under) = frame(&line, line.len()..line.len(), &[]);
        assert_eq!(text.chars().count(), 120);
        assert_eq!(under, format!("{}^", " ".repeat(120)));
    }
}
