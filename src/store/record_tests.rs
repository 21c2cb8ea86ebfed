//! Tests of a task's record: error kinds on disk, usage sums, how a
//! failure is said.

use super::*;

#[test]
fn error_kinds_keep_their_names_on_disk() {
    for kind in [
        ErrorKind::MissingOutput,
        ErrorKind::BrokenStream,
        ErrorKind::Exit,
        ErrorKind::Refused,
    ] {
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, format!("\"{}\"", kind.as_str()));
        assert_eq!(serde_json::from_str::<ErrorKind>(&json).unwrap(), kind);
    }
    let unknown: ErrorKind = serde_json::from_str("\"from-the-future\"").unwrap();
    assert_eq!(unknown, ErrorKind::Other);
    assert_eq!(
        serde_json::to_string(&ErrorKind::TooLarge).unwrap(),
        "\"too_large\""
    );
    assert!(!ErrorKind::TooLarge.transient());
    // A filter or a refusal at the same request would come again.
    assert!(!ErrorKind::Refused.transient());
    assert!(!ErrorKind::Refused.recoverable());
}

#[test]
fn usage_sums_saturate_and_stay_finite() {
    let mut sum = Usage {
        prompt_tokens: u64::MAX - 1,
        completion_tokens: 1,
        total_tokens: u64::MAX,
        cost_usd: f64::MAX,
        tokens_estimated: false,
        unpriced: false,
    };
    sum.add(&Usage {
        prompt_tokens: 5,
        completion_tokens: u64::MAX,
        total_tokens: 9,
        cost_usd: f64::MAX,
        tokens_estimated: true,
        unpriced: true,
    });
    assert!(sum.tokens_estimated && sum.unpriced);
    assert_eq!(sum.prompt_tokens, u64::MAX);
    assert_eq!(sum.completion_tokens, u64::MAX);
    assert_eq!(sum.total_tokens, u64::MAX);
    assert!(sum.cost_usd.is_finite());
    sum.add(&Usage {
        cost_usd: f64::NAN,
        ..Usage::default()
    });
    assert!(sum.cost_usd.is_finite());
}

/// Sums of costs read `0.30000000000000004` in `summary.json`: float
/// noise of decimal prices added in binary.
#[test]
fn cost_sums_are_exact_to_the_nanodollar() {
    let mut sum = Usage::default();
    for cost in [0.1, 0.2, 0.0000119, 0.0000119, 0.0000119] {
        sum.add(&Usage {
            cost_usd: cost,
            ..Usage::default()
        });
    }
    assert_eq!(sum.cost_usd.to_string(), "0.3000357");
    assert_eq!(nano_usd(0.1 + 0.2), 0.3);
    assert_eq!(nano_usd(1.2599999999999998e-05), 1.26e-05);
    assert_eq!(nano_usd(f64::MAX), f64::MAX);
}

#[test]
fn a_kind_is_said_once() {
    assert_eq!(with_kind("exit", "exit status 3"), "exit: exit status 3");
    assert_eq!(
        with_kind("truncated", "local: truncated: cut off"),
        "local: truncated: cut off"
    );
    assert_eq!(
        with_kind("auth", "judge j could not score: auth: HTTP 401"),
        "judge j could not score: auth: HTTP 401"
    );
    assert_eq!(
        with_kind("judge_rejected", "judge_rejected: scored 0.10"),
        "judge_rejected: scored 0.10"
    );
    // Another kind named further in is another model's.
    assert_eq!(
        with_kind(
            "truncated",
            "all models failed: local: auth: x; cloud: truncated: y"
        ),
        "truncated: all models failed: local: auth: x; cloud: truncated: y"
    );
}
