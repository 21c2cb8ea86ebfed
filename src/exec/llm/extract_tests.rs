//! Extraction against answers in the shapes real servers produce
//! (`tests/fixtures/answers/`, see its README).

use super::*;
use serde_json::json;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/answers/",
            $name
        ))
    };
}

fn any(_: &Value) -> bool {
    true
}

fn found(text: &str) -> Found {
    let s = strip_reasoning(text);
    match extract_json(text, s.offset, &any) {
        Extracted::Found(f) => f,
        other => panic!("no JSON in {text:?}: {other:?}"),
    }
}

#[test]
fn smollm2_fence_then_prose() {
    let f = found(fixture!("smollm2_fence_then_prose.txt"));
    assert_eq!(f.value, json!({"city": "Paris", "country": "FRANCE"}));
    assert_eq!(
        f.place,
        Place::Fence {
            index: 1,
            count: 1,
            line: 1
        }
    );
}

#[test]
fn smollm2_prose_around_a_fence() {
    let f = found(fixture!("smollm2_prose_fence_prose.txt"));
    assert_eq!(f.value, json!({"point": {"x": 10, "y": 10}}));
    assert_eq!(f.place.describe(), "the ```json block at line 3");
    let f = found(fixture!("smollm2_fence_only.txt"));
    assert_eq!(f.value["name"], "Bob");
}

#[test]
fn smollm2_two_fences_the_second_cut_off() {
    let f = found(fixture!("smollm2_prose_two_fences_cut_off.txt"));
    assert_eq!(f.value["name"], "Ann");
    assert!(matches!(
        f.place,
        Place::Fence {
            index: 1,
            count: 2,
            ..
        }
    ));
}

#[test]
fn smollm2_fence_then_backticks() {
    let f = found(fixture!("smollm2_fence_then_json_in_backticks.txt"));
    assert_eq!(
        f.value,
        json!({"name": "Felicia", "name_color": "Felicia Red"})
    );
}

#[test]
fn smollm2_bare_json_and_json_in_prose() {
    let f = found(fixture!("smollm2_bare_json.txt"));
    assert_eq!((f.value, f.place), (json!({"city": "Paris"}), Place::Whole));
    let f = found(fixture!("smollm2_json_inside_prose.txt"));
    assert_eq!(f.value, json!({"debug": true, "level": 1}));
    assert_eq!(
        f.place,
        Place::Inline {
            line: 1,
            column: 15
        }
    );
}

#[test]
fn smollm2_without_json() {
    let text = fixture!("smollm2_prose_only.txt");
    assert_eq!(
        extract_json(text, 0, &any),
        Extracted::Nothing {
            other_fences: vec![]
        }
    );
    // Python with trailing commas: a JSON-looking array that does not parse.
    let text = fixture!("smollm2_python_fence_no_json.txt");
    let Extracted::Invalid(e) = extract_json(text, 0, &any) else {
        panic!("python parsed as JSON");
    };
    assert_eq!(
        e.place,
        Place::Inline {
            line: 3,
            column: 10
        }
    );
    assert!(e.error.contains("trailing comma"), "{e:?}");
}

#[test]
fn think_blocks_lead_the_answer() {
    let text = fixture!("qwen3_think_then_json.txt");
    let s = strip_reasoning(text);
    assert!(s.removed && !s.unclosed);
    assert_eq!(s.answer, r#"{"city": "Paris", "country": "France"}"#);
    // The object inside the reasoning is not the answer.
    assert_eq!(found(text).value["country"], "France");
    assert_eq!(found(text).place, Place::Whole);

    let s = strip_reasoning(fixture!("qwen3_think_then_text.txt"));
    assert_eq!(s.answer, "Paris is the capital of France.");
}

#[test]
fn an_orphan_closing_tag_ends_the_reasoning() {
    let text = fixture!("deepseek_r1_orphan_close.txt");
    let s = strip_reasoning(text);
    assert!(s.answer.starts_with("Here is the JSON:"), "{:?}", s.answer);
    let f = found(text);
    assert_eq!(f.value, json!({"city": "Paris", "country": "France"}));
    // Lines count in the text as written, reasoning included.
    assert_eq!(f.place.describe(), "the ```json block at line 6");
}

#[test]
fn an_unclosed_think_leaves_no_answer() {
    let s = strip_reasoning(fixture!("think_unclosed.txt"));
    assert!(s.unclosed);
    assert_eq!(s.answer, "");
}

#[test]
fn reasoning_tags_elsewhere_are_kept() {
    for text in [
        "Use <think> and </think>? No: <thinking> is fine.",
        "plain answer",
        "",
    ] {
        let s = strip_reasoning(text);
        assert_eq!((s.answer, s.removed), (text, false), "{text}");
    }
    let s =
        strip_reasoning("  <Thinking>a</THINKING>\n<think>b</think>\n\nanswer <think>x</think>");
    assert_eq!(s.answer, "answer <think>x</think>");
}

#[test]
fn the_schema_picks_among_fences_and_values() {
    let text = "```json\n{\"a\": 1}\n```\nor\n```\n{\"b\": 2}\n```";
    let has_b = |v: &Value| v.get("b").is_some();
    let Extracted::Found(f) = extract_json(text, 0, &has_b) else {
        panic!()
    };
    assert_eq!(f.value, json!({"b": 2}));
    assert!(matches!(
        f.place,
        Place::Fence {
            index: 2,
            count: 2,
            line: 5
        }
    ));
    // None fits: the first that parses, for the schema to complain about.
    let Extracted::Found(f) = extract_json(text, 0, &|_: &Value| false) else {
        panic!()
    };
    assert_eq!(f.value, json!({"a": 1}));

    let text = "As shown in [1], the answer is {\"b\": 2}.";
    let Extracted::Found(f) = extract_json(text, 0, &has_b) else {
        panic!()
    };
    assert_eq!(f.value, json!({"b": 2}));
}

#[test]
fn invalid_json_is_located() {
    let text = "Here:\n```JSON\n{\"a\": 1,\n \"b\": }\n```\nDone.";
    let Extracted::Invalid(e) = extract_json(text, 0, &any) else {
        panic!()
    };
    assert_eq!(
        e.place,
        Place::Fence {
            index: 1,
            count: 1,
            line: 2
        }
    );
    assert_eq!((e.line, e.column), (2, 7));
    assert_eq!(e.error, "expected value");

    let Extracted::Invalid(e) = extract_json("{\"a\": tru}", 0, &any) else {
        panic!()
    };
    assert_eq!(e.place, Place::Whole);

    // Cut off mid-value: never closed.
    let Extracted::Invalid(e) = extract_json("Sure! {\"a\": [1, 2", 0, &any) else {
        panic!()
    };
    assert_eq!(e.place, Place::Inline { line: 1, column: 7 });
    assert!(e.error.contains("EOF"), "{e:?}");

    // Braces in prose are not JSON.
    assert!(matches!(
        extract_json("here you go: {", 0, &any),
        Extracted::Nothing { .. }
    ));
    assert!(matches!(
        extract_json("a {set} of [things]\n```python\nx = 1\n```", 0, &any),
        Extracted::Nothing { other_fences } if other_fences == ["python"]
    ));
}

#[test]
fn strings_and_escapes_do_not_unbalance() {
    let text = r#"Result: {"s": "a } and \" ] {", "n": [1, {"x": "]"}]} end"#;
    assert_eq!(found(text).value["n"][1]["x"], "]");
    assert_eq!(found("x ```json\n{\"a\":1}```").value, json!({"a": 1}));
    assert_eq!(found("```json\n{\"a\":1}```").value, json!({"a": 1}));
}

#[test]
fn stray_brackets_cost_bounded_tries() {
    let text = format!("{}{{\"a\": 1}}", "[x ".repeat(10_000));
    // Past the bound the value is not reached; the point is that it ends.
    let r = extract_json(&text, 0, &any);
    assert!(matches!(r, Extracted::Nothing { .. }), "{r:?}");
}

#[test]
fn an_unfinished_example_before_the_answer_does_not_hide_it() {
    // An opener that looks like JSON and never closes, but whose text is
    // no JSON cut off (the `...`), is stepped over: the answer after it
    // is found.
    let text = "The shape is {\"risks\": [ ... ] and so on.\n\nAnswer:\n{\"risks\": [\"rain\"]}";
    assert_eq!(found(text).value, json!({"risks": ["rain"]}));
    // A JSON value cut off inside (the token limit): nothing inside it is
    // the answer.
    let cut = "Here it is: {\"risks\": [], \"notes\": \"the first";
    assert!(!matches!(extract_json(cut, 0, &any), Extracted::Found(_)));
}
