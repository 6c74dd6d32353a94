//! What reading a log rule group through a remote Loki API costs over the
//! embedded store: generated Grafana logfmt lines (`service_name=
//! "busflow_grafana"`, some with `sso_claim=missing`) go into one log store,
//! alertbook's server serves it on a loopback port, and the catalog's
//! `busflow-grafana-sso` group (A7) is evaluated by two rule managers,
//! interleaved: one over the store directly (`rules::LogsDatasource`), one
//! through `sources::loki::LokiDatasource` and the server's
//! `/loki/api/v1/query`. Both must fire the same alerts. Prints each side's
//! median and p90 evaluation time, the ratio, and /proc/loadavg.
//!
//!   remote-loki-bench [--lines N] [--rounds R] [--loki URL --loki-tenant T]
//!
//! `--loki URL` adds a third side, a real Loki at URL holding the same lines
//! (pushed by this program through its push API first).

use std::sync::Arc;
use std::time::{Duration, Instant};

use alertbook_bench::Random;
use anyhow::Context;
use clap::Parser;
use logstore::push::{PushEntry, PushStream};
use tsdb::Labels;

#[derive(Parser)]
struct Arguments {
    /// Lines in the five minutes before the evaluation.
    #[arg(long, default_value_t = 200_000)]
    lines: usize,
    /// Evaluations of each side.
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    /// A real Loki to compare with too (its push and query API).
    #[arg(long)]
    loki: Option<String>,
    /// The X-Scope-OrgID of --loki.
    #[arg(long)]
    loki_tenant: Option<String>,
}

const GROUP: &str = "busflow-grafana-sso";
const STREAMS: usize = 20;
const WINDOW_NS: i64 = 290_000_000_000;

fn build(lines: usize, end_ns: i64) -> Vec<PushStream> {
    let mut random = Random::new(0x5eed_1a7e);
    let tenants = ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell"];
    let per_stream = lines / STREAMS;
    let interval = WINDOW_NS / per_stream.max(1) as i64;
    (0..STREAMS)
        .map(|index| {
            let labels = Labels::from_pairs([
                ("service_name", "busflow_grafana".to_owned()),
                ("instance", format!("grafana-{index}")),
            ]);
            let entries = (0..per_stream)
                .map(|line| {
                    let claim = if random.next_u64().is_multiple_of(500) { "missing" } else { "present" };
                    PushEntry {
                        timestamp_ns: end_ns - WINDOW_NS + line as i64 * interval + index as i64,
                        line: format!(
                            r#"ts=2026-12-02T12:00:00Z level=info logger=context userId={} orgId=1 uname=user{} method=GET path=/api/dashboards status=200 tenant_id={} sso_claim={claim} msg="request completed""#,
                            random.next_u64() % 5000,
                            random.next_u64() % 5000,
                            random.pick(&tenants),
                        ),
                        metadata: Vec::new(),
                    }
                })
                .collect();
            PushStream { labels, entries }
        })
        .collect()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|text| text.trim().to_owned()).unwrap_or_else(|_| "n/a".to_owned())
}

fn percentile(durations: &[Duration], fraction: f64) -> Duration {
    let mut sorted = durations.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

fn manager(files: &[catalog::RuleFile], logs: Arc<dyn rules::Datasource>) -> rules::Manager {
    let store = Arc::new(tsdb::MemStore::new());
    let mut options = rules::ManagerOptions::embedded(rules::EmbeddedDatasource::new(store, promql::Engine::default()));
    options.logs_datasource = Some(logs);
    rules::Manager::new(files, options)
}

/// Evaluates the group once; returns the time taken and (alerts, rule errors).
fn evaluate(manager: &rules::Manager, time_ms: i64) -> (Duration, usize, Vec<String>) {
    let started = Instant::now();
    let (_, errors) = manager.evaluate_group(0, time_ms);
    let elapsed = started.elapsed();
    let alerts = manager.statuses()[0].rules.iter().map(|rule| rule.alerts.len()).sum();
    (elapsed, alerts, errors.into_iter().map(|error| error.message).collect())
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = catalog::load_rules(&[root.join("catalog/busflow/rules/logs.rules.yaml")])
        .map_err(|diagnostics| anyhow::anyhow!("{diagnostics}"))?;
    for file in &mut files {
        file.groups.retain(|group| group.name == GROUP);
    }
    anyhow::ensure!(files.iter().any(|file| !file.groups.is_empty()), "no group {GROUP} in the catalog");

    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let time_ms = now_ms - 10_000;
    let streams = build(arguments.lines, time_ms * 1_000_000);
    let total: usize = streams.iter().map(|stream| stream.entries.len()).sum();

    let directory = tempfile::tempdir()?;
    let options = logstore::LogStoreOptions { fsync: wal::FsyncPolicy::Never, ..Default::default() };
    let (store, _) = logstore::LogStore::open(directory.path(), options)?;
    let store = Arc::new(store);
    for chunk in streams.chunks(1) {
        let stats = store.append_at(chunk.to_vec(), time_ms * 1_000_000)?;
        anyhow::ensure!(stats.rejected.is_empty(), "entries refused: {:?}", stats.loki_message());
    }
    let engine = logql::Engine::default();

    // alertbook's own Loki API on loopback, over the same store.
    let runtime = tokio::runtime::Runtime::new()?;
    let catalog =
        catalog::load(&root.join("catalog/busflow")).map_err(|diagnostics| anyhow::anyhow!("{diagnostics}"))?;
    let durable = Arc::new(ingest::durable::DurableStore::in_memory(Arc::new(tsdb::MemStore::new())));
    let state = server::AppState::new(catalog, durable, promql::Engine::default());
    state.set_logs(Arc::new(server::LogService {
        store: store.clone(),
        engine: engine.clone(),
        redaction: None,
        decode: logstore::push::DecodeOptions::default(),
    }));
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = runtime.spawn(server::serve_listener(listener, state, async move {
        let _ = stopped.await;
    }));

    let health = sources::health::DatasourceHealth::detached();
    let remote = sources::loki::LokiDatasource::new(
        &sources::http::HttpOptions::new("alertbook-loki-api", format!("http://{address}")),
        health.clone(),
    )?;
    let mut sides: Vec<(String, rules::Manager)> = vec![
        ("embedded store".to_owned(), manager(&files, Arc::new(rules::LogsDatasource::new(store.clone(), engine)))),
        ("remote: alertbook's Loki API".to_owned(), manager(&files, Arc::new(remote))),
    ];
    if let Some(url) = &arguments.loki {
        push_to_loki(url, arguments.loki_tenant.as_deref(), &streams)?;
        let mut options = sources::http::HttpOptions::new("loki", url.clone());
        options.tenant = arguments.loki_tenant.clone();
        let loki = sources::loki::LokiDatasource::new(&options, health.clone())?;
        sides.push((format!("remote: Loki at {url}"), manager(&files, Arc::new(loki))));
    }
    drop(streams);

    println!("remote-loki-bench: {total} lines in {STREAMS} streams, group {GROUP}, {} rounds", arguments.rounds);
    println!("loadavg before: {}", loadavg());
    // One warm-up evaluation per side; all sides must agree.
    let mut expected = None;
    for (name, manager) in &sides {
        let (_, alerts, errors) = evaluate(manager, time_ms);
        anyhow::ensure!(errors.is_empty(), "{name}: {errors:?}");
        match expected {
            None => expected = Some(alerts),
            Some(count) => anyhow::ensure!(count == alerts, "{name} fired {alerts} alerts, the embedded store {count}"),
        }
    }
    let mut timings: Vec<Vec<Duration>> = vec![Vec::new(); sides.len()];
    for _ in 0..arguments.rounds {
        for (index, (_, manager)) in sides.iter().enumerate() {
            timings[index].push(evaluate(manager, time_ms).0);
        }
    }
    let baseline = percentile(&timings[0], 0.5);
    for ((name, _), durations) in sides.iter().zip(&timings) {
        let median = percentile(durations, 0.5);
        println!(
            "{name:<34} median {median:>10.2?}  p90 {:>10.2?}  ratio {:.3}",
            percentile(durations, 0.9),
            median.as_secs_f64() / baseline.as_secs_f64()
        );
    }
    println!("alerts fired on every side: {}", expected.unwrap_or_default());
    println!("loadavg after: {}", loadavg());
    if arguments.loki.is_none() {
        println!("real Loki: none (not installable from Debian here; pass --loki URL to compare with one)");
    }
    let _ = stop.send(());
    runtime.block_on(served).context("server task")??;
    Ok(())
}

/// Pushes the streams to a Loki's push API as JSON, 1,000 entries per request.
fn push_to_loki(url: &str, tenant: Option<&str>, streams: &[PushStream]) -> anyhow::Result<()> {
    let agent = ureq::Agent::new_with_defaults();
    for stream in streams {
        let labels: serde_json::Map<String, serde_json::Value> =
            stream.labels.iter().map(|label| (label.name.clone(), label.value.clone().into())).collect();
        for entries in stream.entries.chunks(1_000) {
            let values: Vec<[String; 2]> =
                entries.iter().map(|entry| [entry.timestamp_ns.to_string(), entry.line.clone()]).collect();
            let body = serde_json::json!({"streams": [{"stream": labels, "values": values}]});
            let mut request = agent.post(format!("{url}/loki/api/v1/push")).header("content-type", "application/json");
            if let Some(tenant) = tenant {
                request = request.header("X-Scope-OrgID", tenant);
            }
            request.send(body.to_string()).with_context(|| format!("push to {url}"))?;
        }
    }
    Ok(())
}
