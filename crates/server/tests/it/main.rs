//! The server's routes, driven through the router without a socket.

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

mod journal_api;
mod journal_ui;
mod loki_api;
mod loki_explore;
mod prometheus_api;
mod remote_write;
mod rules_api;
mod shape;
mod status_api;
mod tls;
mod ui;
mod write_token;

fn state() -> std::sync::Arc<server::AppState> {
    state_with(std::sync::Arc::new(tsdb::MemStore::new()))
}

fn state_with(store: std::sync::Arc<tsdb::MemStore>) -> std::sync::Arc<server::AppState> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow");
    let catalog = catalog::load(&root).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let durable = std::sync::Arc::new(ingest::durable::DurableStore::in_memory(store));
    server::AppState::new(catalog, durable, promql::Engine::default())
}

/// The journal and accounts over SQLite in a new temporary directory, set
/// on `state`, with two users, rita (responder, "responder password") and
/// vic (viewer, "viewer password 1"); returns the directory (keep it) and
/// their API tokens.
async fn with_journal_on(state: &server::AppState, require_for_read: bool) -> (tempfile::TempDir, String, String) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = state::Store::open_sqlite(directory.path()).await.expect("store");
    let accounts = accounts::Accounts::new(store.clone()).expect("accounts");
    accounts.add_user("rita", accounts::Role::Responder, "responder password", false, 1).await.expect("add");
    accounts.add_user("vic", accounts::Role::Viewer, "viewer password 1", false, 1).await.expect("add");
    let responder = accounts.create_token("rita", 2).await.expect("token");
    let viewer = accounts.create_token("vic", 2).await.expect("token");
    let journal = journal::Journal::new(
        store,
        journal::ClosingRules::from_catalog(&state.catalog()),
        journal::DEFAULT_REMIND_AFTER,
    );
    state.set_journal(std::sync::Arc::new(server::journal_api::JournalService {
        journal,
        accounts,
        require_for_read,
        secure_cookies: false,
    }));
    (directory, responder, viewer)
}

/// alertbook's server on a loopback port, for clients that need a socket.
struct Served {
    address: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), server::Error>>,
}

impl Served {
    async fn start(state: std::sync::Arc<server::AppState>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::serve_listener(listener, state, async move {
            let _ = stopped.await;
        }));
        Self { address, stop, task }
    }

    /// Stops the server and waits until it has shut down cleanly.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("server task").expect("server");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// A real Prometheus (Debian's `prometheus`) on `port`, with `config` as its
/// configuration and its data under `directory`; killed when dropped.
fn spawn_prometheus(directory: &Path, port: u16, config: &str) -> tokio::process::Child {
    let config_file = directory.join("prometheus.yml");
    std::fs::write(&config_file, config).expect("write config");
    tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config_file.display()))
        .arg(format!("--storage.tsdb.path={}", directory.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus is installed (Debian package prometheus; scripts/test installs it)")
}

async fn get(state: std::sync::Arc<server::AppState>, uri: &str) -> (StatusCode, String, String) {
    let response =
        server::router(state).oneshot(Request::get(uri).body(Body::empty()).expect("request")).await.expect("response");
    let status = response.status();
    let content_type =
        response.headers().get("content-type").and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (status, content_type, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn health_and_readiness() {
    let state = state();
    let (status, _, body) = get(state.clone(), "/-/healthy").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Healthy"));
    let (status, _, _) = get(state.clone(), "/-/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    state.set_ready();
    let (status, _, _) = get(state, "/-/ready").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn runbook_as_html_and_markdown() {
    let state = state();
    let (status, content_type, body) = get(state.clone(), "/runbook").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"));
    assert!(body.contains("<h2>A12 — StudioTraefikMultiNetworkRouting</h2>"), "{body}");

    let (status, content_type, by_id) = get(state.clone(), "/runbook/A3.md").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/markdown"));
    let (_, _, by_name) = get(state.clone(), "/runbook/PiiLeakDetected.md").await;
    assert_eq!(by_id, by_name);
    assert!(by_id.starts_with("## A3 — PiiLeakDetected"));

    let (status, _, html) = get(state.clone(), "/runbook/A3").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<title>A3 PiiLeakDetected</title>"));

    let (status, _, body) = get(state, "/runbook/A99").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("A99"));
}
