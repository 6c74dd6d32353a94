//! What the history and the notification counters say when deliveries go
//! wrong: one receiver of several refusing, a template that does not render,
//! and history ids across a restart with an emptied outbox.

use std::collections::BTreeMap;

use notify::NotificationCount;

use crate::receivers::{Setup, busflow_alert, capture};

const T0: i64 = 1_700_000_000_000;

/// One alert reaches three receivers (`continue`): `refusing` answers 400,
/// `accepting` 200, and `broken` names a template nobody defined.
const THREE_RECEIVERS: &str = r#"
route:
  receiver: accepting
  group_by: [alertname]
  group_wait: 0s
  routes:
    - matchers: [severity="critical"]
      receiver: refusing
      continue: true
    - matchers: [severity="critical"]
      receiver: broken
      continue: true
    - matchers: [severity="critical"]
      receiver: accepting
receivers:
  - name: refusing
    webhook_configs:
      - url: $REFUSING/hook
  - name: accepting
    webhook_configs:
      - url: $ACCEPTING/hook
  - name: broken
    slack_configs:
      - api_url: $ACCEPTING/slack
        text: '{{ template "slack.nobody.text" . }}'
"#;

#[tokio::test]
async fn one_receiver_failing_leaves_the_others_delivered_and_each_is_recorded() {
    let (refusing, refused_requests) = capture(vec![400]).await;
    let (accepting, accepted_requests) = capture(vec![]).await;
    let config = THREE_RECEIVERS.replace("$REFUSING", &refusing).replace("$ACCEPTING", &accepting);
    let setup = Setup::new(&config, &[]);
    let (service, dispatcher) = setup.open(T0);
    service.put(vec![busflow_alert("HighApiErrorRate", "api-1", None)], T0);
    assert_eq!(service.tick(T0).expect("tick"), 2, "the broken template never becomes a delivery");
    let stats = dispatcher.deliver_due(T0).await.expect("deliver");
    assert_eq!((stats.delivered, stats.retried, stats.dropped), (1, 0, 1), "{stats:?}");

    assert_eq!(refused_requests.lock().len(), 1);
    let accepted: Vec<String> = accepted_requests.lock().iter().map(|request| request.path.clone()).collect();
    assert_eq!(accepted, ["/hook"], "the accepting receiver got its notification, the broken one sent nothing");

    let history = service.history(10);
    let by_receiver: BTreeMap<&str, _> = history.iter().map(|record| (record.receiver.as_str(), record)).collect();
    assert_eq!(by_receiver.len(), 3, "{history:?}");
    let refused = by_receiver["refusing"];
    assert_eq!((refused.state.as_str(), refused.integration.as_str()), ("failed", "webhook"));
    assert!(refused.error.as_deref().is_some_and(|error| error.starts_with("400")), "{refused:?}");
    let delivered = by_receiver["accepting"];
    assert_eq!((delivered.state.as_str(), delivered.error.as_deref()), ("delivered", None));
    let broken = by_receiver["broken"];
    assert_eq!((broken.state.as_str(), broken.integration.as_str(), broken.attempts), ("failed", "slack", 0));
    let error = broken.error.as_deref().unwrap_or_default();
    assert!(error.contains("slack.nobody.text"), "the template error names the template: {error}");
    assert!(broken.finished_ms.is_some());
    assert_eq!(broken.alerts.len(), 1, "the alerts it was about are kept");
    assert_eq!(broken.alerts[0].labels["alertname"], "HighApiErrorRate");
    let mut ids: Vec<u64> = history.iter().map(|record| record.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each record has its own id: {history:?}");

    let counts = service.notification_counts();
    assert_eq!(counts["webhook"], NotificationCount { total: 2, failed: 1 });
    assert_eq!(counts["slack"], NotificationCount { total: 1, failed: 1 });
    assert_eq!(counts["email"], NotificationCount::default(), "every integration is listed from the start");
    assert_eq!(counts["pagerduty"], NotificationCount::default());
}

#[tokio::test]
async fn history_ids_stay_unique_after_a_restart_with_an_empty_outbox() {
    let (accepting, _requests) = capture(vec![]).await;
    let config = format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {accepting}/hook\n"
    );
    let setup = Setup::new(&config, &[]);
    let first_ids: Vec<u64> = {
        let (service, dispatcher) = setup.open(T0);
        service.put(vec![busflow_alert("DiskFull", "db-1", None), busflow_alert("HighLoad", "db-1", None)], T0);
        assert_eq!(service.tick(T0).expect("tick"), 2);
        dispatcher.deliver_due(T0).await.expect("deliver");
        service.history(10).iter().map(|record| record.id).collect()
    };
    // Everything was delivered: the outbox is empty when alertbook starts again.
    let later = T0 + 60_000;
    let (service, dispatcher) = setup.open(later);
    service.put(vec![busflow_alert("QueueBacklog", "db-1", None)], later);
    assert_eq!(service.tick(later).expect("tick"), 1);
    dispatcher.deliver_due(later).await.expect("deliver");
    let history = service.history(10);
    assert_eq!(history.len(), 3, "the two earlier records are kept beside the new one: {history:?}");
    let newest = &history[0];
    assert_eq!(newest.alerts[0].labels["alertname"], "QueueBacklog");
    assert!(first_ids.iter().all(|id| *id < newest.id), "new id {} after {first_ids:?}", newest.id);
    let alertnames: Vec<&str> = history.iter().map(|record| record.alerts[0].labels["alertname"].as_str()).collect();
    assert!(alertnames.contains(&"DiskFull") && alertnames.contains(&"HighLoad"), "{alertnames:?}");
}
