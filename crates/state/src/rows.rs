//! The rows the store reads and writes, and their decoding from either
//! dialect's rows (the same column names and types in both).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::StateError;

/// An acknowledged firing episode of one alert instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub id: i64,
    /// The alert instance (`triage::fingerprint` of its labels).
    pub fingerprint: String,
    /// When this firing episode began (the alert's `activeAt`).
    pub started_at_ms: i64,
    /// The runbook ID, such as A3.
    pub alert_id: String,
    pub alertname: String,
    pub labels: BTreeMap<String, String>,
    pub acknowledged_by: String,
    pub acknowledged_at_ms: i64,
    /// When alertbook saw the alert stop firing, if it did.
    pub resolved_at_ms: Option<i64>,
    /// When the last reminder about the missing entry went out.
    pub reminded_at_ms: Option<i64>,
    /// The latest revision of its journal entry; 0 while it has none.
    pub latest_revision: i64,
}

/// What an acknowledgement records.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEpisode {
    pub fingerprint: String,
    pub started_at_ms: i64,
    pub alert_id: String,
    pub alertname: String,
    pub labels: BTreeMap<String, String>,
    pub acknowledged_by: String,
    pub acknowledged_at_ms: i64,
}

/// One revision of a journal entry, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    pub episode_id: i64,
    pub revision: i64,
    pub author: String,
    pub written_at_ms: i64,
    pub alert_id: String,
    pub root_cause: String,
    pub remediation: String,
    pub contract_changed: bool,
    pub contract: Option<String>,
    pub contract_pr: Option<String>,
    /// The alert's triage runs linked to the entry (JSON written by the journal crate).
    pub triage: serde_json::Value,
    /// The episode's timeline when the revision was written.
    pub timeline: serde_json::Value,
}

/// What a revision records (the number is the store's to assign).
#[derive(Debug, Clone, PartialEq)]
pub struct NewRevision {
    pub author: String,
    pub written_at_ms: i64,
    pub alert_id: String,
    pub root_cause: String,
    pub remediation: String,
    pub contract_changed: bool,
    pub contract: Option<String>,
    pub contract_pr: Option<String>,
    pub triage: serde_json::Value,
    pub timeline: serde_json::Value,
}

/// A journal entry as listed: the episode, who closed it and when (its first
/// revision), and its latest revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalRow {
    pub episode: Episode,
    pub closed_by: String,
    pub closed_at_ms: i64,
    pub latest: Revision,
}

/// Which journal entries to list; every field narrows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntryFilter {
    /// The runbook ID (A3).
    pub alert_id: Option<String>,
    /// One entry by its episode id.
    pub episode_id: Option<i64>,
    /// Closed at or after (Unix milliseconds).
    pub since_ms: Option<i64>,
    /// Closed at or before (Unix milliseconds).
    pub until_ms: Option<i64>,
    pub contract_changed: Option<bool>,
    /// At most this many (default 1000).
    pub limit: Option<i64>,
}

/// A local user.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    /// `viewer`, `responder` or `admin`.
    pub role: String,
    /// The argon2id PHC string.
    pub password_hash: String,
    pub created_at_ms: i64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("User").field("name", &self.name).field("role", &self.role).finish_non_exhaustive()
    }
}

/// A live session: its user and CSRF token.
#[derive(Clone, PartialEq)]
pub struct Session {
    pub user: User,
    pub csrf_token: String,
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Session").field("user", &self.user).finish_non_exhaustive()
    }
}

fn get<'r, R, T>(row: &'r R, column: &str) -> Result<T, StateError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get::<T, _>(column).map_err(StateError::from)
}

fn json<T: serde::de::DeserializeOwned>(text: &str, what: &'static str) -> Result<T, StateError> {
    serde_json::from_str(text).map_err(|error| StateError::Json { what, message: error.to_string() })
}

pub(crate) fn episode<'r, R>(row: &'r R) -> Result<Episode, StateError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let labels: String = get(row, "labels")?;
    Ok(Episode {
        id: get(row, "id")?,
        fingerprint: get(row, "fingerprint")?,
        started_at_ms: get(row, "started_at_ms")?,
        alert_id: get(row, "alert_id")?,
        alertname: get(row, "alertname")?,
        labels: json(&labels, "labels")?,
        acknowledged_by: get(row, "acknowledged_by")?,
        acknowledged_at_ms: get(row, "acknowledged_at_ms")?,
        resolved_at_ms: get(row, "resolved_at_ms")?,
        reminded_at_ms: get(row, "reminded_at_ms")?,
        latest_revision: get(row, "latest_revision")?,
    })
}

pub(crate) fn revision<'r, R>(row: &'r R) -> Result<Revision, StateError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    let triage: String = get(row, "triage")?;
    let timeline: String = get(row, "timeline")?;
    Ok(Revision {
        episode_id: get(row, "episode_id")?,
        revision: get(row, "revision")?,
        author: get(row, "author")?,
        written_at_ms: get(row, "written_at_ms")?,
        alert_id: get(row, "alert_id")?,
        root_cause: get(row, "root_cause")?,
        remediation: get(row, "remediation")?,
        contract_changed: get(row, "contract_changed")?,
        contract: get(row, "contract")?,
        contract_pr: get(row, "contract_pr")?,
        triage: json(&triage, "triage")?,
        timeline: json(&timeline, "timeline")?,
    })
}

pub(crate) fn journal_row<'r, R>(row: &'r R) -> Result<JournalRow, StateError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(JournalRow {
        episode: episode(row)?,
        closed_by: get(row, "closed_by")?,
        closed_at_ms: get(row, "closed_at_ms")?,
        latest: revision(row)?,
    })
}

pub(crate) fn user<'r, R>(row: &'r R) -> Result<User, StateError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(User {
        name: get(row, "name")?,
        role: get(row, "role")?,
        password_hash: get(row, "password_hash")?,
        created_at_ms: get(row, "created_at_ms")?,
    })
}

pub(crate) fn session<'r, R>(row: &'r R) -> Result<Session, StateError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Session { user: user(row)?, csrf_token: get(row, "csrf_token")?, expires_at_ms: get(row, "expires_at_ms")? })
}
