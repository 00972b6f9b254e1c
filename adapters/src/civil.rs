//! Calendar arithmetic for dates and timestamps that drivers hand over as day or microsecond counts.
//! Plain functions, no clock, no time zone database: days are proleptic Gregorian, timestamps UTC.

/// Days since 1970-01-01 of a civil date (H. Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DD` for a day count since 1970-01-01, if the year has four digits.
pub(crate) fn format_date(days_since_1970: i64) -> Option<String> {
    let (y, m, d) = civil_from_days(days_since_1970);
    (1..=9999)
        .contains(&y)
        .then(|| format!("{y:04}-{m:02}-{d:02}"))
}

/// Day count since 1970-01-01 of a `YYYY-MM-DD` string already checked by `params::is_date`.
pub(crate) fn parse_date(s: &str) -> Option<i64> {
    let y = s.get(0..4)?.parse().ok()?;
    let m = s.get(5..7)?.parse().ok()?;
    let d = s.get(8..10)?.parse().ok()?;
    Some(days_from_civil(y, m, d))
}

/// RFC 3339 for microseconds since 1970-01-01T00:00:00; `utc` appends `Z` (without it, the value
/// is a local date-time with no offset, as SQL `timestamp` is).
pub(crate) fn format_timestamp_micros(micros: i64, utc: bool) -> Option<String> {
    let days = micros.div_euclid(86_400_000_000);
    let rem = micros.rem_euclid(86_400_000_000);
    let date = format_date(days)?;
    let (secs, frac) = (rem / 1_000_000, rem % 1_000_000);
    let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let frac = if frac == 0 {
        String::new()
    } else {
        format!(".{frac:06}")
    };
    Some(format!(
        "{date}T{h:02}:{mi:02}:{s:02}{frac}{}",
        if utc { "Z" } else { "" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 1), 10_957);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(format_date(-1).as_deref(), Some("1969-12-31"));
        for z in [-800_000, -1, 0, 1, 10_957, 19_782, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(
            format_timestamp_micros(946_684_800_000_000 + 3_723_000_001, true).as_deref(),
            Some("2000-01-01T01:02:03.000001Z")
        );
        assert_eq!(
            format_timestamp_micros(-1_000_000, false).as_deref(),
            Some("1969-12-31T23:59:59")
        );
    }
}
