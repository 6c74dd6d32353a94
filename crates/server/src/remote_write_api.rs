//! `POST /api/v1/write`: Prometheus remote-write 1.0 (protobuf, snappy block
//! compressed). Status codes follow Prometheus's receiver: 204 when every
//! sample was taken, 400 for bodies that cannot be decoded and for samples the
//! sender must not retry (out of order, duplicate, invalid, over the series
//! limit), 5xx only for faults worth retrying. Answers are plain text. The
//! request's metric metadata and exemplars go to the server's metadata and
//! exemplar stores (refused exemplars do not fail the request). With a write
//! token set, a request without it (or a responder's API token) gets 401
//! before its body is read ([`crate::WriteAuthorized`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::{AppState, WriteAuthorized};

/// The largest compressed body accepted.
const MAX_BODY_BYTES: usize = 32 << 20;

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Decode(#[from] ingest::remote_write::DecodeError),
    #[error(transparent)]
    Durable(#[from] ingest::durable::Error),
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/write", post(write)).layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

fn text(status: StatusCode, message: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message + "\n").into_response()
}

/// What a request carried and what the store did, for the metrics.
#[derive(Default)]
struct Observed {
    received: usize,
    outcome: Option<ingest::durable::AppendOutcome>,
}

async fn write(State(state): State<Arc<AppState>>, _: WriteAuthorized, headers: HeaderMap, body: Bytes) -> Response {
    let mut observed = Observed::default();
    let response = write_samples(state.clone(), headers, body, &mut observed).await;
    state.metrics.observe_remote_write(response.status(), observed.received, observed.outcome.as_ref());
    response
}

async fn write_samples(state: Arc<AppState>, headers: HeaderMap, body: Bytes, observed: &mut Observed) -> Response {
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING).and_then(|value| value.to_str().ok())
        && !encoding.eq_ignore_ascii_case("snappy")
    {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content encoding {encoding:?}: remote write bodies are snappy block compressed"),
        );
    }
    let work = tokio::task::spawn_blocking(move || {
        let raw = ingest::remote_write::decompress(&body)?;
        let request = ingest::remote_write::RequestView::decode(&raw)?;
        let received = request.received();
        let max_series = state.max_series.load(Ordering::Relaxed);
        let store = state.store.clone();
        let admit = |_: &tsdb::Labels| max_series == 0 || store.series_count() < max_series;
        let outcome = ingest::remote_write::append(&request, &state.durable, &admit)?;
        ingest::remote_write::record_extras(&request, &state.metadata, &state.exemplars);
        Ok::<_, WriteError>((outcome, received))
    });
    let outcome = match work.await {
        Ok(Ok((outcome, received))) => {
            observed.received = received;
            observed.outcome = Some(outcome.clone());
            outcome
        }
        Ok(Err(WriteError::Decode(error))) => {
            return text(StatusCode::BAD_REQUEST, format!("cannot decode remote write request: {error}"));
        }
        Ok(Err(WriteError::Durable(error))) => {
            tracing::error!(error = %error, "remote write could not be made durable");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot write the samples to the write-ahead log".into());
        }
        Err(error) => {
            tracing::error!(error = %error, "remote write task failed");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error while appending samples".into());
        }
    };
    if outcome.rejected() > 0 {
        tracing::warn!(
            appended = outcome.samples_appended,
            out_of_order = outcome.out_of_order,
            duplicates = outcome.duplicates,
            invalid = outcome.invalid_series,
            over_series_limit = outcome.series_limited,
            histograms = outcome.histograms_refused,
            "remote write samples rejected"
        );
        let first = outcome.first_error.clone().unwrap_or_default();
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "{} samples rejected ({} out of order, {} duplicate, {} invalid, {} over the series limit, {} native histograms); {} appended; first: {first}",
                outcome.rejected(),
                outcome.out_of_order,
                outcome.duplicates,
                outcome.invalid_series,
                outcome.series_limited,
                outcome.histograms_refused,
                outcome.samples_appended
            ),
        );
    }
    StatusCode::NO_CONTENT.into_response()
}
