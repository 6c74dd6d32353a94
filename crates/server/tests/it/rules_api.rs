//! `/api/v1/rules` and `/api/v1/alerts` in Prometheus's JSON.

use std::sync::Arc;

use axum::http::StatusCode;

use super::{get, state_with};

fn labels(pairs: &[(&str, &str)]) -> tsdb::Labels {
    tsdb::Labels::from_pairs(pairs.iter().copied())
}

#[tokio::test]
async fn rules_and_alerts_render_like_prometheus() {
    let store = Arc::new(tsdb::MemStore::new());
    let state = state_with(store.clone());
    // The catalog's rules over a store where every TLS certificate is about to expire.
    let now_ms = 1_767_225_600_000;
    store
        .append(
            &labels(&[("__name__", "traefik_tls_certs_not_after"), ("cn", "studio.busflow.app")]),
            now_ms,
            1_767_312_000.0,
        )
        .expect("append");
    let datasource = rules::EmbeddedDatasource::new(store.clone(), promql::Engine::default());
    let manager =
        Arc::new(rules::Manager::new(&state.catalog().rule_files, rules::ManagerOptions::embedded(datasource)));
    for index in 0..manager.group_count() {
        manager.evaluate_group(index, now_ms);
    }
    state.set_rules(manager);

    let (status, content_type, body) = get(state.clone(), "/api/v1/rules").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    let json: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
    assert_eq!(json["status"], "success");
    let groups = json["data"]["groups"].as_array().expect("groups");
    let tls = groups.iter().find(|group| group["name"] == "busflow-tls").expect("busflow-tls group");
    assert_eq!(tls["interval"], 300.0);
    assert_eq!(tls["lastEvaluation"], "2026-01-01T00:00:00Z");
    let rule = &tls["rules"][0];
    assert_eq!(rule["name"], "TlsCertExpiringSoon");
    assert_eq!(rule["type"], "alerting");
    assert_eq!(rule["state"], "firing");
    assert_eq!(rule["health"], "ok");
    assert_eq!(rule["lastError"], "");
    assert_eq!(rule["duration"], 0.0);
    assert_eq!(rule["keepFiringFor"], 0.0);
    assert_eq!(rule["labels"]["severity"], "page");
    assert_eq!(rule["annotations"]["runbook_id"], "A9");
    assert!(rule["evaluationTime"].is_number() && rule["query"].as_str().is_some_and(|query| query.contains("time()")));
    let alert = &rule["alerts"][0];
    assert_eq!(alert["labels"]["cn"], "studio.busflow.app");
    assert_eq!(alert["labels"]["alertname"], "TlsCertExpiringSoon");
    assert_eq!(alert["state"], "firing");
    assert_eq!(alert["activeAt"], "2026-01-01T00:00:00Z");
    assert_eq!(alert["value"], "8.64e+04");
    assert_eq!(alert["annotations"]["summary"], "certificate studio.busflow.app expires in 1d 0h 0m 0s");
    let rule_alert_labels: std::collections::BTreeMap<String, String> =
        serde_json::from_value(alert["labels"].clone()).expect("labels");
    assert_eq!(alert["fingerprint"], notify::fingerprint(&rule_alert_labels), "the rules API's alerts carry it too");
    // Groups whose datasource is not configured are listed with an error naming it.
    let rule_error = |alertname: &str| {
        groups
            .iter()
            .flat_map(|group| group["rules"].as_array().into_iter().flatten())
            .find(|rule| rule["name"] == alertname)
            .and_then(|rule| rule["lastError"].as_str().map(str::to_owned))
    };
    assert_eq!(rule_error("PgCronJobFailed").as_deref(), Some("no sql datasource configured"), "{body}");
    assert_eq!(rule_error("PostgresExporterDsnGateOpen").as_deref(), Some("no docker datasource configured"), "{body}");

    let (status, _, body) = get(state.clone(), "/api/v1/rules?type=record").await;
    assert_eq!(status, StatusCode::OK);
    // The only recording rules of the catalog turn Uptime Kuma's monitor_status into probe_success.
    let recording: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let recording_groups: Vec<&str> = recording["data"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|group| group["name"].as_str().expect("name"))
        .collect();
    assert_eq!(recording_groups, ["uptime-kuma-probes"], "{body}");
    // Prometheus's filters: by rule name, group and file; alerts left out on request.
    let names = |body: &str| -> Vec<String> {
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
        json["data"]["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .flat_map(|group| group["rules"].as_array().expect("rules").iter())
            .map(|rule| rule["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let (_, _, body) =
        get(state.clone(), "/api/v1/rules?rule_name[]=TlsCertExpiringSoon&rule_name[]=HighApiErrorRate").await;
    assert_eq!(names(&body), ["HighApiErrorRate", "TlsCertExpiringSoon"], "{body}");
    let (_, _, body) = get(state.clone(), "/api/v1/rules?rule_group[]=busflow-tls").await;
    assert_eq!(names(&body), ["TlsCertExpiringSoon"], "{body}");
    let (_, _, body) = get(state.clone(), "/api/v1/rules?file[]=no-such-file.yaml").await;
    assert!(names(&body).is_empty(), "{body}");
    let (_, _, body) = get(state.clone(), "/api/v1/rules?rule_group[]=busflow-tls&exclude_alerts=true").await;
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(json["data"]["groups"][0]["rules"][0]["state"], "firing", "{body}");
    assert!(json["data"]["groups"][0]["rules"][0].get("alerts").is_none(), "{body}");
    let (status, _, body) = get(state.clone(), "/api/v1/rules?exclude_alerts=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _, body) = get(state.clone(), "/api/v1/rules?type=nope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("\"errorType\":\"bad_data\""), "{body}");

    let (status, _, body) = get(state, "/api/v1/alerts").await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
    let alerts = json["data"]["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 1, "{body}");
    assert_eq!(alerts[0]["labels"]["alertname"], "TlsCertExpiringSoon");
    assert_eq!(alerts[0]["value"], "8.64e+04");
    // alertbook's addition: the fingerprint of the alert's labels, the key of /api/v1/triage.
    let labels: std::collections::BTreeMap<String, String> =
        serde_json::from_value(alerts[0]["labels"].clone()).expect("labels");
    assert_eq!(alerts[0]["fingerprint"], triage::fingerprint(&labels));
    // The same key as the alert pages, the journal and the triage runs use (one function).
    assert_eq!(alerts[0]["fingerprint"], notify::fingerprint(&labels));
    assert_eq!(labels, rule_alert_labels, "one alert, listed by both APIs with one fingerprint");
}
