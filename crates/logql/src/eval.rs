//! The LogQL evaluator.
//!
//! [`Engine`] runs a parsed query over a [`LogSource`]. Log queries read
//! `[start, end)` (an instant log query reads the lookback window ending at
//! and including its time), run the pipeline, keep `limit` entries in the
//! requested direction and group them into streams by their labels after the
//! pipeline. Metric queries read each range aggregation's data once for the
//! whole query, turn entries into samples (1 per line, the line's bytes, or the
//! unwrapped value) per series, then evaluate the expression at every step over
//! the window `(t - offset - range, t - offset]`, as Loki does. Vector
//! aggregations and binary operators follow PromQL.
//!
//! Labels of results: a pipeline with a parser, `label_format`, `drop`, `keep`
//! or `unwrap` labels its results with the labels after the pipeline (stream
//! labels, structured metadata, parsed labels); a pipeline of filters only
//! keeps the stream labels (structured metadata stays visible to its filters).
//! A metric query whose series carry `__error__` fails with Loki's pipeline
//! error, unless a filter removed the errors.
//!
//! The engine does no I/O of its own. Its one clock is the query timeout
//! ([`Limits::timeout`]): it looks at it every `ENTRIES_PER_CLOCK_CHECK` (1,024)
//! entries read and at every step of a range query, and once the deadline
//! has passed it asks the store to stop and fails with [`Error::Timeout`].

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use tsdb::Labels;

use crate::ast::*;
use crate::error::Error;
use crate::pipeline::{ERROR_LABEL, Pipeline, Row};
use crate::source::{Entry, LogSource, MatchOp};
use crate::value::{Direction, QueryValue, Series, Stream, StreamEntry};

/// Bounds on what one query may do.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest `limit` a log query may ask for.
    pub max_entries: usize,
    /// Most series a metric query may return (and hold per range aggregation).
    pub max_series: usize,
    /// Most steps of a range query.
    pub max_points: usize,
    /// How far back an instant log query looks from its time.
    pub instant_log_lookback_ns: i64,
    /// How long one query may run; `None`: no bound.
    pub timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entries: 5000,
            max_series: 500,
            max_points: 11_000,
            instant_log_lookback_ns: 3_600_000_000_000,
            timeout: Some(Duration::from_secs(120)),
        }
    }
}

/// How many entries a query reads between two looks at the clock.
const ENTRIES_PER_CLOCK_CHECK: u32 = 1024;

/// When a query must be done.
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Option<Instant>,
    timeout: Duration,
}

impl Deadline {
    fn start(timeout: Option<Duration>) -> Self {
        Self {
            at: timeout.and_then(|timeout| Instant::now().checked_add(timeout)),
            timeout: timeout.unwrap_or(Duration::MAX),
        }
    }

    fn passed(&self) -> bool {
        self.at.is_some_and(|at| Instant::now() >= at)
    }

    fn error(&self) -> Error {
        Error::Timeout(format!("query timed out after {:?}", self.timeout))
    }

    fn check(&self) -> Result<(), Error> {
        if self.passed() { Err(self.error()) } else { Ok(()) }
    }
}

/// Counts the entries a store hands out and looks at the deadline every
/// [`ENTRIES_PER_CLOCK_CHECK`] of them; once it has passed, asks the store to stop.
struct Clock {
    deadline: Deadline,
    entries: u32,
    timed_out: bool,
}

impl Clock {
    fn new(deadline: Deadline) -> Self {
        Self { deadline, entries: 0, timed_out: false }
    }

    fn tick(&mut self) -> ControlFlow<()> {
        self.entries = self.entries.wrapping_add(1);
        if self.entries.is_multiple_of(ENTRIES_PER_CLOCK_CHECK) && self.deadline.passed() {
            self.timed_out = true;
        }
        if self.timed_out { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    }

    fn finish(&self) -> Result<(), Error> {
        if self.timed_out { Err(self.deadline.error()) } else { Ok(()) }
    }
}

/// Runs LogQL queries; cheap to share between threads.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    pub limits: Limits,
}

/// The value of a metric expression at one step.
#[derive(Debug, Clone)]
enum StepValue {
    Scalar(f64),
    Vector(Vec<(Labels, f64)>),
}

/// The samples of one range aggregation for the whole query, per series, in time order.
struct RangeData {
    series: Vec<(Labels, Vec<(i64, f64)>)>,
}

type RangeCache = HashMap<usize, RangeData>;

fn node_key(expr: &MetricExpr) -> usize {
    std::ptr::from_ref(expr) as usize
}

impl Engine {
    pub fn new(limits: Limits) -> Self {
        Self { limits }
    }

    /// An instant query at `time_ns`: streams for a log query, a vector or
    /// scalar for a metric query.
    pub fn instant_query(
        &self,
        source: &dyn LogSource,
        query: &str,
        time_ns: i64,
        limit: usize,
        direction: Direction,
    ) -> Result<QueryValue, Error> {
        let expr = crate::parse(query)?;
        self.instant_expr(source, &expr, time_ns, limit, direction)
    }

    /// [`Engine::instant_query`] for a query parsed already.
    pub fn instant_expr(
        &self,
        source: &dyn LogSource,
        expr: &Expr,
        time_ns: i64,
        limit: usize,
        direction: Direction,
    ) -> Result<QueryValue, Error> {
        let deadline = Deadline::start(self.limits.timeout);
        match expr {
            Expr::Log(log) => {
                let start = time_ns.saturating_sub(self.limits.instant_log_lookback_ns).saturating_add(1);
                let streams =
                    self.log_query(source, log, start, time_ns.saturating_add(1), limit, direction, deadline)?;
                Ok(QueryValue::Streams(streams))
            }
            Expr::Metric(metric) => {
                let mut cache = RangeCache::new();
                self.load(source, metric, time_ns, time_ns, &mut cache, deadline)?;
                match self.evaluate(metric, time_ns, &cache)? {
                    StepValue::Scalar(value) => Ok(QueryValue::Scalar(value)),
                    StepValue::Vector(mut vector) => {
                        if !is_sorted_by_value(metric) {
                            vector.sort_by(|left, right| left.0.cmp(&right.0));
                        }
                        self.check_series(vector.len())?;
                        Ok(QueryValue::Vector(vector))
                    }
                }
            }
        }
    }

    /// A range query: streams of `[start_ns, end_ns)` for a log query, a matrix
    /// with points at `start_ns`, `start_ns + step_ns`, ... up to `end_ns` for a metric query.
    #[allow(clippy::too_many_arguments)]
    pub fn range_query(
        &self,
        source: &dyn LogSource,
        query: &str,
        start_ns: i64,
        end_ns: i64,
        step_ns: i64,
        limit: usize,
        direction: Direction,
    ) -> Result<QueryValue, Error> {
        let expr = crate::parse(query)?;
        self.range_expr(source, &expr, start_ns, end_ns, step_ns, limit, direction)
    }

    /// [`Engine::range_query`] for a query parsed already.
    #[allow(clippy::too_many_arguments)]
    pub fn range_expr(
        &self,
        source: &dyn LogSource,
        expr: &Expr,
        start_ns: i64,
        end_ns: i64,
        step_ns: i64,
        limit: usize,
        direction: Direction,
    ) -> Result<QueryValue, Error> {
        if end_ns < start_ns {
            return Err(Error::InvalidQuery("the query time range is invalid: end is before start".to_string()));
        }
        let deadline = Deadline::start(self.limits.timeout);
        match expr {
            Expr::Log(log) => {
                Ok(QueryValue::Streams(self.log_query(source, log, start_ns, end_ns, limit, direction, deadline)?))
            }
            Expr::Metric(metric) => {
                if step_ns <= 0 {
                    return Err(Error::InvalidQuery(
                        "zero or negative query resolution step widths are not accepted, try a positive integer"
                            .to_string(),
                    ));
                }
                let points = (i128::from(end_ns) - i128::from(start_ns)) / i128::from(step_ns) + 1;
                if points > self.limits.max_points as i128 {
                    return Err(Error::InvalidQuery(format!(
                        "exceeded maximum resolution of {} points per time series, try decreasing the query resolution (?step=XX)",
                        self.limits.max_points
                    )));
                }
                let mut cache = RangeCache::new();
                self.load(source, metric, start_ns, end_ns, &mut cache, deadline)?;
                let mut series: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
                let mut time = start_ns;
                while time <= end_ns {
                    deadline.check()?;
                    match self.evaluate(metric, time, &cache)? {
                        StepValue::Scalar(value) => series.entry(Labels::empty()).or_default().push((time, value)),
                        StepValue::Vector(vector) => {
                            for (labels, value) in vector {
                                series.entry(labels).or_default().push((time, value));
                            }
                        }
                    }
                    self.check_series(series.len())?;
                    let Some(next) = time.checked_add(step_ns) else { break };
                    time = next;
                }
                let mut matrix: Vec<Series> =
                    series.into_iter().map(|(labels, points)| Series { labels, points }).collect();
                matrix.sort_by(|left, right| left.labels.cmp(&right.labels));
                Ok(QueryValue::Matrix(matrix))
            }
        }
    }

    fn check_series(&self, count: usize) -> Result<(), Error> {
        if count > self.limits.max_series {
            return Err(Error::Limit(format!(
                "maximum number of series ({}) reached for a single query",
                self.limits.max_series
            )));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn log_query(
        &self,
        source: &dyn LogSource,
        log: &LogExpr,
        start_ns: i64,
        end_ns: i64,
        limit: usize,
        direction: Direction,
        deadline: Deadline,
    ) -> Result<Vec<Stream>, Error> {
        if limit > self.limits.max_entries {
            return Err(Error::Limit(format!(
                "max entries limit per query exceeded, limit > max_entries_limit ({limit} > {})",
                self.limits.max_entries
            )));
        }
        if limit == 0 {
            return Ok(Vec::new());
        }
        struct Kept {
            timestamp_ns: i64,
            sequence: usize,
            labels: Labels,
            line: String,
            metadata: Vec<(String, String)>,
        }
        let pipeline = Pipeline::new(&log.stages, None);
        let mut row = Row::default();
        let mut interner: HashMap<Vec<(String, String)>, Labels> = HashMap::new();
        let mut kept: Vec<Kept> = Vec::new();
        let mut sequence = 0usize;
        let order = |left: &Kept, right: &Kept| match direction {
            Direction::Forward => (left.timestamp_ns, left.sequence).cmp(&(right.timestamp_ns, right.sequence)),
            Direction::Backward => (right.timestamp_ns, right.sequence).cmp(&(left.timestamp_ns, left.sequence)),
        };
        let mut clock = Clock::new(deadline);
        source.select(&log.matchers, start_ns, end_ns, &mut |stream: &Labels, entry: Entry<'_>| {
            clock.tick()?;
            let Some(processed) = pipeline.process(stream, &entry, &mut row) else { return ControlFlow::Continue(()) };
            let labels = if processed.use_row { intern(&mut interner, row.pairs()) } else { stream.clone() };
            sequence += 1;
            kept.push(Kept {
                timestamp_ns: entry.timestamp_ns,
                sequence,
                labels,
                line: processed.line.into_owned(),
                metadata: entry.metadata.to_vec(),
            });
            if kept.len() >= limit.saturating_mul(2).max(1024) {
                kept.select_nth_unstable_by(limit - 1, order);
                kept.truncate(limit);
            }
            ControlFlow::Continue(())
        })?;
        clock.finish()?;
        kept.sort_by(order);
        kept.truncate(limit);
        let mut streams: Vec<Stream> = Vec::new();
        let mut index: HashMap<Labels, usize> = HashMap::new();
        for entry in kept {
            let position = *index.entry(entry.labels.clone()).or_insert_with(|| {
                streams.push(Stream { labels: entry.labels.clone(), entries: Vec::new() });
                streams.len() - 1
            });
            streams[position].entries.push(StreamEntry {
                timestamp_ns: entry.timestamp_ns,
                line: entry.line,
                metadata: entry.metadata,
            });
        }
        streams.sort_by(|left, right| left.labels.cmp(&right.labels));
        Ok(streams)
    }

    /// Reads the data of every range aggregation under `expr` for steps `first..=last`.
    fn load(
        &self,
        source: &dyn LogSource,
        expr: &MetricExpr,
        first_ns: i64,
        last_ns: i64,
        cache: &mut RangeCache,
        deadline: Deadline,
    ) -> Result<(), Error> {
        match expr {
            MetricExpr::Range { .. } => self.load_range(source, expr, None, first_ns, last_ns, cache, deadline),
            MetricExpr::Aggregate { op: VectorOp::Sum, grouping, expr: inner, .. } => {
                match pushed_down_grouping(grouping.as_ref(), inner) {
                    Some(pushed) => self.load_range(source, inner, Some(&pushed), first_ns, last_ns, cache, deadline),
                    None => self.load(source, inner, first_ns, last_ns, cache, deadline),
                }
            }
            MetricExpr::Aggregate { expr: inner, .. } | MetricExpr::LabelReplace { expr: inner, .. } => {
                self.load(source, inner, first_ns, last_ns, cache, deadline)
            }
            MetricExpr::Binary { lhs, rhs, .. } => {
                self.load(source, lhs, first_ns, last_ns, cache, deadline)?;
                self.load(source, rhs, first_ns, last_ns, cache, deadline)
            }
            MetricExpr::Number(_) | MetricExpr::Vector(_) => Ok(()),
        }
    }

    /// Loads one range aggregation, grouped by `pushed` when a parent `sum` allows it.
    #[allow(clippy::too_many_arguments)]
    fn load_range(
        &self,
        source: &dyn LogSource,
        expr: &MetricExpr,
        pushed: Option<&Grouping>,
        first_ns: i64,
        last_ns: i64,
        cache: &mut RangeCache,
        deadline: Deadline,
    ) -> Result<(), Error> {
        let MetricExpr::Range { op, log, unwrap, range_ns, offset_ns, grouping, .. } = expr else {
            return self.load(source, expr, first_ns, last_ns, cache, deadline);
        };
        // Windows are (t - offset - range, t - offset]; the source reads [start, end).
        let start = first_ns.saturating_sub(*offset_ns).saturating_sub(*range_ns).saturating_add(1);
        let end = last_ns.saturating_sub(*offset_ns).saturating_add(1);
        let grouping = grouping.as_ref().or(pushed);
        let data = self.range_data(source, *op, log, unwrap.as_ref(), grouping, start, end, deadline)?;
        cache.insert(node_key(expr), data);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn range_data(
        &self,
        source: &dyn LogSource,
        op: RangeOp,
        log: &LogExpr,
        unwrap: Option<&Unwrap>,
        grouping: Option<&Grouping>,
        start_ns: i64,
        end_ns: i64,
        deadline: Deadline,
    ) -> Result<RangeData, Error> {
        let mut pipeline = Pipeline::new(&log.stages, unwrap);
        if let Some(Grouping { without: false, labels }) = grouping {
            pipeline = pipeline.with_hints(labels);
        }
        let mut row = Row::default();
        let mut interner: HashMap<Vec<(String, String)>, Labels> = HashMap::new();
        let mut series: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
        let mut last_stream: Option<(Labels, Labels)> = None;
        let mut grouped_pairs: Vec<(String, String)> = Vec::new();
        let max_series = self.limits.max_series.saturating_mul(100).max(10_000);
        let mut too_many = false;
        let mut clock = Clock::new(deadline);
        source.select(&log.matchers, start_ns, end_ns, &mut |stream: &Labels, entry: Entry<'_>| {
            if too_many {
                return ControlFlow::Break(());
            }
            clock.tick()?;
            let Some(processed) = pipeline.process(stream, &entry, &mut row) else { return ControlFlow::Continue(()) };
            let value = match op {
                RangeOp::CountOverTime | RangeOp::AbsentOverTime => 1.0,
                RangeOp::Rate if unwrap.is_none() => 1.0,
                RangeOp::BytesOverTime | RangeOp::BytesRate => processed.line.len() as f64,
                _ => processed.value,
            };
            let labels = if processed.use_row {
                match grouping {
                    None => intern(&mut interner, row.pairs()),
                    Some(grouping) => {
                        grouped_pairs.clear();
                        grouped_pairs.extend(
                            row.pairs()
                                .iter()
                                .filter(|(name, _)| keeps(grouping, name))
                                .map(|(name, value)| (name.clone(), value.clone())),
                        );
                        intern(&mut interner, &grouped_pairs)
                    }
                }
            } else {
                match &last_stream {
                    Some((original, grouped)) if original.ptr_eq(stream) || original == stream => grouped.clone(),
                    _ => {
                        let grouped = match grouping {
                            None => stream.clone(),
                            Some(grouping) => group_labels(stream, Some(grouping)),
                        };
                        last_stream = Some((stream.clone(), grouped.clone()));
                        grouped
                    }
                }
            };
            let samples = series.entry(labels).or_default();
            samples.push((entry.timestamp_ns, value));
            if series.len() > max_series {
                too_many = true;
            }
            ControlFlow::Continue(())
        })?;
        clock.finish()?;
        if too_many {
            return Err(Error::Limit(format!(
                "maximum number of series ({}) reached for a single query",
                self.limits.max_series
            )));
        }
        let mut series: Vec<(Labels, Vec<(i64, f64)>)> = series.into_iter().collect();
        for (_, samples) in &mut series {
            if !samples.is_sorted_by_key(|sample| sample.0) {
                samples.sort_by_key(|sample| sample.0);
            }
        }
        series.sort_by(|left, right| left.0.cmp(&right.0));
        Ok(RangeData { series })
    }

    fn evaluate(&self, expr: &MetricExpr, time_ns: i64, cache: &RangeCache) -> Result<StepValue, Error> {
        match expr {
            MetricExpr::Number(value) => Ok(StepValue::Scalar(*value)),
            MetricExpr::Vector(value) => Ok(StepValue::Vector(vec![(Labels::empty(), *value)])),
            MetricExpr::Range { op, parameter, log, range_ns, offset_ns, .. } => {
                let Some(data) = cache.get(&node_key(expr)) else {
                    return Err(Error::InvalidQuery("range aggregation was not loaded".to_string()));
                };
                let window_end = time_ns.saturating_sub(*offset_ns);
                let window_start = window_end.saturating_sub(*range_ns);
                let seconds = *range_ns as f64 / 1e9;
                let mut vector = Vec::new();
                let mut any = false;
                for (labels, samples) in &data.series {
                    let from = samples.partition_point(|sample| sample.0 <= window_start);
                    let to = samples.partition_point(|sample| sample.0 <= window_end);
                    if from >= to {
                        continue;
                    }
                    any = true;
                    if *op == RangeOp::AbsentOverTime {
                        continue;
                    }
                    if let Some(error) = labels.get(ERROR_LABEL) {
                        return Err(Error::Pipeline { error: error.to_string(), series: labels.to_string() });
                    }
                    let window = &samples[from..to];
                    vector.push((labels.clone(), range_value(*op, *parameter, window, seconds)));
                }
                if *op == RangeOp::AbsentOverTime {
                    if any {
                        return Ok(StepValue::Vector(Vec::new()));
                    }
                    let labels = Labels::from_pairs(
                        log.matchers
                            .iter()
                            .filter(|matcher| matcher.op == MatchOp::Equal)
                            .map(|matcher| (matcher.name.clone(), matcher.value.clone())),
                    );
                    return Ok(StepValue::Vector(vec![(labels, 1.0)]));
                }
                Ok(StepValue::Vector(vector))
            }
            MetricExpr::Aggregate { op, parameter, grouping, expr: inner } => {
                let StepValue::Vector(vector) = self.evaluate(inner, time_ns, cache)? else {
                    return Err(Error::InvalidQuery("vector aggregation over a scalar".to_string()));
                };
                Ok(StepValue::Vector(aggregate(*op, *parameter, grouping.as_ref(), vector)))
            }
            MetricExpr::LabelReplace { expr: inner, destination, replacement, source, regex } => {
                let StepValue::Vector(vector) = self.evaluate(inner, time_ns, cache)? else {
                    return Err(Error::InvalidQuery("label_replace over a scalar".to_string()));
                };
                let replaced = vector
                    .into_iter()
                    .map(|(labels, value)| {
                        let text = labels.get(source).unwrap_or("");
                        let Some(captures) = regex.captures(text) else { return (labels, value) };
                        let mut expanded = String::new();
                        captures.expand(replacement, &mut expanded);
                        let mut builder = labels.to_builder();
                        builder.set(destination.clone(), expanded);
                        (builder.build(), value)
                    })
                    .collect();
                Ok(StepValue::Vector(replaced))
            }
            MetricExpr::Binary { op, return_bool, matching, lhs, rhs } => {
                let left = self.evaluate(lhs, time_ns, cache)?;
                let right = self.evaluate(rhs, time_ns, cache)?;
                binary(*op, *return_bool, matching, left, right)
            }
        }
    }
}

/// The grouping a `sum` may push into the range aggregation it sums, as Loki
/// does: summing per-series counts (or byte counts, or sums) equals counting per
/// group, so series need never exist per parsed label set. `__error__` stays in
/// the grouping so pipeline errors are still reported.
fn pushed_down_grouping(grouping: Option<&Grouping>, inner: &MetricExpr) -> Option<Grouping> {
    let MetricExpr::Range { op, grouping: None, .. } = inner else { return None };
    let additive = matches!(
        op,
        RangeOp::CountOverTime | RangeOp::Rate | RangeOp::BytesOverTime | RangeOp::BytesRate | RangeOp::SumOverTime
    );
    if !additive {
        return None;
    }
    let mut pushed = grouping.cloned().unwrap_or(Grouping { without: false, labels: Vec::new() });
    if pushed.without {
        pushed.labels.retain(|label| label != ERROR_LABEL);
    } else if !pushed.labels.iter().any(|label| label == ERROR_LABEL) {
        pushed.labels.push(ERROR_LABEL.to_string());
    }
    Some(pushed)
}

fn is_sorted_by_value(expr: &MetricExpr) -> bool {
    matches!(
        expr,
        MetricExpr::Aggregate { op: VectorOp::Sort | VectorOp::SortDesc | VectorOp::Topk | VectorOp::Bottomk, .. }
    )
}

fn intern(interner: &mut HashMap<Vec<(String, String)>, Labels>, pairs: &[(String, String)]) -> Labels {
    if let Some(labels) = interner.get(pairs) {
        return labels.clone();
    }
    let labels = Labels::from_pairs(pairs.iter().map(|(name, value)| (name.clone(), value.clone())));
    interner.insert(pairs.to_vec(), labels.clone());
    labels
}

fn keeps(grouping: &Grouping, name: &str) -> bool {
    grouping.labels.iter().any(|label| label == name) != grouping.without
}

fn group_labels(labels: &Labels, grouping: Option<&Grouping>) -> Labels {
    let Some(grouping) = grouping else { return Labels::empty() };
    let mut builder = labels.to_builder();
    if grouping.without {
        for name in &grouping.labels {
            builder.delete(name);
        }
    } else {
        let names: Vec<&str> = grouping.labels.iter().map(String::as_str).collect();
        builder.keep(&names);
    }
    builder.build()
}

fn range_value(op: RangeOp, parameter: Option<f64>, window: &[(i64, f64)], seconds: f64) -> f64 {
    let values = || window.iter().map(|sample| sample.1);
    let count = window.len() as f64;
    let sum = || values().sum::<f64>();
    match op {
        RangeOp::CountOverTime | RangeOp::AbsentOverTime => count,
        RangeOp::Rate | RangeOp::BytesRate => sum() / seconds,
        RangeOp::BytesOverTime | RangeOp::SumOverTime => sum(),
        RangeOp::AvgOverTime => sum() / count,
        RangeOp::MinOverTime => {
            values().fold(f64::INFINITY, |min, value| if value < min || min.is_nan() { value } else { min })
        }
        RangeOp::MaxOverTime => {
            values().fold(f64::NEG_INFINITY, |max, value| if value > max || max.is_nan() { value } else { max })
        }
        RangeOp::StdvarOverTime | RangeOp::StddevOverTime => {
            let mean = sum() / count;
            let variance = values().map(|value| (value - mean).powi(2)).sum::<f64>() / count;
            if op == RangeOp::StddevOverTime { variance.sqrt() } else { variance }
        }
        RangeOp::QuantileOverTime => quantile(parameter.unwrap_or(0.5), values().collect()),
        RangeOp::FirstOverTime => window.first().map_or(f64::NAN, |sample| sample.1),
        RangeOp::LastOverTime => window.last().map_or(f64::NAN, |sample| sample.1),
    }
}

/// Prometheus's quantile: linear interpolation between the closest ranks.
fn quantile(phi: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || phi.is_nan() {
        return f64::NAN;
    }
    if phi < 0.0 {
        return f64::NEG_INFINITY;
    }
    if phi > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(f64::total_cmp);
    let rank = phi * (values.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = (lower + 1).min(values.len() - 1);
    let weight = rank - rank.floor();
    values[lower] * (1.0 - weight) + values[upper] * weight
}

fn aggregate(
    op: VectorOp,
    parameter: Option<f64>,
    grouping: Option<&Grouping>,
    vector: Vec<(Labels, f64)>,
) -> Vec<(Labels, f64)> {
    match op {
        VectorOp::Sort => {
            let mut vector = vector;
            vector.sort_by(|left, right| left.1.total_cmp(&right.1));
            return vector;
        }
        VectorOp::SortDesc => {
            let mut vector = vector;
            vector.sort_by(|left, right| right.1.total_cmp(&left.1));
            return vector;
        }
        _ => {}
    }
    let mut order: Vec<Labels> = Vec::new();
    let mut groups: HashMap<Labels, Vec<(Labels, f64)>> = HashMap::new();
    for (labels, value) in vector {
        let key = group_labels(&labels, grouping);
        let members = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            Vec::new()
        });
        members.push((labels, value));
    }
    let mut output = Vec::new();
    for key in order {
        let Some(members) = groups.remove(&key) else { continue };
        let count = members.len() as f64;
        let values = || members.iter().map(|member| member.1);
        let value = match op {
            VectorOp::Sum => values().sum(),
            VectorOp::Avg => values().sum::<f64>() / count,
            VectorOp::Count => count,
            VectorOp::Min => {
                values().fold(f64::NAN, |min, value| if min.is_nan() || value < min { value } else { min })
            }
            VectorOp::Max => {
                values().fold(f64::NAN, |max, value| if max.is_nan() || value > max { value } else { max })
            }
            VectorOp::Stdvar | VectorOp::Stddev => {
                let mean = values().sum::<f64>() / count;
                let variance = values().map(|value| (value - mean).powi(2)).sum::<f64>() / count;
                if op == VectorOp::Stddev { variance.sqrt() } else { variance }
            }
            VectorOp::Topk | VectorOp::Bottomk => {
                let k = parameter.unwrap_or(1.0).max(0.0) as usize;
                let mut members = members;
                if op == VectorOp::Topk {
                    members.sort_by(|left, right| right.1.total_cmp(&left.1));
                } else {
                    members.sort_by(|left, right| left.1.total_cmp(&right.1));
                }
                members.truncate(k);
                output.extend(members);
                continue;
            }
            VectorOp::Sort | VectorOp::SortDesc => continue,
        };
        output.push((key, value));
    }
    output
}

fn arithmetic(op: BinaryOp, left: f64, right: f64) -> Option<f64> {
    Some(match op {
        BinaryOp::Add => left + right,
        BinaryOp::Sub => left - right,
        BinaryOp::Mul => left * right,
        BinaryOp::Div => left / right,
        BinaryOp::Mod => left % right,
        BinaryOp::Pow => left.powf(right),
        BinaryOp::Equal => f64::from(u8::from(left == right)),
        BinaryOp::NotEqual => f64::from(u8::from(left != right)),
        BinaryOp::Greater => f64::from(u8::from(left > right)),
        BinaryOp::GreaterEqual => f64::from(u8::from(left >= right)),
        BinaryOp::Less => f64::from(u8::from(left < right)),
        BinaryOp::LessEqual => f64::from(u8::from(left <= right)),
        BinaryOp::And | BinaryOp::Or | BinaryOp::Unless => return None,
    })
}

/// The value a pair produces: `None` when a comparison without `bool` filters it out.
fn combine(op: BinaryOp, return_bool: bool, left: f64, right: f64, kept: f64) -> Option<f64> {
    let result = arithmetic(op, left, right)?;
    if op.is_comparison() && !return_bool {
        return (result == 1.0).then_some(kept);
    }
    Some(result)
}

fn signature(labels: &Labels, matching: &VectorMatching) -> Labels {
    match &matching.on {
        None => labels.clone(),
        Some((ignoring, names)) => group_labels(labels, Some(&Grouping { without: *ignoring, labels: names.clone() })),
    }
}

fn binary(
    op: BinaryOp,
    return_bool: bool,
    matching: &VectorMatching,
    left: StepValue,
    right: StepValue,
) -> Result<StepValue, Error> {
    match (left, right) {
        (StepValue::Scalar(left), StepValue::Scalar(right)) => {
            let value = arithmetic(op, left, right)
                .ok_or_else(|| Error::InvalidQuery("set operators are not allowed between scalars".to_string()))?;
            Ok(StepValue::Scalar(value))
        }
        (StepValue::Vector(vector), StepValue::Scalar(scalar)) => {
            if op.is_set() {
                return Err(Error::InvalidQuery("set operators need vectors on both sides".to_string()));
            }
            Ok(StepValue::Vector(
                vector
                    .into_iter()
                    .filter_map(|(labels, value)| combine(op, return_bool, value, scalar, value).map(|v| (labels, v)))
                    .collect(),
            ))
        }
        (StepValue::Scalar(scalar), StepValue::Vector(vector)) => {
            if op.is_set() {
                return Err(Error::InvalidQuery("set operators need vectors on both sides".to_string()));
            }
            Ok(StepValue::Vector(
                vector
                    .into_iter()
                    .filter_map(|(labels, value)| combine(op, return_bool, scalar, value, value).map(|v| (labels, v)))
                    .collect(),
            ))
        }
        (StepValue::Vector(left), StepValue::Vector(right)) => vector_binary(op, return_bool, matching, left, right),
    }
}

fn vector_binary(
    op: BinaryOp,
    return_bool: bool,
    matching: &VectorMatching,
    left: Vec<(Labels, f64)>,
    right: Vec<(Labels, f64)>,
) -> Result<StepValue, Error> {
    if op.is_set() {
        let right_signatures: std::collections::HashSet<Labels> =
            right.iter().map(|(labels, _)| signature(labels, matching)).collect();
        let output = match op {
            BinaryOp::And => {
                left.into_iter().filter(|(labels, _)| right_signatures.contains(&signature(labels, matching))).collect()
            }
            BinaryOp::Unless => left
                .into_iter()
                .filter(|(labels, _)| !right_signatures.contains(&signature(labels, matching)))
                .collect(),
            _ => {
                let left_signatures: std::collections::HashSet<Labels> =
                    left.iter().map(|(labels, _)| signature(labels, matching)).collect();
                let mut output = left;
                output.extend(
                    right.into_iter().filter(|(labels, _)| !left_signatures.contains(&signature(labels, matching))),
                );
                output
            }
        };
        return Ok(StepValue::Vector(output));
    }
    // The "one" side is indexed by signature; the "many" side is iterated.
    let group_right = matches!(matching.group, Some((true, _)));
    let (many, one) = if group_right { (right, left) } else { (left, right) };
    let mut index: HashMap<Labels, (Labels, f64)> = HashMap::new();
    for (labels, value) in one {
        let key = signature(&labels, matching);
        if index.insert(key.clone(), (labels, value)).is_some() {
            let side = if group_right { "left" } else { "right" };
            return Err(Error::InvalidQuery(format!(
                "found duplicate series for the match group {key} on the {side} hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side"
            )));
        }
    }
    let mut output = Vec::new();
    let mut seen: std::collections::HashSet<Labels> = std::collections::HashSet::new();
    for (labels, value) in many {
        let key = signature(&labels, matching);
        let Some((one_labels, one_value)) = index.get(&key) else { continue };
        let (left_value, right_value) = if group_right { (*one_value, value) } else { (value, *one_value) };
        let Some(result) = combine(op, return_bool, left_value, right_value, left_value) else { continue };
        let result_labels = match &matching.group {
            None => match &matching.on {
                None => labels.clone(),
                Some(_) => signature(&labels, matching),
            },
            Some((_, include)) => {
                let mut builder = labels.to_builder();
                for name in include {
                    match one_labels.get(name) {
                        Some(value) => builder.set(name.clone(), value.to_string()),
                        None => builder.delete(name),
                    };
                }
                builder.build()
            }
        };
        if matching.group.is_none() && !seen.insert(key.clone()) {
            return Err(Error::InvalidQuery(format!(
                "multiple matches for labels {key}: many-to-one matching must be explicit (group_left/group_right)"
            )));
        }
        output.push((result_labels, result));
    }
    Ok(StepValue::Vector(output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        assert_eq!(quantile(0.5, vec![1.0, 2.0, 3.0, 4.0]), 2.5);
        assert_eq!(quantile(1.0, vec![1.0, 5.0]), 5.0);
        assert_eq!(quantile(2.0, vec![1.0]), f64::INFINITY);
    }

    #[test]
    fn aggregation_groups() {
        let vector = vec![
            (Labels::from_pairs([("a", "1"), ("b", "x")]), 1.0),
            (Labels::from_pairs([("a", "1"), ("b", "y")]), 3.0),
            (Labels::from_pairs([("a", "2"), ("b", "y")]), 5.0),
        ];
        let grouping = Grouping { without: false, labels: vec!["a".into()] };
        let sums = aggregate(VectorOp::Sum, None, Some(&grouping), vector.clone());
        assert_eq!(sums, vec![(Labels::from_pairs([("a", "1")]), 4.0), (Labels::from_pairs([("a", "2")]), 5.0)]);
        let top = aggregate(VectorOp::Topk, Some(1.0), None, vector);
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].1, 5.0);
    }
}
