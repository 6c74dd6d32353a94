//! The rule engine end to end over an in-memory store: lifecycle, state
//! across restarts, the scheduler under controlled time; and against a real
//! Prometheus through the remote datasource.

mod reload;
mod remote_prometheus;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use tsdb::{Labels, MemStore};

const MINUTE: i64 = 60_000;

fn rule_file(directory: &Path, text: &str) -> Vec<catalog::RuleFile> {
    let path = directory.join("test.rules.yaml");
    std::fs::write(&path, text).expect("write rule file");
    catalog::load_rules(&[path]).unwrap_or_else(|diagnostics| panic!("{diagnostics}"))
}

fn up(store: &MemStore, time_ms: i64, value: f64) {
    store.append(&Labels::from_pairs([("__name__", "up"), ("job", "api")]), time_ms, value).expect("append");
}

struct Setup {
    store: Arc<MemStore>,
    files: Vec<catalog::RuleFile>,
    _directory: tempfile::TempDir,
    state_file: PathBuf,
}

fn setup(rules: &str) -> Setup {
    let directory = tempfile::tempdir().expect("temporary directory");
    let files = rule_file(directory.path(), rules);
    let state_file = directory.path().join("state.json");
    Setup { store: Arc::new(MemStore::new()), files, _directory: directory, state_file }
}

fn manager(setup: &Setup) -> rules::Manager {
    let datasource = rules::EmbeddedDatasource::new(setup.store.clone(), promql::Engine::default());
    let mut options = rules::ManagerOptions::embedded(datasource);
    options.state_file = Some(setup.state_file.clone());
    options.external_url = "http://alertbook:9099".into();
    options.external_labels.insert("site".into(), "eu".into());
    rules::Manager::new(&setup.files, options)
}

fn alerts(manager: &rules::Manager) -> Vec<rules::Alert> {
    manager.statuses().iter().flat_map(|group| group.rules.iter().flat_map(|rule| rule.alerts.clone())).collect()
}

const DOWN: &str = r#"
groups:
  - name: g
    interval: 1m
    rules:
      - alert: Down
        expr: up == 0
        for: 5m
        keep_firing_for: 3m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.job }} down, value {{ $value }}"
"#;

#[test]
fn alert_goes_pending_firing_kept_firing_then_resolved() {
    let setup = setup(DOWN);
    let manager = manager(&setup);
    let mut sent: Vec<(i64, rules::Notification)> = Vec::new();
    for minute in 0..=30 {
        let time_ms = minute * MINUTE;
        up(&setup.store, time_ms, if (0..10).contains(&minute) { 0.0 } else { 1.0 });
        let (notifications, errors) = manager.evaluate_group(0, time_ms);
        assert!(errors.is_empty(), "{errors:?}");
        sent.extend(notifications.into_iter().map(|notification| (minute, notification)));
        let current = alerts(&manager);
        let state = current.first().map(|alert| alert.state);
        match minute {
            0..=4 => assert_eq!(state, Some(rules::AlertState::Pending), "minute {minute}"),
            // Fires at 5m; the condition stops at 10m, keep_firing_for holds it until 13m.
            5..=12 => assert_eq!(state, Some(rules::AlertState::Firing), "minute {minute}"),
            // Resolved at 13m, kept 15 minutes for sending, then dropped.
            13..=28 => assert_eq!(state, Some(rules::AlertState::Inactive), "minute {minute}"),
            _ => assert_eq!(state, None, "minute {minute}"),
        }
    }
    let alert_sends: Vec<i64> = sent.iter().map(|(minute, _)| *minute).collect();
    // First at 5m, then after each resend delay (1m, strictly more), resolved at 13m and re-sent.
    assert_eq!(alert_sends, vec![5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27]);
    let (_, first) = &sent[0];
    assert_eq!(first.starts_at_ms, 5 * MINUTE);
    assert_eq!(first.ends_at_ms, None);
    assert_eq!(first.valid_until_ms, 5 * MINUTE + 4 * MINUTE);
    assert_eq!(first.labels.get("site").map(String::as_str), Some("eu"));
    assert_eq!(first.labels.get("severity").map(String::as_str), Some("page"));
    assert_eq!(first.annotations.get("summary").map(String::as_str), Some("api down, value 0"));
    assert_eq!(first.generator_url, "http://alertbook:9099/graph?g0.expr=up+%3D%3D+0&g0.tab=1");
    let (_, resolved) = &sent[4];
    assert_eq!(resolved.ends_at_ms, Some(13 * MINUTE));
}

#[test]
fn alerts_series_are_written_and_go_stale() {
    let setup = setup(DOWN);
    let manager = manager(&setup);
    let engine = promql::Engine::default();
    let query = |text: &str, time_ms: i64| -> Vec<(Labels, f64)> {
        use rules::Datasource;
        rules::EmbeddedDatasource::new(setup.store.clone(), engine.clone()).query(text, time_ms).expect("query")
    };
    for minute in 0..=6 {
        up(&setup.store, minute * MINUTE, 0.0);
        manager.evaluate_group(0, minute * MINUTE);
    }
    let pending = query("ALERTS{alertstate=\"pending\"}", 6 * MINUTE);
    assert!(pending.is_empty(), "the pending series went stale when the alert fired: {pending:?}");
    let firing = query("ALERTS{alertstate=\"firing\"}", 6 * MINUTE);
    assert_eq!(firing.len(), 1);
    assert_eq!(firing[0].0.get("severity"), Some("page"));
    let for_state = query("ALERTS_FOR_STATE", 6 * MINUTE);
    assert_eq!(for_state[0].1, 0.0, "ALERTS_FOR_STATE holds active_at in seconds");
}

#[test]
fn state_survives_a_restart_whatever_the_for_length() {
    let setup = setup(
        r#"
groups:
  - name: g
    rules:
      - alert: Down
        expr: up == 0
        for: 2m
        keep_firing_for: 10m
      - alert: SlowDown
        expr: vector(1)
        for: 1h
"#,
    );
    let before = manager(&setup);
    let mut sent = 0;
    for minute in 0..=3 {
        up(&setup.store, minute * MINUTE, 0.0);
        sent += before.evaluate_group(0, minute * MINUTE).0.len();
        before.persist().expect("persist");
    }
    assert_eq!(sent, 1, "Down fired once, at 2m");
    // The condition stops; keep_firing_for starts counting at 4m.
    up(&setup.store, 4 * MINUTE, 1.0);
    before.evaluate_group(0, 4 * MINUTE);
    before.persist().expect("persist");
    drop(before);

    // "Restart": a new manager from the snapshot on disk.
    let after = manager(&setup);
    let snapshot = rules::Snapshot::read(&setup.state_file).expect("snapshot");
    assert_eq!(after.restore(&snapshot), 2);
    let restored = alerts(&after);
    let down = restored.iter().find(|alert| alert.labels.get("alertname") == Some("Down")).expect("Down");
    assert_eq!(down.state, rules::AlertState::Firing);
    assert_eq!(down.fired_at_ms, Some(2 * MINUTE));
    assert_eq!(down.keep_firing_since_ms, Some(4 * MINUTE));
    let slow = restored.iter().find(|alert| alert.labels.get("alertname") == Some("SlowDown")).expect("SlowDown");
    assert_eq!(slow.state, rules::AlertState::Pending);
    assert_eq!(slow.active_at_ms, 0, "pending keeps its start");

    // Right after the restart (within the resend delay) nothing is re-sent as new.
    up(&setup.store, 5 * MINUTE, 1.0);
    let (notifications, _) = after.evaluate_group(0, 5 * MINUTE);
    assert!(notifications.is_empty(), "{notifications:?}");
    // keep_firing_for keeps its deadline: firing until 14m, resolved at 14m.
    for minute in 6..=14 {
        up(&setup.store, minute * MINUTE, 1.0);
        let (notifications, _) = after.evaluate_group(0, minute * MINUTE);
        let down = alerts(&after).into_iter().find(|alert| alert.labels.get("alertname") == Some("Down"));
        let state = down.map(|alert| alert.state);
        if minute < 14 {
            assert_eq!(state, Some(rules::AlertState::Firing), "minute {minute}");
        } else {
            assert_eq!(state, Some(rules::AlertState::Inactive), "minute {minute}");
            assert!(notifications.iter().any(|n| n.ends_at_ms == Some(14 * MINUTE) && n.starts_at_ms == 2 * MINUTE));
        }
    }
}

#[test]
fn recording_rules_limits_and_query_templates() {
    let setup = setup(
        r#"
groups:
  - name: g
    limit: 1
    labels:
      team: core
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: Many
        expr: up
        annotations:
          total: '{{ with query "sum(job:up:sum)" }}{{ . | first | value }}{{ end }}'
"#,
    );
    let manager = manager(&setup);
    up(&setup.store, 0, 3.0);
    let (_, errors) = manager.evaluate_group(0, 0);
    assert!(errors.is_empty(), "{errors:?}");
    let status = manager.statuses()[0].clone();
    assert_eq!(status.rules[0].health, rules::Health::Ok);
    let alert = &status.rules[1].alerts[0];
    assert_eq!(alert.annotations["total"], "3", "the template read the recorded series");
    assert_eq!(alert.labels.get("team"), Some("core"));
    // Two series now exceed the limit of 1.
    setup.store.append(&Labels::from_pairs([("__name__", "up"), ("job", "web")]), MINUTE, 1.0).expect("append");
    up(&setup.store, MINUTE, 3.0);
    let (_, errors) = manager.evaluate_group(0, MINUTE);
    assert_eq!(errors.len(), 2, "{errors:?}");
    let status = manager.statuses()[0].clone();
    assert_eq!(status.rules[0].health, rules::Health::Err);
    assert_eq!(status.rules[0].last_error.as_deref(), Some("exceeded limit of 1 with 2 series"));
    assert_eq!(status.rules[1].last_error.as_deref(), Some("exceeded limit of 1 with 2 alerts"));
}

#[derive(Default)]
struct Collect(Mutex<Vec<rules::Notification>>);

impl rules::Notifier for Collect {
    fn send(&self, alerts: Vec<rules::Notification>) {
        self.0.lock().extend(alerts);
    }
}

#[tokio::test(start_paused = true)]
async fn scheduler_runs_groups_on_their_interval() {
    let setup = setup(DOWN);
    // The condition holds from the start.
    for minute in 0..=20 {
        up(&setup.store, minute * MINUTE, 0.0);
    }
    let manager = Arc::new(manager(&setup));
    let clock = Arc::new(rules::TokioClock::starting_at(0));
    let notifier = Arc::new(Collect::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(rules::scheduler::run(manager.clone(), clock, notifier.clone(), stopped));
    tokio::time::sleep(std::time::Duration::from_secs(10 * 60 + 30)).await;
    stop.send(true).expect("stop");
    task.await.expect("scheduler ends");
    let status = manager.statuses()[0].clone();
    let last = status.last_evaluation_ms.expect("evaluated");
    assert!(last > 9 * MINUTE && last <= 10 * MINUTE + 30_000, "{last}");
    assert_eq!(last % MINUTE, rules::scheduler::first_evaluation_ms(0, MINUTE, "g"));
    assert_eq!(status.rules[0].alerts[0].state, rules::AlertState::Firing);
    assert!(!notifier.0.lock().is_empty());
    assert!(setup.state_file.exists(), "the state is persisted after each evaluation");
}

#[tokio::test(start_paused = true)]
async fn scheduler_at_sixty_times_the_walls_pace_runs_every_iteration() {
    let setup = setup(DOWN);
    for minute in 0..=20 {
        up(&setup.store, minute * MINUTE, 0.0);
    }
    let manager = Arc::new(manager(&setup));
    // Twenty virtual minutes in twenty wall seconds, starting at 0.
    let clock = Arc::new(rules::ScaledClock::catching_up(20 * MINUTE - 20_000, 20 * MINUTE, 60));
    assert_eq!(rules::Clock::now_ms(&*clock), 0);
    let notifier = Arc::new(Collect::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(rules::scheduler::run(manager.clone(), clock, notifier.clone(), stopped));
    // Ten wall seconds: ten virtual minutes.
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    stop.send(true).expect("stop");
    task.await.expect("scheduler ends");
    let status = manager.statuses()[0].clone();
    let last = status.last_evaluation_ms.expect("evaluated");
    let first = rules::scheduler::first_evaluation_ms(0, MINUTE, "g");
    assert_eq!(last, 9 * MINUTE + first, "the last evaluation is the tenth minute's");
    assert_eq!(status.missed_iterations, 0);
    assert_eq!(status.rules[0].alerts[0].state, rules::AlertState::Firing);
    assert!(!notifier.0.lock().is_empty());
}

#[test]
fn budgets_contract_becomes_series() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow");
    let catalog = catalog::load(&root).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let series = rules::budgets::budget_series(&catalog);
    assert_eq!(series.len(), 9);
    let probe = series.iter().find(|(labels, _)| labels.get("metric") == Some("probe_success")).expect("probe_success");
    assert_eq!(probe.0.get("__name__"), Some("alertbook_cardinality_budget"));
    assert_eq!(probe.1, 100.0);
    // The A5 unit test feeds exactly these series.
    let test = std::fs::read_to_string(root.join("tests/A5-cardinality-explosion.yaml")).expect("A5 test");
    for (labels, value) in &series {
        let line = format!(
            "alertbook_cardinality_budget{{metric=\"{}\",owner=\"{}\"}}'\n        values: '{}x10'",
            labels.get("metric").unwrap_or_default(),
            labels.get("owner").unwrap_or_default(),
            value
        );
        assert!(test.contains(&line), "missing in the A5 test: {line}");
    }
}

#[test]
fn groups_of_other_datasources_are_listed_not_evaluated() {
    // A log group without a log datasource, and an SQL group.
    let setup = setup(
        r#"
groups:
  - name: logs
    datasource: logs
    rules:
      - alert: Pii
        expr: 'sum(count_over_time({job="faro"} [5m])) > 0'
  - name: sql
    datasource: sql
    rules:
      - alert: CronFailed
        expr: 'SELECT count(*) FROM cron.job_run_details WHERE status = $$failed$$'
"#,
    );
    let manager = manager(&setup);
    let (notifications, errors) = manager.evaluate_group(0, 0);
    assert!(notifications.is_empty() && errors.is_empty());
    let status = manager.statuses()[0].clone();
    assert!(!status.evaluated_here);
    assert_eq!(status.rules[0].health, rules::Health::Unknown);
}

/// A log source of one stream with a line every minute from minute 1 to 3.
struct ThreeLines;

impl logql::LogSource for ThreeLines {
    fn select(
        &self,
        matchers: &[logql::StreamMatcher],
        start_ns: i64,
        end_ns: i64,
        visit: &mut dyn FnMut(&Labels, logql::Entry<'_>) -> std::ops::ControlFlow<()>,
    ) -> Result<(), logql::SourceError> {
        let labels = Labels::from_pairs([("job", "grafana")]);
        if !matchers.iter().all(|matcher| matcher.matches_labels(&labels)) {
            return Ok(());
        }
        for minute in 1..=3 {
            let timestamp_ns = minute * MINUTE * 1_000_000;
            if (start_ns..end_ns).contains(&timestamp_ns) {
                let entry = logql::Entry { timestamp_ns, line: "tenant_id=acme sso_claim=missing", metadata: &[] };
                if visit(&labels, entry).is_break() {
                    break;
                }
            }
        }
        Ok(())
    }
}

#[test]
fn log_groups_run_the_same_lifecycle_over_a_log_datasource() {
    let setup = setup(
        r#"
groups:
  - name: logs
    datasource: logs
    rules:
      - alert: SsoFallthrough
        expr: 'sum by (tenant_id) (count_over_time({job="grafana"} | logfmt | sso_claim="missing" [5m])) > 0'
        for: 2m
        annotations:
          summary: '{{ $value }} sessions of {{ $labels.tenant_id }}'
"#,
    );
    let datasource = rules::EmbeddedDatasource::new(setup.store.clone(), promql::Engine::default());
    let mut options = rules::ManagerOptions::embedded(datasource);
    options.logs_datasource =
        Some(Arc::new(rules::LogsDatasource::new(Arc::new(ThreeLines), logql::Engine::default())));
    let manager = rules::Manager::new(&setup.files, options);
    let state_at = |minute: i64| {
        manager.evaluate_group(0, minute * MINUTE);
        let status = manager.statuses()[0].clone();
        assert!(status.evaluated_here);
        status.rules[0]
            .alerts
            .first()
            .map(|alert| (alert.state, alert.value, alert.labels.get("tenant_id").map(str::to_owned)))
    };
    assert_eq!(state_at(0), None);
    assert_eq!(state_at(1), Some((rules::AlertState::Pending, 1.0, Some("acme".into()))));
    assert_eq!(state_at(3), Some((rules::AlertState::Firing, 3.0, Some("acme".into()))));
    // The last line leaves the 5m window at minute 8: resolved.
    assert_eq!(state_at(8).map(|(state, _, _)| state), Some(rules::AlertState::Inactive));
    // ALERTS is written to the metrics sink like any group's.
    assert!(setup.store.contains(&Labels::from_pairs([
        ("__name__", "ALERTS"),
        ("alertname", "SsoFallthrough"),
        ("alertstate", "firing"),
        ("tenant_id", "acme"),
    ])));
}
