//! Time intervals as Alertmanager reads them (`timeinterval` package, 0.25):
//! `times` (`HH:MM` start inclusive, end exclusive, `24:00` allowed as an
//! end), `weekdays`, `days_of_month` (negative counts from the month's end),
//! `months`, `years`, each a list of inclusive ranges `a:b` or single values,
//! and `location` (an IANA zone from the system's zone database). A field left
//! out matches every time.

use jiff::tz::TimeZone;

/// One `time_intervals` entry of a named interval.
#[derive(Debug, Clone, Default)]
pub struct TimeInterval {
    /// Minute-of-day ranges, `[start, end)`.
    pub times: Option<Vec<(u32, u32)>>,
    /// 0 = Sunday … 6 = Saturday.
    pub weekdays: Option<Vec<(i32, i32)>>,
    pub days_of_month: Option<Vec<(i32, i32)>>,
    pub months: Option<Vec<(i32, i32)>>,
    pub years: Option<Vec<(i32, i32)>>,
    pub location: Option<TimeZone>,
}

const WEEKDAYS: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn in_ranges(value: i32, ranges: &[(i32, i32)]) -> bool {
    ranges.iter().any(|(begin, end)| value >= *begin && value <= *end)
}

impl TimeInterval {
    /// Whether the instant `at_ms` (unix milliseconds) lies in the interval.
    pub fn contains(&self, at_ms: i64) -> bool {
        let Ok(timestamp) = jiff::Timestamp::from_millisecond(at_ms) else { return false };
        let zone = self.location.clone().unwrap_or(TimeZone::UTC);
        let time = zone.to_datetime(timestamp);
        let minute = u32::try_from(i32::from(time.hour()) * 60 + i32::from(time.minute())).unwrap_or(0);
        if let Some(times) = &self.times
            && !times.iter().any(|(start, end)| minute >= *start && minute < *end)
        {
            return false;
        }
        if let Some(days) = &self.days_of_month {
            let days_in_month = i32::from(time.days_in_month());
            let day = i32::from(time.day());
            let inside = days.iter().any(|(begin, end)| {
                let begin = if *begin < 0 { days_in_month + begin + 1 } else { *begin };
                let end = if *end < 0 { days_in_month + end + 1 } else { *end };
                if begin > days_in_month {
                    return false;
                }
                let begin = begin.clamp(-days_in_month, days_in_month);
                let end = end.clamp(-days_in_month, days_in_month);
                day >= begin && day <= end
            });
            if !inside {
                return false;
            }
        }
        if let Some(months) = &self.months
            && !in_ranges(i32::from(time.month()), months)
        {
            return false;
        }
        if let Some(weekdays) = &self.weekdays
            && !in_ranges(i32::from(time.weekday().to_sunday_zero_offset()), weekdays)
        {
            return false;
        }
        if let Some(years) = &self.years
            && !in_ranges(i32::from(time.year()), years)
        {
            return false;
        }
        true
    }
}

/// `HH:MM` to minutes of the day; `24:00` is allowed.
pub fn parse_time(text: &str) -> Result<u32, String> {
    let valid = text == "24:00"
        || (text.len() == 5
            && text.as_bytes()[2] == b':'
            && text[..2].parse::<u32>().is_ok_and(|hours| hours < 24 && text[..2].bytes().all(|b| b.is_ascii_digit()))
            && text[3..].bytes().all(|b| b.is_ascii_digit())
            && text[3..].parse::<u32>().is_ok_and(|minutes| minutes < 60));
    if !valid {
        return Err(format!("couldn't parse timestamp {text}, invalid format"));
    }
    let hours: u32 = text[..2].parse().map_err(|_| format!("invalid timestamp format: {text}"))?;
    let minutes: u32 = text[3..].parse().map_err(|_| format!("invalid timestamp format: {text}"))?;
    Ok(hours * 60 + minutes)
}

/// A `start_time`/`end_time` pair.
pub fn parse_time_range(start: &str, end: &str) -> Result<(u32, u32), String> {
    if start.is_empty() || end.is_empty() {
        return Err("both start and end times must be provided".into());
    }
    let (start, end) = (parse_time(start)?, parse_time(end)?);
    if start >= end {
        return Err("start time cannot be equal or greater than end time".into());
    }
    Ok((start, end))
}

fn split_range(text: &str) -> Result<(&str, &str), String> {
    match text.split_once(':') {
        Some((begin, end)) if !end.contains(':') => Ok((begin, end)),
        Some(_) => Err(format!("couldn't parse range {text}, invalid format")),
        None => Ok((text, text)),
    }
}

fn integer(text: &str) -> Result<i32, String> {
    text.parse::<i32>().map_err(|_| format!("strconv.Atoi: parsing {text:?}: invalid syntax"))
}

pub fn parse_weekday_range(text: &str) -> Result<(i32, i32), String> {
    let lower = text.to_lowercase();
    let (begin, end) = split_range(&lower)?;
    let day = |name: &str| {
        WEEKDAYS
            .iter()
            .position(|day| *day == name)
            .map(|index| index as i32)
            .ok_or_else(|| format!("{name} is not a valid weekday"))
    };
    let range = (day(begin)?, day(end)?);
    if range.0 > range.1 {
        return Err("start day cannot be before end day".into());
    }
    Ok(range)
}

pub fn parse_day_of_month_range(text: &str) -> Result<(i32, i32), String> {
    let lower = text.to_lowercase();
    let (begin, end) = split_range(&lower)?;
    let (begin, end) = (integer(begin)?, integer(end)?);
    for day in [begin, end] {
        if day == 0 || !(-31..=31).contains(&day) {
            return Err(format!("{day} is not a valid day of the month: out of range"));
        }
    }
    if begin < 0 && end > 0 {
        return Err("end day must be negative if start day is negative".into());
    }
    let check_begin = if begin < 0 { 28 + begin } else { begin };
    let check_end = if end < 0 { 28 + end } else { end };
    if check_begin > check_end {
        return Err(format!("end day {end} is always before start day {begin}"));
    }
    Ok((begin, end))
}

pub fn parse_month_range(text: &str) -> Result<(i32, i32), String> {
    let lower = text.to_lowercase();
    let (begin, end) = split_range(&lower)?;
    let month = |name: &str| match MONTHS.iter().position(|month| *month == name) {
        Some(index) => Ok(index as i32 + 1),
        None => name.parse::<i32>().map_err(|_| format!("{name} is not a valid month")),
    };
    let range = (month(begin)?, month(end)?);
    if range.0 > range.1 {
        let name =
            |number: i32| usize::try_from(number - 1).ok().and_then(|index| MONTHS.get(index)).copied().unwrap_or("");
        return Err(format!("end month {} is before start month {}", name(range.1), name(range.0)));
    }
    Ok(range)
}

pub fn parse_year_range(text: &str) -> Result<(i32, i32), String> {
    let lower = text.to_lowercase();
    let (begin, end) = split_range(&lower)?;
    let range = (integer(begin)?, integer(end)?);
    if range.0 > range.1 {
        return Err(format!("end year {} is before start year {}", range.1, range.0));
    }
    Ok(range)
}

/// An IANA location name from the system zone database; `Local` is the
/// machine's zone, `UTC` needs no database.
pub fn parse_location(name: &str) -> Result<TimeZone, String> {
    match name {
        "" | "UTC" => Ok(TimeZone::UTC),
        "Local" => Ok(TimeZone::system()),
        _ => TimeZone::get(name).map_err(|_| format!("unknown time zone {name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().expect("timestamp").as_millisecond()
    }

    #[test]
    fn business_hours_in_berlin() {
        let interval = TimeInterval {
            times: Some(vec![parse_time_range("09:00", "17:00").expect("times")]),
            weekdays: Some(vec![parse_weekday_range("Monday:Friday").expect("weekdays")]),
            location: Some(parse_location("Europe/Berlin").expect("zone")),
            ..Default::default()
        };
        // 2026-12-02 is a Wednesday; 08:30 UTC is 09:30 in Berlin.
        assert!(interval.contains(at("2026-12-02T08:30:00Z")));
        assert!(!interval.contains(at("2026-12-02T07:30:00Z")));
        assert!(!interval.contains(at("2026-12-02T16:00:00Z")), "17:00 is excluded");
        assert!(!interval.contains(at("2026-12-05T10:00:00Z")), "Saturday");
    }

    #[test]
    fn negative_days_count_from_the_months_end() {
        let interval = TimeInterval {
            days_of_month: Some(vec![parse_day_of_month_range("-3:-1").expect("days")]),
            ..Default::default()
        };
        assert!(interval.contains(at("2026-02-26T12:00:00Z")));
        assert!(!interval.contains(at("2026-02-25T12:00:00Z")));
        assert!(interval.contains(at("2026-12-31T23:59:00Z")));
        let months = TimeInterval {
            months: Some(vec![parse_month_range("november:12").expect("months")]),
            years: Some(vec![parse_year_range("2026").expect("years")]),
            ..Default::default()
        };
        assert!(months.contains(at("2026-12-02T00:00:00Z")));
        assert!(!months.contains(at("2027-12-02T00:00:00Z")));
    }

    #[test]
    fn bad_ranges_get_alertmanagers_messages() {
        assert_eq!(parse_time("25:00").unwrap_err(), "couldn't parse timestamp 25:00, invalid format");
        assert_eq!(
            parse_time_range("10:00", "09:00").unwrap_err(),
            "start time cannot be equal or greater than end time"
        );
        assert_eq!(parse_weekday_range("friday:monday").unwrap_err(), "start day cannot be before end day");
        assert_eq!(parse_weekday_range("funday").unwrap_err(), "funday is not a valid weekday");
        assert_eq!(parse_day_of_month_range("-1:5").unwrap_err(), "end day must be negative if start day is negative");
        assert_eq!(parse_day_of_month_range("0").unwrap_err(), "0 is not a valid day of the month: out of range");
        assert_eq!(parse_month_range("march:january").unwrap_err(), "end month january is before start month march");
        assert!(parse_location("Mars/Olympus").is_err());
    }
}
