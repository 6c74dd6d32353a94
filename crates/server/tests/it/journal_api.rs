//! The journal API's security through the router: no mutation without a
//! token or a session with its CSRF token, a viewer cannot acknowledge,
//! hostile filter values are plain values, `require_for_read` closes reads.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

async fn with_journal(require_for_read: bool) -> (tempfile::TempDir, Arc<server::AppState>, String, String) {
    let state = super::state();
    let (directory, responder, viewer) = super::with_journal_on(&state, require_for_read).await;
    (directory, state, responder, viewer)
}

async fn send(state: &Arc<server::AppState>, request: Request<Body>) -> (StatusCode, String) {
    let response = server::router(state.clone()).oneshot(request).await.expect("response");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn post(uri: &str, authorization: Option<&str>) -> Request<Body> {
    let mut builder = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = authorization {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::from("{}")).expect("request")
}

#[tokio::test]
async fn mutations_need_a_token_or_a_session_with_its_csrf_token() {
    let (_directory, state, responder, viewer) = with_journal(false).await;
    let ack = "/api/v1/alerts/0123456789abcdef/ack";
    assert_eq!(send(&state, post(ack, None)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&state, post(ack, Some("abt_forged"))).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = send(&state, post(ack, Some(&viewer))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a viewer cannot acknowledge: {body}");
    assert!(body.contains("needs the responder role"), "{body}");
    let (status, body) = send(&state, post(ack, Some(&responder))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a responder gets as far as the alert lookup: {body}");

    // A session: logging in sets an HttpOnly SameSite cookie; a POST without the CSRF token is refused.
    let login = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("user=rita&password=responder+password&next=/journal"))
        .expect("request");
    let response = server::router(state.clone()).oneshot(login).await.expect("response");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/journal");
    let cookie = response.headers()[header::SET_COOKIE].to_str().expect("cookie").to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && !cookie.contains("Secure"),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("pair").to_owned();
    let without_csrf = Request::post(ack).header(header::COOKIE, &session).body(Body::empty()).expect("request");
    let (status, body) = send(&state, without_csrf).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("CSRF"), "{body}");
    let wrong_csrf = Request::post(ack)
        .header(header::COOKIE, &session)
        .header("x-csrf-token", "0".repeat(64))
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&state, wrong_csrf).await.0, StatusCode::FORBIDDEN);
    // Reads with the session need no CSRF token.
    let read = Request::get("/api/v1/journal").header(header::COOKIE, &session).body(Body::empty()).expect("request");
    assert_eq!(send(&state, read).await.0, StatusCode::OK);

    let wrong_password = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("user=rita&password=nope"))
        .expect("request");
    assert_eq!(send(&state, wrong_password).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn hostile_filter_values_are_values_and_reads_can_be_closed() {
    let (_directory, state, _responder, viewer) = with_journal(true).await;
    let get = |uri: &str, token: Option<&str>| {
        let mut builder = Request::get(uri);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder.body(Body::empty()).expect("request")
    };
    let (status, body) = send(
        &state,
        get("/api/v1/journal?id=A6%27%20OR%20%271%27%3D%271%3B%20DROP%20TABLE%20revisions", Some(&viewer)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"entries\":[]"), "{body}");
    let (status, body) = send(&state, get("/api/v1/journal?since=1%20OR%201=1", Some(&viewer))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(send(&state, get("/api/v1/journal", None)).await.0, StatusCode::UNAUTHORIZED);
    // require_for_read: true closes the Prometheus API to anonymous reads.
    assert_eq!(send(&state, get("/api/v1/query?query=1", None)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&state, get("/api/v1/query?query=1", Some(&viewer))).await.0, StatusCode::OK);
    assert_eq!(send(&state, get("/-/healthy", None)).await.0, StatusCode::OK);
}
