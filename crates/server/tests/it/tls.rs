//! The whole router over HTTPS (`serve_tls_listener`): a Loki live tail
//! upgrades to a WebSocket over TLS and streams what is pushed, and the
//! server stops cleanly.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::StreamExt;
use tower::ServiceExt;

/// A leaf for localhost signed by a fresh CA: its files and a client trusting the CA.
fn pki(directory: &std::path::Path) -> (server::TlsFiles, tokio_rustls::TlsConnector) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().expect("key")).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("leaf parameters")
        .signed_by(&key, &ca)
        .expect("sign");
    let files = server::TlsFiles { cert: directory.join("cert.pem"), key: directory.join("key.pem") };
    std::fs::write(&files.cert, leaf.pem()).expect("write");
    std::fs::write(&files.key, key.serialize_pem()).expect("write");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (files, tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[tokio::test]
async fn a_live_tail_streams_over_tls() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let state = super::loki_api::state_with_logs(&directory.path().join("logs"));
    let (files, connector) = pki(directory.path());
    let tls = server::ServerTls::load(&files).expect("certificate and key");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server::serve_tls_listener(listener, state.clone(), tls, async move {
        let _ = stopped.await;
    }));

    let tcp = tokio::net::TcpStream::connect(address).await.expect("connect");
    let stream = connector
        .connect(rustls::pki_types::ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake");
    let url = "wss://localhost/loki/api/v1/tail?query=%7Bjob%3D%22faro%22%7D";
    let (mut client, response) = tokio_tungstenite::client_async(url, stream).await.expect("websocket over TLS");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
    let body = serde_json::json!({"streams": [{"stream": {"job": "faro"}, "values": [[now.to_string(), "over TLS"]]}]});
    // The tail subscribes once upgraded: push until a frame with the line arrives.
    let line = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let push = Request::post("/loki/api/v1/push")
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .expect("request");
            let pushed = server::router(state.clone()).oneshot(push).await.expect("response");
            assert_eq!(pushed.status(), StatusCode::NO_CONTENT);
            let frame = tokio::time::timeout(Duration::from_millis(1500), client.next()).await;
            if let Ok(Some(Ok(message))) = frame {
                let text = message.into_text().expect("text frame");
                if text.contains("over TLS") {
                    return text.to_string();
                }
            }
        }
    })
    .await
    .expect("the pushed line reaches the tail");
    let frame: serde_json::Value = serde_json::from_str(&line).expect("JSON frame");
    assert_eq!(frame["streams"][0]["stream"]["job"], "faro", "{line}");

    drop(client);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("stopped in time")
        .expect("server task")
        .expect("server");
}
