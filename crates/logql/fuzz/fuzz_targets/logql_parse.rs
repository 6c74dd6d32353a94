//! Fuzzes the LogQL parser with arbitrary UTF-8; every query that parses is
//! also evaluated, as an instant and a range query, over a tiny in-memory store.

#![no_main]

use libfuzzer_sys::fuzz_target;
use logql::{Direction, Engine, Entry, LogSource, SourceError, StreamMatcher};
use tsdb::Labels;

struct Tiny {
    streams: Vec<(Labels, Vec<(i64, &'static str)>)>,
    metadata: Vec<(String, String)>,
}

impl LogSource for Tiny {
    fn select(
        &self,
        matchers: &[StreamMatcher],
        start_ns: i64,
        end_ns: i64,
        visit: &mut dyn FnMut(&Labels, Entry<'_>) -> std::ops::ControlFlow<()>,
    ) -> Result<(), SourceError> {
        for (labels, entries) in &self.streams {
            if matchers.iter().all(|matcher| matcher.matches_labels(labels)) {
                for (timestamp_ns, line) in entries {
                    if *timestamp_ns >= start_ns && *timestamp_ns < end_ns {
                        if visit(labels, Entry { timestamp_ns: *timestamp_ns, line, metadata: &self.metadata }).is_break() {
                            return Ok(());
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

const SECOND: i64 = 1_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let Ok(expr) = logql::parse(query) else { return };
    let source = Tiny {
        streams: vec![
            (
                Labels::from_pairs([("job", "a"), ("env", "prod")]),
                vec![
                    (SECOND, r#"{"a":"1","b":{"c":2.5},"d":[1]}"#),
                    (2 * SECOND, "level=info a=2 latency=5ms size=1KB"),
                ],
            ),
            (
                Labels::from_pairs([("job", "b")]),
                vec![(3 * SECOND, "10.0.1.2 - GET /x 200"), (4 * SECOND, "\u{1b}[31mred")],
            ),
        ],
        metadata: vec![("trace_id".to_string(), "t1".to_string())],
    };
    let engine = Engine::default();
    let _ = logql::selectors(&expr);
    let _ = engine.instant_expr(&source, &expr, 5 * SECOND, 10, Direction::Backward);
    let _ = engine.range_expr(&source, &expr, 0, 10 * SECOND, SECOND, 10, Direction::Forward);
});
