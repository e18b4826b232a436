//! Timestamps: one format everywhere, so stored strings sort as times.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// Now, as the broker writes system timestamps (UTC, microseconds).
pub fn now() -> String {
    format(Utc::now())
}

pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses an ISO 8601 date-time (with offset, or naive taken as UTC) and returns it in
/// the broker's format.
pub fn parse_datetime(s: &str) -> Result<String, chrono::ParseError> {
    parse(s).map(format)
}

pub fn parse(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    match DateTime::parse_from_rfc3339(s) {
        Ok(t) => Ok(t.with_timezone(&Utc)),
        Err(e) => NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ"))
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.fZ"))
            .or_else(|_| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
            })
            .map(|n| n.and_utc())
            .map_err(|_| e),
    }
}

/// Microseconds since the Unix epoch (how the temporal store keeps instants).
pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// An instant from microseconds, written as briefly as it allows: whole seconds as
/// `2020-08-01T12:03:00Z`, else with the fraction needed.
pub fn from_micros(us: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp_micros(us).unwrap_or_default();
    let format = if us % 1_000_000 == 0 {
        SecondsFormat::Secs
    } else if us % 1_000 == 0 {
        SecondsFormat::Millis
    } else {
        SecondsFormat::Micros
    };
    t.to_rfc3339_opts(format, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_offsets_to_utc() {
        assert_eq!(
            parse_datetime("2024-01-01T01:00:00+01:00").ok().as_deref(),
            Some("2024-01-01T00:00:00.000000Z")
        );
        assert_eq!(
            parse_datetime("2024-01-01T00:00:00Z").ok().as_deref(),
            Some("2024-01-01T00:00:00.000000Z")
        );
        assert!(parse_datetime("yesterday").is_err());
    }
}
