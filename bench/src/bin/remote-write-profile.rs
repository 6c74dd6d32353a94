//! alertbook's remote-write path in-process, without HTTP, for profilers:
//! the bodies `remote-write-bench` sends, pushed through the receiver's code
//! up to a chosen stage by concurrent senders (threads). Run each stage under
//! `perf stat -e instructions:u` (or callgrind) and subtract consecutive
//! stages for the cost of each: instruction counts stay meaningful on a busy
//! machine, wall-clock times do not.
//!
//! Stages, each including the ones before it:
//! - `generate`: build and encode the bodies only (the baseline to subtract);
//! - `snappy`: decompress each body;
//! - `protobuf`: decode each body into a `RequestView`, as the receiver does;
//! - `memory`: append to a store without a write-ahead log;
//! - `wal`: append through the write-ahead log, fsynced per `--wal-fsync`.

use std::sync::Arc;
use std::time::Instant;

use alertbook_bench::remote_write::LoadArguments;
use clap::{Parser, ValueEnum};
use ingest::durable::DurableStore;
use tsdb::MemStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Stage {
    Generate,
    Snappy,
    Protobuf,
    Memory,
    Wal,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Fsync {
    Always,
    Never,
}

#[derive(Debug, Parser)]
#[command(about = "alertbook's remote-write ingest in-process, up to a stage, for profiling")]
struct Arguments {
    #[arg(long, value_enum)]
    stage: Stage,
    #[command(flatten)]
    load: LoadArguments,
    #[arg(long, value_enum, default_value = "always")]
    wal_fsync: Fsync,
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let load = arguments.load.load(1_700_000_000_000);
    let bodies = Arc::new(load.bodies());
    if arguments.stage == Stage::Generate {
        println!("generated {} bodies", bodies.len());
        return Ok(());
    }
    let directory = tempfile::tempdir()?;
    let store = Arc::new(MemStore::new());
    let durable = Arc::new(if arguments.stage == Stage::Wal {
        let fsync = match arguments.wal_fsync {
            Fsync::Always => wal::FsyncPolicy::Always,
            Fsync::Never => wal::FsyncPolicy::Never,
        };
        let options = wal::WalOptions { fsync, ..wal::WalOptions::default() };
        DurableStore::open(directory.path(), store.clone(), options)?.0
    } else {
        DurableStore::in_memory(store.clone())
    });
    let begun = Instant::now();
    let senders: Vec<_> = (0..arguments.load.senders)
        .map(|sender| {
            let (bodies, durable) = (bodies.clone(), durable.clone());
            let share = load.sender_share(sender, arguments.load.senders);
            let stage = arguments.stage;
            std::thread::spawn(move || -> anyhow::Result<usize> {
                let mut appended = 0;
                for index in share {
                    let body = &bodies[index];
                    match stage {
                        Stage::Generate => {}
                        Stage::Snappy => {
                            appended += snap::raw::Decoder::new().decompress_vec(body)?.len();
                        }
                        Stage::Protobuf => {
                            let raw = ingest::remote_write::decompress(body)?;
                            appended += ingest::remote_write::RequestView::decode(&raw)?.series().len();
                        }
                        Stage::Memory | Stage::Wal => {
                            let raw = ingest::remote_write::decompress(body)?;
                            let request = ingest::remote_write::RequestView::decode(&raw)?;
                            let outcome = ingest::remote_write::append(&request, &durable, &|_| true)?;
                            anyhow::ensure!(outcome.rejected() == 0, "samples rejected: {outcome:?}");
                            appended += outcome.samples_appended;
                        }
                    }
                }
                Ok(appended)
            })
        })
        .collect();
    let mut total = 0;
    for sender in senders {
        total += sender.join().map_err(|_| anyhow::anyhow!("sender panicked"))??;
    }
    let seconds = begun.elapsed().as_secs_f64();
    println!(
        "stage {:?}: {} bodies, {total} units, {seconds:.2} s wall, {} series, {} samples in the store",
        arguments.stage,
        bodies.len(),
        store.series_count(),
        store.sample_count()
    );
    Ok(())
}
