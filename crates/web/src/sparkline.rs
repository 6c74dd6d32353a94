//! Sparklines: a series' points as a small inline SVG, drawn on the server.
//!
//! [`Sparkline::new`] scales the points into a fixed view box (time across,
//! value up), breaking the line where a value is not finite, and keeps the
//! figures a caption and a screen reader need (first and last time, minimum,
//! maximum, last value). The path holds only numbers, so the SVG needs no
//! escaping beyond what the template does.

use std::fmt::Write;

use crate::html::{format_time, format_value};

/// The view box: 200 × 40 units, drawn 2 units inside its edges.
const WIDTH: f64 = 200.0;
const HEIGHT: f64 = 40.0;
const INSET: f64 = 2.0;

/// One series, ready for the template.
#[derive(Debug, Clone, PartialEq)]
pub struct Sparkline {
    /// The series' labels in Prometheus notation, `{a="x"}`.
    pub caption: String,
    /// The line's path (`M x y L x y ...`), one subpath per run of finite values.
    pub line: String,
    /// The area under the line, closed to the bottom edge (empty for a single point).
    pub area: String,
    /// Where the last finite point is drawn.
    pub last_x: String,
    pub last_y: String,
    pub min: String,
    pub max: String,
    pub last: String,
    pub from: String,
    pub to: String,
    pub points: usize,
    /// A sentence that says what the picture shows, for `aria-label`.
    pub description: String,
}

impl Sparkline {
    pub const VIEW_BOX: &'static str = "0 0 200 40";

    /// A sparkline of `points` (`[unix ms, value]`, in time order); `None`
    /// when no point has a finite value.
    pub fn new(caption: String, points: &[(i64, f64)]) -> Option<Sparkline> {
        let finite: Vec<&(i64, f64)> = points.iter().filter(|(_, value)| value.is_finite()).collect();
        let (first, last) = (finite.first()?, finite.last()?);
        let (min, max) = finite
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(min, max), (_, value)| (min.min(*value), max.max(*value)));
        let (start, end) =
            (points.first().map_or(first.0, |point| point.0), points.last().map_or(last.0, |point| point.0));
        let x = |time: i64| {
            if end == start {
                WIDTH / 2.0
            } else {
                INSET + (time - start) as f64 / (end - start) as f64 * (WIDTH - 2.0 * INSET)
            }
        };
        let y = |value: f64| {
            if max == min {
                HEIGHT / 2.0
            } else {
                HEIGHT - INSET - (value - min) / (max - min) * (HEIGHT - 2.0 * INSET)
            }
        };
        let mut line = String::new();
        let mut area = String::new();
        let mut run: Vec<(f64, f64)> = Vec::new();
        let mut flush = |run: &mut Vec<(f64, f64)>| {
            if run.len() >= 2 {
                for (index, (px, py)) in run.iter().enumerate() {
                    let _ = write!(line, "{}{px:.1} {py:.1} ", if index == 0 { 'M' } else { 'L' });
                }
                let _ = write!(area, "M{:.1} {HEIGHT:.1} ", run[0].0);
                for (px, py) in run.iter() {
                    let _ = write!(area, "L{px:.1} {py:.1} ");
                }
                let _ = write!(area, "L{:.1} {HEIGHT:.1} Z ", run[run.len() - 1].0);
            }
            run.clear();
        };
        for (time, value) in points {
            if value.is_finite() {
                run.push((x(*time), y(*value)));
            } else {
                flush(&mut run);
            }
        }
        flush(&mut run);
        let (min_text, max_text, last_text) = (format_value(min), format_value(max), format_value(last.1));
        let description = format!(
            "{} points from {} to {}: minimum {min_text}, maximum {max_text}, last {last_text}",
            finite.len(),
            format_time(first.0),
            format_time(last.0)
        );
        Some(Sparkline {
            caption,
            line: line.trim_end().to_owned(),
            area: area.trim_end().to_owned(),
            last_x: format!("{:.1}", x(last.0)),
            last_y: format!("{:.1}", y(last.1)),
            min: min_text,
            max: max_text,
            last: last_text,
            from: format_time(first.0),
            to: format_time(last.0),
            points: finite.len(),
            description,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_scale_into_the_view_box() {
        let spark = Sparkline::new("{}".into(), &[(0, 0.0), (1000, 10.0), (2000, 5.0)]).expect("sparkline");
        assert_eq!(spark.line, "M2.0 38.0 L100.0 2.0 L198.0 20.0");
        assert_eq!(spark.area, "M2.0 40.0 L2.0 38.0 L100.0 2.0 L198.0 20.0 L198.0 40.0 Z");
        assert_eq!((spark.last_x.as_str(), spark.last_y.as_str()), ("198.0", "20.0"));
        assert_eq!((spark.min.as_str(), spark.max.as_str(), spark.last.as_str()), ("0", "10", "5"));
        assert_eq!(spark.points, 3);
        assert!(spark.description.starts_with("3 points from 1970-01-01 00:00:00 UTC to 1970-01-01 00:00:02 UTC"));
    }

    #[test]
    fn gaps_break_the_line_and_flat_or_single_series_sit_in_the_middle() {
        let spark = Sparkline::new("{}".into(), &[(0, 1.0), (1000, 2.0), (2000, f64::NAN), (3000, 1.0), (4000, 2.0)])
            .expect("sparkline");
        assert_eq!(spark.line, "M2.0 38.0 L51.0 2.0 M149.0 38.0 L198.0 2.0");
        assert_eq!(spark.points, 4);
        let flat = Sparkline::new("{}".into(), &[(0, 7.0), (1000, 7.0)]).expect("sparkline");
        assert_eq!(flat.line, "M2.0 20.0 L198.0 20.0");
        let single = Sparkline::new("{}".into(), &[(5000, 3.0)]).expect("sparkline");
        assert_eq!((single.line.as_str(), single.last_x.as_str(), single.last_y.as_str()), ("", "100.0", "20.0"));
        assert_eq!(Sparkline::new("{}".into(), &[(0, f64::NAN)]), None);
        assert_eq!(Sparkline::new("{}".into(), &[]), None);
    }
}
