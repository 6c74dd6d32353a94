//! PII redaction throughput: alertbook's `pii::Redactor` against a naive
//! scanner, on one thread, over the same generated Grafana Faro log lines.
//!
//! `pii-bench [--mb 256] [--pii-rate 0.001] [--seed 1] [--rules FILE] [--repeat 1] [--write-lines FILE]`
//! generates about `--mb` MB of Faro-like JSON lines (log, exception,
//! measurement and event kinds; timestamps, routes with ids, session and trace
//! ids, user agents, versions), a fraction `--pii-rate` of them carrying one
//! PII value (e-mail, phone, IBAN, card, IP address, JWT, API key or bearer
//! token). It then times, on this thread only:
//!
//! - alertbook: `Redactor::redact` on every line (rules from the catalog's
//!   `pii-rules.yaml`);
//! - naive: every rule's regex (the `regex` crate, ASCII mode) run one after
//!   the other over every whole line, matches checked with the same
//!   validators, overlaps resolved the same way (longest wins), the line
//!   rebuilt when something matched.
//!
//! It prints MB/s and lines/s of both, the ratio, and the match counts per
//! rule of both, which should agree.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use alertbook_bench::Random;
use anyhow::Context as _;
use clap::Parser;
use pii::{Redactor, RuleSet, Validator};

#[derive(Parser)]
#[command(about = "PII redaction throughput: alertbook against a naive regex-per-rule scanner")]
struct Arguments {
    /// Megabytes (10^6 bytes) of log lines to generate.
    #[arg(long, default_value_t = 256)]
    mb: usize,
    /// Fraction of lines that carry one PII value.
    #[arg(long, default_value_t = 0.001)]
    pii_rate: f64,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The rules file (default: the catalog's `pii-rules.yaml`).
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Timed passes of each scanner; the best is reported.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Skip the naive scanner (alertbook only).
    #[arg(long)]
    skip_naive: bool,
    /// Write the generated lines to this file, one a line, and stop (for
    /// the `pii` crate's `redact-file` example and profilers).
    #[arg(long)]
    write_lines: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let rules_path = arguments
        .rules
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../catalog/busflow/pii-rules.yaml"));
    let text = std::fs::read_to_string(&rules_path).with_context(|| format!("reading {}", rules_path.display()))?;
    let rules = RuleSet::from_yaml(&text, &rules_path.display().to_string())?;
    let redactor = Redactor::new(&rules, Vec::new());

    let started = Instant::now();
    let corpus = generate(arguments.mb * 1_000_000, arguments.pii_rate, arguments.seed);
    let bytes: usize = corpus.iter().map(|line| line.len() + 1).sum();
    let injected = corpus.iter().filter(|line| line.contains("\u{1}")).count();
    let corpus: Vec<String> = corpus.into_iter().map(|line| line.replace('\u{1}', "")).collect();
    // The lines laid out one after the other in one buffer, as a push body
    // holds them (and as `redact-file` reads them): generated one by one,
    // they lie scattered over the heap, which costs the scan memory stalls
    // no ingest path has.
    let buffer = corpus.join("\n");
    let corpus: Vec<&str> = buffer.split('\n').collect();
    println!(
        "generated {} lines, {:.1} MB ({} with PII injected, rate {}) in {:.1} s",
        corpus.len(),
        bytes as f64 / 1e6,
        injected,
        arguments.pii_rate,
        started.elapsed().as_secs_f64()
    );

    if let Some(path) = &arguments.write_lines {
        let mut text = corpus.join("\n");
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
        return Ok(());
    }

    let mut alertbook_counts = BTreeMap::new();
    let mut alertbook_timing = Timing { wall: f64::INFINITY, cpu: None };
    for _ in 0..arguments.repeat.max(1) {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut output_bytes = 0usize;
        let timing = timed(|| {
            for line in &corpus {
                let redaction = redactor.redact(line);
                output_bytes += redaction.line.len();
                for found in &redaction.matches {
                    *counts.entry(found.rule_id.clone()).or_default() += 1;
                }
            }
        });
        alertbook_timing = alertbook_timing.best(timing);
        std::hint::black_box(output_bytes);
        alertbook_counts = counts;
    }
    report("alertbook", bytes, corpus.len(), alertbook_timing, &alertbook_counts);

    if arguments.skip_naive {
        return Ok(());
    }
    let naive = Naive::new(&rules)?;
    let mut naive_counts = BTreeMap::new();
    let mut naive_timing = Timing { wall: f64::INFINITY, cpu: None };
    for _ in 0..arguments.repeat.max(1) {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut output_bytes = 0usize;
        let timing = timed(|| {
            for line in &corpus {
                output_bytes += naive.redact(line, &mut counts);
            }
        });
        naive_timing = naive_timing.best(timing);
        std::hint::black_box(output_bytes);
        naive_counts = counts;
    }
    report("naive", bytes, corpus.len(), naive_timing, &naive_counts);

    println!("ratio (alertbook MB/s / naive MB/s), wall: {:.2}", naive_timing.wall / alertbook_timing.wall);
    if let (Some(ours), Some(theirs)) = (alertbook_timing.cpu, naive_timing.cpu) {
        println!("ratio (alertbook MB/s / naive MB/s), on-cpu: {:.2}", theirs / ours);
    }
    println!("{:<16} {:>10} {:>10}", "rule", "alertbook", "naive");
    for rule in rules.rules() {
        let ours = alertbook_counts.get(rule.id()).copied().unwrap_or(0);
        let theirs = naive_counts.get(rule.id()).copied().unwrap_or(0);
        let flag = if ours == theirs { "" } else { "  (differs)" };
        println!("{:<16} {ours:>10} {theirs:>10}{flag}", rule.id());
    }
    let total = |counts: &BTreeMap<String, usize>| counts.values().sum::<usize>();
    println!("{:<16} {:>10} {:>10}", "total", total(&alertbook_counts), total(&naive_counts));
    Ok(())
}

fn report(name: &str, bytes: usize, lines: usize, timing: Timing, counts: &BTreeMap<String, usize>) {
    let cpu = timing.cpu.map_or_else(
        || "cpu n/a".to_owned(),
        |cpu| format!("on-cpu {:>7.1} MB/s ({:.3} s)", bytes as f64 / 1e6 / cpu, cpu),
    );
    println!(
        "{name:<10} {:>8.1} MB/s {:>12.0} lines/s  wall {:.3} s  {cpu}  {} matches",
        bytes as f64 / 1e6 / timing.wall,
        lines as f64 / timing.wall,
        timing.wall,
        counts.values().sum::<usize>()
    );
}

/// Wall time and this thread's on-CPU time of one pass (the machine may be
/// shared; on-CPU time leaves out the time other processes held the core).
#[derive(Clone, Copy)]
struct Timing {
    wall: f64,
    cpu: Option<f64>,
}

impl Timing {
    fn best(self, other: Timing) -> Timing {
        if other.wall < self.wall { other } else { self }
    }
}

/// This thread's on-CPU nanoseconds (Linux `/proc/thread-self/schedstat`).
fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanoseconds: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(nanoseconds / 1e9)
}

fn timed(mut pass: impl FnMut()) -> Timing {
    let cpu_before = thread_cpu_seconds();
    let started = Instant::now();
    pass();
    let wall = started.elapsed().as_secs_f64();
    let cpu = thread_cpu_seconds().zip(cpu_before).map(|(after, before)| after - before);
    Timing { wall, cpu }
}

/// Every rule's regex over every whole line, one rule after the other.
struct Naive {
    rules: Vec<(String, regex::Regex, Option<Validator>, String)>,
}

impl Naive {
    fn new(rules: &RuleSet) -> anyhow::Result<Naive> {
        let mut compiled = Vec::new();
        for rule in rules.rules() {
            let regex = regex::RegexBuilder::new(rule.pattern())
                .unicode(false)
                .build()
                .with_context(|| format!("compiling rule {}", rule.id()))?;
            compiled.push((rule.id().to_owned(), regex, rule.validator(), rule.replacement().to_owned()));
        }
        Ok(Naive { rules: compiled })
    }

    /// Redacts `line`, adds the matches to `counts`, returns the output length.
    fn redact(&self, line: &str, counts: &mut BTreeMap<String, usize>) -> usize {
        let mut found: Vec<(usize, usize, usize)> = Vec::new();
        for (index, (_, regex, validator, _)) in self.rules.iter().enumerate() {
            for hit in regex.find_iter(line) {
                if validator.is_none_or(|validator| validator.accepts(line.as_bytes(), hit.start(), hit.end())) {
                    found.push((index, hit.start(), hit.end()));
                }
            }
        }
        if found.is_empty() {
            return line.len();
        }
        found.sort_by(|left, right| (right.2 - right.1).cmp(&(left.2 - left.1)).then(left.0.cmp(&right.0)));
        let mut kept: Vec<(usize, usize, usize)> = Vec::new();
        for candidate in found {
            if kept.iter().all(|other| candidate.2 <= other.1 || other.2 <= candidate.1) {
                kept.push(candidate);
            }
        }
        kept.sort_by_key(|candidate| candidate.1);
        let mut output = String::with_capacity(line.len());
        let mut position = 0;
        for (index, start, end) in kept {
            output.push_str(&line[position..start]);
            output.push_str(&self.rules[index].3);
            position = end;
            *counts.entry(self.rules[index].0.clone()).or_default() += 1;
        }
        output.push_str(&line[position..]);
        output.len()
    }
}

const ROUTES: &[&str] = &["/bookings", "/trips", "/checkout", "/account", "/search", "/tickets", "/stops", "/help"];
const MESSAGES: &[&str] = &[
    "booking confirmed",
    "search results rendered",
    "seat map loaded",
    "payment form opened",
    "ticket downloaded",
    "route changed",
    "retrying request after 1500 ms",
    "cache miss for trip 20261126",
    "websocket reconnected on attempt 3",
    "feature flag new-checkout evaluated to true",
    "slow render of TripList took 412 ms",
    "user clicked button#confirm-booking",
];
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
];
const ERRORS: &[(&str, &str)] = &[
    ("TypeError", "Cannot read properties of undefined (reading 'id')"),
    ("NetworkError", "Failed to fetch /api/v2/trips?from=BER&to=HAM&date=2026-11-26"),
    ("ChunkLoadError", "Loading chunk 412 failed. (timeout: https://app.busflow.example/assets/trip-7f3a9c.js)"),
    ("RangeError", "Maximum call stack size exceeded"),
];

fn hex(random: &mut Random, length: usize) -> String {
    let mut text = String::with_capacity(length);
    while text.len() < length {
        text.push_str(&format!("{:016x}", random.next_u64()));
    }
    text.truncate(length);
    text
}

fn digits(random: &mut Random, length: usize) -> String {
    (0..length).map(|_| char::from(b'0' + (random.next_u64() % 10) as u8)).collect()
}

fn luhn_card(random: &mut Random) -> String {
    let mut body = format!("4{}", digits(random, 14));
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(index, byte)| {
            let digit = u32::from(byte - b'0');
            if index % 2 == 0 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    body.push(char::from(b'0' + ((10 - sum % 10) % 10) as u8));
    if random.next_u64().is_multiple_of(2) {
        let bytes = body.as_bytes();
        format!("{} {} {} {}", &body[0..4], String::from_utf8_lossy(&bytes[4..8]), &body[8..12], &body[12..16])
    } else {
        body
    }
}

fn iban(random: &mut Random) -> String {
    let bban = digits(random, 18);
    // Check digits: 98 - (BBAN + "DE00" as digits) mod 97; D = 13, E = 14.
    let numeric = format!("{bban}131400");
    let remainder = numeric.bytes().fold(0u32, |value, byte| (value * 10 + u32::from(byte - b'0')) % 97);
    let compact = format!("DE{:02}{bban}", 98 - remainder);
    if random.next_u64().is_multiple_of(2) {
        let bytes = compact.as_bytes();
        bytes.chunks(4).map(|chunk| String::from_utf8_lossy(chunk).into_owned()).collect::<Vec<_>>().join(" ")
    } else {
        compact
    }
}

fn pii_value(random: &mut Random) -> String {
    match random.next_u64() % 11 {
        0 => format!("{}.{}@example.com", random.pick(&["jane", "john", "maria", "li"]), hex(random, 4)),
        1 => format!("+49151{}", digits(random, 8)),
        2 => format!("0151 {}", digits(random, 7)),
        3 => format!("(415) 555-{}", digits(random, 4)),
        4 => luhn_card(random),
        5 => iban(random),
        6 => format!("203.0.113.{}", random.next_u64() % 250 + 1),
        7 => format!("2001:db8::{}", hex(random, 4)),
        8 => format!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI{}In0.{}", digits(random, 6), hex(random, 32)),
        9 => format!("sk_live_{}", hex(random, 24)),
        _ => format!("Bearer {}", hex(random, 40)),
    }
}

/// Faro-like JSON lines of about `target_bytes` bytes in all. A line with
/// injected PII carries a `\u{1}` marker the caller strips.
fn generate(target_bytes: usize, pii_rate: f64, seed: u64) -> Vec<String> {
    let mut random = Random::new(seed);
    let mut lines = Vec::new();
    let mut total = 0;
    let mut millis: u64 = 1_795_168_800_000; // 2026-11-20T08:00:00Z
    while total < target_bytes {
        millis += random.next_u64() % 50;
        let seconds = millis / 1000;
        let (hour, minute, second) = ((seconds / 3600) % 24, (seconds / 60) % 60, seconds % 60);
        let day = 20 + (seconds / 86_400) % 7;
        let timestamp = format!("2026-11-{day:02}T{hour:02}:{minute:02}:{second:02}.{:03}Z", millis % 1000);
        let route = format!("{}/{}", random.pick(ROUTES), random.next_u64() % 100_000);
        let session = hex(&mut random, 16);
        let trace = hex(&mut random, 32);
        let span = hex(&mut random, 16);
        let user_agent = random.pick(USER_AGENTS);
        let version = format!("4.{}.{}", random.next_u64() % 20, random.next_u64() % 10);
        let with_pii = random.unit() < pii_rate;
        let mut message = random.pick(MESSAGES).to_owned();
        if with_pii {
            message = format!("\u{1}{message} for {}", pii_value(&mut random));
        }
        let common = format!(
            concat!(
                r#""context":{{"route":"{route}","session_id":"{session}","user_agent":"{ua}"}},"#,
                r#""app":{{"name":"busflow-web","version":"{version}","environment":"production"}},"#,
                r#""page":{{"url":"https://app.busflow.example{route}?id={id}"}},"#,
                r#""trace_id":"{trace}","span_id":"{span}"}}"#
            ),
            route = route,
            session = session,
            ua = user_agent,
            version = version,
            id = random.next_u64() % 100_000,
            trace = trace,
            span = span,
        );
        let line = match random.next_u64() % 10 {
            0..=5 => format!(
                r#"{{"timestamp":"{timestamp}","kind":"log","level":"{}","message":"{message}",{common}"#,
                random.pick(&["info", "info", "debug", "warn"])
            ),
            6 => {
                let (kind, value) = ERRORS[(random.next_u64() % ERRORS.len() as u64) as usize];
                let value = if with_pii { format!("{value} ({message})") } else { value.to_owned() };
                format!(
                    concat!(
                        r#"{{"timestamp":"{}","kind":"exception","type":"{}","value":"{}","#,
                        r#""stacktrace":{{"frames":[{{"filename":"https://app.busflow.example/assets/index-{}.js","function":"onClick","lineno":{},"colno":{}}},"#,
                        r#"{{"filename":"https://app.busflow.example/assets/vendor-{}.js","function":"dispatch","lineno":1,"colno":{}}}]}},{}"#
                    ),
                    timestamp,
                    kind,
                    value,
                    hex(&mut random, 8),
                    random.next_u64() % 2000,
                    random.next_u64() % 90_000,
                    hex(&mut random, 8),
                    random.next_u64() % 300_000,
                    common
                )
            }
            7 | 8 => format!(
                concat!(
                    r#"{{"timestamp":"{}","kind":"measurement","type":"web-vitals","#,
                    r#""values":{{"lcp":{:.1},"fcp":{:.1},"cls":{:.3},"ttfb":{:.1},"inp":{}}},{}{}"#
                ),
                timestamp,
                random.range(400.0, 6000.0),
                random.range(200.0, 3000.0),
                random.range(0.0, 0.4),
                random.range(20.0, 900.0),
                random.next_u64() % 500,
                if with_pii { format!(r#""note":"{message}","#) } else { String::new() },
                common
            ),
            _ => format!(
                r#"{{"timestamp":"{timestamp}","kind":"event","name":"{}","attributes":{{"step":"{}","message":"{message}"}},{common}"#,
                random.pick(&["trip_selected", "seat_chosen", "checkout_started"]),
                random.next_u64() % 5
            ),
        };
        total += line.len() + 1;
        lines.push(line);
    }
    lines
}
