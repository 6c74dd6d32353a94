//! The schedule: probes run on their interval, one check at a time per
//! probe, and a probe that hangs never holds up another.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::support::{self, HttpServer, target};

/// Keeps every batch.
#[derive(Default)]
struct Collect(Mutex<probe::outcome::Batch>);

impl probe::schedule::Sink for Collect {
    fn append(&self, batch: &probe::outcome::Batch) -> Result<(), String> {
        self.0.lock().expect("samples").extend(batch.iter().cloned());
        Ok(())
    }
}

impl Collect {
    fn successes(&self, probe: &str) -> Vec<f64> {
        self.0
            .lock()
            .expect("samples")
            .iter()
            .filter(|(labels, _)| labels.metric_name() == Some("probe_success") && labels.get("probe") == Some(probe))
            .map(|(_, samples)| samples[0].1)
            .collect()
    }
}

fn check(name: &str, options: catalog::probes::ProbeTarget, interval: Duration) -> probe::Check {
    let options = catalog::probes::ProbeTarget { name: name.into(), ..options };
    probe::Check::new("tests", &options, interval, std::path::Path::new(".")).expect("valid check")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_target_never_delays_the_others_and_a_slow_one_never_overlaps_itself() {
    let healthy = HttpServer::start("ok", Duration::ZERO, None).await;
    let slow = HttpServer::start("ok", Duration::from_millis(350), None).await;
    let silent = support::silent_server().await;

    let mut hanging = target("http", &format!("http://{silent}/"));
    hanging.timeout = Some("900ms".into());
    let mut slow_options = target("http", &slow.url("/"));
    slow_options.timeout = Some("390ms".into());
    let checks = vec![
        check("hanging", hanging, Duration::from_secs(1)),
        check("slow", slow_options, Duration::from_millis(400)),
        check("healthy", target("http", &healthy.url("/")), Duration::from_millis(100)),
    ];
    let sink = Arc::new(Collect::default());
    let handle = probe::schedule::spawn(checks, sink.clone(), Arc::new(probe::schedule::SystemClock));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = handle.stats.clone();
    handle.shutdown().await;

    let healthy_checks = sink.successes("healthy");
    let hanging_checks = sink.successes("hanging");
    // About 30 checks of the healthy target in 3 s at 100 ms; a hanging target
    // that held it up would leave it near 3.
    assert!(healthy_checks.len() >= 15, "{} healthy checks", healthy_checks.len());
    assert!(healthy_checks.iter().all(|value| *value == 1.0));
    assert!(!hanging_checks.is_empty() && hanging_checks.iter().all(|value| *value == 0.0), "{hanging_checks:?}");
    // The slow target answers in 350 ms at a 400 ms interval: never two checks at once.
    assert_eq!(slow.seen.most_active.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(!sink.successes("slow").is_empty());
    let reasons: Vec<String> = sink
        .0
        .lock()
        .expect("samples")
        .iter()
        .filter(|(labels, _)| {
            labels.metric_name() == Some("probe_failure_reason") && labels.get("probe") == Some("hanging")
        })
        .filter_map(|(labels, _)| labels.get("reason").map(str::to_owned))
        .collect();
    assert!(!reasons.is_empty() && reasons.iter().all(|reason| reason == "timeout"), "{reasons:?}");
    assert!(stats.checks.load(std::sync::atomic::Ordering::Relaxed) >= 20);
}
