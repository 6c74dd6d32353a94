//! The HTTP edge shared by the remote Loki and Tempo datasources: one
//! blocking client per datasource with its base URL, timeout, extra headers,
//! authorization and tenant (`X-Scope-OrgID`), and the errors a remote answer
//! can end in.
//!
//! [`HttpOptions`] holds what `alertbook.yaml` configures; its `Debug` shows
//! header names only and never a password or token. [`RemoteClient::get`]
//! sends one `GET` and returns the status and body, reporting every attempt to
//! the datasource's [`DatasourceHealth`]. [`AnswerError`] says how an answer
//! failed (unreachable, timed out, an HTTP error status with the server's
//! message, malformed JSON) and [`RemoteError`] adds the datasource's kind and
//! name, so a rule or check error names where it came from. Errors never
//! carry the request URL (it can hold a long query) nor any credential.
//!
//! The client is blocking, like [`rules::Datasource`]: callers are evaluation
//! threads, never an async worker. It does not retry: the next evaluation is
//! the retry, as in Prometheus.

use std::time::Duration;

use crate::health::DatasourceHealth;

/// The timeout of a request when none is configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The tenant header of Loki, Tempo and Mimir.
pub const TENANT_HEADER: &str = "X-Scope-OrgID";
/// The longest server message kept in an error.
const MAX_MESSAGE_CHARS: usize = 300;

/// Where and how a remote datasource is queried.
#[derive(Clone, PartialEq)]
pub struct HttpOptions {
    /// The datasource's name in the configuration, used in every error and health report.
    pub name: String,
    /// The base URL, path prefix included (`https://gateway.example/loki`): API
    /// paths such as `/loki/api/v1/query` are appended to it.
    pub url: String,
    pub timeout: Duration,
    /// Sent with every request.
    pub headers: Vec<(String, String)>,
    pub authorization: Option<rules::remote::Authorization>,
    /// Sent as `X-Scope-OrgID`.
    pub tenant: Option<String>,
}

impl HttpOptions {
    /// Options for `url` with the default timeout and nothing else.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            timeout: DEFAULT_TIMEOUT,
            headers: Vec::new(),
            authorization: None,
            tenant: None,
        }
    }
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        formatter
            .debug_struct("HttpOptions")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("headers", &header_names)
            .field("authorization", &self.authorization)
            .field("tenant", &self.tenant)
            .finish()
    }
}

/// Checks a base URL: `http://` or `https://`, a host, no credentials, no query or fragment.
pub fn check_base_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|error| format!("url is not a URL: {error}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("url must be http:// or https://, not {}://", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("url has no host".to_owned());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("url carries credentials: use basic_auth with password_file".to_owned());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("a base url takes no query or fragment".to_owned());
    }
    Ok(parsed)
}

/// How a remote answer failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnswerError {
    /// No connection, or the connection broke.
    #[error("{0}")]
    Unreachable(String),
    /// No complete answer within the timeout.
    #[error("no answer within {}", format_duration(*.0))]
    Timeout(Duration),
    /// An HTTP error status, with the server's message.
    #[error("HTTP {status}: {message}")]
    Status { status: u16, message: String },
    /// The body is not the API's JSON.
    #[error("malformed answer: {0}")]
    Malformed(String),
}

impl AnswerError {
    /// Whether the server itself still answers (a bad query or a malformed
    /// answer keeps `alertbook_datasource_up` at 1; no answer, a timeout or a
    /// 5xx sets it to 0).
    pub fn reachable(&self) -> bool {
        match self {
            Self::Unreachable(_) | Self::Timeout(_) => false,
            Self::Status { status, .. } => *status < 500,
            Self::Malformed(_) => true,
        }
    }

    /// The error of a non-2xx answer: the server's message from a plain-text
    /// body (Loki, Tempo) or a JSON body's `message` or `error` field.
    pub fn from_status(status: u16, body: &[u8]) -> Self {
        Self::Status { status, message: server_message(body) }
    }

    /// A JSON decoding error with the start of the body.
    pub fn malformed(error: impl std::fmt::Display, body: &[u8]) -> Self {
        Self::Malformed(format!("{error}; the answer starts {:?}", excerpt(&String::from_utf8_lossy(body))))
    }
}

/// A failed request to a named datasource.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind} datasource {datasource:?}: {error}")]
pub struct RemoteError {
    /// `loki` or `tempo`.
    pub kind: &'static str,
    pub datasource: String,
    pub error: AnswerError,
}

impl RemoteError {
    /// The rules engine's error: a query the server refused or a malformed
    /// answer is the rule's fault or the server's content; no answer is the
    /// datasource being unavailable.
    pub fn into_datasource_error(self) -> rules::DatasourceError {
        if self.error.reachable() {
            rules::DatasourceError::Query(self.to_string())
        } else {
            rules::DatasourceError::Unavailable(self.to_string())
        }
    }
}

fn format_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

fn excerpt(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.chars().count() <= MAX_MESSAGE_CHARS {
        trimmed.to_owned()
    } else {
        let mut cut: String = trimmed.chars().take(MAX_MESSAGE_CHARS).collect();
        cut.push('…');
        cut
    }
}

fn server_message(body: &[u8]) -> String {
    if let Ok(serde_json::Value::Object(object)) = serde_json::from_slice::<serde_json::Value>(body) {
        for field in ["message", "error"] {
            if let Some(serde_json::Value::String(message)) = object.get(field) {
                return excerpt(message);
            }
        }
    }
    let text = excerpt(&String::from_utf8_lossy(body));
    if text.is_empty() { "(empty body)".to_owned() } else { text }
}

/// One remote datasource's HTTP client.
pub struct RemoteClient {
    kind: &'static str,
    name: String,
    base: reqwest::Url,
    timeout: Duration,
    client: reqwest::blocking::Client,
    authorization: Option<rules::remote::Authorization>,
    health: DatasourceHealth,
}

impl std::fmt::Debug for RemoteClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RemoteClient")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl RemoteClient {
    /// Builds the client of a `kind` (`loki`, `tempo`) datasource. Call it
    /// outside an async context (reqwest's blocking client runs its own thread).
    pub fn new(kind: &'static str, options: &HttpOptions, health: DatasourceHealth) -> Result<Self, RemoteError> {
        let fail = |message: String| RemoteError {
            kind,
            datasource: options.name.clone(),
            error: AnswerError::Unreachable(message),
        };
        let base = check_base_url(&options.url).map_err(fail)?;
        let mut headers = reqwest::header::HeaderMap::new();
        let tenant = options.tenant.iter().map(|tenant| (TENANT_HEADER.to_owned(), tenant.clone()));
        for (name, value) in options.headers.iter().cloned().chain(tenant) {
            let header_name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|error| fail(format!("header {name:?} is invalid: {error}")))?;
            let mut header_value = reqwest::header::HeaderValue::from_str(&value)
                .map_err(|error| fail(format!("the value of header {name:?} is invalid: {error}")))?;
            header_value.set_sensitive(true);
            headers.insert(header_name, header_value);
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::blocking::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .default_headers(headers)
            .user_agent(concat!("alertbook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| fail(format!("cannot build the HTTP client: {error}")))?;
        Ok(Self {
            kind,
            name: options.name.clone(),
            base,
            timeout: options.timeout,
            client,
            authorization: options.authorization.clone(),
            health,
        })
    }

    /// The datasource's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The base URL (never with credentials).
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// The URL of `path` (`/loki/api/v1/query`) under the base URL's path.
    fn endpoint(&self, path: &str) -> reqwest::Url {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{prefix}{path}"));
        url
    }

    /// An error of this datasource.
    pub fn error(&self, error: AnswerError) -> RemoteError {
        RemoteError { kind: self.kind, datasource: self.name.clone(), error }
    }

    /// Sends `GET path?parameters` and decodes a 2xx body with `decode`; any
    /// other status is an [`AnswerError::Status`] with the server's message.
    /// The outcome is reported to the datasource's health.
    pub fn get<T>(
        &self,
        path: &str,
        parameters: &[(&str, String)],
        decode: impl FnOnce(&[u8]) -> Result<T, AnswerError>,
    ) -> Result<T, RemoteError> {
        let outcome = self.send(path, parameters).and_then(|(status, body)| {
            if (200..300).contains(&status) { decode(&body) } else { Err(AnswerError::from_status(status, &body)) }
        });
        match &outcome {
            Ok(_) => self.health.record_success(),
            Err(error) => self.health.record_error(error.reachable()),
        }
        outcome.map_err(|error| self.error(error))
    }

    fn send(&self, path: &str, parameters: &[(&str, String)]) -> Result<(u16, Vec<u8>), AnswerError> {
        let mut request = self.client.get(self.endpoint(path)).query(parameters);
        match &self.authorization {
            Some(rules::remote::Authorization::Basic { username, password }) => {
                request = request.basic_auth(username, Some(password));
            }
            Some(rules::remote::Authorization::Bearer { token }) => request = request.bearer_auth(token),
            None => {}
        }
        let failed = |error: reqwest::Error| {
            if error.is_timeout() {
                AnswerError::Timeout(self.timeout)
            } else {
                AnswerError::Unreachable(describe(error))
            }
        };
        let response = request.send().map_err(failed)?;
        let status = response.status().as_u16();
        let body = response.bytes().map_err(failed)?;
        Ok((status, body.to_vec()))
    }
}

/// A reqwest error with its causes (connection refused, reset), without the URL.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert!(check_base_url("http://loki:3100").is_ok());
        assert!(check_base_url("https://logs.example/loki/").is_ok());
        assert!(check_base_url("loki:3100").is_err());
        assert!(check_base_url("ftp://loki").is_err());
        assert!(check_base_url("http://user:pw@loki:3100").unwrap_err().contains("credentials"));
        assert!(check_base_url("http://loki:3100/?orgid=1").is_err());
    }

    #[test]
    fn server_messages_from_text_or_json() {
        assert_eq!(
            AnswerError::from_status(400, b"parse error at line 1, col 7: syntax error: unexpected IDENTIFIER\n")
                .to_string(),
            "HTTP 400: parse error at line 1, col 7: syntax error: unexpected IDENTIFIER"
        );
        assert_eq!(
            AnswerError::from_status(401, br#"{"code":401,"message":"invalid token"}"#).to_string(),
            "HTTP 401: invalid token"
        );
        assert_eq!(AnswerError::from_status(502, b"").to_string(), "HTTP 502: (empty body)");
        let long = "x".repeat(1000);
        assert!(AnswerError::from_status(500, long.as_bytes()).to_string().len() < 320);
        assert!(!AnswerError::from_status(503, b"down").reachable());
        assert!(AnswerError::from_status(400, b"bad").reachable());
        assert!(!AnswerError::Timeout(Duration::from_millis(500)).reachable());
        assert_eq!(AnswerError::Timeout(Duration::from_millis(500)).to_string(), "no answer within 500ms");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut options = HttpOptions::new("loki", "http://loki:3100");
        options.headers.push(("X-Api-Key".to_owned(), "header-secret-81".to_owned()));
        options.authorization = Some(rules::remote::Authorization::Basic {
            username: "alertbook".to_owned(),
            password: "basic-secret-32".to_owned(),
        });
        let debug = format!("{options:?}");
        assert!(debug.contains("X-Api-Key") && debug.contains("alertbook"), "{debug}");
        assert!(!debug.contains("header-secret-81") && !debug.contains("basic-secret-32"), "{debug}");
    }
}
