//! Measures resident memory while serving blocks of 100k series, to show that
//! it does not grow with the number of blocks (retention).
//!
//! ```text
//! cargo run --release -p ingest --example block_memory -- write DIR BLOCKS
//! cargo run --release -p ingest --example block_memory -- serve DIR [CACHE_MIB]
//! cargo run --release -p ingest --example block_memory -- resident DIR
//! ```
//!
//! `write` writes BLOCKS blocks of 2 h each (100k series, one sample every
//! 15 s: 480 per series) into `DIR/blocks`. `serve` opens `DIR` as
//! `alertbook run` does (blocks served from disk, the index cache bounded to
//! CACHE_MIB, default 256) and prints VmRSS after opening and after queries
//! over the whole range.
//! `resident` holds every chunk of every block in memory, as the store did
//! before blocks were served from disk, and prints VmRSS. Every line carries
//! the load average: figures taken on a busy machine say so.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ingest::durable::DurableStore;
use tsdb::block::{BlockFile, BlockWriter, list_blocks};
use tsdb::chunk::{Chunk, ChunkEncoder};
use tsdb::{Labels, Matcher, MemStore, Queryable};

const SERIES: usize = 100_000;
const STEP_MS: i64 = 15_000;
const SAMPLES_PER_BLOCK: i64 = 480;

fn labels(index: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", format!("metric_{}", index % 100)),
        ("instance", format!("host-{}:9100", index / 100)),
        ("job", "node".to_owned()),
    ])
}

fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn report(what: &str) {
    println!("{what}: VmRSS {:.0} MiB (load average {})", resident_mib(), load_average());
}

fn write(directory: &Path, blocks: u64) {
    let mut all: Vec<Labels> = (0..SERIES).map(labels).collect();
    all.sort();
    let blocks_directory = directory.join("blocks");
    for block in 0..blocks {
        let started = Instant::now();
        let first = block as i64 * SAMPLES_PER_BLOCK;
        let mut writer = BlockWriter::create(&blocks_directory, block + 1, 0, &[]).expect("create block");
        for (index, labels) in all.iter().enumerate() {
            let mut chunks: Vec<Chunk> = Vec::new();
            let mut encoder = ChunkEncoder::new();
            for step in first..first + SAMPLES_PER_BLOCK {
                if encoder.len() == tsdb::CHUNK_MAX_SAMPLES {
                    chunks.push(std::mem::take(&mut encoder).seal());
                }
                encoder.append(step * STEP_MS, (index as f64) + (step % 37) as f64 * 0.5);
            }
            chunks.push(encoder.seal());
            writer.add_series(labels, &chunks).expect("add series");
        }
        let meta = writer.finish().expect("finish").expect("a block");
        println!("block {}: {} MiB in {:.1} s", meta.sequence, meta.bytes >> 20, started.elapsed().as_secs_f64());
    }
}

fn serve(directory: &Path, cache_mib: usize) {
    report("before opening");
    let started = Instant::now();
    let store = MemStore::new();
    store.disk().set_cache_bytes(cache_mib << 20);
    let (durable, opened) = DurableStore::open_with_blocks(
        &directory.join("wal"),
        &directory.join("blocks"),
        Arc::new(store),
        wal::WalOptions::default(),
    )
    .expect("open");
    println!("opened {} blocks in {:.2} s", opened.blocks_loaded, started.elapsed().as_secs_f64());
    report("after opening");
    let store = durable.store();
    let started = Instant::now();
    let one = store
        .select(
            &[Matcher::equal("instance", "host-7:9100"), Matcher::equal("__name__", "metric_7")],
            i64::MIN,
            i64::MAX,
        )
        .expect("select");
    println!(
        "one series over every block: {} samples in {:.3} s",
        one[0].samples.len(),
        started.elapsed().as_secs_f64()
    );
    report("after a one-series query");
    let started = Instant::now();
    let many = store.select(&[Matcher::equal("__name__", "metric_7")], i64::MIN, i64::MAX).expect("select");
    let samples: usize = many.iter().map(|series| series.samples.len()).sum();
    println!("1000 series over every block: {samples} samples in {:.3} s", started.elapsed().as_secs_f64());
    drop(many);
    report("after a 1000-series query");
    println!("index cache holds {} MiB", store.disk().cache_bytes() >> 20);
}

fn resident(directory: &Path) {
    report("before loading");
    let listing = list_blocks(&directory.join("blocks")).expect("list");
    let mut held: Vec<(Labels, Vec<Chunk>)> = Vec::new();
    for (sequence, path) in listing.blocks {
        let block = BlockFile::open(&path, sequence).expect("open");
        let index = block.load_index().expect("index");
        for position in 0..index.len() {
            let series = index.series(position).expect("series");
            let chunks = series.chunks.iter().map(|meta| block.read_chunk(meta).expect("chunk")).collect();
            held.push((series.labels, chunks));
        }
    }
    let chunks: usize = held.iter().map(|(_, chunks)| chunks.len()).sum();
    println!("{chunks} chunks held");
    report("every chunk resident");
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    match arguments.get(1..).unwrap_or_default() {
        [command, directory, blocks] if command == "write" => {
            write(Path::new(directory), blocks.parse().expect("a number of blocks"))
        }
        [command, directory] if command == "serve" => serve(Path::new(directory), 256),
        [command, directory, cache] if command == "serve" => {
            serve(Path::new(directory), cache.parse().expect("a cache size in MiB"))
        }
        [command, directory] if command == "resident" => resident(Path::new(directory)),
        _ => eprintln!("usage: block_memory write DIR BLOCKS | serve DIR [CACHE_MIB] | resident DIR"),
    }
}
