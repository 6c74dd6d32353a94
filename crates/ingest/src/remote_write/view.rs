//! Borrowed decoding of a decompressed `WriteRequest`: the receiver's path.
//!
//! [`RequestView::decode`] reads the protobuf wire format in one pass and
//! keeps every label name and value as a `&str` into the decompressed body.
//! Series, labels, samples and exemplars go to a handful of flat arrays, so a
//! request of 2000 series costs a few allocations instead of a dozen per
//! series (what `prost`'s owned `WriteRequest` costs). It accepts and refuses
//! exactly what `prost` does for these messages: unknown fields of any wire
//! type are skipped (groups too, to a depth of 100), a known field with the
//! wrong wire type, a truncated field, a varint of more than ten bytes, a
//! field number 0 and a string that is not UTF-8 are errors, and a repeated
//! singular field keeps its last value. The property test in this module
//! holds it to `prost` on valid and mangled bodies.

use super::DecodeError;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;
/// `prost`'s default recursion limit, which bounds nested unknown groups.
const RECURSION_LIMIT: u32 = 100;

/// A label pair borrowed from the request body.
pub type LabelView<'a> = (&'a str, &'a str);

/// Where one `TimeSeries` sits in the view's flat arrays.
#[derive(Debug, Clone, Copy, Default)]
struct SeriesSpan {
    labels: (u32, u32),
    samples: (u32, u32),
    exemplars: (u32, u32),
    histograms: u32,
}

/// An exemplar: its labels sit in [`RequestView`]'s exemplar label array.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct ExemplarSpan {
    labels: (u32, u32),
    value: f64,
    timestamp: i64,
}

/// A `prometheus.MetricMetadata`, borrowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetadataView<'a> {
    pub r#type: i32,
    pub metric_family_name: &'a str,
    pub help: &'a str,
    pub unit: &'a str,
}

/// An exemplar of a [`SeriesView`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExemplarView<'v, 'a> {
    pub labels: &'v [LabelView<'a>],
    pub value: f64,
    pub timestamp: i64,
}

/// One series of a [`RequestView`], as the sender wrote it (labels unchecked).
#[derive(Debug, Clone, Copy)]
pub struct SeriesView<'v, 'a> {
    view: &'v RequestView<'a>,
    span: SeriesSpan,
}

impl<'v, 'a> SeriesView<'v, 'a> {
    pub fn labels(&self) -> &'v [LabelView<'a>] {
        &self.view.labels[self.span.labels.0 as usize..self.span.labels.1 as usize]
    }

    /// `(timestamp, value)` pairs in the order sent.
    pub fn samples(&self) -> &'v [(i64, f64)] {
        &self.view.samples[self.span.samples.0 as usize..self.span.samples.1 as usize]
    }

    pub fn exemplars(&self) -> impl Iterator<Item = ExemplarView<'v, 'a>> + use<'v, 'a> {
        let view = self.view;
        view.exemplars[self.span.exemplars.0 as usize..self.span.exemplars.1 as usize].iter().map(move |exemplar| {
            ExemplarView {
                labels: &view.exemplar_labels[exemplar.labels.0 as usize..exemplar.labels.1 as usize],
                value: exemplar.value,
                timestamp: exemplar.timestamp,
            }
        })
    }

    pub fn has_exemplars(&self) -> bool {
        self.span.exemplars.0 != self.span.exemplars.1
    }

    /// Native histograms sent for the series (refused, so only counted).
    pub fn histograms(&self) -> usize {
        self.span.histograms as usize
    }
}

/// A decoded `WriteRequest` whose strings borrow from the decompressed body.
#[derive(Debug, Default)]
pub struct RequestView<'a> {
    series: Vec<SeriesSpan>,
    labels: Vec<LabelView<'a>>,
    samples: Vec<(i64, f64)>,
    exemplars: Vec<ExemplarSpan>,
    exemplar_labels: Vec<LabelView<'a>>,
    metadata: Vec<MetadataView<'a>>,
}

impl<'a> RequestView<'a> {
    /// Decodes a decompressed `WriteRequest`.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut view = RequestView::default();
        let mut reader = Reader { bytes, position: 0 };
        while let Some((field, wire_type)) = reader.key()? {
            match field {
                1 => {
                    let message = reader.message(wire_type)?;
                    view.decode_series(message)?;
                }
                3 => {
                    let message = reader.message(wire_type)?;
                    view.metadata.push(decode_metadata(message)?);
                }
                _ => reader.skip(field, wire_type, RECURSION_LIMIT)?,
            }
        }
        Ok(view)
    }

    /// Series in the order sent.
    pub fn series(&self) -> impl ExactSizeIterator<Item = SeriesView<'_, 'a>> {
        self.series.iter().map(move |&span| SeriesView { view: self, span })
    }

    pub fn metadata(&self) -> &[MetadataView<'a>] {
        &self.metadata
    }

    /// Samples and native histograms the request carries.
    pub fn received(&self) -> usize {
        self.samples.len() + self.series.iter().map(|span| span.histograms as usize).sum::<usize>()
    }

    fn decode_series(&mut self, bytes: &'a [u8]) -> Result<(), DecodeError> {
        let mut span = SeriesSpan {
            labels: (position(&self.labels)?, 0),
            samples: (position(&self.samples)?, 0),
            exemplars: (position(&self.exemplars)?, 0),
            histograms: 0,
        };
        let mut reader = Reader { bytes, position: 0 };
        while let Some((field, wire_type)) = reader.key()? {
            match field {
                1 => {
                    let label = decode_label(reader.message(wire_type)?)?;
                    self.labels.push(label);
                }
                2 => {
                    let sample = decode_sample(reader.message(wire_type)?)?;
                    self.samples.push(sample);
                }
                3 => {
                    let exemplar = reader.message(wire_type)?;
                    self.decode_exemplar(exemplar)?;
                }
                4 => {
                    reader.message(wire_type)?;
                    span.histograms += 1;
                }
                _ => reader.skip(field, wire_type, RECURSION_LIMIT - 1)?,
            }
        }
        span.labels.1 = position(&self.labels)?;
        span.samples.1 = position(&self.samples)?;
        span.exemplars.1 = position(&self.exemplars)?;
        self.series.push(span);
        Ok(())
    }

    fn decode_exemplar(&mut self, bytes: &'a [u8]) -> Result<(), DecodeError> {
        let mut exemplar = ExemplarSpan { labels: (position(&self.exemplar_labels)?, 0), ..ExemplarSpan::default() };
        let mut reader = Reader { bytes, position: 0 };
        while let Some((field, wire_type)) = reader.key()? {
            match field {
                1 => {
                    let label = decode_label(reader.message(wire_type)?)?;
                    self.exemplar_labels.push(label);
                }
                2 => exemplar.value = reader.double(wire_type)?,
                3 => exemplar.timestamp = reader.int64(wire_type)?,
                _ => reader.skip(field, wire_type, RECURSION_LIMIT - 2)?,
            }
        }
        exemplar.labels.1 = position(&self.exemplar_labels)?;
        self.exemplars.push(exemplar);
        Ok(())
    }
}

/// An index into a flat array, as stored in the spans.
fn position<T>(items: &[T]) -> Result<u32, DecodeError> {
    u32::try_from(items.len()).map_err(|_| DecodeError::Protobuf("too many items in one request".into()))
}

#[inline]
fn decode_label(bytes: &[u8]) -> Result<LabelView<'_>, DecodeError> {
    let (mut name, mut value) = ("", "");
    let mut reader = Reader { bytes, position: 0 };
    while let Some((field, wire_type)) = reader.key()? {
        match field {
            1 => name = reader.string(wire_type)?,
            2 => value = reader.string(wire_type)?,
            _ => reader.skip(field, wire_type, RECURSION_LIMIT - 3)?,
        }
    }
    Ok((name, value))
}

fn decode_sample(bytes: &[u8]) -> Result<(i64, f64), DecodeError> {
    let (mut timestamp, mut value) = (0, 0.0);
    let mut reader = Reader { bytes, position: 0 };
    while let Some((field, wire_type)) = reader.key()? {
        match field {
            1 => value = reader.double(wire_type)?,
            2 => timestamp = reader.int64(wire_type)?,
            _ => reader.skip(field, wire_type, RECURSION_LIMIT - 2)?,
        }
    }
    Ok((timestamp, value))
}

fn decode_metadata(bytes: &[u8]) -> Result<MetadataView<'_>, DecodeError> {
    let mut metadata = MetadataView::default();
    let mut reader = Reader { bytes, position: 0 };
    while let Some((field, wire_type)) = reader.key()? {
        match field {
            1 => metadata.r#type = reader.int64(wire_type)? as i32,
            2 => metadata.metric_family_name = reader.string(wire_type)?,
            4 => metadata.help = reader.string(wire_type)?,
            5 => metadata.unit = reader.string(wire_type)?,
            _ => reader.skip(field, wire_type, RECURSION_LIMIT - 1)?,
        }
    }
    Ok(metadata)
}

#[cold]
fn error(message: impl Into<String>) -> DecodeError {
    DecodeError::Protobuf(message.into())
}

/// A cursor over one message's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for index in 0..10 {
            let Some(&byte) = self.bytes.get(self.position) else {
                return Err(error("invalid varint"));
            };
            self.position += 1;
            if index == 9 && byte > 1 {
                return Err(error("invalid varint"));
            }
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(error("invalid varint"))
    }

    /// The next field's number and wire type, or `None` at the end.
    #[inline]
    fn key(&mut self) -> Result<Option<(u32, u8)>, DecodeError> {
        if self.position >= self.bytes.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let key = u32::try_from(key).map_err(|_| error(format!("invalid key value: {key}")))?;
        let wire_type = (key & 7) as u8;
        if wire_type > FIXED32 {
            return Err(error(format!("invalid wire type value: {wire_type}")));
        }
        let field = key >> 3;
        if field == 0 {
            return Err(error("invalid tag value: 0"));
        }
        Ok(Some((field, wire_type)))
    }

    #[inline]
    fn take(&mut self, length: u64) -> Result<&'a [u8], DecodeError> {
        let rest = self.bytes.len() - self.position;
        if length > rest as u64 {
            return Err(error("buffer underflow"));
        }
        let slice = &self.bytes[self.position..self.position + length as usize];
        self.position += length as usize;
        Ok(slice)
    }

    #[inline]
    fn expect(wire_type: u8, expected: u8) -> Result<(), DecodeError> {
        if wire_type == expected {
            Ok(())
        } else {
            Err(error(format!("invalid wire type: {wire_type} (expected {expected})")))
        }
    }

    /// A length-delimited field: an embedded message, a string or bytes.
    #[inline]
    fn message(&mut self, wire_type: u8) -> Result<&'a [u8], DecodeError> {
        Self::expect(wire_type, LENGTH_DELIMITED)?;
        let length = self.varint()?;
        self.take(length)
    }

    #[inline]
    fn string(&mut self, wire_type: u8) -> Result<&'a str, DecodeError> {
        let bytes = self.message(wire_type)?;
        std::str::from_utf8(bytes).map_err(|_| error("invalid string value: data is not UTF-8 encoded"))
    }

    #[inline]
    fn double(&mut self, wire_type: u8) -> Result<f64, DecodeError> {
        Self::expect(wire_type, FIXED64)?;
        let bytes = self.take(8)?;
        Ok(f64::from_le_bytes(bytes.try_into().map_err(|_| error("buffer underflow"))?))
    }

    #[inline]
    fn int64(&mut self, wire_type: u8) -> Result<i64, DecodeError> {
        Self::expect(wire_type, VARINT)?;
        Ok(self.varint()? as i64)
    }

    /// Skips an unknown field as `prost` does, groups included.
    fn skip(&mut self, field: u32, wire_type: u8, depth: u32) -> Result<(), DecodeError> {
        if depth == 0 {
            return Err(error("recursion limit reached"));
        }
        match wire_type {
            VARINT => {
                self.varint()?;
            }
            FIXED64 => {
                self.take(8)?;
            }
            LENGTH_DELIMITED => {
                let length = self.varint()?;
                self.take(length)?;
            }
            FIXED32 => {
                self.take(4)?;
            }
            START_GROUP => loop {
                match self.key()? {
                    None => return Err(error("invalid varint")),
                    Some((inner, END_GROUP)) if inner == field => break,
                    Some((_, END_GROUP)) => return Err(error("unexpected end group tag")),
                    Some((inner, inner_wire_type)) => self.skip(inner, inner_wire_type, depth - 1)?,
                }
            },
            _ => return Err(error("unexpected end group tag")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::remote_write::{Exemplar, Label, MetricMetadata, Sample, TimeSeries, WriteRequest};

    /// The view turned back into prost's owned types, to compare.
    fn owned(view: &RequestView<'_>) -> WriteRequest {
        let label = |&(name, value): &LabelView<'_>| Label { name: name.to_owned(), value: value.to_owned() };
        WriteRequest {
            timeseries: view
                .series()
                .map(|series| TimeSeries {
                    labels: series.labels().iter().map(label).collect(),
                    samples: series.samples().iter().map(|&(timestamp, value)| Sample { value, timestamp }).collect(),
                    exemplars: series
                        .exemplars()
                        .map(|exemplar| Exemplar {
                            labels: exemplar.labels.iter().map(label).collect(),
                            value: exemplar.value,
                            timestamp: exemplar.timestamp,
                        })
                        .collect(),
                    histograms: Vec::new(),
                })
                .collect(),
            metadata: view
                .metadata()
                .iter()
                .map(|metadata| MetricMetadata {
                    r#type: metadata.r#type,
                    metric_family_name: metadata.metric_family_name.to_owned(),
                    help: metadata.help.to_owned(),
                    unit: metadata.unit.to_owned(),
                })
                .collect(),
        }
    }

    /// Both decoders on the same bytes: the same verdict and the same content
    /// (histograms are compared by count, since the view only counts them).
    fn agree(bytes: &[u8]) -> Result<(), TestCaseError> {
        let reference = WriteRequest::decode(bytes);
        let view = RequestView::decode(bytes);
        match (reference, view) {
            (Ok(mut reference), Ok(view)) => {
                let histograms: Vec<usize> =
                    reference.timeseries.iter().map(|series| series.histograms.len()).collect();
                prop_assert_eq!(view.series().map(|series| series.histograms()).collect::<Vec<_>>(), histograms);
                for series in &mut reference.timeseries {
                    series.histograms.clear();
                }
                let decoded = owned(&view);
                // NaN values compare unequal: compare bits through the encoding.
                prop_assert_eq!(decoded.encode_to_vec(), reference.encode_to_vec());
            }
            (Err(_), Err(_)) => {}
            (reference, view) => {
                prop_assert!(false, "prost: {:?}, view: {:?}", reference.map(|_| ()), view.map(|_| ()));
            }
        }
        Ok(())
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z_]{0,6}", "\\PC{0,4}"]
    }

    fn labels() -> impl Strategy<Value = Vec<Label>> {
        proptest::collection::vec((text(), text()).prop_map(|(name, value)| Label { name, value }), 0..4)
    }

    fn request() -> impl Strategy<Value = WriteRequest> {
        let sample = (any::<f64>(), any::<i64>()).prop_map(|(value, timestamp)| Sample { value, timestamp });
        let exemplar = (labels(), any::<f64>(), any::<i64>()).prop_map(|(labels, value, timestamp)| Exemplar {
            labels,
            value,
            timestamp,
        });
        let series = (
            labels(),
            proptest::collection::vec(sample, 0..4),
            proptest::collection::vec(exemplar, 0..2),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..6), 0..2),
        )
            .prop_map(|(labels, samples, exemplars, histograms)| TimeSeries {
                labels,
                samples,
                exemplars,
                histograms,
            });
        let metadata = (any::<i32>(), text(), text(), text()).prop_map(|(r#type, metric_family_name, help, unit)| {
            MetricMetadata { r#type, metric_family_name, help, unit }
        });
        (proptest::collection::vec(series, 0..4), proptest::collection::vec(metadata, 0..2))
            .prop_map(|(timeseries, metadata)| WriteRequest { timeseries, metadata })
    }

    proptest! {
        #[test]
        fn valid_requests_decode_as_prost_decodes_them(request in request()) {
            agree(&request.encode_to_vec())?;
        }

        #[test]
        fn mangled_requests_get_prost_verdicts(
            request in request(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let mut bytes = request.encode_to_vec();
            if !bytes.is_empty() {
                for (index, byte) in &edits {
                    let at = index.index(bytes.len());
                    bytes[at] = *byte;
                }
                if truncate {
                    bytes.truncate(cut.index(bytes.len()));
                }
            }
            agree(&bytes)?;
        }

        #[test]
        fn arbitrary_bytes_get_prost_verdicts(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            agree(&bytes)?;
        }
    }

    #[test]
    fn unknown_fields_and_groups_are_skipped_and_repeated_scalars_keep_the_last() {
        // timeseries { labels { name: "a" value: "b" } samples { value: 1 timestamp: 5 timestamp: 7 }
        //              field 9 as a group holding a varint } and an unknown fixed32 field 7.
        let sample = [0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 5, 0x10, 7];
        let label = [0x0a, 1, b'a', 0x12, 1, b'b'];
        let mut series = vec![0x0a, label.len() as u8];
        series.extend_from_slice(&label);
        series.extend_from_slice(&[0x12, sample.len() as u8]);
        series.extend_from_slice(&sample);
        series.extend_from_slice(&[0x4b, 0x08, 1, 0x4c]);
        let mut body = vec![0x0a, series.len() as u8];
        body.extend_from_slice(&series);
        body.extend_from_slice(&[0x3d, 1, 2, 3, 4]);
        let view = RequestView::decode(&body).expect("decodes");
        let series: Vec<_> = view.series().collect();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].labels(), &[("a", "b")]);
        assert_eq!(series[0].samples(), &[(7, 1.0)]);
        agree(&body).expect("prost agrees");
    }
}
