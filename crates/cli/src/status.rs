//! What `alertbook run` reports through Prometheus's status API: the
//! effective configuration as YAML with every secret replaced by `<secret>`
//! (`/api/v1/status/config`), the flags and their values
//! (`/api/v1/status/flags`), the Alertmanagers alerts go to, the retention.
//!
//! The YAML is the configuration file as written (comments and anchors
//! resolved away), with the values alertbook actually uses written over it:
//! command-line overrides of `catalog`, `listen` and `data`, the `global`
//! scrape defaults, each scrape job's interval, timeout, path, scheme and
//! label handling, and the self-scrape job when it runs.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::config::Config;

/// How secrets are shown, as Prometheus shows them.
pub const SECRET: &str = "<secret>";

/// Keys whose values are secrets wherever they appear.
const SECRET_KEYS: [&str; 6] = ["password", "bearer_token", "credentials", "client_secret", "secret", "token"];

/// Header names whose values are secrets (compared lowercased, by substring).
const SECRET_HEADER_WORDS: [&str; 6] = ["auth", "token", "key", "secret", "cookie", "password"];

fn duration_text(duration: std::time::Duration) -> String {
    let seconds = duration.as_secs_f64();
    if duration.subsec_millis() == 0 { format!("{}s", duration.as_secs()) } else { format!("{seconds}s") }
}

/// The effective configuration as YAML, secrets redacted. `file_text` is the
/// configuration file's text when one was given.
pub fn effective_yaml(file_text: Option<&str>, config: &Config) -> String {
    let mut root = file_text
        .and_then(|text| serde_saphyr::from_str::<Value>(text).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| Value::Object(Map::new()));
    let object = root.as_object_mut().expect("an object");
    object.insert("catalog".into(), json!(crate::builtin::describe(config.catalog.as_deref())));
    object.insert("listen".into(), json!(config.listen.to_string()));
    if let Some(url) = &config.external_url {
        object.insert("external_url".into(), json!(url));
    }
    object.insert("data".into(), json!(config.data.display().to_string()));
    object.insert("scrape_self".into(), json!(config.scrape_self));
    let global = object.entry("global").or_insert_with(|| json!({}));
    if let Some(global) = global.as_object_mut() {
        global.insert("scrape_interval".into(), json!(duration_text(config.scrape_defaults.scrape_interval)));
        global.insert("scrape_timeout".into(), json!(duration_text(config.scrape_defaults.scrape_timeout)));
        let labels: Map<String, Value> =
            config.external_labels.iter().map(|label| (label.name.clone(), json!(label.value))).collect();
        if !labels.is_empty() {
            global.insert("external_labels".into(), Value::Object(labels));
        }
    }
    let written: Vec<Value> = object.get("scrape_configs").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut jobs = Vec::new();
    for job in config.scrape_jobs() {
        let mut entry = written
            .iter()
            .find(|raw| raw.get("job_name").and_then(Value::as_str) == Some(job.job_name.as_str()))
            .cloned()
            .unwrap_or_else(|| {
                let targets: Vec<Value> = job
                    .static_configs
                    .iter()
                    .flat_map(|group| group.targets.iter())
                    .filter_map(|target| target.get("__address__").map(|address| json!(address)))
                    .collect();
                json!({"job_name": job.job_name, "static_configs": [{"targets": targets}]})
            });
        if let Some(fields) = entry.as_object_mut() {
            fields.insert("scrape_interval".into(), json!(duration_text(job.scrape_interval)));
            fields.insert("scrape_timeout".into(), json!(duration_text(job.scrape_timeout)));
            fields.insert("metrics_path".into(), json!(job.metrics_path));
            fields.insert("scheme".into(), json!(job.scheme.as_str()));
            fields.insert("honor_labels".into(), json!(job.honor_labels));
            fields.insert("honor_timestamps".into(), json!(job.honor_timestamps));
            fields.insert("sample_limit".into(), json!(job.sample_limit));
            fields.insert("label_limit".into(), json!(job.label_limit));
        }
        jobs.push(entry);
    }
    object.insert("scrape_configs".into(), Value::Array(jobs));
    let logs = object.entry("logs").or_insert_with(|| json!({}));
    if let Some(logs) = logs.as_object_mut() {
        logs.insert("redact_streams".into(), json!(config.redact_streams));
    }
    // The state store's kind; its URL stays in the file url_file names.
    let state = object.entry("state").or_insert_with(|| json!({}));
    if let Some(state) = state.as_object_mut() {
        state.insert("type".into(), json!(config.state.kind()));
    }
    let journal = object.entry("journal").or_insert_with(|| json!({}));
    if let Some(journal) = journal.as_object_mut() {
        journal.insert("remind_after".into(), json!(duration_text(config.remind_after)));
    }
    let auth = object.entry("auth").or_insert_with(|| json!({}));
    if let Some(auth) = auth.as_object_mut() {
        auth.insert("require_for_read".into(), json!(config.require_for_read));
    }
    redact(&mut root, false);
    serde_saphyr::to_string(&root).unwrap_or_default()
}

/// Replaces every secret value under `value` by [`SECRET`]; `in_headers` is
/// true inside a `headers` map.
fn redact(value: &mut Value, in_headers: bool) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                let lowered = key.to_ascii_lowercase();
                let secret = SECRET_KEYS.contains(&lowered.as_str())
                    || (in_headers && SECRET_HEADER_WORDS.iter().any(|word| lowered.contains(word)));
                if secret && !field.is_null() {
                    *field = json!(SECRET);
                } else {
                    redact(field, lowered == "headers");
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| redact(item, false)),
        _ => {}
    }
}

/// Every flag of `alertbook run` with the value it has (given or default),
/// keyed by its long name, as `/api/v1/status/flags` shows Prometheus's.
pub fn run_flags(
    command: &clap::Command,
    arguments: impl IntoIterator<Item = std::ffi::OsString>,
) -> BTreeMap<String, String> {
    let mut flags = BTreeMap::new();
    let Ok(matches) = command.clone().try_get_matches_from(arguments) else { return flags };
    let Some((name, run_matches)) = matches.subcommand() else { return flags };
    let Some(run) = command.find_subcommand(name) else { return flags };
    for argument in run.get_arguments() {
        let Some(long) = argument.get_long() else { continue };
        let value = run_matches
            .get_raw(argument.get_id().as_str())
            .map(|values| values.map(|value| value.to_string_lossy().into_owned()).collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        flags.insert(long.to_owned(), value);
    }
    flags
}

/// Reads the configuration file's text for [`effective_yaml`].
pub fn read_config_text(path: Option<&Path>) -> Option<String> {
    path.and_then(|path| std::fs::read_to_string(path).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_appear_in_the_effective_configuration() {
        let text = "listen: 127.0.0.1:9099\n\
global:\n  scrape_interval: 30s\n\
datasources:\n  mimir:\n    type: prometheus\n    url: https://mimir.example/prometheus\n    headers:\n      Authorization: Bearer hunter2-header\n      X-Scope-OrgID: team-a\n    basic_auth:\n      username: alertbook\n      password: hunter2-password\n    bearer_token: hunter2-token\n";
        let mut config = Config::default();
        config.scrape_defaults.scrape_interval = std::time::Duration::from_secs(30);
        let yaml = effective_yaml(Some(text), &config);
        assert!(!yaml.contains("hunter2"), "{yaml}");
        assert_eq!(yaml.matches(SECRET).count(), 3, "{yaml}");
        assert!(yaml.contains("X-Scope-OrgID: team-a"), "{yaml}");
        assert!(yaml.contains("username: alertbook"), "{yaml}");
        // Effective values: the global default and the self-scrape job.
        assert!(yaml.contains("scrape_interval: 30s"), "{yaml}");
        assert!(yaml.contains("job_name: alertbook"), "{yaml}");
        let reparsed: Value = serde_saphyr::from_str(&yaml).expect("valid YAML");
        assert_eq!(reparsed["scrape_configs"][0]["scrape_interval"], "15s");
    }

    #[test]
    fn the_state_url_and_the_write_token_stay_in_their_files() {
        let directory = tempfile::tempdir().expect("temporary directory");
        std::fs::write(directory.path().join("dsn"), "postgres://alertbook:hunter2-state@db/alertbook\n").expect("dsn");
        std::fs::write(directory.path().join("token"), "hunter2-token\n").expect("token");
        let text =
            "state: {type: postgres, url_file: dsn}\njournal: {remind_after: 2h}\nauth: {write_token_file: token}\n";
        let path = directory.path().join("alertbook.yaml");
        std::fs::write(&path, text).expect("config");
        let config = crate::config::load(&path).expect("valid");
        let yaml = effective_yaml(Some(text), &config);
        assert!(!yaml.contains("hunter2"), "{yaml}");
        let reparsed: Value = serde_saphyr::from_str(&yaml).expect("valid YAML");
        assert_eq!(reparsed["state"]["type"], "postgres");
        assert_eq!(reparsed["state"]["url_file"], "dsn");
        assert_eq!(reparsed["journal"]["remind_after"], "7200s");
        assert_eq!(reparsed["auth"]["require_for_read"], false);
        assert_eq!(reparsed["auth"]["write_token_file"], "token");
        let defaults = effective_yaml(None, &Config::default());
        let reparsed: Value = serde_saphyr::from_str(&defaults).expect("valid YAML");
        assert_eq!(reparsed["state"]["type"], "sqlite");
        assert_eq!(reparsed["journal"]["remind_after"], "86400s");
    }
}
