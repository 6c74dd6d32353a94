//! Starting the scrape jobs of `alertbook run`: the configured jobs and the
//! self-scrape, appending through the server's durable store, counted in the
//! server's metrics registry, under the same active-series limit as remote
//! write; metadata, exemplars and target status go to the server's stores.

use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Starts scraping `jobs`; must be called inside the tokio runtime. When the
/// HTTP client cannot be built, scraping is disabled with an error logged.
pub fn start(state: &server::AppState, jobs: Vec<scrape::ScrapeConfig>) -> scrape::ScrapeHandle {
    let appended = state.metrics.appended("scrape");
    let metrics = state.metrics.register(|registry| scrape::ScrapeMetrics::register(registry, appended));
    let store = state.store.clone();
    let max_series = state.max_series.load(Ordering::Relaxed);
    let admit: scrape::Admit = Arc::new(move |_| max_series == 0 || store.series_count() < max_series);
    match scrape::ScrapeContext::new(state.durable.clone(), admit, metrics) {
        Ok(context) => {
            let context = context.with_stores(state.metadata.clone(), state.exemplars.clone(), state.targets.clone());
            for job in &jobs {
                tracing::info!(job = %job.job_name, interval = ?job.scrape_interval, "scraping");
            }
            scrape::spawn(jobs, Arc::new(context), Arc::new(scrape::SystemClock))
        }
        Err(error) => {
            tracing::error!(error = %error, "scraping is disabled");
            scrape::ScrapeHandle::idle()
        }
    }
}
