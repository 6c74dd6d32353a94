//! The health of each datasource, as alertbook's own metrics:
//! `alertbook_datasource_up{datasource,type}` (1 when the last attempt to
//! reach it succeeded, 0 when it failed) and
//! `alertbook_datasource_errors_total{datasource,type}` (failed attempts:
//! connection, query and conversion errors alike).
//!
//! [`HealthMetrics`] owns the two metric families and is registered once into
//! the process's `prometheus-client` registry; each datasource takes a
//! [`DatasourceHealth`] handle for its own label pair and reports every
//! attempt through it. This module only counts: serving `/metrics` is the
//! server's job, and the catalog's `AlertbookDatasourceDown` rule alerts on
//! the gauge.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The kind of a datasource, the `type` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasourceType {
    Postgres,
    Docker,
    Prometheus,
    Loki,
    Tempo,
}

impl DatasourceType {
    /// The name written in `alertbook.yaml` and in the `type` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Docker => "docker",
            Self::Prometheus => "prometheus",
            Self::Loki => "loki",
            Self::Tempo => "tempo",
        }
    }
}

impl std::fmt::Display for DatasourceType {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The labels of both metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatasourceLabels {
    pub datasource: String,
    /// [`DatasourceType::as_str`].
    pub r#type: String,
}

/// The two metric families, shared by every datasource of the process.
#[derive(Debug, Clone, Default)]
pub struct HealthMetrics {
    up: Family<DatasourceLabels, Gauge>,
    errors: Family<DatasourceLabels, Counter>,
}

impl HealthMetrics {
    /// Metrics registered nowhere (tests, tools).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers both families as `alertbook_datasource_up` and
    /// `alertbook_datasource_errors_total`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        metrics.register_in(registry);
        metrics
    }

    /// Registers these families (made before the registry existed) into `registry`.
    pub fn register_in(&self, registry: &mut Registry) {
        let metrics = self;
        registry.register(
            "alertbook_datasource_up",
            "Whether the last attempt to reach the datasource succeeded (1) or failed (0)",
            metrics.up.clone(),
        );
        registry.register(
            "alertbook_datasource_errors",
            "Failed attempts to reach or query the datasource",
            metrics.errors.clone(),
        );
    }

    /// The handle of one datasource. Its `up` series starts at 0 until the
    /// first success, so a datasource that never answers is visible at once.
    pub fn datasource(&self, name: &str, kind: DatasourceType) -> DatasourceHealth {
        let labels = DatasourceLabels { datasource: name.to_owned(), r#type: kind.as_str().to_owned() };
        let up = self.up.get_or_create(&labels).clone();
        let errors = self.errors.get_or_create(&labels).clone();
        DatasourceHealth { up, errors }
    }
}

/// The health of one datasource; clones share the same series.
#[derive(Debug, Clone)]
pub struct DatasourceHealth {
    up: Gauge,
    errors: Counter,
}

impl DatasourceHealth {
    /// A handle registered nowhere (tests, tools).
    pub fn detached() -> Self {
        Self { up: Gauge::default(), errors: Counter::default() }
    }

    /// The datasource answered.
    pub fn record_success(&self) {
        self.up.set(1);
    }

    /// The datasource could not be reached, or a query or its result failed.
    /// `reachable` says whether the datasource itself still answers (a query
    /// error on a live server keeps `up` at 1; a lost connection sets it to 0).
    pub fn record_error(&self, reachable: bool) {
        self.errors.inc();
        self.up.set(i64::from(reachable));
    }

    /// 1 or 0, as exported.
    pub fn up(&self) -> i64 {
        self.up.get()
    }

    pub fn errors(&self) -> u64 {
        self.errors.get()
    }
}

/// A datasource whose every query is reported to its health: an unreachable
/// datasource is down, a query it answers with an error is up (for
/// datasources that do not report their own health).
pub struct Monitored<D> {
    pub inner: D,
    pub health: DatasourceHealth,
}

impl<D: rules::Datasource> rules::Datasource for Monitored<D> {
    fn query(&self, query: &str, time_ms: i64) -> Result<Vec<(tsdb::Labels, f64)>, rules::DatasourceError> {
        let outcome = self.inner.query(query, time_ms);
        match &outcome {
            Ok(_) => self.health.record_success(),
            Err(rules::DatasourceError::Unavailable(_)) => self.health.record_error(false),
            Err(_) => self.health.record_error(true),
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_up_and_errors_per_datasource() {
        let mut registry = Registry::default();
        let metrics = HealthMetrics::register(&mut registry);
        let sql = metrics.datasource("sql", DatasourceType::Postgres);
        let docker = metrics.datasource("docker", DatasourceType::Docker);
        sql.record_success();
        docker.record_error(false);
        docker.record_error(false);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(text.contains("alertbook_datasource_up{datasource=\"sql\",type=\"postgres\"} 1"), "{text}");
        assert!(text.contains("alertbook_datasource_up{datasource=\"docker\",type=\"docker\"} 0"), "{text}");
        assert!(text.contains("alertbook_datasource_errors_total{datasource=\"docker\",type=\"docker\"} 2"), "{text}");
        assert!(text.contains("alertbook_datasource_errors_total{datasource=\"sql\",type=\"postgres\"} 0"), "{text}");
    }

    struct Answers(Result<Vec<(tsdb::Labels, f64)>, rules::DatasourceError>);

    impl rules::Datasource for Answers {
        fn query(&self, _query: &str, _time_ms: i64) -> Result<Vec<(tsdb::Labels, f64)>, rules::DatasourceError> {
            self.0.clone()
        }
    }

    #[test]
    fn monitored_datasources_report_each_query() {
        use rules::Datasource as _;
        let health = DatasourceHealth::detached();
        let up = Monitored { inner: Answers(Ok(Vec::new())), health: health.clone() };
        assert!(up.query("up", 0).is_ok());
        assert_eq!((health.up(), health.errors()), (1, 0));
        let bad_query =
            Monitored { inner: Answers(Err(rules::DatasourceError::Query("parse".into()))), health: health.clone() };
        assert!(bad_query.query("up(", 0).is_err());
        assert_eq!((health.up(), health.errors()), (1, 1));
        let down = Monitored {
            inner: Answers(Err(rules::DatasourceError::Unavailable("refused".into()))),
            health: health.clone(),
        };
        assert!(down.query("up", 0).is_err());
        assert_eq!((health.up(), health.errors()), (0, 2));
    }

    #[test]
    fn a_query_error_on_a_live_server_keeps_it_up() {
        let health = DatasourceHealth::detached();
        health.record_success();
        health.record_error(true);
        assert_eq!((health.up(), health.errors()), (1, 1));
        health.record_error(false);
        assert_eq!((health.up(), health.errors()), (0, 2));
    }
}
