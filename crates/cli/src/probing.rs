//! Starting the built-in prober in `alertbook run`: every target of the
//! catalog's `kind: probes` contracts, appending through the server's durable
//! store under the same active-series limit as scraping and remote write, its
//! counters (`alertbook_probe_*`) registered into the server's `/metrics`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Starts the probes of `checks`; must be called inside the tokio runtime.
pub fn start(state: &server::AppState, checks: Vec<probe::Check>) -> probe::schedule::ProbeHandle {
    for check in &checks {
        tracing::info!(
            probe = %check.labels.probe,
            group = %check.labels.probe_group,
            prober = check.prober.as_str(),
            target = %check.labels.target,
            interval = ?check.interval,
            "probing"
        );
    }
    let store = state.store.clone();
    let max_series = state.max_series.load(Ordering::Relaxed);
    let sink = probe::schedule::DurableSink {
        durable: state.durable.clone(),
        admit: Arc::new(move |_| max_series == 0 || store.series_count() < max_series),
    };
    let handle = probe::schedule::spawn(checks, Arc::new(sink), Arc::new(probe::schedule::SystemClock));
    state.metrics.register(|registry| handle.stats.metrics.register_in(registry));
    handle
}
