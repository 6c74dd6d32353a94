//! alertbook's state store: what people do with alerts (acknowledgements,
//! journal entries and their revisions) and who they are (users, API tokens,
//! sessions), in SQLite (the default, one file under `--data`, WAL mode) or
//! PostgreSQL (for teams), through sqlx.
//!
//! Key items: [`Store`] (opened with [`Store::open_sqlite`] or
//! [`Store::open_postgres`]; the embedded migrations of the matching dialect,
//! `migrations/sqlite` and `migrations/postgres`, run at open), the rows it
//! reads and writes ([`Episode`], [`Revision`], [`JournalRow`], [`User`]) and
//! [`StateError`].
//!
//! Both dialects run the same SQL text (`$1`-style parameters, which SQLite
//! also takes): every value a caller passes is a bound parameter, never part
//! of the statement. Journal entries are append-only: a correction is the
//! next revision, written only when the caller's expected revision is still
//! the latest one (optimistic concurrency), so of two responders closing the
//! same alert at once one wins and the other gets [`StateError::Conflict`]
//! with the winning revision.
//!
//! It decides nothing: validation of the closing fields and the alert
//! lifecycle live in the `journal` crate, password hashing in `accounts`.
//! It never logs a PostgreSQL URL or a secret (token and session hashes
//! only, never the tokens themselves).

mod rows;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Row, SqlSafeStr};

pub use rows::{EntryFilter, Episode, JournalRow, NewEpisode, NewRevision, Revision, Session, User};

/// The SQLite file under the data directory.
pub const SQLITE_FILE: &str = "state.sqlite";

/// Errors of the state store. Messages never hold a URL or a secret.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot open the state database {what}: {message}")]
    Open { what: String, message: String },
    #[error("cannot migrate the state database: {0}")]
    Migrate(String),
    #[error("state database error: {0}")]
    Database(String),
    #[error("stored {what} is not valid JSON: {message}")]
    Json { what: &'static str, message: String },
    /// The episode was acknowledged already (by whoever the episode names).
    #[error("already acknowledged by {} at {}", .0.acknowledged_by, .0.acknowledged_at_ms)]
    AlreadyAcknowledged(Box<Episode>),
    /// Another revision was written first; `current` is the latest one.
    #[error("the journal entry changed meanwhile: revision {} by {} is the latest", .current.revision, .current.author)]
    Conflict { current: Box<Revision> },
    #[error("no such journal episode {0}")]
    NoEpisode(i64),
    #[error("user {0} exists already")]
    UserExists(String),
    #[error("no user {0}")]
    NoUser(String),
}

impl From<sqlx::Error> for StateError {
    fn from(error: sqlx::Error) -> Self {
        StateError::Database(error.to_string())
    }
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if database.is_unique_violation())
}

fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if database.is_foreign_key_violation())
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool the store holds; the
/// body is compiled once per dialect.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// The state database: a pool of connections to SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
}

fn migrator(dialect: &'static str) -> Migrator {
    let sql = match dialect {
        "sqlite" => include_str!("../migrations/sqlite/0001_journal.sql"),
        _ => include_str!("../migrations/postgres/0001_journal.sql"),
    };
    Migrator::with_migrations(vec![Migration::new(
        1,
        "journal".into(),
        MigrationType::Simple,
        sql.into_sql_str(),
        false,
    )])
}

const EPISODE_COLUMNS: &str = "p.id, p.fingerprint, p.started_at_ms, p.alert_id, p.alertname, p.labels, \
     p.acknowledged_by, p.acknowledged_at_ms, p.resolved_at_ms, p.reminded_at_ms, \
     (SELECT COALESCE(MAX(m.revision), 0) FROM revisions m WHERE m.episode_id = p.id) AS latest_revision";

const REVISION_COLUMNS: &str = "r.episode_id, r.revision, r.author, r.written_at_ms, r.alert_id, r.root_cause, \
     r.remediation, r.contract_changed, r.contract, r.contract_pr, r.triage, r.timeline";

impl Store {
    /// Opens (creating when missing) the SQLite database `directory/state.sqlite`
    /// in WAL mode, and migrates it.
    pub async fn open_sqlite(directory: &Path) -> Result<Store, StateError> {
        let path = directory.join(SQLITE_FILE);
        let what = path.display().to_string();
        std::fs::create_dir_all(directory)
            .map_err(|error| StateError::Open { what: what.clone(), message: error.to_string() })?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|error| StateError::Open { what, message: error.to_string() })?;
        migrator("sqlite").run(&pool).await.map_err(|error| StateError::Migrate(error.to_string()))?;
        Ok(Store { pool: Pool::Sqlite(pool) })
    }

    /// Connects to PostgreSQL at `url` (a secret: it appears in no error) and migrates.
    pub async fn open_postgres(url: &str) -> Result<Store, StateError> {
        let url = url.trim();
        let scheme_ok = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let parsed = if scheme_ok { sqlx::postgres::PgConnectOptions::from_str(url).ok() } else { None };
        let options = parsed.ok_or_else(|| StateError::Open {
            what: "(postgres)".into(),
            message: "the URL is not a PostgreSQL URL such as postgres://user:password@host:5432/database".into(),
        })?;
        let what = format!(
            "{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        );
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|error| StateError::Open { what, message: redact(&error.to_string(), url) })?;
        migrator("postgres").run(&pool).await.map_err(|error| StateError::Migrate(error.to_string()))?;
        Ok(Store { pool: Pool::Postgres(pool) })
    }

    /// `sqlite` or `postgres`.
    pub fn dialect(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Closes every connection (SQLite checkpoints its WAL).
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }

    // --- episodes -------------------------------------------------------

    /// Records an acknowledgement: a new episode, or
    /// [`StateError::AlreadyAcknowledged`] with the one recorded first.
    pub async fn acknowledge(&self, new: &NewEpisode) -> Result<Episode, StateError> {
        let labels = serde_json::to_string(&new.labels)
            .map_err(|error| StateError::Json { what: "labels", message: error.to_string() })?;
        let sql = "INSERT INTO episodes (fingerprint, started_at_ms, alert_id, alertname, labels, acknowledged_by, \
                   acknowledged_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";
        let inserted = on_pool!(self, pool => sqlx::query(sql)
            .bind(&new.fingerprint)
            .bind(new.started_at_ms)
            .bind(&new.alert_id)
            .bind(&new.alertname)
            .bind(&labels)
            .bind(&new.acknowledged_by)
            .bind(new.acknowledged_at_ms)
            .fetch_one(pool)
            .await
            .and_then(|row| row.try_get::<i64, _>(0)));
        match inserted {
            Ok(id) => self.episode(id).await?.ok_or(StateError::NoEpisode(id)),
            Err(error) if is_unique_violation(&error) => {
                let existing = self.episode_at(&new.fingerprint, new.started_at_ms).await?;
                Err(existing.map_or(StateError::Database(error.to_string()), |episode| {
                    StateError::AlreadyAcknowledged(Box::new(episode))
                }))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// One episode by id.
    pub async fn episode(&self, id: i64) -> Result<Option<Episode>, StateError> {
        let sql = AssertSqlSafe(format!("SELECT {EPISODE_COLUMNS} FROM episodes p WHERE p.id = $1"));
        let row = on_pool!(self, pool => match sqlx::query(sql).bind(id).fetch_optional(pool).await? {
            Some(row) => Some(rows::episode(&row)?),
            None => None,
        });
        Ok(row)
    }

    /// The episode of an alert instance that started firing at `started_at_ms`.
    pub async fn episode_at(&self, fingerprint: &str, started_at_ms: i64) -> Result<Option<Episode>, StateError> {
        let sql = AssertSqlSafe(format!(
            "SELECT {EPISODE_COLUMNS} FROM episodes p WHERE p.fingerprint = $1 AND p.started_at_ms = $2"
        ));
        let row = on_pool!(self, pool => match sqlx::query(sql).bind(fingerprint).bind(started_at_ms).fetch_optional(pool).await? {
            Some(row) => Some(rows::episode(&row)?),
            None => None,
        });
        Ok(row)
    }

    /// The most recent episode of an alert instance.
    pub async fn latest_episode(&self, fingerprint: &str) -> Result<Option<Episode>, StateError> {
        let sql = AssertSqlSafe(format!(
            "SELECT {EPISODE_COLUMNS} FROM episodes p WHERE p.fingerprint = $1 ORDER BY p.started_at_ms DESC LIMIT 1"
        ));
        let row = on_pool!(self, pool => match sqlx::query(sql).bind(fingerprint).fetch_optional(pool).await? {
            Some(row) => Some(rows::episode(&row)?),
            None => None,
        });
        Ok(row)
    }

    /// Acknowledged episodes without a journal entry, oldest acknowledgement first.
    pub async fn open_episodes(&self) -> Result<Vec<Episode>, StateError> {
        let sql = AssertSqlSafe(format!(
            "SELECT {EPISODE_COLUMNS} FROM episodes p \
             WHERE NOT EXISTS (SELECT 1 FROM revisions r WHERE r.episode_id = p.id) \
             ORDER BY p.acknowledged_at_ms, p.id"
        ));
        let episodes = on_pool!(self, pool => sqlx::query(sql)
            .fetch_all(pool)
            .await?
            .iter()
            .map(rows::episode)
            .collect::<Result<Vec<_>, _>>()?);
        Ok(episodes)
    }

    /// Notes that an episode's alert stopped firing (the first time only).
    pub async fn mark_resolved(&self, id: i64, at_ms: i64) -> Result<(), StateError> {
        let sql = "UPDATE episodes SET resolved_at_ms = $2 WHERE id = $1 AND resolved_at_ms IS NULL";
        on_pool!(self, pool => {
            sqlx::query(sql).bind(id).bind(at_ms).execute(pool).await?;
        });
        Ok(())
    }

    /// Notes that a reminder went out for an episode.
    pub async fn mark_reminded(&self, id: i64, at_ms: i64) -> Result<(), StateError> {
        let sql = "UPDATE episodes SET reminded_at_ms = $2 WHERE id = $1";
        on_pool!(self, pool => {
            sqlx::query(sql).bind(id).bind(at_ms).execute(pool).await?;
        });
        Ok(())
    }

    // --- journal entries -----------------------------------------------

    /// Appends revision `expected_revision + 1` of an episode's entry (1 closes it),
    /// only if `expected_revision` is still its latest revision (0: none yet);
    /// otherwise [`StateError::Conflict`] with the latest one, and nothing is written.
    pub async fn append_revision(
        &self,
        episode_id: i64,
        expected_revision: i64,
        new: &NewRevision,
    ) -> Result<Revision, StateError> {
        let triage = serde_json::to_string(&new.triage)
            .map_err(|error| StateError::Json { what: "triage", message: error.to_string() })?;
        let timeline = serde_json::to_string(&new.timeline)
            .map_err(|error| StateError::Json { what: "timeline", message: error.to_string() })?;
        // One statement: the expected revision is checked and the next one
        // written atomically; a concurrent writer of the same revision hits
        // the primary key and gets the conflict instead.
        let sql = "INSERT INTO revisions (episode_id, revision, author, written_at_ms, alert_id, root_cause, \
                   remediation, contract_changed, contract, contract_pr, triage, timeline) \
                   SELECT $1, $2 + 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 \
                   WHERE (SELECT COALESCE(MAX(m.revision), 0) FROM revisions m WHERE m.episode_id = $1) = $2";
        let written = on_pool!(self, pool => sqlx::query(sql)
            .bind(episode_id)
            .bind(expected_revision)
            .bind(&new.author)
            .bind(new.written_at_ms)
            .bind(&new.alert_id)
            .bind(&new.root_cause)
            .bind(&new.remediation)
            .bind(new.contract_changed)
            .bind(&new.contract)
            .bind(&new.contract_pr)
            .bind(&triage)
            .bind(&timeline)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()));
        match written {
            Ok(1) => {
                let revisions = self.revisions(episode_id).await?;
                revisions.into_iter().last().ok_or(StateError::NoEpisode(episode_id))
            }
            Ok(_) => Err(self.conflict(episode_id).await),
            Err(error) if is_unique_violation(&error) => Err(self.conflict(episode_id).await),
            Err(error) if is_foreign_key_violation(&error) => Err(StateError::NoEpisode(episode_id)),
            Err(error) => Err(error.into()),
        }
    }

    async fn conflict(&self, episode_id: i64) -> StateError {
        match self.revisions(episode_id).await {
            Ok(revisions) => match revisions.into_iter().last() {
                Some(current) => StateError::Conflict { current: Box::new(current) },
                None => StateError::NoEpisode(episode_id),
            },
            Err(error) => error,
        }
    }

    /// Every revision of an episode's entry, oldest first.
    pub async fn revisions(&self, episode_id: i64) -> Result<Vec<Revision>, StateError> {
        let sql = AssertSqlSafe(format!(
            "SELECT {REVISION_COLUMNS} FROM revisions r WHERE r.episode_id = $1 ORDER BY r.revision"
        ));
        let revisions = on_pool!(self, pool => sqlx::query(sql)
            .bind(episode_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(rows::revision)
            .collect::<Result<Vec<_>, _>>()?);
        Ok(revisions)
    }

    /// Journal entries (each episode with its latest revision), newest close
    /// first. Every filter value is a bound parameter.
    pub async fn entries(&self, filter: &EntryFilter) -> Result<Vec<JournalRow>, StateError> {
        let mut sql = format!(
            "SELECT {EPISODE_COLUMNS}, {REVISION_COLUMNS}, f.author AS closed_by, f.written_at_ms AS closed_at_ms \
             FROM episodes p \
             JOIN revisions f ON f.episode_id = p.id AND f.revision = 1 \
             JOIN revisions r ON r.episode_id = p.id \
               AND r.revision = (SELECT MAX(m.revision) FROM revisions m WHERE m.episode_id = p.id) \
             WHERE 1 = 1"
        );
        let mut parameter = 0;
        let mut next = || {
            parameter += 1;
            format!("${parameter}")
        };
        if filter.alert_id.is_some() {
            sql.push_str(&format!(" AND r.alert_id = {}", next()));
        }
        if filter.episode_id.is_some() {
            sql.push_str(&format!(" AND p.id = {}", next()));
        }
        if filter.since_ms.is_some() {
            sql.push_str(&format!(" AND f.written_at_ms >= {}", next()));
        }
        if filter.until_ms.is_some() {
            sql.push_str(&format!(" AND f.written_at_ms <= {}", next()));
        }
        if filter.contract_changed.is_some() {
            sql.push_str(&format!(" AND r.contract_changed = {}", next()));
        }
        sql.push_str(&format!(" ORDER BY f.written_at_ms DESC, p.id DESC LIMIT {}", next()));
        let limit = filter.limit.unwrap_or(1000).clamp(1, 100_000);
        let sql = AssertSqlSafe(sql);
        let rows = on_pool!(self, pool => {
            let mut query = sqlx::query(sql);
            if let Some(alert_id) = &filter.alert_id {
                query = query.bind(alert_id.clone());
            }
            if let Some(episode_id) = filter.episode_id {
                query = query.bind(episode_id);
            }
            if let Some(since) = filter.since_ms {
                query = query.bind(since);
            }
            if let Some(until) = filter.until_ms {
                query = query.bind(until);
            }
            if let Some(changed) = filter.contract_changed {
                query = query.bind(changed);
            }
            query = query.bind(limit);
            query.fetch_all(pool).await?.iter().map(rows::journal_row).collect::<Result<Vec<_>, _>>()?
        });
        Ok(rows)
    }

    // --- accounts --------------------------------------------------------

    /// Adds a user; [`StateError::UserExists`] when the name is taken.
    pub async fn add_user(&self, name: &str, role: &str, password_hash: &str, now_ms: i64) -> Result<(), StateError> {
        let sql = "INSERT INTO users (name, role, password_hash, created_at_ms) VALUES ($1, $2, $3, $4)";
        let inserted = on_pool!(self, pool => sqlx::query(sql)
            .bind(name)
            .bind(role)
            .bind(password_hash)
            .bind(now_ms)
            .execute(pool)
            .await
            .map(|_| ()));
        match inserted {
            Ok(()) => Ok(()),
            Err(error) if is_unique_violation(&error) => Err(StateError::UserExists(name.to_owned())),
            Err(error) => Err(error.into()),
        }
    }

    /// Replaces a user's role and password hash.
    pub async fn update_user(&self, name: &str, role: &str, password_hash: &str) -> Result<(), StateError> {
        let sql = "UPDATE users SET role = $2, password_hash = $3 WHERE name = $1";
        let updated = on_pool!(self, pool => sqlx::query(sql)
            .bind(name)
            .bind(role)
            .bind(password_hash)
            .execute(pool)
            .await?
            .rows_affected());
        if updated == 0 { Err(StateError::NoUser(name.to_owned())) } else { Ok(()) }
    }

    /// One user by name.
    pub async fn user(&self, name: &str) -> Result<Option<User>, StateError> {
        let sql = "SELECT name, role, password_hash, created_at_ms FROM users WHERE name = $1";
        let user = on_pool!(self, pool => match sqlx::query(sql).bind(name).fetch_optional(pool).await? {
            Some(row) => Some(rows::user(&row)?),
            None => None,
        });
        Ok(user)
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<User>, StateError> {
        let sql = "SELECT name, role, password_hash, created_at_ms FROM users ORDER BY name";
        let users = on_pool!(self, pool => sqlx::query(sql)
            .fetch_all(pool)
            .await?
            .iter()
            .map(rows::user)
            .collect::<Result<Vec<_>, _>>()?);
        Ok(users)
    }

    /// Stores an API token's hash for a user.
    pub async fn add_token(&self, token_hash: &str, user: &str, now_ms: i64) -> Result<(), StateError> {
        let sql = "INSERT INTO api_tokens (token_hash, user_name, created_at_ms) VALUES ($1, $2, $3)";
        let inserted = on_pool!(self, pool => sqlx::query(sql).bind(token_hash).bind(user).bind(now_ms).execute(pool).await.map(|_| ()));
        match inserted {
            Ok(_) => Ok(()),
            Err(error) if is_foreign_key_violation(&error) => Err(StateError::NoUser(user.to_owned())),
            Err(error) => Err(error.into()),
        }
    }

    /// The user an API token hash belongs to.
    pub async fn token_user(&self, token_hash: &str) -> Result<Option<User>, StateError> {
        let sql = "SELECT u.name, u.role, u.password_hash, u.created_at_ms FROM api_tokens t \
                   JOIN users u ON u.name = t.user_name WHERE t.token_hash = $1";
        let user = on_pool!(self, pool => match sqlx::query(sql).bind(token_hash).fetch_optional(pool).await? {
            Some(row) => Some(rows::user(&row)?),
            None => None,
        });
        Ok(user)
    }

    /// Stores a session (its token's hash) with its CSRF token.
    pub async fn add_session(
        &self,
        token_hash: &str,
        user: &str,
        csrf_token: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<(), StateError> {
        let sql = "INSERT INTO sessions (token_hash, user_name, csrf_token, created_at_ms, expires_at_ms) \
                   VALUES ($1, $2, $3, $4, $5)";
        on_pool!(self, pool => {
            sqlx::query(sql)
            .bind(token_hash)
            .bind(user)
            .bind(csrf_token)
            .bind(now_ms)
            .bind(expires_at_ms)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The live session of a token hash at `now_ms`.
    pub async fn session(&self, token_hash: &str, now_ms: i64) -> Result<Option<Session>, StateError> {
        let sql = "SELECT u.name, u.role, u.password_hash, u.created_at_ms, s.csrf_token, s.expires_at_ms \
                   FROM sessions s JOIN users u ON u.name = s.user_name \
                   WHERE s.token_hash = $1 AND s.expires_at_ms > $2";
        let session = on_pool!(self, pool => match sqlx::query(sql).bind(token_hash).bind(now_ms).fetch_optional(pool).await? {
            Some(row) => Some(rows::session(&row)?),
            None => None,
        });
        Ok(session)
    }

    /// Ends a session, and every expired one.
    pub async fn delete_session(&self, token_hash: &str, now_ms: i64) -> Result<(), StateError> {
        let sql = "DELETE FROM sessions WHERE token_hash = $1 OR expires_at_ms <= $2";
        on_pool!(self, pool => {
            sqlx::query(sql).bind(token_hash).bind(now_ms).execute(pool).await?;
        });
        Ok(())
    }
}

/// `message` with the URL and its password left out.
fn redact(message: &str, url: &str) -> String {
    let mut message = message.replace(url.trim(), "<url>");
    if let Some(password) = sqlx::postgres::PgConnectOptions::from_str(url.trim())
        .ok()
        .and_then(|_| url.split_once("://"))
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(credentials, _)| credentials.split_once(':'))
        .map(|(_, password)| password.to_owned())
        .filter(|password| !password.is_empty())
    {
        message = message.replace(&password, "<secret>");
    }
    message
}
