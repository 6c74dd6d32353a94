//! Prometheus's `scrape_configs`, in two stages: raw serde structs that keep
//! spans ([`RawScrapeConfig`], `deny_unknown_fields`), then [`validate`] into
//! [`ScrapeConfig`], reporting every error at once as a located
//! [`catalog::Diagnostic`].
//!
//! Supported per job: `job_name`, `scrape_interval`, `scrape_timeout`,
//! `metrics_path`, `scheme`, `params`, `static_configs`, `file_sd_configs`,
//! `honor_labels`, `honor_timestamps`, `sample_limit`, `label_limit`,
//! `relabel_configs` and `metric_relabel_configs`; the global
//! `scrape_interval`/`scrape_timeout` are [`ScrapeDefaults`]. The defaults are
//! Prometheus's (interval 1m, timeout 10s capped at the interval, path
//! `/metrics`, scheme `http`, honor timestamps, no limits). Authentication,
//! TLS settings and service discovery other than static and file are not
//! supported and are rejected as unknown fields.
//!
//! Reads the configuration text it is given; file-SD target files are read
//! later, by [`crate::discovery`].

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use catalog::{Diagnostic, Diagnostics, SourceFile};
use serde::Deserialize;
use serde_saphyr::Spanned;
use tsdb::Labels;

use crate::relabel::{self, Action, Field, RelabelConfig, RelabelSpec};

/// Prometheus's default scrape interval.
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(60);
/// Prometheus's default scrape timeout.
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// Prometheus's default file-SD refresh interval.
pub const DEFAULT_FILE_SD_REFRESH: Duration = Duration::from_secs(300);

/// One `scrape_configs` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScrapeConfig {
    pub job_name: Spanned<String>,
    #[serde(default)]
    pub scrape_interval: Option<Spanned<String>>,
    #[serde(default)]
    pub scrape_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub metrics_path: Option<Spanned<String>>,
    #[serde(default)]
    pub scheme: Option<Spanned<String>>,
    #[serde(default)]
    pub params: BTreeMap<String, Spanned<Vec<String>>>,
    #[serde(default)]
    pub static_configs: Vec<RawStaticConfig>,
    #[serde(default)]
    pub file_sd_configs: Vec<RawFileSdConfig>,
    #[serde(default)]
    pub honor_labels: Option<bool>,
    #[serde(default)]
    pub honor_timestamps: Option<bool>,
    #[serde(default)]
    pub sample_limit: Option<u64>,
    #[serde(default)]
    pub label_limit: Option<u64>,
    #[serde(default)]
    pub relabel_configs: Vec<Spanned<RawRelabelConfig>>,
    #[serde(default)]
    pub metric_relabel_configs: Vec<Spanned<RawRelabelConfig>>,
}

/// A `static_configs` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStaticConfig {
    #[serde(default)]
    pub targets: Vec<Spanned<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, Spanned<String>>,
}

/// A `file_sd_configs` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileSdConfig {
    pub files: Vec<Spanned<String>>,
    #[serde(default)]
    pub refresh_interval: Option<Spanned<String>>,
}

/// A `relabel_configs` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRelabelConfig {
    #[serde(default)]
    pub source_labels: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub separator: Option<Spanned<String>>,
    #[serde(default)]
    pub regex: Option<Spanned<String>>,
    #[serde(default)]
    pub modulus: Option<Spanned<u64>>,
    #[serde(default)]
    pub target_label: Option<Spanned<String>>,
    #[serde(default)]
    pub replacement: Option<Spanned<String>>,
    #[serde(default)]
    pub action: Option<Spanned<String>>,
}

/// A Prometheus-style file holding only scrape settings (for `load`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScrapeFile {
    #[serde(default)]
    global: Option<RawScrapeGlobal>,
    #[serde(default)]
    scrape_configs: Vec<Spanned<RawScrapeConfig>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScrapeGlobal {
    #[serde(default)]
    scrape_interval: Option<Spanned<String>>,
    #[serde(default)]
    scrape_timeout: Option<Spanned<String>>,
}

/// The global defaults jobs inherit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeDefaults {
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
}

impl Default for ScrapeDefaults {
    fn default() -> Self {
        Self { scrape_interval: DEFAULT_SCRAPE_INTERVAL, scrape_timeout: DEFAULT_SCRAPE_TIMEOUT }
    }
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Targets sharing labels, from a `static_configs` entry or a file-SD file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroup {
    /// Where the group came from (`static/0`, a file path and index).
    pub source: String,
    /// One label set per target, each holding `__address__`.
    pub targets: Vec<Labels>,
    /// Labels every target of the group gets.
    pub labels: Labels,
}

/// A validated `file_sd_configs` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSdConfig {
    /// Path patterns (a `*` allowed in the last element), relative ones joined
    /// to the configuration file's directory.
    pub files: Vec<String>,
    pub refresh_interval: Duration,
}

/// A validated scrape job.
#[derive(Debug, Clone)]
pub struct ScrapeConfig {
    pub job_name: String,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    pub metrics_path: String,
    pub scheme: Scheme,
    pub params: BTreeMap<String, Vec<String>>,
    pub static_configs: Vec<TargetGroup>,
    pub file_sd_configs: Vec<FileSdConfig>,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    /// The most samples one scrape may yield after metric relabeling; 0: no limit.
    pub sample_limit: usize,
    /// The most labels one sample may have after metric relabeling; 0: no limit.
    pub label_limit: usize,
    pub relabel_configs: Vec<RelabelConfig>,
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

impl ScrapeConfig {
    /// A job scraping `targets` with every other setting at its default.
    pub fn with_static_targets(job_name: &str, targets: &[&str], defaults: ScrapeDefaults) -> Self {
        Self {
            job_name: job_name.to_owned(),
            scrape_interval: defaults.scrape_interval,
            scrape_timeout: defaults.scrape_timeout.min(defaults.scrape_interval),
            metrics_path: "/metrics".to_owned(),
            scheme: Scheme::Http,
            params: BTreeMap::new(),
            static_configs: vec![TargetGroup {
                source: "static/0".to_owned(),
                targets: targets.iter().map(|address| Labels::from_pairs([("__address__", *address)])).collect(),
                labels: Labels::empty(),
            }],
            file_sd_configs: Vec::new(),
            honor_labels: false,
            honor_timestamps: true,
            sample_limit: 0,
            label_limit: 0,
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
        }
    }
}

/// Parses a Prometheus duration written at `value`.
pub fn parse_duration(source: &SourceFile, value: &Spanned<String>) -> Result<Duration, Diagnostic> {
    catalog::duration::parse_duration(&value.value).map_err(|message| source.error_at_value(value, message))
}

/// Parses the global defaults (either may be absent).
pub fn defaults(
    source: &SourceFile,
    scrape_interval: Option<&Spanned<String>>,
    scrape_timeout: Option<&Spanned<String>>,
    errors: &mut Vec<Diagnostic>,
) -> ScrapeDefaults {
    let mut defaults = ScrapeDefaults::default();
    if let Some(value) = scrape_interval {
        match parse_duration(source, value) {
            Ok(interval) if interval.is_zero() => {
                errors.push(source.error_at_value(value, "scrape_interval must be greater than zero"))
            }
            Ok(interval) => defaults.scrape_interval = interval,
            Err(error) => errors.push(error),
        }
    }
    if let Some(value) = scrape_timeout {
        match parse_duration(source, value) {
            Ok(timeout) if timeout.is_zero() => {
                errors.push(source.error_at_value(value, "scrape_timeout must be greater than zero"))
            }
            Ok(timeout) if timeout > defaults.scrape_interval => errors.push(
                source
                    .error_at_value(value, "global scrape_timeout must not be greater than the global scrape_interval"),
            ),
            Ok(timeout) => defaults.scrape_timeout = timeout,
            Err(error) => errors.push(error),
        }
    } else {
        defaults.scrape_timeout = defaults.scrape_timeout.min(defaults.scrape_interval);
    }
    defaults
}

/// Reads a file with `global:` (`scrape_interval`, `scrape_timeout`) and
/// `scrape_configs:`, a subset of `prometheus.yml`.
pub fn load(path: &Path) -> Result<Vec<ScrapeConfig>, Diagnostics> {
    let source = SourceFile::read(path).map_err(|diagnostic| Diagnostics(vec![diagnostic]))?;
    let raw: RawScrapeFile = source.parse_yaml().map_err(|diagnostic| Diagnostics(vec![diagnostic]))?;
    let mut errors = Vec::new();
    let global = raw.global.as_ref();
    let defaults = defaults(
        &source,
        global.and_then(|global| global.scrape_interval.as_ref()),
        global.and_then(|global| global.scrape_timeout.as_ref()),
        &mut errors,
    );
    let base = path.parent().unwrap_or(Path::new("."));
    let configs = validate(&source, &raw.scrape_configs, defaults, base, &mut errors);
    if errors.is_empty() { Ok(configs) } else { Err(Diagnostics(errors)) }
}

/// Validates every job, pushing each problem to `errors`; returns the jobs
/// that were valid.
pub fn validate(
    source: &SourceFile,
    raw: &[Spanned<RawScrapeConfig>],
    defaults: ScrapeDefaults,
    base: &Path,
    errors: &mut Vec<Diagnostic>,
) -> Vec<ScrapeConfig> {
    let mut names = HashSet::new();
    let mut configs = Vec::new();
    for job in raw {
        let before = errors.len();
        let job_name = &job.value.job_name;
        if job_name.value.is_empty() {
            errors.push(source.error_at_value(job_name, "job_name must not be empty"));
        } else if !names.insert(job_name.value.clone()) {
            errors.push(
                source.error_at_value(
                    job_name,
                    format!("found multiple scrape configs with job name {:?}", job_name.value),
                ),
            );
        }
        let config = validate_job(source, &job.value, defaults, base, errors);
        if errors.len() == before {
            configs.push(config);
        }
    }
    configs
}

fn validate_job(
    source: &SourceFile,
    raw: &RawScrapeConfig,
    defaults: ScrapeDefaults,
    base: &Path,
    errors: &mut Vec<Diagnostic>,
) -> ScrapeConfig {
    let job_name = raw.job_name.value.clone();
    let mut scrape_interval = defaults.scrape_interval;
    if let Some(value) = &raw.scrape_interval {
        match parse_duration(source, value) {
            Ok(interval) if interval.is_zero() => {
                errors.push(source.error_at_value(value, "scrape_interval must be greater than zero"))
            }
            Ok(interval) => scrape_interval = interval,
            Err(error) => errors.push(error),
        }
    }
    // As Prometheus: an unset timeout is the global one, capped at the interval.
    let mut scrape_timeout = defaults.scrape_timeout.min(scrape_interval);
    if let Some(value) = &raw.scrape_timeout {
        match parse_duration(source, value) {
            Ok(timeout) if timeout.is_zero() => {
                errors.push(source.error_at_value(value, "scrape_timeout must be greater than zero"))
            }
            Ok(timeout) if timeout > scrape_interval => errors.push(source.error_at_value(
                value,
                format!("scrape timeout greater than scrape interval for scrape config with job name {job_name:?}"),
            )),
            Ok(timeout) => scrape_timeout = timeout,
            Err(error) => errors.push(error),
        }
    }
    let mut metrics_path = "/metrics".to_owned();
    if let Some(value) = &raw.metrics_path {
        if value.value.starts_with('/') {
            metrics_path = value.value.clone();
        } else {
            errors.push(source.error_at_value(value, format!("metrics_path {:?} must start with '/'", value.value)));
        }
    }
    let mut scheme = Scheme::Http;
    if let Some(value) = &raw.scheme {
        match value.value.as_str() {
            "http" => scheme = Scheme::Http,
            "https" => scheme = Scheme::Https,
            other => errors.push(source.error_at_value(value, format!("scheme {other:?} is not http or https"))),
        }
    }
    let params = raw.params.iter().map(|(name, values)| (name.clone(), values.value.clone())).collect();
    let mut static_configs = Vec::new();
    for (index, group) in raw.static_configs.iter().enumerate() {
        let mut targets = Vec::new();
        for target in &group.targets {
            match check_address(&target.value) {
                Ok(()) => targets.push(Labels::from_pairs([("__address__", target.value.as_str())])),
                Err(message) => errors.push(source.error_at_value(target, message)),
            }
        }
        let mut labels = Vec::new();
        for (name, value) in &group.labels {
            if relabel::is_valid_label_name(name) {
                labels.push((name.as_str(), value.value.as_str()));
            } else {
                errors.push(source.error_at_value(value, format!("{name:?} is not a valid label name")));
            }
        }
        static_configs.push(TargetGroup {
            source: format!("static/{index}"),
            targets,
            labels: Labels::from_pairs(labels),
        });
    }
    let mut file_sd_configs = Vec::new();
    for file_sd in &raw.file_sd_configs {
        let mut refresh_interval = DEFAULT_FILE_SD_REFRESH;
        if let Some(value) = &file_sd.refresh_interval {
            match parse_duration(source, value) {
                Ok(interval) if interval.is_zero() => {
                    errors.push(source.error_at_value(value, "refresh_interval must be greater than zero"))
                }
                Ok(interval) => refresh_interval = interval,
                Err(error) => errors.push(error),
            }
        }
        let mut files = Vec::new();
        for file in &file_sd.files {
            match check_file_sd_pattern(&file.value) {
                Ok(()) => files.push(base.join(&file.value).to_string_lossy().into_owned()),
                Err(message) => errors.push(source.error_at_value(file, message)),
            }
        }
        file_sd_configs.push(FileSdConfig { files, refresh_interval });
    }
    ScrapeConfig {
        job_name,
        scrape_interval,
        scrape_timeout,
        metrics_path,
        scheme,
        params,
        static_configs,
        file_sd_configs,
        honor_labels: raw.honor_labels.unwrap_or(false),
        honor_timestamps: raw.honor_timestamps.unwrap_or(true),
        sample_limit: limit(raw.sample_limit),
        label_limit: limit(raw.label_limit),
        relabel_configs: validate_relabel_configs(source, &raw.relabel_configs, errors),
        metric_relabel_configs: validate_relabel_configs(source, &raw.metric_relabel_configs, errors),
    }
}

fn limit(value: Option<u64>) -> usize {
    value.map_or(0, |value| usize::try_from(value).unwrap_or(usize::MAX))
}

/// Rejects target addresses Prometheus rejects: empty, or with a scheme or path.
pub fn check_address(address: &str) -> Result<(), String> {
    if address.is_empty() {
        return Err("target address must not be empty".to_owned());
    }
    if address.contains('/') {
        return Err(format!("{address:?} is not a valid hostname: give host:port, without scheme or path"));
    }
    Ok(())
}

/// File-SD paths name `.json`, `.yml` or `.yaml` files, a `*` allowed only in
/// the last path element (Prometheus's rule).
fn check_file_sd_pattern(pattern: &str) -> Result<(), String> {
    let lower = pattern.to_ascii_lowercase();
    let extension_ok = [".json", ".yml", ".yaml"].iter().any(|extension| lower.ends_with(extension));
    let directory = pattern.rsplit_once('/').map_or("", |(directory, _)| directory);
    if !extension_ok || directory.contains('*') {
        return Err(format!(
            "invalid file SD path {pattern:?}: name .json, .yml or .yaml files, '*' only in the last path element"
        ));
    }
    Ok(())
}

/// Validates `relabel_configs` or `metric_relabel_configs`.
pub fn validate_relabel_configs(
    source: &SourceFile,
    raw: &[Spanned<RawRelabelConfig>],
    errors: &mut Vec<Diagnostic>,
) -> Vec<RelabelConfig> {
    let mut configs = Vec::new();
    for entry in raw {
        let step = &entry.value;
        let action = match &step.action {
            None => Some(Action::Replace),
            Some(name) => match Action::parse(&name.value) {
                Some(action) => Some(action),
                None => {
                    let known: Vec<&str> = Action::ALL.iter().map(|(name, _)| *name).collect();
                    errors.push(source.error_at_value(
                        name,
                        format!("unknown relabel action {:?} (expected one of {})", name.value, known.join(", ")),
                    ));
                    None
                }
            },
        };
        let Some(action) = action else { continue };
        let spec = RelabelSpec {
            source_labels: step.source_labels.as_ref().map(|labels| labels.value.clone()).unwrap_or_default(),
            separator: step.separator.as_ref().map(|value| value.value.clone()),
            regex: step.regex.as_ref().map(|value| value.value.clone()),
            modulus: step.modulus.as_ref().map(|value| value.value),
            target_label: step.target_label.as_ref().map(|value| value.value.clone()),
            replacement: step.replacement.as_ref().map(|value| value.value.clone()),
            action: Some(action),
        };
        match RelabelConfig::new(spec) {
            Ok(config) => configs.push(config),
            Err(error) => {
                let location = match error.field {
                    Field::SourceLabels => step.source_labels.as_ref().map(|value| &value.referenced),
                    Field::Separator => step.separator.as_ref().map(|value| &value.referenced),
                    Field::Regex => step.regex.as_ref().map(|value| &value.referenced),
                    Field::Modulus => step.modulus.as_ref().map(|value| &value.referenced),
                    Field::TargetLabel => step.target_label.as_ref().map(|value| &value.referenced),
                    Field::Replacement => step.replacement.as_ref().map(|value| &value.referenced),
                    Field::Action => step.action.as_ref().map(|value| &value.referenced),
                };
                let location = location.unwrap_or(&entry.referenced);
                errors.push(source.error_at_location(location, error.message));
            }
        }
    }
    configs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Vec<ScrapeConfig>, Diagnostics> {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("scrape.yaml");
        std::fs::write(&path, text).expect("write");
        load(&path).map_err(|diagnostics| {
            // Keep only file names so messages compare across machines.
            Diagnostics(
                diagnostics
                    .0
                    .into_iter()
                    .map(|mut diagnostic| {
                        diagnostic.path = Path::new("scrape.yaml").to_owned();
                        diagnostic
                    })
                    .collect(),
            )
        })
    }

    #[test]
    fn full_job_validates_with_defaults_applied() {
        let configs = load_text(
            r#"
global:
  scrape_interval: 30s
  scrape_timeout: 5s
scrape_configs:
  - job_name: node
    params:
      module: [http_2xx]
    static_configs:
      - targets: ["a:9100", "b:9100"]
        labels: {team: infra}
    file_sd_configs:
      - files: ["targets/*.json"]
    relabel_configs:
      - source_labels: [__address__]
        regex: "(.*):9100"
        target_label: host
      - action: hashmod
        source_labels: [__address__]
        modulus: 4
        target_label: __tmp_shard
    metric_relabel_configs:
      - action: labeldrop
        regex: "pid"
  - job_name: fast
    scrape_interval: 2s
"#,
        )
        .expect("valid");
        assert_eq!(configs.len(), 2);
        let node = &configs[0];
        assert_eq!(node.scrape_interval, Duration::from_secs(30));
        assert_eq!(node.scrape_timeout, Duration::from_secs(5));
        assert_eq!(node.metrics_path, "/metrics");
        assert!(node.honor_timestamps && !node.honor_labels);
        assert_eq!(node.static_configs[0].targets.len(), 2);
        assert_eq!(node.static_configs[0].labels.get("team"), Some("infra"));
        assert_eq!(node.relabel_configs.len(), 2);
        assert_eq!(node.metric_relabel_configs[0].action, Action::LabelDrop);
        assert!(node.file_sd_configs[0].files[0].ends_with("targets/*.json"));
        // An unset timeout is capped at the job's interval.
        assert_eq!(configs[1].scrape_timeout, Duration::from_secs(2));
    }

    #[test]
    fn every_error_is_reported_at_its_place() {
        let errors = load_text(
            r#"scrape_configs:
  - job_name: a
    scrape_interval: 5s
    scrape_timeout: 10s
    scheme: ftp
    static_configs:
      - targets: ["http://x:1/metrics"]
    relabel_configs:
      - action: frobnicate
      - action: hashmod
        target_label: x
  - job_name: a
    file_sd_configs:
      - files: ["targets/*/x.json"]
"#,
        )
        .expect_err("invalid");
        let located: Vec<(usize, usize)> = errors.iter().map(|error| (error.line, error.column)).collect();
        assert_eq!(located, [(4, 21), (5, 13), (7, 19), (9, 17), (10, 9), (12, 15), (14, 17)], "{errors}");
        let text = errors.to_string();
        assert!(text.contains("scrape timeout greater than scrape interval"), "{text}");
        assert!(text.contains("unknown relabel action \"frobnicate\""), "{text}");
        assert!(text.contains("hashmod requires non-zero modulus"), "{text}");
        assert!(text.contains("multiple scrape configs with job name \"a\""), "{text}");
    }

    #[test]
    fn unknown_fields_are_rejected_with_location() {
        let errors = load_text("scrape_configs:\n  - job_name: a\n    basic_auth: {}\n").expect_err("unknown field");
        assert_eq!(errors.0[0].line, 3, "{errors}");
        assert!(errors.to_string().contains("basic_auth"), "{errors}");
    }
}
