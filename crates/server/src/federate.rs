//! `GET /federate`: Prometheus's federation endpoint. For every series any
//! `match[]` selector picks, the latest sample within the lookback delta
//! before now (stale markers and series without a recent sample left out),
//! in the text exposition format 0.0.4: families grouped by metric name,
//! each under a `# TYPE <name> untyped` line, samples with their millisecond
//! timestamps, the configured external labels added where a series lacks
//! them, as Prometheus's federation handler does. Without `match[]` the
//! answer is empty, as in Prometheus. Native histogram samples are left out
//! (the text format cannot carry them); the protobuf format is not offered.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tsdb::{Labels, Queryable};

use crate::AppState;
use crate::params::Params;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/federate", get(federate))
}

fn plain(status: StatusCode, message: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message + "\n").into_response()
}

async fn federate(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Response {
    let params = match Params::parse(raw, &HeaderMap::new(), &Bytes::new()) {
        Ok(params) => params,
        Err(message) => return plain(StatusCode::BAD_REQUEST, message),
    };
    let mut groups = Vec::new();
    for selector in params.all("match[]") {
        match promql::selector_matchers(selector) {
            Ok(parsed) => groups.extend(parsed),
            Err(error) => return plain(StatusCode::BAD_REQUEST, error.to_string()),
        }
    }
    let now = state.now_ms();
    let start = now - state.engine.options().lookback_delta_ms;
    let external = state.status().external_labels.clone();
    let work = tokio::task::spawn_blocking(move || {
        let mut latest: Vec<(Labels, i64, f64)> = Vec::new();
        for group in &groups {
            for series in state.store.select(group, start, now)? {
                let Some(sample) = series.samples.last() else { continue };
                if tsdb::is_stale_nan(sample.value) {
                    continue;
                }
                latest.push((with_external_labels(series.labels, &external), sample.timestamp, sample.value));
            }
        }
        Ok::<_, tsdb::Error>(render(latest))
    });
    match work.await {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Ok(Err(error)) => plain(StatusCode::BAD_REQUEST, error.to_string()),
        Err(error) => {
            tracing::error!(error = %error, "federation task failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "federation failed".to_owned())
        }
    }
}

fn with_external_labels(labels: Labels, external: &Labels) -> Labels {
    if external.is_empty() {
        return labels;
    }
    let mut builder = labels.to_builder();
    for label in external {
        if builder.get(&label.name).is_none() {
            builder.set(label.name.clone(), label.value.clone());
        }
    }
    builder.build()
}

/// The text exposition of `samples`, families grouped, each series once.
fn render(mut samples: Vec<(Labels, i64, f64)>) -> String {
    samples.sort_by(|left, right| {
        left.0.metric_name().unwrap_or("").cmp(right.0.metric_name().unwrap_or("")).then_with(|| left.0.cmp(&right.0))
    });
    samples.dedup_by(|right, left| right.0 == left.0);
    let mut out = String::new();
    let mut family: Option<String> = None;
    for (labels, timestamp, value) in &samples {
        let name = labels.metric_name().unwrap_or("");
        if family.as_deref() != Some(name) {
            out.push_str("# TYPE ");
            out.push_str(name);
            out.push_str(" untyped\n");
            family = Some(name.to_owned());
        }
        out.push_str(name);
        let mut first = true;
        for label in labels.iter().filter(|label| label.name != tsdb::METRIC_NAME) {
            out.push(if first { '{' } else { ',' });
            first = false;
            out.push_str(&label.name);
            out.push_str("=\"");
            for character in label.value.chars() {
                match character {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    other => out.push(other),
                }
            }
            out.push('"');
        }
        if !first {
            out.push('}');
        }
        out.push(' ');
        out.push_str(&go_float(*value));
        out.push(' ');
        out.push_str(&timestamp.to_string());
        out.push('\n');
    }
    out
}

/// A float as the Go exposition writer prints it (`strconv.FormatFloat(v, 'g', -1, 64)`):
/// the shortest digits, in exponent form (`2.391512e+06`) when the decimal
/// exponent is below -4 or at least 6.
fn go_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf".to_owned() } else { "-Inf".to_owned() };
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0".to_owned() } else { "0".to_owned() };
    }
    let scientific = format!("{value:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else { return scientific };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    format!("{value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go_prints_them() {
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(2391512.0), "2.391512e+06");
        assert_eq!(go_float(1.60009694e9), "1.60009694e+09");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(f64::NAN), "NaN");
        assert_eq!(go_float(f64::NEG_INFINITY), "-Inf");
    }
}
