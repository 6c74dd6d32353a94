//! Docker Engine datasource.
