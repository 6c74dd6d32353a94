use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use triage::runner::{Runner, RunnerOptions, TriageNotifier};

const NOW: i64 = 1_796_126_400_000;

#[derive(Default)]
struct Collect(Mutex<Vec<rules::Notification>>);

impl rules::Notifier for Collect {
    fn send(&self, alerts: Vec<rules::Notification>) {
        self.0.lock().expect("lock").extend(alerts);
    }
}

#[derive(Debug)]
struct FixedClock(i64);

impl rules::Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

fn notification(alertname: &str, resolved: bool) -> rules::Notification {
    rules::Notification {
        labels: BTreeMap::from([("alertname".to_owned(), alertname.to_owned()), ("severity".into(), "page".into())]),
        annotations: BTreeMap::from([("runbook_id".to_owned(), "A3".to_owned())]),
        starts_at_ms: NOW - 60_000,
        ends_at_ms: resolved.then_some(NOW),
        valid_until_ms: NOW + 240_000,
        generator_url: "http://alertbook/graph".into(),
    }
}

fn runner(state_file: Option<PathBuf>) -> Arc<Runner> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow");
    let catalog = Arc::new(catalog::load(&root).expect("catalog"));
    let mut sources = triage::Sources::new(Duration::from_secs(2));
    sources.fixtures.insert("matches_by_rule".into(), json!({"email": 4, "iban": 2}));
    let options = RunnerOptions { state_file, notify_wait: Duration::from_secs(60), ..RunnerOptions::default() };
    Runner::new(catalog, sources, options, Arc::new(FixedClock(NOW)), Arc::new(|_| None)).expect("runner")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_notification_waits_for_triage_and_escalations_go_out_and_resolve_with_the_alert() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let state_file = directory.path().join("triage/runs.json");
    let runner = runner(Some(state_file.clone()));
    let delivered = Arc::new(Collect::default());
    runner.set_escalation_notifier(delivered.clone());
    let notifier =
        TriageNotifier { runner: runner.clone(), inner: delivered.clone(), handle: tokio::runtime::Handle::current() };
    rules::Notifier::send(&notifier, vec![notification("PiiLeakDetected", false)]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while delivered.0.lock().expect("lock").len() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = delivered.0.lock().expect("lock").clone();
    // The escalation (sent as soon as the run found it due), then the alert with
    // its triage annotations, followed by the escalation re-sent beside it.
    assert_eq!(sent.len(), 3, "{sent:#?}");
    let escalation = &sent[0];
    assert_eq!(escalation.labels["route"], "security-oncall");
    assert_eq!(escalation.labels["triage_step"], "6");
    assert_eq!(escalation.labels["alertname"], "PiiLeakDetected");
    assert!(escalation.annotations["summary"].starts_with("Matches across several rules"));
    assert_eq!(
        escalation.annotations["escalation_reason"],
        "`distinct(split(keys(matches_by_rule), \",\")) > 1` holds"
    );
    let alert = &sent[1];
    assert_eq!(alert.annotations["triage_path"], "several-rules");
    assert_eq!(alert.annotations["triage_summary"], "matches_by_rule = {email: 4, iban: 2}");
    assert_eq!(sent[2].labels, escalation.labels);

    // Persisted: a new runner over the same file knows the run and the sent escalation.
    let restored = runner_from(&state_file);
    let fingerprint = triage::fingerprint(&notification("PiiLeakDetected", false).labels);
    let record = restored.runs(&fingerprint).expect("record restored");
    assert_eq!(record.runs[0].path, vec!["several-rules"]);
    assert!(record.sent_escalations.contains(&6));

    // Resolving the alert resolves its escalation too.
    delivered.0.lock().expect("lock").clear();
    rules::Notifier::send(&notifier, vec![notification("PiiLeakDetected", true)]);
    let sent = delivered.0.lock().expect("lock").clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].labels["route"], "security-oncall");
    assert_eq!(sent[1].ends_at_ms, Some(NOW));
    assert_eq!(runner.rerun_due(), 0, "a resolved alert is not re-run");
}

fn runner_from(state_file: &std::path::Path) -> Arc<Runner> {
    runner(Some(state_file.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_without_a_runbook_entry_pass_through_untouched() {
    let runner = runner(None);
    let delivered = Arc::new(Collect::default());
    let notifier =
        TriageNotifier { runner: runner.clone(), inner: delivered.clone(), handle: tokio::runtime::Handle::current() };
    rules::Notifier::send(&notifier, vec![notification("SomethingElse", false)]);
    let sent = delivered.0.lock().expect("lock").clone();
    assert_eq!(sent, vec![notification("SomethingElse", false)]);
    assert!(runner.recent(10).is_empty());
}
