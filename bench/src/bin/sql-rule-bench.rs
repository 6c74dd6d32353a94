//! What one SQL rule evaluation costs on top of its query, on a real
//! PostgreSQL with pg_cron (`bench/sql.sh` starts one and seeds it).
//!
//! The same query, the catalog's A4 (`PgCronJobFailed`), is run four ways in
//! one process, interleaved round by round so that load and caches hit all
//! alike:
//!
//! - `psql`: one `psql` session with `\timing on` runs the query in its
//!   turn each round; its client-side times are the peer's own measure;
//! - `sqlx raw`: the query alone on one sqlx connection (prepared once, as
//!   psql does not, so this is the floor);
//! - `datasource`: alertbook's `PostgresDatasource::query` (pool checkout,
//!   `BEGIN READ ONLY`, the query, `ROLLBACK`, rows to samples);
//! - `evaluation`: alertbook's `Manager::evaluate_group` of the catalog's SQL
//!   group (the datasource, alert state, `ALERTS` written to the store).
//!
//! It prints p50/p90 per way, the added time `evaluation p50 − sqlx raw p50`
//! and `− psql p50` in milliseconds with their ratios, and `/proc/loadavg`
//! before and after.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use sqlx::Connection as _;

#[derive(Debug, Parser)]
#[command(about = "SQL rule evaluation overhead of alertbook against the query's own time")]
struct Arguments {
    /// A file holding the DSN of the seeded PostgreSQL (pg_cron installed).
    #[arg(long)]
    url_file: std::path::PathBuf,
    /// The catalog's SQL rule file.
    #[arg(long, default_value = "catalog/busflow/rules/sql.rules.yaml")]
    rules: std::path::PathBuf,
    /// Timed rounds per way.
    #[arg(long, default_value_t = 200)]
    repeat: usize,
    /// psql binary.
    #[arg(long, default_value = "/usr/lib/postgresql/15/bin/psql")]
    psql: String,
}

fn percentile(samples: &mut [Duration], quantile: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * quantile).round() as usize;
    samples[index.min(samples.len() - 1)]
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// One psql session with `\timing on`, asked one query at a time so that it
/// takes its turn in the rounds like the other ways.
struct Psql {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Psql {
    fn start(psql: &str, url: &str) -> anyhow::Result<Self> {
        let mut child = std::process::Command::new(psql)
            .args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot run {psql}"))?;
        let mut input = child.stdin.take().context("psql stdin")?;
        let output = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().context("psql stdout")?));
        use std::io::Write as _;
        input.write_all(b"\\timing on\n\\o /dev/null\n")?;
        Ok(Self { child, input, output })
    }

    /// psql's own time of one run of `query`.
    fn time(&mut self, query: &str) -> anyhow::Result<Duration> {
        use std::io::Write as _;
        writeln!(self.input, "{};", query.trim().trim_end_matches(';'))?;
        self.input.flush()?;
        for line in self.output.by_ref() {
            let line = line?;
            if let Some(ms) = line.strip_prefix("Time: ").and_then(|rest| rest.split_whitespace().next()) {
                return Ok(Duration::from_secs_f64(ms.parse::<f64>()? / 1000.0));
            }
        }
        anyhow::bail!("psql ended without a timing")
    }
}

impl Drop for Psql {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let url = std::fs::read_to_string(&arguments.url_file)
        .with_context(|| format!("cannot read {}", arguments.url_file.display()))?
        .trim()
        .to_owned();
    let files = catalog::load_rules(std::slice::from_ref(&arguments.rules))
        .map_err(|diagnostics| anyhow::anyhow!("{diagnostics}"))?;
    let group = files.first().and_then(|file| file.groups.first()).context("no SQL group")?;
    let query = group.rules.first().context("no rule")?.expr.clone();
    let load_before = loadavg();

    let options = sources::sql::PostgresOptions::from_url("sql", &url, None)?;
    let datasource = Arc::new(sources::sql::PostgresDatasource::new(
        options.clone(),
        sources::health::DatasourceHealth::detached(),
    )?);
    let store = Arc::new(tsdb::MemStore::new());
    let mut manager_options =
        rules::ManagerOptions::embedded(rules::EmbeddedDatasource::new(store, promql::Engine::default()));
    let chosen = datasource.clone();
    manager_options.resolve_datasource = Some(Arc::new(move |_file: &str, _group: &catalog::RuleGroup| {
        Some(chosen.clone() as Arc<dyn rules::Datasource>)
    }));
    let manager = rules::Manager::new(&files, manager_options);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut connection = runtime.block_on(sqlx::PgConnection::connect(&url))?;
    let raw = |connection: &mut sqlx::PgConnection| -> anyhow::Result<usize> {
        let rows = runtime
            .block_on(sqlx::query(sqlx::AssertSqlSafe(query.clone())).fetch_all(&mut *connection))
            .context("raw query")?;
        Ok(rows.len())
    };

    let mut psql = Psql::start(&arguments.psql, &url)?;
    // Warm-up: connections, prepared statements, the server's caches.
    let alerts = datasource.query_samples(&query)?.len();
    anyhow::ensure!(raw(&mut connection)? == alerts, "raw and datasource disagree on the rows");
    for _ in 0..5 {
        psql.time(&query)?;
        raw(&mut connection)?;
        datasource.query_samples(&query)?;
        manager.evaluate_group(0, now_ms());
    }
    let mut psql_times = Vec::with_capacity(arguments.repeat);
    let mut raw_times = Vec::with_capacity(arguments.repeat);
    let mut datasource_times = Vec::with_capacity(arguments.repeat);
    let mut evaluation_times = Vec::with_capacity(arguments.repeat);
    for round in 0..arguments.repeat {
        let mut ways: [&mut dyn FnMut() -> anyhow::Result<()>; 4] = [
            &mut || {
                psql_times.push(psql.time(&query)?);
                Ok(())
            },
            &mut || {
                let started = Instant::now();
                raw(&mut connection)?;
                raw_times.push(started.elapsed());
                Ok(())
            },
            &mut || {
                let started = Instant::now();
                datasource.query_samples(&query)?;
                datasource_times.push(started.elapsed());
                Ok(())
            },
            &mut || {
                let started = Instant::now();
                let (_, errors) = manager.evaluate_group(0, now_ms());
                evaluation_times.push(started.elapsed());
                anyhow::ensure!(errors.is_empty(), "rule errors: {errors:?}");
                Ok(())
            },
        ];
        ways.rotate_left(round % 4);
        for way in ways.iter_mut() {
            way()?;
        }
    }
    let load_after = loadavg();

    println!("A4 PgCronJobFailed: {alerts} alerts per evaluation, {} rounds", arguments.repeat);
    println!("{:<12} {:>10} {:>10}", "way", "p50 ms", "p90 ms");
    let mut rows = [
        ("psql", &mut psql_times),
        ("sqlx raw", &mut raw_times),
        ("datasource", &mut datasource_times),
        ("evaluation", &mut evaluation_times),
    ];
    let mut medians = Vec::new();
    for (name, samples) in rows.iter_mut() {
        let p50 = percentile(samples, 0.5);
        let p90 = percentile(samples, 0.9);
        medians.push(p50);
        println!("{name:<12} {:>10.3} {:>10.3}", milliseconds(p50), milliseconds(p90));
    }
    let (psql_p50, raw_p50, evaluation_p50) = (medians[0], medians[1], medians[3]);
    let added_raw = milliseconds(evaluation_p50) - milliseconds(raw_p50);
    let added_psql = milliseconds(evaluation_p50) - milliseconds(psql_p50);
    println!(
        "added by alertbook: {added_raw:.3} ms over sqlx raw (ratio {:.2}), {added_psql:.3} ms over psql (ratio {:.2}); target < 5 ms",
        evaluation_p50.as_secs_f64() / raw_p50.as_secs_f64(),
        evaluation_p50.as_secs_f64() / psql_p50.as_secs_f64(),
    );
    println!("loadavg before: {load_before}");
    println!("loadavg after:  {load_after}");
    Ok(())
}
