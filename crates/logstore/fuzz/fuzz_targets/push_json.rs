//! Fuzzes the JSON push decoder (plain and gzip) and the append path behind
//! it: any body a network peer can send must decode to an error or streams,
//! and appending decoded streams must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use logstore::push::{self, DecodeOptions};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let options = DecodeOptions { max_body_bytes: 1 << 20 };
    for encoding in [None, Some("gzip"), Some("deflate")] {
        match push::decode(Some("application/json"), encoding, data, &options) {
            Ok(streams) => common::append(streams),
            Err(error) => {
                assert!(matches!(error.status_code(), 400 | 413 | 415));
            }
        }
    }
});
