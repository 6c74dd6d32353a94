//! Bad queries: golden messages with positions, never a panic.

use super::*;
use proptest::prelude::*;

fn parse_error(query: &str) -> String {
    match logql::parse(query) {
        Ok(expr) => panic!("{query:?} parsed: {expr:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn golden_parse_errors() {
    let cases = [
        (r#"{job="faro""#, r#"parse error at line 1, col 1: unclosed stream selector: missing "}""#),
        (r#"{job="a", |= "x"}"#, r#"parse error at line 1, col 11: unexpected "|=", expected a label matcher"#),
        (
            r#"{job="a"} | x"#,
            r#"parse error at line 1, col 13: unexpected "x", expected a parser, a label filter or a formatting stage"#,
        ),
        (r#"{job="a"} |= x"#, r#"parse error at line 1, col 14: unexpected "x", expected a quoted line filter value"#),
        (r#"foo({job="a"}[5m])"#, r#"parse error at line 1, col 1: unknown function "foo""#),
        (r#"{job=~"(a"}"#, r#"parse error at line 1, col 7: invalid regex "(a": unclosed group"#),
        (r#"count_over_time({job="a"}[5y5])"#, r#"parse error at line 1, col 27: invalid duration "5y5""#),
        (
            r#"count_over_time({job="a"})"#,
            r#"parse error at line 1, col 26: unexpected ")", expected a range such as [5m]"#,
        ),
        (
            r#"count_over_time({job="a"} | unwrap x [5m])"#,
            "parse error at line 1, col 1: invalid aggregation count_over_time with unwrap",
        ),
        (
            r#"count_over_time({job="a"}[5m]) by (job)"#,
            "parse error at line 1, col 32: grouping not allowed for count_over_time aggregation",
        ),
        (r#"{job="a"} | unwrap x"#, "parse error at line 1, col 13: unwrap is only allowed inside a range aggregation"),
        (
            "{}",
            r#"parse error at line 1, col 1: queries require at least one regexp or equality matcher that does not have an empty-compatible value; for instance, app=~".*" does not meet this requirement, but app=~".+" will"#,
        ),
        (
            r#"{job="a"} | json | x > "5""#,
            "parse error at line 1, col 22: ordering comparisons need a number, a duration or a byte size, not a string",
        ),
        (
            r#"{job="a"} | logfmt | x > 5parsecs"#,
            r#"parse error at line 1, col 26: invalid number, duration or byte size "5parsecs""#,
        ),
        (
            r#"{job="a"} | line_format "{{.a""#,
            r#"parse error at line 1, col 25: invalid template: unclosed action: missing "}}""#,
        ),
        (
            r#"{job="a"} | pattern "<a><b>""#,
            "parse error at line 1, col 21: invalid pattern: found consecutive capture: captures must be separated by literals",
        ),
        (r#"{job="a"} | regexp "(x)""#, "parse error at line 1, col 20: at least one named capture must be supplied"),
        (
            r#"{job="a"} | x = ip("nope")"#,
            r#"parse error at line 1, col 20: invalid ip "nope": expected an address, a cidr or a range a-b"#,
        ),
        (
            "sum(\n  count_over_time({job=\"a\"}[5m]\n",
            "parse error at line 3, col 1: unexpected end of query, expected \")\"",
        ),
        (
            r#"sum(count_over_time({job="a"}[5m])) >"#,
            "parse error at line 1, col 38: unexpected end of query, expected a metric expression",
        ),
        (
            r#"topk(count_over_time({job="a"}[5m]))"#,
            r#"parse error at line 1, col 6: unexpected "count_over_time", expected the number of series of topk"#,
        ),
        (
            r#"sum({job="a"})"#,
            "parse error at line 1, col 5: unexpected log query where a metric expression is expected; wrap it in a range aggregation such as count_over_time({...}[5m])",
        ),
        ("1 > 2", "parse error at line 1, col 3: comparisons between scalars must use the bool modifier"),
        (
            r#"{job="a"} |= "x" {"#,
            r#"parse error at line 1, col 18: unexpected "{", expected a pipeline stage or end of query"#,
        ),
        ("\"open", "parse error at line 1, col 1: unterminated string"),
        (
            r#"{job="a"} | label_format a=b, a=c"#,
            r#"parse error at line 1, col 31: multiple label name "a" appears in format"#,
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(parse_error(query), expected, "{query}");
    }
}

#[test]
fn parse_errors_are_bad_requests_with_offsets() {
    let source = MemSource::default();
    let error = query_error(&source, r#"{job="a"} | json | x >"#);
    let logql::Error::Parse(ref parse) = error else { panic!("parse error: {error}") };
    assert_eq!(parse.offset, 22);
    assert!(error.is_bad_request());
}

#[test]
fn selectors_of_a_query() {
    let expr = logql::parse(r#"sum(rate({a="1"}[1m])) / sum(rate({b=~"2|3"} |= "x" [1m]))"#).expect("parses");
    let selectors = logql::selectors(&expr);
    assert_eq!(selectors.len(), 2);
    assert_eq!(selectors[1][0].name, "b");
    assert!(!logql::parse(r#"{a="1"}"#).expect("parses").is_metric());
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let query = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(parse_error(&query).contains("nested too deeply"));
    let minus = format!("{}1", "-".repeat(10_000));
    assert!(parse_error(&minus).contains("nested too deeply"));
}

const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    "|",
    "|=",
    "|~",
    "!=",
    "!~",
    "=",
    "=~",
    "==",
    ">",
    "<=",
    "+",
    "-",
    "*",
    "/",
    "^",
    "job",
    "\"a\"",
    "`b`",
    "5m",
    "1.5",
    "20MB",
    "json",
    "logfmt",
    "unwrap",
    "duration",
    "sum",
    "by",
    "without",
    "count_over_time",
    "rate",
    "quantile_over_time",
    "topk",
    "and",
    "or",
    "unless",
    "bool",
    "on",
    "group_left",
    "offset",
    "line_format",
    "label_format",
    "\"{{.a}}\"",
    "ip",
    "vector",
    "label_replace",
    "#",
    "\n",
    " ",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(query in "\\PC{0,60}") {
        if let Err(error) = logql::parse(&query) {
            prop_assert!(error.offset <= query.len());
            prop_assert!(query.is_char_boundary(error.offset));
            prop_assert!(error.line >= 1 && error.column >= 1);
            prop_assert!(error.to_string().starts_with("parse error at line "));
        }
    }

    #[test]
    fn token_soup_never_panics_and_runs(indexes in proptest::collection::vec(0..FRAGMENTS.len(), 0..24)) {
        let query: String = indexes.iter().map(|index| FRAGMENTS[*index]).collect::<Vec<_>>().join(" ");
        if logql::parse(&query).is_ok() {
            let mut source = MemSource::default();
            source.push(&[("job", "a")], at(1), r#"{"a":"1"} a=1"#);
            let _ = Engine::default().instant_query(&source, &query, at(10), 10, Direction::Backward);
            let _ = Engine::default().range_query(&source, &query, at(0), at(10), 5 * SECOND, 10, Direction::Forward);
        }
    }
}
