//! A fan-out task's `command`, rendered for the shell: every value its
//! template prints is quoted for where it lands in the command's text (a
//! word of its own, inside `'...'`, inside `"..."`, inside `$(...)`), so
//! an item that came from a model's answer or any other
//! file is data, never shell syntax: `echo {{ item }}` of the item
//! `x; rm -rf ~` echoes it. `{{ flags | raw }}` prints a value as it is,
//! for shell syntax the pipeline's author writes.
//!
//! The template is rendered once with each printed value replaced by a
//! marker, then the text is read as `sh` reads it (quotes, escapes,
//! comments, command substitutions) and each marker replaced by its value,
//! quoted for the place it is in. A here-document's body cannot be quoted
//! for, nor can `$'...'` (which bash and dash read differently), nor the
//! inside of backquotes: a value printed after `<<` or `$'`, or inside
//! backquotes, is refused (`$(...)` quotes as the command does), as is one
//! right after a `\` or `$` outside single quotes, which would escape
//! its quoting or make it a variable's name.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use minijinja::value::{Object, Value};

use super::template::{self, Vars};

/// Where a printed value starts and ends in the first rendering: two
/// characters of Unicode's private use area, which a command is refused
/// for holding.
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

/// A value `| raw` marks to be printed as it is.
#[derive(Debug)]
struct Raw(String);

impl Object for Raw {
    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Renders `text`, a fan-out task's command, for one instance: each value
/// quoted for its place (see the module's docs).
pub fn render(text: &str, vars: &Vars) -> Result<String, String> {
    if !text.contains("{{") && !text.contains("{%") {
        return Ok(text.to_string());
    }
    if text.contains([OPEN, CLOSE]) {
        return Err(marker_refused("the command"));
    }
    PRINTED.with_borrow_mut(Vec::clear);
    let rendered = template::render_in(ENV.get_or_init(environment), text, vars);
    let values = PRINTED.with_borrow_mut(std::mem::take);
    place(&rendered?, &values)
}

thread_local! {
    /// The values the rendering under way on this thread printed, in
    /// order: a marker holds its index here.
    static PRINTED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// The environment commands are rendered in, made once: the templates'
/// own, with `raw` and a formatter that prints a marker for each value.
static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();

fn environment() -> minijinja::Environment<'static> {
    let mut env = template::environment();
    env.add_filter("raw", |v: Value| Value::from_object(Raw(v.to_string())));
    env.set_formatter(|out, _state, value| {
        if let Some(raw) = value.downcast_object_ref::<Raw>() {
            if raw.0.contains([OPEN, CLOSE]) {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    marker_refused("a value printed with `| raw`"),
                ));
            }
            return out.write_str(&raw.0).map_err(minijinja::Error::from);
        }
        let n = PRINTED.with_borrow_mut(|values| {
            values.push(value.to_string());
            values.len() - 1
        });
        write!(out, "{OPEN}{n}{CLOSE}").map_err(minijinja::Error::from)
    });
    env
}

fn marker_refused(what: &str) -> String {
    format!(
        "{what} holds U+E000 or U+E001, characters planexe marks the values it quotes with; remove them"
    )
}

/// How `sh` reads the text at a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    /// Outside quotes: a value is a word of its own.
    None,
    /// Inside `'...'`.
    Single,
    /// Inside `"..."`.
    Double,
}

/// What ends a command substitution the text is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closer {
    /// The command itself.
    End,
    /// `)`, after as many more as were opened inside.
    Paren(usize),
    /// A backquote.
    Backquote,
}

/// One level of the text: the command, or a substitution in it, each with
/// its own quotes.
#[derive(Debug, Clone, Copy)]
struct Frame {
    quote: Quote,
    closer: Closer,
}

/// The rendered `text` with each marker replaced by its value from
/// `values`, quoted for where it is.
fn place(text: &str, values: &[String]) -> Result<String, String> {
    let mut out = String::with_capacity(text.len() + 16 * values.len());
    let mut frames = vec![Frame {
        quote: Quote::None,
        closer: Closer::End,
    }];
    // A `<<` or `$'` seen, or `case` in a substitution (whose patterns'
    // `)` would seem to close it): what follows cannot be quoted for.
    let mut unquotable: Option<&str> = None;
    // Whether the last character ends a word (a `#` after one starts a
    // comment).
    let mut word_start = true;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let top = frames.len() - 1;
        let frame = frames[top];
        if c == OPEN {
            let mut index = String::new();
            for d in chars.by_ref() {
                if d == CLOSE {
                    break;
                }
                index.push(d);
            }
            let value = index
                .parse::<usize>()
                .ok()
                .and_then(|i| values.get(i))
                .ok_or_else(|| marker_refused("a value"))?;
            if value.contains([OPEN, CLOSE]) {
                return Err(marker_refused("a value"));
            }
            if frames.iter().any(|f| f.closer == Closer::Backquote) {
                return Err(format!(
                    "`{value}` is printed inside backquotes, which change what quoting means; \
                     use $(...) instead"
                ));
            }
            if let Some(after) = unquotable {
                return Err(format!(
                    "`{value}` is printed after `{after}`, where no quoting holds for every sh \
                     (a here-document, `$'...'`, which bash reads and dash does not, or the \
                     patterns of a case statement inside $(...)); \
                     print it before, in '...' or \"...\", or write it to a file the command reads"
                ));
            }
            out.push_str(&quoted(value, frame.quote)?);
            word_start = false;
            continue;
        }
        out.push(c);
        match frame.quote {
            Quote::Single => {
                if c == '\'' {
                    frames[top].quote = Quote::None;
                }
            }
            Quote::Double => match c {
                '\\' | '$' if chars.peek() == Some(&OPEN) => return Err(joined(c)),
                '\\' => out.extend(chars.next()),
                '"' => frames[top].quote = Quote::None,
                '$' if chars.peek() == Some(&'(') => {
                    out.extend(chars.next());
                    frames.push(Frame {
                        quote: Quote::None,
                        closer: Closer::Paren(0),
                    });
                    word_start = true;
                }
                '`' => {
                    frames.push(Frame {
                        quote: Quote::None,
                        closer: Closer::Backquote,
                    });
                    word_start = true;
                }
                _ => {}
            },
            Quote::None => {
                // After `$(` or a backquote, a command starts.
                let mut starts = false;
                match c {
                    '\\' | '$' if chars.peek() == Some(&OPEN) => return Err(joined(c)),
                    '\\' => out.extend(chars.next()),
                    '\'' => frames[top].quote = Quote::Single,
                    '"' => frames[top].quote = Quote::Double,
                    '#' if word_start => {
                        // A comment, to the end of the line.
                        while let Some(&d) = chars.peek() {
                            if d == '\n' || d == OPEN {
                                break;
                            }
                            out.push(d);
                            chars.next();
                        }
                    }
                    '$' if chars.peek() == Some(&'\'') => {
                        out.extend(chars.next());
                        frames[top].quote = Quote::Single;
                        unquotable = Some("$'");
                    }
                    '$' if chars.peek() == Some(&'(') => {
                        out.extend(chars.next());
                        frames.push(Frame {
                            quote: Quote::None,
                            closer: Closer::Paren(0),
                        });
                        starts = true;
                    }
                    '`' if frame.closer == Closer::Backquote => {
                        frames.pop();
                    }
                    '`' => {
                        frames.push(Frame {
                            quote: Quote::None,
                            closer: Closer::Backquote,
                        });
                        starts = true;
                    }
                    '(' => {
                        if let Closer::Paren(n) = frame.closer {
                            frames[top].closer = Closer::Paren(n + 1);
                        }
                    }
                    ')' => match frame.closer {
                        Closer::Paren(0) => {
                            frames.pop();
                        }
                        Closer::Paren(n) => frames[top].closer = Closer::Paren(n - 1),
                        _ => {}
                    },
                    '<' if chars.peek() == Some(&'<') => {
                        out.extend(chars.next());
                        unquotable = Some("<<");
                    }
                    'c' if word_start
                        && frame.closer != Closer::End
                        && chars.clone().take(4).collect::<String>().starts_with("ase")
                        && chars.clone().nth(3).is_none_or(char::is_whitespace) =>
                    {
                        unquotable = Some("case inside $(...)");
                    }
                    _ => {}
                }
                word_start =
                    starts || c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')');
            }
        }
    }
    Ok(out)
}

/// The refusal of a value printed right after `c`, a `\\` or `$`.
fn joined(c: char) -> String {
    let what = match c {
        '$' => "make it a variable's name",
        _ => "escape its quoting",
    };
    format!("a value printed right after `{c}` would {what}; put a space or quotes between")
}

/// `value` as text for a place quoted as `quote` says.
fn quoted(value: &str, quote: Quote) -> Result<String, String> {
    if value.contains('\0') {
        return Err(format!(
            "`{}` holds a NUL byte, which no shell command can",
            value.replace('\0', "\\0")
        ));
    }
    Ok(match quote {
        Quote::None => shlex::try_quote(value)
            .map_err(|e| e.to_string())?
            .into_owned(),
        Quote::Single => value.replace('\'', r"'\''"),
        Quote::Double => {
            let mut s = String::with_capacity(value.len());
            for c in value.chars() {
                if matches!(c, '\\' | '"' | '$' | '`') {
                    s.push('\\');
                }
                s.push(c);
            }
            s
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(value: &str) -> Vars {
        let mut vars = Vars::new();
        vars.insert("item".into(), serde_json::json!(value));
        vars.insert("key".into(), serde_json::json!("0"));
        vars
    }

    /// What `sh -c` prints for `command` rendered with the item `value`.
    fn sh(command: &str, value: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let rendered = render(command, &item(value)).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&rendered)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let made: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(made.is_empty(), "{rendered:?} made files: {made:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    const HOSTILE: &[&str] = &[
        "x; touch pwned",
        "$(touch pwned)",
        "`touch pwned`",
        "it's \"quoted\" \\ $HOME",
        "a\nb; touch pwned",
        "'; touch pwned; '",
        "\"; touch pwned; \"",
        "",
        "  spaced  out  ",
        "#not a comment",
    ];

    #[test]
    fn a_value_is_data_wherever_it_is_printed() {
        for value in HOSTILE {
            assert_eq!(sh("printf %s {{ item }}", value), *value, "word");
            assert_eq!(sh("printf %s '{{ item }}'", value), *value, "single");
            assert_eq!(sh("printf %s \"{{ item }}\"", value), *value, "double");
            assert_eq!(sh("printf %s x{{ item }}y", value), format!("x{value}y"));
            assert_eq!(
                sh("printf %s \"$(printf %s {{ item }})\"", value),
                value.trim_end_matches('\n'),
                "substitution in double quotes"
            );
            // A quote in a comment opens nothing, nor at a substitution's
            // start.
            assert_eq!(
                sh("true # it's a comment\nprintf %s {{ item }}", value),
                *value
            );
            assert_eq!(
                sh("x=$(#it's\nprintf %s {{ item }}); printf %s \"$x\"", value),
                value.trim_end_matches('\n')
            );
            // A backslash or `$` in single quotes is text.
            assert_eq!(
                sh("printf %s '\\{{ item }}$'", value),
                format!("\\{value}$")
            );
        }
    }

    #[test]
    fn loops_filters_and_raw_are_rendered_as_jinja_says() {
        let mut vars = item("a b");
        vars.insert("words".into(), serde_json::json!(["x y", "z"]));
        assert_eq!(
            render(
                "echo {% for w in words %}{{ w | upper }} {% endfor %}",
                &vars
            )
            .unwrap(),
            "echo 'X Y' Z "
        );
        assert_eq!(render("echo {{ key }} x", &vars).unwrap(), "echo 0 x");
        assert_eq!(render("ls {{ item | raw }}", &vars).unwrap(), "ls a b");
        assert_eq!(render("no template", &vars).unwrap(), "no template");
    }

    #[test]
    fn what_cannot_be_quoted_is_refused() {
        let err = render("cat <<EOF\n{{ item }}\nEOF", &item("x")).unwrap_err();
        assert!(err.contains("after `<<`"), "{err}");
        let err = render(
            "echo \"$(case a in a) echo {{ item }};; esac)\"",
            &item("x"),
        )
        .unwrap_err();
        assert!(err.contains("after `case inside $(...)`"), "{err}");
        // At the top, a case statement's `)` closes nothing of ours.
        assert_eq!(
            render("case a in a) echo {{ item }};; esac", &item("x; y")).unwrap(),
            "case a in a) echo 'x; y';; esac"
        );
        let err = render("printf $'\\t' {{ item }}", &item("x")).unwrap_err();
        assert!(err.contains("after `$'`"), "{err}");
        for joined in [
            "echo \\{{ item }}",
            "echo ${{ item }}",
            "echo \"\\{{ item }}\"",
            "echo \"${{ item }}\"",
        ] {
            let err = render(joined, &item("x")).unwrap_err();
            assert!(err.contains("right after"), "{joined}: {err}");
        }
        let err = render("echo `echo {{ item }}`", &item("x")).unwrap_err();
        assert!(err.contains("backquotes"), "{err}");
        let err = render("echo {{ item }}", &item("a\0b")).unwrap_err();
        assert!(err.contains("NUL"), "{err}");
        let err = render("echo \u{E000} {{ item }}", &item("x")).unwrap_err();
        assert!(err.contains("U+E000"), "{err}");
        let err = render("echo {{ item }}", &item("\u{E000}0\u{E001}")).unwrap_err();
        assert!(err.contains("U+E000"), "{err}");
    }

    /// Commands made of shell-significant pieces in any order: each is
    /// rendered or refused, never a panic, and no marker is left.
    #[test]
    fn any_arrangement_of_shell_syntax_renders_or_is_refused() {
        const PIECES: &[&str] = &[
            "'",
            "\"",
            "\\",
            "$",
            "(",
            ")",
            "`",
            "#",
            " ",
            "\n",
            "<<",
            "case ",
            "a",
            ";",
            "$(",
            "$'",
            "{{ item }}",
            "{{ item | raw }}",
            "{{ key }}",
        ];
        let vars = item("x'; \"$(touch pwned)`\\");
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..5000 {
            let mut text = String::new();
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            for _ in 0..(seed >> 60) + 1 {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                text.push_str(PIECES[(seed >> 33) as usize % PIECES.len()]);
            }
            if let Ok(out) = render(&text, &vars) {
                assert!(!out.contains([OPEN, CLOSE]), "{text:?} -> {out:?}");
            }
        }
    }
}
