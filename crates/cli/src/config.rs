//! `alertbook.yaml`, the server's configuration: raw serde struct first, then
//! validated into [`Config`], every error located at `file:line:col`.
//!
//! ```yaml
//! catalog: catalog/busflow   # relative to this file
//! listen: 127.0.0.1:9099
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
//! ```
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
pub const DEFAULT_CATALOG: &str = "catalog/busflow";
/// The job alertbook scrapes itself under.
pub const SELF_SCRAPE_JOB: &str = "alertbook";
/// How often alertbook scrapes itself.
pub const SELF_SCRAPE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

/// The keys of a configuration file; `alertbook check` tells a configuration
/// from a rule file by them.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "catalog",
    "listen",
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
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    catalog: Option<Spanned<String>>,
    #[serde(default)]
    listen: Option<Spanned<String>>,
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
    pub catalog: PathBuf,
    pub listen: SocketAddr,
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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            catalog: PathBuf::from(DEFAULT_CATALOG),
            listen: DEFAULT_LISTEN.parse().expect("the default listen address is valid"),
            data: PathBuf::from(DEFAULT_DATA),
            scrape_defaults: scrape::ScrapeDefaults::default(),
            external_labels: tsdb::Labels::empty(),
            scrape_self: true,
            scrape_configs: Vec::new(),
            datasources: crate::datasources::Datasources::default(),
            redact_streams: vec![pii::DEFAULT_STREAMS.to_owned()],
            alerting: None,
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
        config.catalog = base.join(&catalog.value);
        if !config.catalog.join("catalog.yaml").is_file() {
            errors.push(source.error_at_value(
                catalog,
                format!("{} is not a catalog directory (no catalog.yaml)", config.catalog.display()),
            ));
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
    if errors.is_empty() {
        Ok(config)
    } else {
        crate::datasources::mask_secrets(&mut errors, &crate::datasources::inline_secrets(&raw.datasources));
        Err(Diagnostics(errors))
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
}
