//! The web UI's pages over the same state the JSON API reads: alerts from a
//! real rule evaluation, hostile label values rendered inert, filters
//! validated, runbook and alert pages linked both ways.

use std::sync::Arc;

use axum::http::StatusCode;

use super::{get, state_with};

fn labels(pairs: &[(&str, &str)]) -> tsdb::Labels {
    tsdb::Labels::from_pairs(pairs.iter().copied())
}

const NOW_MS: i64 = 1_767_225_600_000;
const HOSTILE: &str = "<script>alert(\"pwned\")</script>";

/// The Busflow catalog's rules over a store where a certificate of Traefik and
/// one probed certificate (whose target is a script) are about to expire.
fn state_with_alerts() -> Arc<server::AppState> {
    let store = Arc::new(tsdb::MemStore::new());
    let state = state_with(store.clone());
    let expiry = (NOW_MS / 1000 + 86_400) as f64;
    store
        .append(&labels(&[("__name__", "traefik_tls_certs_not_after"), ("cn", "studio.busflow.app")]), NOW_MS, expiry)
        .expect("append");
    store
        .append(
            &labels(&[
                ("__name__", "probe_ssl_earliest_cert_expiry"),
                ("probe_group", "tls-certificates"),
                ("probe", "hostile"),
                ("target", HOSTILE),
            ]),
            NOW_MS,
            expiry,
        )
        .expect("append");
    let datasource = rules::EmbeddedDatasource::new(store.clone(), promql::Engine::default());
    let manager =
        Arc::new(rules::Manager::new(&state.catalog().rule_files, rules::ManagerOptions::embedded(datasource)));
    for index in 0..manager.group_count() {
        manager.evaluate_group(index, NOW_MS);
    }
    state.set_rules(manager);
    state
}

fn fingerprint_of(pairs: &[(&str, &str)]) -> String {
    notify::fingerprint(&pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect())
}

#[tokio::test]
async fn alerts_page_lists_firing_alerts_with_hostile_labels_inert() {
    let state = state_with_alerts();
    let (status, content_type, body) = get(state.clone(), "/alerts").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(body.starts_with("<!doctype html>"), "{body}");
    assert!(body.contains("<title>Alerts (2 firing) · "), "{body}");
    assert!(body.contains("<strong>2</strong> firing, <strong>0</strong> pending"), "{body}");
    // The script is text, never markup: the only <script> element is alertbook's own.
    assert_eq!(body.matches("<script").count(), 1, "{body}");
    assert!(body.contains("&#60;script&#62;alert(&#34;pwned&#34;)&#60;/script&#62;"), "{body}");
    assert!(!body.contains("<script>alert"), "{body}");
    // Each row links its alert page (by the fingerprint of /api/v1/alerts) and its runbook entry.
    let studio = fingerprint_of(&[
        ("alertname", "TlsCertExpiringSoon"),
        ("cn", "studio.busflow.app"),
        ("route", "ops-oncall"),
        ("severity", "page"),
    ]);
    assert!(body.contains(&format!("href=\"/alerts/{studio}\">TlsCertExpiringSoon</a>")), "{body}");
    assert!(body.contains("<a href=\"/runbook/A9\">A9</a>"), "{body}");
    assert!(body.contains("certificate studio.busflow.app expires in 1d 0h 0m 0s"), "{body}");
    let (_, _, api) = get(state.clone(), "/api/v1/alerts").await;
    assert!(api.contains(&format!("\"fingerprint\":\"{studio}\"")), "{api}");
    // Accessible structure: a main landmark, labelled form fields, column headers.
    for needle in [
        "<main id=\"main\"",
        "<label for=\"filter-runbook\">",
        "<label for=\"filter-labels\">",
        "<th scope=\"col\">State</th>",
        "aria-current=\"page\">Alerts</a>",
        "data-refresh=\"30\"",
    ] {
        assert!(body.contains(needle), "{needle} missing: {body}");
    }
}

#[tokio::test]
async fn alerts_page_filters_and_refuses_bad_filters() {
    let state = state_with_alerts();
    let (status, _, body) = get(state.clone(), "/alerts?labels=cn%3D~%22studio.*%22&runbook=A9&refresh=0").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("<strong>1</strong> firing"), "{body}");
    assert!(body.contains("(filtered from 2 active)"), "{body}");
    assert!(!body.contains("hostile"), "{body}");
    assert!(body.contains("<option value=\"A9\" selected>A9 TlsCertExpiringSoon</option>"), "{body}");
    assert!(body.contains("data-refresh=\"0\""), "{body}");
    let (_, _, body) = get(state.clone(), "/alerts?runbook=A6").await;
    assert!(body.contains("<strong>0</strong> firing") && body.contains("No active alert matches these filters."));
    let (_, _, body) = get(state.clone(), "/alerts?route=ops-oncall&state=firing").await;
    assert!(body.contains("<strong>2</strong> firing"), "{body}");

    // A hostile filter value is refused, shown back as text, and lists nothing.
    let (status, _, body) =
        get(state.clone(), "/alerts?labels=%3Cscript%3Ealert(1)%3C%2Fscript%3E&route=%22%3E%3Cscript%3E").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body.matches("<script").count(), 1, "{body}");
    assert!(body.contains("Some filters were refused"), "{body}");
    assert!(body.contains("<code>labels</code>: bad matcher format: &#60;script&#62;"), "{body}");
    assert!(body.contains("value=\"&#60;script&#62;alert(1)&#60;/script&#62;\""), "{body}");
    assert!(body.contains("<code>route</code>: &#34;\\&#34;&#62;&#60;script&#62;&#34; is not a route"), "{body}");
    assert!(!body.contains("\"><script>"), "{body}");
    assert!(!body.contains("<table class=\"alerts\">"), "{body}");
    let (status, _, _) = get(state, "/alerts?refresh=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn static_files_and_security_headers() {
    let state = state_with_alerts();
    let response = {
        use tower::ServiceExt;
        server::router(state.clone())
            .oneshot(axum::http::Request::get("/alerts").body(axum::body::Body::empty()).expect("request"))
            .await
            .expect("response")
    };
    let policy = response.headers()["content-security-policy"].to_str().expect("policy");
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    let (status, content_type, body) = get(state.clone(), "/static/ui.css").await;
    assert_eq!((status, content_type.as_str()), (StatusCode::OK, "text/css; charset=utf-8"));
    assert!(body.contains("@media (max-width: 48rem)"));
    let (status, content_type, body) = get(state, "/static/ui.js").await;
    assert_eq!((status, content_type.as_str()), (StatusCode::OK, "text/javascript; charset=utf-8"));
    assert!(body.contains("data-refresh"));
}

#[tokio::test]
async fn runbook_entry_pages_link_the_live_alert_pages() {
    let state = state_with_alerts();
    let (status, _, body) = get(state.clone(), "/runbook/A9").await;
    assert_eq!(status, StatusCode::OK);
    let studio = fingerprint_of(&[
        ("alertname", "TlsCertExpiringSoon"),
        ("cn", "studio.busflow.app"),
        ("route", "ops-oncall"),
        ("severity", "page"),
    ]);
    assert!(
        body.contains(&format!("<a href=\"/alerts/{studio}\">cn=&quot;studio.busflow.app&quot;</a> (firing)")),
        "{body}"
    );
    assert!(body.contains("<a href=\"/alerts?runbook=A9\">All active alerts of A9</a>"), "{body}");
    assert_eq!(body.matches("<script").count(), 0, "{body}");
    let (_, _, body) = get(state, "/runbook/A6").await;
    assert!(body.contains("None of this entry's alerts is active."), "{body}");
}

#[tokio::test]
async fn alert_pages_by_fingerprint() {
    let state = state_with_alerts();
    let hostile = fingerprint_of(&[
        ("alertname", "TlsCertExpiringSoon"),
        ("probe", "hostile"),
        ("route", "ops-oncall"),
        ("severity", "page"),
        ("target", HOSTILE),
    ]);
    let (status, _, body) = get(state.clone(), &format!("/alerts/{hostile}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.matches("<script").count(), 1, "{body}");
    assert!(body.contains("<h1>TlsCertExpiringSoon <span class=\"state state-firing\">firing</span></h1>"), "{body}");
    assert!(body.contains("<a href=\"/runbook/A9\">The full runbook entry A9 (TlsCertExpiringSoon)</a>"), "{body}");
    // Without a triage runner the entry's steps are listed, none run.
    assert!(body.contains("This alert has not been triaged yet"), "{body}");
    assert!(body.contains("<span class=\"step-status\">not run</span>"), "{body}");
    let (status, _, body) = get(state.clone(), "/alerts/0000000000000000").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _, body) = get(state, "/alerts/%3Cscript%3E").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("&#34;&#60;script&#62;&#34; is not an alert fingerprint"), "{body}");
    assert_eq!(body.matches("<script").count(), 1, "{body}");
}

#[tokio::test]
async fn health_page_shows_rules_and_datasources_from_the_metrics() {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    let state = state_with_alerts();
    // What sources::health registers: one gauge and one counter per datasource.
    let up = Family::<Vec<(String, String)>, Gauge>::default();
    let errors = Family::<Vec<(String, String)>, Counter>::default();
    state.metrics.register(|registry| {
        registry.register("alertbook_datasource_up", "up", up.clone());
        registry.register("alertbook_datasource_errors", "errors", errors.clone());
    });
    let sql = vec![("datasource".to_owned(), "sql".to_owned()), ("type".to_owned(), "postgres".to_owned())];
    let docker = vec![("datasource".to_owned(), "docker".to_owned()), ("type".to_owned(), "docker".to_owned())];
    up.get_or_create(&sql).set(0);
    errors.get_or_create(&sql).inc_by(3);
    up.get_or_create(&docker).set(1);
    let (status, _, body) = get(state, "/health").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("<strong>1</strong> of 2 datasources down"), "{body}");
    assert!(body.contains("<td data-label=\"Datasource\">sql</td>\n<td data-label=\"Type\">postgres</td>\n<td data-label=\"State\"><span class=\"state state-down\">down</span></td>\n<td data-label=\"Errors\" class=\"number\">3</td>"), "{body}");
    assert!(body.contains("<td data-label=\"Datasource\">docker</td>\n<td data-label=\"Type\">docker</td>\n<td data-label=\"State\"><span class=\"state state-up\">up</span></td>"), "{body}");
    // Rules: evaluated ones with their health, SQL ones naming the missing datasource.
    assert!(body.contains("<td data-label=\"Rule\">TlsCertExpiringSoon <span class=\"muted\">alerting</span></td>\n<td data-label=\"Health\"><span class=\"state state-ok\">ok</span></td>"), "{body}");
    assert!(body.contains("<code>no sql datasource configured</code>"), "{body}");
    assert!(body.contains("aria-current=\"page\">Health</a>"), "{body}");
}
