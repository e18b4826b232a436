//! ISO 8601 durations for `aggrPeriodDuration` (P1D, PT15M, P1M, P1Y, P1W...).

use chrono::{DateTime, Datelike, TimeZone, Utc};

use crate::error::{NgsiError, Result};

/// A period: a whole number of months (calendar) plus a fixed number of microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub months: u32,
    pub micros: i64,
}

impl Period {
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            NgsiError::bad_data(format!(
                "'{s}' is not an ISO 8601 duration (e.g. PT15M, PT1H, P1D, P1M)"
            ))
        };
        let rest = s.strip_prefix('P').ok_or_else(bad)?;
        let (date, time) = match rest.split_once('T') {
            Some((d, t)) if !t.is_empty() => (d, Some(t)),
            Some(_) => return Err(bad()),
            None => (rest, None),
        };
        let mut months: u32 = 0;
        let mut micros: i64 = 0;
        let mut take = |part: &str, units: &[(char, i64, u32)]| -> Result<()> {
            let mut number = String::new();
            for c in part.chars() {
                if c.is_ascii_digit() || c == '.' {
                    number.push(c);
                    continue;
                }
                let &(_, us, mo) = units.iter().find(|(u, _, _)| *u == c).ok_or_else(bad)?;
                let n: f64 = number.parse().map_err(|_| bad())?;
                number.clear();
                if mo > 0 {
                    if n.fract() != 0.0 {
                        return Err(bad());
                    }
                    months += n as u32 * mo;
                } else {
                    micros += (n * us as f64) as i64;
                }
            }
            if number.is_empty() {
                Ok(())
            } else {
                Err(bad())
            }
        };
        const S: i64 = 1_000_000;
        take(
            date,
            &[
                ('Y', 0, 12),
                ('M', 0, 1),
                ('W', 7 * 86_400 * S, 0),
                ('D', 86_400 * S, 0),
            ],
        )?;
        if let Some(t) = time {
            take(t, &[('H', 3_600 * S, 0), ('M', 60 * S, 0), ('S', S, 0)])?;
        }
        if months == 0 && micros <= 0 {
            return Err(bad());
        }
        Ok(Self { months, micros })
    }

    /// The start of the bucket after the one starting at `start_us`.
    pub fn add_to(&self, start_us: i64) -> i64 {
        let t = DateTime::<Utc>::from_timestamp_micros(start_us).unwrap_or_default();
        let t = if self.months > 0 {
            let total = t.year() * 12 + t.month0() as i32 + self.months as i32;
            let (y, m) = (total.div_euclid(12), total.rem_euclid(12) as u32 + 1);
            Utc.with_ymd_and_hms(y, m, t.day().min(28), 0, 0, 0)
                .single()
                .unwrap_or(t)
                + (t - t
                    .date_naive()
                    .and_hms_opt(0, 0, 0)
                    .unwrap_or_default()
                    .and_utc())
        } else {
            t
        };
        t.timestamp_micros() + self.micros
    }

    /// The instant this period before `end_us` (calendar months counted back).
    pub fn subtract_from(&self, end_us: i64) -> i64 {
        let t = DateTime::<Utc>::from_timestamp_micros(end_us).unwrap_or_default();
        let t = t
            .checked_sub_months(chrono::Months::new(self.months))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        t.timestamp_micros().saturating_sub(self.micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_periods() {
        assert_eq!(
            Period::parse("PT15M").ok(),
            Some(Period {
                months: 0,
                micros: 900_000_000
            })
        );
        assert_eq!(
            Period::parse("P1D").ok(),
            Some(Period {
                months: 0,
                micros: 86_400_000_000
            })
        );
        assert_eq!(
            Period::parse("P1M").ok(),
            Some(Period {
                months: 1,
                micros: 0
            })
        );
        assert_eq!(Period::parse("P1Y").map(|p| p.months).ok(), Some(12));
        assert_eq!(
            Period::parse("P1DT12H").map(|p| p.micros).ok(),
            Some(129_600_000_000)
        );
        for bad in ["", "P", "PT", "1D", "P1X", "PT-5M", "P0D", "daily"] {
            assert!(Period::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn month_steps_follow_the_calendar() {
        let jan = Utc
            .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
            .single()
            .map(|t| t.timestamp_micros())
            .unwrap_or(0);
        let feb = Utc
            .with_ymd_and_hms(2024, 2, 1, 0, 0, 0)
            .single()
            .map(|t| t.timestamp_micros())
            .unwrap_or(0);
        assert_eq!(Period::parse("P1M").map(|p| p.add_to(jan)).ok(), Some(feb));
    }
}
