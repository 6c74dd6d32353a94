//! Starting the built-in prober in `alertbook run`: every target of the
//! catalog's `kind: probes` contracts, appending through the server's durable
//! store under the same active-series limit as scraping and remote write, its
//! counters (`alertbook_probe_*`) registered into the server's `/metrics`
//! once; a reload restarts the probes with the new checks on the same counters.

use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The running probes.
#[derive(Debug)]
pub struct Probing {
    handle: probe::schedule::ProbeHandle,
}

fn log_checks(checks: &[probe::Check]) {
    for check in checks {
        tracing::info!(
            probe = %check.labels.probe,
            group = %check.labels.probe_group,
            prober = check.prober.as_str(),
            target = %check.labels.target,
            interval = ?check.interval,
            "probing"
        );
    }
}

fn sink(state: &server::AppState) -> Arc<dyn probe::schedule::Sink> {
    let store = state.store.clone();
    let max_series = state.max_series.load(Ordering::Relaxed);
    Arc::new(probe::schedule::DurableSink {
        durable: state.durable.clone(),
        admit: Arc::new(move |_| max_series == 0 || store.series_count() < max_series),
    })
}

/// Starts the probes of `checks`; must be called inside the tokio runtime.
pub fn start(state: &server::AppState, checks: Vec<probe::Check>) -> Probing {
    log_checks(&checks);
    let handle = probe::schedule::spawn(checks, sink(state), Arc::new(probe::schedule::SystemClock));
    state.metrics.register(|registry| handle.stats.metrics.register_in(registry));
    Probing { handle }
}

impl Probing {
    /// Stops the running probes (a check under way finishes) and starts `checks`.
    pub async fn restart(&mut self, state: &server::AppState, checks: Vec<probe::Check>) {
        let stats = self.handle.stats.clone();
        log_checks(&checks);
        let next = probe::schedule::spawn_counting(checks, sink(state), Arc::new(probe::schedule::SystemClock), stats);
        std::mem::replace(&mut self.handle, next).shutdown().await;
    }

    /// Stops every probe and waits.
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }
}
