//! PostgreSQL datasource.
