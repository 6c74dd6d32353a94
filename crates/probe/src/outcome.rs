//! What one check found, and the series it writes (pure).
//!
//! [`Outcome`] is the result of a check; [`series`] turns it into the
//! `probe_*` samples of the check's labels, in blackbox_exporter's names:
//! `probe_success`, `probe_duration_seconds`, `probe_http_status_code` (http
//! and s3; 0 when no response came), `probe_ssl_earliest_cert_expiry`
//! (whenever a peer chain was seen, also an expired or untrusted one) and
//! alertbook's `probe_failure_reason{reason}`, 1 for the reason of a failed
//! check. When the reason changes or the check succeeds again, the previous
//! reason's series gets a staleness marker, so `probe_failure_reason == 1`
//! always names the current reason only.

use std::time::Duration;

use tsdb::Labels;

/// Why a check failed: the `reason` label of `probe_failure_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The check did not finish within its timeout.
    Timeout,
    /// The name did not resolve.
    Dns,
    /// The connection was refused (nothing listens).
    Refused,
    /// Another connection failure (unreachable, reset).
    Connect,
    /// The TLS handshake failed or the peer's chain did not verify.
    Tls,
    /// The credentials were refused (SMTP AUTH, S3 signature or key).
    Auth,
    /// The HTTP status was not among the expected codes.
    Status,
    /// The body did not match `body_regex`.
    Body,
    /// The TCP answer did not match `expect`.
    Expect,
    /// The peer spoke something other than the protocol expected.
    Protocol,
    /// The probe's own configuration failed at check time (an unreadable credential file).
    Config,
}

impl Reason {
    pub const ALL: [Reason; 11] = [
        Reason::Timeout,
        Reason::Dns,
        Reason::Refused,
        Reason::Connect,
        Reason::Tls,
        Reason::Auth,
        Reason::Status,
        Reason::Body,
        Reason::Expect,
        Reason::Protocol,
        Reason::Config,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::Dns => "dns",
            Reason::Refused => "refused",
            Reason::Connect => "connect",
            Reason::Tls => "tls",
            Reason::Auth => "auth",
            Reason::Status => "status",
            Reason::Body => "body",
            Reason::Expect => "expect",
            Reason::Protocol => "protocol",
            Reason::Config => "config",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed check: the reason label and a message for people (never a secret).
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
}

impl Failure {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self { reason, message: message.into() }
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    pub duration: Duration,
    /// The HTTP status of the answer (http and s3 probers).
    pub http_status: Option<u16>,
    /// The earliest `notAfter` of the peer's certificates, Unix seconds.
    pub earliest_cert_expiry: Option<f64>,
    /// `None` when the check succeeded.
    pub failure: Option<Failure>,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.failure.is_none()
    }
}

/// The labels every series of one probe carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeLabels {
    pub probe: String,
    pub probe_group: String,
    pub prober: String,
    pub target: String,
}

impl ProbeLabels {
    /// The series `name` with these labels (empty values left out) and `extra`.
    pub fn series(&self, name: &str, extra: &[(&str, &str)]) -> Labels {
        let mut pairs: Vec<(&str, &str)> = vec![
            ("__name__", name),
            ("probe", &self.probe),
            ("probe_group", &self.probe_group),
            ("prober", &self.prober),
            ("target", &self.target),
        ];
        pairs.extend_from_slice(extra);
        Labels::from_pairs(pairs.into_iter().filter(|(_, value)| !value.is_empty()))
    }
}

/// One batch for the store: series and their samples.
pub type Batch = Vec<(Labels, Vec<(i64, f64)>)>;

/// The samples of `outcome` at `timestamp_ms`; `previous` is the failure reason
/// the probe's last check wrote, which is marked stale when it no longer holds.
pub fn series(
    labels: &ProbeLabels,
    reports_http_status: bool,
    outcome: &Outcome,
    previous: Option<Reason>,
    timestamp_ms: i64,
) -> Batch {
    let sample = |value: f64| vec![(timestamp_ms, value)];
    let mut batch = vec![
        (labels.series("probe_success", &[]), sample(if outcome.success() { 1.0 } else { 0.0 })),
        (labels.series("probe_duration_seconds", &[]), sample(outcome.duration.as_secs_f64())),
    ];
    if reports_http_status {
        batch.push((labels.series("probe_http_status_code", &[]), sample(f64::from(outcome.http_status.unwrap_or(0)))));
    }
    if let Some(expiry) = outcome.earliest_cert_expiry {
        batch.push((labels.series("probe_ssl_earliest_cert_expiry", &[]), sample(expiry)));
    }
    let current = outcome.failure.as_ref().map(|failure| failure.reason);
    if let Some(previous) = previous
        && Some(previous) != current
    {
        batch.push((
            labels.series("probe_failure_reason", &[("reason", previous.as_str())]),
            sample(f64::from_bits(tsdb::STALE_NAN_BITS)),
        ));
    }
    if let Some(reason) = current {
        batch.push((labels.series("probe_failure_reason", &[("reason", reason.as_str())]), sample(1.0)));
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> ProbeLabels {
        ProbeLabels {
            probe: "qdrant".into(),
            probe_group: "studio-service-probes".into(),
            prober: "http".into(),
            target: "http://qdrant:6333/readyz".into(),
        }
    }

    fn rendered(batch: &Batch) -> Vec<String> {
        batch
            .iter()
            .map(|(labels, samples)| {
                let value = samples[0].1;
                let value =
                    if value.to_bits() == tsdb::STALE_NAN_BITS { "stale".to_owned() } else { value.to_string() };
                format!("{labels} {value}")
            })
            .collect()
    }

    #[test]
    fn a_failure_writes_its_reason_and_a_recovery_marks_it_stale() {
        let failed = Outcome {
            duration: Duration::from_millis(250),
            http_status: Some(503),
            earliest_cert_expiry: None,
            failure: Some(Failure::new(Reason::Status, "status 503 is not among 2xx")),
        };
        let batch = series(&labels(), true, &failed, None, 1_000);
        let common =
            r#"probe="qdrant", probe_group="studio-service-probes", prober="http", target="http://qdrant:6333/readyz""#;
        let with_reason = r#"probe="qdrant", probe_group="studio-service-probes", prober="http", reason="status", target="http://qdrant:6333/readyz""#;
        assert_eq!(
            rendered(&batch),
            [
                format!("probe_success{{{common}}} 0"),
                format!("probe_duration_seconds{{{common}}} 0.25"),
                format!("probe_http_status_code{{{common}}} 503"),
                format!("probe_failure_reason{{{with_reason}}} 1"),
            ]
        );
        assert!(batch.iter().all(|(_, samples)| samples[0].0 == 1_000));
        let recovered = Outcome { http_status: Some(200), failure: None, ..failed.clone() };
        let batch = series(&labels(), true, &recovered, Some(Reason::Status), 2_000);
        assert_eq!(rendered(&batch)[0], format!("probe_success{{{common}}} 1"));
        assert_eq!(rendered(&batch)[3], format!("probe_failure_reason{{{with_reason}}} stale"));
        // The same reason again is not marked stale.
        let batch = series(&labels(), true, &failed, Some(Reason::Status), 3_000);
        assert_eq!(batch.len(), 4);
    }

    #[test]
    fn certificate_expiry_is_written_whenever_a_chain_was_seen() {
        let expired = Outcome {
            earliest_cert_expiry: Some(1_700_000_000.0),
            failure: Some(Failure::new(Reason::Tls, "certificate expired")),
            ..Outcome::default()
        };
        let mut tls = labels();
        tls.prober = "tls".into();
        let text = rendered(&series(&tls, false, &expired, None, 5));
        assert!(
            text.iter()
                .any(|line| line.starts_with("probe_ssl_earliest_cert_expiry{") && line.ends_with(" 1700000000"))
        );
        assert!(!text.iter().any(|line| line.starts_with("probe_http_status_code")));
    }
}
