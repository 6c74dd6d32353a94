//! Rule thresholds bound to contracts.
//!
//! A rule's thresholds are the constants it compares against (`> 0.02`,
//! `<= 14 * 86400`) and the constant factors of a compared side
//! (`>= 2 * budget`). In a catalog, each threshold other than 0 (which only
//! means "any") must be backed by a contract: the alert's runbook entry lists
//! under `thresholds:` one catalog expression per threshold of its rule, in the
//! order the thresholds are written:
//!
//! ```yaml
//! # runbook/A6.yaml; the rule compares against 3 * 3600 and 0.85 * 500e9
//! thresholds:
//!   - duration_seconds(contracts.log-retention.spec.max_compaction_lag)
//!   - contracts.loki-storage-quota.spec.alert_ratio * contracts.loki-storage-quota.spec.quota_bytes
//! ```
//!
//! `alertbook check` evaluates each expression over the contracts and refuses a
//! rule whose literal differs, or whose threshold no expression backs, so a
//! contract and the rule that enforces it cannot drift apart. Rule files stay
//! plain Prometheus, and alerts carry no extra annotation.
//!
//! Key functions: [`promql_thresholds`], [`logql_thresholds`], [`bindings`].

use std::collections::BTreeMap;

use promql_parser::parser::Expr as PromExpr;

use crate::contracts::Contract;
use crate::expr;

/// The thresholds of a PromQL expression, in the order they are written.
pub fn promql_thresholds(query: &str) -> Vec<f64> {
    let Ok(parsed) = promql_parser::parser::parse(query) else { return Vec::new() };
    let mut found = Vec::new();
    collect_promql(&parsed, &mut found);
    found.retain(|value| *value != 0.0);
    found
}

fn promql_constant(expr: &PromExpr) -> Option<f64> {
    match expr {
        PromExpr::NumberLiteral(number) => Some(number.val),
        PromExpr::Paren(paren) => promql_constant(&paren.expr),
        PromExpr::Unary(unary) => promql_constant(&unary.expr).map(|value| -value),
        PromExpr::Binary(binary) => {
            let (left, right) = (promql_constant(&binary.lhs)?, promql_constant(&binary.rhs)?);
            arithmetic(&binary.op.to_string(), left, right)
        }
        _ => None,
    }
}

fn arithmetic(operator: &str, left: f64, right: f64) -> Option<f64> {
    match operator {
        "+" => Some(left + right),
        "-" => Some(left - right),
        "*" => Some(left * right),
        "/" => Some(left / right),
        "^" => Some(left.powf(right)),
        _ => None,
    }
}

/// A compared side: a constant, or the constant factor of `constant * expr`.
fn promql_side(expr: &PromExpr) -> Option<f64> {
    if let Some(constant) = promql_constant(expr) {
        return Some(constant);
    }
    match expr {
        PromExpr::Paren(paren) => promql_side(&paren.expr),
        PromExpr::Binary(binary) if binary.op.to_string() == "*" => {
            promql_constant(&binary.lhs).or_else(|| promql_constant(&binary.rhs))
        }
        _ => None,
    }
}

fn collect_promql(expr: &PromExpr, found: &mut Vec<f64>) {
    match expr {
        PromExpr::Binary(binary) => {
            if binary.op.is_comparison_operator() {
                found.extend(promql_side(&binary.lhs));
                found.extend(promql_side(&binary.rhs));
                if promql_constant(&binary.lhs).is_none() {
                    collect_promql(&binary.lhs, found);
                }
                if promql_constant(&binary.rhs).is_none() {
                    collect_promql(&binary.rhs, found);
                }
            } else {
                collect_promql(&binary.lhs, found);
                collect_promql(&binary.rhs, found);
            }
        }
        PromExpr::Paren(paren) => collect_promql(&paren.expr, found),
        PromExpr::Unary(unary) => collect_promql(&unary.expr, found),
        PromExpr::Aggregate(aggregate) => collect_promql(&aggregate.expr, found),
        PromExpr::Subquery(subquery) => collect_promql(&subquery.expr, found),
        PromExpr::Call(call) => call.args.args.iter().for_each(|argument| collect_promql(argument, found)),
        _ => {}
    }
}

/// The thresholds of a LogQL metric query, in the order they are written.
pub fn logql_thresholds(query: &str) -> Vec<f64> {
    let Ok(logql::Expr::Metric(parsed)) = logql::parse(query) else { return Vec::new() };
    let mut found = Vec::new();
    collect_logql(&parsed, &mut found);
    found.retain(|value| *value != 0.0);
    found
}

fn logql_constant(expr: &logql::MetricExpr) -> Option<f64> {
    use logql::ast::BinaryOp;
    match expr {
        logql::MetricExpr::Number(number) => Some(*number),
        logql::MetricExpr::Binary { op, lhs, rhs, .. } => {
            let (left, right) = (logql_constant(lhs)?, logql_constant(rhs)?);
            let operator = match op {
                BinaryOp::Add => "+",
                BinaryOp::Sub => "-",
                BinaryOp::Mul => "*",
                BinaryOp::Div => "/",
                BinaryOp::Pow => "^",
                _ => return None,
            };
            arithmetic(operator, left, right)
        }
        _ => None,
    }
}

fn collect_logql(expr: &logql::MetricExpr, found: &mut Vec<f64>) {
    match expr {
        logql::MetricExpr::Binary { op, lhs, rhs, .. } => {
            if op.is_comparison() {
                found.extend(logql_constant(lhs));
                found.extend(logql_constant(rhs));
            }
            collect_logql(lhs, found);
            collect_logql(rhs, found);
        }
        logql::MetricExpr::Aggregate { expr, .. } | logql::MetricExpr::LabelReplace { expr, .. } => {
            collect_logql(expr, found)
        }
        _ => {}
    }
}

/// One problem with an entry's bindings: at one of its `thresholds` items
/// (a byte offset into it), or at the entry as a whole (`item` is `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct BindingError {
    pub item: Option<usize>,
    pub offset: usize,
    pub message: String,
}

/// Checks a rule's `thresholds` against the binding expressions `items`:
/// every threshold bound, in order, to an equal contract value.
pub fn bindings(thresholds: &[f64], items: &[String], contracts: &BTreeMap<String, Contract>) -> Vec<BindingError> {
    let mut errors = Vec::new();
    if items.len() != thresholds.len() {
        let message = if items.is_empty() {
            format!(
                "its rule's threshold(s) {} are literals no contract backs: list under `thresholds:`, in order, \
                 the contract expression each one equals",
                render(thresholds)
            )
        } else {
            format!(
                "`thresholds` binds {} value(s) but its rule compares against {} threshold(s) ({})",
                items.len(),
                thresholds.len(),
                render(thresholds)
            )
        };
        errors.push(BindingError { item: None, offset: 0, message });
    }
    let lookup = |path: &[String]| -> Option<serde_json::Value> {
        let (root, rest) = path.split_first()?;
        if root != "contracts" {
            return None;
        }
        let (name, fields) = rest.split_first()?;
        fields.iter().try_fold(&contracts.get(name)?.tree, |node, field| node.get(field)).cloned()
    };
    for (index, text) in items.iter().enumerate() {
        let at = |offset: usize, message: String| BindingError { item: Some(index), offset, message };
        let parsed = match expr::parse(text) {
            Ok(parsed) => parsed,
            Err(error) => {
                errors.push(at(error.offset, format!("invalid expression: {}", error.message)));
                continue;
            }
        };
        let value = match parsed.evaluate(&lookup) {
            Ok(value) => value,
            Err(error) => {
                errors.push(at(0, format!("{text}: {}", error.message)));
                continue;
            }
        };
        let Some(bound) = value.as_f64() else {
            errors.push(at(0, format!("{text} is {value}, not a number")));
            continue;
        };
        if let Some(threshold) = thresholds.get(index)
            && (threshold - bound).abs() > 1e-9 * threshold.abs().max(bound.abs()).max(1.0)
        {
            errors.push(BindingError {
                item: Some(index),
                offset: 0,
                message: format!(
                    "threshold {} ({}) differs from its contract: {text} is {}",
                    number(*threshold),
                    ordinal(index + 1),
                    number(bound)
                ),
            });
        }
    }
    errors
}

fn number(value: f64) -> String {
    crate::template::format_go_g(value, 6)
}

fn render(thresholds: &[f64]) -> String {
    thresholds.iter().map(|value| number(*value)).collect::<Vec<_>>().join(", ")
}

fn ordinal(position: usize) -> String {
    match position {
        1 => "1st".into(),
        2 => "2nd".into(),
        3 => "3rd".into(),
        other => format!("{other}th"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_the_compared_constants_and_factors() {
        assert_eq!(promql_thresholds("sum(rate(x[5m])) / sum(rate(y[5m])) > 0.02"), vec![0.02]);
        assert_eq!(
            promql_thresholds("time() - max(x) > 3 * 3600 or absent(x) or max(y) >= 0.85 * 500e9"),
            vec![10800.0, 425e9]
        );
        assert_eq!(promql_thresholds("count(x) >= on (metric) 2 * budget"), vec![2.0]);
        assert_eq!(promql_thresholds("max(x) == 0"), Vec::<f64>::new());
        assert_eq!(logql_thresholds(r#"sum(count_over_time({job="faro"}[24h])) > 5"#), vec![5.0]);
    }
}
