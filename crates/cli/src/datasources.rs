//! The `datasources:` and `rule_datasources:` sections of `alertbook.yaml`:
//! remote Prometheus-compatible query APIs, and which rule groups they answer.
//!
//! ```yaml
//! datasources:
//!   mimir:
//!     type: prometheus            # the query API of Prometheus, Mimir, VictoriaMetrics, Thanos
//!     url: https://mimir.example/prometheus   # base URL; /api/v1/query is appended
//!     timeout: 30s                # per query [default: 30s]
//!     method: POST                # POST (form body) or GET [default: POST]
//!     headers: {X-Scope-OrgID: busflow}
//!     basic_auth: {username: alertbook, password_file: secrets/mimir}   # or password: ...
//!     # bearer_token: ... or bearer_token_file: ...  (not together with basic_auth)
//! rule_datasources:               # rule group name -> datasource name
//!   busflow-api-slo: mimir
//! ```
//!
//! Groups not listed query alertbook's embedded store. Recorded series and
//! `ALERTS` of every group are written to the embedded store, whichever
//! datasource the group reads. Validation reports every error at its
//! `file:line:col`; the group names are checked against the catalog once it
//! is loaded ([`check_groups`]). Building the HTTP clients is left to
//! `alertbook run`.

use std::collections::BTreeMap;
use std::path::Path;

use catalog::{Diagnostic, Diagnostics, SourceFile};
use serde::Deserialize;
use serde_saphyr::Spanned;

/// One entry of `datasources:`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatasource {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    url: Spanned<String>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    method: Option<Spanned<String>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    basic_auth: Option<Spanned<RawBasicAuth>>,
    #[serde(default)]
    bearer_token: Option<Spanned<String>>,
    #[serde(default)]
    bearer_token_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasicAuth {
    username: Spanned<String>,
    #[serde(default)]
    password: Option<Spanned<String>>,
    #[serde(default)]
    password_file: Option<Spanned<String>>,
}

/// A rule group read from a remote datasource.
#[derive(Debug, Clone)]
pub struct RuleDatasource {
    pub group: String,
    pub datasource: String,
    /// Where the entry was written, for errors found once the catalog is loaded.
    pub location: Diagnostic,
}

/// The validated sections.
#[derive(Debug, Clone, Default)]
pub struct Datasources {
    pub remote: BTreeMap<String, rules::PrometheusOptions>,
    pub rule_datasources: Vec<RuleDatasource>,
}

/// Validates both sections; relative secret files are read from `base`.
pub fn validate(
    source: &SourceFile,
    raw_datasources: &BTreeMap<String, Spanned<RawDatasource>>,
    raw_rule_datasources: &BTreeMap<String, Spanned<String>>,
    base: &Path,
    errors: &mut Vec<Diagnostic>,
) -> Datasources {
    let mut validated = Datasources::default();
    for (name, raw) in raw_datasources {
        if let Some(options) = validate_datasource(source, name, raw, base, errors) {
            validated.remote.insert(name.clone(), options);
        }
    }
    for (group, datasource) in raw_rule_datasources {
        if !raw_datasources.contains_key(&datasource.value) {
            let known: Vec<&str> = raw_datasources.keys().map(String::as_str).collect();
            let known =
                if known.is_empty() { "none is defined".to_owned() } else { format!("known: {}", known.join(", ")) };
            errors.push(source.error_at_value(
                datasource,
                format!(
                    "rule group {group:?} names datasource {:?}, which `datasources` does not define ({known})",
                    datasource.value
                ),
            ));
            continue;
        }
        validated.rule_datasources.push(RuleDatasource {
            group: group.clone(),
            datasource: datasource.value.clone(),
            location: source.error_at_value(datasource, ""),
        });
    }
    validated
}

fn validate_datasource(
    source: &SourceFile,
    name: &str,
    spanned: &Spanned<RawDatasource>,
    base: &Path,
    errors: &mut Vec<Diagnostic>,
) -> Option<rules::PrometheusOptions> {
    let raw = &spanned.value;
    let errors_before = errors.len();
    if raw.kind.value != "prometheus" {
        errors.push(source.error_at_value(
            &raw.kind,
            format!("datasource {name:?} has type {:?}; the supported type is prometheus", raw.kind.value),
        ));
    }
    if let Err(error) = rules::remote::query_endpoint(&raw.url.value) {
        errors.push(source.error_at_value(&raw.url, error.to_string()));
    }
    let mut options = rules::PrometheusOptions::new(raw.url.value.clone());
    if let Some(timeout) = &raw.timeout {
        match catalog::duration::parse_duration(&timeout.value) {
            Ok(duration) if duration.is_zero() => {
                errors.push(source.error_at_value(timeout, "timeout must be greater than zero"))
            }
            Ok(duration) => options.timeout = duration,
            Err(error) => errors.push(source.error_at_value(timeout, format!("timeout: {error}"))),
        }
    }
    if let Some(method) = &raw.method {
        match method.value.to_ascii_uppercase().as_str() {
            "POST" => options.method = rules::remote::QueryMethod::Post,
            "GET" => options.method = rules::remote::QueryMethod::Get,
            _ => errors.push(source.error_at_value(method, format!("method {:?} is not GET or POST", method.value))),
        }
    }
    for (header, value) in &raw.headers {
        if header.eq_ignore_ascii_case("authorization") {
            errors.push(source.error_at_value(value, "set Authorization with basic_auth or bearer_token"));
        } else if let Err(error) = rules::remote::check_header(header, &value.value) {
            errors.push(source.error_at_value(value, error.to_string()));
        } else {
            options.headers.push((header.clone(), value.value.clone()));
        }
    }
    let bearer =
        secret(source, "bearer_token", raw.bearer_token.as_ref(), raw.bearer_token_file.as_ref(), base, errors);
    if let Some(basic) = &raw.basic_auth {
        if raw.bearer_token.is_some() || raw.bearer_token_file.is_some() {
            errors.push(source.error_at_value(basic, "basic_auth and bearer_token are mutually exclusive"));
        }
        let basic_value = &basic.value;
        let password =
            secret(source, "password", basic_value.password.as_ref(), basic_value.password_file.as_ref(), base, errors);
        options.authorization = Some(rules::remote::Authorization::Basic {
            username: basic_value.username.value.clone(),
            password: password.unwrap_or_default(),
        });
    } else if let Some(token) = bearer {
        options.authorization = Some(rules::remote::Authorization::Bearer { token });
    }
    (errors.len() == errors_before).then_some(options)
}

/// A secret given inline or in a file (relative to `base`, trailing newline dropped); at most one of both.
fn secret(
    source: &SourceFile,
    key: &str,
    inline: Option<&Spanned<String>>,
    file: Option<&Spanned<String>>,
    base: &Path,
    errors: &mut Vec<Diagnostic>,
) -> Option<String> {
    match (inline, file) {
        (Some(_), Some(file)) => {
            errors.push(source.error_at_value(file, format!("{key} and {key}_file are mutually exclusive")));
            None
        }
        (Some(inline), None) => Some(inline.value.clone()),
        (None, Some(file)) => match std::fs::read_to_string(base.join(&file.value)) {
            Ok(text) => Some(text.trim_end_matches(['\r', '\n']).to_owned()),
            Err(error) => {
                errors.push(source.error_at_value(file, format!("cannot read {key}_file {:?}: {error}", file.value)));
                None
            }
        },
        (None, None) => None,
    }
}

/// Checks `rule_datasources` against the catalog: every group exists and reads metrics.
pub fn check_groups(datasources: &Datasources, catalog: &catalog::Catalog) -> Result<(), Diagnostics> {
    let mut errors = Vec::new();
    for entry in &datasources.rule_datasources {
        let groups: Vec<&catalog::RuleGroup> =
            catalog.rule_files.iter().flat_map(|file| &file.groups).filter(|group| group.name == entry.group).collect();
        let message = if groups.is_empty() {
            format!("rule_datasources names rule group {:?}, which no rule file of the catalog has", entry.group)
        } else if groups.iter().any(|group| group.datasource != catalog::Datasource::Metrics) {
            format!(
                "rule group {:?} does not read metrics; only metrics groups can use a remote datasource",
                entry.group
            )
        } else {
            continue;
        };
        errors.push(Diagnostic { message, ..entry.location.clone() });
    }
    if errors.is_empty() { Ok(()) } else { Err(Diagnostics(errors)) }
}

/// Builds one client per datasource and the resolver that gives each listed group its datasource.
pub fn resolver(datasources: &Datasources) -> anyhow::Result<Option<rules::DatasourceResolver>> {
    if datasources.rule_datasources.is_empty() {
        return Ok(None);
    }
    let mut clients: BTreeMap<String, std::sync::Arc<dyn rules::Datasource>> = BTreeMap::new();
    for (name, options) in &datasources.remote {
        let client = rules::PrometheusDatasource::new(options)
            .map_err(|error| anyhow::anyhow!("datasource {name:?}: {error}"))?;
        tracing::info!(datasource = %name, endpoint = %client.endpoint(), "remote datasource configured");
        clients.insert(name.clone(), std::sync::Arc::new(client));
    }
    let by_group: BTreeMap<String, std::sync::Arc<dyn rules::Datasource>> = datasources
        .rule_datasources
        .iter()
        .filter_map(|entry| clients.get(&entry.datasource).map(|client| (entry.group.clone(), client.clone())))
        .collect();
    Ok(Some(std::sync::Arc::new(move |_file: &str, group: &catalog::RuleGroup| by_group.get(&group.name).cloned())))
}

#[cfg(test)]
mod tests {
    fn load(text: &str) -> Result<crate::config::Config, catalog::Diagnostics> {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("alertbook.yaml");
        std::fs::write(&path, text).expect("write");
        crate::config::load(&path)
    }

    #[test]
    fn remote_datasources_and_their_groups() {
        let config = load(
            "datasources:\n  mimir:\n    type: prometheus\n    url: http://mimir:8080/prometheus\n    timeout: 5s\n    method: GET\n    headers: {X-Scope-OrgID: busflow}\n    bearer_token: secret\nrule_datasources:\n  slo: mimir\n",
        )
        .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
        let mimir = &config.datasources.remote["mimir"];
        assert_eq!(mimir.timeout, std::time::Duration::from_secs(5));
        assert_eq!(mimir.method, rules::remote::QueryMethod::Get);
        assert_eq!(mimir.headers, vec![("X-Scope-OrgID".to_owned(), "busflow".to_owned())]);
        assert_eq!(mimir.authorization, Some(rules::remote::Authorization::Bearer { token: "secret".to_owned() }));
        assert_eq!(config.datasources.rule_datasources[0].group, "slo");
        assert_eq!(config.datasources.rule_datasources[0].location.line, 10);
    }

    #[test]
    fn every_error_is_located() {
        let diagnostics = load(
            "datasources:\n  mimir:\n    type: influx\n    url: mimir:8080\n    timeout: soon\nrule_datasources:\n  slo: thanos\n",
        )
        .expect_err("invalid");
        let located: Vec<(usize, usize)> = diagnostics.iter().map(|error| (error.line, error.column)).collect();
        assert_eq!(located, vec![(3, 11), (4, 10), (5, 14), (7, 8)], "{diagnostics}");
        assert!(diagnostics.iter().last().is_some_and(|error| error.message.contains("\"thanos\"")));
    }
}
