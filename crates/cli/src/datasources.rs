//! The `datasources:` and `rule_datasources:` sections of `alertbook.yaml`:
//! remote Prometheus-compatible query APIs, PostgreSQL servers, Docker
//! Engines, remote Lokis and Tempos, and which rule groups they answer.
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
//!   sql:
//!     type: postgres              # for `datasource: sql` groups
//!     url_file: /run/secrets/busflow_ro_dsn   # a postgres:// URL, password included
//!     # or: url: postgres://alertbook_ro@db:5432/busflow  with  password_file: secrets/pg
//!     statement_timeout: 10s      # [default: 10s]
//!     lock_timeout: 5s            # [default: 5s]
//!     max_connections: 2          # [default: 2]
//!   docker:
//!     type: docker                # for `datasource: docker` groups
//!     host: unix:///var/run/docker.sock   # or tcp://HOST:2376 with the three tls_*_file
//!     # tls_ca_file: ca.pem, tls_cert_file: cert.pem, tls_key_file: key.pem
//!   busflow-loki:
//!     type: loki                  # a Loki's query API, for `datasource: logs` groups listed below
//!     url: https://loki.busflow.internal   # base URL; /loki/api/v1/query is appended
//!     tenant: busflow             # sent as X-Scope-OrgID
//!     timeout: 30s                # per query [default: 30s]
//!     basic_auth: {username: alertbook, password_file: secrets/loki}   # or bearer_token_file: ...
//!     headers: {X-Team: ops}
//!   busflow-tempo:
//!     type: tempo                 # trace search (TraceQL), for `datasource: traces` checks
//!     url: https://tempo.busflow.internal   # /api/search is appended
//!     tenant: busflow             # same settings as loki
//! triage_logs: busflow-loki       # log checks query this loki instead of the embedded store
//! triage_traces: busflow-tempo    # trace checks search this tempo [default: the only one]
//! rule_datasources:               # rule group name -> datasource name
//!   busflow-api-slo: mimir
//!   busflow-grafana-sso: busflow-loki   # a logs group read from the remote Loki
//!   busflow-pg-cron-replica: replica   # a sql group may use another postgres datasource
//! ```
//!
//! Metrics groups not listed query alertbook's embedded store, `logs` groups
//! its embedded log store; `sql` groups
//! not listed use the datasource named `sql`, `docker` groups the one named
//! `docker`. Recorded series and `ALERTS` of every group are written to the
//! embedded store, whichever datasource the group reads. Validation reports
//! every error at its `file:line:col`; the group names are checked against
//! the catalog once it is loaded ([`check_groups`]).
//!
//! Secrets (passwords, tokens, PostgreSQL URLs) never appear in errors (a
//! loki or tempo datasource takes its password and token from files only): a
//! `url` that carries a password is refused (it belongs in `url_file` or
//! `password_file`), and every diagnostic of the file has URL passwords and
//! inline secrets masked in its source line ([`mask_secrets`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use catalog::{Diagnostic, Diagnostics, SourceFile};
use serde::Deserialize;
use serde_saphyr::Spanned;
use sources::health::{DatasourceType, HealthMetrics};

/// One entry of `datasources:`, as written: the fields of every type, checked against `type` in [`validate`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatasource {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    #[serde(default)]
    url: Option<Spanned<String>>,
    // prometheus
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    method: Option<Spanned<String>>,
    #[serde(default)]
    headers: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    #[serde(default)]
    basic_auth: Option<Spanned<RawBasicAuth>>,
    #[serde(default)]
    bearer_token: Option<Spanned<String>>,
    #[serde(default)]
    bearer_token_file: Option<Spanned<String>>,
    // postgres
    #[serde(default)]
    url_file: Option<Spanned<String>>,
    #[serde(default)]
    password_file: Option<Spanned<String>>,
    #[serde(default)]
    statement_timeout: Option<Spanned<String>>,
    #[serde(default)]
    lock_timeout: Option<Spanned<String>>,
    #[serde(default)]
    max_connections: Option<Spanned<u32>>,
    // docker
    #[serde(default)]
    host: Option<Spanned<String>>,
    #[serde(default)]
    tls_ca_file: Option<Spanned<String>>,
    #[serde(default)]
    tls_cert_file: Option<Spanned<String>>,
    #[serde(default)]
    tls_key_file: Option<Spanned<String>>,
    // loki, tempo
    #[serde(default)]
    tenant: Option<Spanned<String>>,
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

/// A rule group read from a datasource other than its default.
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
    pub postgres: BTreeMap<String, sources::sql::PostgresOptions>,
    pub docker: BTreeMap<String, sources::docker::DockerOptions>,
    /// Remote Lokis, for `datasource: logs` groups listed in `rule_datasources` and log checks.
    pub loki: BTreeMap<String, sources::http::HttpOptions>,
    /// Remote Tempos, for trace checks (`datasource: traces`).
    pub tempo: BTreeMap<String, sources::http::HttpOptions>,
    pub rule_datasources: Vec<RuleDatasource>,
    /// `triage_logs`: the loki datasource log checks query (`None`: the embedded log store).
    pub triage_logs: Option<String>,
    /// `triage_traces`, else the only tempo datasource: the one trace checks search.
    pub triage_traces: Option<String>,
}

/// The datasource a `datasource: sql` group uses unless `rule_datasources` names another.
pub const DEFAULT_SQL: &str = "sql";
/// The datasource a `datasource: docker` group uses unless `rule_datasources` names another.
pub const DEFAULT_DOCKER: &str = "docker";

impl Datasources {
    /// The type of the datasource named `name`.
    pub fn kind(&self, name: &str) -> Option<DatasourceType> {
        if self.remote.contains_key(name) {
            Some(DatasourceType::Prometheus)
        } else if self.postgres.contains_key(name) {
            Some(DatasourceType::Postgres)
        } else if self.docker.contains_key(name) {
            Some(DatasourceType::Docker)
        } else if self.loki.contains_key(name) {
            Some(DatasourceType::Loki)
        } else if self.tempo.contains_key(name) {
            Some(DatasourceType::Tempo)
        } else {
            None
        }
    }

    /// One line per datasource for `alertbook check` and the logs: name, type and
    /// where it points (servers as `user@host:port/database`, never a password).
    pub fn summary(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (name, options) in &self.remote {
            lines.push(format!("{name} (prometheus {})", options.url));
        }
        for (name, options) in &self.postgres {
            lines.push(format!("{name} (postgres {})", options.server()));
        }
        for (name, options) in &self.docker {
            let tls = if options.tls.is_some() { " with TLS" } else { "" };
            lines.push(format!("{name} (docker {}{tls})", options.host));
        }
        for (name, options) in &self.loki {
            lines.push(format!("{name} (loki {}{})", options.url, tenant_note(options)));
        }
        for (name, options) in &self.tempo {
            lines.push(format!("{name} (tempo {}{})", options.url, tenant_note(options)));
        }
        lines
    }
}

/// `, tenant busflow` when the datasource sends `X-Scope-OrgID`.
fn tenant_note(options: &sources::http::HttpOptions) -> String {
    options.tenant.as_ref().map(|tenant| format!(", tenant {tenant}")).unwrap_or_default()
}

/// Validates both sections; relative files are read from `base`.
pub fn validate(
    source: &SourceFile,
    raw_datasources: &BTreeMap<String, Spanned<RawDatasource>>,
    raw_rule_datasources: &BTreeMap<String, Spanned<String>>,
    base: &Path,
    errors: &mut Vec<Diagnostic>,
) -> Datasources {
    let mut validated = Datasources::default();
    for (name, raw) in raw_datasources {
        let kind = &raw.value.kind;
        match kind.value.as_str() {
            "prometheus" => {
                if let Some(options) = validate_prometheus(source, name, raw, base, errors) {
                    validated.remote.insert(name.clone(), options);
                }
            }
            "postgres" => {
                if let Some(options) = validate_postgres(source, name, raw, base, errors) {
                    validated.postgres.insert(name.clone(), options);
                }
            }
            "docker" => {
                if let Some(docker) = validate_docker(source, name, raw, base, errors) {
                    validated.docker.insert(name.clone(), docker);
                }
            }
            "loki" => {
                if let Some(options) = validate_http_remote(source, name, "loki", raw, base, errors) {
                    validated.loki.insert(name.clone(), options);
                }
            }
            "tempo" => {
                if let Some(options) = validate_http_remote(source, name, "tempo", raw, base, errors) {
                    validated.tempo.insert(name.clone(), options);
                }
            }
            other => errors.push(source.error_at_value(
                kind,
                format!(
                    "datasource {name:?} has type {other:?}; the types are prometheus, postgres, docker, loki and tempo"
                ),
            )),
        }
        let reserved = match name.as_str() {
            DEFAULT_SQL => Some("postgres"),
            DEFAULT_DOCKER => Some("docker"),
            _ => None,
        };
        if let Some(expected) = reserved.filter(|expected| *expected != kind.value) {
            errors.push(source.error_at_value(
                kind,
                format!(
                    "the datasource named {name:?} answers `datasource: {name}` groups, so its type must be {expected}"
                ),
            ));
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

/// Reports the fields set on an entry whose type does not take them.
impl RawDatasource {
    /// Every optional setting with where it was written (`None`: not written).
    fn settings(&self) -> [(&'static str, Option<&serde_saphyr::Location>); 17] {
        [
            ("url", at(&self.url)),
            ("timeout", at(&self.timeout)),
            ("method", at(&self.method)),
            ("headers", at(&self.headers)),
            ("basic_auth", at(&self.basic_auth)),
            ("bearer_token", at(&self.bearer_token)),
            ("bearer_token_file", at(&self.bearer_token_file)),
            ("url_file", at(&self.url_file)),
            ("password_file", at(&self.password_file)),
            ("statement_timeout", at(&self.statement_timeout)),
            ("lock_timeout", at(&self.lock_timeout)),
            ("max_connections", at(&self.max_connections)),
            ("host", at(&self.host)),
            ("tls_ca_file", at(&self.tls_ca_file)),
            ("tls_cert_file", at(&self.tls_cert_file)),
            ("tls_key_file", at(&self.tls_key_file)),
            ("tenant", at(&self.tenant)),
        ]
    }
}

/// Reports every setting written that a `kind` datasource does not take
/// (`takes`: its settings besides `type`).
fn reject_fields(
    source: &SourceFile,
    name: &str,
    kind: &str,
    raw: &RawDatasource,
    takes: &[&str],
    errors: &mut Vec<Diagnostic>,
) {
    for (field, location) in raw.settings() {
        if let Some(location) = location
            && !takes.contains(&field)
        {
            errors.push(
                source
                    .error_at_location(location, format!("{field} is not a setting of a {kind} datasource ({name:?})")),
            );
        }
    }
}

/// Where a field was written, for [`reject_fields`].
fn at<T>(field: &Option<Spanned<T>>) -> Option<&serde_saphyr::Location> {
    field.as_ref().map(|spanned| &spanned.referenced)
}

fn validate_prometheus(
    source: &SourceFile,
    name: &str,
    spanned: &Spanned<RawDatasource>,
    base: &Path,
    errors: &mut Vec<Diagnostic>,
) -> Option<rules::PrometheusOptions> {
    let raw = &spanned.value;
    let errors_before = errors.len();
    reject_fields(
        source,
        name,
        "prometheus",
        raw,
        &["url", "timeout", "method", "headers", "basic_auth", "bearer_token", "bearer_token_file"],
        errors,
    );
    let Some(url) = &raw.url else {
        errors.push(source.error_at_value(spanned, format!("prometheus datasource {name:?} needs url")));
        return None;
    };
    if let Err(error) = rules::remote::query_endpoint(&url.value) {
        errors.push(source.error_at_value(url, error.to_string()));
    }
    let mut options = rules::PrometheusOptions::new(url.value.clone());
    if let Some(duration) =
        raw.timeout.as_ref().and_then(|timeout| positive_duration(source, "timeout", timeout, errors))
    {
        options.timeout = duration;
    }
    if let Some(method) = &raw.method {
        match method.value.to_ascii_uppercase().as_str() {
            "POST" => options.method = rules::remote::QueryMethod::Post,
            "GET" => options.method = rules::remote::QueryMethod::Get,
            _ => errors.push(source.error_at_value(method, format!("method {:?} is not GET or POST", method.value))),
        }
    }
    for (header, value) in raw.headers.iter().flat_map(|headers| &headers.value) {
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

/// `triage_logs` and `triage_traces`: each must name a datasource of its
/// type (loki, tempo); without `triage_traces` the only tempo datasource is
/// the one trace checks search, and several tempo datasources need it.
pub fn validate_triage(
    source: &SourceFile,
    raw_datasources: &BTreeMap<String, Spanned<RawDatasource>>,
    triage_logs: Option<&Spanned<String>>,
    triage_traces: Option<&Spanned<String>>,
    validated: &mut Datasources,
    errors: &mut Vec<Diagnostic>,
) {
    let of_kind = |kind: &str| -> Vec<&String> {
        raw_datasources.iter().filter(|(_, raw)| raw.value.kind.value == kind).map(|(name, _)| name).collect()
    };
    let mut named = |key: &str, kind: &str, spanned: &Spanned<String>| -> Option<String> {
        let candidates = of_kind(kind);
        if candidates.contains(&&spanned.value) {
            return Some(spanned.value.clone());
        }
        let known = if candidates.is_empty() {
            format!("no {kind} datasource is configured")
        } else {
            format!(
                "the {kind} datasources are {}",
                candidates.iter().map(|name| format!("{name:?}")).collect::<Vec<_>>().join(", ")
            )
        };
        errors.push(
            source.error_at_value(spanned, format!("{key}: {:?} is not a {kind} datasource; {known}", spanned.value)),
        );
        None
    };
    validated.triage_logs = triage_logs.and_then(|spanned| named("triage_logs", "loki", spanned));
    validated.triage_traces = match triage_traces {
        Some(spanned) => named("triage_traces", "tempo", spanned),
        None => match of_kind("tempo").as_slice() {
            [] => None,
            [only] => Some((*only).clone()),
            several => {
                let names: Vec<String> = several.iter().map(|name| format!("{name:?}")).collect();
                errors.push(source.error_at_value(
                    &raw_datasources[several[1]],
                    format!(
                        "several tempo datasources ({}): name the one trace checks search with triage_traces: NAME",
                        names.join(", ")
                    ),
                ));
                None
            }
        },
    };
}

/// A remote Loki or Tempo (`kind`): url, timeout, headers, the tenant, and
/// basic or bearer authorization whose secrets come from files only.
fn validate_http_remote(
    source: &SourceFile,
    name: &str,
    kind: &str,
    spanned: &Spanned<RawDatasource>,
    base: &Path,
    errors: &mut Vec<Diagnostic>,
) -> Option<sources::http::HttpOptions> {
    let raw = &spanned.value;
    let errors_before = errors.len();
    if let Some(token) = &raw.bearer_token {
        errors.push(source.error_at_value(token, "a token is a secret: put it in a file named by bearer_token_file"));
    }
    let takes = ["url", "timeout", "headers", "basic_auth", "bearer_token", "bearer_token_file", "tenant"];
    reject_fields(source, name, kind, raw, &takes, errors);
    let Some(url) = &raw.url else {
        errors.push(source.error_at_value(spanned, format!("{kind} datasource {name:?} needs url")));
        return None;
    };
    if let Err(message) = sources::http::check_base_url(&url.value) {
        errors.push(source.error_at_value(url, message));
    }
    let mut options = sources::http::HttpOptions::new(name, url.value.clone());
    if let Some(duration) =
        raw.timeout.as_ref().and_then(|timeout| positive_duration(source, "timeout", timeout, errors))
    {
        options.timeout = duration;
    }
    for (header, value) in raw.headers.iter().flat_map(|headers| &headers.value) {
        if header.eq_ignore_ascii_case("authorization") {
            errors.push(source.error_at_value(value, "set Authorization with basic_auth or bearer_token_file"));
        } else if header.eq_ignore_ascii_case(sources::http::TENANT_HEADER) {
            errors.push(source.error_at_value(value, "set X-Scope-OrgID with tenant"));
        } else if let Err(error) = rules::remote::check_header(header, &value.value) {
            errors.push(source.error_at_value(value, error.to_string()));
        } else {
            options.headers.push((header.clone(), value.value.clone()));
        }
    }
    if let Some(tenant) = &raw.tenant {
        if tenant.value.is_empty() || rules::remote::check_header(sources::http::TENANT_HEADER, &tenant.value).is_err()
        {
            errors.push(source.error_at_value(tenant, "tenant must be a non-empty header value"));
        } else {
            options.tenant = Some(tenant.value.clone());
        }
    }
    let bearer = raw
        .bearer_token_file
        .as_ref()
        .and_then(|file| read_secret_file(source, "bearer_token_file", file, base, errors));
    if let Some(basic) = &raw.basic_auth {
        if raw.bearer_token_file.is_some() {
            errors.push(source.error_at_value(basic, "basic_auth and bearer_token_file are mutually exclusive"));
        }
        let basic_value = &basic.value;
        if let Some(password) = &basic_value.password {
            errors.push(
                source.error_at_value(password, "a password is a secret: put it in a file named by password_file"),
            );
        }
        match &basic_value.password_file {
            Some(file) => {
                if let Some(password) = read_secret_file(source, "password_file", file, base, errors) {
                    options.authorization = Some(rules::remote::Authorization::Basic {
                        username: basic_value.username.value.clone(),
                        password,
                    });
                }
            }
            None => errors.push(source.error_at_value(basic, "basic_auth needs username and password_file")),
        }
    } else if let Some(token) = bearer {
        options.authorization = Some(rules::remote::Authorization::Bearer { token });
    }
    (errors.len() == errors_before).then_some(options)
}

fn validate_postgres(
    source: &SourceFile,
    name: &str,
    spanned: &Spanned<RawDatasource>,
    base: &Path,
    errors: &mut Vec<Diagnostic>,
) -> Option<sources::sql::PostgresOptions> {
    let raw = &spanned.value;
    let errors_before = errors.len();
    reject_fields(
        source,
        name,
        "postgres",
        raw,
        &["url", "url_file", "password_file", "statement_timeout", "lock_timeout", "max_connections"],
        errors,
    );
    // The URL from url_file (password included), or url (without a password) and password_file.
    let (url, password, located) = match (&raw.url, &raw.url_file) {
        (Some(_), Some(file)) => {
            errors.push(source.error_at_value(file, "url and url_file are mutually exclusive"));
            return None;
        }
        (None, None) => {
            errors.push(source.error_at_value(
                spanned,
                format!("postgres datasource {name:?} needs url_file, or url and password_file"),
            ));
            return None;
        }
        (None, Some(file)) => {
            if let Some(password_file) = &raw.password_file {
                errors.push(
                    source.error_at_value(password_file, "with url_file, the password belongs in the URL of that file"),
                );
            }
            let url = read_secret_file(source, "url_file", file, base, errors)?;
            (url, None, Diagnostic { message: String::new(), ..source.error_at_value(file, "") })
        }
        (Some(url), None) => {
            if url_has_password(&url.value) {
                errors.push(source.error_at_value(
                    url,
                    "url carries a password: put the password in password_file, or the whole URL in url_file",
                ));
                return None;
            }
            let password = match &raw.password_file {
                Some(file) => Some(read_secret_file(source, "password_file", file, base, errors)?),
                None => None,
            };
            (url.value.clone(), password, source.error_at_value(url, ""))
        }
    };
    let mut options = match sources::sql::PostgresOptions::from_url(name, &url, password.as_deref()) {
        Ok(options) => options,
        Err(error) => {
            // The message never repeats the URL; the location is the url or url_file line.
            errors.push(Diagnostic { message: error.to_string(), ..located });
            return None;
        }
    };
    if let Some(duration) = raw
        .statement_timeout
        .as_ref()
        .and_then(|timeout| positive_duration(source, "statement_timeout", timeout, errors))
    {
        options.statement_timeout = duration;
    }
    if let Some(duration) =
        raw.lock_timeout.as_ref().and_then(|timeout| positive_duration(source, "lock_timeout", timeout, errors))
    {
        options.lock_timeout = duration;
    }
    if let Some(max) = &raw.max_connections {
        if max.value == 0 || max.value > 100 {
            errors.push(source.error_at_value(max, "max_connections must be between 1 and 100"));
        } else {
            options.max_connections = max.value;
        }
    }
    (errors.len() == errors_before).then_some(options)
}

fn validate_docker(
    source: &SourceFile,
    name: &str,
    spanned: &Spanned<RawDatasource>,
    base: &Path,
    errors: &mut Vec<Diagnostic>,
) -> Option<sources::docker::DockerOptions> {
    let raw = &spanned.value;
    let errors_before = errors.len();
    reject_fields(source, name, "docker", raw, &["host", "tls_ca_file", "tls_cert_file", "tls_key_file"], errors);
    let Some(host) = &raw.host else {
        errors.push(source.error_at_value(
            spanned,
            format!("docker datasource {name:?} needs host (unix:///var/run/docker.sock or tcp://HOST:2376)"),
        ));
        return None;
    };
    let tls_files =
        [("tls_ca_file", &raw.tls_ca_file), ("tls_cert_file", &raw.tls_cert_file), ("tls_key_file", &raw.tls_key_file)];
    let options = if let Some(path) = host.value.strip_prefix("unix://") {
        if !path.starts_with('/') {
            errors.push(source.error_at_value(
                host,
                "a unix:// host needs an absolute socket path, such as unix:///var/run/docker.sock",
            ));
        }
        for (field, file) in &tls_files {
            if let Some(file) = file {
                errors.push(source.error_at_value(file, format!("{field} applies to tcp:// hosts only")));
            }
        }
        sources::docker::DockerOptions::new(name, format!("unix://{path}"))
    } else if let Some(address) = host.value.strip_prefix("tcp://") {
        let address = address.trim_end_matches('/');
        let valid_port = address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port > 0));
        if !valid_port {
            errors.push(source.error_at_value(host, format!("{:?} is not tcp://HOST:PORT", host.value)));
        }
        let mut paths = Vec::new();
        for (field, file) in &tls_files {
            match file {
                Some(file) => {
                    let path = base.join(&file.value);
                    if let Err(error) = std::fs::File::open(&path) {
                        errors.push(source.error_at_value(file, format!("cannot read {field} {:?}: {error}", file.value)));
                    }
                    paths.push(path);
                }
                None => errors.push(source.error_at_value(
                    host,
                    format!("a tcp:// host needs {field} (with tls_ca_file, tls_cert_file and tls_key_file): the Docker API over plain TCP has no authentication"),
                )),
            }
        }
        let [ca_file, cert_file, key_file] = <[PathBuf; 3]>::try_from(paths).unwrap_or_default();
        let mut options = sources::docker::DockerOptions::new(name, format!("tcp://{address}"));
        options.tls = Some(sources::docker::TlsFiles { ca_file, cert_file, key_file });
        options
    } else {
        errors.push(
            source.error_at_value(host, format!("host {:?} is neither unix:///PATH nor tcp://HOST:PORT", host.value)),
        );
        return None;
    };
    (errors.len() == errors_before).then_some(options)
}

/// A duration greater than zero, such as `10s`.
fn positive_duration(
    source: &SourceFile,
    key: &str,
    value: &Spanned<String>,
    errors: &mut Vec<Diagnostic>,
) -> Option<Duration> {
    match catalog::duration::parse_duration(&value.value) {
        Ok(duration) if duration.is_zero() => {
            errors.push(source.error_at_value(value, format!("{key} must be greater than zero")));
            None
        }
        Ok(duration) => Some(duration),
        Err(error) => {
            errors.push(source.error_at_value(value, format!("{key}: {error}")));
            None
        }
    }
}

/// Whether `postgres://user:password@host` carries a password.
fn url_has_password(url: &str) -> bool {
    url.split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?']).next())
        .and_then(|authority| authority.rsplit_once('@'))
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
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
        (None, Some(file)) => read_secret_file(source, &format!("{key}_file"), file, base, errors),
        (None, None) => None,
    }
}

/// The contents of a secret file, trailing newline dropped; an error names the file, never what it holds.
fn read_secret_file(
    source: &SourceFile,
    key: &str,
    file: &Spanned<String>,
    base: &Path,
    errors: &mut Vec<Diagnostic>,
) -> Option<String> {
    match std::fs::read_to_string(base.join(&file.value)) {
        Ok(text) => {
            let text = text.trim_end_matches(['\r', '\n']).to_owned();
            if text.is_empty() {
                errors.push(source.error_at_value(file, format!("{key} {:?} is empty", file.value)));
                return None;
            }
            Some(text)
        }
        Err(error) => {
            errors.push(source.error_at_value(file, format!("cannot read {key} {:?}: {error}", file.value)));
            None
        }
    }
}

/// Masks secrets in the source lines (and messages) of `diagnostics`: the
/// password of every `scheme://user:password@` in the line, and the inline
/// secrets of the configuration (`password:`, `bearer_token:`). Characters are
/// replaced one for one with `*`, so carets still point at their column.
pub fn mask_secrets(diagnostics: &mut [Diagnostic], inline_secrets: &[String]) {
    for diagnostic in diagnostics {
        if let Some(snippet) = &mut diagnostic.snippet {
            *snippet = mask_text(snippet, inline_secrets);
        }
        diagnostic.message = mask_text(&diagnostic.message, inline_secrets);
    }
}

fn mask_text(text: &str, inline_secrets: &[String]) -> String {
    let mut masked = mask_url_passwords(text);
    for secret in inline_secrets.iter().filter(|secret| !secret.is_empty()) {
        masked = masked.replace(secret.as_str(), &"*".repeat(secret.chars().count()));
    }
    masked
}

/// `postgres://user:pw@host` → `postgres://user:**@host`, anywhere in `text`.
fn mask_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(position) = rest.find("://") {
        let (before, after) = rest.split_at(position + 3);
        out.push_str(before);
        let authority_end = after
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == ',' || c == '}' || c == '"' || c == '\''
            })
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match authority
            .rsplit_once('@')
            .and_then(|(userinfo, host)| userinfo.split_once(':').map(|(user, password)| (user, password, host)))
        {
            Some((user, password, host)) => {
                out.push_str(user);
                out.push(':');
                out.push_str(&"*".repeat(password.chars().count()));
                out.push('@');
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    out.push_str(rest);
    out
}

/// The inline secrets of the raw sections, for [`mask_secrets`].
pub fn inline_secrets(raw_datasources: &BTreeMap<String, Spanned<RawDatasource>>) -> Vec<String> {
    let mut secrets = Vec::new();
    for raw in raw_datasources.values() {
        let raw = &raw.value;
        secrets.extend(raw.bearer_token.as_ref().map(|token| token.value.clone()));
        if let Some(basic) = &raw.basic_auth {
            secrets.extend(basic.value.password.as_ref().map(|password| password.value.clone()));
        }
    }
    secrets
}

/// Checks `rule_datasources` against the catalog: every group exists and the
/// datasource's type fits the group's (prometheus for metrics groups, postgres
/// for `sql`, docker for `docker`).
pub fn check_groups(datasources: &Datasources, catalog: &catalog::Catalog) -> Result<(), Diagnostics> {
    let mut errors = Vec::new();
    for entry in &datasources.rule_datasources {
        let groups: Vec<&catalog::RuleGroup> =
            catalog.rule_files.iter().flat_map(|file| &file.groups).filter(|group| group.name == entry.group).collect();
        let kind = datasources.kind(&entry.datasource);
        let message = if groups.is_empty() {
            format!("rule_datasources names rule group {:?}, which no rule file of the catalog has", entry.group)
        } else if let Some(group) = groups.iter().find(|group| expected_type(group.datasource) != kind) {
            let needed = match expected_type(group.datasource) {
                Some(kind) => format!("a {kind} datasource"),
                None => "no configured datasource".to_owned(),
            };
            format!(
                "rule group {:?} reads {}, so it needs {needed}; {:?} is {}",
                entry.group,
                group.datasource.as_str(),
                entry.datasource,
                kind.map_or("unknown", DatasourceType::as_str)
            )
        } else {
            continue;
        };
        errors.push(Diagnostic { message, ..entry.location.clone() });
    }
    if errors.is_empty() { Ok(()) } else { Err(Diagnostics(errors)) }
}

/// The datasource type a group of `datasource` can be given.
fn expected_type(datasource: catalog::Datasource) -> Option<DatasourceType> {
    match datasource {
        catalog::Datasource::Metrics => Some(DatasourceType::Prometheus),
        catalog::Datasource::Sql => Some(DatasourceType::Postgres),
        catalog::Datasource::Docker => Some(DatasourceType::Docker),
        catalog::Datasource::Logs => Some(DatasourceType::Loki),
        catalog::Datasource::Probe | catalog::Datasource::Traces => None,
    }
}

/// The built datasources, by name, reporting their health into one set of metrics.
pub struct Built {
    by_name: BTreeMap<String, Arc<dyn rules::Datasource>>,
    rule_datasources: BTreeMap<String, String>,
    /// The postgres datasources by name, typed: triage checks read rows from them.
    pub postgres: BTreeMap<String, Arc<sources::sql::PostgresDatasource>>,
    /// The loki datasources by name, typed: log checks may query one (`triage_logs`).
    pub loki: BTreeMap<String, Arc<sources::loki::LokiDatasource>>,
    /// The tempo datasources by name: trace checks search one (`triage_traces`).
    pub tempo: BTreeMap<String, Arc<sources::tempo::TempoDatasource>>,
}

/// Builds one client per prometheus and postgres datasource; `docker` holds the
/// Docker datasources `alertbook run` built from [`Datasources::docker`].
/// PostgreSQL connects lazily: a server that is down is a rule error and
/// `alertbook_datasource_up 0`, not a failed start.
pub fn build(
    datasources: &Datasources,
    health: &HealthMetrics,
    docker: BTreeMap<String, Arc<dyn rules::Datasource>>,
) -> anyhow::Result<Built> {
    let mut by_name: BTreeMap<String, Arc<dyn rules::Datasource>> = docker;
    let mut postgres_by_name = BTreeMap::new();
    let mut loki_by_name = BTreeMap::new();
    let mut tempo_by_name = BTreeMap::new();
    for (name, options) in &datasources.remote {
        let client = rules::PrometheusDatasource::new(options)
            .map_err(|error| anyhow::anyhow!("datasource {name:?}: {error}"))?;
        tracing::info!(datasource = %name, endpoint = %client.endpoint(), "remote datasource configured");
        let monitored =
            sources::health::Monitored { inner: client, health: health.datasource(name, DatasourceType::Prometheus) };
        by_name.insert(name.clone(), Arc::new(monitored));
    }
    for (name, options) in &datasources.postgres {
        let postgres =
            sources::sql::PostgresDatasource::new(options.clone(), health.datasource(name, DatasourceType::Postgres))
                .map_err(|error| anyhow::anyhow!("{error}"))?;
        tracing::info!(datasource = %name, server = %postgres.server(), "postgres datasource configured");
        let postgres = Arc::new(postgres);
        postgres_by_name.insert(name.clone(), postgres.clone());
        by_name.insert(name.clone(), postgres);
    }
    for (name, options) in &datasources.loki {
        let loki = sources::loki::LokiDatasource::new(options, health.datasource(name, DatasourceType::Loki))
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        tracing::info!(datasource = %name, url = %loki.base_url(), "loki datasource configured");
        let loki = Arc::new(loki);
        loki_by_name.insert(name.clone(), loki.clone());
        by_name.insert(name.clone(), loki);
    }
    for (name, options) in &datasources.tempo {
        // Trace checks search it; no rule reads it. Its requests report its health.
        let tempo = sources::tempo::TempoDatasource::new(options, health.datasource(name, DatasourceType::Tempo))
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        tracing::info!(datasource = %name, url = %tempo.base_url(), "tempo datasource configured for trace checks");
        tempo_by_name.insert(name.clone(), Arc::new(tempo));
    }
    let rule_datasources =
        datasources.rule_datasources.iter().map(|entry| (entry.group.clone(), entry.datasource.clone())).collect();
    Ok(Built { by_name, rule_datasources, postgres: postgres_by_name, loki: loki_by_name, tempo: tempo_by_name })
}

impl Built {
    /// The loki datasource log checks query (`triage_logs`), if any.
    pub fn triage_logs(&self, datasources: &Datasources) -> Option<Arc<sources::loki::LokiDatasource>> {
        datasources.triage_logs.as_ref().and_then(|name| self.loki.get(name).cloned())
    }

    /// The tempo datasource trace checks search (`triage_traces`), if any.
    pub fn triage_traces(&self, datasources: &Datasources) -> Option<Arc<sources::tempo::TempoDatasource>> {
        datasources.triage_traces.as_ref().and_then(|name| self.tempo.get(name).cloned())
    }

    /// The resolver of the rule manager: a listed group gets its datasource,
    /// an unlisted `sql` or `docker` group the datasource of that name.
    pub fn resolver(self) -> Option<rules::DatasourceResolver> {
        if self.by_name.is_empty() {
            return None;
        }
        Some(Arc::new(move |_file: &str, group: &catalog::RuleGroup| {
            let name = match self.rule_datasources.get(&group.name) {
                Some(name) => name.as_str(),
                None => match group.datasource {
                    catalog::Datasource::Sql => DEFAULT_SQL,
                    catalog::Datasource::Docker => DEFAULT_DOCKER,
                    _ => return None,
                },
            };
            self.by_name.get(name).cloned()
        }))
    }
}

#[cfg(test)]
mod tests {
    fn load_in(directory: &std::path::Path, text: &str) -> Result<crate::config::Config, catalog::Diagnostics> {
        let path = directory.join("alertbook.yaml");
        std::fs::write(&path, text).expect("write");
        crate::config::load(&path)
    }

    fn load(text: &str) -> Result<crate::config::Config, catalog::Diagnostics> {
        let directory = tempfile::tempdir().expect("temporary directory");
        load_in(directory.path(), text)
    }

    #[test]
    fn triage_logs_and_traces_name_datasources_of_their_type() {
        let base = "datasources:\n  lk: {type: loki, url: 'http://127.0.0.1:3100'}\n  tp: {type: tempo, url: 'http://127.0.0.1:3200'}\n";
        let config = load(&format!("{base}triage_logs: lk\n")).expect("valid");
        assert_eq!(config.datasources.triage_logs.as_deref(), Some("lk"));
        assert_eq!(config.datasources.triage_traces.as_deref(), Some("tp"), "the only tempo");
        let errors = load(&format!("{base}triage_logs: tp\n")).expect_err("tp is a tempo");
        assert_eq!(located(&errors), vec![(4, 14)]);
        assert!(
            errors.to_string().contains("\"tp\" is not a loki datasource; the loki datasources are \"lk\""),
            "{errors}"
        );
        let two = format!("{base}  tp2: {{type: tempo, url: 'http://127.0.0.1:3201'}}\n");
        let errors = load(&two).expect_err("two tempos");
        assert!(errors.to_string().contains("name the one trace checks search with triage_traces"), "{errors}");
        let config = load(&format!("{two}triage_traces: tp2\n")).expect("named");
        assert_eq!(config.datasources.triage_traces.as_deref(), Some("tp2"));
        assert!(load(&format!("{base}triage_traces: lk\n")).is_err());
    }

    fn located(diagnostics: &catalog::Diagnostics) -> Vec<(usize, usize)> {
        diagnostics.iter().map(|error| (error.line, error.column)).collect()
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
        assert_eq!(located(&diagnostics), vec![(3, 11), (7, 8)], "{diagnostics}");
        assert!(diagnostics.iter().last().is_some_and(|error| error.message.contains("\"thanos\"")));
        let diagnostics =
            load("datasources:\n  mimir:\n    type: prometheus\n    url: mimir:8080\n    timeout: soon\n")
                .expect_err("invalid");
        assert_eq!(located(&diagnostics), vec![(4, 10), (5, 14)], "{diagnostics}");
    }

    #[test]
    fn postgres_from_url_file_or_url_and_password_file() {
        let directory = tempfile::tempdir().expect("temporary directory");
        std::fs::write(directory.path().join("dsn"), "postgres://alertbook_ro:dsn-pw-91@db:5433/busflow\n")
            .expect("write");
        std::fs::write(directory.path().join("pg-password"), "file-pw-22\n").expect("write");
        let config = load_in(
            directory.path(),
            "datasources:\n  sql: {type: postgres, url_file: dsn}\n  replica:\n    type: postgres\n    url: postgres://alertbook_ro@replica:5432/busflow\n    password_file: pg-password\n    statement_timeout: 3s\n    lock_timeout: 1s\n    max_connections: 4\nrule_datasources:\n  busflow-pg-cron: replica\n",
        )
        .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
        let sql = &config.datasources.postgres["sql"];
        assert_eq!(sql.server(), "alertbook_ro@db:5433/busflow");
        assert_eq!(sql.statement_timeout, sources::sql::DEFAULT_STATEMENT_TIMEOUT);
        let replica = &config.datasources.postgres["replica"];
        assert_eq!(replica.server(), "alertbook_ro@replica:5432/busflow");
        assert_eq!(replica.statement_timeout, std::time::Duration::from_secs(3));
        assert_eq!(replica.lock_timeout, std::time::Duration::from_secs(1));
        assert_eq!(replica.max_connections, 4);
        assert_eq!(replica.redact("file-pw-22"), "<redacted>");
        let summary = config.datasources.summary().join(", ");
        assert_eq!(
            summary,
            "replica (postgres alertbook_ro@replica:5432/busflow), sql (postgres alertbook_ro@db:5433/busflow)"
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains("dsn-pw-91") && !debug.contains("file-pw-22"), "{debug}");

        let catalog = catalog::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow"))
            .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
        super::check_groups(&config.datasources, &catalog).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    }

    #[test]
    fn postgres_errors_are_located_and_never_show_a_secret() {
        let directory = tempfile::tempdir().expect("temporary directory");
        std::fs::write(directory.path().join("bad-dsn"), "mysql://root:file-secret-55@db/x\n").expect("write");
        let diagnostics = load_in(
            directory.path(),
            "datasources:\n  sql: {type: postgres, url: 'postgres://ro:inline-secret-77@db/busflow', statement_timeout: 0s}\n  other:\n    type: postgres\n    url_file: bad-dsn\n  third:\n    type: postgres\n    url_file: missing-file\n    password_file: pw\n    host: unix:///var/run/docker.sock\n  fourth: {type: postgres, max_connections: 0}\n",
        )
        .expect_err("invalid");
        let text = diagnostics.to_string();
        assert!(!text.contains("inline-secret-77") && !text.contains("file-secret-55"), "{text}");
        assert!(text.contains("postgres://ro:****************@db/busflow"), "the line is shown, masked: {text}");
        assert_eq!(located(&diagnostics), vec![(11, 11), (5, 15), (2, 30), (10, 11), (9, 20), (8, 15)], "{text}");
        let messages: Vec<&str> = diagnostics.iter().map(|error| error.message.as_str()).collect();
        assert!(messages[0].contains("needs url_file, or url and password_file"), "{text}");
        assert!(messages[1].contains("must start with postgres://"), "{text}");
        assert!(messages[2].contains("url carries a password"), "{text}");
        assert!(messages[3].contains("host is not a setting of a postgres datasource"), "{text}");
        assert!(messages[4].contains("with url_file, the password belongs in the URL of that file"), "{text}");
        assert!(messages[5].contains("cannot read url_file \"missing-file\""), "{text}");
    }

    #[test]
    fn a_yaml_error_on_a_line_with_a_password_masks_it() {
        let diagnostics =
            load("datasources:\n  sql: {type: postgres, url: postgres://ro:yaml-secret-13@db/x, tiemout: 1s}\n")
                .expect_err("unknown field");
        let text = diagnostics.to_string();
        assert!(!text.contains("yaml-secret-13"), "{text}");
        assert_eq!(located(&diagnostics)[0].0, 2, "{text}");
    }

    #[test]
    fn docker_hosts() {
        let directory = tempfile::tempdir().expect("temporary directory");
        for file in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(directory.path().join(file), "-----BEGIN CERTIFICATE-----\n").expect("write");
        }
        let config = load_in(
            directory.path(),
            "datasources:\n  docker: {type: docker, host: 'unix:///var/run/docker.sock'}\n  swarm:\n    type: docker\n    host: tcp://manager.busflow:2376\n    tls_ca_file: ca.pem\n    tls_cert_file: cert.pem\n    tls_key_file: key.pem\n",
        )
        .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
        let local = &config.datasources.docker["docker"];
        assert_eq!((local.host.as_str(), &local.tls), ("unix:///var/run/docker.sock", &None));
        let swarm = &config.datasources.docker["swarm"];
        assert_eq!(swarm.host, "tcp://manager.busflow:2376");
        assert_eq!(swarm.tls.as_ref().expect("tcp uses TLS").key_file, directory.path().join("key.pem"));

        let diagnostics = load_in(
            directory.path(),
            "datasources:\n  docker: {type: docker, host: 'tcp://manager:2376', tls_ca_file: ca.pem}\n  local:\n    type: docker\n    host: unix:///run/docker.sock\n    tls_key_file: key.pem\n  bad: {type: docker, host: 'http://x'}\n  sql: {type: docker, host: 'unix:///x'}\n",
        )
        .expect_err("invalid");
        let text = diagnostics.to_string();
        assert_eq!(located(&diagnostics), vec![(7, 29), (2, 32), (2, 32), (6, 19), (8, 15)], "{text}");
        assert!(text.contains("needs tls_cert_file") && text.contains("needs tls_key_file"), "{text}");
        assert!(text.contains("tls_key_file applies to tcp:// hosts only"), "{text}");
        assert!(text.contains("the datasource named \"sql\" answers `datasource: sql` groups"), "{text}");
    }

    #[test]
    fn loki_datasources_take_secrets_from_files_and_bind_log_groups() {
        let directory = tempfile::tempdir().expect("temporary directory");
        std::fs::write(directory.path().join("loki-pw"), "loki-file-pw-47\n").expect("write");
        std::fs::write(directory.path().join("token"), "loki-token-19\n").expect("write");
        let config = load_in(
            directory.path(),
            "datasources:\n  busflow-loki:\n    type: loki\n    url: https://loki.busflow.internal/gateway\n    tenant: busflow\n    timeout: 5s\n    headers: {X-Team: ops}\n    basic_auth: {username: alertbook, password_file: loki-pw}\n  other: {type: loki, url: 'http://127.0.0.1:3100', bearer_token_file: token}\nrule_datasources:\n  busflow-grafana-sso: busflow-loki\n",
        )
        .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
        let loki = &config.datasources.loki["busflow-loki"];
        assert_eq!(loki.url, "https://loki.busflow.internal/gateway");
        assert_eq!(loki.tenant.as_deref(), Some("busflow"));
        assert_eq!(loki.timeout, std::time::Duration::from_secs(5));
        assert_eq!(loki.headers, vec![("X-Team".to_owned(), "ops".to_owned())]);
        assert_eq!(
            loki.authorization,
            Some(rules::remote::Authorization::Basic {
                username: "alertbook".to_owned(),
                password: "loki-file-pw-47".to_owned()
            })
        );
        assert_eq!(
            config.datasources.loki["other"].authorization,
            Some(rules::remote::Authorization::Bearer { token: "loki-token-19".to_owned() })
        );
        assert_eq!(
            config.datasources.summary().join(", "),
            "busflow-loki (loki https://loki.busflow.internal/gateway, tenant busflow), other (loki http://127.0.0.1:3100)"
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains("loki-file-pw-47") && !debug.contains("loki-token-19"), "{debug}");

        let catalog = catalog::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow"))
            .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
        super::check_groups(&config.datasources, &catalog).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
        let health = sources::health::HealthMetrics::new();
        let built = super::build(&config.datasources, &health, Default::default()).expect("built");
        let loki_pointer = std::sync::Arc::as_ptr(&built.by_name["busflow-loki"]) as *const ();
        let resolve = built.resolver().expect("a resolver");
        let group = |name: &str| catalog::RuleGroup {
            name: name.to_owned(),
            interval: None,
            limit: None,
            query_offset: None,
            labels: Default::default(),
            datasource: catalog::Datasource::Logs,
            rules: Vec::new(),
        };
        let resolved = |group: &catalog::RuleGroup| {
            resolve("rules.yaml", group).map(|datasource| std::sync::Arc::as_ptr(&datasource) as *const ())
        };
        assert_eq!(resolved(&group("busflow-grafana-sso")), Some(loki_pointer));
        assert_eq!(resolved(&group("busflow-pii")), None, "unlisted log groups keep the embedded log store");

        // A loki datasource for a metrics group, or a prometheus one for a log group, is refused.
        let config = load(
            "datasources:\n  loki: {type: loki, url: 'http://loki:3100'}\n  mimir: {type: prometheus, url: 'http://mimir:8080'}\nrule_datasources:\n  busflow-api: loki\n  busflow-grafana-sso: mimir\n",
        )
        .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
        let text = super::check_groups(&config.datasources, &catalog).expect_err("mismatched").to_string();
        assert!(
            text.contains(
                "rule group \"busflow-grafana-sso\" reads logs, so it needs a loki datasource; \"mimir\" is prometheus"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "rule group \"busflow-api\" reads metrics, so it needs a prometheus datasource; \"loki\" is loki"
            ),
            "{text}"
        );
    }

    #[test]
    fn loki_errors_are_located_and_never_show_a_secret() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let diagnostics = load_in(
            directory.path(),
            "datasources:\n  a:\n    type: loki\n    url: http://alertbook:url-secret-12@loki:3100\n    bearer_token: inline-token-34\n  b:\n    type: loki\n    url: http://loki:3100\n    basic_auth: {username: u, password: inline-pw-56}\n    headers: {X-Scope-OrgID: busflow}\n    host: unix:///x\n  c: {type: loki, url: 'http://loki:3100', bearer_token_file: missing, timeout: 0s}\n  d: {type: loki, tenant: busflow}\n",
        )
        .expect_err("invalid");
        let text = diagnostics.to_string();
        for secret in ["url-secret-12", "inline-token-34", "inline-pw-56"] {
            assert!(!text.contains(secret), "{secret} shows: {text}");
        }
        let messages: Vec<&str> = diagnostics.iter().map(|error| error.message.as_str()).collect();
        assert!(
            messages.iter().any(|message| message.contains("put it in a file named by bearer_token_file")),
            "{text}"
        );
        assert!(messages.iter().any(|message| message.contains("url carries credentials")), "{text}");
        assert!(messages.iter().any(|message| message.contains("put it in a file named by password_file")), "{text}");
        assert!(messages.iter().any(|message| message.contains("set X-Scope-OrgID with tenant")), "{text}");
        assert!(
            messages.iter().any(|message| message.contains("host is not a setting of a loki datasource")),
            "{text}"
        );
        assert!(messages.iter().any(|message| message.contains("cannot read bearer_token_file \"missing\"")), "{text}");
        assert!(messages.iter().any(|message| message.contains("timeout must be greater than zero")), "{text}");
        assert!(messages.iter().any(|message| message.contains("loki datasource \"d\" needs url")), "{text}");
        assert!(diagnostics.iter().all(|error| error.line > 1), "every error is located: {text}");
    }

    #[test]
    fn tempo_datasources_share_the_loki_settings() {
        let directory = tempfile::tempdir().expect("temporary directory");
        std::fs::write(directory.path().join("tempo-token"), "tempo-token-88\n").expect("write");
        let config = load_in(
            directory.path(),
            "datasources:\n  busflow-tempo:\n    type: tempo\n    url: http://tempo:3200\n    tenant: busflow\n    timeout: 10s\n    bearer_token_file: tempo-token\n",
        )
        .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
        let tempo = &config.datasources.tempo["busflow-tempo"];
        assert_eq!((tempo.url.as_str(), tempo.tenant.as_deref()), ("http://tempo:3200", Some("busflow")));
        assert_eq!(
            tempo.authorization,
            Some(rules::remote::Authorization::Bearer { token: "tempo-token-88".to_owned() })
        );
        assert_eq!(config.datasources.summary(), vec!["busflow-tempo (tempo http://tempo:3200, tenant busflow)"]);
        assert!(!format!("{config:?}").contains("tempo-token-88"));

        let diagnostics = load(
            "datasources:\n  t: {type: tempo, url: 'http://tempo:3200', method: GET, basic_auth: {username: u, password: tempo-inline-5}}\n",
        )
        .expect_err("invalid");
        let text = diagnostics.to_string();
        assert!(!text.contains("tempo-inline-5"), "{text}");
        assert!(text.contains("method is not a setting of a tempo datasource"), "{text}");
        assert!(text.contains("put it in a file named by password_file"), "{text}");

        // No rule group reads traces.
        let config = load(
            "datasources:\n  busflow-tempo: {type: tempo, url: 'http://tempo:3200'}\nrule_datasources:\n  busflow-grafana-sso: busflow-tempo\n",
        )
        .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
        let catalog = catalog::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow"))
            .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
        let text = super::check_groups(&config.datasources, &catalog).expect_err("mismatched").to_string();
        assert!(text.contains("needs a loki datasource; \"busflow-tempo\" is tempo"), "{text}");
    }

    #[test]
    fn a_group_needs_a_datasource_of_its_kind() {
        let config = load(
            "datasources:\n  mimir: {type: prometheus, url: 'http://mimir:8080'}\n  replica: {type: postgres, url: 'postgres://ro@db/x'}\nrule_datasources:\n  busflow-pg-cron: mimir\n  busflow-api: replica\n",
        )
        .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
        let catalog = catalog::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow"))
            .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
        let diagnostics = super::check_groups(&config.datasources, &catalog).expect_err("mismatched");
        let text = diagnostics.to_string();
        assert_eq!(located(&diagnostics), vec![(6, 16), (5, 20)], "{text}");
        assert!(
            text.contains(
                "rule group \"busflow-pg-cron\" reads sql, so it needs a postgres datasource; \"mimir\" is prometheus"
            ),
            "{text}"
        );
    }

    #[test]
    fn sql_groups_read_the_datasource_named_sql_unless_listed() {
        let config = load(
            "datasources:\n  sql: {type: postgres, url: 'postgres://ro@primary/x'}\n  replica: {type: postgres, url: 'postgres://ro@replica/x'}\nrule_datasources:\n  busflow-pg-cron-replica: replica\n",
        )
        .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
        let health = sources::health::HealthMetrics::new();
        let built = super::build(&config.datasources, &health, Default::default()).expect("built");
        let by_name: std::collections::BTreeMap<String, *const ()> = built
            .by_name
            .iter()
            .map(|(name, datasource)| (name.clone(), std::sync::Arc::as_ptr(datasource) as *const ()))
            .collect();
        let resolve = built.resolver().expect("a resolver");
        let group = |name: &str, datasource: catalog::Datasource| catalog::RuleGroup {
            name: name.to_owned(),
            interval: None,
            limit: None,
            query_offset: None,
            labels: Default::default(),
            datasource,
            rules: Vec::new(),
        };
        let resolved = |group: &catalog::RuleGroup| {
            resolve("rules.yaml", group).map(|datasource| std::sync::Arc::as_ptr(&datasource) as *const ())
        };
        assert_eq!(resolved(&group("busflow-pg-cron", catalog::Datasource::Sql)), Some(by_name["sql"]));
        assert_eq!(resolved(&group("busflow-pg-cron-replica", catalog::Datasource::Sql)), Some(by_name["replica"]));
        assert_eq!(
            resolved(&group("busflow-api", catalog::Datasource::Metrics)),
            None,
            "metrics groups keep the embedded store"
        );
        assert_eq!(
            resolved(&group("busflow-swarm", catalog::Datasource::Docker)),
            None,
            "no docker datasource is built"
        );
    }
}
