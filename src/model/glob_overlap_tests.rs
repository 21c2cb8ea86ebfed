//! The intersection of what a template may render and what a glob
//! matches: cases, and a property against brute force (renders of many
//! short values, matched by globset as the resolver builds it).

use globset::{GlobBuilder, GlobMatcher};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

use super::{automaton, may_write_into, meet};
use crate::model::fanout::valid_key;
use crate::model::fanout_paths::{pieces, Piece};
use crate::store::rundir;

/// The matcher the resolver makes of `pattern` (normalized first).
fn glob(pattern: &str) -> Option<GlobMatcher> {
    let normalized = rundir::normalize(pattern).ok()?;
    Some(
        GlobBuilder::new(&normalized)
            .literal_separator(true)
            .build()
            .ok()?
            .compile_matcher(),
    )
}

fn meets(pattern: &str, template: &str) -> bool {
    may_write_into(template, &glob(pattern).expect(pattern))
}

#[test]
fn a_value_may_hold_what_the_glob_asks_for() {
    // No single stand-in (`0`, `a`, `A`) shows these.
    assert!(meets("out/x*.md", "out/{{ item }}.md"));
    assert!(meets("out/x*.md", "out/{{ key }}.md"));
    assert!(meets("per/[b-c].txt", "per/{{ item }}.txt"));
    assert!(meets("per/[!a-z].txt", "per/{{ key }}.txt"));
    assert!(meets("per/{one,two}.txt", "per/{{ item }}.txt"));
    assert!(meets("per/ab?.txt", "per/{{ item }}.txt"));
    assert!(meets("per/\\x.txt", "per/{{ item }}.txt"));
    // Any depth: a value holds `/`, and `**` takes it.
    assert!(meets("**/*.md", "a/{{ item }}/b.md"));
    assert!(meets("a/**", "a/{{ item }}/b.md"));
    assert!(meets("a/**/b.md", "a/{{ item }}/b.md"));
    assert!(meets("out/*/*.md", "out/{{ item }}.md"));
    assert!(meets("**", "{{ item }}"));
    // Non-ASCII on both sides, a byte at a time as globset reads it.
    assert!(meets("out/é*.md", "out/{{ item }}.md"));
    assert!(meets("out/??.md", "out/é.md"));
    assert!(meets("out/[é][é]?.md", "out/é{{ key }}.md"));
    assert!(!meets("out/?.md", "out/é.md"));
}

#[test]
fn no_value_makes_what_the_glob_reads() {
    assert!(!meets("out/*.txt", "out/{{ item }}.md"));
    // `*` stays in a part; the value's `/` is a folder, and an empty
    // value leaves `y` a folder.
    assert!(!meets("out/*.md", "out/{{ item }}/y/x.md"));
    assert!(!meets("out/*.md", "out/{{ key }}/x.md"));
    assert!(!meets("notes/*.md", "out/{{ item }}.md"));
    assert!(!meets("out/[b-c].md", "out/a{{ item }}.md"));
    assert!(!meets("out/{a,b}.md", "out/c{{ key }}.md"));
    // A key is one part, never empty.
    assert!(!meets("out/a/*.md", "out/{{ key }}.md"));
    assert!(!meets("out/*.md", "out/x/{{ key }}.md"));
    assert!(!meets("*.md", "{{ key }}/x.md"));
    // A key is of its characters: no `#`.
    assert!(!meets("out/[#]*.md", "out/{{ key }}.md"));
    assert!(meets("out/[#]*.md", "out/{{ item }}.md"));
    // An output holding a glob character is refused.
    assert!(!meets("out/[*].md", "out/{{ item }}.md"));
    // Half a character is no value.
    assert!(!meets("out/[é].md", "out/{{ item }}.md"));
    assert!(meets("out/[é][é].md", "out/{{ item }}.md"));
}

#[test]
fn the_glob_reads_the_normalized_path() {
    // An empty value, a `.` or a `/` of its own: the part it makes goes.
    assert!(meets("out/x.md", "out/{{ item.dir }}/x.md"));
    assert!(meets("out/*.md", "out/{{ item }}/x.md"));
    assert!(meets("x.md", "{{ item.dir }}/x.md"));
    assert!(meets("out/x.md", "./out//x{{ item }}.md"));
    assert!(meets("out/*", "out/{{ item }}/"));
    // No key is empty, `.` nor `..`.
    assert!(!meets("out/x.md", "out/{{ key }}/x.md"));
    assert!(!meets("x.md", "{{ key }}/x.md"));
    assert!(!meets("out/..x/x.md", "out/{{ key }}x/x.md"));
    assert!(meets("out/..xx/x.md", "out/{{ key }}x/x.md"));
    assert!(!meets("out/..x.md", "out/{{ key }}x.md"));
    assert!(meets("out/...x.md", "out/{{ key }}x.md"));
    // No path leads out, or is empty.
    assert!(!meets("*", "../{{ item }}"));
    assert!(!meets("a", "/{{ item }}"));
    assert!(!meets("**", ".//."));
    assert!(meets("**", "{{ item.dir }}/.x"));
}

#[test]
fn tags_and_comments_as_fanout_paths_reads_them() {
    let t = "w/{{ item.id }}-{% if item.x %}y{% endif %}.json";
    assert!(meets("w/*-y.json", t));
    assert!(meets("w/1-.json", t));
    assert!(!meets("v/*.json", t));
    assert!(meets("ab*.md", "a{# note #}b{{ key }}.md"));
    assert!(!meets("a[!b]*.md", "a{# note #}b{{ key }}.md"));
}

/// The parts templates and globs of the property are made of.
const TEMPLATE_PARTS: &[&str] = &["a", "x", "é", "/", ".", "{{ item }}", "{{ key }}"];
const GLOB_PARTS: &[&str] = &[
    "a", "x", "é", "/", ".", "*", "?", "**/", "/**", "[a-x]", "[!a]", "{a,é}", "[é]",
];

/// The texts up to `long` characters long of `alphabet`.
fn texts(alphabet: &[&str], long: usize) -> Vec<String> {
    let mut all = vec![String::new()];
    let mut last = vec![String::new()];
    for _ in 0..long {
        last = last
            .iter()
            .flat_map(|t| alphabet.iter().map(move |c| format!("{t}{c}")))
            .collect();
        all.extend(last.iter().cloned());
    }
    all
}

/// Whether some render of `template` with short values is a path that
/// `matcher` matches, as the resolver would have it.
fn brute_force(template: &str, matcher: &GlobMatcher, items: &[String], keys: &[String]) -> bool {
    let slots = template.matches("{{").count();
    let choices = |i: usize| -> &[String] {
        let at = template.match_indices("{{").nth(i).map_or(0, |(at, _)| at);
        if template[at..].starts_with("{{ key }}") {
            keys
        } else {
            items
        }
    };
    let mut picks = vec![0; slots];
    loop {
        let mut rendered = template.to_string();
        for (i, &pick) in picks.iter().enumerate() {
            let at = rendered.find("{{").expect("a slot");
            let end = rendered[at..].find("}}").expect("closed") + at + 2;
            rendered.replace_range(at..end, &choices(i)[pick]);
        }
        let refused = rendered.contains(['*', '?', '[', '{']);
        if !refused && rundir::normalize(&rendered).is_ok_and(|path| matcher.is_match(&path)) {
            return true;
        }
        // The next assignment, the first slot fastest.
        let mut i = 0;
        loop {
            if i == slots {
                return false;
            }
            picks[i] += 1;
            if picks[i] < choices(i).len() {
                break;
            }
            picks[i] = 0;
            i += 1;
        }
    }
}

/// Whether the bytes [`meet`] gives, each with its piece, are a render of
/// `template` (whose expressions are `{{ item }}` and `{{ key }}`) that
/// `matcher` matches: a value for each expression, a key valid.
fn renders_and_matches(template: &str, trail: &[(usize, u8)], matcher: &GlobMatcher) -> bool {
    let pieces = pieces(template, false);
    // The expression each piece is of.
    let mut of = Vec::with_capacity(pieces.len());
    let mut count = 0;
    for piece in &pieces {
        of.push(match piece {
            Piece::Byte(_) => None,
            Piece::KeyBytes => Some(count - 1),
            Piece::Any | Piece::KeyByte => {
                count += 1;
                Some(count - 1)
            }
        });
    }
    let mut values = vec![Vec::new(); count];
    let mut text = Vec::new();
    for &(piece, b) in trail {
        text.push(b);
        if let Some(e) = of[piece] {
            values[e].push(b);
        }
    }
    let Ok(values) = values
        .into_iter()
        .map(String::from_utf8)
        .collect::<Result<Vec<String>, _>>()
    else {
        return false;
    };
    let mut rendered = template.to_string();
    for value in &values {
        let at = rendered.find("{{").expect("a slot");
        let end = rendered[at..].find("}}").expect("closed") + at + 2;
        // Any non-ASCII character is taken as a key's (a letter in
        // its place).
        let letters: String = value
            .chars()
            .map(|c| if c.is_ascii() { c } else { 'é' })
            .collect();
        if rendered[at..end].contains("key") && !valid_key(&letters) {
            return false;
        }
        rendered.replace_range(at..end, value);
    }
    rendered.as_bytes() == text
        && !rendered.contains(['*', '?', '[', '{'])
        && rundir::normalize(&rendered).is_ok_and(|path| matcher.is_match(&path))
}

/// The intersection is exact: every render of short values that the
/// glob matches is found (brute force, each expression its own value,
/// as a template is read), and what is found is a render the glob
/// matches.
#[test]
fn the_intersection_is_what_brute_force_finds() {
    let items = texts(&["a", "x", "/", ".", "é"], 3);
    let keys: Vec<String> = texts(&["a", "x", ".", "é"], 3)
        .into_iter()
        .filter(|k| valid_key(k))
        .collect();
    // `$PROPTEST_CASES` and `$PROPTEST_RNG_SEED` to look further.
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 300;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(7);
    }
    config.failure_persistence = None;
    let template = proptest::collection::vec(proptest::sample::select(TEMPLATE_PARTS), 1..6)
        .prop_filter("two expressions at most", |parts| {
            parts.iter().filter(|p| p.starts_with("{{")).count() <= 2
        });
    let pattern = proptest::collection::vec(proptest::sample::select(GLOB_PARTS), 1..4);
    let (checked, met) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    TestRunner::new(config)
        .run(&(template, pattern), |(template, pattern)| {
            let (template, pattern) = (template.concat(), pattern.concat());
            let Some(matcher) = glob(&pattern) else {
                return Ok(());
            };
            checked.set(checked.get() + 1);
            let nfa = automaton(&matcher).expect("compiles");
            let found = meet(&pieces(&template, false), &nfa);
            if let Some(trail) = &found {
                met.set(met.get() + 1);
                prop_assert!(
                    renders_and_matches(&template, trail, &matcher),
                    "template {:?}, glob {:?}: {:?}",
                    template,
                    pattern,
                    String::from_utf8_lossy(&trail.iter().map(|t| t.1).collect::<Vec<_>>())
                );
            } else {
                prop_assert!(
                    !brute_force(&template, &matcher, &items, &keys),
                    "template {:?}, glob {:?}: none found",
                    template,
                    pattern
                );
            }
            Ok(())
        })
        .unwrap();
    assert!(checked.get() > 200, "{}", checked.get());
    // Both answers are tried, often.
    assert!(
        met.get() > 30 && checked.get() - met.get() > 30,
        "{} of {}",
        met.get(),
        checked.get()
    );
}
