//! The routing configuration of `alertbook run`: the `alertmanager.yml` named
//! by `alerting.config_file`, or the default tree over the catalog's routes
//! and the `--notify.webhook` receivers.

use std::sync::Arc;

use anyhow::Context;

/// The routing configuration `run` uses.
pub fn configuration(
    config: &crate::config::Config,
    catalog: &catalog::Catalog,
    webhooks: &[String],
) -> anyhow::Result<Arc<notify::routing::RoutingConfig>> {
    if let Some((path, routing)) = &config.alerting {
        if !webhooks.is_empty() {
            anyhow::bail!(
                "--notify.webhook is not used when alerting.config_file ({}) routes alerts: add the webhook as a receiver there",
                path.display()
            );
        }
        return Ok(routing.clone());
    }
    let mut pairs = Vec::new();
    for webhook in webhooks {
        let (name, url) = webhook
            .split_once('=')
            .filter(|(name, url)| !name.is_empty() && !url.is_empty())
            .with_context(|| format!("--notify.webhook {webhook:?}: expected NAME=URL"))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            anyhow::bail!("notification target {url:?} is not an http:// or https:// URL");
        }
        pairs.push((name.to_owned(), url.to_owned()));
    }
    let routing = match &catalog.contacts {
        Some(contacts) => notify::contacts::default_config(&pairs, contacts),
        None => notify::routing::config::default_config(&pairs, &catalog.routes),
    }
    .map_err(|errors| anyhow::anyhow!("the default routing is invalid:\n{errors}"))?;
    Ok(Arc::new(routing))
}

/// The wall clock in unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}
