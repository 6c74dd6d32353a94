//! Request parameters shared by the Prometheus and Loki APIs: the URL's query
//! string and, for POST, a form-encoded body; and the `{"status":"success",
//! "data":[...]}` list both APIs answer metadata requests with. Each API adds
//! its own parameter types (timestamps, durations) and error shape.

use axum::body::Bytes;
use axum::http::{HeaderMap, header};

use crate::json;

/// Request parameters in request order, query string first.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// The parameters of a request; the error names a body that is not a form.
    pub(crate) fn parse(raw_query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Result<Self, String> {
        let mut pairs: Vec<(String, String)> = raw_query
            .as_deref()
            .map(|query| form_urlencoded::parse(query.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        if !body.is_empty() {
            let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("");
            if !content_type.starts_with("application/x-www-form-urlencoded") {
                return Err(format!(
                    "unsupported request body of type {content_type:?}: send parameters as application/x-www-form-urlencoded"
                ));
            }
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        Ok(Self(pairs))
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// Every value of `name` (`match[]` may repeat).
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(key, _)| key == name).map(|(_, value)| value.as_str()).collect()
    }
}

/// `{"status":"success","data":[...]}` of the sorted, de-duplicated items, cut
/// at `limit` with Prometheus's truncation warning.
pub(crate) fn list_response<T: Ord>(
    mut items: Vec<T>,
    limit: Option<usize>,
    write_item: impl Fn(&mut String, &T),
) -> String {
    items.sort();
    items.dedup();
    let truncated = limit.is_some_and(|limit| items.len() > limit);
    if let Some(limit) = limit {
        items.truncate(limit);
    }
    let mut body = String::from("{\"status\":\"success\",\"data\":[");
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        write_item(&mut body, item);
    }
    body.push(']');
    if truncated {
        body.push_str(",\"warnings\":[\"results truncated due to limit\"]");
    }
    body.push('}');
    body
}

pub(crate) fn string_list_response(values: Vec<String>, limit: Option<usize>) -> String {
    list_response(values, limit, |out, value| json::write_string(out, value))
}
