//! What one SQL rule evaluation costs on top of its query, on a real
//! PostgreSQL with pg_cron (`bench/sql.sh` starts one and seeds it).
//!
//! The same query, the catalog's A4 (`PgCronJobFailed`), is run four ways in
//! one process, interleaved round by round so that load and caches hit all
//! alike:
//!
//! - `psql`: one `psql` session runs the query `--repeat` times with
//!   `\timing on`; its client-side times are the peer's own measure;
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

/// psql's own `\timing` of the query run `repeat` times in one session.
fn psql_times(psql: &str, url: &str, query: &str, repeat: usize) -> anyhow::Result<Vec<Duration>> {
    let mut script = String::from("\\timing on\n\\o /dev/null\n");
    let statement = format!("{};\n", query.trim().trim_end_matches(';'));
    for _ in 0..repeat + 5 {
        script.push_str(&statement);
    }
    let mut child = std::process::Command::new(psql)
        .args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {psql}"))?;
    use std::io::Write as _;
    child.stdin.take().context("psql stdin")?.write_all(script.as_bytes())?;
    let output = child.wait_with_output()?;
    anyhow::ensure!(output.status.success(), "psql failed: {}", String::from_utf8_lossy(&output.stderr));
    let times: Vec<Duration> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("Time: "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .skip(5)
        .collect();
    anyhow::ensure!(times.len() == repeat, "psql printed {} timings, expected {repeat}", times.len());
    Ok(times)
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

    // Warm-up: connections, prepared statements, the server's caches.
    let alerts = datasource.query_samples(&query)?.len();
    anyhow::ensure!(raw(&mut connection)? == alerts, "raw and datasource disagree on the rows");
    for _ in 0..5 {
        raw(&mut connection)?;
        datasource.query_samples(&query)?;
        manager.evaluate_group(0, now_ms());
    }
    let mut raw_times = Vec::with_capacity(arguments.repeat);
    let mut datasource_times = Vec::with_capacity(arguments.repeat);
    let mut evaluation_times = Vec::with_capacity(arguments.repeat);
    for round in 0..arguments.repeat {
        let mut ways: [&mut dyn FnMut() -> anyhow::Result<()>; 3] = [
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
        ways.rotate_left(round % 3);
        for way in ways.iter_mut() {
            way()?;
        }
    }
    let mut psql = psql_times(&arguments.psql, &url, &query, arguments.repeat)?;
    let load_after = loadavg();

    println!("A4 PgCronJobFailed: {alerts} alerts per evaluation, {} rounds", arguments.repeat);
    println!("{:<12} {:>10} {:>10}", "way", "p50 ms", "p90 ms");
    let mut rows = [
        ("psql", &mut psql),
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
