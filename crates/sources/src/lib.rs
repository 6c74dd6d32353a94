//! alertbook's datasources beyond metrics and logs.
//!
//! - [`sql`]: PostgreSQL, for `datasource: sql` rules and triage checks.
//! - [`docker`]: the Docker Engine API (swarm services, tasks, secrets,
//!   networks, nodes), for `datasource: docker` rules and triage checks.
//!
//! Each datasource reports its health as `alertbook_datasource_up` and
//! `alertbook_datasource_errors_total`.

pub mod docker;
pub mod health;
pub mod sql;
