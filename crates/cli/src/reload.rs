//! Reloading the configuration of `alertbook run` on `SIGHUP` and on
//! `POST /-/reload`, as Prometheus does.
//!
//! A reload reads everything anew into a [`Bundle`] (the configuration file,
//! the catalog with its rule files, the probe checks, the routing with its
//! templates, the scrape jobs) and validates it; any error refuses the whole
//! reload and the running configuration stays in force, untouched. Only a
//! complete bundle is put in force, component by component, each through its
//! own replace method: the rule manager (rules that remain keep their alert
//! state; removed rules' firing alerts are sent resolved), the routing
//! (silences, notification log and history stay), the server's catalog, the
//! triage runner's catalog, the journal's closing rules, the scrape jobs
//! (unchanged jobs keep running) and the probes. Alert state, triage runs,
//! the journal and acknowledgements live in their stores and are never
//! reloaded.
//!
//! Settings that only take effect at a restart (listen address, data
//! directory, state store, datasources, log redaction streams, journal and
//! auth settings, external labels) keep their running values; the reload
//! warns which of them changed ([`restart_only_changes`], pure).
//!
//! Reloads run one at a time on one task ([`spawn`]), which owns the scrape
//! and probe handles and gives them back at shutdown.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Config;

/// The command-line values that override the configuration file at every load.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<std::net::SocketAddr>,
    pub data: Option<PathBuf>,
    pub catalog: Option<PathBuf>,
    /// `--web.external-url`, over `external_url:` of the configuration.
    pub external_url: Option<String>,
    /// Served over TLS: the self-scrape is off (its client cannot trust the server's certificate).
    pub tls: bool,
}

/// Reads the configuration file (or the defaults) and applies the overrides.
pub fn load_config(path: Option<&std::path::Path>, overrides: &Overrides) -> Result<Config, String> {
    let mut config = match path {
        Some(path) => crate::config::load(path).map_err(|diagnostics| diagnostics.to_string())?,
        None => Config::default(),
    };
    if let Some(listen) = overrides.listen {
        config.listen = listen;
    }
    if let Some(data) = &overrides.data {
        config.data = data.clone();
    }
    if let Some(catalog) = &overrides.catalog {
        config.catalog = Some(catalog.clone());
    }
    let external_url = crate::links::external_url(
        overrides.external_url.as_deref(),
        config.external_url.as_deref(),
        config.listen,
        overrides.tls,
    )
    .map_err(|error| format!("{error:#}"))?;
    config.external_url = Some(external_url);
    // Session cookies are `Secure` exactly when served over TLS.
    config.secure_cookies = overrides.tls;
    if overrides.tls {
        config.scrape_self = false;
    }
    Ok(config)
}

/// Everything a reload puts in force, read and validated before anything changes.
pub struct Bundle {
    pub config: Config,
    pub catalog: Arc<catalog::Catalog>,
    pub probe_checks: Vec<probe::Check>,
    pub routing: notify::PreparedRouting,
    pub scrape_jobs: Vec<scrape::ScrapeConfig>,
}

/// What stays as the command line set it across reloads.
pub struct Settings {
    pub config_path: Option<PathBuf>,
    pub overrides: Overrides,
    pub no_probes: bool,
    pub webhooks: Vec<String>,
    /// Why this process does not reload (`alertbook demo`), if it does not.
    pub refuse: Option<&'static str>,
}

impl Settings {
    /// Reads and validates the whole configuration; the first error refuses it.
    pub fn load(&self) -> Result<Bundle, String> {
        if let Some(reason) = self.refuse {
            return Err(reason.to_owned());
        }
        let config = load_config(self.config_path.as_deref(), &self.overrides)?;
        let catalog = crate::load_catalog(config.catalog.as_deref()).map_err(|error| format!("{error:#}"))?;
        let probe_checks = if self.no_probes {
            Vec::new()
        } else {
            probe::Check::from_catalog(&catalog).map_err(|error| error.to_string())?
        };
        crate::datasources::check_groups(&config.datasources, &catalog)
            .map_err(|diagnostics| diagnostics.to_string())?;
        let routing =
            crate::routing::configuration(&config, &catalog, &self.webhooks).map_err(|error| format!("{error:#}"))?;
        let routing = notify::RoutingService::prepare(routing).map_err(|error| error.to_string())?;
        let scrape_jobs = config.scrape_jobs();
        Ok(Bundle { config, catalog: Arc::new(catalog), probe_checks, routing, scrape_jobs })
    }
}

/// The settings of `new` that differ from `running` and need a restart, by
/// their configuration names.
pub fn restart_only_changes(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name: &'static str, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    check("listen", running.listen != new.listen);
    check("data", running.data != new.data);
    check("state", running.state != new.state);
    check("datasources", format!("{:?}", running.datasources) != format!("{:?}", new.datasources));
    check("logs.redact_streams", running.redact_streams != new.redact_streams);
    check("journal.remind_after", running.remind_after != new.remind_after);
    check("auth.require_for_read", running.require_for_read != new.require_for_read);
    check("auth.write_token_file", running.write_token != new.write_token);
    check("global.external_labels", running.external_labels != new.external_labels);
    check("external_url", running.external_url != new.external_url);
    changed
}

/// The running components a reload replaces into.
pub struct Running {
    pub settings: Settings,
    /// The configuration in force (restart-only settings as at the start).
    pub config: Config,
    pub state: Arc<server::AppState>,
    pub rules: Arc<rules::Manager>,
    /// Where the resolved notifications of removed rules go.
    pub notifier: Arc<dyn rules::Notifier>,
    pub routing: Arc<notify::RoutingService>,
    pub journal: Arc<server::journal_api::JournalService>,
    /// Builds the triage sources over a catalog's contracts.
    pub triage_sources: Box<dyn Fn(&catalog::Catalog) -> triage::Sources + Send + Sync>,
    pub scraping: scrape::ScrapeHandle,
    pub probing: crate::probing::Probing,
    /// The probe checks in force, to restart the probes only when they change.
    pub probe_checks: Vec<probe::Check>,
}

impl Running {
    /// Reloads: builds and validates a new bundle, then puts it in force.
    /// On error nothing changed; the error is returned and recorded.
    pub async fn reload(&mut self) -> Result<(), String> {
        let now_ms = crate::routing::now_ms();
        let bundle = match self.settings.load() {
            Ok(bundle) => bundle,
            Err(error) => {
                self.state.record_reload(false, now_ms);
                return Err(error);
            }
        };
        let restart = restart_only_changes(&self.config, &bundle.config);
        if !restart.is_empty() {
            tracing::warn!(settings = ?restart, "these settings changed and take effect only at a restart; their running values stay");
        }
        self.apply(bundle, now_ms).await;
        self.state.record_reload(true, now_ms);
        Ok(())
    }

    async fn apply(&mut self, bundle: Bundle, now_ms: i64) {
        let Bundle { config, catalog, probe_checks, routing, scrape_jobs } = bundle;
        let replaced = self.rules.replace(&catalog.rule_files, rules::budgets::budget_series(&catalog), now_ms);
        if let Err(error) = self.rules.persist() {
            tracing::error!(error = %error, "persisting the rule state failed");
        }
        self.routing.reload(routing, now_ms);
        self.state.set_catalog(catalog.clone());
        if let Some(runner) = self.state.triage() {
            runner.replace_catalog(catalog.clone(), (self.triage_sources)(&catalog));
        }
        self.journal.journal.set_rules(journal::ClosingRules::from_catalog(&catalog));
        let scraped = self.scraping.apply(scrape_jobs).await;
        let probes_changed = format!("{probe_checks:?}") != format!("{:?}", self.probe_checks);
        if probes_changed {
            self.probing.restart(&self.state, probe_checks.clone()).await;
            self.probe_checks = probe_checks;
        }
        let mut status = (*self.state.status()).clone();
        status.config_yaml = crate::status::effective_yaml(
            crate::status::read_config_text(self.settings.config_path.as_deref()).as_deref(),
            &config,
        );
        self.state.set_status(status);
        // Restart-only settings keep their running values; the rest follows the file.
        self.config.catalog = config.catalog;
        self.config.scrape_configs = config.scrape_configs;
        self.config.scrape_self = config.scrape_self;
        self.config.scrape_defaults = config.scrape_defaults;
        self.config.alerting = config.alerting;
        if !replaced.notifications.is_empty() {
            self.notifier.send(replaced.notifications);
        }
        tracing::info!(
            catalog = %catalog.summary(),
            kept_rules = replaced.kept_rules,
            kept_alerts = replaced.kept_alerts,
            removed_rules = replaced.removed_rules,
            scrape_jobs_added = ?scraped.added,
            scrape_jobs_changed = ?scraped.changed,
            scrape_jobs_removed = ?scraped.removed,
            probes_restarted = probes_changed,
            "configuration reloaded"
        );
    }
}

/// Serves reloads until `stopped` turns true: on `SIGHUP` (the outcome is
/// logged) and on each request of `/-/reload` (the outcome is its answer).
/// Gives back the scrape and probe handles for the shutdown.
pub fn spawn(
    mut running: Running,
    mut requests: tokio::sync::mpsc::Receiver<server::lifecycle::ReloadReply>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<(scrape::ScrapeHandle, crate::probing::Probing)> {
    #[cfg(unix)]
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::warn!(error = %error, "SIGHUP cannot be handled: reload through /-/reload");
            None
        }
    };
    tokio::spawn(async move {
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hangups.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = async { let _ = stopped.wait_for(|stop| *stop).await; } => break,
                received = hangup => {
                    if received.is_none() {
                        continue;
                    }
                    tracing::info!("SIGHUP received: reloading the configuration");
                    if let Err(error) = running.reload().await {
                        tracing::error!(error = %error, "reloading the configuration failed; the running configuration stays");
                    }
                }
                request = requests.recv() => {
                    let Some(reply) = request else { break };
                    let outcome = running.reload().await;
                    if let Err(error) = &outcome {
                        tracing::error!(error = %error, "reloading the configuration failed; the running configuration stays");
                    }
                    let _ = reply.send(outcome);
                }
            }
        }
        (running.scraping, running.probing)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_only_settings_that_changed_are_named() {
        let running = Config::default();
        let mut new = Config::default();
        assert!(restart_only_changes(&running, &new).is_empty());
        new.listen = "127.0.0.1:9199".parse().expect("address");
        new.data = PathBuf::from("/elsewhere");
        new.remind_after = std::time::Duration::from_secs(60);
        new.scrape_self = false;
        new.catalog = Some(PathBuf::from("other"));
        assert_eq!(restart_only_changes(&running, &new), vec!["listen", "data", "journal.remind_after"]);
    }

    #[test]
    fn overrides_win_over_the_file_and_tls_turns_the_self_scrape_off() {
        let overrides = Overrides {
            listen: Some("127.0.0.1:9300".parse().expect("address")),
            catalog: Some(PathBuf::from("somewhere")),
            tls: true,
            ..Overrides::default()
        };
        let config = load_config(None, &overrides).expect("defaults load");
        assert_eq!(config.listen.port(), 9300);
        assert_eq!(config.catalog, Some(PathBuf::from("somewhere")));
        assert!(!config.scrape_self && config.secure_cookies);
    }
}
