//! Virtual time: Unix milliseconds, and the text forms the simulated sources
//! write (RFC 3339 as Traefik, Grafana and Docker write it; Alloy's Faro
//! `timestamp`). No wall clock is read anywhere in this crate.

pub const SECOND_MS: i64 = 1_000;
pub const MINUTE_MS: i64 = 60 * SECOND_MS;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;
pub const WEEK_MS: i64 = 7 * DAY_MS;

/// (year, month, day) of days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Calendar fields of a Unix time in nanoseconds: (year, month, day, hour, minute, second, nanosecond).
fn fields(time_ns: i64) -> (i64, u32, u32, i64, i64, i64, i64) {
    let seconds = time_ns.div_euclid(1_000_000_000);
    let nanos = time_ns.rem_euclid(1_000_000_000);
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    (year, month, day, of_day / 3600, of_day % 3600 / 60, of_day % 60, nanos)
}

/// `2026-01-05T06:00:58.118012345Z` (nanoseconds, as Traefik's `StartUTC` and Docker's timestamps).
pub fn rfc3339_nanos(time_ns: i64) -> String {
    let (year, month, day, hour, minute, second, nanos) = fields(time_ns);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{nanos:09}Z")
}

/// `2026-01-05T06:00:58Z` (whole seconds, as Traefik's `time`).
pub fn rfc3339_seconds(time_ns: i64) -> String {
    let (year, month, day, hour, minute, second, _) = fields(time_ns);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// `2026-01-05T06:00:58.118000Z` (microseconds, as PostgreSQL's `timestamptz` read by the SQL datasource).
pub fn rfc3339_micros(time_ms: i64) -> String {
    let (year, month, day, hour, minute, second, nanos) = fields(time_ms * 1_000_000);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{:06}Z", nanos / 1000)
}

/// `2026-01-05 06:00:58.118 +0000 UTC` (Alloy's Faro `timestamp`, Go's time.Time format).
pub fn go_time(time_ns: i64) -> String {
    let (year, month, day, hour, minute, second, nanos) = fields(time_ns);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{:03} +0000 UTC", nanos / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        // 2026-01-01T00:00:00Z
        let new_year_ns = 1_767_225_600 * 1_000_000_000;
        assert_eq!(rfc3339_seconds(new_year_ns), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339_nanos(new_year_ns + 58_118_012_345), "2026-01-01T00:00:58.118012345Z");
        assert_eq!(go_time(new_year_ns + 60_118_000_000), "2026-01-01 00:01:00.118 +0000 UTC");
        assert_eq!(rfc3339_micros(1_767_225_600_000 + 1_500), "2026-01-01T00:00:01.500000Z");
        // A leap day and the turn of a century.
        assert_eq!(rfc3339_seconds(951_782_400 * 1_000_000_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_seconds(0), "1970-01-01T00:00:00Z");
    }
}
