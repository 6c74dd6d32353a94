//! Static validation of the queries a check or rule sends to each datasource.
//!
//! Metrics queries are parsed as PromQL, log queries as LogQL; SQL must be one read-only statement; Docker and probe queries follow
//! the small grammars below. Each error carries a byte offset into the query.

use crate::contracts::PROBERS;
use crate::raw::RawDatasource;

/// A query error at a byte offset into the query text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub offset: usize,
    pub message: String,
}

/// The Docker facts a check can read.
pub const DOCKER_FIELDS: &[&str] = &["replicas", "env", "secrets", "networks", "labels", "tasks"];

/// Validates `query` for `datasource`.
pub fn validate(datasource: RawDatasource, query: &str) -> Result<(), QueryError> {
    match datasource {
        RawDatasource::Metrics => validate_promql(query),
        RawDatasource::Logs => validate_logql(query),
        RawDatasource::Sql => validate_sql(query),
        RawDatasource::Docker => validate_docker(query),
        RawDatasource::Probe => validate_probe(query),
    }
}

/// Parses PromQL. promql-parser's messages carry no position, so the error
/// points where Prometheus points for the same input when the message allows
/// it (see [`promql_error_offset`]); the message reads as promtool's:
/// `could not parse expression: 1:13: parse error: unexpected end of input`.
pub fn validate_promql(query: &str) -> Result<(), QueryError> {
    promql_parser::parser::parse(query).map(|_| ()).map_err(|message| {
        let offset = promql_error_offset(query, &message);
        let before = &query[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        let message = if message == "invalid promql query" && ends_too_early(query) {
            "unexpected end of input".to_owned()
        } else {
            message
        };
        QueryError { offset, message: format!("could not parse expression: {line}:{column}: parse error: {message}") }
    })
}

/// Where a PromQL parse error is, from promql-parser's message: the token it
/// quotes, or, for an input that ends too early, the end of the input,
/// trailing newline included, where Prometheus's lexer reports
/// `unexpected end of input`.
pub fn promql_error_offset(query: &str, message: &str) -> usize {
    for quote in ['\'', '"'] {
        let mut parts = message.split(quote);
        parts.next();
        if let Some(token) = parts.next()
            && !token.is_empty()
            && let Some(index) = query.find(token)
        {
            return index;
        }
    }
    if (message == "invalid promql query" && ends_too_early(query))
        || message.contains("unexpected end of input")
        || message.contains("EOF")
    {
        return query.len();
    }
    query.len() - query.trim_start().len()
}

/// Whether a query that does not parse stops where more must follow: after
/// an operator, an opening bracket, a comma or a keyword that takes an operand.
fn ends_too_early(query: &str) -> bool {
    const TAKES_OPERAND: &[&str] =
        &["and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"];
    let trimmed = query.trim_end();
    let opened = |open: char, close: char| trimmed.matches(open).count() > trimmed.matches(close).count();
    trimmed.ends_with(['+', '-', '*', '/', '%', '^', '(', ',', '{', '[', '=', '~', '!', '<', '>', '@'])
        || TAKES_OPERAND
            .iter()
            .any(|word| trimmed.rsplit(|c: char| c.is_whitespace() || c == ')').next() == Some(*word))
        || opened('(', ')')
        || opened('{', '}')
        || opened('[', ']')
}

/// Parses LogQL with alertbook's LogQL parser.
fn validate_logql(query: &str) -> Result<(), QueryError> {
    parse_logql(query).map(|_| ())
}

fn parse_logql(query: &str) -> Result<logql::Expr, QueryError> {
    logql::parse(query)
        .map_err(|error| QueryError { offset: error.offset, message: format!("invalid LogQL: {}", error.message) })
}

/// Parses the LogQL of a rule: it must be a metric query (a log query gives no
/// samples to alert on or record), as Loki's ruler requires.
pub fn validate_logql_rule(query: &str) -> Result<(), QueryError> {
    if !parse_logql(query)?.is_metric() {
        return Err(QueryError {
            offset: 0,
            message:
                "a LogQL rule needs a metric query such as sum(count_over_time({job=\"x\"} [5m])), not a log query"
                    .into(),
        });
    }
    Ok(())
}

fn validate_sql(query: &str) -> Result<(), QueryError> {
    let trimmed = query.trim_start();
    let offset = query.len() - trimmed.len();
    let first_word: String = trimmed.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    if !matches!(first_word.to_ascii_lowercase().as_str(), "select" | "with") {
        return Err(QueryError {
            offset,
            message: "SQL checks are read-only: the statement must start with SELECT or WITH".into(),
        });
    }
    let body = query.trim_end().trim_end_matches(';');
    if let Some(position) = body.find(';') {
        return Err(QueryError { offset: position, message: "a SQL check runs exactly one statement".into() });
    }
    Ok(())
}

fn validate_docker(query: &str) -> Result<(), QueryError> {
    let words: Vec<&str> = query.split_whitespace().collect();
    let offset_of =
        |index: usize| words.get(index).map_or(query.len(), |word| word.as_ptr() as usize - query.as_ptr() as usize);
    match words.as_slice() {
        ["services"] => Ok(()),
        ["service", _name, field] if DOCKER_FIELDS.contains(field) => Ok(()),
        ["service", _name, _field] => Err(QueryError {
            offset: offset_of(2),
            message: format!("unknown service field; expected one of: {}", DOCKER_FIELDS.join(", ")),
        }),
        ["secret", _name] => Ok(()),
        ["stack", _path] => Ok(()),
        _ => Err(QueryError {
            offset: 0,
            message: "invalid Docker query; expected `services`, `service <name> <field>`, `secret <name>` or \
                      `stack <compose file>`"
                .into(),
        }),
    }
}

fn validate_probe(query: &str) -> Result<(), QueryError> {
    let words: Vec<&str> = query.split_whitespace().collect();
    match words.as_slice() {
        ["probes", _contract] => Ok(()),
        [prober, _target] if PROBERS.contains(prober) => Ok(()),
        _ => Err(QueryError {
            offset: 0,
            message: format!(
                "invalid probe query; expected `probes <contract>` or `<prober> <target>` with a prober among: {}",
                PROBERS.join(", ")
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        assert!(validate(RawDatasource::Metrics, "sum(rate(x[5m]))").is_ok());
        assert!(validate(RawDatasource::Metrics, "sum(rate(x[5m])").is_err());
        assert!(validate(RawDatasource::Logs, r#"{job="faro"} | json"#).is_ok());
        assert_eq!(validate(RawDatasource::Logs, r#"{job faro}"#).unwrap_err().offset, 5);
        assert!(validate(RawDatasource::Sql, "SELECT 1").is_ok());
        assert!(validate(RawDatasource::Sql, "DELETE FROM cron.job").is_err());
        assert!(validate(RawDatasource::Sql, "SELECT 1; DROP TABLE x").is_err());
        assert!(validate(RawDatasource::Docker, "service busflow_api replicas").is_ok());
        assert_eq!(validate(RawDatasource::Docker, "service busflow_api colour").unwrap_err().offset, 20);
        assert!(validate(RawDatasource::Probe, "probes studio-service-probes").is_ok());
        assert!(validate(RawDatasource::Probe, "ping example").is_err());
    }
}
