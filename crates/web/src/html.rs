//! Small pieces every page uses: HTML escaping for the few fragments built
//! in Rust (evidence values), and how times, ages and values read.

/// Escapes text for an HTML element or a double-quoted attribute: `&`, `<`,
/// `>`, `"` and `'`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

/// [`escape`], appending to `out`.
pub fn escape_into(out: &mut String, text: &str) {
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
}

/// A Unix-milliseconds time as `2026-12-02 18:43:02 UTC`.
pub fn format_time(time_ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(time_ms) {
        Some(time) => time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => "unknown time".into(),
    }
}

/// A Unix-milliseconds time as RFC 3339, for `<time datetime>`.
pub fn machine_time(time_ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(time_ms) {
        Some(time) => time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => String::new(),
    }
}

/// A duration in milliseconds as the two largest units: `3d 4h`, `5m 2s`, `40s`.
pub fn format_duration(duration_ms: i64) -> String {
    let seconds = duration_ms.max(0) / 1000;
    let (days, hours, minutes, seconds) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

/// How long ago `time_ms` was at `now_ms`: `5m 2s ago` (`in 3s` for a time ahead).
pub fn format_age(now_ms: i64, time_ms: i64) -> String {
    if time_ms > now_ms {
        format!("in {}", format_duration(time_ms - now_ms))
    } else {
        format!("{} ago", format_duration(now_ms - time_ms))
    }
}

/// A sample value with at most 6 significant digits, without exponent noise
/// for everyday magnitudes: `0.0231`, `1.5e9`, `NaN`, `+Inf`.
pub fn format_value(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if value == value.trunc() && value.abs() < 1e15 {
        return format!("{value:.0}");
    }
    let magnitude = value.abs();
    if !(1e-4..1e9).contains(&magnitude) {
        let text = format!("{value:.5e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let mantissa =
            if mantissa.contains('.') { mantissa.trim_end_matches('0').trim_end_matches('.') } else { mantissa };
        return format!("{mantissa}e{exponent}");
    }
    let decimals = (5 - magnitude.log10().floor() as i32).clamp(0, 9) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_makes_markup_text() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(escape("plain ü"), "plain ü");
    }

    #[test]
    fn times_durations_and_values_read_well() {
        assert_eq!(format_time(1_767_225_600_000), "2026-01-01 00:00:00 UTC");
        assert_eq!(machine_time(1_767_225_600_000), "2026-01-01T00:00:00Z");
        assert_eq!(format_duration(42_000), "42s");
        assert_eq!(format_duration(302_000), "5m 2s");
        assert_eq!(format_duration(3 * 3_600_000 + 60_000), "3h 1m");
        assert_eq!(format_duration(2 * 86_400_000 + 3_600_000), "2d 1h");
        assert_eq!(format_age(10_000, 4_000), "6s ago");
        assert_eq!(format_age(4_000, 10_000), "in 6s");
        assert_eq!(format_value(86_400.0), "86400");
        assert_eq!(format_value(0.023_156), "0.023156");
        assert_eq!(format_value(1.5), "1.5");
        assert_eq!(format_value(123.456_789), "123.457");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(2.5e-7), "2.5e-7");
        assert_eq!(format_value(1.25e12 + 0.5), "1.25e12");
    }
}
