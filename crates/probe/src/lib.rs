//! The built-in prober: blackbox-style checks of HTTP, TCP, TLS, SMTP and S3
//! endpoints that write `probe_*` series through the same durable ingest
//! path as scraped samples.
//!
//! Modules: [`check`] (a contract's target made ready to run: labels,
//! interval, timeout, options), [`outcome`] (what a check found and the
//! series it writes, pure), the probers [`http`], [`tcp`], [`tls`] (with the
//! certificate verifier that records the peer chain even when it does not
//! verify), [`smtp`], [`s3`], and [`schedule`] (one task per probe at a hash-derived phase of
//! its interval, never overlapping itself; samples to a [`schedule::Sink`],
//! time from an injected [`schedule::Clock`]) with its counters in
//! [`metrics`] (checks, failures by reason and missed intervals per probe
//! group, for alertbook's `/metrics`).
//!
//! [`Probe::run`] is one check: the prober under the check's timeout, the
//! duration measured, the failure classified into a [`Reason`]. The crate
//! opens sockets and reads credential files (at each check, so a rotated
//! secret is picked up); it serves nothing, prints nothing, and never puts a
//! credential into a message.

pub mod check;
pub mod http;
pub mod metrics;
pub mod outcome;
pub mod s3;
pub mod schedule;
pub mod smtp;
pub mod tcp;
pub mod tls;

use std::time::Instant;

pub use check::{Check, Prober};
pub use outcome::{Failure, Outcome, ProbeLabels, Reason};

/// One probe and what it keeps between checks (the HTTP client).
#[derive(Debug)]
pub struct Probe {
    pub check: Check,
    http: Option<http::HttpClient>,
    /// The failure reason the last check wrote, marked stale when it no longer holds.
    previous_reason: Option<Reason>,
}

impl Probe {
    pub fn new(check: Check) -> Self {
        Self { check, http: None, previous_reason: None }
    }

    /// Runs one check; `now_ms` is the check's time (Unix milliseconds).
    pub async fn run(&mut self, now_ms: i64) -> Outcome {
        let mut outcome = Outcome::default();
        // The client is built (system roots loaded) once, outside the measured time.
        if matches!(self.check.prober, Prober::Http | Prober::S3) && self.http.is_none() {
            match http::HttpClient::new(&self.check) {
                Ok(client) => self.http = Some(client),
                Err(failure) => {
                    outcome.failure = Some(failure);
                    return outcome;
                }
            }
        }
        let started = Instant::now();
        let timeout = self.check.timeout;
        let result = tokio::time::timeout(timeout, self.dispatch(&mut outcome, now_ms)).await;
        outcome.duration = started.elapsed();
        outcome.failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(failure)) => Some(failure),
            Err(_) => Some(Failure::new(Reason::Timeout, format!("no answer within {}s", timeout.as_secs_f64()))),
        };
        outcome
    }

    /// Runs one check and returns its series at `now_ms`.
    pub async fn run_series(&mut self, now_ms: i64) -> (Outcome, outcome::Batch) {
        let outcome = self.run(now_ms).await;
        let batch = outcome::series(
            &self.check.labels,
            self.check.prober.reports_http_status(),
            &outcome,
            self.previous_reason,
            now_ms,
        );
        self.previous_reason = outcome.failure.as_ref().map(|failure| failure.reason);
        (outcome, batch)
    }

    async fn dispatch(&mut self, outcome: &mut Outcome, now_ms: i64) -> Result<(), Failure> {
        match self.check.prober {
            Prober::Http => {
                if self.http.is_none() {
                    self.http = Some(http::HttpClient::new(&self.check)?);
                }
                let client = self.http.as_ref().expect("built above");
                http::probe(&self.check, client, outcome).await
            }
            Prober::Tcp => tcp::probe(&self.check).await,
            Prober::Tls => tls::probe(&self.check, outcome).await,
            Prober::Smtp => smtp::probe(&self.check, outcome).await,
            Prober::S3 => {
                if self.http.is_none() {
                    self.http = Some(http::HttpClient::new(&self.check)?);
                }
                let client = self.http.as_ref().expect("built above");
                s3::probe(&self.check, client, outcome, now_ms).await
            }
        }
    }
}
