//! Aggregation operators: `sum`, `avg`, `count`, `min`, `max`, `group`,
//! `stddev`, `stdvar`, `quantile`, `count_values`, `topk`, `bottomk`,
//! `limitk` and `limit_ratio`.
//!
//! Groups are emitted in the order their first member appears, as Prometheus
//! does. Sums use Kahan-Neumaier compensation; `avg` switches to an
//! incremental mean when the sum would overflow. This module only aggregates
//! one evaluation step; the step loop lives in the engine.

use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};
use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_LIMIT_RATIO, T_LIMITK, T_MAX, T_MIN, T_QUANTILE, T_STDDEV,
    T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, LabelModifier};
use tsdb::{Labels, LabelsBuilder, METRIC_NAME};

use crate::Error;
use crate::engine::{Element, Evaluated, Evaluator, GroupKeyMemo, Window};
use crate::functions::{format_float, format_go_g, kahan_sum_increment, quantile_of};
use crate::hash::labels_hash;
use crate::histogram::histogram_string;
use crate::value::AnnotationKind;

/// The output labels of the group `labels` belongs to.
pub(crate) fn group_labels(labels: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    match modifier {
        None => Labels::empty(),
        Some(LabelModifier::Include(names)) => {
            let mut builder = LabelsBuilder::default();
            for label in labels.iter() {
                if names.labels.contains(&label.name) {
                    builder.set(label.name.clone(), label.value.clone());
                }
            }
            builder.build()
        }
        Some(LabelModifier::Exclude(names)) => {
            let mut builder = labels.to_builder();
            builder.delete(METRIC_NAME);
            for name in &names.labels {
                builder.delete(name);
            }
            builder.build()
        }
    }
}

#[derive(Default)]
struct Group {
    labels: Labels,
    drop_name: bool,
    count: f64,
    value: f64,
    compensation: f64,
    mean: f64,
    incremental_mean: bool,
    values: Vec<f64>,
    non_finite: bool,
}

impl Evaluator<'_> {
    pub(crate) fn eval_aggregate(
        &mut self,
        aggregate: &AggregateExpr,
        time: i64,
        window: Window,
    ) -> Result<Evaluated, Error> {
        let operator = aggregate.op.id();
        let parameter = match &aggregate.param {
            Some(parameter) => Some(self.eval(parameter, time, window)?),
            None => None,
        };
        let modifier = aggregate.modifier.as_ref();
        match operator {
            T_TOPK | T_BOTTOMK | T_LIMITK => {
                let k = match parameter {
                    Some(Evaluated::Scalar(value)) => value,
                    _ => return Err(Error::execution("expected a scalar parameter")),
                };
                if k.is_nan() {
                    return Err(Error::execution("Parameter value is NaN"));
                }
                let k = if k >= i64::MAX as f64 {
                    i64::MAX
                } else if k <= i64::MIN as f64 {
                    i64::MIN
                } else {
                    k as i64
                };
                let input = self.aggregation_input(aggregate, operator, time, window)?;
                if k < 1 {
                    return Ok(Evaluated::Vector(Vec::new()));
                }
                let k = usize::try_from(k).unwrap_or(usize::MAX);
                let keys = self.group_keys(aggregate, &input);
                Ok(Evaluated::Vector(select_k(operator, k, input, keys)))
            }
            T_LIMIT_RATIO => {
                let mut ratio = match parameter {
                    Some(Evaluated::Scalar(value)) => value,
                    _ => return Err(Error::execution("expected a scalar parameter")),
                };
                if ratio.is_nan() {
                    return Err(Error::execution("Ratio value is NaN"));
                }
                if !(-1.0..=1.0).contains(&ratio) {
                    let capped = ratio.clamp(-1.0, 1.0);
                    let message = format!(
                        "ratio value should be between -1 and 1, got {}, capping to {}",
                        format_go_g(ratio),
                        format_go_g(capped)
                    );
                    let parameter_expr = aggregate.param.as_deref();
                    self.annotate(AnnotationKind::Warning, message, Some("limit_ratio"), parameter_expr);
                    ratio = capped;
                }
                let input = self.eval_vector_with_histograms(&aggregate.expr, time, window)?;
                let output = input
                    .into_iter()
                    .filter(|element| {
                        let offset = labels_hash(&element.labels) as f64 / u64::MAX as f64;
                        (ratio >= 0.0 && offset < ratio) || (ratio < 0.0 && offset >= 1.0 + ratio)
                    })
                    .collect();
                Ok(Evaluated::Vector(output))
            }
            T_COUNT_VALUES => {
                let label = match parameter {
                    Some(Evaluated::String(label)) => label,
                    _ => return Err(Error::execution("expected a string parameter")),
                };
                if !self.is_valid_label_name(&label) {
                    return Err(Error::execution(format!("invalid label name {}", self.quoted(&label))));
                }
                let input = self.eval_vector_with_histograms(&aggregate.expr, time, window)?;
                let mut index: HashMap<Labels, usize> = HashMap::new();
                let mut groups: Vec<(Labels, f64)> = Vec::new();
                for element in &input {
                    let mut labels = group_labels(&element.labels, modifier).to_builder();
                    // A histogram counts under its Go `String()` form, as Prometheus's `count_values`.
                    let value = match &element.histogram {
                        Some(histogram) => histogram_string(histogram),
                        None => format_float(element.value),
                    };
                    labels.set(label.clone(), value);
                    let labels = labels.build();
                    match index.get(&labels) {
                        Some(position) => groups[*position].1 += 1.0,
                        None => {
                            index.insert(labels.clone(), groups.len());
                            groups.push((labels, 1.0));
                        }
                    }
                }
                Ok(Evaluated::Vector(
                    groups
                        .into_iter()
                        .map(|(labels, count)| Element {
                            histogram: None,
                            labels: Arc::new(labels),
                            value: count,
                            timestamp: time,
                            drop_name: false,
                        })
                        .collect(),
                ))
            }
            _ => {
                let quantile = match (operator, parameter) {
                    (T_QUANTILE, Some(Evaluated::Scalar(value))) => {
                        if value.is_nan() || !(0.0..=1.0).contains(&value) {
                            let message =
                                format!("quantile value should be between 0 and 1, got {}", format_go_g(value));
                            let parameter_expr = aggregate.param.as_deref();
                            self.annotate(AnnotationKind::Warning, message, Some("quantile"), parameter_expr);
                        }
                        Some(value)
                    }
                    (T_QUANTILE, _) => return Err(Error::execution("expected a scalar parameter")),
                    _ => None,
                };
                let input = self.aggregation_input(aggregate, operator, time, window)?;
                let keys = self.group_keys(aggregate, &input);
                if input.iter().any(|element| element.histogram.is_some()) {
                    return Ok(Evaluated::Vector(
                        self.aggregate_with_histograms(aggregate, operator, input, keys, time),
                    ));
                }
                Ok(Evaluated::Vector(aggregate_groups(operator, quantile, input, keys, modifier, time)))
            }
        }
    }

    /// The input of an aggregation: native histograms stay for the operators
    /// that take them (`sum`, `avg`, `count`, `group`, `limitk`), and are
    /// dropped with Prometheus's info annotation for the others.
    fn aggregation_input(
        &mut self,
        aggregate: &AggregateExpr,
        operator: u16,
        time: i64,
        window: Window,
    ) -> Result<Vec<Element>, Error> {
        let mut input = self.eval_vector_with_histograms(&aggregate.expr, time, window)?;
        if matches!(operator, T_SUM | T_AVG | T_COUNT | T_GROUP | T_LIMITK)
            || input.iter().all(|element| element.histogram.is_none())
        {
            return Ok(input);
        }
        input.retain(|element| element.histogram.is_none());
        let name = aggregate.op.to_string().to_lowercase();
        let message = format!("ignored histogram in {name} aggregation");
        self.annotate(AnnotationKind::Info, message, Some(&name), Some(&aggregate.expr));
        Ok(input)
    }

    /// `sum`, `avg`, `count` and `group` over input holding native histograms:
    /// groups of floats aggregate as usual, groups of histograms into a
    /// histogram (`count` and `group` count them as elements), and groups
    /// mixing both are dropped with Prometheus's warning.
    fn aggregate_with_histograms(
        &mut self,
        aggregate: &AggregateExpr,
        operator: u16,
        input: Vec<Element>,
        keys: Vec<Labels>,
        time: i64,
    ) -> Vec<Element> {
        let modifier = aggregate.modifier.as_ref();
        if matches!(operator, T_COUNT | T_GROUP) {
            return aggregate_groups(operator, None, input, keys, modifier, time);
        }
        let mut kinds: HashMap<Labels, (bool, bool)> = HashMap::new();
        for (element, key) in input.iter().zip(&keys) {
            let kind = kinds.entry(key.clone()).or_default();
            if element.histogram.is_some() {
                kind.1 = true;
            } else {
                kind.0 = true;
            }
        }
        let mut float_input = Vec::new();
        let mut float_keys = Vec::new();
        let mut histogram_groups: Vec<(Labels, Option<tsdb::FloatHistogram>, f64)> = Vec::new();
        let mut histogram_index: HashMap<Labels, usize> = HashMap::new();
        let mut mixed = false;
        for (element, key) in input.into_iter().zip(keys) {
            let (has_floats, has_histograms) = kinds.get(&key).copied().unwrap_or_default();
            if has_floats && has_histograms {
                mixed = true;
                continue;
            }
            let Some(histogram) = &element.histogram else {
                float_input.push(element);
                float_keys.push(key);
                continue;
            };
            let position = *histogram_index.entry(key.clone()).or_insert_with(|| {
                histogram_groups.push((key, None, 0.0));
                histogram_groups.len() - 1
            });
            let group = &mut histogram_groups[position];
            group.2 += 1.0;
            group.1 = match group.1.take() {
                None => Some((**histogram).clone()),
                Some(sum) => sum.add(histogram).ok(),
            };
            if group.1.is_none() {
                mixed = true;
            }
        }
        if mixed {
            let name = aggregate.op.to_string().to_lowercase();
            let message = format!("encountered a mix of histograms and floats for {name} aggregation");
            self.annotate(AnnotationKind::Warning, message, Some(&name), Some(&aggregate.expr));
        }
        let mut output = aggregate_groups(operator, None, float_input, float_keys, modifier, time);
        for (labels, histogram, count) in histogram_groups {
            let Some(mut histogram) = histogram else { continue };
            if operator == T_AVG {
                histogram.divide(count);
            }
            histogram.compact(0);
            output.push(Element {
                histogram: Some(Arc::new(histogram)),
                labels: Arc::new(labels),
                value: 0.0,
                timestamp: time,
                drop_name: false,
            });
        }
        output
    }

    /// The output labels of each element's group, derived once per input series
    /// and shared between steps, so equal groups compare by pointer.
    fn group_keys(&mut self, aggregate: &AggregateExpr, input: &[Element]) -> Vec<Labels> {
        let node = aggregate as *const AggregateExpr as usize;
        let modifier = aggregate.modifier.as_ref();
        let previous = self.group_key_memos.remove(&node).unwrap_or_default();
        let mut keys = Vec::with_capacity(input.len());
        for (position, element) in input.iter().enumerate() {
            let key = match (previous.inputs.get(position), previous.keys.get(position)) {
                (Some(input), Some(key)) if Arc::ptr_eq(input, &element.labels) => key.clone(),
                _ => self.derived_labels(node, &element.labels, |labels| group_labels(labels, modifier)),
            };
            keys.push(key);
        }
        let inputs = input.iter().map(|element| element.labels.clone()).collect();
        self.group_key_memos.insert(node, GroupKeyMemo { inputs, keys: keys.clone() });
        keys
    }
}

/// Aggregates `input`; `keys[i]` is the group labels of `input[i]`.
fn aggregate_groups(
    operator: u16,
    quantile: Option<f64>,
    input: Vec<Element>,
    keys: Vec<Labels>,
    modifier: Option<&LabelModifier>,
    time: i64,
) -> Vec<Element> {
    debug_assert_eq!(input.len(), keys.len());
    let keeps_name =
        matches!(modifier, Some(LabelModifier::Include(names)) if names.labels.iter().any(|name| name == METRIC_NAME));
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for (element, key) in input.iter().zip(keys) {
        let value = element.value;
        let position = match index.get(&key) {
            Some(position) => *position,
            None => {
                index.insert(key.clone(), groups.len());
                groups.push(Group {
                    labels: key,
                    drop_name: false,
                    count: 1.0,
                    value: match operator {
                        T_STDDEV | T_STDVAR => 0.0,
                        T_GROUP => 1.0,
                        _ => value,
                    },
                    compensation: 0.0,
                    mean: value,
                    incremental_mean: false,
                    values: if operator == T_QUANTILE { vec![value] } else { Vec::new() },
                    non_finite: !value.is_finite(),
                });
                let group = groups.last_mut();
                if let Some(group) = group {
                    group.drop_name = keeps_name && element.drop_name;
                }
                continue;
            }
        };
        let group = &mut groups[position];
        group.drop_name |= keeps_name && element.drop_name;
        group.count += 1.0;
        group.non_finite |= !value.is_finite();
        match operator {
            T_SUM => {
                (group.value, group.compensation) = kahan_sum_increment(value, group.value, group.compensation);
            }
            T_AVG => {
                if !group.incremental_mean {
                    let (sum, compensation) = kahan_sum_increment(value, group.value, group.compensation);
                    if !sum.is_infinite() {
                        group.value = sum;
                        group.compensation = compensation;
                        continue;
                    }
                    group.incremental_mean = true;
                    group.mean = group.value / (group.count - 1.0);
                    group.compensation /= group.count - 1.0;
                }
                let ratio = (group.count - 1.0) / group.count;
                (group.mean, group.compensation) =
                    kahan_sum_increment(value / group.count, ratio * group.mean, ratio * group.compensation);
            }
            T_MAX if group.value < value || group.value.is_nan() => group.value = value,
            T_MIN if group.value > value || group.value.is_nan() => group.value = value,
            T_STDDEV | T_STDVAR => {
                let delta = value - group.mean;
                group.mean += delta / group.count;
                group.value += delta * (value - group.mean);
            }
            T_QUANTILE => group.values.push(value),
            T_COUNT | T_GROUP => {}
            _ => {}
        }
    }
    groups
        .into_iter()
        .map(|group| {
            let value = match operator {
                T_SUM => group.value + group.compensation,
                T_AVG => {
                    if group.incremental_mean {
                        group.mean + group.compensation
                    } else {
                        group.value / group.count + group.compensation / group.count
                    }
                }
                T_COUNT => group.count,
                T_GROUP => 1.0,
                T_STDVAR | T_STDDEV if group.non_finite => f64::NAN,
                T_STDVAR => group.value / group.count,
                T_STDDEV => (group.value / group.count).sqrt(),
                T_QUANTILE => quantile_of(quantile.unwrap_or(f64::NAN), group.values),
                _ => group.value,
            };
            Element {
                histogram: None,
                labels: Arc::new(group.labels),
                value,
                timestamp: time,
                drop_name: group.drop_name,
            }
        })
        .collect()
}

/// Keeps up to `k` elements per group; `keys[i]` is the group labels of `input[i]`.
fn select_k(operator: u16, k: usize, input: Vec<Element>, keys: Vec<Labels>) -> Vec<Element> {
    debug_assert_eq!(input.len(), keys.len());
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<Vec<Element>> = Vec::new();
    for (element, labels) in input.into_iter().zip(keys) {
        match index.get(&labels) {
            Some(position) => groups[*position].push(element),
            None => {
                index.insert(labels, groups.len());
                groups.push(vec![element]);
            }
        }
    }
    let mut output = Vec::new();
    for mut members in groups {
        match operator {
            T_TOPK => members.sort_by(|left, right| descending_nan_last(left.value, right.value)),
            T_BOTTOMK => members.sort_by(|left, right| ascending_nan_last(left.value, right.value)),
            _ => {}
        }
        members.truncate(k);
        output.extend(members);
    }
    output
}

fn descending_nan_last(left: f64, right: f64) -> std::cmp::Ordering {
    match (left.is_nan(), right.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        (false, false) => right.partial_cmp(&left).unwrap_or(std::cmp::Ordering::Equal),
    }
}

pub(crate) fn ascending_nan_last(left: f64, right: f64) -> std::cmp::Ordering {
    match (left.is_nan(), right.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        (false, false) => left.partial_cmp(&right).unwrap_or(std::cmp::Ordering::Equal),
    }
}

pub(crate) fn sort_descending_nan_last(left: f64, right: f64) -> std::cmp::Ordering {
    descending_nan_last(left, right)
}
