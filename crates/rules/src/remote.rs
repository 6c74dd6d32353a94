//! A [`Datasource`] over a remote Prometheus-compatible query API: Prometheus,
//! Grafana Mimir (under its `/prometheus` prefix), VictoriaMetrics, Thanos.
//!
//! [`PrometheusDatasource`] sends each rule's query as an instant query
//! (`POST` or `GET /api/v1/query` with `query` and `time`) and turns the
//! `vector` or `scalar` answer into samples; Prometheus's error JSON becomes a
//! [`DatasourceError`] carrying its message, and an unreachable or slow server
//! becomes [`DatasourceError::Unavailable`]. [`PrometheusOptions`] holds the
//! base URL (any path prefix included), the timeout, extra headers and the
//! authorization.
//!
//! The client is blocking, like the [`Datasource`] trait: evaluations run on
//! blocking threads (the scheduler uses `spawn_blocking`), never on the async
//! runtime. This module is the only place of the crate that opens sockets; it
//! does not read the clock beyond the request timeout and does not retry (the
//! next evaluation is the retry, as in Prometheus).

use std::time::Duration;

use serde::Deserialize;
use tsdb::Labels;

use crate::datasource::{Datasource, DatasourceError};

/// The timeout of a query when none is configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A remote datasource could not be built from its options.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RemoteError {
    #[error("url {url:?} is not an http:// or https:// URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("header {name:?} is invalid: {reason}")]
    InvalidHeader { name: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// The HTTP method of instant queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryMethod {
    /// A form-encoded body; no length limit on the query (Prometheus's own default for rules).
    #[default]
    Post,
    /// URL parameters, for proxies that only allow reads.
    Get,
}

/// How requests are authorized.
#[derive(Clone, PartialEq, Eq)]
pub enum Authorization {
    Basic { username: String, password: String },
    Bearer { token: String },
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { username, .. } => {
                f.debug_struct("Basic").field("username", username).field("password", &"<secret>").finish()
            }
            Self::Bearer { .. } => f.debug_struct("Bearer").field("token", &"<secret>").finish(),
        }
    }
}

/// Where and how a [`PrometheusDatasource`] queries.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusOptions {
    /// The base URL, path prefix included (`https://mimir.example/prometheus`);
    /// `/api/v1/query` is appended.
    pub url: String,
    pub timeout: Duration,
    pub method: QueryMethod,
    /// Sent with every request (`X-Scope-OrgID` for Mimir tenants, for example).
    pub headers: Vec<(String, String)>,
    pub authorization: Option<Authorization>,
}

impl PrometheusOptions {
    /// Options for `url` with the default timeout, `POST`, no headers and no authorization.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout: DEFAULT_TIMEOUT,
            method: QueryMethod::Post,
            headers: Vec::new(),
            authorization: None,
        }
    }
}

/// The query endpoint of a base URL: `<url>/api/v1/query`, the URL's path kept as a prefix.
pub fn query_endpoint(url: &str) -> Result<reqwest::Url, RemoteError> {
    let invalid = |reason: String| RemoteError::InvalidUrl { url: url.to_owned(), reason };
    let mut parsed = reqwest::Url::parse(url).map_err(|error| invalid(error.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!("the scheme is {:?}", parsed.scheme())));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".to_owned()));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("a base URL takes no query or fragment".to_owned()));
    }
    let prefix = parsed.path().trim_end_matches('/').to_owned();
    parsed.set_path(&format!("{prefix}/api/v1/query"));
    Ok(parsed)
}

/// Checks that `name: value` can be sent as an HTTP header.
pub fn check_header(name: &str, value: &str) -> Result<(), RemoteError> {
    let invalid = |reason: String| RemoteError::InvalidHeader { name: name.to_owned(), reason };
    reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|error| invalid(error.to_string()))?;
    reqwest::header::HeaderValue::from_str(value).map_err(|error| invalid(error.to_string()))?;
    Ok(())
}

/// Instant queries against a Prometheus-compatible HTTP API.
#[derive(Debug, Clone)]
pub struct PrometheusDatasource {
    endpoint: reqwest::Url,
    method: QueryMethod,
    client: reqwest::blocking::Client,
}

impl PrometheusDatasource {
    /// Builds the client. Call it outside an async context (reqwest's blocking
    /// client runs its own runtime thread).
    pub fn new(options: &PrometheusOptions) -> Result<Self, RemoteError> {
        let endpoint = query_endpoint(&options.url)?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &options.headers {
            let invalid = |reason: String| RemoteError::InvalidHeader { name: name.clone(), reason };
            let header_name =
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|error| invalid(error.to_string()))?;
            let mut header_value =
                reqwest::header::HeaderValue::from_str(value).map_err(|error| invalid(error.to_string()))?;
            header_value.set_sensitive(true);
            headers.append(header_name, header_value);
        }
        if let Some(authorization) = &options.authorization {
            let value = match authorization {
                Authorization::Basic { username, password } => {
                    format!("Basic {}", base64_encode(format!("{username}:{password}").as_bytes()))
                }
                Authorization::Bearer { token } => format!("Bearer {token}"),
            };
            let mut header_value = reqwest::header::HeaderValue::from_str(&value).map_err(|error| {
                RemoteError::InvalidHeader { name: "Authorization".to_owned(), reason: error.to_string() }
            })?;
            header_value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, header_value);
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::blocking::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .default_headers(headers)
            .user_agent(concat!("alertbook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| RemoteError::Client(error.to_string()))?;
        Ok(Self { endpoint, method: options.method, client })
    }

    /// The URL queries are sent to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }
}

impl Datasource for PrometheusDatasource {
    fn query(&self, query: &str, time_ms: i64) -> Result<Vec<(Labels, f64)>, DatasourceError> {
        let time = format_time(time_ms);
        let parameters = [("query", query), ("time", time.as_str())];
        let request = match self.method {
            QueryMethod::Post => self.client.post(self.endpoint.clone()).form(&parameters),
            QueryMethod::Get => self.client.get(self.endpoint.clone()).query(&parameters),
        };
        let response = request.send().map_err(|error| DatasourceError::Unavailable(describe(&error)))?;
        let status = response.status();
        let body = response.bytes().map_err(|error| DatasourceError::Unavailable(describe(&error)))?;
        parse_response(status.as_u16(), &body)
    }
}

/// A reqwest error with its causes, which hold the useful part (connection refused, timed out).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Unix seconds with millisecond precision, as the API takes them.
fn format_time(time_ms: i64) -> String {
    let sign = if time_ms < 0 { "-" } else { "" };
    let magnitude = time_ms.unsigned_abs();
    format!("{sign}{}.{:03}", magnitude / 1000, magnitude % 1000)
}

#[derive(Debug, Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    value: Option<(f64, String)>,
    #[serde(default)]
    histogram: Option<serde_json::Value>,
}

/// Turns an API answer (HTTP status and body) into samples or an error.
pub fn parse_response(status: u16, body: &[u8]) -> Result<Vec<(Labels, f64)>, DatasourceError> {
    let response: ApiResponse = match serde_json::from_slice(body) {
        Ok(response) => response,
        Err(error) => {
            let excerpt: String = String::from_utf8_lossy(body).chars().take(200).collect();
            let message = format!("HTTP {status}: the answer is not the query API's JSON ({error}): {excerpt}");
            return Err(if (200..300).contains(&status) {
                DatasourceError::Query(message)
            } else {
                DatasourceError::Unavailable(message)
            });
        }
    };
    if response.status != "success" {
        let message = response.error.unwrap_or_else(|| format!("HTTP {status} without an error message"));
        return Err(match response.error_type.as_deref() {
            Some("bad_data" | "execution") => DatasourceError::Query(message),
            Some(kind) => DatasourceError::Unavailable(format!("{kind}: {message}")),
            None => DatasourceError::Unavailable(message),
        });
    }
    let data = response.data.ok_or_else(|| DatasourceError::Query("a success answer without data".to_owned()))?;
    let malformed = |error: serde_json::Error| DatasourceError::Query(format!("malformed query result: {error}"));
    match data.result_type.as_str() {
        "vector" => {
            let samples: Vec<VectorSample> = serde_json::from_value(data.result).map_err(malformed)?;
            samples
                .into_iter()
                .map(|sample| {
                    let Some((_, value)) = sample.value else {
                        return Err(DatasourceError::Query(if sample.histogram.is_some() {
                            "native histogram samples are not supported in rule results".to_owned()
                        } else {
                            "a vector sample without a value".to_owned()
                        }));
                    };
                    Ok((Labels::from_pairs(sample.metric), parse_value(&value)?))
                })
                .collect()
        }
        "scalar" => {
            let (_, value): (f64, String) = serde_json::from_value(data.result).map_err(malformed)?;
            Ok(vec![(Labels::empty(), parse_value(&value)?)])
        }
        _ => Err(DatasourceError::NotAVector),
    }
}

/// A sample value as the API writes it: a decimal string, `NaN`, `+Inf` or `-Inf`.
fn parse_value(text: &str) -> Result<f64, DatasourceError> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text.parse().map_err(|_| DatasourceError::Query(format!("sample value {text:?} is not a number"))),
    }
}

/// Standard base64 with padding, for the basic authorization header.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut encoded = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let triple =
            chunk.iter().enumerate().fold(0u32, |triple, (index, byte)| triple | u32::from(*byte) << (16 - 8 * index));
        for position in 0..4 {
            if position <= chunk.len() {
                encoded.push(char::from(ALPHABET[(triple >> (18 - 6 * position)) as usize & 63]));
            } else {
                encoded.push('=');
            }
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keeps_the_path_prefix() {
        assert_eq!(
            query_endpoint("http://mimir:8080/prometheus/").unwrap().as_str(),
            "http://mimir:8080/prometheus/api/v1/query"
        );
        assert_eq!(query_endpoint("http://127.0.0.1:9090").unwrap().as_str(), "http://127.0.0.1:9090/api/v1/query");
        assert!(query_endpoint("ftp://example").is_err());
        assert!(query_endpoint("localhost:9090").is_err());
        assert!(query_endpoint("http://a/?x=1").is_err());
    }

    #[test]
    fn time_has_millisecond_precision() {
        assert_eq!(format_time(1_700_000_000_123), "1700000000.123");
        assert_eq!(format_time(5), "0.005");
        assert_eq!(format_time(-1500), "-1.500");
    }

    #[test]
    fn vector_and_scalar_answers() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","job":"api"},"value":[1700000000.5,"1"]},
            {"metric":{"job":"db"},"value":[1700000000.5,"+Inf"]}]}}"#;
        let samples = parse_response(200, body).unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].0, Labels::from_pairs([("__name__", "up"), ("job", "api")]));
        assert_eq!(samples[0].1, 1.0);
        assert_eq!(samples[1].1, f64::INFINITY);
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"NaN"]}}"#;
        let samples = parse_response(200, scalar).unwrap();
        assert!(samples[0].0.is_empty() && samples[0].1.is_nan());
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert_eq!(parse_response(200, matrix), Err(DatasourceError::NotAVector));
    }

    #[test]
    fn error_answers_keep_the_message() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected end of input"}"#;
        assert_eq!(
            parse_response(400, body),
            Err(DatasourceError::Query("1:5: parse error: unexpected end of input".to_owned()))
        );
        let body = br#"{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}"#;
        assert!(
            matches!(parse_response(503, body), Err(DatasourceError::Unavailable(message)) if message.contains("timed out"))
        );
        assert!(matches!(parse_response(502, b"<html>bad gateway</html>"), Err(DatasourceError::Unavailable(_))));
    }

    #[test]
    fn basic_authorization_encoding() {
        assert_eq!(base64_encode(b"alertbook:secret"), "YWxlcnRib29rOnNlY3JldA==");
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_encode(b"abc"), "YWJj");
        assert_eq!(base64_encode(b""), "");
    }
}
