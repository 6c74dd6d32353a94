//! The three alert expressions alertbook ships, on data that fires them and data that does not.

use super::*;

const PII: &str = r#"sum(count_over_time({job="faro"} | pii_match_rule != "" | pii_excluded != "true" [24h])) > 5"#;
const SSO: &str = r#"sum(count_over_time({service_name="busflow_grafana"} | logfmt | logger="authn.service" | client="auth.client.jwt" | msg="Failed to authenticate request" [5m])) > 0"#;
const TRAEFIK: &str = r#"sum by (ServiceName, ServiceAddr) (count_over_time({job="traefik", log_type="access"} | json | DownstreamStatus = 504 | ServiceAddr != "" | label_format backend_ip=`{{ regexReplaceAll ":[0-9]+$" .ServiceAddr "" }}` | backend_ip != ip("10.0.1.0/24") [5m])) > 0"#;

#[test]
fn the_shipped_alerts_parse_as_metric_queries() {
    for query in [PII, SSO, TRAEFIK] {
        let expr = logql::parse(query).unwrap_or_else(|error| panic!("{query}: {error}"));
        assert!(expr.is_metric(), "{query}");
        assert_eq!(logql::selectors(&expr).len(), 1);
    }
}

#[test]
fn pii_alert_counts_metadata_matches_that_are_not_excluded() {
    let mut source = MemSource::default();
    let stream = [("job", "faro"), ("app", "web")];
    for index in 0..6 {
        source.push_with_metadata(&stream, at(index * 60), "form submitted", &[("pii_match_rule", "email")]);
    }
    source.push_with_metadata(&stream, at(400), "excluded", &[("pii_match_rule", "email"), ("pii_excluded", "true")]);
    source.push(&stream, at(500), "clean");
    source.push_with_metadata(&[("job", "other")], at(500), "other job", &[("pii_match_rule", "email")]);
    assert_eq!(vector(&source, PII, at(3600)), vec![(Labels::empty(), 6.0)]);
    // Out of the 24h window: nothing fires.
    assert!(vector(&source, PII, at(25 * 3600)).is_empty());
    // Five matches are not enough.
    let mut fewer = MemSource::default();
    for index in 0..5 {
        fewer.push_with_metadata(&stream, at(index), "x", &[("pii_match_rule", "phone")]);
    }
    assert!(vector(&fewer, PII, at(60)).is_empty());
}

#[test]
fn sso_alert_counts_unverified_jwt_claims() {
    let mut source = MemSource::default();
    let stream = [("service_name", "busflow_grafana")];
    let jwt = r#"logger=authn.service t=2026-01-01T00:02:30.441180031Z level=warn msg="Failed to authenticate request" client=auth.client.jwt error="[auth.jwt.invalid] failed to verify JWT""#;
    source.push(&stream, at(10), jwt);
    source.push(&stream, at(20), jwt);
    source.push(&stream, at(30), r#"logger=authn.service level=warn msg="Failed to authenticate request" client=auth.client.session error="user token not found""#);
    source.push(
        &stream,
        at(40),
        r#"logger=context userId=0 orgId=0 uname= level=info msg="Request Completed" status=401"#,
    );
    source.push(&stream, at(50), "not logfmt at all \"");
    assert_eq!(vector(&source, SSO, at(120)), vec![(Labels::empty(), 2.0)]);
    assert!(vector(&source, SSO, at(1000)).is_empty());
}

#[test]
fn traefik_alert_finds_504s_outside_the_internal_backends() {
    let mut source = MemSource::default();
    let stream = [("job", "traefik"), ("log_type", "access")];
    let line = |status: u16, backend: &str| {
        format!(
            r#"{{"ClientHost":"203.0.113.9","DownstreamStatus":{status},"ServiceName":"api@docker","ServiceAddr":"{backend}","RequestMethod":"GET","Duration":1200000}}"#
        )
    };
    source.push(&stream, at(10), &line(504, "10.0.2.7:8080"));
    source.push(&stream, at(20), &line(504, "10.0.2.7:8080"));
    source.push(&stream, at(30), &line(504, "10.0.1.5:8080"));
    source.push(&stream, at(40), &line(200, "10.0.2.7:8080"));
    source.push(&stream, at(50), &line(504, "10.0.1.12"));
    source.push(&[("job", "traefik"), ("log_type", "error")], at(60), &line(504, "10.9.9.9:1"));
    let result = vector(&source, TRAEFIK, at(240));
    assert_eq!(result, vec![(labels(&[("ServiceAddr", "10.0.2.7:8080"), ("ServiceName", "api@docker")]), 2.0)]);
    let range = Engine::default()
        .range_query(&source, TRAEFIK, at(0), at(600), 60 * SECOND, 100, Direction::Backward)
        .expect("range query");
    let QueryValue::Matrix(matrix) = range else { panic!("matrix") };
    assert_eq!(matrix.len(), 1);
    let times: Vec<i64> = matrix[0].points.iter().map(|point| (point.0 - T0) / SECOND).collect();
    assert_eq!(times, vec![60, 120, 180, 240, 300]);
}

#[test]
fn traefik_alert_fails_like_loki_on_lines_that_are_not_json() {
    let mut source = MemSource::default();
    source.push(&[("job", "traefik"), ("log_type", "access")], at(10), "plain text line");
    let counted = r#"sum(count_over_time({job="traefik", log_type="access"} | json [1h]))"#;
    let error = query_error(&source, counted);
    assert!(matches!(error, logql::Error::Pipeline { ref error, .. } if error == "JSONParserErr"), "{error}");
    assert!(error.is_bad_request());
    let filtered = counted.replace("| json", r#"| json | __error__="""#);
    assert!(vector(&source, &filtered, at(60)).is_empty());
    // The alert's string filter `ServiceAddr != ""` drops the errored line, as
    // Loki's label filters do (numeric filters let errored lines through).
    assert!(vector(&source, &TRAEFIK.replace("[5m]", "[1h]"), at(60)).is_empty());
}
