//! Whether a glob input may match a path that an instance of a `foreach`
//! fan-out may write, said from the output's template alone: is there a
//! path the template may render (as fanout_paths.rs reads a template:
//! each expression its own text, any text, `/` included; `{{ key }}` a
//! part's text of a key's characters, never `.` nor `..`; what is
//! between tags left out or repeated) that the glob matches?
//! [`Graph::may_match`](super::graph::Graph) warns by it of a reader that
//! would not wait for the fan-out.
//!
//! The answer is exact, not a guess from a few sample paths: the
//! intersection of two languages is searched for a word. The glob's side
//! is globset's own reading of it: the regular expression globset makes of
//! the pattern (`*` a run of bytes without `/`, `?` one byte other than
//! `/`, `**` as globset takes it in a whole part, classes with ranges,
//! alternatives, `\` escapes), compiled to a Thompson automaton over bytes
//! by regex-automata, as globset's matcher is. The template's side reads a
//! rendered text byte by byte, its pieces in turn, and with it what the
//! resolver makes of the text: the glob reads the normalized path (empty
//! and `.` parts dropped, as for every path of a pipeline), so
//! `out/{{ item }}/x.md` may write `out/x.md` for an empty item, which
//! `out/*.md` matches. A text no path comes of makes none: one that leads
//! out (a leading `/`, a `..` part), with a control character, with a
//! glob character (an output with one is refused), that is not UTF-8 (a
//! glob's `?` or class takes a byte, but a value is whole characters),
//! or that normalizes to nothing.
//!
//! Not told apart, each a warning too many at most, never one too few:
//! an expression that is twice in a template (each its own text), a path
//! in `.planexe/` (which no glob walks), a key of a non-ASCII character
//! that is not a letter or a digit, as fanout_paths.rs takes it, and a
//! glob whose literal folder holds a `\` (the walk starts from the folder
//! as written, the glob reads it unescaped: it matches no file).
//!
//! A state of the search is a piece of the template, where a key's text
//! is (one dot or two so far: no key is `.` nor `..`), what normalizing
//! keeps in mind (16 states) and a state of the glob's automaton: their
//! number is at most the product of those, never exponential.

use regex_automata::nfa::thompson::{State, WhichCaptures, NFA};
use regex_automata::util::{primitives::StateID, syntax};
use rustc_hash::{FxHashMap, FxHashSet};

use super::fanout_paths::{key_byte, pieces, Piece};

/// Whether `glob` (as the resolver builds it) may match a path that an
/// output `template` of a `foreach` fan-out may render.
pub fn may_write_into(template: &str, glob: &globset::GlobMatcher) -> bool {
    // Globset compiled the same expression; should this fail all the
    // same, say it may (a warning too many, not a race unsaid).
    automaton(glob).is_none_or(|nfa| meet(&pieces(template, false), &nfa).is_some())
}

/// Globset's expression for `glob`, as a Thompson automaton over bytes
/// read the way globset's matcher reads it.
fn automaton(glob: &globset::GlobMatcher) -> Option<NFA> {
    NFA::compiler()
        .syntax(syntax::Config::new().utf8(false).dot_matches_new_line(true))
        .configure(NFA::config().which_captures(WhichCaptures::None))
        .build(glob.glob().regex())
        .ok()
}

/// A text that `pieces` may render and that normalizes to a path the
/// anchored `nfa` matches, if there is one: each of its bytes with the
/// piece it is of.
fn meet(pieces: &[Piece], nfa: &NFA) -> Option<Vec<(usize, u8)>> {
    let bytes = representatives(nfa);
    let start = closure(nfa, &[nfa.start_anchored()]);
    // Each state with the one it was first reached from, and the byte
    // read on the way (none for a piece left or the glob's own step).
    let mut stack: Vec<(Node, Step)> = start
        .into_iter()
        .map(|glob| {
            let node = Node {
                piece: 0,
                dots: 0,
                raw: Raw::Begin,
                glob,
            };
            (node, None)
        })
        .collect();
    let mut seen: FxHashMap<Node, Step> = FxHashMap::default();
    let mut emitted = Vec::with_capacity(4);
    while let Some((node, from)) = stack.pop() {
        if seen.contains_key(&node) {
            continue;
        }
        seen.insert(node, from);
        let Some(&piece) = pieces.get(node.piece) else {
            if node.raw.accepts() && matches!(nfa.state(node.glob), State::Match { .. }) {
                return Some(trail(&seen, node));
            }
            continue;
        };
        // A value is whole characters: it ends between two. Any text and
        // a key's further bytes may end here (a key not `.` nor `..`).
        let whole = !matches!(node.raw, Raw::Char(_));
        if whole && (piece == Piece::Any || (piece == Piece::KeyBytes && node.dots == 0)) {
            let next = Node {
                piece: node.piece + 1,
                dots: 0,
                ..node
            };
            stack.push((next, Some((node, None))));
        }
        let one;
        let candidates: &[u8] = match piece {
            Piece::Byte(b) => {
                one = [b];
                &one
            }
            _ => &bytes,
        };
        // Pushed last, the lowest bytes are tried first.
        for &b in candidates.iter().rev() {
            let (piece_next, dots) = match piece {
                Piece::Byte(_) => (node.piece + 1, 0),
                Piece::Any => (node.piece, 0),
                Piece::KeyByte | Piece::KeyBytes if !key_byte(b) => continue,
                Piece::KeyByte => (node.piece + 1, u8::from(b == b'.')),
                Piece::KeyBytes => (node.piece, key_dots(node.dots, b)),
            };
            emitted.clear();
            let Some(raw) = node.raw.step(b, &mut emitted) else {
                continue;
            };
            for glob in feed(nfa, node.glob, &emitted) {
                let next = Node {
                    piece: piece_next,
                    dots,
                    raw,
                    glob,
                };
                stack.push((next, Some((node, Some(b)))));
            }
        }
    }
    None
}

/// The bytes read on the way to `node`, each with its piece.
fn trail(seen: &FxHashMap<Node, Step>, mut node: Node) -> Vec<(usize, u8)> {
    let mut out = Vec::new();
    while let Some(&Some((from, b))) = seen.get(&node) {
        out.extend(b.map(|b| (from.piece, b)));
        node = from;
    }
    out.reverse();
    out
}

/// How a state of the search was first reached: from which, and the
/// byte read on the way (none when a piece is left, or the glob alone
/// steps); none for a first state.
type Step = Option<(Node, Option<u8>)>;

/// A state of the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Node {
    /// The template's piece next.
    piece: usize,
    /// Inside a key: the dots it is so far, 1 or 2 (0: none, or other
    /// characters too).
    dots: u8,
    raw: Raw,
    /// A state of the glob's automaton that reads a byte, or its match.
    glob: StateID,
}

/// The dots a key's text is after one more byte `b`.
fn key_dots(dots: u8, b: u8) -> u8 {
    match (dots, b) {
        (1, b'.') => 2,
        _ => 0,
    }
}

/// What the resolver keeps in mind of a rendered text read so far, to
/// make the normalized path of it: `kept` when a part of the path is
/// made already (the next one comes after a `/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Raw {
    /// Nothing read: a `/` here makes the path absolute.
    Begin,
    /// At the start of a part (after a `/`, or a leading `./`).
    Gap { kept: bool },
    /// A `.` at the start of a part: a part of its own if a `/` or the
    /// end follows, dropped.
    Dot { kept: bool },
    /// `..` at the start of a part: leads out if it is the part.
    DotDot { kept: bool },
    /// Inside a part of the path, between characters.
    Part,
    /// Inside a part, inside a character: the bytes the next may be,
    /// and what follows.
    Char(Tail),
}

/// The rest of a UTF-8 character after its first byte (RFC 3629).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Tail {
    One,
    Two,
    Three,
    /// After `E0`: `A0..=BF`, then one.
    E0,
    /// After `ED`: `80..=9F` (no surrogates), then one.
    Ed,
    /// After `F0`: `90..=BF`, then two.
    F0,
    /// After `F4`: `80..=8F`, then two.
    F4,
}

impl Raw {
    /// The state after `b`, with what it adds to the normalized path
    /// pushed on `out`; `None` when no path comes of the text.
    fn step(self, b: u8, out: &mut Vec<u8>) -> Option<Raw> {
        // Refused in any path, and in an output: a glob character.
        if b.is_ascii_control() || matches!(b, b'*' | b'?' | b'[' | b'{') {
            return None;
        }
        let part = |kept: bool, lead: &[u8], out: &mut Vec<u8>| {
            if kept {
                out.push(b'/');
            }
            out.extend_from_slice(lead);
            out.push(b);
            Raw::started(b)
        };
        match (self, b) {
            (Raw::Char(tail), _) => {
                out.push(b);
                tail.next(b)
            }
            (Raw::Begin | Raw::DotDot { .. }, b'/') => None,
            (Raw::Gap { kept } | Raw::Dot { kept }, b'/') => Some(Raw::Gap { kept }),
            (Raw::Part, b'/') => Some(Raw::Gap { kept: true }),
            (Raw::Begin, b'.') => Some(Raw::Dot { kept: false }),
            (Raw::Gap { kept }, b'.') => Some(Raw::Dot { kept }),
            (Raw::Dot { kept }, b'.') => Some(Raw::DotDot { kept }),
            (Raw::Begin, _) => part(false, b"", out),
            (Raw::Gap { kept }, _) => part(kept, b"", out),
            (Raw::Dot { kept }, _) => part(kept, b".", out),
            (Raw::DotDot { kept }, _) => part(kept, b"..", out),
            (Raw::Part, _) => {
                out.push(b);
                Raw::started(b)
            }
        }
    }

    /// Inside a part, after the first byte `b` of a character (`None`
    /// for one no character starts with).
    fn started(b: u8) -> Option<Raw> {
        let tail = match b {
            0x00..=0x7f => return Some(Raw::Part),
            0xc2..=0xdf => Tail::One,
            0xe0 => Tail::E0,
            0xed => Tail::Ed,
            0xe1..=0xef => Tail::Two,
            0xf0 => Tail::F0,
            0xf1..=0xf3 => Tail::Three,
            0xf4 => Tail::F4,
            _ => return None,
        };
        Some(Raw::Char(tail))
    }

    /// Whether the text read makes a path: not empty, not leading out,
    /// whole characters.
    fn accepts(self) -> bool {
        matches!(
            self,
            Raw::Part | Raw::Gap { kept: true } | Raw::Dot { kept: true }
        )
    }
}

impl Tail {
    /// The state after the next byte of the character, `b`.
    fn next(self, b: u8) -> Option<Raw> {
        let (range, then) = match self {
            Tail::One => (0x80..=0xbf, None),
            Tail::Two => (0x80..=0xbf, Some(Tail::One)),
            Tail::Three => (0x80..=0xbf, Some(Tail::Two)),
            Tail::E0 => (0xa0..=0xbf, Some(Tail::One)),
            Tail::Ed => (0x80..=0x9f, Some(Tail::One)),
            Tail::F0 => (0x90..=0xbf, Some(Tail::Two)),
            Tail::F4 => (0x80..=0x8f, Some(Tail::Two)),
        };
        range
            .contains(&b)
            .then_some(then.map_or(Raw::Part, Raw::Char))
    }
}

/// One byte of each class of bytes that the glob's automaton, a key,
/// UTF-8 and the normalizing all treat alike: what a piece of any text
/// may be tried with, in place of all 256.
fn representatives(nfa: &NFA) -> Vec<u8> {
    let classes = nfa.byte_classes();
    // The bytes the normalizing and an output's refusal read alone.
    let own = |b: u8| matches!(b, b'/' | b'.' | b'*' | b'?' | b'[' | b'{');
    let kind = |b: u8| {
        (
            classes.get(b),
            key_byte(b),
            b.is_ascii_control(),
            utf8_kind(b),
        )
    };
    (0..=255u8)
        .filter(|&b| b == 0 || own(b) || own(b - 1) || kind(b) != kind(b - 1))
        .collect()
}

/// Which bytes UTF-8 treats alike ([`Raw::started`], [`Tail::next`]).
fn utf8_kind(b: u8) -> u8 {
    match b {
        0x00..=0x7f => 0,
        0x80..=0x8f => 1,
        0x90..=0x9f => 2,
        0xa0..=0xbf => 3,
        0xc0..=0xc1 => 4,
        0xc2..=0xdf => 5,
        0xe0 => 6,
        0xe1..=0xec | 0xee..=0xef => 7,
        0xed => 8,
        0xf0 => 9,
        0xf1..=0xf3 => 10,
        0xf4 => 11,
        0xf5..=0xff => 12,
    }
}

/// The states of `nfa` that read a byte or match, reached from `from`
/// without reading one. Globset's expression is anchored at both ends
/// and has no other assertion, so an assertion is passed through.
fn closure(nfa: &NFA, from: &[StateID]) -> Vec<StateID> {
    let mut out = Vec::new();
    let mut seen = FxHashSet::default();
    let mut stack = from.to_vec();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        match nfa.state(id) {
            State::Look { next, .. } | State::Capture { next, .. } => stack.push(*next),
            State::Union { alternates } => stack.extend(alternates.iter().rev()),
            State::BinaryUnion { alt1, alt2 } => stack.extend([*alt2, *alt1]),
            State::Fail => {}
            State::ByteRange { .. } | State::Sparse(_) | State::Dense(_) | State::Match { .. } => {
                out.push(id)
            }
        }
    }
    out
}

/// The states (as [`closure`] gives them) `nfa` may be in after reading
/// `bytes` from `from`.
fn feed(nfa: &NFA, from: StateID, bytes: &[u8]) -> Vec<StateID> {
    let mut at = vec![from];
    for &b in bytes {
        let next: Vec<StateID> = at.iter().filter_map(|&id| read(nfa, id, b)).collect();
        if next.is_empty() {
            return next;
        }
        at = closure(nfa, &next);
    }
    at
}

/// The state `nfa`'s state `id` goes to on `b`.
fn read(nfa: &NFA, id: StateID, b: u8) -> Option<StateID> {
    match nfa.state(id) {
        State::ByteRange { trans } => (trans.start..=trans.end).contains(&b).then_some(trans.next),
        State::Sparse(sparse) => sparse
            .transitions
            .iter()
            .find(|t| (t.start..=t.end).contains(&b))
            .map(|t| t.next),
        State::Dense(dense) => {
            Some(dense.transitions[usize::from(b)]).filter(|&next| next != StateID::ZERO)
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "glob_overlap_tests.rs"]
mod tests;
