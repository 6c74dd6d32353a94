//! Feeds arbitrary bytes to the block reader as a block file: opening it,
//! loading its index and reading every chunk the index names must return
//! errors for damage, never panic, and allocate no more than the file holds.
//!
//! `cargo fuzz run -s none block_reader` from `crates/tsdb` (seeds: any
//! `*.block` file, e.g. one written by `alertbook run` under `<data>/blocks`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tsdb::block::{BlockFile, block_path};

fuzz_target!(|bytes: &[u8]| {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = block_path(directory.path(), 1);
    std::fs::write(&path, bytes).expect("write");
    let Ok(block) = BlockFile::open(&path, 1) else { return };
    let Ok(index) = block.load_index() else { return };
    for position in 0..index.len() {
        let series = index.series(position).expect("a checked entry decodes");
        for chunk in &series.chunks {
            if let Ok(chunk) = block.read_chunk(chunk) {
                assert_eq!(chunk.iter().count(), chunk.len());
            }
        }
    }
});
