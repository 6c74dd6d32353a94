//! Uptime Kuma as a probe source: its /metrics (the recorded 1.23.16 shape in
//! testdata/uptime-kuma) through the catalog's recording rules becomes the
//! probe_success series the prober writes, and A11 fires from it.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

#[test]
fn uptime_kuma_monitor_status_feeds_probe_success_and_a11() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read(root.join("testdata/uptime-kuma/metrics-1.23.16.txt")).expect("fixture");
    let exposition =
        ingest::exposition::parse(&text, ingest::exposition::Format::PrometheusText).expect("a valid exposition");
    let catalog = catalog::load(&root.join("catalog/busflow")).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let store = Arc::new(tsdb::MemStore::new());
    let datasource = rules::EmbeddedDatasource::new(store.clone(), promql::Engine::default());
    let manager = rules::Manager::new(&catalog.rule_files, rules::ManagerOptions::embedded(datasource));
    let group = |name: &str| manager.statuses().iter().position(|group| group.name == name).expect("group");
    let (recording, probes) = (group("uptime-kuma-probes"), group("busflow-probes"));

    let start = 1_764_000_000_000_i64;
    let mut fired = BTreeSet::new();
    for scrape in 0..4 {
        let time_ms = start + scrape * 30_000;
        // As the `uptime-kuma` job scrapes it.
        for sample in &exposition.samples {
            let mut labels = sample.labels.to_builder();
            labels.set("job", "uptime-kuma").set("instance", "uptime-kuma:3001");
            store.append(&labels.build(), time_ms, sample.value).expect("append");
        }
        let (_, errors) = manager.evaluate_group(recording, time_ms);
        assert!(errors.is_empty(), "{errors:?}");
        let (sent, errors) = manager.evaluate_group(probes, time_ms);
        assert!(errors.is_empty(), "{errors:?}");
        let names: Vec<String> = sent.iter().map(|alert| alert.labels["probe"].clone()).collect();
        if scrape < 2 {
            assert!(names.is_empty(), "A11 after {} failed checks: {names:?}", scrape + 1);
        }
        fired.extend(names);
    }
    // Down and pending monitors page after three checks; maintenance and up do not.
    assert_eq!(fired, BTreeSet::from(["docs-hub".to_owned(), "qdrant".to_owned()]));

    let recorded = |probe: &str| {
        let matchers = [
            tsdb::Matcher::equal("__name__", "probe_success"),
            tsdb::Matcher::equal("probe", probe),
            tsdb::Matcher::equal("probe_group", "studio-service-probes"),
            tsdb::Matcher::equal("prober", "uptime-kuma"),
        ];
        tsdb::Queryable::select(store.as_ref(), &matchers, start, start + 90_000)
            .expect("select")
            .into_iter()
            .map(|series| {
                let target = series.labels.get("target").unwrap_or("").to_owned();
                (target, series.samples.last().map(|sample| sample.value))
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(recorded("qdrant"), [("http://qdrant:6333/readyz".to_owned(), Some(0.0))]);
    assert_eq!(recorded("context-engine")[0].1, Some(1.0));
    assert_eq!(recorded("docs-hub")[0].1, Some(0.0));
    assert!(recorded("landing").is_empty(), "maintenance writes no probe_success");
}
