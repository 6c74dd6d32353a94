//! Push bodies exactly as Loki's documentation shows them and as Promtail,
//! Grafana Alloy, Fluent Bit and Vector send them, and every bad body.

use std::io::Write;

use logstore::push::{
    self, DecodeOptions, EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp, encode_protobuf,
};
use logstore::{PushEntry, PushError};
use prost::Message;

use crate::labels;

fn decode(
    content_type: Option<&str>,
    encoding: Option<&str>,
    body: &[u8],
) -> Result<Vec<logstore::PushStream>, PushError> {
    push::decode(content_type, encoding, body, &DecodeOptions::default())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn loki_documentation_json_example() {
    // From Loki's HTTP API documentation (POST /loki/api/v1/push).
    let body =
        br#"{"streams": [{ "stream": { "foo": "bar2" }, "values": [ [ "1570818238000000000", "fizzbuzz" ] ] }]}"#;
    let streams = decode(Some("application/json"), None, body).unwrap();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].labels, labels(&[("foo", "bar2")]));
    assert_eq!(
        streams[0].entries,
        vec![PushEntry { timestamp_ns: 1_570_818_238_000_000_000, line: "fizzbuzz".into(), metadata: vec![] }]
    );
}

#[test]
fn loki_documentation_structured_metadata_example() {
    let body = br#"{
      "streams": [
        {
          "stream": { "job": "test" },
          "values": [
              [ "1570818238000000000", "fizzbuzz", { "trace_id": "0242ac120002", "user_id": "superUser123" } ],
              [ "1570818238000000001", "plain" ]
          ]
        }
      ]
    }"#;
    let streams = decode(Some("application/json; charset=utf-8"), None, body).unwrap();
    let entries = &streams[0].entries;
    assert_eq!(
        entries[0].metadata,
        vec![("trace_id".to_owned(), "0242ac120002".to_owned()), ("user_id".to_owned(), "superUser123".to_owned())]
    );
    assert!(entries[1].metadata.is_empty());
}

#[test]
fn gzip_json_as_vector_and_fluent_bit_send_it() {
    let body = br#"{"streams":[{"stream":{"job":"fluent-bit","host":"a"},"values":[["1700000000000000000","{\"msg\":\"hi\"}"],["1700000000000000001","second"]]},{"stream":{"job":"vector"},"values":[["1700000000000000002","third"]]}]}"#;
    let streams = decode(Some("application/json"), Some("gzip"), &gzip(body)).unwrap();
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[0].labels, labels(&[("host", "a"), ("job", "fluent-bit")]));
    assert_eq!(streams[0].entries[0].line, "{\"msg\":\"hi\"}");
    assert_eq!(streams[1].entries[0].timestamp_ns, 1_700_000_000_000_000_002);

    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflate.write_all(body).unwrap();
    let streams = decode(Some("application/json"), Some("deflate"), &deflate.finish().unwrap()).unwrap();
    assert_eq!(streams.len(), 2);
}

fn promtail_request() -> PushRequest {
    PushRequest {
        streams: vec![
            StreamAdapter {
                labels: r#"{filename="/var/log/syslog", job="varlogs", host="web-1"}"#.into(),
                entries: vec![
                    EntryAdapter {
                        timestamp: Some(Timestamp { seconds: 1_700_000_000, nanos: 123_456_789 }),
                        line: "Nov 26 10:00:00 web-1 sshd[1]: accepted".into(),
                        structured_metadata: vec![],
                    },
                    EntryAdapter {
                        timestamp: Some(Timestamp { seconds: 1_700_000_001, nanos: 0 }),
                        line: "second".into(),
                        structured_metadata: vec![LabelPairAdapter { name: "trace_id".into(), value: "abc".into() }],
                    },
                ],
                hash: 0x1234_5678,
            },
            StreamAdapter {
                labels: r#"{job="alloy", namespace="prod", pod="api-\"7\""}"#.into(),
                entries: vec![EntryAdapter {
                    timestamp: Some(Timestamp::from_nanos(1_700_000_002_000_000_001)),
                    line: "from alloy".into(),
                    structured_metadata: vec![
                        LabelPairAdapter { name: "trace_id".into(), value: "t1".into() },
                        LabelPairAdapter { name: "span_id".into(), value: "s1".into() },
                    ],
                }],
                hash: 0,
            },
        ],
    }
}

#[test]
fn promtail_and_alloy_protobuf() {
    let body = encode_protobuf(&promtail_request());
    let streams = decode(Some("application/x-protobuf"), None, &body).unwrap();
    assert_eq!(streams[0].labels, labels(&[("filename", "/var/log/syslog"), ("host", "web-1"), ("job", "varlogs")]));
    assert_eq!(streams[0].entries[0].timestamp_ns, 1_700_000_000_123_456_789);
    assert_eq!(streams[0].entries[1].metadata, vec![("trace_id".to_owned(), "abc".to_owned())]);
    assert_eq!(streams[1].labels.get("pod"), Some("api-\"7\""));
    assert_eq!(streams[1].entries[0].timestamp_ns, 1_700_000_002_000_000_001);
    assert_eq!(streams[1].entries[0].metadata.len(), 2);
    // No content type at all is protobuf, as in Loki; gzip on top of snappy is unwrapped first.
    assert_eq!(decode(None, None, &body).unwrap(), streams);
    assert_eq!(decode(Some("application/x-protobuf"), Some("gzip"), &gzip(&body)).unwrap(), streams);
    assert_eq!(decode(Some("application/x-protobuf"), Some("snappy"), &body).unwrap(), streams);
}

fn bad(content_type: Option<&str>, encoding: Option<&str>, body: &[u8], status: u16, message: &str) {
    let error = decode(content_type, encoding, body).expect_err(message);
    assert_eq!(error.status_code(), status, "{error}");
    assert!(error.loki_message().contains(message), "expected {message:?} in {:?}", error.loki_message());
}

#[test]
fn every_bad_json_body_is_refused_with_where_and_what() {
    let json = Some("application/json");
    bad(json, None, b"", 400, "invalid json body: EOF while parsing a value at line 1 column 0");
    bad(json, None, b"{\"streams\": [", 400, "invalid json body");
    bad(json, None, b"[]", 400, "expected an object, found an array");
    bad(json, None, br#"{"streams": {}}"#, 400, "\"streams\" must be an array");
    bad(json, None, br#"{"streams": [1]}"#, 400, "stream 0: expected an object, found a number");
    bad(json, None, br#"{"streams": [{"stream": "x"}]}"#, 400, "stream 0: \"stream\" must be an object");
    bad(
        json,
        None,
        br#"{"streams": [{"stream": {}, "values": []}]}"#,
        400,
        "stream 0: at least one label pair is required per stream",
    );
    bad(json, None, br#"{"streams": [{"stream": {"a": ""}}]}"#, 400, "at least one label pair is required");
    bad(json, None, br#"{"streams": [{"stream": {"a": 1}}]}"#, 400, "label \"a\" must be a string");
    bad(json, None, br#"{"streams": [{"stream": {"a-b": "x"}}]}"#, 400, "invalid label name \"a-b\"");
    bad(json, None, br#"{"streams": [{"stream": {"a": "x"}, "values": {}}]}"#, 400, "\"values\" must be an array");
    let ok_stream = r#"{"stream": {"a": "x"}, "values": [["1", "ok"]]}"#;
    for (value, message) in [
        (
            r#"["1"]"#,
            "stream 1, entry 1: expected an array [timestamp, line] or [timestamp, line, metadata], found 1 elements",
        ),
        (r#"["1","a",{},4]"#, "stream 1, entry 1: expected an array"),
        (r#""1""#, "stream 1, entry 1: expected an array"),
        (r#"[1, "a"]"#, "stream 1, entry 1: timestamp must be a string of unix nanoseconds, found a number"),
        (r#"["abc", "a"]"#, "stream 1, entry 1: invalid timestamp \"abc\""),
        (r#"["1.5", "a"]"#, "invalid timestamp \"1.5\""),
        (r#"["", "a"]"#, "invalid timestamp \"\""),
        (r#"["99999999999999999999", "a"]"#, "invalid timestamp \"99999999999999999999\": out of range"),
        (r#"["1", 5]"#, "stream 1, entry 1: line must be a string"),
        (r#"["1", "a", []]"#, "structured metadata must be an object"),
        (r#"["1", "a", {"k": 1}]"#, "structured metadata \"k\" must be a string"),
        (r#"["1", "a", {"k-1": "v"}]"#, "invalid structured metadata name \"k-1\""),
    ] {
        let body =
            format!(r#"{{"streams": [{ok_stream}, {{"stream": {{"b": "y"}}, "values": [["2", "ok"], {value}]}}]}}"#);
        bad(json, None, body.as_bytes(), 400, message);
    }
    bad(json, Some("gzip"), b"not gzip", 400, "invalid gzip body");
    bad(json, Some("br"), b"{}", 415, "unsupported content encoding \"br\"");
    bad(Some("text/plain"), None, b"{}", 415, "unsupported content type \"text/plain\"");
    bad(Some("application/x-www-form-urlencoded"), None, b"{}", 415, "unsupported content type");
}

#[test]
fn empty_pushes_decode_to_nothing() {
    assert!(decode(Some("application/json"), None, b"{}").unwrap().is_empty());
    assert!(decode(Some("application/json"), None, br#"{"streams": []}"#).unwrap().is_empty());
    assert!(decode(None, None, &encode_protobuf(&PushRequest::default())).unwrap().is_empty());
}

#[test]
fn every_bad_protobuf_body_is_refused_with_where_and_what() {
    let protobuf = Some("application/x-protobuf");
    bad(protobuf, None, b"\xff\xff\xff\xff\xff\xff", 400, "invalid snappy body");
    bad(protobuf, None, b"", 400, "invalid snappy body");
    let not_protobuf = snap::raw::Encoder::new().compress_vec(b"\x0a\xff\xff\xff\xff\x0f").unwrap();
    bad(protobuf, None, &not_protobuf, 400, "invalid protobuf body");
    // Valid protobuf, not snappy-compressed (a common client mistake).
    bad(protobuf, None, &promtail_request().encode_to_vec(), 400, "invalid snappy body");

    let with = |labels: &str, entry: EntryAdapter| {
        let mut request = promtail_request();
        request.streams.push(StreamAdapter { labels: labels.into(), entries: vec![entry.clone(), entry], hash: 0 });
        encode_protobuf(&request)
    };
    let good = EntryAdapter {
        timestamp: Some(Timestamp { seconds: 1, nanos: 0 }),
        line: "x".into(),
        structured_metadata: vec![],
    };
    bad(
        protobuf,
        None,
        &with("{}", good.clone()),
        400,
        "stream 2: invalid labels \"{}\": at least one label pair is required per stream",
    );
    bad(protobuf, None, &with("", good.clone()), 400, "stream 2: invalid labels \"\": expected '{' at the end");
    bad(protobuf, None, &with("{job=~\"x\"}", good.clone()), 400, "only = is allowed");
    bad(protobuf, None, &with("{job=\"x\"", good.clone()), 400, "expected '}' at the end");
    bad(protobuf, None, &with("{job=\"x\", job=\"y\"}", good.clone()), 400, "duplicate label name \"job\"");
    bad(protobuf, None, &with("{0job=\"x\"}", good.clone()), 400, "invalid label name \"0job\"");
    bad(protobuf, None, &with("{job=\"\\z\"}", good.clone()), 400, "invalid escape \\z");
    let mut entry = good.clone();
    entry.timestamp = Some(Timestamp { seconds: 1, nanos: 1_000_000_000 });
    bad(
        protobuf,
        None,
        &with("{job=\"x\"}", entry.clone()),
        400,
        "stream 2, entry 0: invalid timestamp: nanos 1000000000",
    );
    entry.timestamp = Some(Timestamp { seconds: 1, nanos: -1 });
    bad(protobuf, None, &with("{job=\"x\"}", entry.clone()), 400, "stream 2, entry 0: invalid timestamp: nanos -1");
    entry.timestamp = Some(Timestamp { seconds: i64::MAX, nanos: 0 });
    bad(protobuf, None, &with("{job=\"x\"}", entry.clone()), 400, "seconds is out of range");
    let mut entry = good;
    entry.structured_metadata = vec![LabelPairAdapter { name: "".into(), value: "v".into() }];
    bad(protobuf, None, &with("{job=\"x\"}", entry), 400, "stream 2, entry 0: invalid structured metadata name \"\"");
}

#[test]
fn bodies_over_the_limit_are_413_before_and_after_decompression() {
    let options = DecodeOptions { max_body_bytes: 1000 };
    let big_line = "x".repeat(5000);
    let json = format!(r#"{{"streams":[{{"stream":{{"a":"b"}},"values":[["1","{big_line}"]]}}]}}"#);
    let error = push::decode(Some("application/json"), None, json.as_bytes(), &options).unwrap_err();
    assert_eq!(
        (error.status_code(), error.to_string()),
        (413, format!("request body too large: {} bytes exceeds the limit of 1000 bytes", json.len()))
    );
    // Compresses below the limit, inflates above it: a zip bomb is stopped at the limit.
    let compressed = gzip(json.as_bytes());
    assert!(compressed.len() < 1000);
    let error = push::decode(Some("application/json"), Some("gzip"), &compressed, &options).unwrap_err();
    assert_eq!(error.status_code(), 413);
    let mut request = promtail_request();
    request.streams[0].entries[0].line = big_line;
    let body = encode_protobuf(&request);
    assert!(body.len() < 1000);
    assert_eq!(push::decode(None, None, &body, &options).unwrap_err().status_code(), 413);
}

#[test]
fn a_decoded_push_is_stored_and_read_back_with_its_metadata() {
    let directory = tempfile::tempdir().unwrap();
    let (store, _) = crate::open(directory.path(), logstore::LogStoreOptions::default());
    let streams = decode(Some("application/x-protobuf"), None, &encode_protobuf(&promtail_request())).unwrap();
    let stats = store.append_at(streams, 1_700_000_010_000_000_000).unwrap();
    assert_eq!((stats.entries_appended, stats.status_code()), (3, 204));
    let mut seen = Vec::new();
    logql::LogSource::select(&store, &[crate::equal("job", "alloy")], i64::MIN, i64::MAX, &mut |labels, entry| {
        seen.push((labels.get("pod").unwrap().to_owned(), entry.line.to_owned(), entry.metadata.to_vec()));
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(
        seen,
        vec![(
            "api-\"7\"".to_owned(),
            "from alloy".to_owned(),
            vec![("trace_id".to_owned(), "t1".to_owned()), ("span_id".to_owned(), "s1".to_owned())]
        )]
    );
}
