//! `Manager::replace`: a reload keeps the state of the rules that remain
//! (same group, name and labels), resolves the alerts of removed rules, and
//! the scheduler moves to the new groups.

use super::*;

const TWO_RULES: &str = r#"
groups:
  - name: g
    interval: 1m
    rules:
      - alert: Down
        expr: up == 0
        for: 2m
        labels:
          severity: page
        annotations:
          summary: "down"
      - alert: Gone
        expr: up == 0
        labels:
          severity: page
"#;

/// `Down` with another threshold and annotation (same name and labels), `Gone` removed.
const CHANGED: &str = r#"
groups:
  - name: g
    interval: 1m
    rules:
      - alert: Down
        expr: up < 0.5
        for: 2m
        labels:
          severity: page
        annotations:
          summary: "down again"
"#;

#[test]
fn a_kept_rule_keeps_its_alerts_and_a_removed_rule_resolves() {
    let setup = setup(TWO_RULES);
    let manager = manager(&setup);
    for minute in 0..=3 {
        up(&setup.store, minute * MINUTE, 0.0);
        manager.evaluate_group(0, minute * MINUTE);
    }
    let before = alerts(&manager);
    assert_eq!(before.len(), 2);
    assert!(before.iter().all(|alert| alert.state == rules::AlertState::Firing), "{before:?}");

    let changed = rule_file(setup._directory.path(), CHANGED);
    let replaced = manager.replace(&changed, Vec::new(), 3 * MINUTE + 30_000);
    assert_eq!((replaced.kept_rules, replaced.kept_alerts, replaced.removed_rules), (1, 1, 1));
    assert_eq!(replaced.notifications.len(), 1, "the removed rule's firing alert is sent resolved");
    let resolved = &replaced.notifications[0];
    assert_eq!(resolved.labels.get("alertname").map(String::as_str), Some("Gone"));
    assert_eq!(resolved.ends_at_ms, Some(3 * MINUTE + 30_000));

    let kept = alerts(&manager);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].state, rules::AlertState::Firing);
    assert_eq!(kept[0].active_at_ms, 0, "the active-since time survives the reload");

    up(&setup.store, 4 * MINUTE, 0.0);
    let (notifications, errors) = manager.evaluate_group(0, 4 * MINUTE);
    assert!(errors.is_empty(), "{errors:?}");
    let after = alerts(&manager);
    assert_eq!(after[0].active_at_ms, 0);
    assert_eq!(after[0].annotations.get("summary").map(String::as_str), Some("down again"));
    assert!(notifications.iter().all(|sent| sent.labels.get("alertname").map(String::as_str) == Some("Down")));
    let statuses = manager.statuses();
    assert_eq!(statuses[0].rules.len(), 1);
    assert_eq!(statuses[0].rules[0].query, "up < 0.5");
}

#[test]
fn changed_labels_make_new_rules() {
    let setup = setup(TWO_RULES);
    let manager = manager(&setup);
    for minute in 0..=3 {
        up(&setup.store, minute * MINUTE, 0.0);
        manager.evaluate_group(0, minute * MINUTE);
    }
    let relabeled = rule_file(setup._directory.path(), &TWO_RULES.replace("severity: page", "severity: ticket"));
    let replaced = manager.replace(&relabeled, Vec::new(), 4 * MINUTE);
    assert_eq!((replaced.kept_rules, replaced.removed_rules), (0, 2));
    assert_eq!(replaced.notifications.len(), 2);
    assert!(alerts(&manager).is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_scheduler_evaluates_the_new_groups_after_a_reload() {
    let setup = setup(TWO_RULES);
    let manager = Arc::new(manager(&setup));
    let now = 1_000 * MINUTE;
    for minute in 0..=10 {
        up(&setup.store, now + minute * MINUTE, 0.0);
    }
    let clock = Arc::new(rules::TokioClock::starting_at(now));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let scheduler = tokio::spawn(rules::scheduler::run(manager.clone(), clock, Arc::new(rules::NoNotifier), stopped));
    tokio::time::sleep(std::time::Duration::from_secs(150)).await;
    let before = alerts(&manager);
    assert_eq!(before.len(), 2);
    let active_since =
        before.iter().find(|alert| alert.labels.get("alertname") == Some("Down")).expect("Down").active_at_ms;
    let changed = rule_file(setup._directory.path(), CHANGED);
    manager.replace(&changed, Vec::new(), now + 150_000);
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    let statuses = manager.statuses();
    assert_eq!(statuses[0].rules.len(), 1);
    let evaluated = statuses[0].last_evaluation_ms.expect("evaluated");
    assert!(evaluated > now + 150_000, "the new group was evaluated after the reload: {evaluated}");
    assert_eq!(alerts(&manager)[0].active_at_ms, active_since);
    let _ = stop.send(true);
    scheduler.await.expect("scheduler stops");
}
