//! Who may write through the ingest endpoints (`POST /api/v1/write`,
//! `POST /loki/api/v1/push`).
//!
//! [`WriteAuthorized`] is an extractor those handlers take before their
//! body, so a refused request is answered before its body is read. Without a
//! write token ([`AppState::set_write_token`]) every request passes, as
//! Prometheus and Loki receivers do by default. With one, a request passes
//! when it sends `Authorization: Bearer <the write token>` (SHA-256 digests
//! compared in constant time; the token itself is not kept), or the API token of a user whose role is responder or
//! admin (when accounts are configured); session cookies are not taken, as
//! shippers have none and browsers should not write here. Otherwise 401
//! (403 for a viewer's token), in plain text as Prometheus and Loki answer
//! their errors; the message never echoes what was sent.

// Extractors reject with a ready `Response`, as axum does.
#![allow(clippy::result_large_err)]
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::auth::{Credential, Principal, Role};

/// The write token, kept only as its SHA-256 (so requests are compared in
/// constant time whatever their length); its `Debug` shows nothing.
#[derive(Clone)]
pub(crate) struct WriteToken(Arc<str>);

impl WriteToken {
    pub(crate) fn new(token: String) -> Self {
        Self(Arc::from(accounts::secret_hash(&token)))
    }

    fn matches(&self, sent: &str) -> bool {
        accounts::secrets_equal(&accounts::secret_hash(sent), &self.0)
    }
}

impl std::fmt::Debug for WriteToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("WriteToken(<secret>)")
    }
}

/// Proof that a request may write (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct WriteAuthorized;

/// The token of an `Authorization: Bearer` header (the scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|token| !token.is_empty())
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut response =
        (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{message}\n")).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

impl FromRequestParts<Arc<AppState>> for WriteAuthorized {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let Some(expected) = state.write_token() else { return Ok(WriteAuthorized) };
        let Some(sent) = bearer(&parts.headers) else {
            tracing::debug!(path = %parts.uri.path(), "write without a token refused");
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                "unauthorized: this server takes writes with a token only (Authorization: Bearer)",
            ));
        };
        if expected.matches(sent) {
            return Ok(WriteAuthorized);
        }
        if state.journal().is_some() {
            // Not the write token: perhaps a user's API token (the bearer header
            // is what `Principal` reads first, so no cookie is consulted).
            match Principal::from_request_parts(parts, state).await {
                Ok(principal) if principal.credential == Credential::Token && principal.role >= Role::Responder => {
                    return Ok(WriteAuthorized);
                }
                Ok(principal) if principal.credential == Credential::Token => {
                    return Err(refuse(
                        StatusCode::FORBIDDEN,
                        &format!(
                            "forbidden: {} is a {}: writing needs the responder role",
                            principal.name, principal.role
                        ),
                    ));
                }
                Ok(_) => {}
                Err(response) if response.status() == StatusCode::UNAUTHORIZED => {}
                Err(response) => return Err(response),
            }
        }
        tracing::debug!(path = %parts.uri.path(), "write with a wrong token refused");
        Err(refuse(StatusCode::UNAUTHORIZED, "unauthorized: the write token is wrong"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_read_in_any_case_of_the_scheme() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert_eq!(bearer(&headers), Some("s3cret"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  s3cret "));
        assert_eq!(bearer(&headers), Some("s3cret"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwYXNz"));
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&headers), None);
    }
}
