//! `alertbook demo`: the whole of `alertbook run` over the simulated Busflow
//! day of the `demo` crate, on a virtual clock.
//!
//! What differs from `run` (everything else is `run`'s own code, started by
//! [`crate::serve`]):
//! - the clock: a [`rules::ScaledClock`] that starts at the beginning of the
//!   scripted day and runs `--speed` times faster than the wall until the day
//!   has been played, so the day ends "now";
//! - the data: the week-ago baseline and the hour before the day are loaded
//!   before the rules start, then a feeder appends the simulator's samples
//!   through the durable store (write-ahead log included) and its log lines
//!   through the catalog's PII redaction into the log store, a little ahead
//!   of the virtual time so every evaluation sees complete data; no scrape
//!   (not even the self-scrape) and no probe runs, since the simulator writes
//!   those series;
//! - the datasources: `datasource: sql` and `docker` rules and the SQL,
//!   Docker and trace checks of triage read the simulated PostgreSQL, Docker
//!   Engine and Tempo ([`demo::adapters`]); the demo never connects to a real
//!   database or swarm;
//! - notifications: the catalog's contacts route to webhooks of a local log
//!   receiver on a loopback port, which appends every payload as a JSON line
//!   to `<data>/notifications.jsonl`;
//! - a responder account `demo` with a fresh random password, printed in the
//!   banner, so acknowledging and closing alerts in the UI works at once;
//! - reload is refused (the demo's configuration is built in).
//!
//! When the day is over the feeder stops, rule evaluation stops (alert
//! states stay as the day left them), and the server keeps serving until
//! Ctrl-C, so the journal can still be written.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use rules::Clock as _;

/// The arguments of `alertbook demo`.
#[derive(Debug, clap::Args)]
pub struct Arguments {
    /// How many times faster than the wall the simulated day runs (2 to 5000); the default
    /// plays the 12-hour day in 15 minutes.
    #[arg(long, value_name = "N", default_value_t = 48, value_parser = clap::value_parser!(u32).range(2..=5000))]
    pub speed: u32,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9099")]
    pub listen: std::net::SocketAddr,
    /// Data directory; must be empty or absent [default: a temporary directory, removed at exit].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Seed of the simulation's noise.
    #[arg(long, value_name = "N", default_value_t = demo::DEFAULT_SEED, hide = true)]
    pub seed: u64,
}

/// The name of the demo's responder account.
pub const DEMO_USER: &str = "demo";
/// The file, in the data directory, the local receiver appends notifications to.
pub const NOTIFICATIONS_FILE: &str = "notifications.jsonl";
/// The file, in the data directory, describing the day being played (JSON).
pub const DAY_FILE: &str = "demo-day.json";
/// How far ahead of the virtual time the feeder keeps the stores, at least.
const MIN_LEAD_MS: i64 = 30 * demo::SECOND_MS;
/// How often the feeder appends.
const FEED_EVERY: Duration = Duration::from_millis(100);

/// Runs `alertbook demo`.
pub fn run(arguments: &Arguments) -> anyhow::Result<std::process::ExitCode> {
    let (data, _temporary) = match &arguments.data {
        Some(directory) => {
            if crate::builtin::is_non_empty_directory(directory)? {
                anyhow::bail!(
                    "--data {}: the demo needs an empty or absent directory (its data is tied to the day it plays)",
                    directory.display()
                );
            }
            (directory.clone(), None)
        }
        None => {
            let directory = tempfile::Builder::new()
                .prefix("alertbook-demo-")
                .tempdir()
                .context("cannot create a data directory")?;
            (directory.path().to_path_buf(), Some(directory))
        }
    };
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let receiver =
        std::net::TcpListener::bind("127.0.0.1:0").context("cannot listen for the local notification log")?;
    receiver.set_nonblocking(true).context("cannot set up the local notification log")?;
    let receiver_address = receiver.local_addr().context("cannot set up the local notification log")?;
    let mut password =
        accounts::new_secret().map_err(|error| anyhow::anyhow!("cannot make the demo password: {error}"))?;
    password.truncate(20);
    let speed = arguments.speed;
    // The scripted day ends when the clock meets the wall: it starts
    // (12 h × (speed − 1) / speed) before now, on a quarter hour.
    let wall_now = rules::SystemClock.now_ms();
    let span = demo::DAY_LENGTH_MS;
    let day = Arc::new(demo::Day::busflow_at(wall_now - span + span / i64::from(speed), arguments.seed));
    // What the day is, for the curious and for tests: its start rebuilds it (`demo::Day::busflow_at`).
    let description = serde_json::json!({
        "start_ms": day.start_ms(),
        "end_ms": day.end_ms(),
        "speed": speed,
        "seed": arguments.seed,
        "incidents": day.incidents().iter().map(|incident| serde_json::json!({
            "name": incident.name,
            "runbook_id": incident.alert_id,
            "alertname": incident.alertname,
            "story": incident.story,
            "fires_from_ms": incident.fires_from_ms,
            "fires_by_ms": incident.fires_by_ms,
        })).collect::<Vec<_>>(),
    });
    let description_file = data.join(DAY_FILE);
    std::fs::write(&description_file, format!("{description:#}\n"))
        .with_context(|| format!("cannot write {}", description_file.display()))?;
    let setup = Setup {
        day,
        speed,
        receiver: Some(receiver),
        receiver_address,
        notifications: data.join(NOTIFICATIONS_FILE),
        password,
    };
    let run_arguments = vec![
        "alertbook".into(),
        "run".into(),
        "--listen".into(),
        arguments.listen.to_string(),
        "--data".into(),
        data.display().to_string(),
        "--no-probes".into(),
        // Simulated data: fsync at most once a second.
        "--storage.wal-fsync".into(),
        "1s".into(),
    ];
    let crate::Cli { command: crate::Command::Run(run) } =
        <crate::Cli as clap::Parser>::try_parse_from(run_arguments).context("the demo's run arguments")?
    else {
        unreachable!("the demo's arguments name `run`")
    };
    crate::serve(*run, Some(setup))
}

/// What `alertbook demo` plugs into `alertbook run`.
pub struct Setup {
    day: Arc<demo::Day>,
    speed: u32,
    receiver: Option<std::net::TcpListener>,
    receiver_address: std::net::SocketAddr,
    notifications: PathBuf,
    password: String,
}

impl Setup {
    /// Loads everything before the day (the week-ago baseline, the lead-in)
    /// and starts the virtual clock at the day's start.
    pub fn start_clock(
        &self,
        durable: &ingest::durable::DurableStore,
        logs: &server::LogService,
    ) -> anyhow::Result<Arc<dyn rules::Clock>> {
        let started = std::time::Instant::now();
        let mut feeder = Feeder::new(self.day.clone());
        let mut from_ms = self.day.first_sample_ms();
        while from_ms < self.day.start_ms() {
            let to_ms = (from_ms + demo::HOUR_MS).min(self.day.start_ms());
            feeder.feed(from_ms, to_ms, durable, logs)?;
            from_ms = to_ms;
        }
        tracing::info!(
            samples = feeder.samples,
            lines = feeder.lines,
            seconds = started.elapsed().as_secs_f64(),
            "the simulated week-ago baseline and the hour before the day are loaded"
        );
        // The clock reads the day's start now and meets the wall when the day
        // (and the time the load took) has been played.
        // `catching_up` starts `span × (speed − 1) / speed` before the wall.
        let wall_now = rules::SystemClock.now_ms();
        let speed = i64::from(self.speed);
        let span = (wall_now - self.day.start_ms()) * speed / (speed - 1);
        Ok(Arc::new(rules::ScaledClock::catching_up(wall_now, span, self.speed)))
    }

    /// The SQL and Docker datasources of the rules: the simulated ones.
    pub fn rule_resolver(&self, catalog: &catalog::Catalog) -> rules::DatasourceResolver {
        let sql: Arc<dyn rules::Datasource> = Arc::new(demo::adapters::SqlRules::new(self.day.clone(), catalog));
        let docker: Arc<dyn rules::Datasource> = Arc::new(demo::adapters::DockerRules(self.day.clone()));
        Arc::new(move |_file: &str, group: &catalog::RuleGroup| match group.datasource {
            catalog::Datasource::Sql => Some(sql.clone()),
            catalog::Datasource::Docker => Some(docker.clone()),
            _ => None,
        })
    }

    /// The simulated day.
    pub fn day(&self) -> Arc<demo::Day> {
        self.day.clone()
    }

    /// The routing: the catalog's contacts, each receiver a webhook of the
    /// local notification log (`/<receiver>`), unrouted alerts to `/default`.
    pub fn routing(&self, catalog: &catalog::Catalog) -> anyhow::Result<Arc<notify::routing::RoutingConfig>> {
        let base = format!("http://{}", self.receiver_address);
        let contacts = catalog.contacts.clone().unwrap_or_default();
        let webhooks: Vec<(String, String)> =
            contacts.receivers().into_iter().map(|name| (name.to_owned(), format!("{base}/{name}"))).collect();
        let routing = notify::contacts::default_config_to(&webhooks, &contacts, &[format!("{base}/default")])
            .map_err(|errors| anyhow::anyhow!("the demo's routing is invalid:\n{errors}"))?;
        Ok(Arc::new(routing))
    }

    /// The local notification log: every webhook payload, as a JSON line.
    pub fn spawn_receiver(&mut self) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let listener = self.receiver.take().context("the notification log is started once")?;
        let listener = tokio::net::TcpListener::from_std(listener).context("cannot serve the notification log")?;
        let log = NotificationLog::open(&self.notifications)?;
        Ok(tokio::spawn(log.serve(listener)))
    }

    /// Creates the `demo` responder account.
    pub async fn create_account(&self, store: &state::Store, now_ms: i64) -> anyhow::Result<()> {
        let accounts = accounts::Accounts::new(store.clone())
            .map_err(|error| anyhow::anyhow!("cannot open the accounts: {error}"))?;
        accounts
            .add_user(DEMO_USER, accounts::Role::Responder, &self.password, true, now_ms)
            .await
            .map_err(|error| anyhow::anyhow!("cannot create the demo account: {error}"))
    }

    /// Appends the day as the virtual clock advances, a little ahead of it,
    /// on a thread of its own, until `stop` turns true or the whole day is
    /// in: then it calls `day_over` once `clock` (the one [`Setup::start_clock`]
    /// started) has passed the day's end.
    pub fn spawn_feeder(
        &self,
        clock: Arc<dyn rules::Clock>,
        durable: Arc<ingest::durable::DurableStore>,
        logs: Arc<server::LogService>,
        stop: Arc<AtomicBool>,
        day_over: impl FnOnce() + Send + 'static,
    ) -> anyhow::Result<std::thread::JoinHandle<()>> {
        let day = self.day.clone();
        let lead_ms = MIN_LEAD_MS.max(2 * i64::try_from(FEED_EVERY.as_millis()).unwrap_or(0) * i64::from(self.speed));
        std::thread::Builder::new()
            .name("demo-feeder".into())
            .spawn(move || {
                let mut feeder = Feeder::new(day.clone());
                let mut fed_to = day.start_ms();
                while fed_to < day.end_ms() && !stop.load(Ordering::Relaxed) {
                    let target = (clock.now_ms() + lead_ms).min(day.end_ms());
                    if target > fed_to {
                        if let Err(error) = feeder.feed(fed_to, target, &durable, &logs) {
                            tracing::error!(error = %format!("{error:#}"), "the demo feeder stopped");
                            return;
                        }
                        fed_to = target;
                    }
                    std::thread::sleep(FEED_EVERY);
                }
                while clock.now_ms() < day.end_ms() && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(FEED_EVERY);
                }
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                day_over();
                tracing::info!(
                    samples = feeder.samples,
                    lines = feeder.lines,
                    "the simulated day is over: rule evaluation stops, the UI keeps serving until Ctrl-C"
                );
            })
            .context("cannot start the demo feeder")
    }

    /// What the newcomer reads first.
    pub fn banner(&self, external_url: &str, data: &Path) -> String {
        let minutes = demo::DAY_LENGTH_MS as f64 / f64::from(self.speed) / 60_000.0;
        let mut incidents: Vec<&demo::Incident> = self.day.incidents().iter().collect();
        incidents.sort_by_key(|incident| incident.fires_from_ms);
        let mut text = format!(
            "\nalertbook demo: a simulated Busflow day, 12 hours played in {minutes:.0} minutes (speed {}×)\n\n\
             \x20 web UI        {external_url}/alerts   (runbook: {external_url}/runbook)\n\
             \x20 log in as     {DEMO_USER} / {}   (responder: acknowledge and close alerts)\n\
             \x20 notifications {}\n\
             \x20 data          {}\n\n\
             The day's incidents, one per runbook alert (both sides of the runbook's branches):\n",
            self.speed,
            self.password,
            self.notifications.display(),
            data.display()
        );
        for incident in incidents {
            let wall_minutes = (incident.fires_from_ms - self.day.start_ms()) as f64 / f64::from(self.speed) / 60_000.0;
            text.push_str(&format!(
                "  ~{wall_minutes:>4.1} min  {:<4} {:<28} {}\n",
                incident.alert_id, incident.alertname, incident.story
            ));
        }
        text.push_str(
            "\nEach alert's triage runs as it fires; its page shows the branch taken. Ctrl-C stops the demo.\n",
        );
        text
    }
}

/// Sets the SQL, Docker and trace checks of triage to the simulation's answers.
pub fn set_check_sources(day: &Arc<demo::Day>, catalog: &catalog::Catalog, sources: &mut triage::Sources) {
    sources.set(catalog::Datasource::Sql, Arc::new(demo::adapters::SqlChecks::new(day.clone(), catalog)));
    sources.set(catalog::Datasource::Docker, Arc::new(demo::adapters::DockerChecks(day.clone())));
    sources.set(catalog::Datasource::Traces, Arc::new(demo::adapters::Traces(day.clone())));
}

/// Appends slices of the day to the stores.
struct Feeder {
    day: Arc<demo::Day>,
    labels: HashMap<*const demo::Labels, tsdb::Labels>,
    samples: usize,
    lines: usize,
}

impl Feeder {
    fn new(day: Arc<demo::Day>) -> Self {
        Self { day, labels: HashMap::new(), samples: 0, lines: 0 }
    }

    /// Appends the samples and log lines of `[from_ms, to_ms)`.
    fn feed(
        &mut self,
        from_ms: i64,
        to_ms: i64,
        durable: &ingest::durable::DurableStore,
        logs: &server::LogService,
    ) -> anyhow::Result<()> {
        let mut batch: Vec<(tsdb::Labels, Vec<(i64, f64)>)> = Vec::new();
        let mut index: HashMap<*const demo::Labels, usize> = HashMap::new();
        for sample in self.day.samples_between(from_ms, to_ms) {
            let key = sample.labels as *const demo::Labels;
            let position = *index.entry(key).or_insert_with(|| {
                let labels =
                    self.labels.entry(key).or_insert_with(|| demo::adapters::tsdb_labels(sample.labels)).clone();
                batch.push((labels, Vec::new()));
                batch.len() - 1
            });
            batch[position].1.push((sample.time_ms, sample.value));
        }
        if !batch.is_empty() {
            let outcome = durable.append(&batch, &|_| true).context("cannot append the simulated samples")?;
            self.samples += outcome.samples_appended;
            if let Some(error) = outcome.first_error {
                tracing::warn!(error = %error, "simulated samples refused");
            }
        }
        let mut push = demo::adapters::push_streams(self.day.logs_between(from_ms, to_ms));
        if !push.is_empty() {
            logs.redact(&mut push);
            let stats = logs.store.append_at(push, to_ms * 1_000_000).context("cannot append the simulated logs")?;
            self.lines += stats.entries_appended;
            if let Some(rejection) = stats.rejected.first() {
                tracing::warn!(rejected = stats.rejected.len(), first = ?rejection.reason, "simulated log lines refused");
            }
        }
        Ok(())
    }
}

/// The local receiver of the demo's webhooks: `POST /<receiver>` with
/// Alertmanager's webhook payload, appended to the file as
/// `{"path": "/<receiver>", "payload": {...}}`.
struct NotificationLog {
    file: std::sync::Mutex<std::fs::File>,
}

impl NotificationLog {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Self { file: std::sync::Mutex::new(file) })
    }

    async fn serve(self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new().route("/{receiver}", axum::routing::post(receive)).with_state(Arc::new(self));
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(error = %error, "the local notification log stopped");
        }
    }
}

async fn receive(
    axum::extract::State(log): axum::extract::State<Arc<NotificationLog>>,
    axum::extract::Path(receiver): axum::extract::Path<String>,
    axum::Json(payload): axum::Json<serde_json::Value>,
) -> axum::http::StatusCode {
    let line = serde_json::json!({ "path": format!("/{receiver}"), "payload": payload }).to_string();
    let mut file = log.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match writeln!(file, "{line}") {
        Ok(()) => axum::http::StatusCode::OK,
        Err(error) => {
            tracing::error!(error = %error, "cannot append to the notification log");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}
