//! What the instances of a `foreach` fan-out may write and read, said from
//! the templates of its `outputs` and `inputs` alone, for any item: what a
//! new run's seed files are judged by ([`Graph::fan_out_writing`],
//! [`Graph::fan_out_reading`]), and a `[pipeline] results` path named
//! before its fan-out's list is made.
//!
//! Before its list is made, the templates are all there is to know of a
//! fan-out's files; once it is, the list may change all the same (a given
//! list edited, a built one made again) and its instances with it. So a
//! path is judged the same way whether the fan-out has expanded or not: a
//! template *may render* it when some text in place of each of its
//! expressions gives the path once normalized as every path of a pipeline
//! is (empty and `.` parts dropped: `out/{{ item.dir }}/x.md` may render
//! `out/x.md`, for an empty `dir`). A value may be any text, `/` included:
//! an item's fields are any JSON, and rendering refuses only a path that
//! leads out (`..`, absolute), a control character and, in an output, a
//! glob character. `{{ key }}` alone is narrower: the key fanout.rs takes
//! is a part of a path of its own characters (letters, digits, spaces,
//! `- _ . , + @ =`), never empty, `.` or `..`, so `{{ key }}.md` renders
//! no path in a folder. Text between `{% ... %}` tags may be left out or
//! repeated, so a template's first tag to its last stands for any text;
//! `{# ... #}` renders nothing, and a tag's whitespace control (`{{-`,
//! `-}}`) may take the spaces beside it. In an input, a glob's `*`, `?`,
//! `[...]` and `{...}` stand for any text too (a value that itself holds
//! glob syntax is not followed).
//!
//! The match is an automaton's: the template's pieces against every way
//! of writing the path that normalizes to it, in time the product of
//! their lengths. glob_overlap.rs meets a glob with the same pieces.

use super::graph::Graph;
use crate::store::rundir;

impl Graph {
    /// The `foreach` fan-out whose instances may write `path` (normalized,
    /// relative to the run directory), as the templates of its outputs
    /// say: its name, the template, and its list file.
    pub fn fan_out_writing(&self, path: &str) -> Option<(&str, &str, &str)> {
        // An output holding a glob character is refused when rendered.
        if path.contains(['*', '?', '[', '{']) || !normalized(path) {
            return None;
        }
        self.fanouts.iter().find_map(|(name, group)| {
            let list = group.list.as_deref()?;
            let template = group
                .templates
                .iter()
                .find(|t| may_render(&pieces(t, false), path))?;
            Some((name.as_str(), template.as_str(), list))
        })
    }

    /// The `foreach` fan-out whose instances may read `path` (normalized,
    /// relative to the run directory), as the templates of their inputs
    /// say (an input that names a fan-out reads its outputs): its name and
    /// the template.
    pub fn fan_out_reading(&self, path: &str) -> Option<(&str, &str)> {
        if !normalized(path) {
            return None;
        }
        self.fanouts.iter().find_map(|(name, group)| {
            group.list.as_ref()?;
            let template = group.input_templates.iter().find(|t| {
                !self.fanouts.contains_key(t.as_str()) && may_render(&pieces(t, true), path)
            })?;
            Some((name.as_str(), template.as_str()))
        })
    }
}

/// Whether `path` is a path of the run directory as the resolver
/// normalizes one, so that a rendered path may come to it.
fn normalized(path: &str) -> bool {
    rundir::normalize(path).is_ok_and(|p| p == path)
}

/// A piece of a template: what a render puts in its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Piece {
    /// This byte.
    Byte(u8),
    /// Any text.
    Any,
    /// One byte of a key.
    KeyByte,
    /// Any number of bytes of a key.
    KeyBytes,
}

/// The pieces of `template` (an input's, when `glob`, whose glob syntax
/// stands for any text).
pub(super) fn pieces(template: &str, glob: bool) -> Vec<Piece> {
    let bytes = template.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    // A field with no expression and no tag is taken as it is, a `{#` too.
    let rendered = template.contains("{{") || template.contains("{%");
    // The end of the last tag: the text from the first tag to it may be
    // left out or repeated.
    let last_tag = template.rfind("%}");
    let mut trim_after = false;
    let mut at = 0;
    while at < bytes.len() {
        let close: Option<&[u8]> = match &bytes[at..] {
            [b'{', b'{', ..] if rendered => Some(b"}}"),
            [b'{', b'%', ..] if rendered => Some(b"%}"),
            [b'{', b'#', ..] if rendered => Some(b"#}"),
            _ => None,
        };
        if let Some(close) = close {
            let end = match close {
                b"%}" => last_tag.filter(|&e| e >= at + 2),
                _ => find(&bytes[at + 2..], close).map(|e| at + 2 + e),
            };
            // Unclosed, it cannot render; taken as any text all the same.
            let Some(end) = end else {
                out.push(Piece::Any);
                break;
            };
            let inner = &bytes[at + 2..end];
            if inner.first() == Some(&b'-') {
                while matches!(out.last(), Some(Piece::Byte(b)) if b.is_ascii_whitespace()) {
                    out.pop();
                }
            }
            trim_after = inner.last() == Some(&b'-');
            let mut expr = inner;
            if let Some(e) = expr.strip_prefix(b"-") {
                expr = e;
            }
            if let Some(e) = expr.strip_suffix(b"-") {
                expr = e;
            }
            let key = expr.trim_ascii() == b"key";
            match close {
                b"#}" => {}
                b"}}" if key => out.extend([Piece::KeyByte, Piece::KeyBytes]),
                _ => out.push(Piece::Any),
            }
            at = end + 2;
            continue;
        }
        let b = bytes[at];
        at += 1;
        if trim_after && b.is_ascii_whitespace() {
            continue;
        }
        trim_after = false;
        if glob && matches!(b, b'*' | b'?' | b'[' | b'{') {
            // A class or a set of choices, to its end.
            let end = match b {
                b'[' => find(&bytes[at..], b"]"),
                b'{' => find(&bytes[at..], b"}"),
                _ => None,
            };
            at += end.map_or(0, |e| e + 1);
            out.push(Piece::Any);
            continue;
        }
        out.push(Piece::Byte(b));
    }
    out
}

/// Where `needle` first is in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether `b` may be a byte of a fan-out's key (a character
/// `fanout::valid_key` takes, a non-ASCII one's bytes all taken).
pub(super) fn key_byte(b: u8) -> bool {
    b >= 0x80 || b.is_ascii_alphanumeric() || b"-_.,+@= ".contains(&b)
}

/// The ways of writing `path` (normalized) that normalize to it, as an
/// automaton over bytes: the path's own, with empty and `.` parts at any
/// of its folder boundaries, after a leading `./` and at its end (never a
/// leading `/`, which would make it absolute).
struct Written<'a> {
    path: &'a [u8],
}

/// A state of [`Written`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// The first `n` bytes of the path written.
    Path(usize),
    /// Those, then a `.` that is a part of its own if a `/` follows.
    Dot(usize),
    /// Nothing of the path yet, but a leading `./` (after which a `/` is
    /// an empty part, no longer a root).
    Led,
    /// The whole path, then a `/`.
    Trail,
    /// The whole path, then a `/` and a `.`.
    TrailDot,
}

impl Written<'_> {
    /// The states one byte leads to from `at`, with that byte.
    fn steps(&self, at: At) -> Vec<(u8, At)> {
        let path = self.path;
        match at {
            At::Path(n) if n == path.len() => vec![(b'/', At::Trail)],
            At::Path(0) => vec![(path[0], At::Path(1)), (b'.', At::Dot(0))],
            // At a folder boundary: an empty part, or a `.` one.
            At::Path(n) if path[n - 1] == b'/' => vec![
                (path[n], At::Path(n + 1)),
                (b'.', At::Dot(n)),
                (b'/', At::Path(n)),
            ],
            At::Path(n) => vec![(path[n], At::Path(n + 1))],
            At::Dot(0) => vec![(b'/', At::Led)],
            At::Dot(n) => vec![(b'/', At::Path(n))],
            At::Led => vec![(path[0], At::Path(1)), (b'.', At::Dot(0)), (b'/', At::Led)],
            At::Trail => vec![(b'/', At::Trail), (b'.', At::TrailDot)],
            At::TrailDot => vec![(b'/', At::Trail)],
        }
    }

    fn accepts(&self, at: At) -> bool {
        matches!(at, At::Trail | At::TrailDot) || at == At::Path(self.path.len())
    }

    /// A dense index of a state, below [`Written::states`].
    fn index(&self, at: At) -> usize {
        let end = self.path.len();
        match at {
            At::Path(n) => n,
            At::Dot(n) => end + 1 + n,
            At::Led => 2 * end + 2,
            At::Trail => 2 * end + 3,
            At::TrailDot => 2 * end + 4,
        }
    }

    fn states(&self) -> usize {
        2 * self.path.len() + 5
    }
}

/// Whether a template of `pieces` may render `path` (normalized).
fn may_render(pieces: &[Piece], path: &str) -> bool {
    if path.is_empty() {
        return false;
    }
    let written = Written {
        path: path.as_bytes(),
    };
    let width = written.states();
    let mut seen = vec![false; (pieces.len() + 1) * width];
    let mut stack = vec![(0usize, At::Path(0))];
    while let Some((piece, at)) = stack.pop() {
        let index = piece * width + written.index(at);
        if std::mem::replace(&mut seen[index], true) {
            continue;
        }
        let Some(&kind) = pieces.get(piece) else {
            if written.accepts(at) {
                return true;
            }
            continue;
        };
        if matches!(kind, Piece::Any | Piece::KeyBytes) {
            stack.push((piece + 1, at));
        }
        for (b, next) in written.steps(at) {
            match kind {
                Piece::Byte(c) if c == b => stack.push((piece + 1, next)),
                Piece::Byte(_) => {}
                Piece::Any => stack.push((piece, next)),
                // A key is never a part `.` of its own: it makes no
                // dropped part.
                Piece::KeyByte | Piece::KeyBytes
                    if !key_byte(b) || matches!(next, At::Dot(_) | At::TrailDot) => {}
                Piece::KeyByte => stack.push((piece + 1, next)),
                Piece::KeyBytes => stack.push((piece, next)),
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::{may_render, pieces};

    fn writes(template: &str, path: &str) -> bool {
        may_render(&pieces(template, false), path)
    }

    fn reads(template: &str, path: &str) -> bool {
        may_render(&pieces(template, true), path)
    }

    #[test]
    fn a_value_may_be_any_text_a_key_one_part_of_its_characters() {
        assert!(writes("out/{{ item }}.md", "out/a.md"));
        assert!(writes("out/{{ item }}.md", "out/deep/er.md"));
        assert!(writes("out/{{ item.title }}.md", "out/.md"));
        assert!(!writes("out/{{ item }}.md", "out/a.txt"));
        assert!(!writes("out/{{ item }}.md", "notes/a.md"));
        assert!(writes("out/{{ key }}.md", "out/a b,c.md"));
        assert!(writes("out/{{key}}.md", "out/é.md"));
        assert!(!writes("out/{{ key }}.md", "out/a/b.md"));
        assert!(!writes("out/{{ key }}.md", "out/.md"));
        assert!(!writes("{{ key }}.md", "notes/budget.md"));
        assert!(writes("{{ item }}.md", "notes/budget.md"));
        assert!(writes("{{ key }}/{{ item.n }}.md", "a/b.md"));
        assert!(writes("fixed.md", "fixed.md"));
        assert!(!writes("fixed.md", "fixed.mdx"));
        assert!(writes("{{ a }}-{{ b }}.md", "1-2.md"));
        assert!(!writes("{{ a }}-{{ b }}.md", "12.md"));
    }

    #[test]
    fn what_normalizing_drops_a_value_may_have_made() {
        // An empty value, a `.`, a `/` of its own: the parts it makes go.
        assert!(writes("out/{{ item.dir }}/x.md", "out/x.md"));
        assert!(writes("{{ item.dir }}/x.md", "x.md"));
        assert!(writes("{{ item }}x.md", "x.md"));
        assert!(writes("out/{{ item }}", "out"));
        assert!(writes("./out//{{ item }}", "out/a"));
        // A key is never empty, `.` nor `..`.
        assert!(!writes("out/{{ key }}/x.md", "out/x.md"));
        assert!(!writes("{{ key }}/x.md", "x.md"));
        assert!(writes("out/{{ key }}/x.md", "out/.k/x.md"));
        // A literal part is kept.
        assert!(!writes("out/{{ key }}/x.md", "x.md"));
    }

    #[test]
    fn tags_comments_and_whitespace_control() {
        // Between tags, text may be left out or repeated.
        let t = "w/{{ item.id }}-{% if item.x %}y{% endif %}.json";
        assert!(writes(t, "w/1-.json"));
        assert!(writes(t, "w/1-y.json"));
        assert!(!writes(t, "v/1-y.json"));
        assert!(writes("a{# note #}b{{ key }}", "abk"));
        assert!(writes("a {{- key }}", "ak"));
        assert!(writes("{{ key -}} .md", "k.md"));
        // No expression: not rendered, a `{#` taken as it is.
        assert!(writes("a{#b", "a{#b"));
        assert!(!writes("a{#b", "ab"));
        assert!(writes("out/{{ item", "out/anything/at/all"));
    }

    /// Every path a template of these pieces renders for these items, as
    /// the resolver normalizes it, is one it may render.
    #[test]
    fn what_a_template_renders_it_may_render() {
        use crate::model::template::{render_field, Vars};
        use serde_json::json;
        let parts = [
            "out",
            "/",
            ".",
            "{{ item.a }}",
            "{{ key }}",
            "{%- if item.b %} x/{% endif -%}",
            "{# c #}",
            ".md",
        ];
        let mut templates: Vec<String> = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = templates
                .iter()
                .flat_map(|t| parts.iter().map(move |p| format!("{t}{p}")))
                .collect();
            templates.extend(longer);
        }
        let mut checked = 0;
        for template in &templates {
            let pieces = pieces(template, false);
            for a in ["", ".", "a/b", "./c", "/", "c/."] {
                for b in [false, true] {
                    for key in ["k", "a.b"] {
                        let mut vars = Vars::new();
                        vars.insert("item".into(), json!({"a": a, "b": b}));
                        vars.insert("key".into(), json!(key));
                        let Ok(rendered) = render_field(template, &vars) else {
                            continue;
                        };
                        let Ok(path) = crate::store::rundir::normalize(&rendered) else {
                            continue;
                        };
                        checked += 1;
                        assert!(
                            may_render(&pieces, &path),
                            "{template:?} renders {rendered:?}, {path:?}, for {a:?} {b} {key:?}"
                        );
                    }
                }
            }
        }
        assert!(checked > 50_000, "{checked}");
    }

    #[test]
    fn an_input_s_glob_stands_for_any_text() {
        assert!(reads("notes/{{ key }}/*.md", "notes/a/x.md"));
        assert!(reads("data/[ab].csv", "data/a.csv"));
        assert!(reads("data/{a,b}.csv", "data/b.csv"));
        assert!(reads("data/?.csv", "data/c.csv"));
        assert!(!reads("data/*.csv", "notes/c.csv"));
        assert!(!writes("data/*.csv", "data/a.csv"));
    }
}
