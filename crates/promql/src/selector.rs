//! Series selectors outside queries: the `match[]` parameters of the metadata
//! APIs (`/api/v1/series`, `/api/v1/labels`), turned into store matchers.

use promql_parser::parser::Expr;

use crate::Error;
use crate::engine::{matcher_groups, parse};

/// The store matchers of a series selector such as `up{job="api"}`: one group
/// per `or` alternative. Anything but a plain selector is an error, as is a
/// selector whose matchers all match the empty string.
pub fn selector_matchers(selector: &str) -> Result<Vec<Vec<tsdb::Matcher>>, Error> {
    let Expr::VectorSelector(vector) = parse(selector)? else {
        return Err(Error::Execution(format!("{selector:?} is not a series selector")));
    };
    let groups = matcher_groups(&vector)?;
    if groups.iter().any(|group| group.iter().all(tsdb::Matcher::matches_empty)) {
        return Err(Error::Execution("match[] must contain at least one non-empty matcher".into()));
    }
    Ok(groups)
}

/// The store matchers of every series selector in a query, one group per
/// selector (and per `or` alternative), as Prometheus's `ExtractSelectors`
/// gives `/api/v1/query_exemplars`. A query without selectors yields none.
pub fn query_selectors(query: &str) -> Result<Vec<Vec<tsdb::Matcher>>, Error> {
    let expr = parse(query)?;
    let mut groups = Vec::new();
    collect_selectors(&expr, &mut groups)?;
    Ok(groups)
}

/// Formats a query as Prometheus's prettifier does (`/api/v1/format_query`).
pub fn format_query(query: &str) -> Result<String, Error> {
    Ok(parse(query)?.prettify())
}

fn collect_selectors(expr: &Expr, groups: &mut Vec<Vec<tsdb::Matcher>>) -> Result<(), Error> {
    match expr {
        Expr::VectorSelector(vector) => groups.extend(matcher_groups(vector)?),
        Expr::MatrixSelector(matrix) => groups.extend(matcher_groups(&matrix.vs)?),
        Expr::Aggregate(aggregate) => {
            collect_selectors(&aggregate.expr, groups)?;
            if let Some(parameter) = &aggregate.param {
                collect_selectors(parameter, groups)?;
            }
        }
        Expr::Unary(unary) => collect_selectors(&unary.expr, groups)?,
        Expr::Binary(binary) => {
            collect_selectors(&binary.lhs, groups)?;
            collect_selectors(&binary.rhs, groups)?;
        }
        Expr::Paren(paren) => collect_selectors(&paren.expr, groups)?,
        Expr::Subquery(subquery) => collect_selectors(&subquery.expr, groups)?,
        Expr::Call(call) => {
            for argument in &call.args.args {
                collect_selectors(argument, groups)?;
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_selector_of_a_query_is_found() {
        let groups = query_selectors(
            r#"sum(rate(http_requests_total{job="api"}[5m])) / on(job) histogram_quantile(0.9, latency_bucket) > 1"#,
        )
        .expect("valid");
        assert_eq!(groups.len(), 2);
        assert!(groups[0].iter().any(|matcher| matcher.name == "job" && matcher.value == "api"));
        assert!(groups[1].iter().any(|matcher| matcher.value == "latency_bucket"));
        assert!(query_selectors("1 + 2").expect("valid").is_empty());
    }

    #[test]
    fn queries_are_formatted_as_prometheus_prints_them() {
        // The example of Prometheus's API documentation.
        assert_eq!(format_query("foo/bar").expect("valid"), "foo / bar");
        assert!(format_query("foo / ").is_err());
    }
}
