//! The `probes` contract: which endpoints the built-in prober checks, how
//! often, and with which options (`kind: probes`, the targets of A9-A11).
//!
//! A target is written as the prober takes it: a URL for `http` and `s3`,
//! `host:port` for `tcp`, `tls` and `smtp`. Options apply to some probers only
//! (`body_regex` to `http`, `send`/`expect` to `tcp`...), and an option a
//! prober does not read is an error rather than silently ignored. Credentials
//! are named by file (`password_file`, `secret_access_key_file`,
//! `header_files`), never written inline; this crate keeps the paths and never
//! reads those files (the `probe` crate does, at each check).
//!
//! [`validate_target`] is the one parser of a target and its options: the
//! contract loader reports its errors at the target's line and column, and
//! `alertbook probe` runs the same checks on its flags.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diagnostic::Diagnostic;
use crate::duration::parse_duration;
use crate::source::SourceFile;

/// The probe kinds alertbook runs.
pub const PROBERS: &[&str] = &["http", "tcp", "tls", "smtp", "s3"];

/// The longest timeout a check gets when none is written (shorter intervals
/// get 90 % of the interval).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A `kind: probes` contract as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbes {
    pub interval: Spanned<String>,
    pub failures: Spanned<u32>,
    pub targets: Vec<Spanned<ProbeTarget>>,
}

/// A validated `kind: probes` contract.
#[derive(Debug, Clone)]
pub struct Probes {
    /// As written (`5m`), for display and expressions.
    pub interval: String,
    pub interval_duration: Duration,
    pub failures: u32,
    pub targets: Vec<ProbeTarget>,
}

/// One probe target and its options, as written in the contract (and as
/// `alertbook probe` builds it from flags).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeTarget {
    /// The probe's name: the `probe` label.
    pub name: String,
    pub prober: String,
    pub target: String,
    /// Per-check timeout (`5s`); must be shorter than the interval.
    #[serde(default)]
    pub timeout: Option<String>,
    /// http: the request method (default GET).
    #[serde(default)]
    pub method: Option<String>,
    /// http: request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// http: request headers whose values are read from files (API keys).
    #[serde(default)]
    pub header_files: BTreeMap<String, String>,
    /// http, s3: the status codes that count as success (default any 2xx).
    #[serde(default)]
    pub valid_status_codes: Vec<u16>,
    /// http: the response body must match this regular expression.
    #[serde(default)]
    pub body_regex: Option<String>,
    /// http, tls, smtp, s3: verify the peer's certificate chain and name (default true).
    #[serde(default)]
    pub tls_verify: Option<bool>,
    /// http, tls, smtp, s3: a PEM file of CA certificates to trust instead of the system's.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// tls, smtp: the name to ask for and verify (default the target's host).
    #[serde(default)]
    pub server_name: Option<String>,
    /// tcp: a line to send after connecting.
    #[serde(default)]
    pub send: Option<String>,
    /// tcp: a regular expression the first line read must match.
    #[serde(default)]
    pub expect: Option<String>,
    /// smtp: upgrade with STARTTLS (default true).
    #[serde(default)]
    pub starttls: Option<bool>,
    /// smtp: the EHLO name (default `alertbook`).
    #[serde(default)]
    pub ehlo: Option<String>,
    /// smtp: AUTH credentials, each from a file.
    #[serde(default)]
    pub username_file: Option<String>,
    #[serde(default)]
    pub password_file: Option<String>,
    /// s3: the bucket to list (one key at most).
    #[serde(default)]
    pub bucket: Option<String>,
    /// s3: the SigV4 region (default us-east-1).
    #[serde(default)]
    pub region: Option<String>,
    /// s3: the access key pair, each from a file.
    #[serde(default)]
    pub access_key_id_file: Option<String>,
    #[serde(default)]
    pub secret_access_key_file: Option<String>,
}

/// Where a target points, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `http://` or `https://`, for `http` and `s3`.
    Url { https: bool, host: String, port: u16 },
    /// `host:port`, for `tcp`, `tls` and `smtp`.
    HostPort { host: String, port: u16 },
}

impl Endpoint {
    pub fn host(&self) -> &str {
        match self {
            Endpoint::Url { host, .. } | Endpoint::HostPort { host, .. } => host,
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Endpoint::Url { port, .. } | Endpoint::HostPort { port, .. } => *port,
        }
    }
}

/// A problem with one target: the field it concerns (`None`: the target as a
/// whole) and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    pub field: Option<&'static str>,
    pub message: String,
}

/// Which options each prober reads.
fn applies(prober: &str, option: &str) -> bool {
    match option {
        "timeout" => true,
        "method" | "headers" | "header_files" | "body_regex" => prober == "http",
        "valid_status_codes" => matches!(prober, "http" | "s3"),
        "tls_verify" | "ca_file" => matches!(prober, "http" | "tls" | "smtp" | "s3"),
        "server_name" => matches!(prober, "tls" | "smtp"),
        "send" | "expect" => prober == "tcp",
        "starttls" | "ehlo" | "username_file" | "password_file" => prober == "smtp",
        "bucket" | "region" | "access_key_id_file" | "secret_access_key_file" => prober == "s3",
        _ => false,
    }
}

/// The timeout a check of `target` gets at `interval`.
pub fn effective_timeout(target: &ProbeTarget, interval: Duration) -> Duration {
    match target.timeout.as_deref().map(parse_duration) {
        Some(Ok(timeout)) => timeout,
        _ => DEFAULT_TIMEOUT.min(interval.mul_f64(0.9)),
    }
}

/// Parses `text` as the endpoint of `prober`.
pub fn parse_endpoint(prober: &str, text: &str) -> Result<Endpoint, String> {
    match prober {
        "http" | "s3" => parse_url(text),
        "tcp" | "tls" | "smtp" => parse_host_port(text),
        other => Err(format!("unknown prober {other:?}; expected one of: {}", PROBERS.join(", "))),
    }
}

fn parse_url(text: &str) -> Result<Endpoint, String> {
    let url =
        url::Url::parse(text).map_err(|error| format!("target {text:?} is not an http:// or https:// URL: {error}"))?;
    let https = match url.scheme() {
        "http" => false,
        "https" => true,
        other => return Err(format!("target {text:?} is not an http:// or https:// URL (scheme {other:?})")),
    };
    let host = url.host_str().filter(|host| !host.is_empty()).ok_or_else(|| format!("target {text:?} has no host"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("target URL carries credentials: name them by file instead".into());
    }
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = url.port_or_known_default().unwrap_or(if https { 443 } else { 80 });
    Ok(Endpoint::Url { https, host, port })
}

fn parse_host_port(text: &str) -> Result<Endpoint, String> {
    let expected = || format!("target {text:?} is not host:port");
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(expected)?;
        (host, after.strip_prefix(':').ok_or_else(expected)?)
    } else {
        let (host, port) = text.rsplit_once(':').ok_or_else(expected)?;
        if host.contains(':') {
            return Err(format!("target {text:?}: write an IPv6 address in brackets, [::1]:port"));
        }
        (host, port)
    };
    if host.is_empty() || host.contains(['/', ' ']) {
        return Err(expected());
    }
    let port: u16 = port.parse().map_err(|_| format!("target {text:?} has no valid port (1-65535)"))?;
    if port == 0 {
        return Err(format!("target {text:?} has no valid port (1-65535)"));
    }
    Ok(Endpoint::HostPort { host: host.to_owned(), port })
}

/// Checks a target and its options at `interval`; every problem is returned.
pub fn validate_target(target: &ProbeTarget, interval: Duration) -> Vec<TargetError> {
    let mut errors = Vec::new();
    let mut fail = |field: Option<&'static str>, message: String| errors.push(TargetError { field, message });
    if target.name.trim().is_empty() {
        fail(Some("name"), "a probe needs a name".into());
    }
    if !PROBERS.contains(&target.prober.as_str()) {
        fail(
            Some("prober"),
            format!(
                "probe {:?} uses unknown prober {:?}; expected one of: {}",
                target.name,
                target.prober,
                PROBERS.join(", ")
            ),
        );
        return errors;
    }
    if let Err(message) = parse_endpoint(&target.prober, &target.target) {
        fail(Some("target"), message);
    }
    let prober = target.prober.as_str();
    let set: [(&'static str, bool); 19] = [
        ("timeout", target.timeout.is_some()),
        ("method", target.method.is_some()),
        ("headers", !target.headers.is_empty()),
        ("header_files", !target.header_files.is_empty()),
        ("valid_status_codes", !target.valid_status_codes.is_empty()),
        ("body_regex", target.body_regex.is_some()),
        ("tls_verify", target.tls_verify.is_some()),
        ("ca_file", target.ca_file.is_some()),
        ("server_name", target.server_name.is_some()),
        ("send", target.send.is_some()),
        ("expect", target.expect.is_some()),
        ("starttls", target.starttls.is_some()),
        ("ehlo", target.ehlo.is_some()),
        ("username_file", target.username_file.is_some()),
        ("password_file", target.password_file.is_some()),
        ("bucket", target.bucket.is_some()),
        ("region", target.region.is_some()),
        ("access_key_id_file", target.access_key_id_file.is_some()),
        ("secret_access_key_file", target.secret_access_key_file.is_some()),
    ];
    for (option, present) in set {
        if present && !applies(prober, option) {
            fail(Some(option), format!("option {option} does not apply to the {prober} prober"));
        }
    }
    if let Some(timeout) = &target.timeout {
        match parse_duration(timeout) {
            Err(error) => fail(Some("timeout"), format!("timeout: {error}")),
            Ok(duration) if duration.is_zero() => fail(Some("timeout"), "timeout must be above 0".into()),
            Ok(duration) if duration >= interval => fail(
                Some("timeout"),
                format!("timeout {timeout} is not below the interval ({}s)", interval.as_secs_f64()),
            ),
            Ok(_) => {}
        }
    }
    if let Some(method) = &target.method
        && (method.is_empty() || !method.bytes().all(|byte| byte.is_ascii_uppercase()))
    {
        fail(Some("method"), format!("method {method:?} is not an HTTP method (GET, HEAD, POST...)"));
    }
    for name in target.headers.keys().chain(target.header_files.keys()) {
        if name.is_empty()
            || !name.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&byte))
        {
            fail(Some("headers"), format!("header name {name:?} is not a valid HTTP header name"));
        }
    }
    for code in &target.valid_status_codes {
        if !(100..=599).contains(code) {
            fail(Some("valid_status_codes"), format!("status code {code} is not between 100 and 599"));
        }
    }
    for (field, pattern) in [("body_regex", &target.body_regex), ("expect", &target.expect)] {
        if let Some(pattern) = pattern
            && let Err(error) = regex::Regex::new(pattern)
        {
            fail(Some(field), format!("{field}: invalid regular expression: {error}"));
        }
    }
    if target.username_file.is_some() != target.password_file.is_some() {
        fail(Some("username_file"), "smtp AUTH needs both username_file and password_file".into());
    }
    if prober == "s3" {
        if target.bucket.as_deref().is_none_or(str::is_empty) {
            fail(Some("target"), "an s3 probe needs a bucket".into());
        }
        if target.access_key_id_file.is_none() || target.secret_access_key_file.is_none() {
            fail(Some("target"), "an s3 probe needs access_key_id_file and secret_access_key_file".into());
        }
    }
    if prober == "tls" && target.tls_verify == Some(false) {
        fail(Some("tls_verify"), "a tls probe always verifies: that is what it checks".into());
    }
    errors
}

/// Validates a `kind: probes` contract's body, reporting each problem at the
/// line and column of the target it concerns.
pub(crate) fn validate(raw: RawProbes, source: &SourceFile, errors: &mut Vec<Diagnostic>) -> Option<Probes> {
    let before = errors.len();
    let interval = match parse_duration(&raw.interval.value) {
        Ok(interval) if !interval.is_zero() => interval,
        Ok(_) => {
            errors.push(source.error_at_value(&raw.interval, "interval must be above 0"));
            return None;
        }
        Err(error) => {
            errors.push(source.error_at_value(&raw.interval, format!("interval: {error}")));
            return None;
        }
    };
    if raw.failures.value == 0 {
        errors.push(source.error_at_value(&raw.failures, "failures must be at least 1"));
    }
    let mut names = BTreeMap::new();
    for target in &raw.targets {
        if let Some(first) = names.insert(target.value.name.clone(), target.referenced) {
            errors.push(source.error_at_value(
                target,
                format!("probe {:?} is defined already (line {})", target.value.name, first.line()),
            ));
        }
        for error in validate_target(&target.value, interval) {
            errors.push(field_error(source, target, error));
        }
    }
    (errors.len() == before).then(|| Probes {
        interval: raw.interval.value,
        interval_duration: interval,
        failures: raw.failures.value,
        targets: raw.targets.into_iter().map(|target| target.value).collect(),
    })
}

/// The diagnostic for `error`, at its field's line when the field is written
/// on a line of its own inside the target's mapping.
fn field_error(source: &SourceFile, target: &Spanned<ProbeTarget>, error: TargetError) -> Diagnostic {
    let start = target.referenced.line() as usize;
    if let Some(field) = error.field {
        // The target's mapping runs from its first line to the next `- ` item
        // at its indentation or less.
        let indent = target.referenced.column() as usize;
        let prefix = format!("{field}:");
        for line in start.. {
            let Some(text) = source.line_text(line) else { break };
            let trimmed = text.trim_start();
            let column = text.len() - trimmed.len() + 1;
            if line > start && !trimmed.is_empty() && !trimmed.starts_with('#') && column < indent {
                break;
            }
            if line > start && column <= indent && trimmed.starts_with("- ") {
                break;
            }
            let item = trimmed.strip_prefix("- ").unwrap_or(trimmed);
            if let Some(at) = item.find(&prefix).filter(|at| *at == 0 || item[..*at].ends_with([' ', '{', ','])) {
                let key_column = column + (trimmed.len() - item.len()) + at;
                let value_offset = item[at + prefix.len()..].len() - item[at + prefix.len()..].trim_start().len();
                return source.error_at(line, key_column + prefix.len() + value_offset, error.message);
            }
        }
    }
    source.error_at_value(target, error.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(prober: &str, text: &str) -> ProbeTarget {
        ProbeTarget { name: "x".into(), prober: prober.into(), target: text.into(), ..ProbeTarget::default() }
    }

    #[test]
    fn endpoints_parse_per_prober() {
        assert_eq!(
            parse_endpoint("http", "https://api.example.com/v1/models"),
            Ok(Endpoint::Url { https: true, host: "api.example.com".into(), port: 443 })
        );
        assert_eq!(parse_endpoint("tcp", "[::1]:25"), Ok(Endpoint::HostPort { host: "::1".into(), port: 25 }));
        assert_eq!(
            parse_endpoint("smtp", "email-smtp.eu-west-1.amazonaws.com:587").map(|endpoint| endpoint.port()),
            Ok(587)
        );
        assert!(parse_endpoint("tcp", "example.com").is_err());
        assert!(parse_endpoint("tcp", "example.com:0").is_err());
        assert!(parse_endpoint("tls", "::1:443").is_err());
        assert!(parse_endpoint("http", "ftp://example.com").is_err());
        assert!(parse_endpoint("http", "qdrant:6333/readyz").is_err());
        assert!(parse_endpoint("http", "https://user:pw@example.com/").is_err());
    }

    #[test]
    fn options_are_checked_against_the_prober() {
        let second = Duration::from_secs(30);
        assert!(validate_target(&target("http", "http://a:80/"), second).is_empty());
        let mut tcp = target("tcp", "a:1");
        tcp.body_regex = Some("ok".into());
        assert_eq!(validate_target(&tcp, second)[0].field, Some("body_regex"));
        let mut slow = target("http", "http://a/");
        slow.timeout = Some("30s".into());
        assert!(validate_target(&slow, second)[0].message.contains("not below the interval"));
        let mut s3 = target("s3", "http://127.0.0.1:9000");
        assert_eq!(validate_target(&s3, second).len(), 2);
        s3.bucket = Some("b".into());
        s3.access_key_id_file = Some("id".into());
        s3.secret_access_key_file = Some("secret".into());
        assert!(validate_target(&s3, second).is_empty());
        assert!(validate_target(&target("ping", "a"), second)[0].message.contains("unknown prober \"ping\""));
        assert_eq!(effective_timeout(&target("http", "http://a/"), Duration::from_secs(1)), Duration::from_millis(900));
        assert_eq!(effective_timeout(&target("http", "http://a/"), Duration::from_secs(300)), DEFAULT_TIMEOUT);
    }
}
