//! Best-effort source positions.
//!
//! `promql-parser` keeps no positions in its AST nor in its error messages, so
//! this module derives them from the query text: parse errors point at the
//! token Prometheus's parser stops at (found from the tokens by
//! `catalog::queries::promql_error_offset`) or the end of input, annotations point at the
//! first occurrence of the annotated sub-expression after an anchor such as
//! the enclosing function name. Positions are 1-based line and column
//! (columns count characters). It never fails: when nothing is found it
//! reports no position.

use promql_parser::parser::Expr;

use crate::Error;

/// 1-based line and column of a byte offset in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    let column = before.get(line_start..).map_or(0, |rest| rest.chars().count()) + 1;
    (line, column)
}

/// Builds a parse error at the position Prometheus reports for the same
/// query: the offending token or the end of the input
/// (`catalog::queries::promql_parse_error`, shared with `alertbook check`).
pub(crate) fn parse_error(query: &str, message: String) -> Error {
    let (offset, message) = catalog::queries::promql_parse_error(query, message);
    let (line, column) = line_column(query, offset);
    Error::Parse { message, line, column, offset }
}

/// Where `expr` appears in `query`, searched after the first occurrence of
/// `anchor` when given.
pub(crate) fn locate_expression(query: &str, anchor: Option<&str>, expr: &Expr) -> Option<(usize, usize)> {
    let search_from = anchor.and_then(|anchor| query.find(anchor).map(|index| index + anchor.len())).unwrap_or(0);
    let haystack = query.get(search_from..)?;
    let mut candidates = vec![expr.to_string()];
    if let Some(name) = first_selector_name(expr) {
        candidates.push(name);
    }
    for candidate in candidates {
        if candidate.is_empty() {
            continue;
        }
        if let Some(index) = haystack.find(&candidate) {
            return Some(line_column(query, search_from + index));
        }
    }
    // The argument may start right after the anchor: skip blanks and an opening parenthesis.
    let skipped = haystack.len() - haystack.trim_start_matches([' ', '\t', '\n', '(']).len();
    anchor.map(|_| line_column(query, search_from + skipped))
}

fn first_selector_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::VectorSelector(selector) => selector.name.clone(),
        Expr::MatrixSelector(selector) => selector.vs.name.clone(),
        Expr::Paren(paren) => first_selector_name(&paren.expr),
        Expr::Subquery(subquery) => first_selector_name(&subquery.expr),
        Expr::Unary(unary) => first_selector_name(&unary.expr),
        Expr::Aggregate(aggregate) => first_selector_name(&aggregate.expr),
        Expr::Binary(binary) => first_selector_name(&binary.lhs).or_else(|| first_selector_name(&binary.rhs)),
        Expr::Call(call) => call.args.args.iter().find_map(|argument| first_selector_name(argument)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        assert_eq!(line_column("abc", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn locates_function_argument() {
        let query = "histogram_quantile(0.8, series)";
        let expr = promql_parser::parser::parse("series").expect("valid query");
        assert_eq!(locate_expression(query, Some("histogram_quantile("), &expr), Some((1, 25)));
    }
}
