//! Fuzzes the remote-write decoder and the append path behind it: any body a
//! network peer can send must decode to an error or a request, and appending a
//! decoded request must never panic.

#![no_main]

use std::sync::Arc;

use ingest::durable::DurableStore;
use ingest::remote_write::{RequestView, append, decompress};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Both as a snappy body and as raw protobuf wrapped in snappy.
    let wrapped = snap::raw::Encoder::new().compress_vec(data).unwrap_or_default();
    for body in [data, wrapped.as_slice()] {
        let Ok(raw) = decompress(body) else { continue };
        if let Ok(request) = RequestView::decode(&raw) {
            let store = DurableStore::in_memory(Arc::new(tsdb::MemStore::new()));
            let _ = append(&request, &store, &|_| true);
        }
    }
});
