//! Fuzzes the protobuf push decoder and the append path behind it: the input
//! is tried both as a snappy body and as raw protobuf wrapped in snappy, so
//! the fuzzer reaches the message and label decoding quickly.

#![no_main]

use libfuzzer_sys::fuzz_target;
use logstore::push::{self, DecodeOptions};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let options = DecodeOptions { max_body_bytes: 1 << 20 };
    let wrapped = snap::raw::Encoder::new().compress_vec(data).unwrap_or_default();
    for body in [data, wrapped.as_slice()] {
        match push::decode(Some("application/x-protobuf"), None, body, &options) {
            Ok(streams) => common::append(streams),
            Err(error) => assert!(matches!(error.status_code(), 400 | 413 | 415)),
        }
    }
    // The selector parser on its own, for the protobuf `labels` field.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = push::parse_labels(text);
    }
});
