//! The routing core against Alertmanager's semantics: `alertmanager.yml`
//! loading and its located errors, and the engine's groups, timers, dedup,
//! inhibition, silences and time intervals, on an injected clock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::Alert;
use notify::routing::config::{self, IntegrationSettings};
use notify::routing::{
    GroupBy, Notification, NotificationLog, Router, RoutingConfig, Silence, SilenceMatcher, Silences,
};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/alertmanager").join(name)
}

fn config_text(text: &str) -> RoutingConfig {
    let source = catalog::SourceFile { path: PathBuf::from("alertmanager.yml"), text: text.to_owned() };
    match config::parse(&source) {
        Ok(config) => config,
        Err(errors) => panic!("config refused:\n{errors}"),
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
}

fn alert(pairs: &[(&str, &str)], starts_at_ms: i64) -> Alert {
    Alert {
        labels: labels(pairs),
        annotations: BTreeMap::new(),
        starts_at_ms,
        ends_at_ms: None,
        generator_url: String::new(),
    }
}

/// Firing until a given time, as Prometheus sends alerts (no resolve timeout involved).
fn firing_until(pairs: &[(&str, &str)], starts_at_ms: i64, until_ms: i64) -> Alert {
    Alert { ends_at_ms: Some(until_ms), ..alert(pairs, starts_at_ms) }
}

fn resolved(pairs: &[(&str, &str)], starts_at_ms: i64, ends_at_ms: i64) -> Alert {
    Alert { ends_at_ms: Some(ends_at_ms), ..alert(pairs, starts_at_ms) }
}

/// (receiver, group key, alertnames with `!` for resolved ones)
fn summary(notifications: &[Notification]) -> Vec<(String, String, Vec<String>)> {
    notifications
        .iter()
        .map(|notification| {
            let alerts = notification
                .alerts
                .iter()
                .map(|alert| {
                    let name = alert.labels.values().cloned().collect::<Vec<_>>().join(",");
                    if alert.ends_at_ms.is_some() { format!("!{name}") } else { name }
                })
                .collect();
            (notification.receiver.clone(), notification.group_key.clone(), alerts)
        })
        .collect()
}

const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;
/// 2026-12-02T10:00:00Z, a Wednesday.
const T0: i64 = 1_796_205_600_000;

#[test]
fn busflow_config_loads_with_inheritance_and_defaults() {
    let config = config::load(&testdata("busflow.yml")).unwrap_or_else(|errors| panic!("{errors}"));
    let tree = &config.route;
    assert_eq!(tree.len(), 5);
    let root = tree.root();
    assert_eq!(root.key, "{}");
    assert_eq!(root.group_by, GroupBy::Labels(vec!["alertname".into(), "tenant_id".into()]));
    let security = tree.get(1);
    assert_eq!(security.key, r#"{}/{route="security-oncall"}"#);
    assert_eq!(security.group_by, GroupBy::All);
    assert_eq!(security.group_wait.as_secs(), 0);
    assert_eq!(security.group_interval.as_secs(), 300, "inherited");
    let ops_page = tree.get(3);
    assert_eq!(ops_page.key, r#"{}/{route="infra-oncall",severity="page"}"#);
    assert!(ops_page.mute_time_intervals.is_empty(), "time intervals are not inherited");
    let csm = tree.get(4);
    assert_eq!(csm.key, r#"{}/{route=~"tenant-csm|feature-lead"}"#);
    assert_eq!(csm.repeat_interval.as_secs(), 24 * 3600);

    // continue: infra pages reach infra-oncall and ops-oncall.
    let infra_page = labels(&[("alertname", "LatencySloBreach"), ("route", "infra-oncall"), ("severity", "page")]);
    assert_eq!(tree.matching(&infra_page), [2, 3]);
    assert_eq!(tree.matching(&labels(&[("route", "feature-lead")])), [4]);
    assert_eq!(tree.matching(&labels(&[("route", "nobody")])), [0]);

    let ops = config.receiver("ops-oncall").expect("ops receiver");
    assert_eq!(ops.integrations.len(), 2);
    let IntegrationSettings::Email(email) = &ops.integrations[1].settings else { panic!("email") };
    assert_eq!(email.smarthost, "127.0.0.1:2525", "from global");
    assert_eq!(email.from, "alertbook@busflow.example");
    assert_eq!(email.require_tls, Some(false));
    assert!(!ops.integrations[1].send_resolved, "email's default");
    let security = config.receiver("security-oncall").expect("security");
    assert!(security.integrations[0].send_resolved, "pagerduty's default");
    let IntegrationSettings::Pagerduty(pagerduty) = &security.integrations[0].settings else { panic!("pagerduty") };
    assert_eq!(pagerduty.url.as_deref(), Some("https://events.pagerduty.com/v2/enqueue"));
    let IntegrationSettings::Slack(slack) = &config.receiver("infra-oncall").expect("infra").integrations[0].settings
    else {
        panic!("slack")
    };
    assert_eq!(slack.api_url_file.as_deref(), Some("secrets/slack-url"), "from global");
    assert_eq!(config.inhibit_rules.len(), 2);
    assert_eq!(config.time_intervals.len(), 2);
    assert!(config.templates[0].ends_with("templates/*.tmpl"));
}

#[test]
fn every_error_is_reported_at_its_place() {
    let errors = config::load(&testdata("bad.yml")).expect_err("refused").to_string();
    for expected in [
        "bad.yml:3:14: error: cannot have wildcard group_by (`...`) and other other labels at the same time",
        "bad.yml:5:17: error: undefined receiver \"nobody\" used in route",
        "bad.yml:6:18: error: matcher value contains unescaped double quote: \"page",
        "bad.yml:7:23: error: group_interval cannot be zero",
        "bad.yml:8:29: error: undefined time interval \"weekend\" used in route",
        "bad.yml:12:9: error: scheme required for webhook url",
    ] {
        assert!(errors.contains(expected), "missing {expected:?} in:\n{errors}");
    }
    let errors = config::load(&testdata("unknown-field.yml")).expect_err("refused").to_string();
    assert!(errors.contains("unknown-field.yml:3:3: error: unknown field `group_bye`"), "{errors}");
    let errors = config::load(&testdata("opsgenie.yml")).expect_err("refused").to_string();
    assert!(errors.contains("alertbook does not deliver to opsgenie_configs"), "{errors}");
    let source = catalog::SourceFile { path: PathBuf::from("empty.yml"), text: "\n".into() };
    assert!(config::parse(&source).expect_err("refused").to_string().contains("no route provided in config"));
    let root_matchers = "route:\n  receiver: a\n  matchers: [x=y]\n  continue: true\nreceivers: [{name: a}]\n";
    let source = catalog::SourceFile { path: PathBuf::from("root.yml"), text: root_matchers.into() };
    let errors = config::parse(&source).expect_err("refused").to_string();
    assert!(errors.contains("root.yml:4:13: error: cannot have continue in root route"), "{errors}");
    assert!(errors.contains("root route must not have any matchers"), "{errors}");
}

const SIMPLE: &str = r#"
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
  routes:
    - matchers: [team="db"]
      receiver: db
      group_by: ['...']
      continue: true
    - matchers: [team=~"db|web"]
      receiver: web
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [cluster]
time_intervals:
  - name: nights
    time_intervals:
      - times: [{start_time: '22:00', end_time: '24:00'}]
receivers:
  - name: ops
    webhook_configs: [{url: 'http://127.0.0.1:1/ops'}]
  - name: db
    webhook_configs: [{url: 'http://127.0.0.1:1/db', send_resolved: false}]
  - name: web
    webhook_configs: [{url: 'http://127.0.0.1:1/web'}]
"#;

fn router(text: &str) -> Router {
    Router::new(Arc::new(config_text(text)), Silences::default(), NotificationLog::default(), T0)
}

#[test]
fn group_wait_interval_and_repeat() {
    let mut router = router(SIMPLE);
    router.put([firing_until(&[("alertname", "A1")], T0, T0 + 10 * MINUTE)], T0);
    assert!(router.tick(T0 + 29 * SECOND).is_empty(), "group_wait");
    let first = router.tick(T0 + 30 * SECOND);
    assert_eq!(summary(&first), [("ops".into(), r#"{}:{alertname="A1"}"#.into(), vec!["A1".into()])]);
    // A second alert of the group waits for group_interval.
    router.put([firing_until(&[("alertname", "A1"), ("instance", "b")], T0 + MINUTE, T0 + 10 * MINUTE)], T0 + MINUTE);
    assert!(router.tick(T0 + 5 * MINUTE).is_empty());
    let second = router.tick(T0 + 30 * SECOND + 5 * MINUTE);
    assert_eq!(second[0].alerts.len(), 2);
    // Nothing new: silent until repeat_interval has passed.
    let mut at = T0 + 30 * SECOND + 5 * MINUTE;
    let mut repeats = Vec::new();
    while at < T0 + 2 * 60 * MINUTE {
        at += 5 * MINUTE;
        // Keep the alerts firing, as Prometheus re-sends them.
        router.put(
            [
                firing_until(&[("alertname", "A1")], T0, at + 4 * MINUTE),
                firing_until(&[("alertname", "A1"), ("instance", "b")], T0 + MINUTE, at + 4 * MINUTE),
            ],
            at - SECOND,
        );
        if !router.tick(at).is_empty() {
            repeats.push(at);
        }
    }
    assert_eq!(repeats, [T0 + 30 * SECOND + 70 * MINUTE], "first flush more than 1h after the last notification");
}

#[test]
fn old_alerts_flush_a_new_group_at_once_and_resolution_is_notified() {
    let mut router = router(SIMPLE);
    router.put([alert(&[("alertname", "A2")], T0 - 10 * MINUTE)], T0);
    assert_eq!(router.tick(T0).len(), 1, "older than group_wait: no wait");
    router.put([resolved(&[("alertname", "A2")], T0 - 10 * MINUTE, T0 + MINUTE)], T0 + MINUTE);
    let resolved_notification = router.tick(T0 + 5 * MINUTE);
    assert_eq!(summary(&resolved_notification)[0].2, ["!A2"]);
    assert_eq!(resolved_notification[0].alerts[0].ends_at_ms, Some(T0 + MINUTE));
    assert!(router.tick(T0 + 10 * MINUTE).is_empty(), "resolved alerts leave the group");
}

#[test]
fn continue_group_by_all_and_send_resolved_per_integration() {
    let mut router = router(SIMPLE);
    let db = [("alertname", "PgDown"), ("team", "db"), ("instance", "a")];
    router.put([alert(&db, T0)], T0);
    let sent = summary(&router.tick(T0 + 30 * SECOND));
    assert_eq!(
        sent,
        [
            (
                "db".into(),
                r#"{}/{team="db"}:{alertname="PgDown", instance="a", team="db"}"#.into(),
                vec!["PgDown,a,db".into()]
            ),
            ("web".into(), r#"{}/{team=~"db|web"}:{alertname="PgDown"}"#.into(), vec!["PgDown,a,db".into()]),
        ]
    );
    router.put([resolved(&db, T0, T0 + MINUTE)], T0 + MINUTE);
    // db has send_resolved: false: its log is cleared but nothing is sent; web is told.
    let sent = summary(&router.tick(T0 + 30 * SECOND + 5 * MINUTE));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, "web");
    assert_eq!(sent[0].2, ["!PgDown,a,db"]);
    let db_entry = router.notification_log().iter().find(|entry| entry.receiver == "db").expect("db logged");
    assert!(db_entry.firing.is_empty() && db_entry.resolved.len() == 1);
}

#[test]
fn inhibition_needs_equal_labels_and_a_firing_source() {
    let mut router = router(SIMPLE);
    let warning = [("alertname", "W"), ("severity", "warning"), ("cluster", "eu")];
    let other_cluster = [("alertname", "W"), ("severity", "warning"), ("cluster", "us")];
    let critical = [("alertname", "C"), ("severity", "critical"), ("cluster", "eu")];
    router.put([alert(&warning, T0), alert(&other_cluster, T0), alert(&critical, T0)], T0);
    let sent = router.tick(T0 + 30 * SECOND);
    let warnings = sent.iter().find(|n| n.group_key.ends_with(r#"{alertname="W"}"#)).expect("W group");
    assert_eq!(warnings.alerts.len(), 1);
    assert_eq!(warnings.alerts[0].labels["cluster"], "us");
    assert!(router.status(&labels(&warning), T0 + 30 * SECOND).inhibited);
    // The source resolves: the warning is notified at the next flush.
    router.put([resolved(&critical, T0, T0 + MINUTE)], T0 + MINUTE);
    let sent = router.tick(T0 + 30 * SECOND + 5 * MINUTE);
    let warnings = sent.iter().find(|n| n.group_key.ends_with(r#"{alertname="W"}"#)).expect("W group");
    assert_eq!(warnings.alerts.len(), 2);
}

#[test]
fn silences_and_mute_intervals_suppress_without_logging() {
    let text = SIMPLE.replace(
        "    - matchers: [team=~\"db|web\"]\n      receiver: web\n",
        "    - matchers: [team=~\"db|web\"]\n      receiver: web\n      mute_time_intervals: [nights]\n",
    );
    let mut router = router(&text);
    let (id, _) = router
        .silences_mut()
        .set(
            Silence {
                id: String::new(),
                matchers: vec![SilenceMatcher {
                    name: "alertname".into(),
                    value: "A.*".into(),
                    is_regex: true,
                    is_equal: true,
                }],
                starts_at_ms: T0,
                ends_at_ms: T0 + 10 * MINUTE,
                updated_at_ms: 0,
                created_by: "jana".into(),
                comment: "deploy".into(),
            },
            T0,
        )
        .expect("silence");
    router.put([alert(&[("alertname", "A3")], T0)], T0);
    assert!(router.tick(T0 + 30 * SECOND).is_empty());
    assert_eq!(router.status(&labels(&[("alertname", "A3")]), T0 + MINUTE).silenced_by, [id]);
    assert!(router.notification_log().is_empty(), "a silenced flush logs nothing");
    // Once the silence ends, the next flush notifies.
    router.put([alert(&[("alertname", "A3")], T0)], T0 + 9 * MINUTE);
    assert_eq!(router.tick(T0 + 30 * SECOND + 10 * MINUTE).len(), 1);

    // 22:00-24:00 UTC mutes the web route; the db route (no interval) still notifies.
    let night = T0 + 12 * 60 * MINUTE + 30 * MINUTE;
    router.put([alert(&[("alertname", "N"), ("team", "db")], night)], night);
    let sent = summary(&router.tick(night + 30 * SECOND));
    assert_eq!(sent.iter().map(|(receiver, ..)| receiver.as_str()).collect::<Vec<_>>(), ["db"]);
}

#[test]
fn a_restored_log_prevents_a_second_notification() {
    let mut router = router(SIMPLE);
    router.put([firing_until(&[("alertname", "A1")], T0, T0 + 3 * 60 * MINUTE)], T0);
    assert_eq!(router.tick(T0 + 30 * SECOND).len(), 1);
    let entries: Vec<_> = router.notification_log().iter().cloned().collect();
    // A new process with the same log: the first flush is deduplicated.
    let mut restarted = Router::new(
        Arc::new(config_text(SIMPLE)),
        Silences::default(),
        NotificationLog::from_entries(entries),
        T0 + MINUTE,
    );
    restarted.put([firing_until(&[("alertname", "A1")], T0, T0 + 3 * 60 * MINUTE)], T0 + MINUTE);
    assert!(restarted.tick(T0 + MINUTE + 30 * SECOND).is_empty());
    let mut at = T0 + MINUTE + 30 * SECOND;
    while restarted.tick(at).is_empty() {
        at += 5 * MINUTE;
    }
    assert!(
        at > T0 + 30 * SECOND + 60 * MINUTE && at <= T0 + 30 * SECOND + 66 * MINUTE + 30 * SECOND,
        "repeat at {at}"
    );
}

#[test]
fn a_log_entry_lost_in_a_crash_is_recovered_from_the_outbox() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let config = Arc::new(config_text(SIMPLE));
    let open = |now: i64| {
        let outbox = notify::Outbox::open(&directory.path().join("outbox")).expect("outbox");
        let dispatcher =
            notify::Dispatcher::new(outbox, Vec::new(), notify::DispatcherOptions::default()).expect("dispatcher");
        let service =
            notify::RoutingService::open(config.clone(), &directory.path().join("notify"), dispatcher.clone(), now)
                .expect("service");
        (service, dispatcher)
    };
    let (service, dispatcher) = open(T0);
    service.put(vec![firing_until(&[("alertname", "A1")], T0 - 10 * MINUTE, T0 + 60 * MINUTE)], T0);
    assert_eq!(service.tick(T0).expect("tick"), 1);
    assert_eq!(dispatcher.outbox().len(), 1);
    let history = service.history(10);
    assert_eq!((history[0].receiver.as_str(), history[0].state.as_str()), ("ops", "pending"));
    service.snapshot_alerts().expect("snapshot");
    drop((service, dispatcher));
    // The crash came after the delivery was written, before the log was.
    std::fs::write(directory.path().join("notify/nflog.jsonl"), "").expect("truncate the log");

    let (service, dispatcher) = open(T0 + MINUTE);
    assert_eq!(service.log_entries().len(), 1, "the entry came back from the outbox");
    assert_eq!(service.tick(T0 + MINUTE).expect("tick"), 0, "the restored alert is not notified again");
    assert_eq!(dispatcher.outbox().len(), 1, "the first delivery is still pending, released");
    assert_eq!(dispatcher.outbox().due(T0 + MINUTE).len(), 1);
}
