//! Prometheus duration strings: `1y2w3d4h5m6s7ms`, units in descending order.

use std::time::Duration;

/// Parses a Prometheus duration (`5m`, `1h30m`, `336h`, `72h`, `500ms`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    const UNITS: &[(&str, u64)] = &[
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("ms", 1),
        ("m", 60_000),
        ("s", 1000),
    ];
    let mut rest = text;
    let mut total_ms: u64 = 0;
    let mut last_unit_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("invalid duration {text:?}: expected a number"));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| format!("invalid duration {text:?}"))?;
        rest = &rest[digits..];
        let Some((rank, (unit, factor))) = UNITS.iter().enumerate().find(|(_, (unit, _))| rest.starts_with(unit))
        else {
            return Err(format!("invalid duration {text:?}: unknown unit (use y, w, d, h, m, s or ms)"));
        };
        // "ms" is listed before "m" to match first; order it after "s" for the ranking.
        let order = match *unit {
            "ms" => 7,
            other => UNITS.iter().position(|(u, _)| *u == other).unwrap_or(rank),
        };
        if last_unit_rank != usize::MAX && order <= last_unit_rank {
            return Err(format!("invalid duration {text:?}: units must be in descending order, each once"));
        }
        last_unit_rank = order;
        total_ms = number
            .checked_mul(*factor)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| format!("duration {text:?} is too long"))?;
        rest = &rest[unit.len()..];
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(parse_duration("336h"), Ok(Duration::from_secs(336 * 3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5m1h").is_err());
        assert!(parse_duration("3x").is_err());
    }
}
