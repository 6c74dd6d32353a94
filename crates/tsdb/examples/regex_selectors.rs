//! Regex selectors over a head of generated series, for instruction counts
//! under callgrind (`bench/README.md`, "Regex selectors").
//!
//! `cargo run --release -p tsdb --example regex_selectors -- SERIES QUERY REPEAT`
//! builds SERIES series (`instance="host-N"`, ten jobs, fifty paths), then runs
//! selector QUERY (an index into [`SELECTORS`], or `none` to measure the build
//! alone) REPEAT times and prints how many series it selected. The matchers are
//! built once, so the difference between two REPEAT counts is the cost of the
//! selects alone.

use tsdb::{Labels, MatchOp, Matcher, MemStore, Queryable};

/// `(label, regex)` pairs in the shapes Prometheus's `FastRegexMatcher` handles.
const SELECTORS: &[(&str, &str)] = &[
    ("instance", "host-1.*"),
    ("instance", ".*-42.*"),
    ("instance", "(?i)HOST-99.*"),
    ("instance", ".*7"),
    ("instance", "host-(1|2|3)"),
    ("job", "api|web|db"),
    ("instance", "host-[0-9]+5"),
    ("path", "/api/v1/.*"),
];

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let series: usize = arguments.first().and_then(|text| text.parse().ok()).unwrap_or(20_000);
    let query = arguments.get(1).map_or("none", String::as_str);
    let repeat: usize = arguments.get(2).and_then(|text| text.parse().ok()).unwrap_or(20);
    let jobs = ["api", "web", "db", "queue", "cache", "auth", "search", "mail", "batch", "cron"];
    let store = MemStore::new();
    for index in 0..series {
        let instance = format!("host-{index}");
        let path = format!("/api/v{}/resource-{}", index % 3, index % 50);
        let labels = Labels::from_pairs([
            ("__name__", "http_requests_total"),
            ("instance", instance.as_str()),
            ("job", jobs[index % jobs.len()]),
            ("path", path.as_str()),
        ]);
        store.append(&labels, 0, index as f64).expect("append");
    }
    if query == "none" {
        return;
    }
    let Some((label, pattern)) = query.parse::<usize>().ok().and_then(|index| SELECTORS.get(index)) else {
        eprintln!("QUERY is none or 0..{}", SELECTORS.len() - 1);
        std::process::exit(2);
    };
    let matchers = [
        Matcher::equal("__name__", "http_requests_total"),
        Matcher::new(MatchOp::Regex, *label, *pattern).expect("valid regex"),
    ];
    let mut selected = 0;
    for _ in 0..repeat {
        selected = store.select(&matchers, 0, 1).expect("select").len();
    }
    println!("{label}=~{pattern:?}: {selected} series");
}
