//! Durations and byte sizes as LogQL writes them.
//!
//! [`parse_duration`] reads Go durations (`1m30s`, `250ms`, `1.5h`) extended
//! with Prometheus's `d`, `w` and `y`; ranges, offsets, duration label filters and
//! `unwrap duration(...)` all use it. [`parse_bytes`] reads humanized sizes
//! (`20MB` = 20·10⁶, `1KiB` = 1024), case-insensitively, as Loki's `bytes`
//! filters and `unwrap bytes(...)` do.

/// Nanoseconds of a duration such as `1h30m`, `-5s`, `0`; `None` when malformed or out of range.
pub fn parse_duration(text: &str) -> Option<i64> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_length = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if number_length == 0 {
            return None;
        }
        let amount: f64 = rest[..number_length].parse().ok()?;
        rest = &rest[number_length..];
        let unit_length = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_length];
        rest = &rest[unit_length..];
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            "w" => 604_800e9,
            "y" => 31_536_000e9,
            _ => return None,
        };
        total += amount * scale;
    }
    if !total.is_finite() || total >= i64::MAX as f64 {
        return None;
    }
    let nanoseconds = total.round() as i64;
    Some(if negative { -nanoseconds } else { nanoseconds })
}

/// Bytes of a size such as `20MB`, `1KiB`, `512`, `1.5 GB`; `None` when malformed.
pub fn parse_bytes(text: &str) -> Option<f64> {
    let text = text.trim();
    let number_length = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    if number_length == 0 {
        return None;
    }
    let amount: f64 = text[..number_length].parse().ok()?;
    let unit = text[number_length..].trim().to_ascii_lowercase();
    let scale: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "ti" | "tib" => 1024f64.powi(4),
        "p" | "pb" => 1e15,
        "pi" | "pib" => 1024f64.powi(5),
        "e" | "eb" => 1e18,
        "ei" | "eib" => 1024f64.powi(6),
        _ => return None,
    };
    Some(amount * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_duration("250ms"), Some(250_000_000));
        assert_eq!(parse_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("1d"), Some(86_400_000_000_000));
        assert_eq!(parse_duration("-5s"), Some(-5_000_000_000));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("99999999999y"), None);
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("20MB"), Some(20e6));
        assert_eq!(parse_bytes("1KiB"), Some(1024.0));
        assert_eq!(parse_bytes("512"), Some(512.0));
        assert_eq!(parse_bytes("1.5 gb"), Some(1.5e9));
        assert_eq!(parse_bytes("MB"), None);
        assert_eq!(parse_bytes("5 parsecs"), None);
    }
}
