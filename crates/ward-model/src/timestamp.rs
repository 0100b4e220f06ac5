//! Times as Ward stores and shows them: RFC 3339 UTC with milliseconds
//! (`2026-11-26T02:20:39.123Z`, sortable as text) from and to unix
//! milliseconds. Callers read the clock and pass the time in.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-26T02:20:39.123Z`. Times
/// outside the calendar's range show as the epoch.
pub fn rfc3339(ms: i64) -> String {
    let Ok(at) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return String::from("1970-01-01T00:00:00.000Z");
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// Unix milliseconds of an RFC 3339 time in any offset; `None` if it is not
/// one.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_sortably_and_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_764_123_639_123), "2025-11-26T02:20:39.123Z");
        assert_eq!(
            parse_rfc3339("2025-11-26T03:20:39.123+01:00"),
            Some(1_764_123_639_123)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
