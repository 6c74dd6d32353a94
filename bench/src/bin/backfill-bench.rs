//! Measures alertbook's backfill: parses a timestamped OpenMetrics (or text
//! format) file and appends it to an in-memory store, then prints throughput.
//! With `--parse-only` it measures the parser alone.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use ingest::backfill::{BackfillOptions, load_file};
use ingest::exposition::{Entry, Format};

#[derive(Debug, Parser)]
#[command(about = "Measure backfill (or parse) throughput on a file")]
struct Arguments {
    /// The file to load.
    file: PathBuf,
    /// Read the Prometheus text format instead of OpenMetrics.
    #[arg(long)]
    text: bool,
    /// Only parse, do not append to a store.
    #[arg(long)]
    parse_only: bool,
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let format = if arguments.text { Format::PrometheusText } else { Format::OpenMetrics };
    let begun = Instant::now();
    if arguments.parse_only {
        let (lines, samples, errors, bytes) = parse_only(&arguments.file, format)?;
        let seconds = begun.elapsed().as_secs_f64();
        println!(
            "parsed {lines} lines, {samples} samples, {errors} errors, {:.1} MiB in {seconds:.2} s: \
             {:.2} M samples/s, {:.0} MiB/s",
            bytes as f64 / (1 << 20) as f64,
            samples as f64 / seconds / 1e6,
            bytes as f64 / (1 << 20) as f64 / seconds
        );
        return Ok(());
    }
    let store = tsdb::MemStore::new();
    let options = BackfillOptions { format, ..BackfillOptions::default() };
    let report = load_file(&arguments.file, &store, &options)?;
    let seconds = begun.elapsed().as_secs_f64();
    println!(
        "loaded {} samples into {} series ({} rejected) from {:.1} MiB in {seconds:.2} s: {:.2} M samples/s, {:.0} MiB/s; \
         store holds {:.1} MiB",
        report.samples,
        report.series,
        report.rejected(),
        report.bytes as f64 / (1 << 20) as f64,
        report.samples as f64 / seconds / 1e6,
        report.bytes as f64 / (1 << 20) as f64 / seconds,
        store.memory_bytes() as f64 / (1 << 20) as f64
    );
    for error in &report.errors {
        println!("  {error}");
    }
    Ok(())
}

/// Parses the file line by line, counting samples.
fn parse_only(path: &std::path::Path, format: Format) -> anyhow::Result<(u64, u64, u64, u64)> {
    use std::io::BufRead;
    let file = std::fs::File::open(path)?;
    let mut reader = std::io::BufReader::with_capacity(4 << 20, file);
    let mut parser = ingest::exposition::Parser::new(format);
    let mut line = Vec::with_capacity(1024);
    let (mut lines, mut samples, mut errors, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        bytes += read as u64;
        lines += 1;
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        match parser.parse_line(content) {
            Ok(Entry::Sample(sample)) => {
                samples += 1;
                std::hint::black_box(sample.value);
            }
            Ok(_) => {}
            Err(_) => errors += 1,
        }
    }
    if parser.finish().is_err() {
        errors += 1;
    }
    Ok((lines, samples, errors, bytes))
}
