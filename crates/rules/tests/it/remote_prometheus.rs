//! Rules evaluated against a real Prometheus through [`rules::PrometheusDatasource`]:
//! Prometheus scrapes a fixture endpoint every second, the fixture's error
//! counter starts growing, and the alert goes pending, firing, then resolved
//! once the counter stops. The Debian package `prometheus` must be installed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rules::Datasource;
use tsdb::MemStore;

const RULES: &str = r#"
groups:
  - name: fixture-errors
    interval: 1s
    rules:
      - alert: FixtureErrors
        expr: increase(busflow_fixture_errors_total{job="fixture"}[4s]) > 0
        for: 2s
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.service }} errors"
"#;

/// The fixture's state: the counter, and whether each scrape makes it grow.
#[derive(Default)]
struct Fixture {
    errors: AtomicU64,
    growing: AtomicBool,
}

fn exposition(fixture: &Fixture) -> String {
    let errors = if fixture.growing.load(Ordering::SeqCst) {
        fixture.errors.fetch_add(5, Ordering::SeqCst) + 5
    } else {
        fixture.errors.load(Ordering::SeqCst)
    };
    format!(
        "# HELP busflow_fixture_errors_total Errors of the fixture.\n# TYPE busflow_fixture_errors_total counter\nbusflow_fixture_errors_total{{service=\"api\"}} {errors}\n"
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

fn now_ms() -> i64 {
    let elapsed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970");
    i64::try_from(elapsed.as_millis()).expect("milliseconds fit")
}

/// Kills the child process when the test ends, whatever happens.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Evaluates the group every 500 ms until `condition` holds on its alerts, for at most `limit`.
fn evaluate_until(
    manager: &rules::Manager,
    limit: Duration,
    what: &str,
    condition: impl Fn(&[rules::Alert]) -> bool,
) -> Vec<rules::Alert> {
    let started = Instant::now();
    loop {
        let (_, errors) = manager.evaluate_group(0, now_ms());
        assert!(errors.is_empty(), "rule errors: {errors:?}");
        let alerts: Vec<rules::Alert> = manager.statuses()[0].rules[0].alerts.clone();
        if condition(&alerts) {
            return alerts;
        }
        assert!(started.elapsed() < limit, "{what} not reached within {limit:?}; alerts: {alerts:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn alert_follows_a_real_prometheus() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let fixture = Arc::new(Fixture::default());
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let fixture_address = listener.local_addr().expect("address");
    let served = fixture.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let served = served.clone();
            async move { exposition(&served) }
        }),
    );
    runtime.spawn(async move { axum::serve(listener, app).await });

    let directory = tempfile::tempdir().expect("temporary directory");
    let prometheus_port = free_port();
    let config = directory.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: fixture\n    static_configs:\n      - targets: ['{fixture_address}']\n"
        ),
    )
    .expect("write config");
    let _prometheus = KillOnDrop(
        std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", directory.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus is installed (Debian package prometheus)"),
    );

    let mut options = rules::PrometheusOptions::new(format!("http://127.0.0.1:{prometheus_port}"));
    options.timeout = Duration::from_secs(5);
    options.headers.push(("X-Scope-OrgID".to_owned(), "busflow".to_owned()));
    let remote = Arc::new(rules::PrometheusDatasource::new(&options).expect("client"));

    // Ready once the fixture has been scraped twice.
    let started = Instant::now();
    loop {
        let scraped = remote.query("count_over_time(up{job=\"fixture\"}[1m]) >= 2", now_ms());
        if scraped.as_ref().is_ok_and(|samples| samples.len() == 1) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "prometheus did not scrape the fixture: {scraped:?}");
        std::thread::sleep(Duration::from_millis(250));
    }

    // Prometheus's errors keep their message; a closed port is unavailable.
    let error = remote.query("sum(", now_ms()).expect_err("a parse error");
    assert!(matches!(&error, rules::DatasourceError::Query(message) if message.contains("parse error")), "{error:?}");
    let closed =
        rules::PrometheusDatasource::new(&rules::PrometheusOptions::new(format!("http://127.0.0.1:{}", free_port())))
            .expect("client");
    assert!(matches!(closed.query("up", now_ms()), Err(rules::DatasourceError::Unavailable(_))));
    let scalar = remote.query("scalar(vector(2.5))", now_ms()).expect("scalar");
    assert_eq!(scalar.len(), 1);
    assert!(scalar[0].0.is_empty() && scalar[0].1 == 2.5);

    // The group reads the remote Prometheus; its ALERTS go to the local store.
    let rule_directory = tempfile::tempdir().expect("temporary directory");
    let path = rule_directory.path().join("fixture.rules.yaml");
    std::fs::write(&path, RULES).expect("write rules");
    let files = catalog::load_rules(&[path]).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let store = Arc::new(MemStore::new());
    let mut manager_options =
        rules::ManagerOptions::embedded(rules::EmbeddedDatasource::new(store.clone(), promql::Engine::default()));
    let chosen = remote.clone();
    manager_options.resolve_datasource = Some(Arc::new(move |_file: &str, group: &catalog::RuleGroup| {
        (group.name == "fixture-errors").then(|| chosen.clone() as Arc<dyn Datasource>)
    }));
    let manager = rules::Manager::new(&files, manager_options);

    // A flat counter: no alert.
    for _ in 0..3 {
        evaluate_until(&manager, Duration::from_secs(1), "no alert", |alerts| alerts.is_empty());
        std::thread::sleep(Duration::from_millis(500));
    }

    fixture.growing.store(true, Ordering::SeqCst);
    let pending = evaluate_until(&manager, Duration::from_secs(20), "pending", |alerts| {
        alerts.iter().any(|alert| alert.state == rules::AlertState::Pending)
    });
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].labels.get("service"), Some("api"));
    assert_eq!(pending[0].labels.get("job"), Some("fixture"));
    assert_eq!(pending[0].labels.get("severity"), Some("page"));
    assert!(pending[0].value > 0.0);

    let firing = evaluate_until(&manager, Duration::from_secs(20), "firing", |alerts| {
        alerts.iter().any(|alert| alert.state == rules::AlertState::Firing)
    });
    let fired_at = firing[0].fired_at_ms.expect("fired");
    assert!(fired_at - firing[0].active_at_ms >= 2000, "fired before its `for`: {firing:?}");
    let written = rules::EmbeddedDatasource::new(store.clone(), promql::Engine::default())
        .query("ALERTS{alertname=\"FixtureErrors\",alertstate=\"firing\"}", now_ms())
        .expect("local query");
    assert_eq!(written.len(), 1, "ALERTS is written to the local store");

    fixture.growing.store(false, Ordering::SeqCst);
    evaluate_until(&manager, Duration::from_secs(30), "resolved", |alerts| {
        alerts.iter().all(|alert| alert.state == rules::AlertState::Inactive && alert.resolved_at_ms.is_some())
            && !alerts.is_empty()
    });
}
