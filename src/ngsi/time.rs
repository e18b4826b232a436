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
