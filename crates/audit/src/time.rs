//! RFC 3339 UTC timestamps with milliseconds, computed without a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats `time` as `2026-11-24T01:02:03.456Z`. Times before 1970 are clamped to the epoch:
/// a clock that far off is reported as such rather than as a negative date.
pub(crate) fn rfc3339_millis(time: SystemTime) -> String {
    let millis = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let millis = u64::try_from(millis).unwrap_or(u64::MAX);
    let secs = millis / 1000;
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        millis % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`, restricted to non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(ms: u64) -> String {
        rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms))
    }

    #[test]
    fn formats_known_instants() {
        // Expected values from Python's datetime.
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(1_795_482_123_456), "2026-11-24T01:02:03.456Z");
        assert_eq!(at(951_868_799_999), "2000-02-29T23:59:59.999Z");
        assert_eq!(at(1_709_164_800_001), "2024-02-29T00:00:00.001Z");
        assert_eq!(at(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn clamps_times_before_the_epoch() {
        assert_eq!(
            rfc3339_millis(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn every_day_of_a_leap_cycle_round_trips() {
        // Walk 400 years day by day: dates must advance by exactly one day each time.
        let mut previous = civil_from_days(0);
        for days in 1..146_097 {
            let current = civil_from_days(days);
            let (py, pm, pd) = previous;
            let next_day = (py, pm, pd + 1);
            let next_month = (py, pm + 1, 1);
            let next_year = (py + 1, 1, 1);
            assert!(
                current == next_day || current == next_month || current == next_year,
                "{previous:?} -> {current:?}"
            );
            previous = current;
        }
        assert_eq!(previous, (2369, 12, 31));
    }
}
