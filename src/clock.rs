//! Wall-clock times as planexe records them: RFC 3339 in UTC, to the
//! millisecond, in every file it writes; and the few conversions readers
//! need (microseconds for the trace, age for `status`).

use std::time::Duration;

/// The current time in RFC 3339 UTC, to the millisecond, always with three
/// digits after the second (`…:25.310Z`, `…:26.000Z`): fixed width, so
/// that times sort as text and line up in columns.
pub fn now_rfc3339() -> String {
    rfc3339(jiff::Timestamp::now())
}

/// A system time in the same form (`None` when it is out of range).
pub fn rfc3339_at(time: std::time::SystemTime) -> Option<String> {
    jiff::Timestamp::try_from(time).ok().map(rfc3339)
}

fn rfc3339(time: jiff::Timestamp) -> String {
    let rounded = time.round(jiff::Unit::Millisecond).unwrap_or(time);
    format!("{rounded:.3}")
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

    #[test]
    fn times_have_three_digits_of_milliseconds() {
        let at = |s: &str| rfc3339(s.parse().unwrap());
        assert_eq!(at("2026-11-24T06:41:25.31Z"), "2026-11-24T06:41:25.310Z");
        assert_eq!(at("2026-11-24T06:41:26Z"), "2026-11-24T06:41:26.000Z");
        assert_eq!(at("2026-11-24T06:41:26.0004Z"), "2026-11-24T06:41:26.000Z");
        assert_eq!(at("2026-11-24T06:41:26.9996Z"), "2026-11-24T06:41:27.000Z");
        assert_eq!(now_rfc3339().len(), "2026-11-24T06:41:25.310Z".len());
    }
}
