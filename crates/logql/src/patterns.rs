//! Log pattern mining for Loki's `/loki/api/v1/patterns`: lines are
//! clustered by their token structure with the Drain algorithm (He et al.,
//! "Drain: An Online Log Parsing Approach with Fixed Depth Tree", 2017), and
//! each cluster's template is a pattern in LogQL's `pattern` syntax, the
//! varying tokens replaced by `<_>`.
//!
//! Key types: [`Miner`] (feed lines with their timestamps, then
//! [`Miner::patterns`]) and [`Pattern`] (the template and its occurrences per
//! time bucket). The miner follows Drain's fixed-depth tree: lines are split
//! by token count, then by their first tokens (tokens holding digits take a
//! wildcard branch), and in the leaf a line joins the most similar cluster
//! when the share of equal tokens reaches the similarity threshold, turning
//! the differing positions into `<_>`; otherwise it starts a cluster.
//! Numbers (and `key=number`) are masked before clustering, and a `key=value`
//! token whose value varies becomes `key=<_>`, as Loki shows logfmt lines.
//! Pure CPU work: no I/O, no clock.

use std::collections::{BTreeMap, HashMap};

/// The placeholder of a varying token, as in Loki's patterns.
pub const PLACEHOLDER: &str = "<_>";
/// Drain's similarity threshold (Loki's default).
const SIMILARITY_THRESHOLD: f64 = 0.3;
/// How many leading tokens route a line in the tree (Drain's depth minus two).
const PREFIX_TOKENS: usize = 2;
/// At most this many clusters per leaf; lines that fit none are dropped.
const MAX_CLUSTERS_PER_LEAF: usize = 100;
/// Lines longer than this many tokens are cut (their tail joins the last token).
const MAX_TOKENS: usize = 64;

/// One mined pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// Tokens joined by single spaces, varying ones as [`PLACEHOLDER`].
    pub pattern: String,
    /// `(bucket start in nanoseconds, lines)`, oldest first.
    pub samples: Vec<(i64, u64)>,
}

impl Pattern {
    pub fn total(&self) -> u64 {
        self.samples.iter().map(|(_, count)| count).sum()
    }
}

struct Cluster {
    template: Vec<String>,
    samples: BTreeMap<i64, u64>,
}

/// The Drain miner; see the module documentation.
pub struct Miner {
    step_ns: i64,
    /// (token count, routing prefix) → clusters.
    leaves: HashMap<(usize, Vec<String>), Vec<usize>>,
    clusters: Vec<Cluster>,
}

fn has_digit(token: &str) -> bool {
    token.bytes().any(|byte| byte.is_ascii_digit())
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.parse::<f64>().is_ok()
}

/// The `key=` prefix of a logfmt-like token, with the `=`.
fn key_prefix(token: &str) -> Option<&str> {
    let at = token.find('=')?;
    (at > 0 && token[..at].bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'.'))
        .then(|| &token[..=at])
}

fn tokenize(line: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    for token in line.split_ascii_whitespace() {
        if tokens.len() == MAX_TOKENS {
            if let Some(last) = tokens.last_mut() {
                last.push(' ');
                last.push_str(token);
            }
            continue;
        }
        let masked = match key_prefix(token) {
            Some(prefix) if is_number(&token[prefix.len()..]) => format!("{prefix}{PLACEHOLDER}"),
            None if is_number(token) => PLACEHOLDER.to_owned(),
            _ => token.to_owned(),
        };
        tokens.push(masked);
    }
    tokens
}

/// How alike a template and a line are: equal tokens count one, tokens with
/// the same `key=` half; placeholders count nothing.
fn similarity(template: &[String], tokens: &[String]) -> (f64, usize) {
    let mut score = 0.0;
    let mut placeholders = 0;
    for (left, right) in template.iter().zip(tokens) {
        if left == PLACEHOLDER || left.ends_with(&format!("={PLACEHOLDER}")) {
            placeholders += 1;
        }
        if left == right {
            score += 1.0;
        } else if key_prefix(left).is_some() && key_prefix(left) == key_prefix(right) {
            score += 0.5;
        }
    }
    (score / template.len().max(1) as f64, placeholders)
}

fn merge(template: &mut [String], tokens: &[String]) {
    for (left, right) in template.iter_mut().zip(tokens) {
        if left == right {
            continue;
        }
        *left = match key_prefix(left) {
            Some(prefix) if key_prefix(right) == Some(prefix) => format!("{prefix}{PLACEHOLDER}"),
            _ => PLACEHOLDER.to_owned(),
        };
    }
}

impl Miner {
    /// A miner counting occurrences in buckets of `step_ns` (at least 1 ns).
    pub fn new(step_ns: i64) -> Self {
        Self { step_ns: step_ns.max(1), leaves: HashMap::new(), clusters: Vec::new() }
    }

    /// Adds one line seen at `timestamp_ns`.
    pub fn add(&mut self, timestamp_ns: i64, line: &str) {
        let tokens = tokenize(line);
        if tokens.is_empty() {
            return;
        }
        let prefix: Vec<String> = tokens
            .iter()
            .take(PREFIX_TOKENS)
            .map(|token| if has_digit(token) { PLACEHOLDER.to_owned() } else { token.clone() })
            .collect();
        let bucket = timestamp_ns.div_euclid(self.step_ns) * self.step_ns;
        let leaf = self.leaves.entry((tokens.len(), prefix)).or_default();
        let mut best: Option<(usize, f64, usize)> = None;
        for &index in leaf.iter() {
            let (score, placeholders) = similarity(&self.clusters[index].template, &tokens);
            let better = match best {
                None => true,
                Some((_, best_score, best_placeholders)) => {
                    score > best_score || (score == best_score && placeholders > best_placeholders)
                }
            };
            if better {
                best = Some((index, score, placeholders));
            }
        }
        match best {
            Some((index, score, _)) if score >= SIMILARITY_THRESHOLD => {
                let cluster = &mut self.clusters[index];
                merge(&mut cluster.template, &tokens);
                *cluster.samples.entry(bucket).or_default() += 1;
            }
            _ if leaf.len() < MAX_CLUSTERS_PER_LEAF => {
                leaf.push(self.clusters.len());
                self.clusters.push(Cluster { template: tokens, samples: BTreeMap::from([(bucket, 1)]) });
            }
            _ => {}
        }
    }

    /// The patterns found, the most frequent first; clusters whose templates
    /// ended up equal are merged.
    pub fn patterns(&self) -> Vec<Pattern> {
        let mut by_text: BTreeMap<String, BTreeMap<i64, u64>> = BTreeMap::new();
        for cluster in &self.clusters {
            let samples = by_text.entry(cluster.template.join(" ")).or_default();
            for (&bucket, &count) in &cluster.samples {
                *samples.entry(bucket).or_default() += count;
            }
        }
        let mut patterns: Vec<Pattern> = by_text
            .into_iter()
            .map(|(pattern, samples)| Pattern { pattern, samples: samples.into_iter().collect() })
            .collect();
        patterns.sort_by(|left, right| right.total().cmp(&left.total()).then_with(|| left.pattern.cmp(&right.pattern)));
        patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: i64 = 10_000_000_000;

    #[test]
    fn the_documented_logfmt_lines_give_the_documented_pattern() {
        let mut miner = Miner::new(STEP);
        miner.add(0, "ts=2024-03-30T23:03:40 caller=grpc_logging.go:66 level=info method=/cortex.Ingester/Push duration=200ms msg=gRPC");
        miner.add(1, "ts=2024-03-30T23:03:41 caller=grpc_logging.go:66 level=info method=/cortex.Ingester/Push duration=500ms msg=gRPC");
        let patterns = miner.patterns();
        assert_eq!(patterns.len(), 1);
        assert_eq!(
            patterns[0].pattern,
            "ts=<_> caller=grpc_logging.go:66 level=info method=/cortex.Ingester/Push duration=<_> msg=gRPC"
        );
        assert_eq!(patterns[0].samples, [(0, 2)]);
    }

    #[test]
    fn different_structures_stay_apart_and_counts_fall_in_buckets() {
        let mut miner = Miner::new(STEP);
        for index in 0..30 {
            let time = index * 1_000_000_000;
            miner.add(time, &format!("GET /api/users/{index} 200 {}ms", 10 + index));
            if index % 3 == 0 {
                miner.add(time, &format!("connection to db-{} refused after {index} retries", index % 2));
            }
        }
        miner.add(0, "");
        let patterns = miner.patterns();
        assert_eq!(patterns.len(), 2, "{patterns:?}");
        assert_eq!(patterns[0].pattern, "GET <_> <_> <_>");
        assert_eq!(patterns[0].samples, [(0, 10), (STEP, 10), (2 * STEP, 10)]);
        assert_eq!(patterns[1].pattern, "connection to <_> refused after <_> retries");
        assert_eq!(patterns[1].total(), 10);
    }
}

#[cfg(test)]
mod measurements {
    //! Not a test: prints the miner's throughput on varied lines.
    //! `cargo test --release -p logql --lib patterns::measurements -- --ignored --nocapture`

    use super::*;

    #[test]
    #[ignore = "a measurement, run by hand"]
    fn mining_200k_lines_of_eight_formats() {
        let mut lines = Vec::with_capacity(200_000);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for index in 0..200_000u64 {
            let value = next();
            let line = match value % 8 {
                0 => format!(
                    "ts=2026-12-02T13:{:02}:{:02} caller=grpc_logging.go:66 level=info method=/cortex.Ingester/Push duration={}ms msg=gRPC",
                    index % 60,
                    value % 60,
                    value % 900
                ),
                1 => format!("GET /api/bookings/{} HTTP/1.1 200 {} {}ms", value % 100_000, value % 5000, value % 300),
                2 => format!(
                    "{{\"level\":\"warn\",\"msg\":\"slow query\",\"table\":\"bookings\",\"took_ms\":{}}}",
                    value % 2000
                ),
                3 => format!("connection to db-{} refused after {} retries", value % 4, value % 9),
                4 => format!("user {} logged in from 10.0.{}.{}", value % 10_000, value % 255, (value >> 8) % 255),
                5 => format!(
                    "level=error msg=\"payment failed\" provider=stripe code={} order={}",
                    value % 50,
                    value % 1_000_000
                ),
                6 => format!("cache miss key=route:{}:{} size={}B", value % 100, value % 7, value % 4096),
                _ => format!("worker {} finished job {} in {}s", value % 16, value % 1_000_000, value % 90),
            };
            lines.push(line);
        }
        let bytes: usize = lines.iter().map(String::len).sum();
        let started = std::time::Instant::now();
        let mut miner = Miner::new(10_000_000_000);
        for (index, line) in lines.iter().enumerate() {
            miner.add(index as i64 * 1_000_000, line);
        }
        let patterns = miner.patterns();
        let seconds = started.elapsed().as_secs_f64();
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!(
            "{} lines ({:.1} MB) -> {} patterns in {:.3}s: {:.0} lines/s, {:.1} MB/s; load {}",
            lines.len(),
            bytes as f64 / 1e6,
            patterns.len(),
            seconds,
            lines.len() as f64 / seconds,
            bytes as f64 / 1e6 / seconds,
            load.trim()
        );
        for pattern in patterns.iter().take(10) {
            println!("{:>7} {}", pattern.total(), pattern.pattern);
        }
    }
}
