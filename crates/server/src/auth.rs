//! Who a request acts as, for the journal API and the web UI.
//!
//! The API other modules build on:
//! - [`Principal`] (`name`, `role`): an axum extractor. It accepts a bearer
//!   token (`Authorization: Bearer abt_…`, `alertbook token create`) or the
//!   session cookie set by `POST /login`. For a method other than GET, HEAD
//!   or OPTIONS with a session, it also requires the session's CSRF token in
//!   the `X-CSRF-Token` header; without one the request is refused (403).
//!   Missing or unknown credentials: 401.
//! - [`FormPrincipal`]: the same for HTML form posts, whose CSRF token comes
//!   in the body: the handler gets a [`Principal`] only through
//!   [`FormPrincipal::verify_csrf`] with the submitted `csrf_token` field.
//! - [`csrf_token`]: the token a page puts in its forms (a hidden
//!   `csrf_token` input) or a script sends as `X-CSRF-Token`.
//! - `GET /login` (a plain form in the web UI's layout), `POST /login` (user, password, next;
//!   sets an HttpOnly, SameSite=Strict cookie, Secure when served over TLS;
//!   rate limited per user name and client address), `POST /logout`.
//! - [`require_for_read`]: the middleware that closes the read APIs when
//!   `auth.require_for_read: true`.
//!
//! Roles are checked by the handlers ([`Principal::require`]). Tokens,
//! passwords and session secrets are never logged.

// Handlers and extractors reject with a ready `Response`, as axum does.
#![allow(clippy::result_large_err)]
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Form, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::AppState;
use crate::journal_api::{JournalService, error_json};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "alertbook_session";
/// The header a script sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

pub use accounts::Role;

/// How a request was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A bearer API token (no CSRF: browsers never attach it by themselves).
    Token,
    /// A session cookie, with the session's CSRF token.
    Session { csrf_token: String },
}

/// Who a request acts as (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub credential: Credential,
}

impl Principal {
    /// `Ok` when the principal's role allows `needed` (403 otherwise).
    pub fn require(&self, needed: Role) -> Result<(), Response> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(error_json(
                StatusCode::FORBIDDEN,
                "forbidden",
                &format!("{} is a {}: this needs the {} role", self.name, self.role, needed),
            ))
        }
    }
}

/// The CSRF token a page of this session puts in its forms; `None` for token requests.
pub fn csrf_token(principal: &Principal) -> Option<&str> {
    match &principal.credential {
        Credential::Session { csrf_token } => Some(csrf_token),
        Credential::Token => None,
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response = error_json(StatusCode::UNAUTHORIZED, "unauthorized", message);
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn service(state: &AppState) -> Result<Arc<JournalService>, Response> {
    state.journal().ok_or_else(|| {
        error_json(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the journal and accounts are not configured")
    })
}

/// The value of the session cookie, if the request carries one.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// Authenticates without any CSRF check: `Ok(None)` when the request has no credentials.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Option<Principal>, Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")));
    let cookie = session_cookie(headers);
    if bearer.is_none() && cookie.is_none() {
        return Ok(None);
    }
    let service = service(state)?;
    let failed = |error: accounts::AccountError| {
        tracing::error!(error = %error, "authentication failed");
        error_json(StatusCode::INTERNAL_SERVER_ERROR, "internal", "authentication failed")
    };
    if let Some(token) = bearer {
        return match service.accounts.authenticate_token(token).await.map_err(failed)? {
            Some(principal) => {
                Ok(Some(Principal { name: principal.name, role: principal.role, credential: Credential::Token }))
            }
            None => Err(unauthorized("unknown API token")),
        };
    }
    let token = cookie.unwrap_or_default();
    match service.accounts.session(&token, crate::journal_api::now_ms()).await.map_err(failed)? {
        Some((principal, csrf_token)) => Ok(Some(Principal {
            name: principal.name,
            role: principal.role,
            credential: Credential::Session { csrf_token },
        })),
        None => Err(unauthorized("the session has expired: log in again")),
    }
}

/// Who a page request comes from, for the layout and what the page offers:
/// `None` without credentials, or with an expired session or unknown token
/// (a page is then shown as to a visitor; mutations still refuse).
pub(crate) async fn page_principal(state: &AppState, headers: &HeaderMap) -> Option<Principal> {
    authenticate(state, headers).await.ok().flatten()
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let principal = authenticate(state, &parts.headers)
            .await?
            .ok_or_else(|| unauthorized("log in, or send an API token as Authorization: Bearer"))?;
        if let Credential::Session { csrf_token } = &principal.credential
            && !is_safe(&parts.method)
        {
            let sent = parts.headers.get(CSRF_HEADER).and_then(|value| value.to_str().ok()).unwrap_or("");
            if !accounts::secrets_equal(sent, csrf_token) {
                return Err(error_json(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "a session request that changes something needs its CSRF token (X-CSRF-Token)",
                ));
            }
        }
        Ok(principal)
    }
}

/// The principal of an HTML form post, before its CSRF token is checked.
#[derive(Debug, Clone)]
pub struct FormPrincipal(Principal);

impl FormPrincipal {
    /// The principal, once the form's `csrf_token` field matches the session's
    /// (token requests need none).
    pub fn verify_csrf(self, submitted: Option<&str>) -> Result<Principal, Response> {
        match &self.0.credential {
            Credential::Token => Ok(self.0),
            Credential::Session { csrf_token } if accounts::secrets_equal(submitted.unwrap_or(""), csrf_token) => {
                Ok(self.0)
            }
            Credential::Session { .. } => Err(error_json(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the form's CSRF token is missing or stale: reload the page",
            )),
        }
    }
}

impl FromRequestParts<Arc<AppState>> for FormPrincipal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let principal = authenticate(state, &parts.headers).await?.ok_or_else(|| unauthorized("log in first"))?;
        Ok(FormPrincipal(principal))
    }
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/login", get(login_page).post(login)).route("/logout", post(logout))
}

#[derive(Debug, Default, Deserialize)]
struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

/// Only a local path: no scheme, no host (`//x`), no backslash tricks.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains(['\\', '\r', '\n']) => {
            path.to_owned()
        }
        _ => "/".into(),
    }
}

/// The login page in the web UI's layout, answering with `status`.
fn login_form(state: &AppState, next: &str, message: Option<&str>, status: StatusCode) -> Response {
    crate::ui::page(web::login::render(&state.catalog().title, next, message, status.as_u16()))
}

async fn login_page(State(state): State<Arc<AppState>>, Query(query): Query<LoginQuery>) -> Response {
    login_form(&state, &safe_next(query.next.as_deref()), None, StatusCode::OK)
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// Whether a login post comes from this site: when the browser names an
/// origin, its host must be the one it asked (login CSRF).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()) else { return true };
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok()).unwrap_or("");
    origin.split_once("://").map(|(_, rest)| rest.trim_end_matches('/')) == Some(host)
}

async fn login(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let headers = request.headers().clone();
    let form = match Form::<LoginForm>::from_request(request, &state).await {
        Ok(Form(form)) => form,
        Err(rejection) => return rejection.into_response(),
    };
    let next = safe_next(form.next.as_deref());
    if !same_origin(&headers) {
        return login_form(&state, &next, Some("cross-site login refused"), StatusCode::FORBIDDEN);
    }
    let service = match service(&state) {
        Ok(service) => service,
        Err(response) => return response,
    };
    match service.accounts.login(&form.user, &form.password, &client, crate::journal_api::now_ms()).await {
        Ok(session) => {
            let secure = if service.secure_cookies { "; Secure" } else { "" };
            let cookie = format!(
                "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                session.token,
                accounts::SESSION_LIFETIME.as_secs()
            );
            let mut response = Redirect::to(&next).into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(accounts::AccountError::WrongCredentials) => {
            login_form(&state, &next, Some("wrong user name or password"), StatusCode::UNAUTHORIZED)
        }
        Err(error @ accounts::AccountError::RateLimited { .. }) => {
            login_form(&state, &next, Some(&error.to_string()), StatusCode::TOO_MANY_REQUESTS)
        }
        Err(error) => {
            tracing::error!(error = %error, "login failed");
            login_form(&state, &next, Some("login failed"), StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf_token: Option<String>,
}

async fn logout(
    State(state): State<Arc<AppState>>,
    principal: FormPrincipal,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let submitted =
        form.csrf_token.or_else(|| headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned));
    if let Err(response) = principal.verify_csrf(submitted.as_deref()) {
        return response;
    }
    if let (Ok(service), Some(token)) = (service(&state), session_cookie(&headers))
        && let Err(error) = service.accounts.logout(&token, crate::journal_api::now_ms()).await
    {
        tracing::error!(error = %error, "logout failed");
    }
    let mut response = Redirect::to("/login").into_response();
    let secure = state.journal().is_some_and(|service| service.secure_cookies);
    let cookie = format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Whether a path is one of the read APIs `auth.require_for_read` closes.
fn is_read_api(path: &str) -> bool {
    ["/api/", "/loki/api/", "/federate"].iter().any(|prefix| path.starts_with(prefix))
        && !path.starts_with("/api/v1/write")
        && path != "/loki/api/v1/push"
}

/// With `auth.require_for_read: true`, the read APIs answer only
/// authenticated requests (any role); otherwise they stay open.
pub async fn require_for_read(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let closed = state.journal().is_some_and(|service| service.require_for_read);
    if closed && is_read_api(request.uri().path()) {
        match authenticate(&state, request.headers()).await {
            Ok(Some(_)) => {}
            Ok(None) => return unauthorized("this server requires authentication for reads"),
            Err(response) => return response,
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/journal?id=A6")), "/journal?id=A6");
        for hostile in ["https://evil.example/", "//evil.example", "/\\evil", "javascript:alert(1)"] {
            assert_eq!(safe_next(Some(hostile)), "/", "{hostile}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("theme=dark; alertbook_session=abc123; x=y"));
        assert_eq!(session_cookie(&headers).as_deref(), Some("abc123"));
        headers.insert(header::COOKIE, HeaderValue::from_static("alertbook_session_other=1"));
        assert_eq!(session_cookie(&headers), None);
    }

    #[test]
    fn read_apis_are_told_from_writes() {
        assert!(is_read_api("/api/v1/query") && is_read_api("/loki/api/v1/query_range") && is_read_api("/federate"));
        assert!(!is_read_api("/api/v1/write") && !is_read_api("/loki/api/v1/push") && !is_read_api("/-/ready"));
        assert!(!is_read_api("/login"));
    }
}
