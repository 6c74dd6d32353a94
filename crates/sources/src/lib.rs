//! alertbook's datasources beyond its own metrics and log stores.
//!
//! - [`sql`]: PostgreSQL, for `datasource: sql` rules and triage checks.
//! - [`docker`]: the Docker Engine API (swarm services, tasks, secrets,
//!   networks, nodes), for `datasource: docker` rules and triage checks.
//! - [`loki`]: a remote Loki's query API, for `datasource: logs` rule groups
//!   bound to it and log checks.
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
