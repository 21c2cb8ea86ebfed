//! How the names of `status`'s lines line up: the columns a name takes on
//! a terminal ([`columns`], `unicode-width`'s measure: a CJK character or
//! an emoji two, a combining or zero-width character none), and the
//! names' column, no wider than [`NAME_COLUMN_MAX`]: a longer name has a
//! line of its own, what follows it on the next, at the column.

use unicode_width::UnicodeWidthStr;

use crate::observe::palette::Paint;
use crate::observe::Standing;

/// The widest the names' column grows, in terminal columns: a name wider
/// than this has a line of its own (as a long option in `--help` does),
/// rather than push every other line's detail past the terminal's edge.
pub const NAME_COLUMN_MAX: usize = 40;

/// How many columns `text` takes on a terminal: a CJK character or an
/// emoji two, a combining or zero-width character none (`unicode-width`).
pub fn columns(text: &str) -> usize {
    if text.is_ascii() {
        text.len()
    } else {
        text.width()
    }
}

/// `name` and the spaces after it up to `column` (where its line's detail
/// starts), on a line of its own when it reaches the column (`column`
/// spaces then start the next line).
pub(super) fn name_cell(out: &mut String, name: &str, used: usize, column: usize) {
    out.push_str(name);
    let at = used + columns(name);
    if at + 2 > column {
        out.push('\n');
        pad(out, column);
    } else {
        pad(out, column - at);
    }
}

/// `n` spaces.
pub(super) fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// The column a group's details start at: after the indent, the state's
/// symbol (with colour), the names' column and two spaces.
pub(super) fn detail_column(paint: Paint, width: usize) -> usize {
    2 + columns(paint.symbol(Standing::Done)) + width + 2
}
