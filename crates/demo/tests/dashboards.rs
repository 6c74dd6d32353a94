//! The Grafana dashboards of `contrib/grafana` against the simulated Busflow
//! day: the whole day is loaded into alertbook's metrics store and log store
//! (the Faro stream redacted as at ingest, the cardinality budgets published
//! as `alertbook run` publishes them), and every panel query, its variables
//! substituted as Grafana does, runs as a range query over the day with
//! alertbook's PromQL and LogQL engines and must return data. A query that
//! cannot have data in the demo is listed in [`NO_DATA_IN_THE_DEMO`] with
//! the reason, and must then return none.

mod common;
#[path = "../../catalog/tests/it/grafana.rs"]
mod grafana;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use demo::{Day, MINUTE_MS};
use grafana::{Intervals, Language, Purpose, Query};

/// Panel queries (by `file: panel "title" refId`) that the simulated day
/// cannot answer, and why.
const NO_DATA_IN_THE_DEMO: &[(&str, &str)] = &[
    (
        r#"cardinality.json: panel "Series per route_id" A"#,
        "route_id is the label runbook A5 names as the usual culprit; no simulated series carries it",
    ),
    (
        r#"certificates.json: panel "Probed certificates: time left" A"#,
        "the day's A9 incident comes through Traefik's traefik_tls_certs_not_after; the tls-certificates probes are not simulated",
    ),
    (
        r#"loki-storage.json: panel "Compactions by outcome" A"#,
        "the simulator writes the compactor series A6 reads (its last successful run), not its operation counters",
    ),
    (
        r#"loki-storage.json: panel "Compactor running" A"#,
        "the simulator writes the compactor series A6 reads (its last successful run), not loki_boltdb_shipper_compactor_running",
    ),
    (
        r#"traefik-edge.json: panel "p95 duration by service" A"#,
        "the simulator writes Traefik's request counters and certificates, not its request duration histogram",
    ),
];

/// Panel queries that have no data once the test picks the first value of
/// each variable (see `queries_filtered_to_one_value_of_a_variable_return_data`), and why.
const NO_DATA_FOR_THE_PICKED_VALUES: &[(&str, &str)] = &[(
    r#"probes.json: panel "HTTP status codes" A"#,
    "the first probe listed, aws-ses, is an SMTP probe: alertbook's prober writes probe_http_status_code for HTTP probes only",
)];

/// The grid Grafana would use for the day on a wide screen: a 5-minute step.
const STEP_MS: i64 = 5 * MINUTE_MS;
/// The provisioned datasource's `timeInterval` (contrib/grafana/provisioning).
const SCRAPE_INTERVAL_SECONDS: u64 = 60;

struct Stores {
    metrics: tsdb::MemStore,
    logs: common::Logs,
}

/// The whole simulated day in alertbook's stores, with what `alertbook run`
/// adds to it: the recording rules' series and the published budgets.
fn load(day: &Day, catalog: &catalog::Catalog) -> Stores {
    let metrics = common::metrics(day);
    record(&metrics, catalog, day);
    // alertbook publishes the budgets of contracts/metrics-budgets.yaml at every evaluation of its rules.
    let budgets = rules::budgets::budget_series(catalog);
    let mut time_ms = day.data_start_ms();
    while time_ms <= day.end_ms() {
        for (labels, value) in &budgets {
            metrics.append(labels, time_ms, *value).expect("budget appends");
        }
        time_ms += MINUTE_MS;
    }
    Stores { metrics, logs: common::logs(day, catalog) }
}

/// The catalog's recording rules over the day at each group's interval,
/// appended as alertbook's rule evaluation appends them (the
/// `uptime-kuma-probes` group writes the studio services' `probe_success`
/// from Uptime Kuma's `monitor_status`).
fn record(metrics: &tsdb::MemStore, catalog: &catalog::Catalog, day: &Day) {
    let engine = promql::Engine::default();
    let groups = catalog.rule_files.iter().flat_map(|file| &file.groups);
    for group in groups.filter(|group| group.datasource == catalog::Datasource::Metrics) {
        let interval_ms = group.interval.map_or(MINUTE_MS, |interval| interval.as_millis() as i64);
        for rule in &group.rules {
            let catalog::RuleKind::Record(name) = &rule.kind else { continue };
            let result = engine
                .range_query(metrics, &rule.expr, day.data_start_ms(), day.end_ms(), interval_ms)
                .unwrap_or_else(|error| panic!("recording rule {name}: {error}"));
            let promql::Value::Matrix(series) = result.value else { panic!("recording rule {name}: not a matrix") };
            for series in series {
                let mut labels: BTreeMap<String, String> = series
                    .labels
                    .iter()
                    .filter(|label| label.name != "__name__")
                    .map(|label| (label.name.clone(), label.value.clone()))
                    .collect();
                labels
                    .extend(group.labels.iter().chain(&rule.labels).map(|(name, value)| (name.clone(), value.clone())));
                labels.insert("__name__".to_owned(), name.clone());
                let labels = tsdb::Labels::from_pairs(labels);
                for sample in &series.samples {
                    metrics.append(&labels, sample.timestamp, sample.value).expect("recorded sample appends");
                }
            }
        }
    }
}

/// How many series (or streams) with at least one point a query returns over the day.
fn series_with_data(stores: &Stores, language: Language, expr: &str, day: &Day) -> Result<usize, String> {
    match language {
        Language::PromQl => {
            let result = promql::Engine::default()
                .range_query(&stores.metrics, expr, day.start_ms(), day.end_ms(), STEP_MS)
                .map_err(|error| error.to_string())?;
            Ok(match result.value {
                promql::Value::Matrix(series) => series
                    .iter()
                    .filter(|series| {
                        series.samples.iter().any(|sample| !sample.value.is_nan()) || !series.histograms.is_empty()
                    })
                    .count(),
                promql::Value::Vector(vector) => vector.len(),
                promql::Value::Scalar(..) => 1,
                promql::Value::String(_) => 0,
            })
        }
        Language::LogQl => {
            let result = logql::Engine::default()
                .range_query(
                    stores.logs.store.as_ref(),
                    expr,
                    day.start_ms() * 1_000_000,
                    day.end_ms() * 1_000_000,
                    STEP_MS * 1_000_000,
                    1000,
                    logql::Direction::Backward,
                )
                .map_err(|error| error.to_string())?;
            Ok(match result {
                logql::QueryValue::Streams(streams) => {
                    streams.iter().filter(|stream| !stream.entries.is_empty()).count()
                }
                logql::QueryValue::Matrix(series) => series.iter().filter(|series| !series.points.is_empty()).count(),
                logql::QueryValue::Vector(vector) => vector.len(),
                logql::QueryValue::Scalar(_) => 1,
            })
        }
    }
}

/// The simulated day in the stores, loaded once for both tests.
struct Fixture {
    day: Day,
    stores: Stores,
    intervals: Intervals,
    dashboards: Vec<grafana::Dashboard>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let catalog = catalog::load(&common::catalog_dir()).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
        let day = Day::busflow();
        let stores = load(&day, &catalog);
        let intervals = Intervals {
            interval_seconds: (STEP_MS / 1000) as u64,
            scrape_interval_seconds: SCRAPE_INTERVAL_SECONDS,
            range_seconds: ((day.end_ms() - day.start_ms()) / 1000) as u64,
        };
        let dashboards = grafana::dashboards(env!("CARGO_MANIFEST_DIR"));
        for (place, _) in NO_DATA_IN_THE_DEMO.iter().chain(NO_DATA_FOR_THE_PICKED_VALUES) {
            assert!(
                grafana::queries(&dashboards).iter().any(|query| query.place == *place),
                "{place} is listed but is no dashboard query"
            );
        }
        Fixture { day, stores, intervals, dashboards }
    })
}

/// The query as Grafana sends it with the variables `values`; a
/// `label_values` variable's selector becomes the query of its label's values.
fn grafana_expr(fixture: &Fixture, query: &Query, values: &[(String, String)]) -> String {
    let expr = grafana::substitute(&query.expr, &fixture.intervals, values);
    match &query.purpose {
        Purpose::Panel { .. } => expr,
        Purpose::LabelValues { label, .. } => format!("count by ({label}) ({expr})"),
    }
}

/// Runs `queries` with the variables `values`: each must return data, or be
/// listed in [`NO_DATA_IN_THE_DEMO`] and return none. Returns how many answered.
/// `with` tells the messages which variable values were picked.
fn expect_data(
    fixture: &Fixture,
    queries: &[Query],
    values: &[(String, String)],
    with: &str,
    without_data: &[(&str, &str)],
    problems: &mut Vec<String>,
) -> usize {
    let mut answered = 0;
    for query in queries {
        let expr = grafana_expr(fixture, query, values);
        let exempt = without_data.iter().find(|(place, _)| *place == query.place);
        match (series_with_data(&fixture.stores, query.language, &expr, &fixture.day), exempt) {
            (Err(error), _) => problems.push(format!("{}{with}: {error}\n  {expr}", query.place)),
            (Ok(0), None) => problems.push(format!("{}{with}: no data over the day\n  {expr}", query.place)),
            (Ok(count), Some((_, reason))) if count > 0 => problems.push(format!(
                "{}{with}: listed as without data in the demo ({reason}) but returns {count} series",
                query.place
            )),
            (Ok(_), exempt) => answered += usize::from(exempt.is_none()),
        }
    }
    answered
}

#[test]
fn every_dashboard_query_returns_data_over_the_simulated_day() {
    let fixture = fixture();
    let mut problems = Vec::new();
    let mut answered = 0;
    for dashboard in &fixture.dashboards {
        let queries = grafana::queries(std::slice::from_ref(dashboard));
        let answered_here =
            expect_data(fixture, &queries, &grafana::default_values(dashboard), "", NO_DATA_IN_THE_DEMO, &mut problems);
        if answered_here == 0 {
            problems.push(format!("{} ({}) shows no data at all", dashboard.title(), dashboard.file));
        }
        answered += answered_here;
    }
    assert!(answered >= 50, "only {answered} queries answered");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn queries_filtered_to_one_value_of_a_variable_return_data() {
    // As a user picks one tenant_id, probe, service, …: each "All" variable set
    // to the first value its label_values query lists, in the order Grafana
    // refreshes chained variables (probe's query reads $probe_group).
    let fixture = fixture();
    let mut problems = Vec::new();
    let mut filtered = 0;
    for dashboard in &fixture.dashboards {
        let queries = grafana::queries(std::slice::from_ref(dashboard));
        let mut values = grafana::default_values(dashboard);
        let mut chosen = Vec::new();
        for query in &queries {
            let Purpose::LabelValues { variable, label } = &query.purpose else { continue };
            let is_all =
                dashboard.variables().iter().any(|v| v["name"] == variable.as_str() && v["includeAll"] == true);
            if !is_all {
                continue;
            }
            let expr = grafana_expr(fixture, query, &values);
            let result = promql::Engine::default()
                .range_query(&fixture.stores.metrics, &expr, fixture.day.start_ms(), fixture.day.end_ms(), STEP_MS)
                .unwrap_or_else(|error| panic!("{}: {error}", query.place));
            let promql::Value::Matrix(series) = result.value else { panic!("{}: not a matrix", query.place) };
            let mut listed: Vec<String> =
                series.iter().filter_map(|series| series.labels.get(label)).map(str::to_owned).collect();
            listed.sort();
            let Some(first) = listed.first() else {
                problems.push(format!("{}: lists no value", query.place));
                continue;
            };
            for (name, value) in &mut values {
                if name == variable {
                    *value = grafana::regex_escape(first);
                }
            }
            chosen.push((variable.clone(), first.clone()));
        }
        let uses_chosen = |query: &&Query| {
            matches!(query.purpose, Purpose::Panel { .. })
                && chosen.iter().any(|(name, _)| {
                    query.expr.contains(&format!("${name}")) || query.expr.contains(&format!("${{{name}}}"))
                })
        };
        let affected: Vec<Query> = queries.iter().filter(uses_chosen).cloned().collect();
        filtered += affected.len();
        let picked: Vec<String> = chosen.iter().map(|(name, value)| format!("{name}={value}")).collect();
        let without_data: Vec<(&str, &str)> =
            NO_DATA_IN_THE_DEMO.iter().chain(NO_DATA_FOR_THE_PICKED_VALUES).copied().collect();
        let with = format!(" (with {})", picked.join(", "));
        expect_data(fixture, &affected, &values, &with, &without_data, &mut problems);
    }
    assert!(filtered >= 15, "only {filtered} queries read a variable");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
