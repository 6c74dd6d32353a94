//! The evaluator: walks the `promql-parser` AST one evaluation step at a time.
//!
//! Key types: [`Engine`] and [`EngineOptions`] (public), and the internal
//! `Evaluator`, which holds one query's state: the selections loaded from the
//! store (one `select` per selector over the whole window it needs, then slid
//! over per step with a per-series cursor), memoized subquery steps, the
//! loaded-samples counter, the deadline and the annotations raised so far.
//!
//! Range queries avoid per-step work that does not depend on the step: label
//! sets derived from an input series (group labels, names removed) are cached
//! per node and input for the whole query (`derived_labels`), aggregations
//! reuse the previous step's group labels when their inputs come in the same
//! order, and `rate`/`increase`/`delta` of a plain matrix selector are computed
//! for every query step at once, series by series (`stepped_range_function`),
//! then read back step by step. Each of these caches holds at most one entry
//! per input series (the stepped results one value per series and step, and
//! only while that stays within `max_samples`).
//!
//! Metric names are removed late, as Prometheus 3 does with delayed name
//! removal: operations that drop `__name__` only flag the element, and the
//! name goes when the final result is produced.
//!
//! It does not parse (that is `promql-parser`), does no I/O besides reading the
//! [`Queryable`] it is given, and never reads the wall clock except to enforce
//! the timeout.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use promql_parser::label::MatchOp as ParserMatchOp;
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD, T_MUL, T_NEQ, T_POW,
    T_SUB, TokenId,
};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    AtModifier, BinaryExpr, Expr, LabelModifier, MatrixSelector, Offset, SubqueryExpr, VectorMatchCardinality,
    VectorSelector,
};
use tsdb::{FloatHistogram, HistogramSample, Labels, MatchOp, Matcher, Queryable, Sample, SeriesData, is_stale_nan};

use crate::Error;
use crate::position::{locate_expression, parse_error};
use crate::value::{Annotation, AnnotationKind, InstantSample, QueryResult, Value};

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (Prometheus: 5m).
    pub lookback_delta_ms: i64,
    /// The most samples one query may hold in memory.
    pub max_samples: usize,
    /// The longest a query may run.
    pub timeout: Duration,
    /// The step of subqueries written without one (`x[5m:]`), Prometheus's
    /// global evaluation interval.
    pub default_subquery_step_ms: i64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step_ms: 60 * 1000,
        }
    }
}

/// The PromQL engine. Cheap to share; each query gets its own state.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    options: EngineOptions,
}

/// Parses a query, turning the parser's message into an [`Error::Parse`]
/// with a best-effort position.
pub fn parse(query: &str) -> Result<Expr, Error> {
    promql_parser::parser::parse(query).map_err(|message| parse_error(query, message))
}

impl Engine {
    pub fn new(options: EngineOptions) -> Self {
        Self { options }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Evaluates `query` at `time_ms`.
    pub fn instant_query(&self, store: &dyn Queryable, query: &str, time_ms: i64) -> Result<QueryResult, Error> {
        let expr = parse(query)?;
        self.run_instant(store, &expr, query, time_ms)
    }

    /// Evaluates an already parsed expression at `time_ms`.
    pub fn instant_query_expr(&self, store: &dyn Queryable, expr: &Expr, time_ms: i64) -> Result<QueryResult, Error> {
        self.run_instant(store, expr, &expr.to_string(), time_ms)
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms` inclusive.
    pub fn range_query(
        &self,
        store: &dyn Queryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, Error> {
        let expr = parse(query)?;
        self.run_range(store, &expr, query, start_ms, end_ms, step_ms)
    }

    /// Evaluates an already parsed expression over a range.
    pub fn range_query_expr(
        &self,
        store: &dyn Queryable,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, Error> {
        self.run_range(store, expr, &expr.to_string(), start_ms, end_ms, step_ms)
    }

    fn run_instant(&self, store: &dyn Queryable, expr: &Expr, text: &str, time: i64) -> Result<QueryResult, Error> {
        check_supported(expr)?;
        let mut evaluator = Evaluator::new(store, &self.options, text, time, time);
        let window = Window { start: time, end: time };
        let evaluated = evaluator.eval(expr, time, window)?;
        let value = match evaluated {
            Evaluated::Scalar(value) => Value::Scalar(time, value),
            Evaluated::String(value) => Value::String(value),
            Evaluated::Vector(elements) => {
                let elements = evaluator.finish_vector(elements)?;
                Value::Vector(
                    elements
                        .into_iter()
                        .map(|element| {
                            let sample =
                                InstantSample { timestamp: time, value: element.value, histogram: element.histogram };
                            (element.labels, sample)
                        })
                        .collect(),
                )
            }
            Evaluated::Matrix(matrix) => {
                let mut series = Vec::with_capacity(matrix.series.len());
                let mut seen = HashSet::new();
                for range_series in matrix.series {
                    let labels = if range_series.drop_name {
                        range_series.labels.without_metric_name()
                    } else {
                        (*range_series.labels).clone()
                    };
                    if !seen.insert(labels.clone()) {
                        return Err(Error::execution("vector cannot contain metrics with the same labelset"));
                    }
                    series.push(SeriesData {
                        labels,
                        samples: range_series.samples().to_vec(),
                        histograms: range_series.histograms().to_vec(),
                    });
                }
                Value::Matrix(series)
            }
        };
        Ok(evaluator.into_result(value))
    }

    fn run_range(
        &self,
        store: &dyn Queryable,
        expr: &Expr,
        text: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<QueryResult, Error> {
        if step <= 0 {
            return Err(Error::execution(
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        if end < start {
            return Err(Error::execution("end timestamp must not be before start time"));
        }
        check_supported(expr)?;
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            other => {
                return Err(Error::execution(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    type_name(other)
                )));
            }
        }
        let mut evaluator = Evaluator::new(store, &self.options, text, start, end);
        evaluator.query_step = step;
        evaluator.at_query_steps = true;
        let window = Window { start, end };
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut series: Vec<SeriesData> = Vec::new();
        let mut time = start;
        while time <= end {
            evaluator.check_deadline()?;
            match evaluator.eval(expr, time, window)? {
                Evaluated::Scalar(value) => {
                    let position = *index.entry(Labels::empty()).or_insert_with(|| {
                        series.push(SeriesData {
                            labels: Labels::empty(),
                            samples: Vec::new(),
                            histograms: Vec::new(),
                        });
                        series.len() - 1
                    });
                    series[position].samples.push(Sample { timestamp: time, value });
                    evaluator.count_samples(1)?;
                }
                Evaluated::Vector(elements) => {
                    let elements = evaluator.finish_vector(elements)?;
                    evaluator.count_samples(elements.len())?;
                    for element in elements {
                        let position = match index.get(&element.labels) {
                            Some(position) => *position,
                            None => {
                                series.push(SeriesData {
                                    labels: element.labels.clone(),
                                    samples: Vec::new(),
                                    histograms: Vec::new(),
                                });
                                index.insert(element.labels, series.len() - 1);
                                series.len() - 1
                            }
                        };
                        match element.histogram {
                            Some(histogram) => {
                                series[position].histograms.push(HistogramSample { timestamp: time, histogram });
                            }
                            None => series[position].samples.push(Sample { timestamp: time, value: element.value }),
                        }
                    }
                }
                _ => {
                    return Err(Error::execution("range queries must return a scalar or an instant vector"));
                }
            }
            time += step;
        }
        series.sort_by(|left, right| left.labels.cmp(&right.labels));
        Ok(evaluator.into_result(Value::Matrix(series)))
    }
}

fn type_name(value_type: ValueType) -> &'static str {
    match value_type {
        ValueType::Vector => "instant vector",
        ValueType::Scalar => "scalar",
        ValueType::Matrix => "range vector",
        ValueType::String => "string",
    }
}

/// Rejects syntax the evaluator does not implement before any work is done.
fn check_supported(expr: &Expr) -> Result<(), Error> {
    match expr {
        Expr::Aggregate(aggregate) => {
            check_supported(&aggregate.expr)?;
            if let Some(parameter) = &aggregate.param {
                check_supported(parameter)?;
            }
            Ok(())
        }
        Expr::Unary(unary) => check_supported(&unary.expr),
        Expr::Binary(binary) => {
            check_supported(&binary.lhs)?;
            check_supported(&binary.rhs)
        }
        Expr::Paren(paren) => check_supported(&paren.expr),
        Expr::Subquery(subquery) => check_supported(&subquery.expr),
        Expr::Call(call) => {
            if call.func.name == "info" {
                return Err(Error::Unsupported("the info() function".to_owned()));
            }
            call.args.args.iter().try_for_each(|argument| check_supported(argument))
        }
        Expr::Extension(_) => Err(Error::Unsupported("extension expressions".to_owned())),
        _ => Ok(()),
    }
}

/// Key of the derived-label cache for names removed from final results; no
/// AST node lives at address 0.
const FINAL_NAME_REMOVAL: usize = 0;

/// Label sets derived from input label sets by one AST node (grouping labels,
/// names removed), computed once per input series rather than at every step.
/// Equal outputs are interned, so later look-ups compare pointers.
#[derive(Default)]
struct DerivedLabels {
    by_input: HashMap<Labels, Labels>,
    interned: HashSet<Labels>,
}
struct FinalElement {
    labels: Labels,
    value: f64,
    histogram: Option<Arc<FloatHistogram>>,
}

/// One element of an instant vector during evaluation.
#[derive(Debug, Clone)]
pub(crate) struct Element {
    pub labels: Arc<Labels>,
    pub value: f64,
    /// Set when the element is a native histogram; `value` is then 0 and
    /// float-only operations drop the element.
    pub histogram: Option<Arc<FloatHistogram>>,
    /// The timestamp of the underlying sample for selector output (used by
    /// `timestamp()`), the evaluation time otherwise.
    pub timestamp: i64,
    /// Whether `__name__` must be removed from the final result.
    pub drop_name: bool,
}

/// One series of a range vector during evaluation: a window over shared samples.
#[derive(Debug, Clone)]
pub(crate) struct RangeSeries {
    pub labels: Arc<Labels>,
    /// Whether the metric name is present and lacks a counter suffix, decided
    /// once per series (for the `rate`/`increase` info annotation).
    pub not_counter_name: bool,
    data: Arc<[Sample]>,
    start: usize,
    end: usize,
    /// The series' histogram samples and the window over them.
    histogram_data: Arc<[HistogramSample]>,
    histogram_start: usize,
    histogram_end: usize,
    pub drop_name: bool,
}

impl RangeSeries {
    /// The float samples in the window.
    pub fn samples(&self) -> &[Sample] {
        self.data.get(self.start..self.end).unwrap_or(&[])
    }

    /// The histogram samples in the window.
    pub fn histograms(&self) -> &[HistogramSample] {
        self.histogram_data.get(self.histogram_start..self.histogram_end).unwrap_or(&[])
    }
}

/// No histogram samples, shared.
fn no_histograms() -> Arc<[HistogramSample]> {
    Arc::from(Vec::new())
}

/// A range vector and the window it covers: `(range_end - range_ms, range_end]`.
#[derive(Debug, Clone)]
pub(crate) struct MatrixValue {
    pub series: Vec<RangeSeries>,
    pub range_end: i64,
    pub range_ms: i64,
}

/// The value of a sub-expression at one evaluation step.
#[derive(Debug, Clone)]
pub(crate) enum Evaluated {
    Scalar(f64),
    String(String),
    Vector(Vec<Element>),
    Matrix(MatrixValue),
}

/// The span of evaluation timestamps a node will be evaluated at; selectors
/// load the data of the whole span at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub start: i64,
    pub end: i64,
}

/// One range function's values over a matrix selector at every query step,
/// series by series (see `Evaluator::stepped_range_function`).
pub(crate) struct SteppedResults {
    pub series: Vec<SteppedSeries>,
    /// The function's value per step and series, step-major (a step reads one
    /// contiguous run); `None` where the series has no value at that step.
    values: Vec<Option<f64>>,
}

impl SteppedResults {
    /// The values of every series at `step`, in series order.
    pub fn at_step(&self, step: usize) -> &[Option<f64>] {
        let count = self.series.len();
        self.values.get(step * count..(step + 1) * count).unwrap_or(&[])
    }
}

pub(crate) struct SteppedSeries {
    pub labels: Arc<Labels>,
    pub not_counter_name: bool,
    /// The first step whose window holds a sample (`usize::MAX` if none).
    pub first_present_step: usize,
}

/// The group labels an aggregation computed at its previous step, by input
/// position: inputs usually come in the same order at every step, so a pointer
/// comparison replaces the hash look-up.
#[derive(Default)]
pub(crate) struct GroupKeyMemo {
    pub inputs: Vec<Arc<Labels>>,
    pub keys: Vec<Labels>,
}

struct CachedSeries {
    labels: Arc<Labels>,
    not_counter_name: bool,
    samples: Arc<[Sample]>,
    histograms: Arc<[HistogramSample]>,
}

struct Selection {
    from: i64,
    to: i64,
    sample_count: usize,
    series: Vec<CachedSeries>,
    /// Per series, the `(start, end)` sample indexes found at the previous step:
    /// steps move forward, so the next search starts there.
    cursors: RefCell<Vec<(usize, usize)>>,
}

/// Whether `labels` has a metric name without a counter suffix.
pub(crate) fn has_non_counter_name(labels: &Labels) -> bool {
    labels
        .metric_name()
        .is_some_and(|metric| !["_total", "_sum", "_count", "_bucket"].iter().any(|suffix| metric.ends_with(suffix)))
}

/// Number of samples with timestamps at or before `bound` (`partition_point`),
/// searched forward from `hint` when the answer cannot be before it. Evaluation
/// steps advance by a few samples, so this is usually a short linear walk over
/// memory just read, instead of a binary search over the whole series.
fn samples_up_to(samples: &[Sample], bound: i64, hint: usize) -> usize {
    const LINEAR_STEPS: usize = 8;
    let hint = hint.min(samples.len());
    if hint > 0 && samples[hint - 1].timestamp > bound {
        return samples[..hint].partition_point(|sample| sample.timestamp <= bound);
    }
    let mut index = hint;
    for _ in 0..LINEAR_STEPS {
        match samples.get(index) {
            Some(sample) if sample.timestamp <= bound => index += 1,
            _ => return index,
        }
    }
    index + samples[index..].partition_point(|sample| sample.timestamp <= bound)
}

/// One query's evaluation state.
pub(crate) struct Evaluator<'a> {
    store: &'a dyn Queryable,
    pub options: &'a EngineOptions,
    pub query_text: &'a str,
    pub query_start: i64,
    pub query_end: i64,
    /// The step of a range query; 0 for instant queries.
    pub query_step: i64,
    /// Whether evaluation is at the steps of the range query itself (not inside
    /// a subquery): each node then sees every step once, in order.
    pub at_query_steps: bool,
    /// Per-series results of range functions computed for every query step at
    /// once, keyed by the call node's address.
    pub stepped_results: HashMap<usize, Rc<SteppedResults>>,
    /// Per aggregation node, the group labels of its previous step's inputs.
    pub group_key_memos: HashMap<usize, GroupKeyMemo>,
    deadline: Instant,
    loaded_samples: usize,
    selections: HashMap<(usize, bool), Rc<Selection>>,
    derived_labels: HashMap<usize, DerivedLabels>,
    subquery_steps: HashMap<usize, BTreeMap<i64, Rc<Vec<Element>>>>,
    annotations: Vec<Annotation>,
    annotation_set: HashSet<Annotation>,
    /// String literals of the query that are not valid UTF-8 as Go decodes
    /// them, with Go's quoted form of their bytes.
    invalid_utf8_literals: HashMap<String, String>,
}

impl<'a> Evaluator<'a> {
    fn new(store: &'a dyn Queryable, options: &'a EngineOptions, query_text: &'a str, start: i64, end: i64) -> Self {
        let now = Instant::now();
        Self {
            store,
            options,
            query_text,
            query_start: start,
            query_end: end,
            query_step: 0,
            at_query_steps: false,
            stepped_results: HashMap::new(),
            group_key_memos: HashMap::new(),
            deadline: now.checked_add(options.timeout).unwrap_or(now + Duration::from_secs(86_400 * 365)),
            loaded_samples: 0,
            selections: HashMap::new(),
            derived_labels: HashMap::new(),
            subquery_steps: HashMap::new(),
            annotations: Vec::new(),
            annotation_set: HashSet::new(),
            invalid_utf8_literals: crate::literals::invalid_utf8_literals(query_text),
        }
    }

    /// Whether `name` is a valid label name as Prometheus 3 accepts it:
    /// non-empty and valid UTF-8 (a literal with byte escapes may not be).
    pub(crate) fn is_valid_label_name(&self, name: &str) -> bool {
        !name.is_empty() && !self.invalid_utf8_literals.contains_key(name)
    }

    /// `name` quoted as Go's `%q` shows it (its bytes, for a literal with byte escapes).
    pub(crate) fn quoted(&self, name: &str) -> String {
        self.invalid_utf8_literals.get(name).cloned().unwrap_or_else(|| format!("{name:?}"))
    }

    /// `derive(labels)`, memoized per `node` (an AST node's address) and input
    /// label set for the rest of the query; bounded by the series the node sees.
    pub(crate) fn derived_labels(
        &mut self,
        node: usize,
        labels: &Labels,
        derive: impl FnOnce(&Labels) -> Labels,
    ) -> Labels {
        let cache = self.derived_labels.entry(node).or_default();
        if let Some(derived) = cache.by_input.get(labels) {
            return derived.clone();
        }
        let derived = derive(labels);
        let derived = match cache.interned.get(&derived) {
            Some(existing) => existing.clone(),
            None => {
                cache.interned.insert(derived.clone());
                derived
            }
        };
        cache.by_input.insert(labels.clone(), derived.clone());
        derived
    }

    /// Removes flagged metric names and rejects duplicate label sets.
    fn finish_vector(&mut self, elements: Vec<Element>) -> Result<Vec<FinalElement>, Error> {
        let mut seen = HashSet::with_capacity(elements.len());
        let mut output = Vec::with_capacity(elements.len());
        for element in elements {
            let labels = if element.drop_name {
                self.derived_labels(FINAL_NAME_REMOVAL, &element.labels, Labels::without_metric_name)
            } else {
                (*element.labels).clone()
            };
            if !seen.insert(labels.clone()) {
                return Err(Error::execution("vector cannot contain metrics with the same labelset"));
            }
            output.push(FinalElement { labels, value: element.value, histogram: element.histogram });
        }
        Ok(output)
    }

    fn into_result(self, value: Value) -> QueryResult {
        let (warnings, infos) =
            self.annotations.into_iter().partition(|annotation| annotation.kind == AnnotationKind::Warning);
        QueryResult { value, warnings, infos }
    }

    pub fn check_deadline(&self) -> Result<(), Error> {
        if Instant::now() > self.deadline {
            return Err(Error::Timeout { stage: "query execution" });
        }
        Ok(())
    }

    pub fn count_samples(&mut self, count: usize) -> Result<(), Error> {
        self.loaded_samples = self.loaded_samples.saturating_add(count);
        if self.loaded_samples > self.options.max_samples {
            return Err(Error::TooManySamples { stage: "query execution" });
        }
        Ok(())
    }

    /// Records an annotation about `expr`, located after `anchor` in the query.
    pub fn annotate(&mut self, kind: AnnotationKind, message: String, anchor: Option<&str>, expr: Option<&Expr>) {
        let position = expr.and_then(|expr| locate_expression(self.query_text, anchor, expr));
        let annotation = Annotation { kind, message, position };
        if self.annotation_set.insert(annotation.clone()) {
            self.annotations.push(annotation);
        }
    }

    pub fn eval(&mut self, expr: &Expr, time: i64, window: Window) -> Result<Evaluated, Error> {
        match expr {
            Expr::NumberLiteral(number) => Ok(Evaluated::Scalar(number.val)),
            Expr::StringLiteral(string) => Ok(Evaluated::String(string.val.clone())),
            Expr::Paren(paren) => self.eval(&paren.expr, time, window),
            Expr::Unary(unary) => match self.eval(&unary.expr, time, window)? {
                Evaluated::Scalar(value) => Ok(Evaluated::Scalar(-value)),
                Evaluated::Vector(mut elements) => {
                    for element in &mut elements {
                        element.value = -element.value;
                        if let Some(histogram) = &mut element.histogram {
                            Arc::make_mut(histogram).scale(-1.0);
                        }
                        element.drop_name = true;
                    }
                    Ok(Evaluated::Vector(elements))
                }
                _ => Err(Error::execution("unary expression only allowed on expressions of type scalar or vector")),
            },
            Expr::VectorSelector(selector) => self.eval_vector_selector(selector, time, window),
            Expr::MatrixSelector(selector) => self.eval_matrix_selector(selector, time, window),
            Expr::Subquery(subquery) => self.eval_subquery(subquery, time, window),
            Expr::Binary(binary) => self.eval_binary(binary, time, window),
            Expr::Aggregate(aggregate) => self.eval_aggregate(aggregate, time, window),
            Expr::Call(call) => self.eval_call(call, time, window),
            Expr::Extension(_) => Err(Error::Unsupported("extension expressions".to_owned())),
        }
    }

    /// Evaluates an expression that must yield an instant vector, for an
    /// operation on floats: native histogram elements are dropped.
    pub fn eval_vector(&mut self, expr: &Expr, time: i64, window: Window) -> Result<Vec<Element>, Error> {
        let mut elements = self.eval_vector_with_histograms(expr, time, window)?;
        if elements.iter().any(|element| element.histogram.is_some()) {
            elements.retain(|element| element.histogram.is_none());
        }
        Ok(elements)
    }

    /// Evaluates an expression that must yield an instant vector, native
    /// histogram elements included.
    pub fn eval_vector_with_histograms(
        &mut self,
        expr: &Expr,
        time: i64,
        window: Window,
    ) -> Result<Vec<Element>, Error> {
        match self.eval(expr, time, window)? {
            Evaluated::Vector(elements) => Ok(elements),
            _ => Err(Error::execution(format!("expected an instant vector, got {expr}"))),
        }
    }

    /// Evaluates an expression that must yield a scalar.
    pub fn eval_scalar(&mut self, expr: &Expr, time: i64, window: Window) -> Result<f64, Error> {
        match self.eval(expr, time, window)? {
            Evaluated::Scalar(value) => Ok(value),
            _ => Err(Error::execution(format!("expected a scalar, got {expr}"))),
        }
    }

    /// Evaluates an expression that must yield a string.
    pub fn eval_string(&mut self, expr: &Expr, time: i64, window: Window) -> Result<String, Error> {
        match self.eval(expr, time, window)? {
            Evaluated::String(value) => Ok(value),
            _ => Err(Error::execution(format!("expected a string, got {expr}"))),
        }
    }

    /// Evaluates an expression that must yield a range vector.
    pub fn eval_matrix(&mut self, expr: &Expr, time: i64, window: Window) -> Result<MatrixValue, Error> {
        match self.eval(expr, time, window)? {
            Evaluated::Matrix(matrix) => Ok(matrix),
            _ => Err(Error::execution(format!("expected a range vector, got {expr}"))),
        }
    }

    pub fn at_time(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.query_start),
            Some(AtModifier::End) => Some(self.query_end),
            Some(AtModifier::At(time)) => Some(system_time_ms(*time)),
        }
    }

    fn selection(&mut self, selector: &VectorSelector, range_ms: i64, window: Window) -> Result<Rc<Selection>, Error> {
        let offset = offset_ms(&selector.offset);
        let (reference_start, reference_end) = match self.at_time(&selector.at) {
            Some(at) => (at - offset, at - offset),
            None => (window.start - offset, window.end - offset),
        };
        let back = if range_ms > 0 { range_ms } else { self.options.lookback_delta_ms };
        let mut from = reference_start - back;
        let mut to = reference_end;
        let key = (selector as *const VectorSelector as usize, range_ms > 0);
        if let Some(cached) = self.selections.get(&key) {
            if cached.from <= from && cached.to >= to {
                return Ok(cached.clone());
            }
            from = from.min(cached.from);
            to = to.max(cached.to);
            self.loaded_samples = self.loaded_samples.saturating_sub(cached.sample_count);
        }
        self.check_deadline()?;
        let groups = matcher_groups(selector)?;
        let loaded: Vec<SeriesData> = match groups.as_slice() {
            // One group: the store's answer is already sorted and unique.
            [group] => self.store.select(group, from, to)?,
            _ => {
                let mut merged: BTreeMap<Labels, SeriesData> = BTreeMap::new();
                for group in &groups {
                    for series in self.store.select(group, from, to)? {
                        merged.entry(series.labels.clone()).or_insert(series);
                    }
                }
                merged.into_values().collect()
            }
        };
        let mut sample_count = 0;
        let mut series = Vec::with_capacity(loaded.len());
        let empty = no_histograms();
        for SeriesData { labels, mut samples, histograms } in loaded {
            if range_ms > 0 {
                samples.retain(|sample| !is_stale_nan(sample.value));
            }
            sample_count += samples.len() + histograms.len();
            let not_counter_name = has_non_counter_name(&labels);
            let histograms = if histograms.is_empty() { empty.clone() } else { histograms.into() };
            series.push(CachedSeries {
                labels: Arc::new(labels),
                not_counter_name,
                samples: samples.into(),
                histograms,
            });
        }
        self.count_samples(sample_count)?;
        let cursors = RefCell::new(vec![(0, 0); series.len()]);
        let selection = Rc::new(Selection { from, to, sample_count, series, cursors });
        self.selections.insert(key, selection.clone());
        Ok(selection)
    }

    /// The index of `time` among the query steps, when evaluating at them.
    pub(crate) fn query_step_index(&self, time: i64, window: Window) -> Option<usize> {
        if !self.at_query_steps
            || self.query_step <= 0
            || window.start != self.query_start
            || window.end != self.query_end
        {
            return None;
        }
        let offset = time.checked_sub(self.query_start)?;
        if offset < 0 || offset % self.query_step != 0 || time > self.query_end {
            return None;
        }
        usize::try_from(offset / self.query_step).ok()
    }

    /// Computes `function` over the window of `selector` at every query step,
    /// walking each series once from oldest to newest sample, instead of
    /// visiting every series at every step. Returns `None` (and the caller
    /// evaluates step by step) when the results would exceed the sample limit
    /// or a series holds native histograms.
    pub(crate) fn stepped_range_function(
        &mut self,
        selector: &MatrixSelector,
        window: Window,
        function: impl Fn(&[Sample], i64, i64) -> Option<f64>,
    ) -> Result<Option<SteppedResults>, Error> {
        let range_ms = duration_ms(selector.range);
        let selection = self.selection(&selector.vs, range_ms.max(1), window)?;
        let step_count =
            usize::try_from((self.query_end - self.query_start) / self.query_step + 1).unwrap_or(usize::MAX);
        if selection.series.len().saturating_mul(step_count) > self.options.max_samples
            || selection.series.iter().any(|series| !series.histograms.is_empty())
        {
            return Ok(None);
        }
        let at = self.at_time(&selector.vs.at);
        let offset = offset_ms(&selector.vs.offset);
        let series_count = selection.series.len();
        let mut series = Vec::with_capacity(series_count);
        let mut values = vec![None; series_count * step_count];
        for (index, cached) in selection.series.iter().enumerate() {
            self.check_deadline()?;
            let mut cursor = (0, 0);
            let mut first_present_step = usize::MAX;
            for step in 0..step_count {
                let time = self.query_start + step as i64 * self.query_step;
                let reference = at.unwrap_or(time) - offset;
                let start = samples_up_to(&cached.samples, reference - range_ms, cursor.0);
                let end = samples_up_to(&cached.samples, reference, cursor.1.max(start));
                cursor = (start, end);
                if start >= end {
                    continue;
                }
                first_present_step = first_present_step.min(step);
                values[step * series_count + index] = function(&cached.samples[start..end], reference, range_ms);
            }
            series.push(SteppedSeries {
                labels: cached.labels.clone(),
                not_counter_name: cached.not_counter_name,
                first_present_step,
            });
        }
        Ok(Some(SteppedResults { series, values }))
    }

    fn eval_vector_selector(
        &mut self,
        selector: &VectorSelector,
        time: i64,
        window: Window,
    ) -> Result<Evaluated, Error> {
        let selection = self.selection(selector, 0, window)?;
        let reference = self.at_time(&selector.at).unwrap_or(time) - offset_ms(&selector.offset);
        let lookback_start = reference - self.options.lookback_delta_ms;
        let mut elements = Vec::new();
        let mut cursors = selection.cursors.borrow_mut();
        for (series, cursor) in selection.series.iter().zip(cursors.iter_mut()) {
            let index = samples_up_to(&series.samples, reference, cursor.1);
            cursor.1 = index;
            let float = index.checked_sub(1).and_then(|index| series.samples.get(index));
            if !series.histograms.is_empty() {
                let position = series.histograms.partition_point(|sample| sample.timestamp <= reference);
                let histogram = position.checked_sub(1).and_then(|position| series.histograms.get(position));
                if let Some(histogram) = histogram
                    && float.is_none_or(|float| float.timestamp < histogram.timestamp)
                {
                    if histogram.timestamp > lookback_start {
                        elements.push(Element {
                            histogram: Some(histogram.histogram.clone()),
                            labels: series.labels.clone(),
                            value: 0.0,
                            timestamp: histogram.timestamp,
                            drop_name: false,
                        });
                    }
                    continue;
                }
            }
            let Some(sample) = float else {
                continue;
            };
            if sample.timestamp <= lookback_start || is_stale_nan(sample.value) {
                continue;
            }
            elements.push(Element {
                histogram: None,
                labels: series.labels.clone(),
                value: sample.value,
                timestamp: sample.timestamp,
                drop_name: false,
            });
        }
        Ok(Evaluated::Vector(elements))
    }

    fn eval_matrix_selector(
        &mut self,
        selector: &MatrixSelector,
        time: i64,
        window: Window,
    ) -> Result<Evaluated, Error> {
        let range_ms = duration_ms(selector.range);
        let selection = self.selection(&selector.vs, range_ms.max(1), window)?;
        let reference = self.at_time(&selector.vs.at).unwrap_or(time) - offset_ms(&selector.vs.offset);
        let range_start = reference - range_ms;
        let mut series = Vec::new();
        let mut cursors = selection.cursors.borrow_mut();
        for (cached, cursor) in selection.series.iter().zip(cursors.iter_mut()) {
            let start = samples_up_to(&cached.samples, range_start, cursor.0);
            let end = samples_up_to(&cached.samples, reference, cursor.1.max(start));
            *cursor = (start, end);
            let (histogram_start, histogram_end) = if cached.histograms.is_empty() {
                (0, 0)
            } else {
                (
                    cached.histograms.partition_point(|sample| sample.timestamp <= range_start),
                    cached.histograms.partition_point(|sample| sample.timestamp <= reference),
                )
            };
            if start < end || histogram_start < histogram_end {
                series.push(RangeSeries {
                    labels: cached.labels.clone(),
                    not_counter_name: cached.not_counter_name,
                    data: cached.samples.clone(),
                    start,
                    end,
                    histogram_data: cached.histograms.clone(),
                    histogram_start,
                    histogram_end,
                    drop_name: false,
                });
            }
        }
        Ok(Evaluated::Matrix(MatrixValue { series, range_end: reference, range_ms }))
    }

    fn eval_subquery(&mut self, subquery: &SubqueryExpr, time: i64, window: Window) -> Result<Evaluated, Error> {
        let step = subquery
            .step
            .map(duration_ms)
            .filter(|step| *step > 0)
            .unwrap_or(self.options.default_subquery_step_ms)
            .max(1);
        let range_ms = duration_ms(subquery.range);
        let offset = offset_ms(&subquery.offset);
        let at = self.at_time(&subquery.at);
        let reference = at.unwrap_or(time) - offset;
        let inner_window = match at {
            Some(at) => Window { start: aligned_start(at - offset - range_ms, step), end: at - offset },
            None => Window { start: aligned_start(window.start - offset - range_ms, step), end: window.end - offset },
        };
        let key = subquery as *const SubqueryExpr as usize;
        let mut index: HashMap<Arc<Labels>, usize> = HashMap::new();
        // Per series: labels, float samples, whether to drop the name, histogram samples.
        type Collected = (Arc<Labels>, Vec<Sample>, bool, Vec<HistogramSample>);
        let mut collected: Vec<Collected> = Vec::new();
        let mut step_time = aligned_start(reference - range_ms, step);
        while step_time <= reference {
            self.check_deadline()?;
            let cached = self.subquery_steps.get(&key).and_then(|steps| steps.get(&step_time)).cloned();
            let elements = match cached {
                Some(elements) => elements,
                None => {
                    let at_query_steps = std::mem::replace(&mut self.at_query_steps, false);
                    let evaluated = self.eval(&subquery.expr, step_time, inner_window);
                    self.at_query_steps = at_query_steps;
                    let elements = match evaluated? {
                        Evaluated::Vector(elements) => elements,
                        Evaluated::Scalar(value) => vec![Element {
                            histogram: None,
                            labels: Arc::new(Labels::empty()),
                            value,
                            timestamp: step_time,
                            drop_name: false,
                        }],
                        _ => return Err(Error::execution("subquery is only allowed on instant vector")),
                    };
                    self.count_samples(elements.len())?;
                    let elements = Rc::new(elements);
                    self.subquery_steps.entry(key).or_default().insert(step_time, elements.clone());
                    elements
                }
            };
            for element in elements.iter() {
                let position = match index.get(&element.labels) {
                    Some(position) => *position,
                    None => {
                        collected.push((element.labels.clone(), Vec::new(), false, Vec::new()));
                        index.insert(element.labels.clone(), collected.len() - 1);
                        collected.len() - 1
                    }
                };
                let entry = &mut collected[position];
                match &element.histogram {
                    Some(histogram) => {
                        entry.3.push(HistogramSample { timestamp: step_time, histogram: histogram.clone() });
                    }
                    None => entry.1.push(Sample { timestamp: step_time, value: element.value }),
                }
                entry.2 |= element.drop_name;
            }
            step_time += step;
        }
        let series = collected
            .into_iter()
            .map(|(labels, samples, drop_name, histograms)| {
                let end = samples.len();
                let histogram_end = histograms.len();
                let histogram_data = if histograms.is_empty() { no_histograms() } else { histograms.into() };
                let not_counter_name = has_non_counter_name(&labels);
                RangeSeries {
                    labels,
                    not_counter_name,
                    data: samples.into(),
                    start: 0,
                    end,
                    histogram_data,
                    histogram_start: 0,
                    histogram_end,
                    drop_name,
                }
            })
            .collect();
        Ok(Evaluated::Matrix(MatrixValue { series, range_end: reference, range_ms }))
    }

    /// Prometheus's info when a comparison meets a native histogram and a
    /// float, or two histograms with an ordering operator (the pair is dropped).
    fn annotate_histogram_comparison(&mut self, binary: &BinaryExpr, left: &Evaluated, right: &Evaluated) {
        let kinds = |value: &Evaluated| match value {
            Evaluated::Vector(elements) => (
                elements.iter().any(|element| element.histogram.is_some()),
                elements.iter().any(|element| element.histogram.is_none()),
            ),
            Evaluated::Scalar(_) => (false, true),
            _ => (false, false),
        };
        let (left_histograms, left_floats) = kinds(left);
        let (right_histograms, right_floats) = kinds(right);
        // `==` and `!=` compare two histograms; the orderings cannot.
        let orders = !matches!(binary.op.id(), T_EQLC | T_NEQ);
        let pair = if left_histograms && right_floats {
            Some(("histogram", "float"))
        } else if left_floats && right_histograms {
            Some(("float", "histogram"))
        } else if left_histograms && right_histograms && orders {
            Some(("histogram", "histogram"))
        } else {
            None
        };
        if let Some((left_kind, right_kind)) = pair {
            let operator = binary.op.to_string();
            let message = format!(
                "incompatible sample types encountered for binary operator {operator:?}: {left_kind} {operator} {right_kind}"
            );
            self.annotate(AnnotationKind::Info, message, None, Some(&binary.lhs));
        }
    }

    fn eval_binary(&mut self, binary: &BinaryExpr, time: i64, window: Window) -> Result<Evaluated, Error> {
        let operator = binary.op.id();
        let return_bool = binary.return_bool();
        let left = self.eval(&binary.lhs, time, window)?;
        let right = self.eval(&binary.rhs, time, window)?;
        if is_comparison(operator) {
            self.annotate_histogram_comparison(binary, &left, &right);
        }
        match (left, right) {
            (Evaluated::Scalar(left), Evaluated::Scalar(right)) => {
                let (value, keep) = apply_operator(operator, left, right)?;
                if is_comparison(operator) {
                    return Ok(Evaluated::Scalar(if keep { 1.0 } else { 0.0 }));
                }
                Ok(Evaluated::Scalar(value))
            }
            (Evaluated::Vector(left), Evaluated::Scalar(right)) => {
                vector_scalar(operator, left, right, false, return_bool).map(Evaluated::Vector)
            }
            (Evaluated::Scalar(left), Evaluated::Vector(right)) => {
                vector_scalar(operator, right, left, true, return_bool).map(Evaluated::Vector)
            }
            (Evaluated::Vector(left), Evaluated::Vector(right)) => {
                vector_vector(binary, operator, left, right, return_bool).map(Evaluated::Vector)
            }
            _ => Err(Error::execution(format!("invalid operand types for binary expression {binary}"))),
        }
    }
}

/// First timestamp strictly after `after` that is a multiple of `step`
/// (with Go's truncating division, as Prometheus aligns subquery steps).
pub(crate) fn aligned_start(after: i64, step: i64) -> i64 {
    let mut start = step * (after / step);
    if start <= after {
        start += step;
    }
    start
}

pub(crate) fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(duration)) => duration_ms(*duration),
        Some(Offset::Neg(duration)) => -duration_ms(*duration),
    }
}

fn system_time_ms(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(duration) => duration_ms(duration),
        Err(before) => -duration_ms(before.duration()),
    }
}

/// The store matchers of a selector: one group per `or` alternative.
pub(crate) fn matcher_groups(selector: &VectorSelector) -> Result<Vec<Vec<Matcher>>, Error> {
    let convert = |matcher: &promql_parser::label::Matcher| -> Result<Matcher, Error> {
        let op = match matcher.op {
            ParserMatchOp::Equal => MatchOp::Equal,
            ParserMatchOp::NotEqual => MatchOp::NotEqual,
            ParserMatchOp::Re(_) => MatchOp::Regex,
            ParserMatchOp::NotRe(_) => MatchOp::NotRegex,
        };
        match Matcher::new(op, matcher.name.clone(), matcher.value.clone()) {
            Ok(converted) => Ok(converted),
            // Go accepts a `{` that does not start a repetition; escape it and retry.
            Err(error) => {
                let escaped = escape_literal_braces(&matcher.value);
                Matcher::new(op, matcher.name.clone(), escaped).map_err(|_| Error::from(error))
            }
        }
    };
    let mut base = Vec::new();
    if let Some(name) = &selector.name {
        base.push(Matcher::equal(tsdb::METRIC_NAME, name.clone()));
    }
    if selector.matchers.or_matchers.is_empty() {
        let mut group = base;
        for matcher in &selector.matchers.matchers {
            group.push(convert(matcher)?);
        }
        return Ok(vec![group]);
    }
    let mut groups = Vec::new();
    for alternative in &selector.matchers.or_matchers {
        let mut group = base.clone();
        for matcher in alternative.iter().chain(selector.matchers.matchers.iter()) {
            group.push(convert(matcher)?);
        }
        groups.push(group);
    }
    Ok(groups)
}

fn escape_literal_braces(pattern: &str) -> String {
    let mut output = String::with_capacity(pattern.len() + 4);
    let characters: Vec<char> = pattern.chars().collect();
    for (index, character) in characters.iter().enumerate() {
        if *character == '{' {
            let rest: String = characters[index + 1..].iter().take_while(|c| **c != '}').collect();
            let is_repetition = !rest.is_empty()
                && rest.chars().all(|c| c.is_ascii_digit() || c == ',')
                && characters[index + 1..].contains(&'}');
            if !is_repetition {
                output.push('\\');
            }
        }
        output.push(*character);
    }
    output
}

pub(crate) fn is_comparison(operator: TokenId) -> bool {
    matches!(operator, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

fn is_set_operator(operator: TokenId) -> bool {
    matches!(operator, T_LAND | T_LOR | T_LUNLESS)
}

/// Applies an arithmetic or comparison operator; returns the value and, for
/// comparisons, whether the comparison holds.
pub(crate) fn apply_operator(operator: TokenId, left: f64, right: f64) -> Result<(f64, bool), Error> {
    Ok(match operator {
        T_ADD => (left + right, true),
        T_SUB => (left - right, true),
        T_MUL => (left * right, true),
        T_DIV => (left / right, true),
        T_MOD => (left % right, true),
        T_POW => (left.powf(right), true),
        T_ATAN2 => (left.atan2(right), true),
        T_EQLC => (left, left == right),
        T_NEQ => (left, left != right),
        T_GTR => (left, left > right),
        T_LSS => (left, left < right),
        T_GTE => (left, left >= right),
        T_LTE => (left, left <= right),
        other => {
            return Err(Error::execution(format!(
                "operator {} not allowed here",
                promql_parser::parser::token::TokenType::new(other)
            )));
        }
    })
}

fn vector_scalar(
    operator: TokenId,
    vector: Vec<Element>,
    scalar: f64,
    scalar_on_left: bool,
    return_bool: bool,
) -> Result<Vec<Element>, Error> {
    let comparison = is_comparison(operator);
    let mut output = Vec::with_capacity(vector.len());
    for mut element in vector {
        if let Some(histogram) = element.histogram.take() {
            let (left, right) = if scalar_on_left {
                (Operand::Float(scalar), Operand::Histogram(&histogram))
            } else {
                (Operand::Histogram(&histogram), Operand::Float(scalar))
            };
            if let Some(result) = histogram_operation(operator, return_bool, left, right) {
                element.histogram = Some(result);
                element.drop_name = true;
                output.push(element);
            }
            continue;
        }
        let (left, right) = if scalar_on_left { (scalar, element.value) } else { (element.value, scalar) };
        let (mut value, mut keep) = apply_operator(operator, left, right)?;
        if comparison && scalar_on_left {
            value = right;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            element.value = value;
            if !comparison || return_bool {
                element.drop_name = true;
            }
            output.push(element);
        }
    }
    Ok(output)
}

/// The labels a vector-matching signature is computed from (borrowed, no allocation of strings).
fn signature<'a>(labels: &'a Labels, matching: Option<&LabelModifier>) -> Vec<(&'a str, &'a str)> {
    let pair = |label: &'a tsdb::Label| (label.name.as_str(), label.value.as_str());
    match matching {
        Some(LabelModifier::Include(names)) => {
            labels.iter().filter(|label| names.labels.contains(&label.name)).map(pair).collect()
        }
        Some(LabelModifier::Exclude(names)) => labels
            .iter()
            .filter(|label| label.name != tsdb::METRIC_NAME && !names.labels.contains(&label.name))
            .map(pair)
            .collect(),
        None => labels.iter().filter(|label| label.name != tsdb::METRIC_NAME).map(pair).collect(),
    }
}

fn format_signature(signature: &[(&str, &str)]) -> String {
    prometheus_labels_string(signature.iter().copied())
}

/// Prometheus's `labels.Labels.String()`: `{a="b", c="d"}`, `__name__` included.
pub(crate) fn prometheus_labels_string<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut text = String::from("{");
    for (index, (name, value)) in labels.into_iter().enumerate() {
        if index > 0 {
            text.push_str(", ");
        }
        let plain = name.chars().next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
            && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric());
        if plain {
            text.push_str(name);
        } else {
            text.push_str(&format!("{name:?}"));
        }
        text.push('=');
        text.push_str(&format!("{value:?}"));
    }
    text.push('}');
    text
}

fn labels_string(labels: &Labels) -> String {
    prometheus_labels_string(labels.iter().map(|label| (label.name.as_str(), label.value.as_str())))
}

fn vector_vector(
    binary: &BinaryExpr,
    operator: TokenId,
    left: Vec<Element>,
    right: Vec<Element>,
    return_bool: bool,
) -> Result<Vec<Element>, Error> {
    let modifier = binary.modifier.as_ref();
    let matching = modifier.and_then(|modifier| modifier.matching.as_ref());
    if is_set_operator(operator) {
        return Ok(set_operation(operator, left, right, matching));
    }
    let cardinality = modifier.map_or(VectorMatchCardinality::OneToOne, |modifier| modifier.card.clone());
    let fill = modifier.map(|modifier| modifier.fill_values.clone()).unwrap_or_default();
    let has_fill = fill.lhs.is_some() || fill.rhs.is_some();
    if (left.is_empty() || right.is_empty()) && !has_fill {
        return Ok(Vec::new());
    }
    let (include, swapped) = match &cardinality {
        VectorMatchCardinality::ManyToOne(labels) => (labels.labels.clone(), false),
        VectorMatchCardinality::OneToMany(labels) => (labels.labels.clone(), true),
        VectorMatchCardinality::OneToOne => (Vec::new(), false),
        VectorMatchCardinality::ManyToMany => {
            return Err(Error::execution("many-to-many only allowed for set operators"));
        }
    };
    let (many, one) = if swapped { (right, left) } else { (left, right) };
    let mut one_side: HashMap<Vec<(&str, &str)>, usize> = HashMap::with_capacity(one.len());
    for (index, element) in one.iter().enumerate() {
        let key = signature(&element.labels, matching);
        if let Some(previous) = one_side.get(&key) {
            let side = if swapped { "left" } else { "right" };
            let mut pair = [labels_string(&element.labels), labels_string(&one[*previous].labels)];
            pair.sort();
            return Err(Error::execution(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                format_signature(&key),
                pair[0],
                pair[1]
            )));
        }
        one_side.insert(key, index);
    }
    let mut matched: HashMap<Vec<(&str, &str)>, HashSet<Labels>> = HashMap::new();
    let mut used_one = vec![false; one.len()];
    let mut output = Vec::new();
    let drops_name = !is_comparison(operator);
    for many_element in &many {
        let key = signature(&many_element.labels, matching);
        let Some(one_index) = one_side.get(&key).copied() else {
            let fill_value = if swapped { fill.lhs } else { fill.rhs };
            if let Some(fill_value) = fill_value {
                let (left_value, right_value) =
                    if swapped { (fill_value, many_element.value) } else { (many_element.value, fill_value) };
                if let Some(element) = combine(
                    operator,
                    return_bool,
                    drops_name,
                    many_element,
                    None,
                    left_value,
                    right_value,
                    matching,
                    &include,
                    &cardinality,
                )? {
                    output.push(element);
                }
            }
            continue;
        };
        used_one[one_index] = true;
        // One-to-one matches are checked before the operator filters any out, as
        // Prometheus's `VectorBinop` does.
        let one_to_one = matches!(cardinality, VectorMatchCardinality::OneToOne);
        let entry = matched.entry(key);
        if one_to_one && matches!(entry, std::collections::hash_map::Entry::Occupied(_)) {
            return Err(Error::execution(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
            ));
        }
        let results = entry.or_default();
        let one_element = &one[one_index];
        let (left_value, right_value) =
            if swapped { (one_element.value, many_element.value) } else { (many_element.value, one_element.value) };
        let Some(element) = combine(
            operator,
            return_bool,
            drops_name,
            many_element,
            Some(one_element),
            left_value,
            right_value,
            matching,
            &include,
            &cardinality,
        )?
        else {
            continue;
        };
        if !one_to_one && !results.insert((*element.labels).clone()) {
            return Err(Error::execution(
                "multiple matches for matching labels: grouping labels must ensure unique results",
            ));
        }
        output.push(element);
    }
    let fill_many = if swapped { fill.rhs } else { fill.lhs };
    if let Some(fill_value) = fill_many {
        for (index, one_element) in one.iter().enumerate() {
            if used_one[index] {
                continue;
            }
            let (left_value, right_value) =
                if swapped { (one_element.value, fill_value) } else { (fill_value, one_element.value) };
            if let Some(element) = combine(
                operator,
                return_bool,
                drops_name,
                one_element,
                None,
                left_value,
                right_value,
                matching,
                &[],
                &cardinality,
            )? {
                output.push(element);
            }
        }
    }
    Ok(output)
}

#[allow(clippy::too_many_arguments)]
fn combine(
    operator: TokenId,
    return_bool: bool,
    drops_name: bool,
    many_element: &Element,
    one_element: Option<&Element>,
    left_value: f64,
    right_value: f64,
    matching: Option<&LabelModifier>,
    include: &[String],
    cardinality: &VectorMatchCardinality,
) -> Result<Option<Element>, Error> {
    let one_histogram = one_element.and_then(|one| one.histogram.as_deref());
    let (value, histogram) = match (many_element.histogram.as_deref(), one_histogram) {
        (None, None) => {
            let (mut value, keep) = apply_operator(operator, left_value, right_value)?;
            if return_bool {
                value = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                return Ok(None);
            }
            (value, None)
        }
        (Some(many_histogram), Some(one_histogram)) if matches!(operator, T_EQLC | T_NEQ) => {
            // Prometheus's `vectorElemBinop`: both histograms are compacted, the left one is kept.
            let equal = many_histogram.equals_with(one_histogram, |a, b| a == b);
            let keep = equal == (operator == T_EQLC);
            if return_bool {
                (if keep { 1.0 } else { 0.0 }, None)
            } else if keep {
                let swapped = matches!(cardinality, VectorMatchCardinality::OneToMany(_));
                let left_histogram = if swapped { one_histogram } else { many_histogram };
                (0.0, Some(Arc::new(left_histogram.clone())))
            } else {
                return Ok(None);
            }
        }
        (many_histogram, one_histogram) => {
            let swapped = matches!(cardinality, VectorMatchCardinality::OneToMany(_));
            let (left_histogram, right_histogram) =
                if swapped { (one_histogram, many_histogram) } else { (many_histogram, one_histogram) };
            let left = Operand::new(left_value, left_histogram);
            let right = Operand::new(right_value, right_histogram);
            match histogram_operation(operator, return_bool, left, right) {
                Some(result) => (0.0, Some(result)),
                None => return Ok(None),
            }
        }
    };
    let mut builder = many_element.labels.to_builder();
    if drops_name {
        builder.delete(tsdb::METRIC_NAME);
    }
    if matches!(cardinality, VectorMatchCardinality::OneToOne) {
        match matching {
            Some(LabelModifier::Include(names)) => {
                let keep_names: Vec<&str> = names.labels.iter().map(String::as_str).collect();
                builder.keep(&keep_names);
            }
            Some(LabelModifier::Exclude(names)) => {
                for name in &names.labels {
                    builder.delete(name);
                }
            }
            None => {}
        }
    }
    for name in include {
        match one_element.and_then(|one| one.labels.get(name)) {
            Some(value) if !value.is_empty() => {
                builder.set(name.clone(), value.to_owned());
            }
            _ => {
                builder.delete(name);
            }
        }
    }
    Ok(Some(Element {
        histogram,
        labels: Arc::new(builder.build()),
        value,
        timestamp: many_element.timestamp,
        drop_name: return_bool || many_element.drop_name,
    }))
}

/// One side of a binary operation that involves a native histogram.
#[derive(Clone, Copy)]
enum Operand<'a> {
    Float(f64),
    Histogram(&'a FloatHistogram),
}

impl<'a> Operand<'a> {
    fn new(value: f64, histogram: Option<&'a FloatHistogram>) -> Self {
        match histogram {
            Some(histogram) => Operand::Histogram(histogram),
            None => Operand::Float(value),
        }
    }
}

/// A binary operation with at least one histogram operand, as Prometheus
/// defines it: `h + h`, `h - h`, `h * f`, `f * h`, `h / f`, and `==`/`!=`
/// between histograms (keeping the left one). Anything else, comparisons
/// of a histogram with a float included, drops the element (`None`).
fn histogram_operation(
    operator: TokenId,
    return_bool: bool,
    left: Operand<'_>,
    right: Operand<'_>,
) -> Option<Arc<FloatHistogram>> {
    if return_bool {
        return None;
    }
    match (left, right) {
        (Operand::Histogram(left), Operand::Histogram(right)) => match operator {
            T_ADD => left.add(right).ok().map(Arc::new),
            T_SUB => left.sub(right).ok().map(Arc::new),
            T_EQLC => left.equals_with(right, |a, b| a == b).then(|| Arc::new(left.clone())),
            T_NEQ => (!left.equals_with(right, |a, b| a == b)).then(|| Arc::new(left.clone())),
            _ => None,
        },
        (Operand::Histogram(histogram), Operand::Float(factor))
        | (Operand::Float(factor), Operand::Histogram(histogram))
            if operator == T_MUL =>
        {
            let mut result = histogram.clone();
            result.scale(factor);
            Some(Arc::new(result))
        }
        (Operand::Histogram(histogram), Operand::Float(divisor)) if operator == T_DIV => {
            let mut result = histogram.clone();
            result.divide(divisor);
            Some(Arc::new(result))
        }
        _ => None,
    }
}

fn set_operation(
    operator: TokenId,
    left: Vec<Element>,
    right: Vec<Element>,
    matching: Option<&LabelModifier>,
) -> Vec<Element> {
    match operator {
        T_LAND => {
            if left.is_empty() || right.is_empty() {
                return Vec::new();
            }
            let right_signatures: HashSet<_> =
                right.iter().map(|element| signature(&element.labels, matching)).collect();
            left.into_iter()
                .filter(|element| right_signatures.contains(&signature(&element.labels, matching)))
                .collect()
        }
        T_LOR => {
            if left.is_empty() {
                return right;
            }
            if right.is_empty() {
                return left;
            }
            let keep: Vec<bool> = {
                let left_signatures: HashSet<_> =
                    left.iter().map(|element| signature(&element.labels, matching)).collect();
                right.iter().map(|element| !left_signatures.contains(&signature(&element.labels, matching))).collect()
            };
            let mut output = left;
            output.extend(right.into_iter().zip(keep).filter_map(|(element, keep)| keep.then_some(element)));
            output
        }
        _ => {
            if right.is_empty() {
                return left;
            }
            let right_signatures: HashSet<_> =
                right.iter().map(|element| signature(&element.labels, matching)).collect();
            left.into_iter()
                .filter(|element| !right_signatures.contains(&signature(&element.labels, matching)))
                .collect()
        }
    }
}
