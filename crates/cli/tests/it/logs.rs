//! Logs through `alertbook run`: Faro lines with personal data are pushed
//! through Loki's API while the process is killed with SIGKILL; every
//! acknowledged entry is back after the restart, redacted with its rule ids,
//! and no raw personal data is anywhere in the data directory (the log
//! write-ahead log and blocks included).

use std::time::Duration;

use super::durability::{free_port, send_until_killed, start_with, stop_gracefully};

/// The personal data of entry `round`: an e-mail address, a card number and an IBAN.
fn email(round: usize) -> String {
    format!("kunde.{round:05}@busflow-kunde.de")
}
const CARD: &str = "4111 1111 1111 1111";
const CARD_DIGITS: &str = "4111111111111111";
const IBAN: &str = "DE89 3704 0044 0532 0130 00";

/// A marker that is not personal data: found in the files, it proves the scan sees stored lines.
fn marker(round: usize) -> String {
    format!("booking-marker-{round:05}")
}

fn push_body(round: usize, now_ns: i64) -> String {
    let line = format!(
        r#"{{"kind":"exception","message":"payment declined for {} ({})","context":{{"card":"{CARD}","refund_to":"{IBAN}"}}}}"#,
        email(round),
        marker(round)
    );
    serde_json::json!({"streams": [{
        "stream": {"job": "faro", "app": "busflow-web"},
        "values": [[(now_ns + round as i64).to_string(), line]]
    }]})
    .to_string()
}

/// Every file under `directory`, read whole.
fn files(directory: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(directory).expect("read the data directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((path, bytes));
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

/// No file holds personal data; with `control`, some file holds the markers
/// (the scan sees stored lines, so it would see personal data too).
fn assert_no_raw_personal_data(data: &std::path::Path, rounds: usize, control: bool) {
    let files = files(data);
    let last = rounds - 1;
    assert!(
        !control || files.iter().any(|(_, bytes)| contains(bytes, &marker(last))),
        "the scan found no stored line at all: it could not see personal data either"
    );
    for (path, bytes) in &files {
        for needle in [email(0), email(last), "busflow-kunde.de".into(), CARD.into(), CARD_DIGITS.into(), IBAN.into()] {
            assert!(!contains(bytes, &needle), "{} holds raw personal data {needle:?}", path.display());
        }
    }
}

fn count(client: &reqwest::blocking::Client, url: &str, query: &str) -> usize {
    let body: serde_json::Value = client
        .get(format!("{url}/loki/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .expect("query")
        .json()
        .expect("JSON");
    body["data"]["result"][0]["value"][1].as_str().map_or(0, |value| value.parse().expect("count"))
}

#[test]
fn pushed_personal_data_is_redacted_before_the_disk_and_survives_sigkill() {
    let data = tempfile::tempdir().expect("temporary directory");
    let port = free_port();
    let mut server = start_with(data.path(), port, &[]);
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let now_ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as i64;

    let acknowledged = send_until_killed(&mut server, "/loki/api/v1/push", &[("content-type", "application/json")], {
        move |round| push_body(round as usize, now_ns).into_bytes()
    })
    .len();
    assert!(acknowledged > 10, "too few pushes before the kill: {acknowledged}");
    // The write-ahead log alone holds the entries now, uncompressed: the markers are visible.
    assert_no_raw_personal_data(data.path(), acknowledged, true);

    let restarted = start_with(data.path(), port, &[]);
    let all = count(&client, &restarted.url, r#"sum(count_over_time({job="faro"} [1h]))"#);
    // Pushes go one after another: at most the one in flight landed unacknowledged.
    assert!(all == acknowledged || all == acknowledged + 1, "{all} entries stored, {acknowledged} acknowledged");
    let redacted = count(
        &client,
        &restarted.url,
        r#"sum(count_over_time({job="faro"} | pii_match_rule = "email,iban,payment_card" |= "[REDACTED:email]" [1h]))"#,
    );
    assert_eq!(redacted, all, "every entry is redacted and carries its three rule ids");
    assert_eq!(count(&client, &restarted.url, r#"sum(count_over_time({job="faro"} |= "busflow-kunde.de" [1h]))"#), 0);

    // A clean stop checkpoints the entries into a block; still nothing raw on disk.
    stop_gracefully(restarted);
    assert!(
        files(&data.path().join("logs")).iter().any(|(path, _)| path.extension().is_some_and(|e| e == "block")),
        "no log block was written at shutdown"
    );
    // Blocks hold compressed chunks of what the log held, so no marker is
    // expected in plain text; raw personal data must not be there either.
    assert_no_raw_personal_data(data.path(), acknowledged, false);
}

/// The value of the unlabelled series `name` on `/metrics`, if present.
fn metric(client: &reqwest::blocking::Client, url: &str, name: &str) -> Option<f64> {
    let text = client.get(format!("{url}/metrics")).send().expect("metrics").text().expect("text");
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Polls `/metrics` until `name` reaches `at_least`; a minute at most (the machine may be loaded).
fn wait_for_metric(client: &reqwest::blocking::Client, url: &str, name: &str, at_least: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while metric(client, url, name).is_none_or(|value| value < at_least) {
        assert!(std::time::Instant::now() < deadline, "{name} never reached {at_least}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The lines of `{job="compaction"}` over the last ten minutes, oldest first.
fn compaction_lines(client: &reqwest::blocking::Client, url: &str) -> Vec<String> {
    let body: serde_json::Value = client
        .get(format!("{url}/loki/api/v1/query_range"))
        .query(&[("query", r#"{job="compaction"}"#), ("since", "10m"), ("limit", "1000"), ("direction", "forward")])
        .send()
        .expect("query")
        .json()
        .expect("JSON");
    let values = body["data"]["result"][0]["values"].as_array().cloned().unwrap_or_default();
    values.iter().map(|value| value[1].as_str().expect("line").to_owned()).collect()
}

#[test]
fn log_blocks_compact_under_run_and_a_restart_reads_the_merged_block() {
    let data = tempfile::tempdir().expect("temporary directory");
    let port = free_port();
    // One-second blocks: compaction windows of 3, 9 and 27 seconds.
    let flags = ["--storage.block-interval", "1s", "--storage.maintenance-interval", "100ms"];
    let server = start_with(data.path(), port, &flags);
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let now_ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as i64;
    let second = 1_000_000_000i64;
    // The start of a closed three-second window a minute ago.
    let window = (now_ns - 60 * second).div_euclid(3 * second) * 3 * second;
    let push = |offset_ns: i64, batch: usize| {
        let values: Vec<serde_json::Value> = (0..20)
            .map(|index| {
                serde_json::json!([(window + offset_ns + index).to_string(), format!("batch {batch} line {index}")])
            })
            .collect();
        let body = serde_json::json!({"streams": [{"stream": {"job": "compaction"}, "values": values}]});
        let response = client.post(format!("{}/loki/api/v1/push", server.url)).json(&body).send().expect("push");
        assert_eq!(response.status().as_u16(), 204);
    };
    // Two blocks inside the window, then one after it that closes it.
    for (batch, offset) in [(0, second / 10), (1, second + second / 10)] {
        push(offset, batch);
        wait_for_metric(&client, &server.url, "alertbook_log_blocks", batch as f64 + 1.0);
    }
    push(10 * second, 2);
    // The maintenance run that writes the third block merges the first two.
    wait_for_metric(&client, &server.url, "alertbook_log_compactions_total", 1.0);
    assert_eq!(metric(&client, &server.url, "alertbook_log_compactions_failed_total"), Some(0.0));
    assert_eq!(metric(&client, &server.url, "alertbook_log_blocks"), Some(2.0));
    let lines = compaction_lines(&client, &server.url);
    let pushed: Vec<String> =
        (0..3).flat_map(|batch| (0..20).map(move |index| format!("batch {batch} line {index}"))).collect();
    assert_eq!(lines, pushed, "every entry once, in order");
    stop_gracefully(server);

    let blocks: Vec<String> = std::fs::read_dir(data.path().join("logs/blocks"))
        .expect("blocks directory")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(blocks.len(), 2, "the merged block and the last one: {blocks:?}");
    let restarted = start_with(data.path(), port, &flags);
    assert_eq!(compaction_lines(&client, &restarted.url), lines);
    stop_gracefully(restarted);
}
