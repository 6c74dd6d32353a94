//! `alertbook test rules`: unit tests of rule files in `promtool test rules`'s
//! format (rule_files, evaluation_interval, group_eval_order, fuzzy_compare,
//! tests with input_series, alert_rule_test, promql_expr_test,
//! external_labels, external_url, start_timestamp), run against a fresh
//! in-memory store per test group with the same rule engine as `alertbook run`.
//!
//! alertbook extensions for log rules: `input_logs` (streams in Loki's push
//! JSON shape) feed `datasource: logs` groups through a log store of their
//! own, redacted first when the file has a `redaction` section (PII rules,
//! exclusions, streams) exactly as live ingest redacts; `logql_expr_test`
//! checks LogQL metric queries like `promql_expr_test` checks PromQL.
//!
//! Output follows promtool (`Unit Testing:  FILE`, then `SUCCESS` or `FAILED:`
//! and each failure with what was expected and what came), followed by a
//! last line `N passed, M failed` counting test groups. Input series and
//! `exp_samples` may hold native histograms in the `{{…}}` notation; they are
//! compared, and printed on failure, as promtool's test expressions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::Deserialize;
use tsdb::{Labels, MemStore};

/// What to run and how.
pub struct Options {
    pub run: Option<regex::Regex>,
    pub ignore_unknown_fields: bool,
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<Scalar>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    fuzzy_compare: bool,
    #[serde(default)]
    tests: Vec<RawTestGroup>,
    /// alertbook extension: redact `input_logs` as live ingest does.
    #[serde(default)]
    redaction: Option<RawRedaction>,
    /// alertbook extension: the catalog whose runbook entries `triage_test` runs.
    #[serde(default)]
    triage_catalog: Option<String>,
}

/// The PII redaction applied to a test file's log input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedaction {
    /// The PII rules file, relative to the test file.
    rules: String,
    /// A `pii-exclusions` contract file, relative to the test file.
    #[serde(default)]
    exclusions: Option<String>,
    /// Stream selectors of the redacted streams [default: {job="faro"}].
    #[serde(default)]
    streams: Option<Vec<String>>,
}

/// One stream of `input_logs`, in Loki's push JSON shape: `values` are
/// `[time, line]` or `[time, line, {metadata}]`, the time in nanoseconds or as
/// a duration (`5m`), relative to the group's start.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogStream {
    stream: BTreeMap<String, String>,
    values: Vec<Vec<serde_json::Value>>,
}

/// A YAML scalar read as text, whatever its YAML type (`0`, `5m`, `1 2 3`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Scalar {
    Text(String),
    Integer(i64),
    Float(f64),
}

impl Scalar {
    pub(crate) fn text(&self) -> String {
        match self {
            Scalar::Text(text) => text.clone(),
            Scalar::Integer(number) => number.to_string(),
            Scalar::Float(number) => number.to_string(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestGroup {
    #[serde(default)]
    interval: Option<Scalar>,
    #[serde(default)]
    input_series: Vec<RawSeries>,
    /// alertbook extension: log streams for `datasource: logs` groups.
    #[serde(default)]
    input_logs: Vec<RawLogStream>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    start_timestamp: Option<Scalar>,
    #[serde(default)]
    alert_rule_test: Vec<RawAlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<RawPromqlTest>,
    /// alertbook extension: LogQL metric queries over `input_logs`.
    #[serde(default)]
    logql_expr_test: Vec<RawPromqlTest>,
    /// alertbook extension: triage runs of runbook entries (see `test_triage`).
    #[serde(default)]
    triage_test: Vec<crate::test_triage::RawTriageTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeries {
    series: String,
    values: Scalar,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertTest {
    #[serde(default)]
    eval_time: Option<Scalar>,
    #[serde(default)]
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<RawExpectedAlert>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpectedAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPromqlTest {
    expr: String,
    #[serde(default)]
    eval_time: Option<Scalar>,
    #[serde(default)]
    exp_samples: Vec<RawSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSample {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    value: f64,
    #[serde(default)]
    histogram: Option<String>,
}

/// The outcome of one test group.
struct GroupOutcome {
    name: String,
    errors: Vec<String>,
}

/// The outcome of one file.
struct FileOutcome {
    path: PathBuf,
    /// Errors of the file itself (unreadable, rule files invalid).
    errors: Vec<String>,
    groups: Vec<GroupOutcome>,
}

impl FileOutcome {
    fn passed(&self) -> usize {
        if !self.errors.is_empty() {
            return 0;
        }
        self.groups.iter().filter(|group| group.errors.is_empty()).count()
    }

    fn failed(&self) -> usize {
        if !self.errors.is_empty() {
            return 1.max(self.groups.len());
        }
        self.groups.iter().filter(|group| !group.errors.is_empty()).count()
    }
}

/// Runs every file; prints promtool's report and returns whether all passed.
pub fn run(files: &[PathBuf], options: &Options) -> anyhow::Result<bool> {
    let mut outcomes = Vec::new();
    for path in files {
        println!("Unit Testing:  {}", path.display());
        let outcome = run_file(path, options);
        let failures: Vec<&String> =
            outcome.errors.iter().chain(outcome.groups.iter().flat_map(|group| &group.errors)).collect();
        if failures.is_empty() {
            println!("  SUCCESS");
        } else {
            println!("  FAILED:");
            for failure in failures {
                println!("{failure}");
            }
        }
        println!();
        outcomes.push(outcome);
    }
    let passed: usize = outcomes.iter().map(FileOutcome::passed).sum();
    let failed: usize = outcomes.iter().map(FileOutcome::failed).sum();
    println!("{passed} passed, {failed} failed");
    if let Some(junit) = &options.junit {
        std::fs::write(junit, junit_report(&outcomes))
            .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", junit.display()))?;
    }
    Ok(failed == 0)
}

fn run_file(path: &Path, options: &Options) -> FileOutcome {
    let mut outcome = FileOutcome { path: path.to_owned(), errors: Vec::new(), groups: Vec::new() };
    let source = match catalog::SourceFile::read(path) {
        Ok(source) => source,
        Err(diagnostic) => {
            outcome.errors.push(format!("  {diagnostic}"));
            return outcome;
        }
    };
    let raw: RawTestFile = match source.parse_yaml() {
        Ok(raw) => raw,
        Err(diagnostic) => {
            outcome.errors.push(format!("  {diagnostic}"));
            return outcome;
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let evaluation_interval_ms = match raw.evaluation_interval.as_ref().map(|scalar| duration_ms(&scalar.text())) {
        None => 60_000,
        Some(Ok(ms)) if ms > 0 => ms,
        Some(Ok(_)) => 60_000,
        Some(Err(error)) => {
            outcome.errors.push(format!("    evaluation_interval: {error}"));
            return outcome;
        }
    };
    let mut rule_paths = Vec::new();
    for pattern in &raw.rule_files {
        let full = base.join(pattern);
        match glob::glob(&full.to_string_lossy()) {
            Ok(paths) => {
                let mut matched: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
                if matched.is_empty() && !pattern.contains(['*', '?', '[']) {
                    matched.push(full);
                }
                rule_paths.extend(matched);
            }
            Err(error) => outcome.errors.push(format!("    rule_files: {pattern:?}: {error}")),
        }
    }
    let rule_options =
        catalog::RuleFileOptions { ignore_unknown_fields: options.ignore_unknown_fields, ..Default::default() };
    let rule_files = match catalog::load_rules_with(&rule_paths, rule_options) {
        Ok(files) => files,
        Err(diagnostics) => {
            for diagnostic in diagnostics.iter() {
                outcome.errors.push(indent(&diagnostic.to_string(), "    "));
            }
            return outcome;
        }
    };
    let group_names: Vec<String> =
        rule_files.iter().flat_map(|file| &file.groups).map(|group| group.name.clone()).collect();
    for name in &raw.group_eval_order {
        if !group_names.contains(name) {
            outcome.errors.push(format!("    group name {name:?} in group_eval_order not found"));
        }
    }
    let redaction = match raw.redaction.as_ref().map(|redaction| load_redaction(base, redaction)) {
        None => None,
        Some(Ok(redaction)) => Some(redaction),
        Some(Err(error)) => {
            outcome.errors.push(format!("    redaction: {error:#}"));
            None
        }
    };
    let triage_catalog = match &raw.triage_catalog {
        None => None,
        Some(directory) => match catalog::load(&base.join(directory)) {
            Ok(catalog) => Some(catalog),
            Err(diagnostics) => {
                outcome.errors.push(format!(
                    "    triage_catalog: {directory:?} is invalid:\n{}",
                    indent(&diagnostics.to_string(), "    ")
                ));
                None
            }
        },
    };
    if raw.triage_catalog.is_none() && raw.tests.iter().any(|group| !group.triage_test.is_empty()) {
        outcome.errors.push("    triage_test needs triage_catalog, the catalog whose runbook entries run".into());
    }
    if !outcome.errors.is_empty() {
        return outcome;
    }
    let settings = FileSettings {
        triage_catalog,
        rule_files,
        evaluation_interval_ms,
        group_eval_order: raw.group_eval_order,
        fuzzy_compare: raw.fuzzy_compare,
        redaction,
    };
    for group in &raw.tests {
        if let Some(run) = &options.run
            && !run.is_match(&group.name)
        {
            continue;
        }
        let errors = run_group(group, &settings);
        outcome.groups.push(GroupOutcome { name: group.name.clone(), errors });
    }
    outcome
}

struct FileSettings {
    rule_files: Vec<catalog::RuleFile>,
    evaluation_interval_ms: i64,
    group_eval_order: Vec<String>,
    fuzzy_compare: bool,
    redaction: Option<pii::StreamRedaction>,
    triage_catalog: Option<catalog::Catalog>,
}

/// The redaction of a test file: its PII rules, exclusions and streams.
fn load_redaction(base: &Path, raw: &RawRedaction) -> anyhow::Result<pii::StreamRedaction> {
    let rules_path = base.join(&raw.rules);
    let text = std::fs::read_to_string(&rules_path).with_context(|| format!("cannot read {}", rules_path.display()))?;
    let rules = pii::RuleSet::from_yaml(&text, &rules_path.display().to_string())?;
    let mut exclusions = Vec::new();
    if let Some(path) = &raw.exclusions {
        let source =
            catalog::SourceFile::read(&base.join(path)).map_err(|diagnostic| anyhow::anyhow!("{diagnostic}"))?;
        let mut errors = Vec::new();
        let contract = catalog::contracts::load_contract(&source, &mut errors);
        if let Some(error) = errors.first() {
            anyhow::bail!("{error}");
        }
        exclusions = contract.map(|contract| contract.pii_exclusions()).unwrap_or_default();
    }
    let streams = raw.streams.clone().unwrap_or_else(|| vec![pii::DEFAULT_STREAMS.to_owned()]);
    Ok(pii::StreamRedaction::new(pii::Redactor::new(&rules, exclusions), &streams)?)
}

/// The push streams of `input_logs`, timestamps made absolute from `start_ms`.
fn log_streams(raw: &[RawLogStream], start_ms: i64) -> Result<Vec<logstore::push::PushStream>, String> {
    let mut streams = Vec::new();
    for (stream_index, stream) in raw.iter().enumerate() {
        let labels =
            tsdb::Labels::from_pairs(stream.stream.iter().map(|(name, value)| (name.as_str(), value.as_str())));
        if labels.is_empty() {
            return Err(format!("input_logs[{stream_index}]: the stream has no labels"));
        }
        let mut entries = Vec::new();
        for (entry_index, value) in stream.values.iter().enumerate() {
            let at = |message: String| format!("input_logs[{stream_index}].values[{entry_index}]: {message}");
            let (time, line, metadata) = match value.as_slice() {
                [time, line] => (time, line, None),
                [time, line, metadata] => (time, line, Some(metadata)),
                _ => return Err(at("expected [time, line] or [time, line, {metadata}]".into())),
            };
            let time_text = match time {
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Number(number) => number.to_string(),
                _ => return Err(at("the time is not a string or number".into())),
            };
            let offset_ns = match time_text.parse::<i64>() {
                Ok(nanoseconds) => nanoseconds,
                Err(_) => duration_ms(&time_text).map_err(at)?.saturating_mul(1_000_000),
            };
            let serde_json::Value::String(line) = line else { return Err(at("the line is not a string".into())) };
            let metadata = match metadata {
                None => Vec::new(),
                Some(serde_json::Value::Object(map)) => map
                    .iter()
                    .map(|(name, value)| match value {
                        serde_json::Value::String(text) => Ok((name.clone(), text.clone())),
                        other => Ok((name.clone(), other.to_string())),
                    })
                    .collect::<Result<Vec<_>, String>>()?,
                Some(_) => return Err(at("structured metadata must be a map".into())),
            };
            entries.push(logstore::push::PushEntry {
                timestamp_ns: start_ms.saturating_mul(1_000_000).saturating_add(offset_ns),
                line: line.clone(),
                metadata,
            });
        }
        streams.push(logstore::push::PushStream { labels, entries });
    }
    Ok(streams)
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines().map(|line| format!("{prefix}{line}")).collect::<Vec<_>>().join("\n")
}

/// Runs one test group; returns its failures, each already formatted.
fn run_group(group: &RawTestGroup, settings: &FileSettings) -> Vec<String> {
    let mut errors = Vec::new();
    let name_prefix = if group.name.is_empty() { String::new() } else { format!("    name: {},\n", group.name) };
    let interval_ms = match group.interval.as_ref().map(|scalar| duration_ms(&scalar.text())) {
        None => settings.evaluation_interval_ms,
        Some(Ok(ms)) if ms > 0 => ms,
        Some(Ok(_)) => settings.evaluation_interval_ms,
        Some(Err(error)) => return vec![format!("{name_prefix}    interval: {error}")],
    };
    let start_ms = match &group.start_timestamp {
        None => 0,
        Some(scalar) => match parse_start_timestamp(&scalar.text()) {
            Ok(ms) => ms,
            Err(error) => return vec![format!("{name_prefix}    start_timestamp: {error}")],
        },
    };

    // Input series.
    let store = Arc::new(MemStore::new());
    for series in &group.input_series {
        let labels = match parse_series_descriptor(&series.series) {
            Ok(labels) => labels,
            Err(error) => {
                errors.push(format!("{name_prefix}    series {:?}: {error}", series.series));
                continue;
            }
        };
        let values = match parse_values(&series.values.text()) {
            Ok(values) => values,
            Err(error) => {
                errors.push(format!("{name_prefix}    series {:?}: values: {error}", series.series));
                continue;
            }
        };
        for (index, value) in values.into_iter().enumerate() {
            let Some(value) = value else { continue };
            let time_ms = start_ms + index as i64 * interval_ms;
            let appended = match value {
                SeriesValue::Float(value) => store.append(&labels, time_ms, value),
                SeriesValue::Histogram(histogram) => store.append_histogram(&labels, time_ms, histogram),
            };
            if let Err(error) = appended {
                errors.push(format!("{name_prefix}    series {:?}: {error}", series.series));
                break;
            }
        }
    }
    if !errors.is_empty() {
        return errors;
    }

    // Input logs, redacted as at ingest, in a log store of their own.
    let log_input = match crate::log_input::LogInput::new() {
        Ok(input) => input,
        Err(error) => return vec![format!("{name_prefix}    input_logs: {error:#}")],
    };
    match log_streams(&group.input_logs, start_ms) {
        Ok(streams) => {
            if let Err(error) = log_input.append(streams, settings.redaction.as_ref()) {
                return vec![format!("{name_prefix}    input_logs: {error:#}")];
            }
        }
        Err(error) => return vec![format!("{name_prefix}    {error}")],
    }
    let logs_datasource = log_input.datasource();

    let engine = promql::Engine::new(promql::EngineOptions {
        default_subquery_step_ms: settings.evaluation_interval_ms,
        ..promql::EngineOptions::default()
    });
    let datasource = rules::EmbeddedDatasource::new(store.clone(), engine.clone());
    let mut manager_options = rules::ManagerOptions::embedded(datasource);
    manager_options.default_interval_ms = settings.evaluation_interval_ms;
    manager_options.external_labels = group.external_labels.clone();
    manager_options.external_url = group.external_url.clone();
    manager_options.logs_datasource = Some(logs_datasource.clone());
    let mut files = settings.rule_files.clone();
    if !settings.group_eval_order.is_empty() {
        // promtool orders every group by its position in group_eval_order (unlisted: first).
        let position = |name: &str| settings.group_eval_order.iter().position(|listed| listed == name).unwrap_or(0);
        let mut groups: Vec<(String, catalog::RuleGroup)> = files
            .iter()
            .flat_map(|file| file.groups.iter().map(|group| (file.path.display().to_string(), group.clone())))
            .collect();
        groups.sort_by_key(|(_, group)| position(&group.name));
        files = groups
            .into_iter()
            .map(|(path, group)| catalog::RuleFile { path: PathBuf::from(path), groups: vec![group] })
            .collect();
    }
    let manager = rules::Manager::new(&files, manager_options);

    // Evaluation times.
    let mut alert_times: Vec<i64> = Vec::new();
    let mut alert_tests: Vec<(i64, &RawAlertTest)> = Vec::new();
    for test in &group.alert_rule_test {
        if test.alertname.is_empty() {
            errors.push(format!("{name_prefix}    alertname is empty"));
            continue;
        }
        match eval_time(&test.eval_time) {
            Ok(ms) => {
                alert_times.push(ms);
                alert_tests.push((ms, test));
            }
            Err(error) => errors.push(format!("{name_prefix}    alertname: {}, eval_time: {error}", test.alertname)),
        }
    }
    let mut promql_tests = Vec::new();
    let expression_tests = group.promql_expr_test.iter().map(|test| (false, test));
    for (logql, test) in expression_tests.chain(group.logql_expr_test.iter().map(|test| (true, test))) {
        match eval_time(&test.eval_time) {
            Ok(ms) => promql_tests.push((ms, logql, test)),
            Err(error) => errors.push(format!("{name_prefix}    expr: {:?}, eval_time: {error}", test.expr)),
        }
    }
    let mut triage_tests = Vec::new();
    for test in &group.triage_test {
        match eval_time(&test.eval_time) {
            Ok(ms) => triage_tests.push((ms, test)),
            Err(error) => errors.push(format!("{name_prefix}    runbook: {}, eval_time: {error}", test.runbook)),
        }
    }
    if !errors.is_empty() {
        return errors;
    }
    alert_times.sort_unstable();
    alert_times.dedup();
    let max_ms = alert_times
        .iter()
        .chain(promql_tests.iter().map(|(ms, _, _)| ms))
        .chain(triage_tests.iter().map(|(ms, _)| ms))
        .copied()
        .max()
        .unwrap_or(0);

    let mut next_alert = 0;
    let mut last_triage: BTreeMap<String, triage::Run> = BTreeMap::new();
    let mut time_ms = start_ms;
    while time_ms <= start_ms + max_ms {
        let mut evaluation_errors = Vec::new();
        for index in 0..manager.group_count() {
            let (_, rule_errors) = manager.evaluate_group(index, time_ms);
            for error in rule_errors {
                evaluation_errors.push(format!(
                    "    rule: {}, time: {}, err: {}",
                    error.rule,
                    catalog::template::format_go_duration(time_ms as f64 / 1000.0),
                    error.message
                ));
            }
        }
        if !evaluation_errors.is_empty() {
            errors.extend(evaluation_errors);
            return errors;
        }
        let relative = time_ms - start_ms;
        while next_alert < alert_times.len()
            && relative <= alert_times[next_alert]
            && alert_times[next_alert] < relative + settings.evaluation_interval_ms
        {
            let at = alert_times[next_alert];
            for (_, test) in alert_tests.iter().filter(|(ms, _)| *ms == at) {
                if let Some(error) = check_alerts(&manager, test, at, &name_prefix) {
                    errors.push(error);
                }
            }
            next_alert += 1;
        }
        if let Some(catalog) = &settings.triage_catalog {
            let inputs = crate::test_triage::Inputs {
                catalog,
                store: store.clone(),
                engine: engine.clone(),
                logs: log_input.store.clone(),
                manager: &manager,
            };
            for (at, test) in &triage_tests {
                if relative <= *at && *at < relative + settings.evaluation_interval_ms {
                    // Runs follow each other per entry and alert labels.
                    let key = format!("{}{:?}", test.runbook, test.alert_labels);
                    let previous = last_triage.get(&key);
                    let (failure, run) =
                        crate::test_triage::check(&inputs, test, start_ms + at, *at, previous, &name_prefix);
                    errors.extend(failure);
                    if let Some(run) = run {
                        last_triage.insert(key, run);
                    }
                }
            }
        }
        time_ms = match time_ms.checked_add(settings.evaluation_interval_ms) {
            Some(next) => next,
            None => break,
        };
    }

    for (at, logql, test) in promql_tests {
        let query = if logql {
            Query::Logql(logs_datasource.as_ref())
        } else {
            Query::Promql { engine: &engine, store: store.as_ref() }
        };
        if let Some(error) = check_promql(&query, test, start_ms + at, at, settings.fuzzy_compare, &name_prefix) {
            errors.push(error);
        }
    }
    errors
}

fn eval_time(scalar: &Option<Scalar>) -> Result<i64, String> {
    scalar.as_ref().map_or(Ok(0), |scalar| duration_ms(&scalar.text()))
}

fn duration_ms(text: &str) -> Result<i64, String> {
    catalog::duration::parse_duration(text.trim())
        .map(|duration| i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}

/// Prometheus's `model.Duration` notation of milliseconds (`5m`, `1d`, `2m59s999ms`).
fn model_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut rest = ms;
    let mut text = String::new();
    let units: [(&str, i64, bool); 7] = [
        ("y", 365 * 86_400_000, true),
        ("w", 7 * 86_400_000, true),
        ("d", 86_400_000, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ];
    for (unit, factor, exact) in units {
        if exact && rest % factor != 0 {
            continue;
        }
        let count = rest / factor;
        if count > 0 {
            text.push_str(&format!("{count}{unit}"));
            rest -= count * factor;
        }
    }
    text
}

/// A Unix timestamp in seconds or an RFC 3339 time, to milliseconds.
fn parse_start_timestamp(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds * 1000);
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return Ok((seconds * 1000.0).round() as i64);
    }
    parse_rfc3339_ms(text).ok_or_else(|| format!("{text:?} is neither a Unix timestamp nor an RFC 3339 time"))
}

/// An RFC 3339 time to Unix milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let (date, time) = text.split_once(['T', 't', ' '])?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: i64 = date_parts.next()?.parse().ok()?;
    let day: i64 = date_parts.next()?.parse().ok()?;
    let (clock, offset_seconds) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else {
        let split = time.rfind(['+', '-'])?;
        let (clock, offset) = time.split_at(split);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = offset[1..].split_once(':')?;
        (clock, sign * (hours.parse::<i64>().ok()? * 3600 + minutes.parse::<i64>().ok()? * 60))
    };
    let mut clock_parts = clock.splitn(3, ':');
    let hour: i64 = clock_parts.next()?.parse().ok()?;
    let minute: i64 = clock_parts.next()?.parse().ok()?;
    let second: f64 = clock_parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (proleptic Gregorian).
    let shifted_year = if month <= 2 { year - 1 } else { year };
    let era = shifted_year.div_euclid(400);
    let year_of_era = shifted_year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 - offset_seconds;
    Some(seconds * 1000 + (second * 1000.0).round() as i64)
}

/// `name{a="b", ...}`, `{a="b"}`, `name` or empty, as label sets.
pub fn parse_series_descriptor(text: &str) -> Result<Labels, String> {
    let text = text.trim();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let name_end = text.find('{').unwrap_or(text.len());
    let name = text[..name_end].trim();
    if !name.is_empty() {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if !valid {
            return Err(format!("invalid metric name {name:?}"));
        }
        pairs.push((tsdb::METRIC_NAME.into(), name.into()));
    }
    if name_end < text.len() {
        let body = text[name_end + 1..].strip_suffix('}').ok_or("unclosed label set: expected '}'")?;
        let mut rest = body.trim_start();
        while !rest.is_empty() {
            let label_end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            let label = &rest[..label_end];
            if label.is_empty() {
                return Err(format!("expected a label name at {rest:?}"));
            }
            rest = rest[label_end..].trim_start();
            rest = rest.strip_prefix('=').ok_or_else(|| format!("expected '=' after label {label:?}"))?.trim_start();
            let (value, after) = read_quoted(rest)?;
            pairs.push((label.into(), value));
            rest = after.trim_start();
            if let Some(after_comma) = rest.strip_prefix(',') {
                rest = after_comma.trim_start();
            } else if !rest.is_empty() {
                return Err(format!("expected ',' or '}}' at {rest:?}"));
            }
        }
    }
    Ok(Labels::from_pairs(pairs))
}

fn read_quoted(text: &str) -> Result<(String, &str), String> {
    let mut characters = text.char_indices();
    let quote = match characters.next() {
        Some((_, quote @ ('"' | '\'' | '`'))) => quote,
        _ => return Err(format!("expected a quoted label value at {text:?}")),
    };
    let mut value = String::new();
    while let Some((index, character)) = characters.next() {
        match character {
            '\\' if quote != '`' => match characters.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((_, escaped)) => value.push(escaped),
                None => break,
            },
            c if c == quote => return Ok((value, &text[index + 1..])),
            c => value.push(c),
        }
    }
    Err("unterminated quoted label value".into())
}

fn parse_number(text: &str) -> Result<f64, String> {
    catalog_float(text).ok_or_else(|| format!("invalid number {text:?}"))
}

fn catalog_float(text: &str) -> Option<f64> {
    match text {
        "Inf" | "+Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        other => other.parse().ok(),
    }
}

/// One value of an input series.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesValue {
    Float(f64),
    Histogram(promql::FloatHistogram),
}

/// promtool's expanding notation: `a+bxn`, `a-bxn`, `axn`, `_`, `_xn`,
/// `stale`, and native histograms `{{…}}`, `{{…}}xn`, `{{…}}+{{…}}xn`.
/// `None` is a missing sample.
pub fn parse_values(text: &str) -> Result<Vec<Option<SeriesValue>>, String> {
    let mut values = Vec::new();
    for token in promql::notation::tokens(text) {
        let token = token.as_str();
        if token.starts_with("{{") {
            values.extend(
                promql::notation::expand_histograms(token)?
                    .into_iter()
                    .map(|histogram| Some(SeriesValue::Histogram(histogram))),
            );
            continue;
        }
        if token == "_" {
            values.push(None);
            continue;
        }
        if token == "stale" {
            values.push(Some(SeriesValue::Float(tsdb::STALE_NAN)));
            continue;
        }
        let Some((start, count)) = token.rsplit_once('x').and_then(|(start, count)| {
            count.parse::<usize>().ok().filter(|_| !start.is_empty()).map(|count| (start, count))
        }) else {
            values.push(Some(SeriesValue::Float(parse_number(token)?)));
            continue;
        };
        if start == "_" {
            values.extend(std::iter::repeat_n(None, count));
            continue;
        }
        // Split `a+b` / `a-b` at the operator after the first character (not an exponent sign).
        let bytes = start.as_bytes();
        let operator = (1..bytes.len())
            .find(|&index| (bytes[index] == b'+' || bytes[index] == b'-') && !matches!(bytes[index - 1], b'e' | b'E'));
        let (first, increment) = match operator {
            Some(index) => {
                let increment = parse_number(&start[index + 1..])?;
                let first = parse_number(&start[..index])?;
                (first, if bytes[index] == b'-' { -increment } else { increment })
            }
            None => (parse_number(start)?, 0.0),
        };
        for step in 0..=count {
            values.push(Some(SeriesValue::Float(first + increment * step as f64)));
        }
    }
    Ok(values)
}

/// Prometheus's `labels.String()`: `{a="b", c="d"}`.
fn labels_string(labels: &Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|label| format!("{}={:?}", label.name, label.value)).collect();
    format!("{{{}}}", pairs.join(", "))
}

fn map_string(map: &BTreeMap<String, String>) -> String {
    labels_string(&Labels::from_pairs(map.iter().map(|(name, value)| (name.as_str(), value.as_str()))))
}

/// Go's `strconv.FormatFloat(value, 'E', -1, 64)`.
fn format_float_e(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let text = format!("{value:E}");
    let (mantissa, exponent) = text.split_once('E').unwrap_or((&text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}E{sign}{:02}", exponent.abs())
}

fn check_alerts(manager: &rules::Manager, test: &RawAlertTest, at_ms: i64, name_prefix: &str) -> Option<String> {
    let mut got: Vec<(Labels, BTreeMap<String, String>)> = Vec::new();
    for index in 0..manager.group_count() {
        let alerts = manager.with_group(index, |group| group.alerts_of(&test.alertname)).unwrap_or_default();
        got.extend(
            alerts
                .into_iter()
                .filter(|alert| alert.state == rules::AlertState::Firing)
                .map(|alert| (alert.labels, alert.annotations)),
        );
    }
    let mut expected: Vec<(Labels, BTreeMap<String, String>)> = test
        .exp_alerts
        .iter()
        .map(|alert| {
            let mut labels = alert.exp_labels.clone();
            labels.insert("alertname".into(), test.alertname.clone());
            (
                Labels::from_pairs(labels.iter().map(|(name, value)| (name.as_str(), value.as_str()))),
                alert.exp_annotations.clone(),
            )
        })
        .collect();
    got.sort();
    expected.sort();
    if got == expected {
        return None;
    }
    let render = |alerts: &[(Labels, BTreeMap<String, String>)]| {
        if alerts.is_empty() {
            return "[]".to_owned();
        }
        let items: Vec<String> = alerts
            .iter()
            .enumerate()
            .map(|(index, (labels, annotations))| {
                format!("{index}:\n  Labels:{}\n  Annotations:{}", labels_string(labels), map_string(annotations))
            })
            .collect();
        indent(&format!("[\n{}\n]", items.join(",\n")), "            ").trim_start().to_owned()
    };
    Some(format!(
        "{name_prefix}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
        test.alertname,
        model_duration(at_ms),
        render(&expected),
        render(&got)
    ))
}

fn floats_equal(expected: f64, got: f64, fuzzy: bool) -> bool {
    if expected.is_nan() && got.is_nan() {
        return true;
    }
    if expected == got {
        return true;
    }
    // Fuzzy: ignore a difference in the last bit of the mantissa.
    fuzzy && expected.is_finite() && got.is_finite() && expected.signum() == got.signum() && {
        let distance = (expected.to_bits() as i64 - got.to_bits() as i64).abs();
        distance <= 1
    }
}

/// What an expression test runs against: PromQL over the input series
/// (`promql_expr_test`) or LogQL over the input logs (`logql_expr_test`).
enum Query<'a> {
    Promql { engine: &'a promql::Engine, store: &'a MemStore },
    Logql(&'a dyn rules::Datasource),
}

/// One sample as promtool compares them: labels, float value and the
/// histogram's test expression (empty for floats).
type ComparedSample = (Labels, f64, String);

fn check_promql(
    query: &Query<'_>,
    test: &RawPromqlTest,
    time_ms: i64,
    relative_ms: i64,
    fuzzy: bool,
    name_prefix: &str,
) -> Option<String> {
    let at = model_duration(relative_ms);
    let error = |message: String| Some(format!("{name_prefix}    expr: {:?}, time: {at}, err: {message}", test.expr));
    let mut got: Vec<ComparedSample> = match query {
        Query::Promql { engine, store } => {
            let result = match engine.instant_query(*store, &test.expr, time_ms) {
                Ok(result) => result,
                Err(failure) => return error(failure.to_string()),
            };
            match result.value {
                promql::Value::Vector(samples) => samples
                    .into_iter()
                    .map(|(labels, sample)| {
                        let histogram =
                            sample.histogram.map(|histogram| histogram.test_expression()).unwrap_or_default();
                        (labels, sample.value, histogram)
                    })
                    .collect(),
                promql::Value::Scalar(_, value) => vec![(Labels::empty(), value, String::new())],
                _ => return error("rule result is not a vector or scalar".to_owned()),
            }
        }
        Query::Logql(datasource) => match datasource.query(&test.expr, time_ms) {
            Ok(samples) => samples.into_iter().map(|(labels, value)| (labels, value, String::new())).collect(),
            Err(failure) => return error(failure.to_string()),
        },
    };
    let mut expected: Vec<ComparedSample> = Vec::new();
    for sample in &test.exp_samples {
        let labels = match parse_series_descriptor(&sample.labels) {
            Ok(labels) => labels,
            Err(message) => return error(format!("labels {:?}: {message}", sample.labels)),
        };
        let histogram = match sample.histogram.as_deref().filter(|text| !text.is_empty()) {
            None => String::new(),
            Some(text) => match promql::notation::tokens(text).as_slice() {
                [token] if token.starts_with("{{") => match promql::notation::expand_histograms(token) {
                    Ok(histograms) if histograms.len() == 1 => histograms[0].test_expression(),
                    Ok(histograms) => return error(format!("expected 1 value, got {}", histograms.len())),
                    Err(message) => return error(message),
                },
                _ => return error(format!("expected histogram, got {text:?}")),
            },
        };
        expected.push((labels, sample.value, histogram));
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let equal = got.len() == expected.len()
        && got.iter().zip(&expected).all(|(got, expected)| {
            got.0 == expected.0 && floats_equal(expected.1, got.1, fuzzy) && got.2 == expected.2
        });
    if equal {
        return None;
    }
    let render = |samples: &[ComparedSample]| {
        if samples.is_empty() {
            return "nil".to_owned();
        }
        samples
            .iter()
            .map(|(labels, value, histogram)| {
                if histogram.is_empty() {
                    format!("{} {}", labels_string(labels), format_float_e(*value))
                } else {
                    format!("{} {histogram}", labels_string(labels))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    Some(format!(
        "{name_prefix}    expr: {:?}, time: {at},\n        exp: {}\n        got: {}",
        test.expr,
        render(&expected),
        render(&got)
    ))
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A JUnit XML report: one test suite per file, one test case per test group.
fn junit_report(outcomes: &[FileOutcome]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for outcome in outcomes {
        let name = xml_escape(&outcome.path.display().to_string());
        let tests = outcome.groups.len().max(usize::from(!outcome.errors.is_empty()));
        xml.push_str(&format!(
            "  <testsuite name=\"{name}\" tests=\"{tests}\" failures=\"{}\" errors=\"0\" skipped=\"0\">\n",
            outcome.failed()
        ));
        if !outcome.errors.is_empty() {
            xml.push_str(&format!(
                "    <testcase name=\"{name}\"><failure message=\"rule files or test file invalid\">{}</failure></testcase>\n",
                xml_escape(&outcome.errors.join("\n"))
            ));
        }
        for group in &outcome.groups {
            let group_name = xml_escape(&group.name);
            if group.errors.is_empty() {
                xml.push_str(&format!("    <testcase name=\"{group_name}\"/>\n"));
            } else {
                xml.push_str(&format!(
                    "    <testcase name=\"{group_name}\"><failure message=\"{} failure(s)\">{}</failure></testcase>\n",
                    group.errors.len(),
                    xml_escape(&group.errors.join("\n"))
                ));
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(text: &str) -> Vec<Option<f64>> {
        parse_values(text)
            .expect("valid values")
            .into_iter()
            .map(|value| match value {
                Some(SeriesValue::Float(value)) => Some(value),
                Some(SeriesValue::Histogram(_)) => panic!("unexpected histogram"),
                None => None,
            })
            .collect()
    }

    #[test]
    fn expanding_notation() {
        assert_eq!(flat("-2+4x3"), [-2.0, 2.0, 6.0, 10.0].map(Some));
        assert_eq!(flat("1-2x4"), [1.0, -1.0, -3.0, -5.0, -7.0].map(Some));
        assert_eq!(flat("1x4"), [1.0; 5].map(Some));
        assert_eq!(flat("0x10"), [0.0; 11].map(Some));
        let values = flat("1 _x3 stale");
        assert_eq!(values.len(), 5);
        assert_eq!(&values[..4], &[Some(1.0), None, None, None]);
        assert!(values[4].is_some_and(tsdb::is_stale_nan));
        assert_eq!(flat("1e3 2.5"), [1000.0, 2.5].map(Some));
        let histograms =
            parse_values("{{sum:3 count:2 buckets:[2]}}x2 _ {{schema:1 sum:2}}").expect("valid histograms");
        assert_eq!(histograms.len(), 5);
        assert!(matches!(&histograms[4], Some(SeriesValue::Histogram(histogram)) if histogram.schema == 1));
        assert!(parse_values("{{schema:x}}").is_err());
    }

    #[test]
    fn series_descriptors_and_times() {
        let labels = parse_series_descriptor(r#"up{job="a", instance="b:1"}"#).expect("valid");
        assert_eq!(labels.get("instance"), Some("b:1"));
        assert!(parse_series_descriptor(r#"up{job="a""#).is_err());
        assert_eq!(parse_series_descriptor("").expect("empty"), Labels::empty());
        assert_eq!(parse_rfc3339_ms("2024-01-01T00:00:00Z"), Some(1_704_067_200_000));
        assert_eq!(model_duration(179_999), "2m59s999ms");
        assert_eq!(model_duration(86_400_000), "1d");
        assert_eq!(format_float_e(1.0), "1E+00");
        assert_eq!(format_float_e(3.0000000000000004), "3.0000000000000004E+00");
    }
}
