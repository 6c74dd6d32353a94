//! Redacts every line of a file with the shipped rules, on one thread, and
//! prints the throughput: the scanner alone, without generating lines, for
//! profiling (`valgrind --tool=callgrind`) and quick comparisons.
//!
//! `cargo run --release -p pii --example redact-file -- LINES_FILE [REPEAT]`
//!
//! `bench/pii.sh --write-lines FILE` writes the benchmark's Faro lines to a
//! file. The best of `REPEAT` passes (default 1) is reported, with this
//! thread's on-CPU time and the machine's load average.

use std::time::Instant;

fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanoseconds: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(nanoseconds / 1e9)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut arguments = std::env::args().skip(1);
    let path = arguments.next().ok_or("usage: redact-file LINES_FILE [REPEAT]")?;
    let repeat: usize = arguments.next().map_or(Ok(1), |text| text.parse())?;
    let text = std::fs::read_to_string(&path)?;
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    drop(text);
    let bytes: usize = lines.iter().map(|line| line.len() + 1).sum();
    let rules = pii::RuleSet::from_yaml(
        include_str!("../../../catalog/busflow/pii-rules.yaml"),
        "catalog/busflow/pii-rules.yaml",
    )?;
    let redactor = pii::Redactor::new(&rules, Vec::new());
    let (mut best_wall, mut best_cpu) = (f64::INFINITY, f64::INFINITY);
    let mut matches = 0;
    for _ in 0..repeat.max(1) {
        matches = 0;
        let cpu_before = thread_cpu_seconds();
        let started = Instant::now();
        for line in &lines {
            matches += std::hint::black_box(redactor.redact(line)).matches.len();
        }
        best_wall = best_wall.min(started.elapsed().as_secs_f64());
        if let (Some(before), Some(after)) = (cpu_before, thread_cpu_seconds()) {
            best_cpu = best_cpu.min(after - before);
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{} lines, {:.1} MB, {matches} matches: wall {:.1} MB/s, on-cpu {:.1} MB/s (load average {})",
        lines.len(),
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / best_wall,
        bytes as f64 / 1e6 / best_cpu,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    Ok(())
}
