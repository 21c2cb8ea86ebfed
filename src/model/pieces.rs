//! A big pipeline file parsed in pieces: TOML parsing is the larger part
//! of opening a pipeline of many tasks, and each `[tasks.NAME]` table
//! stands alone. The pieces are parsed at once on the pool's threads, and
//! one after another on each: the parser's working memory (some 25 times
//! the text it parses) is then that of a piece, used again by the next,
//! rather than that of the whole file, taken fresh from the system page
//! by page.
//!
//! The file is cut just before `[tasks.` headers that begin a line. Each
//! piece is parsed behind a line of blanks as long as the text before it,
//! so that every span is the file's. The pieces are only
//! taken when each parses and together they are what the whole file would
//! parse to: a piece after the first holds task tables only, and no task
//! is defined in two pieces (a table's sub-table cut apart from it, a
//! task defined twice). Otherwise, and for a cut that falls inside a
//! multi-line string (the piece before it then does not parse), `None`:
//! the caller parses the whole file, which also says what is wrong with it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rayon::prelude::*;
use serde::de::DeserializeOwned;

/// Files smaller than twice this are parsed whole; a larger one is cut
/// in pieces of about this size, at most [`MOST_PIECES`].
const PIECE: usize = 64 * 1024;

/// The most pieces a file is cut into. The parser reads through each
/// piece's blanks (a byte at a time, as fast as it reads anything): cut in
/// `n` pieces, a file is read about `(n + 1) / 2` times over, which
/// outweighs what smaller pieces save beyond eight.
const MOST_PIECES: usize = 8;

/// The file parsed in pieces, the tasks of each (`tasks` finds them in a
/// parse) taken into the first piece's parse; `None` when the file is
/// small or must be parsed whole (see the module).
pub fn parse<T, K, V>(text: &str, tasks: impl Fn(&mut T) -> &mut BTreeMap<K, V>) -> Option<T>
where
    T: DeserializeOwned + Send,
    K: Ord,
{
    let count = (text.len() / PIECE).min(MOST_PIECES);
    if count < 2 {
        return None;
    }
    let mut cuts = vec![0];
    for k in 1..count {
        // On a character: the text may be anything but ASCII.
        let mut from = k * text.len() / count;
        while !text.is_char_boundary(from) {
            from += 1;
        }
        let Some(found) = text[from..].find("\n[tasks.") else {
            break;
        };
        let at = from + found + 1;
        if at > *cuts.last()? {
            cuts.push(at);
        }
    }
    cuts.push(text.len());
    if cuts
        .windows(2)
        .skip(1)
        .any(|w| has_other_tables(&text[w[0]..w[1]]))
    {
        return None;
    }
    // A piece behind its blanks: one buffer per thread of the pool, for
    // every piece it parses, freed with the parse.
    let buffers: Vec<Mutex<Vec<u8>>> = (0..rayon::current_num_threads())
        .map(|_| Mutex::default())
        .collect();
    let parsed: Vec<Option<T>> = cuts
        .par_windows(2)
        .with_max_len(1)
        .map(|w| {
            let mut own = Vec::new();
            let mut slot = rayon::current_thread_index()
                .and_then(|i| buffers.get(i))
                .map(|b| b.lock().unwrap_or_else(|p| p.into_inner()));
            let padded = slot.as_deref_mut().unwrap_or(&mut own);
            // One line: a line of blanks is one token to the parser, where
            // the blanked lines of the text before would be two each.
            // Filled as bytes (a `memset`), not a char at a time: the
            // blanks of eight pieces are four times the file.
            padded.clear();
            if let Some(blanks) = w[0].checked_sub(1) {
                padded.resize(blanks, b' ');
                padded.push(b'\n');
            }
            padded.extend_from_slice(&text.as_bytes()[w[0]..w[1]]);
            toml::from_str::<T>(std::str::from_utf8(padded).ok()?).ok()
        })
        .collect();
    let mut parsed = parsed.into_iter();
    let mut whole = parsed.next()??;
    for piece in parsed {
        for (name, task) in std::mem::take(tasks(&mut piece?)) {
            // Defined in two pieces: the whole file says what that means.
            if tasks(&mut whole).insert(name, task).is_some() {
                return None;
            }
        }
    }
    Some(whole)
}

/// Whether a piece has a table header other than a task's (`[pipeline]`,
/// `[models.X]`, `[[hooks]]`, `[tasks]`): such a piece could change what
/// the tables before it mean.
fn has_other_tables(piece: &str) -> bool {
    piece.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with('[') && !line.starts_with("[tasks.")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml::Spanned;

    /// The shape of a pipeline file, for these tests.
    #[derive(Debug, serde::Deserialize)]
    struct Doc {
        pipeline: Option<toml::Table>,
        #[serde(default)]
        models: BTreeMap<String, toml::Table>,
        #[serde(default)]
        tasks: BTreeMap<Spanned<String>, Spanned<toml::Table>>,
    }

    fn tasks_of(doc: &mut Doc) -> &mut BTreeMap<Spanned<String>, Spanned<toml::Table>> {
        &mut doc.tasks
    }

    fn tasks(n: usize) -> String {
        let mut text =
            String::from("[pipeline]\nname = \"big\"\n\n[models.m]\nprovider = \"openai\"\n\n");
        for i in 0..n {
            text.push_str(&format!(
                "[tasks.t{i:05}]\ninputs = [\"src/in.txt\"]\noutputs = [\"out/t{i:05}.txt\"]\n\
                 command = \"cksum src/in.txt > out/t{i:05}.txt\"\n\n"
            ));
        }
        text
    }

    /// `pieces` is what the whole of `text` parses to, spans included.
    fn same_as_whole(text: &str, pieces: &Doc) {
        let whole: Doc = toml::from_str(text).unwrap();
        assert_eq!(pieces.tasks.len(), whole.tasks.len());
        for ((a, da), (b, db)) in whole.tasks.iter().zip(&pieces.tasks) {
            assert_eq!((a.get_ref(), a.span()), (b.get_ref(), b.span()));
            assert_eq!(da.span(), db.span());
            assert_eq!(da.get_ref(), db.get_ref());
        }
        assert_eq!(whole.models, pieces.models);
        assert_eq!(whole.pipeline, pieces.pipeline);
    }

    #[test]
    fn pieces_parse_to_what_the_whole_file_parses_to_spans_included() {
        let text = tasks(12_000);
        assert!(text.len() > 4 * PIECE);
        same_as_whole(&text, &parse(&text, tasks_of).unwrap());
    }

    #[test]
    fn a_file_that_cannot_be_cut_cleanly_is_left_whole() {
        // A task defined twice, far apart: the whole file says so.
        let mut text = tasks(12_000);
        text.push_str("[tasks.t00001]\ncommand = \"true\"\n");
        assert!(toml::from_str::<Doc>(&text).is_err());
        assert!(parse(&text, tasks_of).is_none());
        // A table other than a task's after the first cut.
        let mut text = tasks(12_000);
        text.push_str("[[hooks]]\ncommand = \"true\"\n");
        assert!(parse(&text, tasks_of).is_none());
        // A sub-table cut apart from its task (around the middle, where the
        // cut falls): left whole, or parsed as the whole file would be.
        for i in 5_998..6_004 {
            let text = tasks(12_000).replace(
                &format!("[tasks.t{i:05}]\n"),
                &format!(
                    "[tasks.t{:05}.judge]\nprompt = \"p\"\n\n[tasks.t{i:05}]\n",
                    i - 1
                ),
            );
            if let Some(pieces) = parse(&text, tasks_of) {
                same_as_whole(&text, &pieces);
            }
        }
        // A multi-line string holding lines that look like headers.
        let text = tasks(12_000).replace(
            "command = \"cksum src/in.txt > out/t06000.txt\"",
            "command = \"\"\"\n[tasks.fake]\n[tasks.inside]\n\"\"\"",
        );
        if let Some(pieces) = parse(&text, tasks_of) {
            same_as_whole(&text, &pieces);
        }
    }
}
