//! Static validation of the queries a check or rule sends to each datasource.
//!
//! Metrics queries are parsed as PromQL, log queries as LogQL; SQL must be one read-only statement; Docker and probe queries follow
//! the small grammars below; trace queries get a TraceQL sanity check (a search starting with a spanset filter, closed
//! strings and brackets, no metrics function). Each error carries a byte offset into the query.

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
        RawDatasource::Traces => validate_traceql(query),
    }
}

/// Validates the query of a triage check. Its text is a Go template over the
/// alert (`{{ $labels.probe }}`, `{{ $value }}`), as annotations are: the
/// template must parse, and the query must be valid with every action standing
/// for a plain word (the action's bytes blanked to `_`, so offsets still point
/// into the written text).
pub fn validate_check(datasource: RawDatasource, query: &str) -> Result<(), QueryError> {
    if query.contains("{{")
        && let Err(error) = crate::template::check("check", query)
    {
        let before: usize = query.split_inclusive('\n').take(error.line.saturating_sub(1)).map(str::len).sum();
        return Err(QueryError {
            offset: (before + error.column.saturating_sub(1)).min(query.len()),
            message: format!("invalid template: {}", error.message),
        });
    }
    validate(datasource, &blank_template_actions(query))
}

/// `query` with every `{{ … }}` action replaced by as many `_` as it has bytes.
fn blank_template_actions(query: &str) -> String {
    let mut blanked = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(start) = rest.find("{{") {
        let Some(length) = rest[start..].find("}}") else { break };
        blanked.push_str(&rest[..start]);
        blanked.extend(std::iter::repeat_n('_', length + 2));
        rest = &rest[start + length + 2..];
    }
    blanked.push_str(rest);
    blanked
}

/// TraceQL metrics functions: Tempo's search API (`/api/search`) refuses them.
const TRACEQL_METRICS_FUNCTIONS: &[&str] = &[
    "rate",
    "count_over_time",
    "sum_over_time",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "quantile_over_time",
    "histogram_over_time",
    "compare",
    "topk",
    "bottomk",
];

/// A sanity check of a TraceQL search, not a full parse: it starts with a
/// spanset filter (`{ ... }`, possibly in parentheses), its strings and
/// brackets are closed, and it calls no metrics function (those go to
/// Tempo's metrics API, not to trace search).
pub fn validate_traceql(query: &str) -> Result<(), QueryError> {
    let error = |offset: usize, message: String| Err(QueryError { offset, message });
    let Some(first) = query.find(|c: char| !c.is_whitespace()) else {
        return error(0, "empty TraceQL query".to_owned());
    };
    if !query[first..].starts_with(['{', '(']) {
        return error(
            first,
            "a TraceQL search starts with a spanset filter such as { span.http.route = \"/api/bookings\" }".to_owned(),
        );
    }
    let mut open: Vec<(char, usize)> = Vec::new();
    let mut characters = query.char_indices().peekable();
    while let Some((offset, character)) = characters.next() {
        match character {
            '"' | '`' => {
                let mut closed = false;
                while let Some((_, inner)) = characters.next() {
                    if inner == '\\' && character == '"' {
                        characters.next();
                    } else if inner == character {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return error(offset, "unterminated string".to_owned());
                }
            }
            '{' | '(' | '[' => open.push((character, offset)),
            '}' | ')' | ']' => {
                let expected = match character {
                    '}' => '{',
                    ')' => '(',
                    _ => '[',
                };
                match open.pop() {
                    Some((opener, _)) if opener == expected => {}
                    _ => return error(offset, format!("unexpected `{character}`")),
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut end = offset + c.len_utf8();
                while let Some(&(next_offset, next)) = characters.peek() {
                    if next.is_ascii_alphanumeric() || next == '_' || next == '.' {
                        end = next_offset + next.len_utf8();
                        characters.next();
                    } else {
                        break;
                    }
                }
                let word = &query[offset..end];
                let called = query[end..].trim_start().starts_with('(');
                if called && TRACEQL_METRICS_FUNCTIONS.contains(&word) && !open.iter().any(|(opener, _)| *opener == '{')
                {
                    return error(
                        offset,
                        format!(
                            "{word}() makes a TraceQL metrics query; a trace check searches traces (spanset filters, select, by)"
                        ),
                    );
                }
            }
            _ => {}
        }
    }
    if let Some((opener, offset)) = open.pop() {
        return error(offset, format!("unclosed `{opener}`"));
    }
    Ok(())
}

/// Parses PromQL. promql-parser's messages carry no position, so the error
/// points where Prometheus points for the same input (see
/// [`promql_error_offset`]); the message reads as promtool's:
/// `could not parse expression: 1:13: parse error: unexpected end of input`.
pub fn validate_promql(query: &str) -> Result<(), QueryError> {
    promql_parser::parser::parse(query).map(|_| ()).map_err(|message| {
        let (offset, message) = promql_parse_error(query, message);
        let before = &query[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        QueryError { offset, message: format!("could not parse expression: {line}:{column}: parse error: {message}") }
    })
}

/// The byte offset and message of a PromQL parse error: promql-parser's
/// generic `invalid promql query` becomes Prometheus's `unexpected end of
/// input` or `unexpected "<token>"` at the offending token.
pub fn promql_parse_error(query: &str, message: String) -> (usize, String) {
    let offset = promql_error_offset(query, &message);
    if message != "invalid promql query" {
        return (offset, message);
    }
    if offset >= query.len() {
        return (offset, "unexpected end of input".to_owned());
    }
    let token = promql_tokens(query).into_iter().find(|token| token.start == offset);
    match token {
        Some(token) => (offset, format!("unexpected {:?}", &query[token.start..token.end])),
        None => (offset, message),
    }
}

/// Where a PromQL parse error is, as a byte offset into `query`.
///
/// promql-parser reports no position, so it is derived from the tokens: the
/// error is at the first token after which the query can no longer be
/// completed into one that parses (completions tried: an operand, a label
/// matcher, a duration, a grouping, then the brackets still open), which is
/// the token Prometheus's parser stops at (`sum(x) by` is fine so far,
/// `sum(rate(x[5m]) by` is not: Prometheus says `1:17: unexpected <by>`). When
/// every prefix can be completed, the input ended too early and the error is
/// at its end, trailing newline included, as Prometheus's `unexpected end of
/// input`. Messages that quote a name (`unknown function with name "foo"`)
/// point at it.
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
    if !is_syntax_error(message) {
        // A well-formed query with a wrong meaning: Prometheus points at the start.
        return query.len() - query.trim_start().len();
    }
    let tokens = promql_tokens(query);
    const MOST_TOKENS: usize = 400;
    if tokens.len() > MOST_TOKENS {
        return query.len() - query.trim_start().len();
    }
    for (index, token) in tokens.iter().enumerate() {
        if !can_be_completed(query, &tokens[..=index]) {
            return token.start;
        }
    }
    query.len()
}

/// A token of a PromQL query: its byte range.
#[derive(Debug, Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
}

/// Splits PromQL into tokens (names, numbers and durations, strings,
/// operators, brackets); blanks and comments are skipped.
fn promql_tokens(query: &str) -> Vec<Token> {
    let bytes = query.as_bytes();
    let mut tokens = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let byte = bytes[position];
        let start = position;
        if byte.is_ascii_whitespace() {
            position += 1;
            continue;
        }
        if byte == b'#' {
            while position < bytes.len() && bytes[position] != b'\n' {
                position += 1;
            }
            continue;
        }
        let is_word =
            |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b':' || byte == b'.' || byte >= 0x80;
        if byte == b'"' || byte == b'\'' || byte == b'`' {
            position += 1;
            while position < bytes.len() && bytes[position] != byte {
                if bytes[position] == b'\\' && byte != b'`' {
                    position += 1;
                }
                position += 1;
            }
            position = (position + 1).min(bytes.len());
        } else if is_word(byte) {
            position += 1;
            while position < bytes.len() {
                let next = bytes[position];
                let exponent_sign = (next == b'+' || next == b'-')
                    && matches!(bytes[position - 1], b'e' | b'E')
                    && bytes[start].is_ascii_digit();
                if is_word(next) || exponent_sign {
                    position += 1;
                } else {
                    break;
                }
            }
        } else {
            let two = query.get(position..position + 2).unwrap_or("");
            position += if ["==", "!=", ">=", "<=", "=~", "!~"].contains(&two) { 2 } else { 1 };
        }
        while position < bytes.len() && !query.is_char_boundary(position) {
            position += 1;
        }
        tokens.push(Token { start, end: position.min(bytes.len()) });
    }
    tokens
}

/// Whether the query made of `tokens` can be completed into one that parses.
fn can_be_completed(query: &str, tokens: &[Token]) -> bool {
    const FILLERS: &[&str] =
        &["", " x", " 1", "[5m]", " 5m", "5m", " \"v\"", "=\"v\"", " (x)", " (x) x", " (x) (x)", " x[5m]", "x=\"v\""];
    let Some(last) = tokens.last() else { return true };
    let prefix = &query[..last.end];
    let mut closers = Vec::new();
    for token in tokens {
        match &query[token.start..token.end] {
            "(" => closers.push(')'),
            "{" => closers.push('}'),
            "[" => closers.push(']'),
            ")" | "}" | "]" => {
                closers.pop();
            }
            _ => {}
        }
    }
    let closing: String = closers.iter().rev().collect();
    FILLERS.iter().any(|filler| {
        ["", " x", " (x)"].iter().any(|operand| {
            match promql_parser::parser::parse(&format!("{prefix}{filler}{closing}{operand}")) {
                Ok(_) => true,
                // Well-formed but wrong in meaning (the fillers' types, argument counts): the syntax goes on.
                Err(message) => !is_syntax_error(&message),
            }
        })
    })
}

/// Whether a promql-parser message is about syntax, not about types,
/// argument counts or matchers of a well-formed query.
fn is_syntax_error(message: &str) -> bool {
    const MEANING: &[&str] = &[
        "expected type",
        "argument",
        "at least one non-empty matcher",
        "unknown function",
        "vector matching",
        "only allowed",
        "not allowed",
        "must be",
        "label duplicated",
        "no grouping",
    ];
    message.is_empty() || !MEANING.iter().any(|meaning| message.contains(meaning))
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
        assert!(
            validate(
                RawDatasource::Traces,
                r#"{ span.http.route = "/api/bookings" && duration > 800ms } | select(span.db.statement)"#
            )
            .is_ok()
        );
        assert!(
            validate(RawDatasource::Traces, r#"({ .a = "}" } && { .b = `)` }) | by(resource.service.name)"#).is_ok()
        );
        assert!(validate(RawDatasource::Traces, "{}").is_ok());
        let traceql = |query: &str| validate(RawDatasource::Traces, query).unwrap_err();
        assert_eq!(traceql("").message, "empty TraceQL query");
        assert_eq!(traceql("  span.x = 1").offset, 2);
        assert_eq!(traceql(r#"{ .a = "x }"#).message, "unterminated string");
        assert_eq!(traceql("{ .a = 1 ").offset, 0);
        assert_eq!(traceql("{ .a = 1 ) }").message, "unexpected `)`");
        let metrics = traceql("{ status = error } | rate() by (resource.service.name)");
        assert_eq!((metrics.offset, metrics.message.starts_with("rate() makes a TraceQL metrics query")), (21, true));
        assert!(validate(RawDatasource::Sql, "DELETE FROM cron.job").is_err());
        assert!(validate(RawDatasource::Sql, "SELECT 1; DROP TABLE x").is_err());
        assert!(validate(RawDatasource::Docker, "service busflow_api replicas").is_ok());
        assert_eq!(validate(RawDatasource::Docker, "service busflow_api colour").unwrap_err().offset, 20);
        assert!(validate(RawDatasource::Probe, "probes studio-service-probes").is_ok());
        assert!(validate(RawDatasource::Probe, "ping example").is_err());
    }

    #[test]
    fn check_queries_are_templates_over_the_alert() {
        assert!(validate_check(RawDatasource::Docker, "service busflow-studio_{{ $labels.probe }} tasks").is_ok());
        assert!(
            validate_check(
                RawDatasource::Logs,
                r#"{job="traefik"} | json | ServiceName = "{{ $labels.ServiceName }}""#
            )
            .is_ok()
        );
        let error =
            validate_check(RawDatasource::Docker, "service busflow-studio_{{ $labels.probe }} colour").unwrap_err();
        assert_eq!(error.offset, 43);
        let error = validate_check(RawDatasource::Docker, "service busflow-studio_{{ $labels.probe tasks").unwrap_err();
        assert!(error.message.starts_with("invalid template"), "{}", error.message);
    }
}
