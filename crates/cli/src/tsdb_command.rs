//! `alertbook tsdb create-blocks-from openmetrics FILE DATA_DIR`: promtool's
//! command of the same name for alertbook's data directory. The import itself
//! is `ingest::import`; this module maps the arguments onto it and prints what
//! it wrote.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

#[derive(Debug, clap::Subcommand)]
pub enum TsdbCommand {
    /// Create blocks from another format (promtool's `tsdb create-blocks-from`).
    #[command(subcommand)]
    CreateBlocksFrom(CreateBlocksFrom),
}

#[derive(Debug, clap::Subcommand)]
pub enum CreateBlocksFrom {
    /// Write the samples of an OpenMetrics file with timestamps as blocks into a data directory.
    ///
    /// Reads FILE (OpenMetrics text with a timestamp on every sample and a final `# EOF`, the
    /// input `promtool tsdb create-blocks-from openmetrics` and `alertbook run --backfill`
    /// take) and writes one block per aligned window of --max-block-duration into
    /// DATA_DIR/blocks, where `alertbook run --data DATA_DIR` serves them from disk. Memory holds
    /// one window's samples at a time; the file is read once per window. Any bad line stops
    /// the import with FILE:LINE and why, leaving DATA_DIR as it was. A block that overlaps a
    /// block already in DATA_DIR is refused, not merged; blocks beside the existing ones are
    /// added. Stop the alertbook serving DATA_DIR before importing into it.
    Openmetrics(OpenmetricsArguments),
}

#[derive(Debug, clap::Args)]
pub struct OpenmetricsArguments {
    /// The OpenMetrics file to import.
    #[arg(value_name = "FILE")]
    input: PathBuf,
    /// The data directory (created when missing).
    #[arg(value_name = "DATA_DIR", default_value = "data")]
    data: PathBuf,
    /// Length of each block's time window; blocks are aligned to multiples of it.
    #[arg(long, value_name = "DURATION", default_value = "2h", value_parser = crate::parse_duration_flag)]
    max_block_duration: Duration,
    /// Print only errors.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(command: &TsdbCommand) -> anyhow::Result<ExitCode> {
    let TsdbCommand::CreateBlocksFrom(CreateBlocksFrom::Openmetrics(arguments)) = command;
    let block_duration_ms = i64::try_from(arguments.max_block_duration.as_millis()).unwrap_or(i64::MAX);
    let options = ingest::import::ImportOptions { block_duration_ms, ..Default::default() };
    let started = Instant::now();
    let report = ingest::import::create_blocks(&arguments.input, &arguments.data, &options)
        .with_context(|| format!("cannot import {} into {}", arguments.input.display(), arguments.data.display()))?;
    if arguments.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<10} {:>15} {:>15} {:>10} {:>12} {:>10} {:>10} {:>12}",
        "BLOCK", "MIN TIME", "MAX TIME", "DURATION", "SAMPLES", "CHUNKS", "SERIES", "BYTES"
    );
    for block in &report.blocks {
        let duration = Duration::from_millis(u64::try_from(block.max_time - block.min_time).unwrap_or(0));
        println!(
            "{:<10} {:>15} {:>15} {:>10} {:>12} {:>10} {:>10} {:>12}",
            format!("{:08}", block.sequence),
            block.min_time,
            block.max_time,
            format!("{}s", duration.as_secs()),
            block.samples,
            block.chunks,
            block.series,
            block.bytes
        );
    }
    let bytes: u64 = report.blocks.iter().map(|block| block.bytes).sum();
    println!(
        "imported {} samples from {} lines ({} bytes) into {} blocks of {} bytes in {}, reading the file {} times in {:.1} s",
        report.samples,
        report.lines,
        report.bytes,
        report.blocks.len(),
        bytes,
        arguments.data.join("blocks").display(),
        report.passes,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
