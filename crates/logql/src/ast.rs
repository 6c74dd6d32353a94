//! The syntax tree of a LogQL query.
//!
//! [`Expr`] is either a log query ([`LogExpr`]: a stream selector and a
//! pipeline) or a metric query ([`MetricExpr`]). Regexes, templates and
//! patterns are compiled while parsing, so a tree that exists is one the
//! evaluator can run: a bad regex is a parse error with a position, never an
//! evaluation failure.

use crate::source::StreamMatcher;
use crate::template::Template;

/// A parsed query.
#[derive(Debug, Clone)]
pub enum Expr {
    Log(LogExpr),
    Metric(MetricExpr),
}

impl Expr {
    /// Whether the query returns samples rather than log lines.
    pub fn is_metric(&self) -> bool {
        matches!(self, Expr::Metric(_))
    }
}

/// `{selector} | stage | stage ...`
#[derive(Debug, Clone)]
pub struct LogExpr {
    pub matchers: Vec<StreamMatcher>,
    pub stages: Vec<Stage>,
}

/// One pipeline stage.
#[derive(Debug, Clone)]
pub enum Stage {
    /// `|= "a"`, `!~ "b" or "c"`.
    LineFilter(LineFilter),
    Parser(ParserStage),
    /// `| name op value and ...`
    LabelFilter(LabelFilter),
    LineFormat(Template),
    LabelFormat(Vec<LabelFormat>),
    Drop(Vec<LabelSpec>),
    Keep(Vec<LabelSpec>),
    Decolorize,
}

impl Stage {
    /// Whether the stage adds, renames or removes labels (then the labels after the
    /// pipeline, structured metadata included, label the results).
    pub fn changes_labels(&self) -> bool {
        matches!(self, Stage::Parser(_) | Stage::LabelFormat(_) | Stage::Drop(_) | Stage::Keep(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFilterOp {
    Contains,
    NotContains,
    Match,
    NotMatch,
}

/// A line filter; several values joined with `or` match when any does (for the
/// negated forms: when none does).
#[derive(Debug, Clone)]
pub struct LineFilter {
    pub op: LineFilterOp,
    pub values: Vec<String>,
    /// One regex per value for `|~` and `!~`.
    pub regexes: Vec<regex::Regex>,
}

#[derive(Debug, Clone)]
pub enum ParserStage {
    /// `| json` (every field) or `| json a="x.y", b` (selected fields).
    Json(Vec<JsonField>),
    Logfmt {
        strict: bool,
        keep_empty: bool,
        fields: Vec<(String, String)>,
    },
    Regexp(regex::Regex),
    Pattern(crate::parsers::Pattern),
    Unpack,
}

/// One `name="path"` parameter of `| json`.
#[derive(Debug, Clone)]
pub struct JsonField {
    pub label: String,
    pub path: Vec<JsonPathStep>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JsonPathStep {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Greater,
    GreaterEqual,
    Less,
    LessEqual,
}

impl CompareOp {
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            CompareOp::Equal => left == right,
            CompareOp::NotEqual => left != right,
            CompareOp::Greater => left > right,
            CompareOp::GreaterEqual => left >= right,
            CompareOp::Less => left < right,
            CompareOp::LessEqual => left <= right,
        }
    }
}

/// A label filter expression.
#[derive(Debug, Clone)]
pub enum LabelFilter {
    And(Box<LabelFilter>, Box<LabelFilter>),
    Or(Box<LabelFilter>, Box<LabelFilter>),
    /// `name = "v"`, `name =~ "re"`, ...: compares the label's text (missing = `""`).
    String(StreamMatcher),
    /// `name > 5`: the label parsed as a float.
    Number {
        name: String,
        op: CompareOp,
        value: f64,
    },
    /// `name > 250ms`: the label parsed as a Go duration, compared in seconds.
    Duration {
        name: String,
        op: CompareOp,
        seconds: f64,
    },
    /// `name > 20MB`: the label parsed as a byte size.
    Bytes {
        name: String,
        op: CompareOp,
        bytes: f64,
    },
    /// `name = ip("10.0.0.0/8")`, `name != ip(...)`.
    Ip {
        name: String,
        negated: bool,
        matcher: crate::ip::IpMatcher,
    },
}

/// One `| label_format` assignment.
#[derive(Debug, Clone)]
pub enum LabelFormat {
    /// `new=old`: moves the value of `old` to `new`.
    Rename { to: String, from: String },
    /// `name="{{...}}"`.
    Template { name: String, template: Template },
}

/// A label named by `| drop` or `| keep`, optionally only when its value matches.
#[derive(Debug, Clone)]
pub struct LabelSpec {
    pub name: String,
    pub matcher: Option<StreamMatcher>,
}

/// How `| unwrap` turns a label into a sample value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    Float,
    /// `duration(x)` and `duration_seconds(x)`: seconds.
    Duration,
    /// `bytes(x)`.
    Bytes,
}

#[derive(Debug, Clone)]
pub struct Unwrap {
    pub label: String,
    pub conversion: Conversion,
    /// Label filters after the unwrap (`| unwrap x | __error__=""`).
    pub filters: Vec<LabelFilter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    CountOverTime,
    Rate,
    BytesOverTime,
    BytesRate,
    AbsentOverTime,
    SumOverTime,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    StddevOverTime,
    StdvarOverTime,
    QuantileOverTime,
    FirstOverTime,
    LastOverTime,
}

impl RangeOp {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "count_over_time" => RangeOp::CountOverTime,
            "rate" => RangeOp::Rate,
            "bytes_over_time" => RangeOp::BytesOverTime,
            "bytes_rate" => RangeOp::BytesRate,
            "absent_over_time" => RangeOp::AbsentOverTime,
            "sum_over_time" => RangeOp::SumOverTime,
            "avg_over_time" => RangeOp::AvgOverTime,
            "min_over_time" => RangeOp::MinOverTime,
            "max_over_time" => RangeOp::MaxOverTime,
            "stddev_over_time" => RangeOp::StddevOverTime,
            "stdvar_over_time" => RangeOp::StdvarOverTime,
            "quantile_over_time" => RangeOp::QuantileOverTime,
            "first_over_time" => RangeOp::FirstOverTime,
            "last_over_time" => RangeOp::LastOverTime,
            _ => return None,
        })
    }

    /// Whether the operation reads unwrapped values (`rate` may, the others must not).
    pub fn needs_unwrap(self) -> bool {
        !matches!(
            self,
            RangeOp::CountOverTime
                | RangeOp::Rate
                | RangeOp::BytesOverTime
                | RangeOp::BytesRate
                | RangeOp::AbsentOverTime
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Sort,
    SortDesc,
}

impl VectorOp {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "sum" => VectorOp::Sum,
            "avg" => VectorOp::Avg,
            "min" => VectorOp::Min,
            "max" => VectorOp::Max,
            "count" => VectorOp::Count,
            "stddev" => VectorOp::Stddev,
            "stdvar" => VectorOp::Stdvar,
            "topk" => VectorOp::Topk,
            "bottomk" => VectorOp::Bottomk,
            "sort" => VectorOp::Sort,
            "sort_desc" => VectorOp::SortDesc,
            _ => return None,
        })
    }
}

/// `by (a, b)` or `without (a, b)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    pub without: bool,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Equal,
    NotEqual,
    Greater,
    GreaterEqual,
    Less,
    LessEqual,
    And,
    Or,
    Unless,
}

impl BinaryOp {
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Equal
                | BinaryOp::NotEqual
                | BinaryOp::Greater
                | BinaryOp::GreaterEqual
                | BinaryOp::Less
                | BinaryOp::LessEqual
        )
    }

    pub fn is_set(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Unless)
    }
}

/// Vector matching of a binary operation, as in PromQL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VectorMatching {
    /// `on(...)` (`Some(false, labels)`) or `ignoring(...)` (`Some(true, labels)`).
    pub on: Option<(bool, Vec<String>)>,
    /// `group_left(...)` (`Some(false, labels)`) or `group_right(...)` (`Some(true, labels)`).
    pub group: Option<(bool, Vec<String>)>,
}

#[derive(Debug, Clone)]
pub enum MetricExpr {
    Range {
        op: RangeOp,
        /// φ of `quantile_over_time`.
        parameter: Option<f64>,
        log: LogExpr,
        unwrap: Option<Unwrap>,
        range_ns: i64,
        offset_ns: i64,
        grouping: Option<Grouping>,
    },
    Aggregate {
        op: VectorOp,
        /// k of `topk` and `bottomk`.
        parameter: Option<f64>,
        grouping: Option<Grouping>,
        expr: Box<MetricExpr>,
    },
    Binary {
        op: BinaryOp,
        return_bool: bool,
        matching: VectorMatching,
        lhs: Box<MetricExpr>,
        rhs: Box<MetricExpr>,
    },
    Number(f64),
    /// `vector(n)`.
    Vector(f64),
    LabelReplace {
        expr: Box<MetricExpr>,
        destination: String,
        replacement: String,
        source: String,
        regex: regex::Regex,
    },
}
