//! The `alertbook` command line: the one place that prints to the terminal.
//!
//! Subcommands: `run` (the server and the rule evaluation loop), `check`
//! (validate catalogs, rule files, contracts and configuration), `runbook`
//! (list or print entries), `test promql` and `test rules` (promtool's rule
//! unit tests), `replay` (recorded metrics through the rules), `user` and
//! `token` (local accounts), `journal` (the on-call journal), `tsdb
//! create-blocks-from openmetrics` (blocks from a timestamped file), `catalog export`
//! (the built-in catalog written out), `completions` (shell completion
//! scripts) and `demo` (`run` over a simulated Busflow day). Each maps
//! its arguments onto library crates and their results onto output and exit
//! status; no domain logic lives here.

mod builtin;
mod config;
mod datasources;
mod demo_command;
mod evaluation;
mod journal_command;
mod journal_run;
mod links;
mod log_input;
mod logs;
mod memory;
mod probe_command;
mod probing;
mod reload;
mod replay;
mod routes_command;
mod routing;
mod scraping;
mod status;
mod storage;
mod test_rules;
mod test_triage;
mod triage_run;
mod tsdb_command;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "alertbook",
    version = builtin::VERSION,
    about = "Alerting that runs the runbook: Prometheus-format rules over metrics, logs, SQL, Docker state and probes",
    long_about = "alertbook collects metrics and logs, stores them, and evaluates Prometheus-format alert rules over \
                  them and over PostgreSQL and the Docker Engine; it probes HTTP, TCP, TLS, SMTP and S3 endpoints; \
                  firing alerts go to Alertmanagers, and through alertbook's own routing (Alertmanager's \
                  alertmanager.yml when alerting.config_file names one, else the catalog's contacts) to webhook, \
                  Slack, PagerDuty and email receivers; the runbook and a web UI are served as pages; when an alert \
                  fires, its runbook entry's checks run (triage) and pick the branch its notification names. \
                  Responders acknowledge and close alerts in the on-call journal (the closing fields the catalog \
                  requires; SQLite under --data, or PostgreSQL), and whoever acknowledged an alert without closing \
                  it is reminded after journal.remind_after; `alertbook user add` and `alertbook token create` \
                  manage the local users and API tokens, `alertbook journal list|show|export` reads the journal. \
                  The Busflow catalog (catalog/busflow) is built into the binary and is the default; \
                  --catalog DIR (or catalog: in alertbook.yaml) uses another, and `alertbook catalog export DIR` \
                  writes the built-in one out for editing. `alertbook demo` runs it all over a simulated \
                  Busflow day in which every runbook alert fires within minutes."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the alertbook server.
    ///
    /// Serves /-/healthy, /-/ready and the runbook (/runbook as HTML, /runbook.md and
    /// /runbook/<ID>.md as Markdown). Flags override the configuration file.
    Run(Box<RunArgs>),
    /// Validate catalogs, rule files, contract files and configuration files.
    ///
    /// A directory with a catalog.yaml is checked as a catalog: runbook entries, triage
    /// steps, contracts and rule files, and the links between them. A file is checked as a
    /// contract when it has `kind`, as an alertmanager.yml when it has `route` or
    /// `receivers` (refused where `amtool check-config` refuses it, and where it needs an
    /// integration alertbook does not deliver to), as a configuration file when it has one
    /// of the configuration's keys (`catalog`, `listen`, `scrape_configs`...), else as a
    /// Prometheus rule file, accepted exactly as `promtool check rules` accepts it (an empty
    /// file is a rule file of 0 groups). A configuration file is checked with the catalog
    /// and the alertmanager.yml it names. All errors are printed at once as file:line:col
    /// with the source line; the exit status is 1 when any error was found. Without PATH,
    /// checks the built-in Busflow catalog (the default one).
    Check {
        /// Paths to check [default: the built-in Busflow catalog].
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// A configuration file (alertbook.yaml) to check, with the catalog it names.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Which metric and label names rule files may use: `legacy` ([a-zA-Z_:][a-zA-Z0-9_:]*,
        /// Prometheus 2) or `utf8` (any UTF-8 string, Prometheus 3's default).
        #[arg(long, value_name = "SCHEME", default_value = "legacy", value_parser = ["legacy", "utf8"])]
        name_validation_scheme: String,
        /// For a catalog: also list the runbook branches no `triage_test` in its tests/ directory takes.
        #[arg(long)]
        coverage: bool,
    },
    /// List the runbook's alerts, or print one entry by ID (A3) or alertname (PiiLeakDetected).
    Runbook {
        /// The entry's ID or alertname; omit to list every alert.
        #[arg(value_name = "ID|ALERTNAME")]
        key: Option<String>,
        /// Catalog directory [default: the built-in Busflow catalog].
        #[arg(long, value_name = "DIR")]
        catalog: Option<PathBuf>,
        /// Print the whole runbook as Markdown (the content of runbook.md).
        #[arg(long, conflicts_with = "key")]
        markdown: bool,
    },
    /// Test an alertmanager.yml's routing: `alertbook routes test --config FILE label=value...`.
    #[command(subcommand)]
    Routes(routes_command::RoutesCommand),
    /// Run test scripts: PromQL conformance scripts and rule unit tests.
    #[command(subcommand)]
    Test(TestCommand),
    /// Work with a data directory's blocks: `alertbook tsdb create-blocks-from openmetrics FILE DATA_DIR`.
    #[command(subcommand)]
    Tsdb(tsdb_command::TsdbCommand),
    /// Replay recorded metrics through the rules and print every alert state change.
    ///
    /// Loads an OpenMetrics or Prometheus text file with timestamps into a fresh in-memory
    /// store, evaluates the rules from --from to --to every --step as if live, and prints one
    /// JSON line per state change: {"time": <unix seconds>, "alertname": ..., "labels": {...},
    /// "state": "pending|firing|resolved", "value": <number>}.
    Replay(replay::Arguments),
    /// Run one probe check and print the series it writes.
    ///
    /// Checks TARGET once with the prober alertbook run uses for the catalog's `kind: probes`
    /// contracts and prints probe_success, probe_duration_seconds, probe_http_status_code (http,
    /// s3), probe_ssl_earliest_cert_expiry (whenever a peer certificate was seen, also an
    /// expired or untrusted one) and, on failure, probe_failure_reason{reason} in the Prometheus
    /// text format; the reason and message of a failure go to stderr. Credentials are read from
    /// the files named by the *-file options and never printed. Exits 0 when the check
    /// succeeded, 1 when it failed, 2 for invalid arguments.
    Probe(Box<probe_command::Arguments>),
    /// Run an alert's triage by hand and print it, a block per step.
    ///
    /// Runs the runbook entry's checks for an alert with the given labels: metrics and probe
    /// checks against a Prometheus-compatible API (--prometheus, a running alertbook by
    /// default), SQL and Docker checks against the configuration's `sql` and `docker`
    /// datasources (--config), log checks against its `triage_logs` Loki and trace checks against its
    /// Tempo; a check whose datasource is not configured is listed as missing.
    Triage(triage_run::ManualArguments),
    /// Manage local users (viewer, responder, admin) of the journal API and web UI.
    #[command(subcommand)]
    User(journal_command::UserCommand),
    /// Create API tokens (`Authorization: Bearer <token>`).
    #[command(subcommand)]
    Token(journal_command::TokenCommand),
    /// Read the on-call journal: list, show one entry with its revisions, export.
    #[command(subcommand)]
    Journal(journal_command::JournalCommand),
    /// Work with the catalog built into the binary (the Busflow catalog).
    #[command(subcommand)]
    Catalog(builtin::CatalogCommand),
    /// Run alertbook over a simulated Busflow day: every runbook alert fires within minutes.
    ///
    /// The whole system (store, rules, triage, routing, journal, web UI) on a virtual clock,
    /// fed by a built-in simulator of Busflow: API traffic per tenant and route, latency
    /// histograms, Traefik metrics and access logs, Faro and Grafana logs, probes, Loki
    /// compactor and bucket gauges, certificates, and PostgreSQL, Docker and Tempo answers
    /// (never a real database or swarm). A scripted 12-hour day holds an incident for each
    /// alert A1-A12; notifications go to a local log (<data>/notifications.jsonl); a
    /// responder account `demo` is created and its password printed, so alerts can be
    /// acknowledged and closed in the UI. The day ends when the clock meets the wall;
    /// rule evaluation then stops and the UI keeps serving until Ctrl-C.
    Demo(demo_command::Arguments),
    /// Print a shell completion script: `alertbook completions bash > /etc/bash_completion.d/alertbook`.
    Completions {
        /// The shell to complete for.
        #[arg(value_name = "SHELL", value_enum)]
        shell: builtin::Shell,
    },
}

/// The arguments of `alertbook run`.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Configuration file (YAML: catalog, listen, data).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:9099].
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Data directory [default: ./data].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Catalog directory [default: the configuration's, else the built-in Busflow catalog].
    #[arg(long, value_name = "DIR")]
    catalog: Option<PathBuf>,
    /// The URL under which alertbook is reachable from outside (Prometheus's flag), e.g. behind a
    /// proxy: the base of every link it sends or renders (alerts' generatorURL, notifications'
    /// externalURL and silence links, `{{ $externalURL }}` in rule annotations such as the
    /// catalog's runbook_url) [default: external_url: of the configuration, else http://<listen>,
    /// https:// under TLS].
    #[arg(long = "web.external-url", value_name = "URL")]
    external_url: Option<String>,
    #[command(flatten)]
    query: QueryFlags,
    /// Load an OpenMetrics or Prometheus text file with timestamps into the store before
    /// serving (repeatable); the backfill format of `promtool tsdb create-blocks-from`.
    #[arg(long, value_name = "FILE")]
    backfill: Vec<PathBuf>,
    /// Most active series ingest may create; samples of further series are refused with
    /// a clear error to the sender. 0: no limit.
    #[arg(long = "storage.max-series", value_name = "N", default_value_t = 0)]
    max_series: usize,
    /// When ingested samples are fsynced in the write-ahead log: `always` (before the
    /// sender is answered), `never` (the operating system decides; survives a killed
    /// process, not a power loss), or a duration such as `1s` (at most that late).
    #[arg(long = "storage.wal-fsync", value_name = "POLICY", default_value = "always", value_parser = parse_fsync_policy)]
    wal_fsync: wal::FsyncPolicy,
    #[command(flatten)]
    storage: storage::StorageFlags,
    #[command(flatten)]
    notify: NotifyFlags,
    #[command(flatten)]
    logs: logs::LogFlags,
    /// Do not run the probes of the catalog's `kind: probes` contracts (by default every
    /// target is checked on its contract's interval and writes probe_* series).
    #[arg(long = "no-probes")]
    no_probes: bool,
    #[command(flatten)]
    triage: triage_run::TriageFlags,
    /// How often acknowledged alerts without a journal entry are looked for (tests shorten it).
    #[arg(long = "journal.reminder-interval", value_name = "DURATION", default_value = "60s", value_parser = parse_duration_flag, hide = true)]
    reminder_interval: std::time::Duration,
    #[command(flatten)]
    web_tls: WebTlsFlags,
    /// Enable the lifecycle API: POST or PUT /-/reload reloads the configuration (as SIGHUP
    /// does); without it the endpoint answers 403, as in Prometheus. Once local users exist it
    /// needs an admin.
    #[arg(long = "web.enable-lifecycle")]
    enable_lifecycle: bool,
}

/// HTTPS serving: both files or neither.
#[derive(Debug, clap::Args)]
struct WebTlsFlags {
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --web.tls-key-file.
    #[arg(long = "web.tls-cert-file", value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// The PEM private key of --web.tls-cert-file (PKCS#8, RSA or EC).
    #[arg(long = "web.tls-key-file", value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
}

impl WebTlsFlags {
    /// The loaded certificate and key, checked now so a bad file stops the start.
    fn load(self) -> anyhow::Result<Option<server::ServerTls>> {
        match (self.cert, self.key) {
            (Some(cert), Some(key)) => Ok(Some(server::ServerTls::load(&server::TlsFiles { cert, key })?)),
            (None, None) => Ok(None),
            _ => anyhow::bail!("--web.tls-cert-file and --web.tls-key-file go together: give both or neither"),
        }
    }
}

#[derive(Debug, Subcommand)]
enum TestCommand {
    /// Run scripts in Prometheus's promqltest language against alertbook's PromQL engine.
    ///
    /// Each FILE (or every *.test file of a directory) is a script of `load`, `clear` and
    /// `eval` commands. Prints per-file counts, each failure with its query, what was
    /// expected and what came, each skipped case with the feature it needs, and a last line
    /// `N passed, M failed, K skipped`. Exits 1 when any case fails.
    Promql {
        /// Script files or directories of *.test files.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
        /// Print only the summary lines, not each failure and skip.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Run unit tests of rule files in promtool's format (`promtool test rules`).
    ///
    /// Each FILE lists rule_files, input_series, alert_rule_test and promql_expr_test. Prints
    /// each file's SUCCESS or FAILED with what was expected and what came, and a last line
    /// `N passed, M failed` counting test groups. Exits 1 when any test fails.
    Rules {
        /// Unit-test files.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
        /// Run only the test groups whose name matches this regular expression (repeatable).
        #[arg(long, value_name = "REGEX")]
        run: Vec<String>,
        /// Ignore fields the rule-file format does not know.
        #[arg(long)]
        ignore_unknown_fields: bool,
        /// Also write a JUnit XML report to FILE.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
}

/// Where alerts are sent.
#[derive(Debug, clap::Args)]
struct NotifyFlags {
    /// An Alertmanager to send alerts to through its API v2, e.g. http://127.0.0.1:9093 (repeatable).
    #[arg(long = "alertmanager.url", value_name = "URL")]
    alertmanagers: Vec<String>,
    /// A webhook receiving Alertmanager's webhook payload, as NAME=URL (repeatable); used by
    /// the default routing (without alerting.config_file): every alert, or those whose
    /// `route` label is NAME
    #[arg(long = "notify.webhook", value_name = "NAME=URL")]
    webhooks: Vec<String>,
}

/// Limits and defaults of PromQL evaluation, named as Prometheus names them.
#[derive(Debug, clap::Args)]
struct QueryFlags {
    /// Longest a query may run before it is aborted (PromQL and LogQL alike).
    #[arg(long = "query.timeout", value_name = "DURATION", default_value = "2m", value_parser = parse_duration_flag)]
    timeout: std::time::Duration,
    /// Most samples a single query may load into memory.
    #[arg(long = "query.max-samples", value_name = "N", default_value_t = 50_000_000)]
    max_samples: usize,
    /// How far back an instant selector looks for the latest sample.
    #[arg(long = "query.lookback-delta", value_name = "DURATION", default_value = "5m", value_parser = parse_duration_flag)]
    lookback_delta: std::time::Duration,
}

impl QueryFlags {
    fn engine(&self) -> promql::Engine {
        promql::Engine::new(promql::EngineOptions {
            lookback_delta_ms: i64::try_from(self.lookback_delta.as_millis()).unwrap_or(i64::MAX),
            max_samples: self.max_samples,
            timeout: self.timeout,
            ..promql::EngineOptions::default()
        })
    }
}

fn parse_fsync_policy(text: &str) -> Result<wal::FsyncPolicy, String> {
    match text {
        "always" => Ok(wal::FsyncPolicy::Always),
        "never" => Ok(wal::FsyncPolicy::Never),
        other => catalog::duration::parse_duration(other)
            .map(wal::FsyncPolicy::Interval)
            .map_err(|error| format!("expected always, never or a duration: {error}")),
    }
}

fn parse_duration_flag(text: &str) -> Result<std::time::Duration, String> {
    catalog::duration::parse_duration(text)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(arguments) => serve(*arguments, None),
        Command::Demo(arguments) => demo_command::run(&arguments),
        Command::Check { paths, config, name_validation_scheme, coverage } => {
            let name_validation = match name_validation_scheme.as_str() {
                "utf8" => catalog::NameValidation::Utf8,
                _ => catalog::NameValidation::Legacy,
            };
            check(paths, config, catalog::RuleFileOptions { name_validation, ..Default::default() }, coverage)
        }
        Command::Runbook { key, catalog, markdown } => runbook(key, catalog.as_deref(), markdown),
        Command::Test(TestCommand::Promql { files, quiet }) => test_promql(&files, quiet),
        Command::Test(TestCommand::Rules { files, run, ignore_unknown_fields, junit }) => {
            test_rules(&files, &run, ignore_unknown_fields, junit)
        }
        Command::Routes(command) => routes_command::run(&command),
        Command::Tsdb(command) => tsdb_command::run(&command),
        Command::Replay(arguments) => replay::run(&arguments),
        Command::Probe(arguments) => probe_command::run(&arguments),
        Command::Triage(arguments) => triage_run::manual(&arguments),
        Command::User(command) => journal_command::user(&command),
        Command::Token(command) => journal_command::token(&command),
        Command::Journal(command) => journal_command::journal(&command),
        Command::Catalog(command) => builtin::catalog_command(&command),
        Command::Completions { shell } => Ok(builtin::completions(shell, &mut Cli::command())),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the catalog in `directory`, or the built-in one.
fn load_catalog(directory: Option<&Path>) -> anyhow::Result<catalog::Catalog> {
    builtin::load_catalog(directory)
        .map_err(|diagnostics| anyhow::anyhow!("catalog {} is invalid:\n{diagnostics}", builtin::describe(directory)))
}

/// The stack of each thread of the server's async runtime.
const RUNTIME_STACK_BYTES: usize = 16 << 20;

/// Runs the server: `alertbook run`, or `alertbook demo` with its `demo` setup
/// (virtual clock, simulated data and datasources, local notification log).
fn serve(arguments: RunArgs, mut demo: Option<demo_command::Setup>) -> anyhow::Result<ExitCode> {
    let RunArgs {
        config: config_path,
        listen,
        data,
        catalog: catalog_path,
        external_url: external_url_flag,
        query,
        backfill,
        max_series,
        wal_fsync,
        storage: storage_flags,
        notify: notify_flags,
        logs: log_flags,
        no_probes,
        triage: triage_flags,
        reminder_interval,
        web_tls,
        enable_lifecycle,
    } = arguments;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".parse().expect("valid")),
        )
        .init();
    let tls = web_tls.load()?;
    let overrides =
        reload::Overrides { listen, data, catalog: catalog_path, external_url: external_url_flag, tls: tls.is_some() };
    if tls.is_some() {
        // The scrape client has no TLS settings to trust the server's own certificate.
        tracing::warn!("the self-scrape is off under TLS: add a scrape job for alertbook's /metrics if it is needed");
    }
    let mut config =
        reload::load_config(config_path.as_deref(), &overrides).map_err(|error| anyhow::anyhow!("{error}"))?;
    if demo.is_some() {
        // The simulator writes every series a scrape would.
        config.scrape_self = false;
        config.scrape_configs.clear();
    }
    let external_url = config.external_url.clone().expect("load_config sets the external URL");
    let catalog = load_catalog(config.catalog.as_deref())?;
    let probe_checks = if no_probes {
        Vec::new()
    } else {
        probe::Check::from_catalog(&catalog).map_err(|error| anyhow::anyhow!("{error}"))?
    };
    datasources::check_groups(&config.datasources, &catalog).map_err(|diagnostics| anyhow::anyhow!("{diagnostics}"))?;
    let flags = status::run_flags(&Cli::command(), std::env::args_os());
    let server_status = server::ServerStatus {
        config_yaml: status::effective_yaml(status::read_config_text(config_path.as_deref()).as_deref(), &config),
        alertmanagers: notify_flags
            .alertmanagers
            .iter()
            .map(|url| format!("{}/api/v2/alerts", url.trim_end_matches('/')))
            .collect(),
        storage_retention: if storage_flags.retention_time.is_zero() {
            String::new()
        } else {
            flags.get("storage.retention.time").cloned().unwrap_or_default()
        },
        flags,
        external_labels: config.external_labels.clone(),
        ..server::ServerStatus::default()
    };
    std::fs::create_dir_all(&config.data)
        .with_context(|| format!("cannot create the data directory {}", config.data.display()))?;
    tracing::info!(catalog = %builtin::describe(config.catalog.as_deref()), summary = %catalog.summary(), data = %config.data.display(), "catalog loaded");
    let engine = query.engine();
    let store = std::sync::Arc::new(tsdb::MemStore::new());
    let wal_options = wal::WalOptions { fsync: wal_fsync, ..wal::WalOptions::default() };
    let durable = storage::open(&config.data, store.clone(), wal_options, &storage_flags)?;
    let log_service = logs::open(
        &config.data,
        &catalog,
        &config.redact_streams,
        wal_fsync,
        &log_flags,
        storage_flags.block_interval,
        query.timeout,
    )?;
    for path in &backfill {
        load_backfill(path, &store)?;
    }
    // The time of the alerts' world: rules, triage, routing, delivery,
    // reminders and the server's answers read this one clock.
    let clock: std::sync::Arc<dyn rules::Clock> = match &demo {
        Some(demo) => demo.start_clock(&durable, &log_service)?,
        None => std::sync::Arc::new(rules::SystemClock),
    };
    let durable = std::sync::Arc::new(durable);
    let serving = durable.clone();
    // Every datasource reports alertbook_datasource_up and _errors_total; the
    // families are registered into the server's registry once it exists.
    let datasource_health = sources::health::HealthMetrics::new();
    let docker_datasources = docker_datasources(&config.datasources, &datasource_health)?;
    let check_docker = docker_datasources.get(datasources::DEFAULT_DOCKER).cloned();
    let docker_datasources = docker_datasources
        .into_iter()
        .map(|(name, docker)| (name, docker as std::sync::Arc<dyn rules::Datasource>))
        .collect();
    let built_datasources = datasources::build(&config.datasources, &datasource_health, docker_datasources)?;
    let check_datasources = triage_run::CheckDatasources {
        postgres: built_datasources.postgres.get(datasources::DEFAULT_SQL).cloned(),
        docker: check_docker,
        logs: built_datasources.triage_logs(&config.datasources),
        traces: built_datasources.triage_traces(&config.datasources),
    };
    let resolve_datasource = match &demo {
        Some(demo) => Some(demo.rule_resolver(&catalog)),
        None => built_datasources.resolver(),
    };
    let rule_manager = evaluation::manager(
        &catalog,
        durable.clone(),
        engine.clone(),
        &config.data,
        external_url.clone(),
        resolve_datasource,
        Some(logs::datasource(&log_service)),
    )?;
    let targets = evaluation::targets(&notify_flags.alertmanagers, &[])?;
    let routing_config = match &demo {
        Some(demo) => demo.routing(&catalog)?,
        None => routing::configuration(&config, &catalog, &notify_flags.webhooks)?,
    };
    let outbox_directory = config.data.join("outbox");
    let outbox = notify::Outbox::open(&outbox_directory)
        .with_context(|| format!("cannot open the notification outbox in {}", outbox_directory.display()))?;
    if !outbox.is_empty() {
        tracing::info!(pending = outbox.len(), "notifications from before the restart will be delivered");
    }
    let dispatcher = notify::Dispatcher::with_clock(
        outbox,
        targets,
        notify::DispatcherOptions { external_url: external_url.clone(), ..Default::default() },
        clock.clone(),
    )?;
    let routing =
        notify::RoutingService::open(routing_config, &config.data.join("notify"), dispatcher.clone(), clock.now_ms())
            .context("cannot open the notification state")?;
    let notifier = std::sync::Arc::new(evaluation::DispatchNotifier {
        dispatcher: dispatcher.clone(),
        routing: routing.clone(),
        clock: clock.clone(),
    });
    let build_triage_sources = {
        let (store, engine, log_service) = (store.clone(), engine.clone(), log_service.clone());
        let timeout = triage_flags.check_timeout;
        let simulated = demo.as_ref().map(demo_command::Setup::day);
        move |catalog: &catalog::Catalog| {
            let mut sources = triage_run::sources(
                catalog,
                store.clone(),
                engine.clone(),
                Some(log_service.clone()),
                &check_datasources,
                timeout,
            );
            if let Some(day) = &simulated {
                demo_command::set_check_sources(day, catalog, &mut sources);
            }
            sources
        }
    };
    let triage_sources = build_triage_sources(&catalog);
    let triage_runner =
        triage_run::runner(&catalog, &config, triage_sources, &triage_flags, rule_manager.clone(), clock.clone())?;
    // Rule evaluation, triage checks and queries recurse over expression
    // trees on the runtime's threads: give them room beyond tokio's 2 MiB.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(RUNTIME_STACK_BYTES)
        .build()
        .context("cannot start the async runtime")?;
    let journal_service = std::sync::Arc::new(runtime.block_on(journal_run::open_service(&config, &catalog))?);
    let mut demo_tasks = None;
    let banner_url = external_url.clone();
    if let Some(demo) = demo.as_mut() {
        runtime.block_on(demo.create_account(journal_service.journal.store(), clock.now_ms()))?;
        let receiver = runtime.block_on(async { demo.spawn_receiver() })?;
        demo_tasks = Some((receiver, durable.clone(), log_service.clone()));
    }
    let reminder_notifier: std::sync::Arc<dyn rules::Notifier> = notifier.clone();
    let maintained = durable.clone();
    let log_store = log_service.store.clone();
    runtime.block_on(async move {
        let (stop_maintenance, maintenance_stopped) = tokio::sync::watch::channel(false);
        let compactions =
            [storage::CompactionMetrics::new("alertbook_tsdb"), storage::CompactionMetrics::new("alertbook_log")];
        let log_maintenance = logs::spawn_maintenance(
            log_service.store.clone(),
            storage_flags.maintenance_interval,
            compactions[1].clone(),
            maintenance_stopped.clone(),
        );
        let memory_releaser = memory::spawn_releaser(maintenance_stopped.clone());
        let maintenance =
            storage::spawn_maintenance(maintained, storage_flags, compactions[0].clone(), maintenance_stopped);
        let (stop_delivery, delivery_stopped) = tokio::sync::oneshot::channel::<()>();
        let delivery = tokio::spawn(dispatcher.run(async move {
            let _ = delivery_stopped.await;
        }));
        let (stop_routing, routing_stopped) = tokio::sync::oneshot::channel::<()>();
        let routing_loop = tokio::spawn(routing.clone().run(async move {
            let _ = routing_stopped.await;
        }));
        let state = server::AppState::new(catalog, serving, engine);
        state.metrics.register(|registry| datasource_health.register_in(registry));
        state.metrics.register(|registry| compactions.iter().for_each(|metrics| metrics.register_in(registry)));
        state.max_series.store(max_series, std::sync::atomic::Ordering::Relaxed);
        state.set_rules(rule_manager.clone());
        state.set_logs(log_service);
        state.set_routing(routing.clone());
        state.set_status(server_status);
        state.set_journal(journal_service.clone());
        state.set_write_token(config.write_token.as_ref().map(|token| token.expose().to_owned()));
        state.set_clock(clock.clone());
        let (stop_reminders, reminders_stopped) = tokio::sync::watch::channel(false);
        let (notifier, stop_triage) = triage_run::start(&state, triage_runner, notifier);
        let reminders = journal_run::spawn_reminders(
            journal_service.journal.clone(),
            rule_manager.clone(),
            reminder_notifier,
            journal_run::ReminderTarget {
                external_url,
                external_labels: config
                    .external_labels
                    .iter()
                    .map(|label| (label.name.clone(), label.value.clone()))
                    .collect(),
            },
            reminder_interval,
            clock.clone(),
            reminders_stopped,
        );
        let scraping = scraping::start(&state, config.scrape_jobs());
        let probing = probing::start(&state, probe_checks.clone());
        let (evaluation, stop_evaluation) = evaluation::spawn(rule_manager.clone(), notifier.clone(), clock.clone());
        let stop_evaluation = std::sync::Arc::new(stop_evaluation);
        let stop_feeding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut feeding = None;
        if let (Some(demo), Some((receiver, durable, logs))) = (demo.as_ref(), demo_tasks) {
            // When the day is over, evaluation stops: the alerts stay as the day left them.
            let day_over = stop_evaluation.clone();
            match demo.spawn_feeder(clock, durable, logs, stop_feeding.clone(), move || {
                let _ = day_over.send(true);
            }) {
                Ok(feeder) => {
                    println!("{}", demo.banner(&banner_url, &config.data));
                    feeding = Some((feeder, receiver));
                }
                Err(error) => tracing::error!(error = %format!("{error:#}"), "the demo cannot feed its day"),
            }
        }
        if enable_lifecycle {
            state.enable_lifecycle();
        }
        let (reload_requests, reload_received) = tokio::sync::mpsc::channel(1);
        state.set_reloads(reload_requests);
        let (stop_reloads, reloads_stopped) = tokio::sync::watch::channel(false);
        let reloads = reload::spawn(
            reload::Running {
                settings: reload::Settings {
                    config_path: config_path.clone(),
                    overrides,
                    no_probes,
                    webhooks: notify_flags.webhooks.clone(),
                    refuse: demo.is_some().then_some("the demo's configuration is built in: it does not reload"),
                },
                config: config.clone(),
                state: state.clone(),
                rules: rule_manager,
                notifier,
                routing: routing.clone(),
                journal: journal_service.clone(),
                triage_sources: Box::new(build_triage_sources),
                scraping,
                probing,
                probe_checks,
            },
            reload_received,
            reloads_stopped,
        );
        let served = match tls {
            Some(tls) => server::serve_tls(config.listen, state, tls, shutdown_signal()).await,
            None => server::serve(config.listen, state, shutdown_signal()).await,
        };
        let _ = stop_reloads.send(true);
        if let Ok((scraping, probing)) = reloads.await {
            scraping.shutdown().await;
            probing.shutdown().await;
        }
        let _ = stop_evaluation.send(true);
        let _ = evaluation.await;
        if let Some((feeder, receiver)) = feeding {
            stop_feeding.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = tokio::task::spawn_blocking(move || feeder.join()).await;
            receiver.abort();
        }
        let _ = stop_reminders.send(true);
        let _ = reminders.await;
        let _ = stop_triage.send(true);
        let _ = stop_routing.send(());
        let _ = routing_loop.await;
        let _ = stop_delivery.send(());
        let _ = delivery.await;
        let _ = stop_maintenance.send(true);
        let _ = maintenance.await;
        let _ = log_maintenance.await;
        let _ = memory_releaser.await;
        journal_service.journal.store().close().await;
        served
    })?;
    logs::shutdown(&log_store);
    durable.sync().context("cannot fsync the write-ahead log at shutdown")?;
    storage::checkpoint(&durable, "shutdown");
    Ok(ExitCode::SUCCESS)
}

/// The Docker Engine datasources of `alertbook run`, one per validated
/// `type: docker` entry, each reporting to `health` as `type="docker"`.
/// Building one checks its host and TLS files but does not contact the
/// Engine, so alertbook starts while dockerd is down (the datasource then
/// reports itself down and its rules fail until it answers).
fn docker_datasources(
    datasources: &datasources::Datasources,
    health: &sources::health::HealthMetrics,
) -> anyhow::Result<std::collections::BTreeMap<String, std::sync::Arc<sources::docker::DockerDatasource>>> {
    let mut built = std::collections::BTreeMap::new();
    for (name, options) in &datasources.docker {
        let hook = health.datasource(name, sources::health::DatasourceType::Docker);
        let datasource = sources::docker::DockerDatasource::connect(options)?.with_health(std::sync::Arc::new(hook));
        built.insert(name.clone(), std::sync::Arc::new(datasource));
    }
    Ok(built)
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down");
}

/// What kind of file `path` is, judged by its top-level keys.
fn classify_file(path: &Path) -> FileKind {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let has_key = |key: &str| text.lines().any(|line| line.starts_with(&format!("{key}:")));
    if has_key("groups") {
        FileKind::Rules
    } else if has_key("kind") {
        FileKind::Contract
    } else if has_key("route") || has_key("receivers") {
        FileKind::Alertmanager
    } else if config::TOP_LEVEL_KEYS.iter().any(|key| has_key(key)) {
        FileKind::Config
    } else {
        FileKind::Rules
    }
}

enum FileKind {
    Rules,
    Contract,
    Alertmanager,
    Config,
}

fn check(
    paths: Vec<PathBuf>,
    config_path: Option<PathBuf>,
    rule_options: catalog::RuleFileOptions,
    coverage: bool,
) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    if paths.is_empty() && config_path.is_none() {
        // No path: the built-in catalog.
        failed |= !report_check(builtin::ROOT, check_catalog(None, coverage));
    }
    let checks = paths.iter().map(|path| (path, false)).chain(config_path.iter().map(|path| (path, true)));
    for (path, is_config) in checks {
        let outcome: Result<String, catalog::Diagnostics> = if is_config && path.exists() {
            check_config(path)
        } else if path.is_dir() {
            if !path.join("catalog.yaml").is_file() {
                eprintln!("{}: error: not a catalog directory (no catalog.yaml)", path.display());
                failed = true;
                continue;
            }
            check_catalog(Some(path), coverage)
        } else if !path.exists() {
            Err(catalog::Diagnostics(vec![catalog::Diagnostic::file(path, "no such file or directory")]))
        } else {
            match classify_file(path) {
                FileKind::Rules => catalog::load_rules_with(std::slice::from_ref(path), rule_options).map(|files| {
                    let text = std::fs::read_to_string(path).unwrap_or_default();
                    if let Some(line) = catalog::second_document_line(&text) {
                        eprintln!(
                            "{}:{line}:1: warning: only the first YAML document of a rule file is read, as in Prometheus",
                            path.display()
                        );
                    }
                    for duplicate in files.iter().flat_map(catalog::duplicate_rules) {
                        eprintln!(
                            "{}: warning: duplicate rule {} with labels {:?}; might cause inconsistency while recording expressions",
                            path.display(),
                            duplicate.name,
                            duplicate.labels
                        );
                    }
                    let rules: usize = files.iter().flat_map(|file| &file.groups).map(|group| group.rules.len()).sum();
                    format!("{rules} rules")
                }),
                FileKind::Contract => check_contract(path),
                FileKind::Alertmanager => notify::routing::config::load(path).map(|routing| routing_summary(&routing)),
                FileKind::Config => check_config(path),
            }
        };
        failed |= !report_check(&path.display().to_string(), outcome);
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Prints a check's summary or its errors; true when it passed.
fn report_check(shown: &str, outcome: Result<String, catalog::Diagnostics>) -> bool {
    match outcome {
        Ok(summary) => {
            println!("{shown}: {summary}");
            true
        }
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            let count = diagnostics.len();
            eprintln!("{shown}: {count} error{}", if count == 1 { "" } else { "s" });
            false
        }
    }
}

/// Validates the catalog in `directory` (or the built-in one); with `coverage`,
/// also lists the runbook branches no `triage_test` takes.
fn check_catalog(directory: Option<&Path>, coverage: bool) -> Result<String, catalog::Diagnostics> {
    builtin::load_catalog(directory).map(|catalog| {
        let summary = catalog.summary().to_string();
        if !coverage {
            return summary;
        }
        let (uncovered, total) = test_triage::uncovered_branches(&catalog);
        let mut text =
            format!("{summary}\ntriage coverage: {} of {total} branches have a triage_test", total - uncovered.len());
        for (id, branch) in uncovered {
            text.push_str(&format!("\n  no triage_test: {id} branch {branch}"));
        }
        text
    })
}

/// Validates a configuration file and the catalog it names; the summary lists
/// the datasources by name, type and server, never a secret.
fn check_config(path: &Path) -> Result<String, catalog::Diagnostics> {
    let config = config::load(path)?;
    let catalog = builtin::load_catalog(config.catalog.as_deref())?;
    datasources::check_groups(&config.datasources, &catalog)?;
    let listed = config.datasources.summary();
    let listed = if listed.is_empty() { String::new() } else { format!("; datasources: {}", listed.join(", ")) };
    let state = match &config.state {
        config::StateBackend::Sqlite => "sqlite".to_owned(),
        config::StateBackend::Postgres { url_file, .. } => format!("postgres (url_file {})", url_file.display()),
    };
    let alerting = match &config.alerting {
        Some((path, routing)) => format!("; alerting: {} ({})", path.display(), routing_summary(routing)),
        None => String::new(),
    };
    Ok(format!("configuration valid; catalog: {}{listed}; state: {state}{alerting}", catalog.summary()))
}

/// What a valid alertmanager.yml holds, counted as `amtool check-config` counts it.
fn routing_summary(routing: &notify::routing::RoutingConfig) -> String {
    let plural = |count: usize, what: &str| format!("{count} {what}{}", if count == 1 { "" } else { "s" });
    format!(
        "{}, {}, {}, {}",
        plural(routing.route.len(), "route"),
        plural(routing.inhibit_rules.len(), "inhibit rule"),
        plural(routing.receivers.len(), "receiver"),
        plural(routing.templates.len(), "template"),
    )
}

fn check_contract(path: &Path) -> Result<String, catalog::Diagnostics> {
    let source = catalog::SourceFile::read(path).map_err(|diagnostic| catalog::Diagnostics(vec![diagnostic]))?;
    let mut errors = Vec::new();
    match catalog::contracts::load_contract(&source, &mut errors) {
        Some(contract) if errors.is_empty() => Ok(format!("contract {} valid", contract.name)),
        _ => Err(catalog::Diagnostics(errors)),
    }
}

fn runbook(key: Option<String>, catalog_path: Option<&Path>, markdown: bool) -> anyhow::Result<ExitCode> {
    if markdown {
        // Regenerating runbook.md must work while the file is stale or missing.
        let options = catalog::LoadOptions { check_markdown: false };
        let catalog = builtin::load_catalog_with(catalog_path, options).map_err(|diagnostics| {
            anyhow::anyhow!("catalog {} is invalid:\n{diagnostics}", builtin::describe(catalog_path))
        })?;
        print!("{}", catalog::markdown::render(&catalog));
        return Ok(ExitCode::SUCCESS);
    }
    let catalog = load_catalog(catalog_path)?;
    match key {
        Some(key) => match catalog.entry(&key) {
            Some(entry) => {
                print!("{}", catalog::markdown::render_entry(&catalog, entry));
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("error: no runbook entry with ID or alertname {key:?}; `alertbook runbook` lists them");
                Ok(ExitCode::FAILURE)
            }
        },
        None => {
            let id_width = catalog.entries.iter().map(|entry| entry.id.len()).max().unwrap_or(2).max(2);
            let name_width = catalog.entries.iter().map(|entry| entry.alertname.len()).max().unwrap_or(9).max(9);
            println!("{:id_width$}  {:name_width$}  {:6}  TITLE", "ID", "ALERTNAME", "STEPS");
            for entry in &catalog.entries {
                println!(
                    "{:id_width$}  {:name_width$}  {:6}  {}",
                    entry.id,
                    entry.alertname,
                    entry.steps.len(),
                    entry.title
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn test_promql(inputs: &[PathBuf], quiet: bool) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            files.extend(promql::promqltest::test_files(input)?);
        } else {
            files.push(input.clone());
        }
    }
    let mut summary = promql::promqltest::Summary::default();
    for file in &files {
        let report = promql::promqltest::run_file(file)?;
        println!("{report}");
        if !quiet {
            for failure in &report.failures {
                println!("  FAIL {}", failure.to_string().replace('\n', "\n  "));
            }
            for skip in &report.skips {
                println!("  SKIP {skip}");
            }
        }
        summary.files.push(report);
    }
    println!("{} passed, {} failed, {} skipped", summary.passed(), summary.failed(), summary.skipped());
    Ok(if summary.failed() > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn test_rules(
    files: &[PathBuf],
    run: &[String],
    ignore_unknown_fields: bool,
    junit: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let run = if run.is_empty() {
        None
    } else {
        let pattern = run.iter().map(|pattern| format!("(?:{pattern})")).collect::<Vec<_>>().join("|");
        Some(regex::Regex::new(&pattern).context("invalid --run regular expression")?)
    };
    let options = test_rules::Options { run, ignore_unknown_fields, junit };
    Ok(if test_rules::run(files, &options)? { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Loads one backfill file into the store, logging what it held.
fn load_backfill(path: &Path, store: &tsdb::MemStore) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let report = ingest::backfill::load_file(path, store, &ingest::backfill::BackfillOptions::default())
        .with_context(|| format!("cannot backfill {}", path.display()))?;
    let elapsed = started.elapsed();
    tracing::info!(
        file = %path.display(),
        samples = report.samples,
        series = report.series,
        rejected = report.rejected(),
        seconds = elapsed.as_secs_f64(),
        samples_per_second = (report.samples as f64 / elapsed.as_secs_f64().max(1e-9)) as u64,
        "backfill loaded"
    );
    for error in &report.errors {
        tracing::warn!(file = %path.display(), error = %error, "backfill line refused");
    }
    Ok(())
}
