//! Prometheus remote-write 1.0: the `WriteRequest` protobuf, snappy block
//! compressed, decoded and appended to the store.
//!
//! The message types are declared by hand with `prost` derives (no protoc);
//! senders (tests, benchmarks) encode with them. The receiver decodes into a
//! [`RequestView`] instead, whose strings borrow from the decompressed body
//! (see `view`). Native histograms (field 4 of `TimeSeries`) are decoded only
//! far enough to be counted and refused: the store holds floats. Appending
//! applies every valid sample and counts the rest the way Prometheus's
//! receiver does (out-of-order, duplicate, invalid series); the caller maps
//! the outcome to a status code. Nothing here does I/O.

mod view;

use prost::Message;
use tsdb::Labels;

pub use view::{ExemplarView, LabelView, MetadataView, RequestView, SeriesView};

use crate::durable::{AppendOutcome, BatchSeries, DurableStore};

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    /// Native histograms, kept opaque: counted and refused.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub histograms: Vec<Vec<u8>>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Exemplar`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// The largest decompressed request accepted (Prometheus sends a few MiB).
pub const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// Why a remote-write body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("snappy: {0}")]
    Snappy(String),
    #[error("decompressed body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("protobuf: {0}")]
    Protobuf(String),
}

/// Decompresses a snappy block-format body, refusing one that would exceed
/// [`MAX_DECOMPRESSED_BYTES`] before allocating for it.
pub fn decompress(body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let size = snap::raw::decompress_len(body).map_err(|error| DecodeError::Snappy(error.to_string()))?;
    if size > MAX_DECOMPRESSED_BYTES {
        return Err(DecodeError::TooLarge { size, limit: MAX_DECOMPRESSED_BYTES });
    }
    let mut raw = vec![0; size];
    let written =
        snap::raw::Decoder::new().decompress(body, &mut raw).map_err(|error| DecodeError::Snappy(error.to_string()))?;
    raw.truncate(written);
    Ok(raw)
}

/// Decodes a snappy-compressed (block format) `WriteRequest` into owned
/// values with `prost` (tools and tests; the receiver reads a [`RequestView`]).
pub fn decode(body: &[u8]) -> Result<WriteRequest, DecodeError> {
    let raw = decompress(body)?;
    WriteRequest::decode(raw.as_slice()).map_err(|error| DecodeError::Protobuf(error.to_string()))
}

/// Encodes a `WriteRequest` as a sender does (for tests and benchmarks).
pub fn encode(request: &WriteRequest) -> Vec<u8> {
    let raw = request.encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&raw).unwrap_or_default()
}

/// Checks a series' labels as Prometheus's receiver does and leaves in
/// `pairs` its label set: sorted by name, without the labels whose value is
/// empty (a label set has none). A name may not repeat a name already kept.
fn series_labels<'a>(labels: &[LabelView<'a>], pairs: &mut Vec<LabelView<'a>>) -> Result<(), String> {
    pairs.clear();
    let mut has_name = false;
    let mut sorted = true;
    for &(name, value) in labels {
        if name.is_empty() {
            return Err("invalid labels: empty label name".into());
        }
        // While the names kept so far are sorted, one greater than the last is new.
        let repeated = match pairs.last() {
            None => false,
            Some(&(previous, _)) if sorted && previous < name => false,
            Some(_) => pairs.iter().any(|&(kept, _)| kept == name),
        };
        if repeated {
            return Err(format!("invalid labels: duplicate label name {name:?}"));
        }
        has_name |= name == tsdb::METRIC_NAME && !value.is_empty();
        if value.is_empty() {
            continue;
        }
        sorted &= pairs.last().is_none_or(|&(previous, _)| previous < name);
        pairs.push((name, value));
    }
    if !has_name {
        return Err("invalid labels: series without a metric name".into());
    }
    if !sorted {
        pairs.sort_unstable_by(|left, right| left.0.cmp(right.0));
    }
    Ok(())
}

/// Appends every valid sample of `request` through `store` (memory and the
/// write-ahead log). `admit` decides whether a series that does not exist yet
/// may be created (the active-series limit). Series already in the store are
/// found by the hash of the request's own label strings, without building a
/// label set; only new series allocate one. Fails only when the log does.
pub fn append(
    request: &RequestView<'_>,
    store: &DurableStore,
    admit: &dyn Fn(&Labels) -> bool,
) -> Result<AppendOutcome, crate::durable::Error> {
    let mut refused = AppendOutcome::default();
    let mut batch = Vec::with_capacity(request.series().len());
    let mut pairs = Vec::new();
    for series in request.series() {
        if series.histograms() > 0 {
            refused.histograms_refused += series.histograms();
            refused.first_error.get_or_insert_with(|| "native histograms are not supported yet".into());
        }
        if series.samples().is_empty() {
            continue;
        }
        match series_labels(series.labels(), &mut pairs) {
            Ok(()) => {
                let found = match store.store().find_series(&pairs) {
                    Some(reference) => BatchSeries::Known(reference),
                    None => BatchSeries::New(Labels::from_sorted_pairs(&pairs)),
                };
                batch.push((found, series.samples()));
            }
            Err(message) => {
                refused.invalid_series += series.samples().len();
                refused.first_error.get_or_insert(message);
            }
        }
    }
    let mut outcome = store.append_resolved(&batch, admit)?;
    outcome.invalid_series += refused.invalid_series;
    outcome.histograms_refused += refused.histograms_refused;
    if refused.first_error.is_some() {
        outcome.first_error = refused.first_error;
    }
    Ok(outcome)
}

/// What [`record_extras`] kept of a request's metadata and exemplars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtrasOutcome {
    pub metadata: usize,
    pub exemplars_stored: usize,
    pub exemplars_refused: usize,
}

/// Records the request's `metadata` in `metadata` and its series' exemplars
/// in `exemplars` (series with invalid labels are skipped, as their samples are).
pub fn record_extras(
    request: &RequestView<'_>,
    metadata: &crate::metadata::MetadataStore,
    exemplars: &crate::exemplars::ExemplarStore,
) -> ExtrasOutcome {
    let mut outcome = ExtrasOutcome::default();
    for entry in request.metadata() {
        metadata.record(
            entry.metric_family_name,
            crate::metadata::MetricMetadata {
                metric_type: crate::metadata::remote_write_type(entry.r#type),
                help: entry.help.to_owned(),
                unit: entry.unit.to_owned(),
            },
        );
        outcome.metadata += 1;
    }
    let mut pairs = Vec::new();
    for series in request.series().filter(|series| series.has_exemplars()) {
        if series_labels(series.labels(), &mut pairs).is_err() {
            continue;
        }
        let labels = Labels::from_sorted_pairs(&pairs);
        for exemplar in series.exemplars() {
            let stored = exemplars.add(
                &labels,
                crate::exemplars::Exemplar {
                    labels: Labels::from_pairs(exemplar.labels.iter().copied()),
                    value: exemplar.value,
                    timestamp: exemplar.timestamp,
                },
            );
            match stored {
                Ok(()) => outcome.exemplars_stored += 1,
                Err(_) => outcome.exemplars_refused += 1,
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tsdb::{Matcher, MemStore, Queryable};

    /// Sends `request` through the receiver's path: encoded, decompressed, viewed, appended.
    fn send(request: &WriteRequest, store: &DurableStore) -> AppendOutcome {
        let raw = decompress(&encode(request)).expect("decompresses");
        append(&RequestView::decode(&raw).expect("decodes"), store, &|_| true).expect("append")
    }

    fn series(name: &str, samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: vec![
                Label { name: "__name__".into(), value: name.into() },
                Label { name: "job".into(), value: "api".into() },
            ],
            samples: samples.iter().map(|&(timestamp, value)| Sample { value, timestamp }).collect(),
            exemplars: vec![],
            histograms: vec![],
        }
    }

    #[test]
    fn round_trip_and_append() {
        let request = WriteRequest { timeseries: vec![series("up", &[(1000, 1.0), (2000, 0.0)])], metadata: vec![] };
        let decoded = decode(&encode(&request)).expect("decodes");
        assert_eq!(decoded, request);
        let store = DurableStore::in_memory(Arc::new(MemStore::new()));
        let outcome = send(&decoded, &store);
        assert_eq!((outcome.samples_appended, outcome.rejected()), (2, 0));
        let selected = store.store().select(&[Matcher::equal("__name__", "up")], 0, 3000).expect("select");
        assert_eq!(selected[0].samples.len(), 2);
    }

    #[test]
    fn bad_bodies_are_errors() {
        assert!(matches!(decode(b"not snappy at all"), Err(DecodeError::Snappy(_)) | Err(DecodeError::Protobuf(_))));
        let garbage = snap::raw::Encoder::new().compress_vec(&[0xff, 0xff, 0xff]).expect("compress");
        assert!(matches!(decode(&garbage), Err(DecodeError::Protobuf(_))));
    }

    #[test]
    fn out_of_order_duplicates_and_invalid_series_are_counted() {
        let store = DurableStore::in_memory(Arc::new(MemStore::new()));
        send(&WriteRequest { timeseries: vec![series("up", &[(2000, 1.0)])], metadata: vec![] }, &store);
        let mut nameless = series("", &[(1000, 1.0)]);
        nameless.labels.remove(0);
        let request = WriteRequest {
            timeseries: vec![series("up", &[(1000, 1.0), (2000, 1.0), (2000, 5.0), (3000, 1.0)]), nameless],
            metadata: vec![],
        };
        let outcome = send(&request, &store);
        assert_eq!(outcome.samples_appended, 2, "{outcome:?}"); // same-value duplicate + the new one
        assert_eq!(outcome.out_of_order, 1);
        assert_eq!(outcome.duplicates, 1);
        assert_eq!(outcome.invalid_series, 1);
        assert!(outcome.first_error.is_some());
    }

    #[test]
    fn metadata_and_exemplars_are_recorded() {
        let mut with_exemplar = series("request_seconds_bucket", &[(1000, 3.0)]);
        with_exemplar.exemplars.push(Exemplar {
            labels: vec![Label { name: "trace_id".into(), value: "abc".into() }],
            value: 0.12,
            timestamp: 990,
        });
        let request = WriteRequest {
            timeseries: vec![with_exemplar],
            metadata: vec![MetricMetadata {
                r#type: 3,
                metric_family_name: "request_seconds".into(),
                help: "Request latency.".into(),
                unit: "seconds".into(),
            }],
        };
        let metadata = crate::metadata::MetadataStore::default();
        let exemplars = crate::exemplars::ExemplarStore::new(10);
        let raw = decompress(&encode(&request)).expect("decompresses");
        let outcome = record_extras(&RequestView::decode(&raw).expect("decodes"), &metadata, &exemplars);
        assert_eq!((outcome.metadata, outcome.exemplars_stored), (1, 1));
        let families = metadata.select(Some("request_seconds"), None, None);
        assert_eq!(families[0].1[0].metric_type, crate::exposition::MetricType::Histogram);
        assert_eq!(families[0].1[0].unit, "seconds");
        let found = exemplars.select(&[vec![Matcher::equal("job", "api")]], 0, 2000);
        assert_eq!(found[0].exemplars[0].labels.get("trace_id"), Some("abc"));
    }

    /// The label check as it was written first, over a label builder: the
    /// reference the borrowed check must agree with.
    fn reference_labels(labels: &[LabelView<'_>]) -> Result<Labels, String> {
        let mut builder = tsdb::LabelsBuilder::default();
        let mut has_name = false;
        for &(name, value) in labels {
            if name.is_empty() {
                return Err("invalid labels: empty label name".into());
            }
            if builder.get(name).is_some() {
                return Err(format!("invalid labels: duplicate label name {name:?}"));
            }
            has_name |= name == tsdb::METRIC_NAME && !value.is_empty();
            builder.set(name, value);
        }
        if !has_name {
            return Err("invalid labels: series without a metric name".into());
        }
        Ok(builder.build())
    }

    proptest::proptest! {
        #[test]
        fn label_checks_agree_with_the_label_builder(
            labels in proptest::collection::vec(("(__name__|a|b|c|)", "(x|y|)"), 0..6)
        ) {
            let labels: Vec<LabelView<'_>> = labels.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
            let mut pairs = Vec::new();
            let checked = series_labels(&labels, &mut pairs).map(|()| Labels::from_sorted_pairs(&pairs));
            proptest::prop_assert_eq!(checked, reference_labels(&labels));
        }
    }

    #[test]
    fn known_series_are_found_by_their_strings_in_any_label_order() {
        let store = DurableStore::in_memory(Arc::new(MemStore::new()));
        send(&WriteRequest { timeseries: vec![series("up", &[(1000, 1.0)])], metadata: vec![] }, &store);
        let mut reversed = series("up", &[(2000, 1.0)]);
        reversed.labels.reverse();
        let outcome = send(&WriteRequest { timeseries: vec![reversed], metadata: vec![] }, &store);
        assert_eq!((outcome.samples_appended, outcome.rejected()), (1, 0));
        assert_eq!(store.store().series_count(), 1);
        assert!(store.store().find_series(&[("__name__", "up"), ("job", "api")]).is_some());
        assert!(store.store().find_series(&[("__name__", "up")]).is_none());
    }

    #[test]
    fn the_series_limit_is_applied_to_new_series_only() {
        let store = DurableStore::in_memory(Arc::new(MemStore::new()));
        send(&WriteRequest { timeseries: vec![series("up", &[(1000, 1.0)])], metadata: vec![] }, &store);
        let request = WriteRequest {
            timeseries: vec![series("up", &[(2000, 1.0)]), series("down", &[(2000, 1.0)])],
            metadata: vec![],
        };
        let raw = decompress(&encode(&request)).expect("decompresses");
        let view = RequestView::decode(&raw).expect("decodes");
        let outcome = append(&view, &store, &|_| false).expect("append");
        assert_eq!((outcome.samples_appended, outcome.series_limited), (1, 1));
        assert!(outcome.first_error.expect("an error").contains("series limit reached"));
    }
}
