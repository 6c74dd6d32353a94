//! The state store against SQLite (a temporary directory) and against a real
//! PostgreSQL 15 (the throwaway cluster `scripts/peers/postgres.sh` starts and
//! names in ALERTBOOK_TEST_POSTGRES_URL; each test gets a database of its
//! own). The same checks run on both dialects.

use std::collections::BTreeMap;
use std::sync::Arc;

use sqlx::Connection;
use state::{EntryFilter, NewEpisode, NewRevision, StateError, Store};

const SHARED_URL: &str = "ALERTBOOK_TEST_POSTGRES_URL";

/// A fresh PostgreSQL database's URL; `None` (skip) only when ALERTBOOK_SKIP_PEERS=1.
async fn postgres_database() -> Option<String> {
    let url = match std::env::var(SHARED_URL) {
        Ok(url) => url,
        Err(_) if std::env::var("ALERTBOOK_SKIP_PEERS").as_deref() == Ok("1") => {
            eprintln!("skipped: ALERTBOOK_SKIP_PEERS=1 and no PostgreSQL");
            return None;
        }
        Err(_) => panic!(
            "{SHARED_URL} is not set: these tests need a real PostgreSQL; run scripts/test, or \
             `source scripts/peers/postgres.sh` in the shell before cargo test (ALERTBOOK_SKIP_PEERS=1 skips them)"
        ),
    };
    let name = format!(
        "state_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos()
    );
    let mut connection = sqlx::PgConnection::connect(&url).await.expect("connect to the test PostgreSQL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut connection)
        .await
        .expect("create a test database");
    let (base, _) = url.rsplit_once('/').expect("a URL with a database");
    Some(format!("{base}/{name}"))
}

fn episode(fingerprint: &str, started_at_ms: i64, by: &str) -> NewEpisode {
    NewEpisode {
        fingerprint: fingerprint.into(),
        started_at_ms,
        alert_id: "A6".into(),
        alertname: "LokiCompactorBehind".into(),
        labels: BTreeMap::from([("alertname".into(), "LokiCompactorBehind".into()), ("job".into(), "loki".into())]),
        acknowledged_by: by.into(),
        acknowledged_at_ms: started_at_ms + 60_000,
    }
}

fn revision(author: &str, at_ms: i64, root_cause: &str, contract_changed: bool) -> NewRevision {
    NewRevision {
        author: author.into(),
        written_at_ms: at_ms,
        alert_id: "A6".into(),
        root_cause: root_cause.into(),
        remediation: "no-op, transient".into(),
        contract_changed,
        contract: contract_changed.then(|| "log-retention".into()),
        contract_pr: contract_changed.then(|| "https://git.example/busflow/pull/7".into()),
        triage: serde_json::json!([{"time_ms": at_ms, "path": "compactor-unhealthy"}]),
        timeline: serde_json::json!([{"event": "closed", "by": author}]),
    }
}

async fn lifecycle(store: &Store) {
    let first = store.acknowledge(&episode("f1", 1_000_000, "alice")).await.expect("acknowledge");
    assert_eq!(first.acknowledged_by, "alice");
    assert_eq!(first.latest_revision, 0);
    assert_eq!(first.labels["job"], "loki");
    match store.acknowledge(&episode("f1", 1_000_000, "bob")).await {
        Err(StateError::AlreadyAcknowledged(existing)) => assert_eq!(existing.acknowledged_by, "alice"),
        other => panic!("a second acknowledgement of one episode must be refused: {other:?}"),
    }
    assert_eq!(store.open_episodes().await.expect("open").len(), 1);
    store.mark_resolved(first.id, 1_500_000).await.expect("resolve");
    store.mark_resolved(first.id, 1_600_000).await.expect("resolve again");
    store.mark_reminded(first.id, 1_700_000).await.expect("remind");
    let stored = store.episode(first.id).await.expect("read").expect("episode");
    assert_eq!(stored.resolved_at_ms, Some(1_500_000), "the first resolution time stays");
    assert_eq!(stored.reminded_at_ms, Some(1_700_000));

    let closed =
        store.append_revision(first.id, 0, &revision("alice", 2_000_000, "disk full", false)).await.expect("close");
    assert_eq!(closed.revision, 1);
    assert!(store.open_episodes().await.expect("open").is_empty());
    match store.append_revision(first.id, 0, &revision("bob", 2_000_001, "something else", false)).await {
        Err(StateError::Conflict { current }) => {
            assert_eq!(current.revision, 1);
            assert_eq!(current.root_cause, "disk full");
        }
        other => panic!("a stale expected revision must conflict: {other:?}"),
    }
    let corrected = store
        .append_revision(first.id, 1, &revision("bob", 3_000_000, "disk full on loki-0", true))
        .await
        .expect("correct");
    assert_eq!(corrected.revision, 2);
    let revisions = store.revisions(first.id).await.expect("revisions");
    assert_eq!(
        revisions.iter().map(|revision| (revision.revision, revision.author.as_str())).collect::<Vec<_>>(),
        [(1, "alice"), (2, "bob")]
    );
    assert_eq!(revisions[0].root_cause, "disk full", "earlier revisions are kept unchanged");
    assert_eq!(revisions[0].triage[0]["path"], "compactor-unhealthy");

    // A re-fire is a new episode of the same alert instance.
    let second = store.acknowledge(&episode("f1", 5_000_000, "carol")).await.expect("acknowledge the re-fire");
    assert_ne!(second.id, first.id);
    assert_eq!(store.latest_episode("f1").await.expect("latest").expect("some").id, second.id);
    assert_eq!(store.open_episodes().await.expect("open")[0].id, second.id);
    store.append_revision(second.id, 0, &revision("carol", 6_000_000, "network blip", false)).await.expect("close");

    let all = store.entries(&EntryFilter::default()).await.expect("entries");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].episode.id, second.id, "newest close first");
    assert_eq!(all[1].closed_by, "alice");
    assert_eq!(all[1].closed_at_ms, 2_000_000);
    assert_eq!(all[1].latest.revision, 2);
    assert_eq!(all[1].latest.root_cause, "disk full on loki-0");
    let filtered = |filter: EntryFilter| async move {
        store.entries(&filter).await.expect("entries").iter().map(|row| row.episode.id).collect::<Vec<_>>()
    };
    assert_eq!(filtered(EntryFilter { contract_changed: Some(true), ..Default::default() }).await, [first.id]);
    assert_eq!(filtered(EntryFilter { contract_changed: Some(false), ..Default::default() }).await, [second.id]);
    assert_eq!(filtered(EntryFilter { since_ms: Some(5_000_000), ..Default::default() }).await, [second.id]);
    assert_eq!(filtered(EntryFilter { until_ms: Some(2_000_000), ..Default::default() }).await, [first.id]);
    assert_eq!(
        filtered(EntryFilter { alert_id: Some("A6".into()), limit: Some(1), ..Default::default() }).await,
        [second.id]
    );
    assert_eq!(filtered(EntryFilter { episode_id: Some(first.id), ..Default::default() }).await, [first.id]);
    assert!(filtered(EntryFilter { alert_id: Some("A1".into()), ..Default::default() }).await.is_empty());
}

/// Filter values are bound parameters: SQL in them is compared as text.
async fn hostile_filters(store: &Store) {
    let episode = store.acknowledge(&episode("f2", 1_000, "alice")).await.expect("acknowledge");
    store.append_revision(episode.id, 0, &revision("alice", 2_000, "x", false)).await.expect("close");
    for hostile in
        ["A6' OR '1'='1", "A6'; DROP TABLE revisions; --", "A6\" OR 1=1 --", "$1", "A6) OR (1=1", "%", "A6\0"]
    {
        let rows = store.entries(&EntryFilter { alert_id: Some(hostile.into()), ..Default::default() }).await;
        match rows {
            Ok(rows) => assert!(rows.is_empty(), "{hostile:?} matched {} rows", rows.len()),
            // PostgreSQL refuses a NUL byte in text: an error, not an injection.
            Err(error) => assert!(hostile.contains('\0'), "{hostile:?}: {error}"),
        }
    }
    assert_eq!(store.entries(&EntryFilter::default()).await.expect("entries").len(), 3, "the tables are intact");
}

/// Of many responders closing one episode at once, exactly one wins.
async fn concurrent_closes(store: &Store) {
    let episode = store.acknowledge(&episode("f3", 10_000, "alice")).await.expect("acknowledge");
    let store = Arc::new(store.clone());
    let mut tasks = Vec::new();
    for responder in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .append_revision(episode.id, 0, &revision(&format!("responder{responder}"), 20_000, "race", false))
                .await
        }));
    }
    let mut won = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(revision) => won.push(revision),
            Err(StateError::Conflict { current }) => {
                assert_eq!(current.revision, 1);
                conflicts += 1;
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one close wins");
    assert_eq!(conflicts, 7);
    let revisions = store.revisions(episode.id).await.expect("revisions");
    assert_eq!(revisions.len(), 1);
    assert_eq!(revisions[0].author, won[0].author);
}

async fn accounts(store: &Store) {
    store.add_user("alice", "responder", "$argon2id$stub", 1).await.expect("add");
    assert!(matches!(store.add_user("alice", "viewer", "x", 2).await, Err(StateError::UserExists(_))));
    store.update_user("alice", "admin", "$argon2id$other").await.expect("update");
    assert!(matches!(store.update_user("nobody", "admin", "x").await, Err(StateError::NoUser(_))));
    let alice = store.user("alice").await.expect("read").expect("alice");
    assert_eq!(alice.role, "admin");
    assert!(!format!("{alice:?}").contains("argon2"), "Debug leaves the hash out");
    store.add_token("tokenhash", "alice", 3).await.expect("token");
    assert!(matches!(store.add_token("other", "nobody", 3).await, Err(StateError::NoUser(_))));
    assert_eq!(store.token_user("tokenhash").await.expect("read").expect("user").name, "alice");
    assert!(store.token_user("' OR 1=1 --").await.expect("read").is_none());
    store.add_session("sessionhash", "alice", "csrf", 10, 100).await.expect("session");
    let session = store.session("sessionhash", 50).await.expect("read").expect("live");
    assert_eq!(session.csrf_token, "csrf");
    assert!(store.session("sessionhash", 100).await.expect("read").is_none(), "expired");
    store.delete_session("sessionhash", 50).await.expect("delete");
    assert!(store.session("sessionhash", 50).await.expect("read").is_none());
    assert_eq!(store.users().await.expect("users").len(), 1);
}

async fn sqlite_store() -> (tempfile::TempDir, Store) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = Store::open_sqlite(directory.path()).await.expect("open SQLite");
    (directory, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_lifecycle_filters_races_and_accounts() {
    let (directory, store) = sqlite_store().await;
    assert_eq!(store.dialect(), "sqlite");
    lifecycle(&store).await;
    hostile_filters(&store).await;
    concurrent_closes(&store).await;
    accounts(&store).await;
    // WAL mode: the database keeps a write-ahead log beside it.
    let mut connection =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", directory.path().join(state::SQLITE_FILE).display()))
            .await
            .expect("connect");
    let mode: (String,) = sqlx::query_as("PRAGMA journal_mode").fetch_one(&mut connection).await.expect("pragma");
    assert_eq!(mode.0, "wal");
    store.close().await;
    // Reopening migrates nothing twice and keeps the data.
    let reopened = Store::open_sqlite(directory.path()).await.expect("reopen");
    assert_eq!(reopened.entries(&EntryFilter::default()).await.expect("entries").len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_lifecycle_filters_races_and_accounts() {
    let Some(url) = postgres_database().await else { return };
    let store = Store::open_postgres(&url).await.expect("open PostgreSQL");
    assert_eq!(store.dialect(), "postgres");
    lifecycle(&store).await;
    hostile_filters(&store).await;
    concurrent_closes(&store).await;
    accounts(&store).await;
    store.close().await;
    let reopened = Store::open_postgres(&url).await.expect("reopen");
    assert_eq!(reopened.entries(&EntryFilter::default()).await.expect("entries").len(), 4);
}

#[tokio::test]
async fn a_bad_postgres_url_names_no_secret() {
    let error =
        Store::open_postgres("postgres://reader:hunter2-secret@127.0.0.1:1/busflow").await.expect_err("refused");
    let message = error.to_string();
    assert!(!message.contains("hunter2-secret"), "{message}");
    assert!(message.contains("reader@127.0.0.1:1/busflow"), "{message}");
    let error = Store::open_postgres("mysql://x").await.expect_err("not postgres");
    assert!(error.to_string().contains("not a PostgreSQL URL"), "{error}");
}
