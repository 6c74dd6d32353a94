//! The remote-write benchmark's data: the series and samples that
//! `remote-write-bench` sends to each receiver and `remote-write-profile`
//! feeds to alertbook's ingest path in-process, encoded once as a sender
//! encodes them (protobuf `WriteRequest`, snappy block format).

use ingest::remote_write::{Label, Sample, TimeSeries, WriteRequest, encode};

/// The load's command-line arguments, shared by `remote-write-bench` and
/// `remote-write-profile`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArguments {
    /// Active series.
    #[arg(long, default_value_t = 100_000)]
    pub series: usize,
    /// Samples per series (scrape rounds, 15 s apart).
    #[arg(long, default_value_t = 30)]
    pub rounds: usize,
    /// Series per request (Prometheus's max_samples_per_send is 2000 by default).
    #[arg(long, default_value_t = 2000)]
    pub batch: usize,
    /// Concurrent senders (Prometheus's remote-write shards).
    #[arg(long, default_value_t = 4)]
    pub senders: usize,
}

impl LoadArguments {
    /// The load these arguments describe, its first round at `start_ms`.
    pub fn load(&self, start_ms: i64) -> Load {
        Load { series: self.series, rounds: self.rounds, batch: self.batch, start_ms }
    }
}

/// The shape of the generated load.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Active series.
    pub series: usize,
    /// Samples per series, 15 s apart.
    pub rounds: usize,
    /// Series per request (Prometheus's `max_samples_per_send` is 2000 by default).
    pub batch: usize,
    /// Timestamp of the first round, milliseconds.
    pub start_ms: i64,
}

impl Load {
    /// Requests per round: the groups of series a request carries.
    pub fn groups(&self) -> usize {
        self.series.div_ceil(self.batch)
    }

    /// Every request body, time-major (every series at t, then every series
    /// at t+15s), the way a fleet of scrapes arrives. Five labels per series,
    /// with Busflow's names and realistic value cardinalities.
    pub fn bodies(&self) -> Vec<Vec<u8>> {
        let mut bodies = Vec::with_capacity(self.rounds * self.groups());
        for round in 0..self.rounds {
            let timestamp = self.start_ms + round as i64 * 15_000;
            for first in (0..self.series).step_by(self.batch) {
                let timeseries = (first..(first + self.batch).min(self.series))
                    .map(|index| TimeSeries {
                        labels: vec![
                            Label { name: "__name__".into(), value: format!("busflow_metric_{}", index % 50) },
                            Label { name: "http_route".into(), value: format!("/api/route{}", index % 40) },
                            Label {
                                name: "instance".into(),
                                value: format!("10.0.{}.{}:9100", index / 250 % 256, index % 250),
                            },
                            Label { name: "job".into(), value: "busflow_api".into() },
                            Label { name: "tenant_id".into(), value: format!("tenant-{:05}", index / 50) },
                        ],
                        samples: vec![Sample { value: (round * 10 + index % 7) as f64, timestamp }],
                        exemplars: vec![],
                        histograms: vec![],
                    })
                    .collect();
                bodies.push(encode(&WriteRequest { timeseries, metadata: vec![] }));
            }
        }
        bodies
    }

    /// The request indexes sender `sender` of `senders` sends, in order: the
    /// series groups whose number modulo `senders` is `sender`, round by
    /// round, so each series' samples arrive in time order, as with
    /// Prometheus's sharded queues.
    pub fn sender_share(&self, sender: usize, senders: usize) -> Vec<usize> {
        let groups = self.groups();
        (0..self.rounds * groups).filter(|index| index % groups % senders == sender).collect()
    }
}
