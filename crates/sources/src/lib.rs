//! alertbook's datasources beyond its own metrics and log stores.
//!
//! - [`sql`]: PostgreSQL, for `datasource: sql` rules and triage checks.
//! - [`docker`]: the Docker Engine API (swarm services, tasks, secrets,
//!   networks, nodes), for `datasource: docker` rules and triage checks.
//! - [`loki`]: a remote Loki's query API, for `datasource: logs` rule groups
//!   bound to it and log checks.
//! - [`tempo`]: a remote Tempo's TraceQL search, for trace checks
//!   ([`tempo::TraceSearch`]: trace IDs, root service and name, durations,
//!   matched spans with their attributes such as `db.statement`).
//! - [`http`]: the HTTP edge of the remote datasources (timeout, headers,
//!   authorization, tenant) and their errors.
//!
//! Each datasource reports its health as `alertbook_datasource_up` and
//! `alertbook_datasource_errors_total`.

pub mod docker;
pub mod health;
pub mod http;
pub mod loki;
pub mod sql;
pub mod tempo;
