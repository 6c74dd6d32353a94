//! The PostgreSQL datasource of `datasource: sql` rule groups.
//!
//! [`PostgresDatasource`] implements [`rules::Datasource`]: each query runs in
//! its own `BEGIN READ ONLY` transaction that is always rolled back, on a
//! session started with `default_transaction_read_only = on`,
//! `statement_timeout` and `lock_timeout`, so a statement that writes fails at
//! the server whatever the catalog's static check let through, and a
//! `set_config` in a query is undone with the transaction. The rows become
//! samples as [`rows`] says (one row, one alert).
//!
//! A small sqlx pool, created lazily so that alertbook starts while the
//! server is down; after a lost connection the datasource waits with an
//! exponential backoff before trying again, and reconnects by itself. Every
//! attempt is reported to [`crate::health`].
//!
//! Secrets: the password (from the URL or a file) lives only in
//! [`PostgresOptions`], whose `Debug` leaves it out; every message that
//! leaves this module goes through [`Redactor`] and names the server as
//! `user@host:port/database`, never the URL.
//!
//! The sync [`rules::Datasource::query`] is called from the rule scheduler's
//! blocking threads; the datasource owns a one-worker tokio runtime for its
//! I/O, so callers need no runtime of their own.

pub mod rows;

use std::str::FromStr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Column as _, Connection as _, Executor as _, Row as _, Statement as _, TypeInfo as _};
use tsdb::Labels;

use crate::health::DatasourceHealth;
use rows::{Cell, Column, ColumnKind};

/// Default `statement_timeout`.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `lock_timeout`.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);
/// Default size of the pool.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 2;

/// How to reach one PostgreSQL server, and the limits of every statement.
#[derive(Clone)]
pub struct PostgresOptions {
    /// The datasource's name in `alertbook.yaml`.
    pub name: String,
    connect: PgConnectOptions,
    secrets: Vec<String>,
    pub statement_timeout: Duration,
    pub lock_timeout: Duration,
    pub max_connections: u32,
    /// How long a query waits for a connection.
    pub connect_timeout: Duration,
    /// The first wait after a lost connection; it doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PostgresOptions")
            .field("name", &self.name)
            .field("server", &self.server())
            .field("statement_timeout", &self.statement_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl PostgresOptions {
    /// Options from a `postgres://` URL (libpq's URI form); `password`, when
    /// given, replaces any password in the URL. The error never repeats the URL.
    pub fn from_url(name: &str, url: &str, password: Option<&str>) -> Result<Self, SqlError> {
        let mut secrets = vec![url.to_owned()];
        secrets.extend(password.map(str::to_owned));
        let redactor = Redactor::new(&secrets);
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(SqlError::Config {
                datasource: name.to_owned(),
                message: "the URL must start with postgres:// or postgresql://".into(),
            });
        }
        let mut connect = PgConnectOptions::from_str(url).map_err(|error| SqlError::Config {
            datasource: name.to_owned(),
            message: format!("invalid PostgreSQL URL: {}", redactor.redact(&error.to_string())),
        })?;
        if let Some(password) = password {
            connect = connect.password(password);
        }
        // The URL's password, as written and percent-decoded, is a secret too.
        if let Some((written, decoded)) = url_password(url) {
            secrets.push(written);
            secrets.push(decoded);
        }
        Ok(Self {
            name: name.to_owned(),
            connect: connect.application_name("alertbook"),
            secrets,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            connect_timeout: Duration::from_secs(5),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        })
    }

    /// `user@host:port/database`: how logs and errors name the server.
    pub fn server(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.connect.get_username(),
            self.connect.get_host(),
            self.connect.get_port(),
            self.connect.get_database().unwrap_or(self.connect.get_username())
        )
    }

    /// Removes this datasource's secrets from `message`.
    pub fn redact(&self, message: &str) -> String {
        Redactor::new(&self.secrets).redact(message)
    }

    fn session_options(&self) -> PgConnectOptions {
        self.connect.clone().options([
            ("default_transaction_read_only", "on".to_owned()),
            ("statement_timeout", format!("{}ms", self.statement_timeout.as_millis())),
            ("lock_timeout", format!("{}ms", self.lock_timeout.as_millis())),
        ])
    }
}

/// The password of a `postgres://user:password@host` URL, as written and percent-decoded.
fn url_password(url: &str) -> Option<(String, String)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    let mut bytes = Vec::with_capacity(password.len());
    let mut input = password.bytes();
    while let Some(byte) = input.next() {
        if byte == b'%' {
            let high = input.next();
            let low = input.next();
            let decoded = high
                .zip(low)
                .and_then(|(high, low)| u8::from_str_radix(std::str::from_utf8(&[high, low]).ok()?, 16).ok());
            bytes.push(decoded.unwrap_or(b'%'));
        } else {
            bytes.push(byte);
        }
    }
    let decoded = String::from_utf8_lossy(&bytes).into_owned();
    (!password.is_empty()).then(|| (password.to_owned(), decoded))
}

/// Replaces every known secret in a message with `<redacted>`.
struct Redactor<'a> {
    secrets: &'a [String],
}

impl<'a> Redactor<'a> {
    fn new(secrets: &'a [String]) -> Self {
        Self { secrets }
    }

    fn redact(&self, message: &str) -> String {
        let mut message = message.to_owned();
        // Longest first, so that a password inside the URL does not break the URL's replacement.
        let mut secrets: Vec<&String> = self.secrets.iter().filter(|secret| !secret.is_empty()).collect();
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        for secret in secrets {
            message = message.replace(secret.as_str(), "<redacted>");
        }
        message
    }
}

/// A failure of the PostgreSQL datasource. Messages name the datasource and
/// never carry its URL or password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    #[error("postgres datasource {datasource:?}: {message}")]
    Config { datasource: String, message: String },
    /// The server could not be reached or refused the session.
    #[error("postgres datasource {datasource:?} ({server}): {message}")]
    Unavailable { datasource: String, server: String, message: String },
    /// The server answered the query with an error.
    #[error("postgres datasource {datasource:?}: {message}")]
    Query { datasource: String, message: String },
    /// The rows cannot become alerts.
    #[error("postgres datasource {datasource:?}: {error}")]
    Rows { datasource: String, error: rows::RowError },
}

impl From<SqlError> for rules::DatasourceError {
    fn from(error: SqlError) -> Self {
        match error {
            SqlError::Unavailable { .. } => rules::DatasourceError::Unavailable(error.to_string()),
            _ => rules::DatasourceError::Query(error.to_string()),
        }
    }
}

/// When the next connection attempt may happen after failures.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
}

/// A PostgreSQL server queried by SQL rules.
pub struct PostgresDatasource {
    options: PostgresOptions,
    server: String,
    pool: PgPool,
    runtime: Option<tokio::runtime::Runtime>,
    backoff: Mutex<Backoff>,
    health: DatasourceHealth,
}

impl std::fmt::Debug for PostgresDatasource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("PostgresDatasource").field("options", &self.options).finish_non_exhaustive()
    }
}

impl PostgresDatasource {
    /// The datasource; no connection is made until the first query.
    pub fn new(options: PostgresOptions, health: DatasourceHealth) -> Result<Self, SqlError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("postgres-{}", options.name))
            .enable_all()
            .build()
            .map_err(|error| SqlError::Config {
                datasource: options.name.clone(),
                message: format!("cannot start its runtime: {error}"),
            })?;
        let pool = {
            let _context = runtime.enter();
            PgPoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .min_connections(0)
                .acquire_timeout(options.connect_timeout)
                .idle_timeout(Duration::from_secs(300))
                .test_before_acquire(true)
                .connect_lazy_with(options.session_options())
        };
        let server = options.server();
        Ok(Self { options, server, pool, runtime: Some(runtime), backoff: Mutex::new(Backoff::default()), health })
    }

    pub fn name(&self) -> &str {
        &self.options.name
    }

    /// `user@host:port/database`.
    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn health(&self) -> &DatasourceHealth {
        &self.health
    }

    /// Runs `sql` and converts its rows; health and backoff are updated.
    pub fn query_samples(&self, sql: &str) -> Result<Vec<(Labels, f64)>, SqlError> {
        self.query_with(sql, |columns, cells| {
            rows::check_columns(columns)?;
            rows::to_samples(columns, cells)
        })
    }

    /// Runs `sql` (a triage check) and returns its rows as they are: each row
    /// a map from column name to a JSON value (numbers, text, booleans, times
    /// in RFC 3339, NULL as null). Same read-only transaction, timeouts,
    /// health and backoff as [`Self::query_samples`].
    pub fn query_rows(&self, sql: &str) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, SqlError> {
        self.query_with(sql, rows::to_rows)
    }

    fn query_with<T>(
        &self,
        sql: &str,
        convert: impl FnOnce(&[Column], &[Vec<Cell>]) -> Result<T, rows::RowError>,
    ) -> Result<T, SqlError> {
        if let Some(error) = self.waiting() {
            self.health.record_error(false);
            return Err(error);
        }
        let runtime = self.runtime.as_ref().expect("the runtime lives as long as the datasource");
        let limit = self.options.statement_timeout + self.options.connect_timeout * 2;
        let fetched = runtime.block_on(async {
            match tokio::time::timeout(limit, self.run(sql)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(self.unavailable(format!("no answer within {}s", limit.as_secs()))),
            }
        });
        let outcome = fetched.and_then(|(columns, cells)| convert(&columns, &cells).map_err(|e| self.rows_error(e)));
        match &outcome {
            Ok(_) => {
                let mut backoff = self.backoff.lock();
                if backoff.failures > 0 {
                    tracing::info!(datasource = %self.options.name, server = %self.server, "postgres datasource reconnected");
                }
                *backoff = Backoff::default();
                self.health.record_success();
            }
            Err(error @ SqlError::Unavailable { .. }) => {
                self.health.record_error(false);
                let mut backoff = self.backoff.lock();
                let exponent = backoff.failures.min(16);
                let wait = self.options.initial_backoff.saturating_mul(1 << exponent).min(self.options.max_backoff);
                backoff.failures += 1;
                backoff.retry_at = Some(Instant::now() + wait);
                backoff.last_error = error.to_string();
                tracing::warn!(error = %error, retry_in_ms = wait.as_millis() as u64, "postgres datasource unavailable");
            }
            Err(_) => self.health.record_error(true),
        }
        outcome
    }

    /// The error to return while the backoff after a failure has not passed.
    fn waiting(&self) -> Option<SqlError> {
        let backoff = self.backoff.lock();
        let retry_at = backoff.retry_at?;
        let remaining = retry_at.checked_duration_since(Instant::now())?;
        Some(self.unavailable(format!(
            "reconnecting in {}ms after: {}",
            remaining.as_millis(),
            backoff.last_error.rsplit(": ").next().unwrap_or_default()
        )))
    }

    async fn run(&self, sql: &str) -> Result<(Vec<Column>, Vec<Vec<Cell>>), SqlError> {
        let mut transaction = match self.pool.begin_with("BEGIN READ ONLY").await {
            Ok(transaction) => transaction,
            Err(sqlx::Error::PoolTimedOut) => return Err(self.diagnose_connect().await),
            Err(error) => return Err(self.classify(&error)),
        };
        let result = async {
            let statement = (&mut *transaction)
                .prepare(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(sql.to_owned())))
                .await?;
            let columns: Vec<Column> = statement
                .columns()
                .iter()
                .map(|column| Column { name: column.name().to_owned(), kind: column_kind(column.type_info().name()) })
                .collect();
            let rows = statement.query().fetch_all(&mut *transaction).await?;
            Ok::<_, sqlx::Error>((columns, rows))
        }
        .await;
        // Nothing to keep: the transaction is read-only, and rolling back undoes any session setting the query changed.
        let rollback = transaction.rollback().await;
        let (columns, rows) = result.map_err(|error| self.classify(&error))?;
        if let Err(error) = rollback {
            return Err(self.classify(&error));
        }
        rows::check_types(&columns).map_err(|error| self.rows_error(error))?;
        let cells = rows
            .iter()
            .map(|row| decode_row(row, &columns))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| self.rows_error(error))?;
        Ok((columns, cells))
    }

    /// The pool hides why it found no connection: one direct attempt says it.
    async fn diagnose_connect(&self) -> SqlError {
        let attempt = tokio::time::timeout(
            self.options.connect_timeout,
            sqlx::PgConnection::connect_with(&self.options.session_options()),
        )
        .await;
        match attempt {
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
                self.unavailable("no free connection in the pool".into())
            }
            Ok(Err(error)) => {
                let classified = self.classify(&error);
                match classified {
                    SqlError::Unavailable { .. } => classified,
                    SqlError::Query { message, .. } => self.unavailable(message),
                    other => other,
                }
            }
            Err(_) => self.unavailable(format!("no connection within {}s", self.options.connect_timeout.as_secs())),
        }
    }

    fn unavailable(&self, message: String) -> SqlError {
        SqlError::Unavailable {
            datasource: self.options.name.clone(),
            server: self.server.clone(),
            message: self.options.redact(&message),
        }
    }

    fn rows_error(&self, error: rows::RowError) -> SqlError {
        SqlError::Rows { datasource: self.options.name.clone(), error }
    }

    /// A server that answers with an error is up; one that cannot be reached,
    /// refuses the session or shuts down is not.
    fn classify(&self, error: &sqlx::Error) -> SqlError {
        let message = match error {
            sqlx::Error::Database(database) => {
                let code = database.code().map(|code| code.into_owned()).unwrap_or_default();
                let text = format!("{} (SQLSTATE {code})", database.message());
                let session_lost = code.starts_with("08")
                    || code.starts_with("28")
                    || code.starts_with("57P")
                    || code == "3D000"
                    || code == "53300";
                if !session_lost {
                    return SqlError::Query {
                        datasource: self.options.name.clone(),
                        message: self.options.redact(&text),
                    };
                }
                text
            }
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::TypeNotFound { .. } => {
                return SqlError::Query {
                    datasource: self.options.name.clone(),
                    message: self.options.redact(&error.to_string()),
                };
            }
            other => other.to_string(),
        };
        self.unavailable(message)
    }
}

impl Drop for PostgresDatasource {
    fn drop(&mut self) {
        // Dropping a runtime may block; inside another runtime that panics.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl rules::Datasource for PostgresDatasource {
    /// `time_ms` is not used: SQL reads the database as it is now.
    fn query(&self, query: &str, _time_ms: i64) -> Result<Vec<(Labels, f64)>, rules::DatasourceError> {
        self.query_samples(query).map_err(Into::into)
    }
}

/// The kind of a column from its PostgreSQL type name (sqlx's display names).
fn column_kind(type_name: &str) -> ColumnKind {
    match type_name {
        "INT2" | "INT4" | "INT8" | "OID" => ColumnKind::Integer,
        "FLOAT4" | "FLOAT8" => ColumnKind::Float,
        "NUMERIC" => ColumnKind::Numeric,
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => ColumnKind::Text,
        "BOOL" => ColumnKind::Bool,
        "TIMESTAMPTZ" | "TIMESTAMP" | "DATE" => ColumnKind::Time,
        other => ColumnKind::Unsupported(other.to_owned()),
    }
}

fn decode_row(row: &PgRow, columns: &[Column]) -> Result<Vec<Cell>, rows::RowError> {
    columns.iter().enumerate().map(|(index, column)| decode_cell(row, index, column)).collect()
}

fn decode_cell(row: &PgRow, index: usize, column: &Column) -> Result<Cell, rows::RowError> {
    use sqlx::types::chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
    let type_name = row.column(index).type_info().name().to_owned();
    let failed = |error: sqlx::Error| rows::RowError::InvalidValue {
        row: 0,
        column: column.name.clone(),
        value: format!("a {type_name} that cannot be read: {error}"),
    };
    let cell = match (&column.kind, type_name.as_str()) {
        (ColumnKind::Integer, "INT2") => {
            row.try_get::<Option<i16>, _>(index).map_err(failed)?.map(|v| Cell::Integer(v.into()))
        }
        (ColumnKind::Integer, "INT4") => {
            row.try_get::<Option<i32>, _>(index).map_err(failed)?.map(|v| Cell::Integer(v.into()))
        }
        (ColumnKind::Integer, "OID") => row
            .try_get::<Option<sqlx::postgres::types::Oid>, _>(index)
            .map_err(failed)?
            .map(|v| Cell::Integer(v.0.into())),
        (ColumnKind::Integer, _) => row.try_get::<Option<i64>, _>(index).map_err(failed)?.map(Cell::Integer),
        (ColumnKind::Float, "FLOAT4") => {
            row.try_get::<Option<f32>, _>(index).map_err(failed)?.map(|v| Cell::Float(v.into()))
        }
        (ColumnKind::Float, _) => row.try_get::<Option<f64>, _>(index).map_err(failed)?.map(Cell::Float),
        (ColumnKind::Numeric, _) => {
            row.try_get::<Option<sqlx::types::Decimal>, _>(index).map_err(failed)?.map(|v| Cell::Numeric(v.to_string()))
        }
        (ColumnKind::Text, _) => row.try_get::<Option<String>, _>(index).map_err(failed)?.map(Cell::Text),
        (ColumnKind::Bool, _) => row.try_get::<Option<bool>, _>(index).map_err(failed)?.map(Cell::Bool),
        (ColumnKind::Time, "TIMESTAMPTZ") => row
            .try_get::<Option<DateTime<Utc>>, _>(index)
            .map_err(failed)?
            .map(|v| Cell::Time(v.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string())),
        (ColumnKind::Time, "TIMESTAMP") => row
            .try_get::<Option<NaiveDateTime>, _>(index)
            .map_err(failed)?
            .map(|v| Cell::Time(v.format("%Y-%m-%dT%H:%M:%S%.f").to_string())),
        (ColumnKind::Time, _) => {
            row.try_get::<Option<NaiveDate>, _>(index).map_err(failed)?.map(|v| Cell::Time(v.to_string()))
        }
        (ColumnKind::Unsupported(type_name), _) => {
            return Err(rows::RowError::UnsupportedType { column: column.name.clone(), type_name: type_name.clone() });
        }
    };
    Ok(cell.unwrap_or(Cell::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_never_show_the_password() {
        let options = PostgresOptions::from_url("sql", "postgres://alertbook:s3cr%40t@db.internal:5433/busflow", None)
            .expect("url");
        assert_eq!(options.server(), "alertbook@db.internal:5433/busflow");
        let debug = format!("{options:?}");
        assert!(!debug.contains("s3cr"), "{debug}");
        assert_eq!(options.redact("auth failed for s3cr@t and s3cr%40t"), "auth failed for <redacted> and <redacted>");

        let from_file =
            PostgresOptions::from_url("sql", "postgres://alertbook@db/busflow", Some("hunter2")).expect("url");
        assert_eq!(from_file.redact("hunter2"), "<redacted>");
    }

    #[test]
    fn a_bad_url_is_named_without_its_text() {
        let error = PostgresOptions::from_url("sql", "mysql://root:pw@db/x", None).expect_err("scheme");
        assert_eq!(
            error.to_string(),
            "postgres datasource \"sql\": the URL must start with postgres:// or postgresql://"
        );
        let error = PostgresOptions::from_url("sql", "postgres://u:topsecret@db:notaport/x", None).expect_err("port");
        assert!(!error.to_string().contains("topsecret"), "{error}");
        assert!(error.to_string().starts_with("postgres datasource \"sql\": invalid PostgreSQL URL"), "{error}");
    }
}
