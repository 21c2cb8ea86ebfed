//! Wall-clock times as planexe records them: RFC 3339 in UTC, to the
//! millisecond, in every file it writes; and the few conversions readers
//! need (microseconds for the trace, age for `status`).

use std::time::Duration;

/// The current time in RFC 3339 UTC, to the millisecond.
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    now.round(jiff::Unit::Millisecond)
        .unwrap_or(now)
        .to_string()
}

/// Microseconds since the Unix epoch of an RFC 3339 time.
pub fn micros(rfc3339: &str) -> Option<i64> {
    let ts: jiff::Timestamp = rfc3339.parse().ok()?;
    Some(ts.as_microsecond())
}

/// How long ago an RFC 3339 time was (zero for a time in the future).
pub fn since(rfc3339: &str) -> Option<Duration> {
    let then: jiff::Timestamp = rfc3339.parse().ok()?;
    let secs = jiff::Timestamp::now().as_second() - then.as_second();
    Some(Duration::from_secs(secs.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_micros() {
        let now = now_rfc3339();
        assert!(now.ends_with('Z'), "{now}");
        assert!(micros(&now).is_some());
        assert_eq!(micros("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert!(micros("soon").is_none());
        assert!(since(&now).is_some_and(|d| d < Duration::from_secs(60)));
    }
}
