//! Target discovery: turning target groups (static, or read from file-SD
//! files) into [`Target`]s, as Prometheus's `PopulateLabels` does.
//!
//! Key items: [`read_target_file`] (a JSON or YAML file of `targets`/`labels`
//! groups, each target labelled `__meta_filepath`), [`file_sd_groups`] (every
//! file a job's patterns match), [`populate`] (adds `job`, `__scheme__`,
//! `__metrics_path__`, `__scrape_interval__`, `__scrape_timeout__` and
//! `__param_*`, applies `relabel_configs`, drops targets whose `__address__`
//! ends up empty, defaults `instance` to the address, removes `__meta_*` and
//! other `__` labels from the target's labels and builds its URL) and
//! [`discover`] (all targets of a job).
//!
//! Reading files is the only I/O here; the rest is pure.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tsdb::{Labels, LabelsBuilder};

use crate::config::{ScrapeConfig, TargetGroup, check_address};
use crate::relabel;

pub const ADDRESS_LABEL: &str = "__address__";
pub const SCHEME_LABEL: &str = "__scheme__";
pub const METRICS_PATH_LABEL: &str = "__metrics_path__";
pub const SCRAPE_INTERVAL_LABEL: &str = "__scrape_interval__";
pub const SCRAPE_TIMEOUT_LABEL: &str = "__scrape_timeout__";
pub const PARAM_LABEL_PREFIX: &str = "__param_";
pub const META_LABEL_PREFIX: &str = "__meta_";
pub const FILEPATH_LABEL: &str = "__meta_filepath";
pub const JOB_LABEL: &str = "job";
pub const INSTANCE_LABEL: &str = "instance";

/// Errors reading a file-SD target file.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargetGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Reads a file-SD file: JSON when its name ends in `.json`, YAML otherwise.
pub fn read_target_file(path: &Path) -> Result<Vec<TargetGroup>, DiscoveryError> {
    let display = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|source| DiscoveryError::Read { path: display.clone(), source })?;
    let is_json = path.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("json"));
    let raw: Vec<RawTargetGroup> = if is_json {
        serde_json::from_str(&text)
            .map_err(|error| DiscoveryError::Invalid { path: display.clone(), message: error.to_string() })?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_saphyr::from_str(&text)
            .map_err(|error| DiscoveryError::Invalid { path: display.clone(), message: error.to_string() })?
    };
    let mut groups = Vec::with_capacity(raw.len());
    for (index, group) in raw.into_iter().enumerate() {
        for name in group.labels.keys() {
            if !relabel::is_valid_label_name(name) {
                return Err(DiscoveryError::Invalid {
                    path: display,
                    message: format!("group {index}: {name:?} is not a valid label name"),
                });
            }
        }
        let mut targets = Vec::with_capacity(group.targets.len());
        for address in &group.targets {
            check_address(address).map_err(|message| DiscoveryError::Invalid {
                path: display.clone(),
                message: format!("group {index}: {message}"),
            })?;
            targets.push(Labels::from_pairs([(ADDRESS_LABEL, address.as_str())]));
        }
        let labels = Labels::from_pairs(
            group
                .labels
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .chain([(FILEPATH_LABEL, display.as_str())]),
        );
        groups.push(TargetGroup { source: format!("{display}:{index}"), targets, labels });
    }
    Ok(groups)
}

/// Every group of every file matching `patterns`; files that cannot be read
/// are logged and skipped (their targets disappear, as in Prometheus).
pub fn file_sd_groups(patterns: &[String]) -> Vec<TargetGroup> {
    let mut groups = Vec::new();
    for pattern in patterns {
        let paths = match glob::glob(pattern) {
            Ok(paths) => paths,
            Err(error) => {
                tracing::warn!(pattern = %pattern, error = %error, "invalid file discovery pattern");
                continue;
            }
        };
        for path in paths.flatten() {
            match read_target_file(&path) {
                Ok(found) => groups.extend(found),
                Err(error) => tracing::warn!(error = %error, "cannot read file discovery targets"),
            }
        }
    }
    groups
}

/// One scrape target after relabeling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The labels attached to every sample of the target (`job`, `instance`,
    /// group labels; no `__` labels).
    pub labels: Labels,
    /// The labels before relabeling, `__meta_*` and the job's defaults
    /// included (the targets API's `discoveredLabels`, as Prometheus shows them).
    pub discovered: Labels,
    /// The URL scraped.
    pub url: String,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
}

fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) { format!("{}s", millis / 1000) } else { format!("{millis}ms") }
}

/// Percent-encodes a query component (unreserved characters kept).
fn encode_query_component(text: &str, out: &mut String) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// Builds a target from one group member, as Prometheus's `PopulateLabels`:
/// `Ok(None)` when relabeling dropped it or left no address, `Err` when the
/// result is unusable.
pub fn populate(
    config: &ScrapeConfig,
    group_labels: &Labels,
    target_labels: &Labels,
) -> Result<Option<Target>, String> {
    let discovered = discovered_labels(config, group_labels, target_labels);
    let Some(relabeled) = relabel::relabel(&discovered, &config.relabel_configs) else {
        return Ok(None);
    };
    target_from_relabeled(config, relabeled, discovered)
}

/// A group member's labels before relabeling: group and target labels with
/// the job's defaults (`job`, `__scheme__`, `__metrics_path__`, interval,
/// timeout, `__param_*`) where not set.
pub fn discovered_labels(config: &ScrapeConfig, group_labels: &Labels, target_labels: &Labels) -> Labels {
    let mut builder = LabelsBuilder::default();
    for label in group_labels.iter().chain(target_labels.iter()) {
        builder.set(label.name.clone(), label.value.clone());
    }
    let defaults = [
        (JOB_LABEL, config.job_name.clone()),
        (SCHEME_LABEL, config.scheme.as_str().to_owned()),
        (METRICS_PATH_LABEL, config.metrics_path.clone()),
        (SCRAPE_INTERVAL_LABEL, format_duration(config.scrape_interval)),
        (SCRAPE_TIMEOUT_LABEL, format_duration(config.scrape_timeout)),
    ];
    for (name, value) in defaults {
        if builder.get(name).is_none() {
            builder.set(name, value);
        }
    }
    for (name, values) in &config.params {
        let label = format!("{PARAM_LABEL_PREFIX}{name}");
        if builder.get(&label).is_none()
            && let Some(first) = values.first()
        {
            builder.set(label, first.clone());
        }
    }
    builder.build()
}

fn target_from_relabeled(
    config: &ScrapeConfig,
    relabeled: Labels,
    discovered: Labels,
) -> Result<Option<Target>, String> {
    let Some(address) = relabeled.get(ADDRESS_LABEL) else {
        return Ok(None);
    };
    check_address(address)?;
    let scheme = relabeled.get(SCHEME_LABEL).unwrap_or("http");
    if scheme != "http" && scheme != "https" {
        return Err(format!("invalid scheme {scheme:?} for target {address}"));
    }
    let scrape_interval = match relabeled.get(SCRAPE_INTERVAL_LABEL) {
        Some(text) => catalog::duration::parse_duration(text)
            .ok()
            .filter(|interval| !interval.is_zero())
            .ok_or_else(|| format!("invalid scrape interval {text:?} for target {address}"))?,
        None => config.scrape_interval,
    };
    let scrape_timeout = match relabeled.get(SCRAPE_TIMEOUT_LABEL) {
        Some(text) => catalog::duration::parse_duration(text)
            .ok()
            .filter(|timeout| !timeout.is_zero())
            .ok_or_else(|| format!("invalid scrape timeout {text:?} for target {address}"))?,
        None => config.scrape_timeout,
    };
    if scrape_timeout > scrape_interval {
        return Err(format!("scrape timeout greater than scrape interval for target {address}"));
    }
    let metrics_path = relabeled.get(METRICS_PATH_LABEL).unwrap_or("/metrics");
    let mut url = format!("{scheme}://{address}{metrics_path}");
    let mut params: BTreeMap<&str, Vec<&str>> = config
        .params
        .iter()
        .map(|(name, values)| (name.as_str(), values.iter().map(String::as_str).collect()))
        .collect();
    for label in &relabeled {
        if let Some(name) = label.name.strip_prefix(PARAM_LABEL_PREFIX) {
            let values = params.entry(name).or_default();
            match values.first_mut() {
                Some(first) => *first = &label.value,
                None => values.push(&label.value),
            }
        }
    }
    let mut separator = if metrics_path.contains('?') { '&' } else { '?' };
    for (name, values) in &params {
        for value in values {
            url.push(separator);
            separator = '&';
            encode_query_component(name, &mut url);
            url.push('=');
            encode_query_component(value, &mut url);
        }
    }
    let mut labels = LabelsBuilder::default();
    for label in relabeled.iter().filter(|label| !label.name.starts_with("__")) {
        labels.set(label.name.clone(), label.value.clone());
    }
    if labels.get(INSTANCE_LABEL).is_none() {
        labels.set(INSTANCE_LABEL, address);
    }
    Ok(Some(Target { labels: labels.build(), discovered, url, scrape_interval, scrape_timeout }))
}

/// Every target of a job from its groups, in order, duplicates (same labels)
/// removed; unusable targets are logged and skipped.
pub fn discover(config: &ScrapeConfig, groups: &[TargetGroup]) -> Vec<Target> {
    discover_with_dropped(config, groups).0
}

/// [`discover`], and the labels before relabeling of the targets relabeling
/// dropped (for the targets API's `droppedTargets`).
pub fn discover_with_dropped(config: &ScrapeConfig, groups: &[TargetGroup]) -> (Vec<Target>, Vec<Labels>) {
    let mut targets: Vec<Target> = Vec::new();
    let mut dropped = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for group in groups {
        for target_labels in &group.targets {
            match populate(config, &group.labels, target_labels) {
                Ok(Some(target)) => {
                    if seen.insert(target.labels.clone()) {
                        targets.push(target);
                    }
                }
                Ok(None) => dropped.push(discovered_labels(config, &group.labels, target_labels)),
                Err(message) => {
                    tracing::warn!(job = %config.job_name, source = %group.source, error = %message, "target dropped")
                }
            }
        }
    }
    (targets, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScrapeDefaults;
    use crate::relabel::{Action, RelabelConfig, RelabelSpec};

    fn job() -> ScrapeConfig {
        ScrapeConfig::with_static_targets("node", &["a:9100"], ScrapeDefaults::default())
    }

    #[test]
    fn populate_adds_job_instance_and_url() {
        let mut config = job();
        config.params.insert("module".into(), vec!["http 2xx".into()]);
        let target = populate(
            &config,
            &Labels::from_pairs([("team", "infra")]),
            &Labels::from_pairs([("__address__", "a:9100")]),
        )
        .expect("valid")
        .expect("kept");
        assert_eq!(target.labels, Labels::from_pairs([("instance", "a:9100"), ("job", "node"), ("team", "infra")]));
        assert_eq!(target.url, "http://a:9100/metrics?module=http%202xx");
        assert_eq!(target.discovered.get("__param_module"), Some("http 2xx"));
        assert_eq!(target.discovered.get("__scrape_interval__"), Some("60s"));
        // Before relabeling, as the targets API shows them.
        assert_eq!(target.discovered.get("__address__"), Some("a:9100"));
        assert_eq!(target.discovered.get("team"), Some("infra"));
        assert_eq!(target.discovered.get("instance"), None);
    }

    #[test]
    fn relabeling_can_rewrite_address_path_and_params_or_drop() {
        let mut config = job();
        let replace = |source: &str, target: &str, replacement: &str| {
            RelabelConfig::new(RelabelSpec {
                source_labels: vec![source.into()],
                target_label: Some(target.into()),
                replacement: Some(replacement.into()),
                ..RelabelSpec::default()
            })
            .expect("valid")
        };
        config.relabel_configs = vec![
            replace("__address__", "__param_target", "$1"),
            replace("__address__", "__address__", "exporter:9115"),
            replace("__address__", "__metrics_path__", "/probe"),
            replace("__param_target", "instance", "$1"),
        ];
        let target = populate(&config, &Labels::empty(), &Labels::from_pairs([("__address__", "example.org")]))
            .expect("valid")
            .expect("kept");
        assert_eq!(target.url, "http://exporter:9115/probe?target=example.org");
        assert_eq!(target.labels, Labels::from_pairs([("instance", "example.org"), ("job", "node")]));

        config.relabel_configs = vec![replace("__address__", "__address__", "${9}")];
        assert_eq!(populate(&config, &Labels::empty(), &Labels::from_pairs([("__address__", "x:1")])), Ok(None));
        config.relabel_configs = vec![
            RelabelConfig::new(RelabelSpec {
                source_labels: vec!["__address__".into()],
                regex: Some("x:.*".into()),
                action: Some(Action::Drop),
                ..RelabelSpec::default()
            })
            .expect("valid"),
        ];
        assert_eq!(populate(&config, &Labels::empty(), &Labels::from_pairs([("__address__", "x:1")])), Ok(None));
    }

    #[test]
    fn file_sd_reads_json_and_yaml() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let json = directory.path().join("a.json");
        std::fs::write(&json, r#"[{"targets": ["h1:1", "h2:2"], "labels": {"env": "prod"}}]"#).expect("write");
        let yaml = directory.path().join("b.yaml");
        std::fs::write(&yaml, "- targets: [h3:3]\n").expect("write");
        std::fs::write(directory.path().join("broken.json"), "{").expect("write");
        let pattern = directory.path().join("*.json").to_string_lossy().into_owned();
        let groups = file_sd_groups(&[pattern, yaml.to_string_lossy().into_owned()]);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].targets.len(), 2);
        assert_eq!(groups[0].labels.get("env"), Some("prod"));
        assert_eq!(groups[0].labels.get(FILEPATH_LABEL), Some(json.to_string_lossy().as_ref()));
        let targets = discover(&job(), &groups);
        assert_eq!(targets.len(), 3);
        assert!(targets.iter().all(|target| target.labels.get(FILEPATH_LABEL).is_none()));
        assert!(read_target_file(&directory.path().join("broken.json")).is_err());
    }
}
