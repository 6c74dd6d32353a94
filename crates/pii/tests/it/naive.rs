//! The scanner against a naive one: every rule's regex over the whole line,
//! the same validators and the same overlap resolution. On lines that mix
//! PII values, near misses (timestamps, hex ids, versions, times) and words,
//! joined the way log lines join fields, both must find the same matches:
//! the prefilters only skip places where no rule can match.

use std::sync::OnceLock;

use pii::RuleSet;
use proptest::prelude::*;
use regex_automata::meta;
use regex_automata::util::syntax;

use super::{NEGATIVES, POSITIVES, redactor, shipped_rules};

/// (rule index, start, end) of every match, the way the bench's naive scanner finds them.
fn naive_matches(rules: &RuleSet, line: &str) -> Vec<(usize, usize, usize)> {
    static REGEXES: OnceLock<Vec<meta::Regex>> = OnceLock::new();
    let regexes = REGEXES.get_or_init(|| {
        rules
            .rules()
            .iter()
            .map(|rule| {
                meta::Regex::builder()
                    .syntax(syntax::Config::new().unicode(false).utf8(true))
                    .build(rule.pattern())
                    .expect("the shipped patterns compile")
            })
            .collect()
    });
    let mut found = Vec::new();
    for (index, (rule, regex)) in rules.rules().iter().zip(regexes).enumerate() {
        for hit in regex.find_iter(line) {
            if hit.is_empty() {
                continue;
            }
            if rule.validator().is_none_or(|validator| validator.accepts(line.as_bytes(), hit.start(), hit.end())) {
                found.push((index, hit.start(), hit.end()));
            }
        }
    }
    found.sort_by(|left, right| {
        (right.2 - right.1).cmp(&(left.2 - left.1)).then(left.0.cmp(&right.0)).then(left.1.cmp(&right.1))
    });
    let mut kept: Vec<(usize, usize, usize)> = Vec::new();
    for candidate in found {
        if kept.iter().all(|other| candidate.2 <= other.1 || other.2 <= candidate.1) {
            kept.push(candidate);
        }
    }
    kept.sort_by_key(|candidate| candidate.1);
    kept
}

const NEAR_MISSES: &[&str] = &[
    r#""timestamp":"2026-11-26T10:00:00.123Z""#,
    r#""trace_id":"4bf92f3577b34da6a3ce929d0e0e4736""#,
    r#""session_id":"9f8a7b6c5d4e3f21""#,
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    r#""version":"4.12.0""#,
    r#""lineno":412,"colno":18231"#,
    "https://app.busflow.example/bookings?id=12345",
    "took 1500 ms",
    "at 12:30:45",
    "ORD-123456",
    "+42ms",
    "user@localhost",
    "api_key missing",
    "Bearer [REDACTED:jwt]",
    "DE89370400440532013001",
    "4111111111111112",
    "Win64; x64",
    "deadbeef::cafe",
];

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(POSITIVES.iter().map(|row| row.2).collect::<Vec<_>>()).prop_map(str::to_owned),
        2 => prop::sample::select(NEGATIVES.iter().map(|row| row.1).collect::<Vec<_>>()).prop_map(str::to_owned),
        3 => prop::sample::select(NEAR_MISSES.to_vec()).prop_map(str::to_owned),
        2 => "[a-z]{1,8}",
        1 => "[0-9]{1,20}",
        1 => "[0-9a-f]{8,32}",
    ]
}

fn separator() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![", ", "\",\"", " | ", "\n", "}, {", "; ", "\t"])
}

fn mixed_line() -> impl Strategy<Value = String> {
    prop::collection::vec((fragment(), separator()), 1..12).prop_map(|parts| {
        let mut line = String::new();
        for (fragment, separator) in parts {
            line.push_str(&fragment);
            line.push_str(separator);
        }
        line
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn scanner_finds_what_a_whole_line_scan_finds(line in mixed_line()) {
        let rules = shipped_rules();
        let expected: Vec<(String, usize, usize)> = naive_matches(rules, &line)
            .into_iter()
            .map(|(index, start, end)| (rules.rules()[index].id().to_owned(), start, end))
            .collect();
        let found: Vec<(String, usize, usize)> = redactor()
            .redact(&line)
            .matches
            .into_iter()
            .map(|found| (found.rule_id, found.start, found.end))
            .collect();
        prop_assert_eq!(found, expected, "{:?}", line);
    }
}
