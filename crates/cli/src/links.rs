//! alertbook's external URL: the URL under which it is reachable from outside
//! (`--web.external-url`, `external_url:` in alertbook.yaml), Prometheus's flag
//! with Prometheus's meaning. It is the base of every link alertbook sends or
//! renders: alerts' generatorURL, notification payloads' externalURL and their
//! silence links, reminders, and `{{ $externalURL }}` in rule annotation
//! templates, which the catalog's `runbook_url` annotations are built from.
//!
//! As Prometheus's `computeExternalURL`, a trailing `/` is dropped; without one
//! configured it is `http://<listen>` (`https://` under TLS). Today alertbook
//! serves at `/` whatever the URL's path: behind a proxy that serves it under a
//! path prefix, the proxy strips the prefix (serving under the path itself,
//! Prometheus's `--web.route-prefix`, is planned).

/// Checks `text` as an external URL and returns it without a trailing `/`.
pub fn normalize(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if trimmed.starts_with(['"', '\'']) || trimmed.ends_with(['"', '\'']) {
        return Err("the URL must not begin or end with quotes".to_owned());
    }
    let parsed = url::Url::parse(trimmed).map_err(|error| format!("{trimmed:?} is not a URL: {error}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{trimmed:?} must be an http:// or https:// URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{trimmed:?} has no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("{trimmed:?} must not have a query or a fragment"));
    }
    Ok(trimmed.trim_end_matches('/').to_owned())
}

/// The external URL of `alertbook run`: the flag, else the configuration's, else
/// `http://<listen>` (`https://` when `tls`).
pub fn external_url(
    flag: Option<&str>,
    configured: Option<&str>,
    listen: std::net::SocketAddr,
    tls: bool,
) -> anyhow::Result<String> {
    match flag {
        Some(text) => normalize(text).map_err(|message| anyhow::anyhow!("--web.external-url: {message}")),
        None => Ok(configured.map_or_else(
            || format!("{}://{listen}", if tls { "https" } else { "http" }),
            |url| url.trim_end_matches('/').to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_urls_drop_the_trailing_slash_and_keep_the_path() {
        assert_eq!(normalize("https://alertbook.example/").unwrap(), "https://alertbook.example");
        assert_eq!(normalize("https://example.org/alertbook/").unwrap(), "https://example.org/alertbook");
        assert_eq!(normalize("http://10.0.0.5:9099").unwrap(), "http://10.0.0.5:9099");
    }

    #[test]
    fn bad_external_urls_are_refused_with_the_reason() {
        assert!(normalize("alertbook.example").unwrap_err().contains("is not a URL"));
        assert!(normalize("ftp://alertbook.example").unwrap_err().contains("http:// or https://"));
        assert!(normalize("\"https://alertbook.example\"").unwrap_err().contains("quotes"));
        assert!(normalize("https://alertbook.example/?a=b").unwrap_err().contains("query"));
    }

    #[test]
    fn the_default_follows_listen_and_tls() {
        let listen = "127.0.0.1:9099".parse().unwrap();
        assert_eq!(external_url(None, None, listen, false).unwrap(), "http://127.0.0.1:9099");
        assert_eq!(external_url(None, None, listen, true).unwrap(), "https://127.0.0.1:9099");
        assert_eq!(external_url(None, Some("https://a.example"), listen, false).unwrap(), "https://a.example");
        assert_eq!(
            external_url(Some("https://b.example/"), Some("https://a.example"), listen, false).unwrap(),
            "https://b.example"
        );
        assert!(
            external_url(Some("b.example"), None, listen, false)
                .unwrap_err()
                .to_string()
                .starts_with("--web.external-url")
        );
    }
}
