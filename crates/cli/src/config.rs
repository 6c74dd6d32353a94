//! `alertbook.yaml`, the server's configuration: raw serde struct first, then
//! validated into [`Config`], every error located at `file:line:col`.
//!
//! ```yaml
//! catalog: catalog/busflow   # relative to this file [default: the built-in Busflow catalog]
//! listen: 127.0.0.1:9099
//! external_url: https://alertbook.example.com   # base of every link alertbook sends [default: http://<listen>]
//! data: ./data
//! global:                    # Prometheus's global section (the scrape part)
//!   scrape_interval: 1m      # default for every job
//!   scrape_timeout: 10s
//!   external_labels: {region: eu}
//! scrape_self: true          # scrape alertbook's own /metrics (job "alertbook", every 15s)
//! scrape_configs:            # Prometheus's scrape_configs (validated by the scrape crate)
//!   - job_name: node
//!     static_configs:
//!       - targets: [127.0.0.1:9100]
//! datasources:               # query APIs, PostgreSQL, Docker Engines (see the datasources module)
//!   mimir: {type: prometheus, url: https://mimir.example/prometheus, timeout: 30s}
//!   sql: {type: postgres, url_file: /run/secrets/busflow_ro_dsn}
//! rule_datasources:          # rule group name -> datasource; other metrics groups query the embedded store
//!   busflow-api-slo: mimir
//! logs:
//!   redact_streams: ['{job="faro"}']  # streams PII-redacted at ingest (the default); [] turns redaction off
//! alerting:
//!   config_file: alertmanager.yml     # Alertmanager's own format, relative to this file; validated at load
//! state:                     # the state store of the on-call journal and the accounts
//!   type: sqlite             # the default: <data>/state.sqlite (WAL mode)
//!   # type: postgres
//!   # url_file: /run/secrets/alertbook_state_dsn   # a postgres:// URL, password included
//! journal:
//!   remind_after: 24h        # re-notify whoever acknowledged an alert still without an entry
//! auth:
//!   require_for_read: false  # true: the Prometheus and Loki read APIs need a token or session
//!   write_token_file: /run/secrets/alertbook_write_token   # remote write and Loki push then need it as a bearer token
//! ```
//!
//! Secret files (`state.url_file`, `auth.write_token_file`) are read at load;
//! what they hold is kept in a [`Secret`], which no `Debug` output, log or
//! error shows.
//!
//! The self-scrape job targets the listen address (a wildcard address is
//! scraped through loopback); it is left out when `scrape_self: false` or
//! when `scrape_configs` already has a job named `alertbook`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use catalog::{Diagnostic, Diagnostics, SourceFile};
use serde::Deserialize;
use serde_saphyr::Spanned;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9099";
pub const DEFAULT_DATA: &str = "./data";
/// The job alertbook scrapes itself under.
pub const SELF_SCRAPE_JOB: &str = "alertbook";
/// How often alertbook scrapes itself.
pub const SELF_SCRAPE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

/// The keys of a configuration file; `alertbook check` tells a configuration
/// from a rule file by them.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "catalog",
    "listen",
    "external_url",
    "data",
    "global",
    "scrape_self",
    "scrape_configs",
    "datasources",
    "rule_datasources",
    "triage_logs",
    "triage_traces",
    "logs",
    "alerting",
    "state",
    "journal",
    "auth",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    catalog: Option<Spanned<String>>,
    #[serde(default)]
    listen: Option<Spanned<String>>,
    #[serde(default)]
    external_url: Option<Spanned<String>>,
    #[serde(default)]
    data: Option<Spanned<String>>,
    #[serde(default)]
    global: Option<RawGlobal>,
    #[serde(default)]
    scrape_self: Option<bool>,
    #[serde(default)]
    scrape_configs: Vec<Spanned<scrape::config::RawScrapeConfig>>,
    #[serde(default)]
    datasources: BTreeMap<String, Spanned<crate::datasources::RawDatasource>>,
    #[serde(default)]
    rule_datasources: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    triage_logs: Option<Spanned<String>>,
    #[serde(default)]
    triage_traces: Option<Spanned<String>>,
    #[serde(default)]
    logs: Option<RawLogs>,
    #[serde(default)]
    alerting: Option<RawAlerting>,
    #[serde(default)]
    state: Option<Spanned<RawState>>,
    #[serde(default)]
    journal: Option<RawJournal>,
    #[serde(default)]
    auth: Option<RawAuth>,
}

/// The `state` section: where the journal and the accounts are stored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    #[serde(default)]
    url_file: Option<Spanned<String>>,
}

/// The `journal` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJournal {
    #[serde(default)]
    remind_after: Option<Spanned<String>>,
}

/// The `auth` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    require_for_read: Option<bool>,
    #[serde(default)]
    write_token_file: Option<Spanned<String>>,
}

/// A value read from a secret file: its `Debug` shows `<secret>`, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one call that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("<secret>")
    }
}

/// Where the state store (journal, users, tokens, sessions) lives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StateBackend {
    /// `<data>/state.sqlite`.
    #[default]
    Sqlite,
    /// PostgreSQL at the URL read from `url_file`.
    Postgres { url_file: PathBuf, url: Secret },
}

impl StateBackend {
    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            StateBackend::Sqlite => "sqlite",
            StateBackend::Postgres { .. } => "postgres",
        }
    }
}

/// The `alerting` section: alertbook's own routing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerting {
    #[serde(default)]
    config_file: Option<Spanned<String>>,
}

/// The `logs` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogs {
    #[serde(default)]
    redact_streams: Option<Vec<Spanned<String>>>,
}

/// Prometheus's `global` section, the parts alertbook uses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGlobal {
    #[serde(default)]
    scrape_interval: Option<Spanned<String>>,
    #[serde(default)]
    scrape_timeout: Option<Spanned<String>>,
    #[serde(default)]
    external_labels: BTreeMap<String, Spanned<String>>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The catalog directory; `None`: the built-in Busflow catalog.
    pub catalog: Option<PathBuf>,
    pub listen: SocketAddr,
    /// `external_url`, checked and without a trailing `/`; `None`: `http://<listen>`.
    pub external_url: Option<String>,
    pub data: PathBuf,
    /// `global.scrape_interval` and `global.scrape_timeout`.
    pub scrape_defaults: scrape::ScrapeDefaults,
    /// `global.external_labels`.
    pub external_labels: tsdb::Labels,
    /// Whether alertbook scrapes its own `/metrics`.
    pub scrape_self: bool,
    pub scrape_configs: Vec<scrape::ScrapeConfig>,
    /// `datasources` and `rule_datasources`.
    pub datasources: crate::datasources::Datasources,
    /// `logs.redact_streams`: LogQL stream selectors of the streams PII-redacted at ingest.
    pub redact_streams: Vec<String>,
    /// `alerting.config_file`: the `alertmanager.yml` routing alerts, validated.
    pub alerting: Option<(PathBuf, std::sync::Arc<notify::routing::RoutingConfig>)>,
    /// `state`: SQLite under `data` (default) or PostgreSQL.
    pub state: StateBackend,
    /// `journal.remind_after`.
    pub remind_after: std::time::Duration,
    /// `auth.require_for_read`: the Prometheus and Loki read APIs need a token or session.
    pub require_for_read: bool,
    /// `auth.write_token_file`'s token: remote write and Loki push need it as a bearer token.
    pub write_token: Option<Secret>,
    /// Mark session cookies `Secure`: true when alertbook serves over TLS.
    pub secure_cookies: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            catalog: None,
            listen: DEFAULT_LISTEN.parse().expect("the default listen address is valid"),
            external_url: None,
            data: PathBuf::from(DEFAULT_DATA),
            scrape_defaults: scrape::ScrapeDefaults::default(),
            external_labels: tsdb::Labels::empty(),
            scrape_self: true,
            scrape_configs: Vec::new(),
            datasources: crate::datasources::Datasources::default(),
            redact_streams: vec![pii::DEFAULT_STREAMS.to_owned()],
            alerting: None,
            state: StateBackend::Sqlite,
            remind_after: journal::DEFAULT_REMIND_AFTER,
            require_for_read: false,
            write_token: None,
            secure_cookies: false,
        }
    }
}

impl Config {
    /// The jobs to scrape: the configured ones, plus alertbook itself unless
    /// `scrape_self` is off or a job already has its name.
    pub fn scrape_jobs(&self) -> Vec<scrape::ScrapeConfig> {
        let mut jobs = self.scrape_configs.clone();
        if self.scrape_self && !jobs.iter().any(|job| job.job_name == SELF_SCRAPE_JOB) {
            let mut address = self.listen;
            if address.ip().is_unspecified() {
                let loopback: std::net::IpAddr = if address.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                };
                address.set_ip(loopback);
            }
            let defaults = scrape::ScrapeDefaults {
                scrape_interval: SELF_SCRAPE_INTERVAL,
                scrape_timeout: self.scrape_defaults.scrape_timeout.min(SELF_SCRAPE_INTERVAL),
            };
            jobs.push(scrape::ScrapeConfig::with_static_targets(SELF_SCRAPE_JOB, &[&address.to_string()], defaults));
        }
        jobs
    }
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    let source = SourceFile::read(path).map_err(|diagnostic| Diagnostics(vec![diagnostic]))?;
    let raw: RawConfig = source.parse_yaml().map_err(|diagnostic| {
        let mut diagnostics = vec![diagnostic];
        crate::datasources::mask_secrets(&mut diagnostics, &[]);
        Diagnostics(diagnostics)
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut errors: Vec<Diagnostic> = Vec::new();
    let mut config = Config::default();
    if let Some(listen) = &raw.listen {
        match listen.value.parse() {
            Ok(address) => config.listen = address,
            Err(_) => {
                errors.push(source.error_at_value(
                    listen,
                    format!("listen {:?} is not an address such as 127.0.0.1:9099", listen.value),
                ))
            }
        }
    }
    if let Some(catalog) = &raw.catalog {
        let directory = base.join(&catalog.value);
        if !directory.join("catalog.yaml").is_file() {
            errors.push(source.error_at_value(
                catalog,
                format!("{} is not a catalog directory (no catalog.yaml)", directory.display()),
            ));
        }
        config.catalog = Some(directory);
    }
    if let Some(external_url) = &raw.external_url {
        match crate::links::normalize(&external_url.value) {
            Ok(url) => config.external_url = Some(url),
            Err(message) => errors.push(source.error_at_value(external_url, format!("external_url: {message}"))),
        }
    }
    if let Some(data) = &raw.data {
        if data.value.is_empty() {
            errors.push(source.error_at_value(data, "data must name a directory"));
        }
        config.data = base.join(&data.value);
    }
    if let Some(scrape_self) = raw.scrape_self {
        config.scrape_self = scrape_self;
    }
    let global = raw.global.as_ref();
    config.scrape_defaults = scrape::config::defaults(
        &source,
        global.and_then(|global| global.scrape_interval.as_ref()),
        global.and_then(|global| global.scrape_timeout.as_ref()),
        &mut errors,
    );
    if let Some(global) = global {
        let mut labels = Vec::new();
        for (name, value) in &global.external_labels {
            if scrape::relabel::is_valid_label_name(name) && !name.starts_with("__") {
                labels.push((name.as_str(), value.value.as_str()));
            } else {
                errors.push(source.error_at_value(value, format!("external label {name:?} is not a valid label name")));
            }
        }
        config.external_labels = tsdb::Labels::from_pairs(labels);
    }
    config.scrape_configs =
        scrape::config::validate(&source, &raw.scrape_configs, config.scrape_defaults, base, &mut errors);
    config.datasources =
        crate::datasources::validate(&source, &raw.datasources, &raw.rule_datasources, base, &mut errors);
    crate::datasources::validate_triage(
        &source,
        &raw.datasources,
        raw.triage_logs.as_ref(),
        raw.triage_traces.as_ref(),
        &mut config.datasources,
        &mut errors,
    );
    if let Some(selectors) = raw.logs.as_ref().and_then(|logs| logs.redact_streams.as_ref()) {
        config.redact_streams.clear();
        for selector in selectors {
            match logql::parse(&selector.value) {
                Ok(logql::Expr::Log(_)) => config.redact_streams.push(selector.value.clone()),
                Ok(_) => errors.push(
                    source.error_at_value(selector, "redact_streams takes stream selectors such as {job=\"faro\"}"),
                ),
                Err(error) => errors.push(source.error_in_value(
                    selector,
                    error.offset,
                    format!("invalid stream selector: {}", error.message),
                )),
            }
        }
    }
    if let Some(file) = raw.alerting.as_ref().and_then(|alerting| alerting.config_file.as_ref()) {
        let path = base.join(&file.value);
        if !path.is_file() {
            errors.push(source.error_at_value(file, format!("{} is not a file", path.display())));
        } else {
            match notify::routing::config::load(&path) {
                Ok(routing) => config.alerting = Some((path, std::sync::Arc::new(routing))),
                Err(diagnostics) => errors.extend(diagnostics.0),
            }
        }
    }
    if let Some(state) = &raw.state
        && let Some(backend) = validate_state(&source, state, base, &mut errors)
    {
        config.state = backend;
    }
    if let Some(remind_after) = raw.journal.as_ref().and_then(|journal| journal.remind_after.as_ref()) {
        match catalog::duration::parse_duration(&remind_after.value) {
            Ok(duration) if !duration.is_zero() => config.remind_after = duration,
            Ok(_) => errors.push(source.error_at_value(remind_after, "journal.remind_after must be longer than 0s")),
            Err(error) => errors
                .push(source.error_at_value(remind_after, format!("journal.remind_after is not a duration: {error}"))),
        }
    }
    if let Some(auth) = &raw.auth {
        config.require_for_read = auth.require_for_read.unwrap_or(false);
        if let Some(file) = &auth.write_token_file {
            config.write_token = read_secret(&source, "auth.write_token_file", file, base, &mut errors);
        }
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        crate::datasources::mask_secrets(&mut errors, &crate::datasources::inline_secrets(&raw.datasources));
        Err(Diagnostics(errors))
    }
}

/// The contents of a secret file, trailing newline dropped; an error names
/// the file and why, never what it holds.
fn read_secret(
    source: &SourceFile,
    key: &str,
    file: &Spanned<String>,
    base: &Path,
    errors: &mut Vec<Diagnostic>,
) -> Option<Secret> {
    let path = base.join(&file.value);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = text.trim_end_matches(['\r', '\n']).trim();
            if text.is_empty() {
                errors.push(source.error_at_value(file, format!("{key} {:?} is empty", file.value)));
                return None;
            }
            Some(Secret::new(text))
        }
        Err(error) => {
            errors.push(source.error_at_value(file, format!("cannot read {key} {:?}: {error}", file.value)));
            None
        }
    }
}

fn validate_state(
    source: &SourceFile,
    state: &Spanned<RawState>,
    base: &Path,
    errors: &mut Vec<Diagnostic>,
) -> Option<StateBackend> {
    let raw = &state.value;
    match raw.kind.value.as_str() {
        "sqlite" => {
            if let Some(file) = &raw.url_file {
                errors.push(source.error_at_value(file, "url_file is for type: postgres; sqlite lives under data"));
                return None;
            }
            Some(StateBackend::Sqlite)
        }
        "postgres" => {
            let Some(file) = &raw.url_file else {
                errors.push(source.error_at_value(
                    state,
                    "state of type postgres needs url_file: a file holding its postgres:// URL",
                ));
                return None;
            };
            let url = read_secret(source, "state.url_file", file, base, errors)?;
            if !(url.expose().starts_with("postgres://") || url.expose().starts_with("postgresql://")) {
                errors.push(source.error_at_value(
                    file,
                    format!(
                        "state.url_file {:?} does not hold a PostgreSQL URL such as postgres://user:password@host:5432/database",
                        file.value
                    ),
                ));
                return None;
            }
            Some(StateBackend::Postgres { url_file: base.join(&file.value), url })
        }
        other => {
            errors.push(
                source.error_at_value(&raw.kind, format!("unknown state type {other:?}: expected sqlite or postgres")),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Config, Diagnostics> {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("alertbook.yaml");
        std::fs::write(&path, text).expect("write");
        load(&path)
    }

    #[test]
    fn alertbook_scrapes_itself_unless_told_not_to() {
        let config =
            load_text("listen: 0.0.0.0:9099\nglobal:\n  scrape_interval: 30s\n  external_labels: {region: eu}\n")
                .expect("valid");
        let jobs = config.scrape_jobs();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].job_name, SELF_SCRAPE_JOB);
        assert_eq!(jobs[0].scrape_interval, SELF_SCRAPE_INTERVAL);
        assert_eq!(jobs[0].static_configs[0].targets[0].get("__address__"), Some("127.0.0.1:9099"));
        assert_eq!(config.external_labels.get("region"), Some("eu"));
        assert_eq!(config.scrape_defaults.scrape_interval, std::time::Duration::from_secs(30));

        let config = load_text("scrape_self: false\n").expect("valid");
        assert!(config.scrape_jobs().is_empty());
    }

    #[test]
    fn scrape_errors_are_located() {
        let errors = load_text(
            "global:\n  scrape_timeout: 2m\nscrape_configs:\n  - job_name: x\n    relabel_configs:\n      - action: keep\n        regex: '('\n",
        )
        .expect_err("invalid");
        let located: Vec<(usize, usize)> = errors.iter().map(|error| (error.line, error.column)).collect();
        assert_eq!(located, [(2, 19), (7, 16)], "{errors}");
    }

    #[test]
    fn state_journal_and_auth_default_to_sqlite_24h_and_open_reads() {
        let config = load_text("listen: 127.0.0.1:9099\n").expect("valid");
        assert_eq!(config.state, StateBackend::Sqlite);
        assert_eq!(config.remind_after, std::time::Duration::from_secs(24 * 3600));
        assert!(!config.require_for_read && config.write_token.is_none() && !config.secure_cookies);
        assert!(TOP_LEVEL_KEYS.contains(&"state") && TOP_LEVEL_KEYS.contains(&"journal"));
        assert!(TOP_LEVEL_KEYS.contains(&"auth"));
    }

    #[test]
    fn postgres_state_reads_its_url_from_a_file_next_to_the_config_and_never_shows_it() {
        let directory = tempfile::tempdir().expect("temporary directory");
        std::fs::write(directory.path().join("state-dsn"), "postgres://alertbook:hunter2-state@db:5432/alertbook\n")
            .expect("dsn");
        std::fs::write(directory.path().join("write-token"), "hunter2-write\n").expect("token");
        let path = directory.path().join("alertbook.yaml");
        std::fs::write(
            &path,
            "state: {type: postgres, url_file: state-dsn}\njournal:\n  remind_after: 2h\nauth:\n  require_for_read: true\n  write_token_file: write-token\n",
        )
        .expect("config");
        let config = load(&path).expect("valid");
        match &config.state {
            StateBackend::Postgres { url_file, url } => {
                assert_eq!(url_file, &directory.path().join("state-dsn"));
                assert_eq!(url.expose(), "postgres://alertbook:hunter2-state@db:5432/alertbook");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(config.remind_after, std::time::Duration::from_secs(7200));
        assert!(config.require_for_read);
        assert_eq!(config.write_token.as_ref().map(Secret::expose), Some("hunter2-write"));
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn state_journal_and_auth_errors_are_located_and_hold_no_secret() {
        let directory = tempfile::tempdir().expect("temporary directory");
        std::fs::write(directory.path().join("not-a-url"), "mysql://root:hunter2-wrong@db/x\n").expect("file");
        std::fs::write(directory.path().join("empty"), "\n").expect("file");
        let path = directory.path().join("alertbook.yaml");
        std::fs::write(
            &path,
            "state:\n  type: postgres\n  url_file: not-a-url\njournal:\n  remind_after: 0s\nauth:\n  write_token_file: empty\n",
        )
        .expect("config");
        let errors = load(&path).expect_err("invalid");
        let text = errors.to_string();
        let located: Vec<(usize, usize)> = errors.iter().map(|error| (error.line, error.column)).collect();
        assert_eq!(located, [(3, 13), (5, 17), (7, 21)], "{text}");
        assert!(text.contains("does not hold a PostgreSQL URL"), "{text}");
        assert!(text.contains("remind_after must be longer than 0s"), "{text}");
        assert!(text.contains("auth.write_token_file \"empty\" is empty"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");

        for (yaml, position, message) in [
            ("state: {type: mysql}\n", (1, 15), "unknown state type \"mysql\": expected sqlite or postgres"),
            ("state:\n  type: postgres\n", (2, 3), "needs url_file"),
            ("state: {type: sqlite, url_file: x}\n", (1, 33), "url_file is for type: postgres"),
            ("state: {type: postgres, url_file: missing}\n", (1, 35), "cannot read state.url_file \"missing\""),
            ("journal: {remind_after: soon}\n", (1, 25), "journal.remind_after is not a duration"),
            ("auth: {require_for_read: maybe}\n", (1, 26), "require_for_read"),
            ("state: {type: postgres, url: 'postgres://a:b@c/d'}\n", (1, 25), "unknown field `url`"),
        ] {
            let errors = load_text(yaml).expect_err(yaml);
            let text = errors.to_string();
            assert_eq!((errors.0[0].line, errors.0[0].column), position, "{yaml}: {text}");
            assert!(text.contains(message), "{yaml}: {text}");
        }
    }
}
