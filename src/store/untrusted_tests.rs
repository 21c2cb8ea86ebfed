//! Tests of [`super`]: secrets found in every spelling, text made safe to
//! print.

use super::*;

fn scrub(secret: &str, text: &str) -> String {
    Secrets::new([secret.to_string()], 4).redact(text)
}

#[test]
fn every_json_spelling_of_a_secret_is_redacted() {
    let key = "sk-SE/CRET123xyz";
    for text in [
        "sk-SE/CRET123xyz",
        r"sk-SE\/CRET123xyz",
        r"sk-SE\u002fCRET123xyz",
        r"sk-SE\u002FCRET123xyz",
        r"\u0073\u006b-SE\/CRET123xy\u007a",
        // A JSON string of JSON, and once more.
        r"sk-SE\\\/CRET123xyz",
        r"sk-SE\\/CRET123xyz",
        r"sk-SE\\u002fCRET123xyz",
        r"sk-SE\u005cu002fCRET123xyz",
        r"sk-SE\\\\\\\/CRET123xyz",
    ] {
        let got = scrub(key, &format!("bad key {text}!"));
        assert_eq!(got, "bad key [REDACTED]!", "{text}");
    }
    for (key, text) in [
        ("sk-SE\"CRET123xyz", r#"sk-SE\"CRET123xyz"#),
        ("sk-SE\"CRET123xyz", r#"sk-SE\\\"CRET123xyz"#),
        ("sk-SE\\CRET123xyz", r"sk-SE\\CRET123xyz"),
        ("sk-SE\\CRET123xyz", r"sk-SE\\\\CRET123xyz"),
        ("sk-SE\\CRET123xyz", r"sk-SE\u005cCRET123xyz"),
        ("sk-SE\tCRET123xyz", r"sk-SE\tCRET123xyz"),
        ("sk-SE😀CRET123xyz", r"sk-SE\ud83d\uDE00CRET123xyz"),
        ("sk-SEéCRET123xyz", r"sk-SE\u00e9CRET123xyz"),
    ] {
        assert_eq!(scrub(key, &format!("<{text}>")), "<[REDACTED]>", "{text}");
        let json = serde_json::to_string(&format!("a {key} b")).unwrap();
        assert_eq!(scrub(key, &json), "\"a [REDACTED] b\"", "{json}");
    }
}

#[test]
fn other_text_is_left_alone() {
    let key = "sk-SE/CRET123xyz";
    for text in [
        "",
        // All but one character, inside the text: not the secret (at an
        // edge, it would be a cut one: a_secret_cut_at_an_edge_...).
        "a sk-SE/CRET123xy b",
        r"sk-SE\\CRET123xyz",
        "é\\u00",
        "\\\\\\",
    ] {
        assert_eq!(scrub(key, text), text);
    }
    assert!(!Secrets::new([key.to_string()], 4).found_in("sk-SE"));
    assert!(Secrets::new([key.to_string()], 4).found_in(r"x sk-SE\/CRET123xyz"));
    // Too short to be a secret.
    assert_eq!(Secrets::new(["none".to_string()], 8).redact("none"), "none");
}

#[test]
fn long_runs_of_backslashes_are_quick() {
    for key in [r"\\\\x-secret", r"x-se\\cret", "x-secret"] {
        for text in ["\\".repeat(200_000), r"\u005c".repeat(50_000)] {
            let started = std::time::Instant::now();
            assert_eq!(scrub(key, &text), text);
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
        }
    }
    assert_eq!(scrub(r"\\x-secret", r"a\\\\\\x-secret"), "a[REDACTED]");
}

#[test]
fn every_url_spelling_of_a_secret_is_redacted() {
    let key = "sk-Ab/cd+ef=é gh";
    for text in [
        "sk-Ab%2Fcd%2Bef%3D%C3%A9%20gh",
        "sk-Ab%2fcd%2bef%3d%c3%a9+gh",
        "sk-Ab/cd+ef=%C3%A9+gh",
        "sk-Ab/cd ef=é gh",
        "%73%6B%2D%41%62%2F%63%64%2B%65%66%3D%C3%A9%20%67%68",
        // Encoded once more, and twice more.
        "sk-Ab%252Fcd%252Bef%253D%25C3%25A9%2520gh",
        "sk-Ab%25252Fcd+ef=é%252520gh",
    ] {
        assert_eq!(scrub(key, &format!("<{text}>")), "<[REDACTED]>", "{text}");
    }
    // JSON and URL spellings in one text.
    assert_eq!(
        scrub(
            key,
            r"a sk-Ab\/cd+ef=é gh b sk-Ab%2Fcd%2Bef%3D%C3%A9%20gh c"
        ),
        "a [REDACTED] b [REDACTED] c"
    );
    // A secret that holds percent escapes (a webhook URL as written)
    // matches decoded, and encoded in any case, once or more.
    let token = "Tok%20en%2Fsecret+0123";
    for text in [
        "Tok%20en%2Fsecret+0123",
        "Tok en/secret+0123",
        "Tok en/secret 0123",
        "Tok+en%2fsecret%2B0123",
        "Tok%2520en%252Fsecret%252B0123",
    ] {
        assert_eq!(scrub(token, &format!("<{text}>")), "<[REDACTED]>", "{text}");
    }
    for (key, text) in [
        ("sk-1%x-secret", "sk-1%25x-secret"),
        ("sk-1%x-secret", "sk-1%2525x-secret"),
        ("sk-1\\\\x-secret", "sk-1%5C%5cx-secret"),
        ("sk-1\\\\x-secret", "sk-1%255C%5C%5Cx-secret"),
    ] {
        assert_eq!(scrub(key, &format!("<{text}>")), "<[REDACTED]>", "{text}");
    }
    for text in [
        "sk-Ab%2Fcd%2Bef%3D%C3%A9%20g",
        "sk-Ab%2Fcd%2Bef%3D%C3%20gh",
        "sk-Ab%2cd+ef=é gh",
        "%",
        "%2",
        "%zz",
        "%25%",
    ] {
        assert_eq!(scrub(key, text), text);
    }
    assert_eq!(
        scrub("sk-1\\\\x-secret", "sk-1%5Cx-secret"),
        "sk-1%5Cx-secret"
    );
}

#[test]
fn long_runs_of_percent_escapes_are_quick() {
    for key in [
        r"\\x-secret",
        r"x-se\cret",
        "%x-secret",
        "x-secret",
        "x-se cret",
    ] {
        for text in [
            "%5C".repeat(100_000),
            "%255c".repeat(60_000),
            "%25".repeat(100_000),
            format!("%{}", "25".repeat(150_000)),
            "+".repeat(300_000),
            "%20".repeat(100_000),
        ] {
            let started = std::time::Instant::now();
            assert_eq!(scrub(key, &text), text);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(2),
                "{key}"
            );
        }
    }
}

#[test]
fn control_characters_are_escaped() {
    let text = "denied \x1b[31mRED\x1b[0m \x1b]0;t\x07 \r\tdone\nFAKE \u{9b}2J \u{202e}x\u{7f}";
    assert_eq!(
        printable(text),
        "denied \\u{1b}[31mRED\\u{1b}[0m \\u{1b}]0;t\\u{7} \\r\\tdone\\nFAKE \\u{9b}2J \\u{202e}x\\u{7f}"
    );
    assert_eq!(printable_lines("a\nb\x1b"), "a\nb\\u{1b}");
    assert!(matches!(printable("plain é"), Cow::Borrowed(_)));
}

#[test]
fn a_secret_cut_at_an_edge_of_the_text_is_redacted() {
    let key = "sk-abcdef0123456789";
    // The first 2 KB of a body that echoed the key, cut through it.
    assert_eq!(scrub(key, "bad key: sk-abcdef01"), "bad key: [REDACTED]");
    // The last lines of a log that began inside it.
    assert_eq!(
        scrub(key, "ef0123456789 was refused"),
        "[REDACTED] was refused"
    );
    // Too short a piece to tell from other text (less than half the
    // secret: a URL secret starts as other URLs do), and text in between.
    assert_eq!(scrub(key, "sk-abcde"), "sk-abcde");
    let url = "https://hooks.example.com/T01/B02/abcdefghijkl";
    assert_eq!(scrub(url, "see https://hooks."), "see https://hooks.");
    assert_eq!(scrub(key, "sk-abcdef01 ok"), "sk-abcdef01 ok");
    assert_eq!(
        scrub(key, "whole sk-abcdef0123456789 key"),
        "whole [REDACTED] key"
    );
}
