//! `alertbook demo` end to end: the binary plays the simulated Busflow day at
//! high speed, and every incident of the script pages — each runbook alert
//! A1 to A12 fires in its window, its first triage run takes the branch the
//! incident's facts imply, A3's later re-run sees several rules, and the
//! local notification log receives each alert, with its triage path, from
//! the catalog's contacts.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Fast enough for the test, slow enough for a debug build on a loaded
/// machine: the 12-hour day in 6 minutes. (At 240× and a load of 17, the
/// uptime-kuma recording group skipped evaluations, and StudioServiceDown,
/// which needs three recorded samples in 90 s, fired minutes late.)
const SPEED: u32 = 120;
/// How late (virtual time) an alert may start firing or a re-run come
/// after the script's window, when evaluations were skipped at this speed.
const SLACK_MS: i64 = 2 * 60_000;

struct Demo {
    child: std::process::Child,
    url: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One triage run as `/api/v1/triage` lists it.
#[derive(Debug, Clone)]
struct Run {
    alertname: String,
    labels: Vec<(String, String)>,
    time_ms: i64,
    firing_since_ms: i64,
    trigger: String,
    path: Vec<String>,
    missing: Vec<String>,
}

/// One alert of a firing notification in the local log.
struct Notified {
    alertname: String,
    labels: Vec<(String, String)>,
    triage_path: String,
    summarized: bool,
}

fn runs_of(body: &serde_json::Value) -> Vec<Run> {
    let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_owned();
    let list = |value: &serde_json::Value| value.as_array().into_iter().flatten().map(text).collect::<Vec<_>>();
    body["data"]["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|run| Run {
            alertname: text(&run["alertname"]),
            labels: run["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, value)| (name.clone(), text(value)))
                .collect(),
            time_ms: run["time_ms"].as_i64().unwrap_or_default(),
            firing_since_ms: run["firing_since_ms"].as_i64().unwrap_or_default(),
            trigger: text(&run["trigger"]),
            path: list(&run["path"]),
            missing: list(&run["missing"]),
        })
        .collect()
}

#[test]
fn the_demo_pages_every_runbook_alert_with_the_triage_path_its_incident_implies() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let directory = tempfile::tempdir().expect("temporary directory");
    let data = directory.path().join("data");
    let port = super::durability::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_alertbook"))
        .args(["demo", "--speed", &SPEED.to_string(), "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(&data)
        .current_dir(directory.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("alertbook demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let banner = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let written = banner.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut text = written.lock().expect("banner");
            if text.len() < 200_000 {
                text.push_str(&line);
                text.push('\n');
            }
        }
    });
    let demo = Demo { child, url: format!("http://127.0.0.1:{port}") };
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    let get = |path: &str| -> Option<serde_json::Value> {
        client.get(format!("{}{path}", demo.url)).send().ok()?.json().ok()
    };

    // The day being played, as the demo describes it.
    let started = Instant::now();
    let description = loop {
        let text = std::fs::read_to_string(data.join("demo-day.json")).unwrap_or_default();
        if let Ok(description) = serde_json::from_str::<serde_json::Value>(&text) {
            break description;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no demo-day.json after a minute");
        std::thread::sleep(Duration::from_millis(100));
    };
    let start_ms = description["start_ms"].as_i64().expect("start_ms");
    let seed = description["seed"].as_u64().expect("seed");
    let day = demo::Day::busflow_at(start_ms, seed);
    assert_eq!(day.start_ms(), start_ms);
    assert_eq!(description["incidents"].as_array().map(Vec::len), Some(day.incidents().len()));

    // Collect every triage run while the day plays (the API keeps the latest few per alert).
    let day_wall = Duration::from_millis(demo::DAY_LENGTH_MS as u64 / u64::from(SPEED));
    let deadline = Instant::now() + day_wall * 2 + Duration::from_secs(120);
    let mut runs: BTreeMap<(String, i64), Run> = BTreeMap::new();
    let mut logged_in = false;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        if let Some(body) = get("/api/v1/triage?limit=1000") {
            for run in runs_of(&body) {
                let labels = format!("{:?}", run.labels);
                runs.insert((labels, run.time_ms), run);
            }
        }
        if !logged_in {
            // The banner's account is a responder.
            let text = banner.lock().expect("banner").clone();
            if let Some(password) = text.lines().find_map(|line| {
                line.trim().strip_prefix("log in as").and_then(|rest| rest.trim().strip_prefix("demo / "))
            }) {
                let password = password.split_whitespace().next().unwrap_or_default().to_owned();
                let response = reqwest::blocking::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .expect("client")
                    .post(format!("{}/login", demo.url))
                    .form(&[("user", "demo"), ("password", password.as_str())])
                    .send()
                    .expect("login");
                assert!(
                    response.status().is_redirection() && response.headers().contains_key("set-cookie"),
                    "the banner's login is refused: {}",
                    response.status()
                );
                logged_in = true;
            }
        }
        let now_ms = get("/api/v1/query?query=time()")
            .and_then(|body| body["data"]["result"][0].as_f64())
            .map_or(0, |seconds| (seconds * 1000.0) as i64);
        if now_ms > day.end_ms() + 60_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the day did not end in time: virtual time {now_ms}, day ends {}; banner:\n{}",
            day.end_ms(),
            banner.lock().expect("banner")
        );
    }
    assert!(logged_in, "no login line in the banner:\n{}", banner.lock().expect("banner"));

    let minutes = |time_ms: i64| format!("+{:.1}m", (time_ms - day.start_ms()) as f64 / 60_000.0);
    let mut failures = Vec::new();
    let mut alert_ids = std::collections::BTreeSet::new();
    for incident in day.incidents() {
        let named = format!("{} ({} {})", incident.name, incident.alert_id, incident.alertname);
        let mut firsts: Vec<&Run> = runs
            .values()
            .filter(|run| {
                run.trigger == "firing"
                    && incident.matches(&run.alertname, &run.labels)
                    && run.firing_since_ms >= incident.fires_from_ms
                    && run.firing_since_ms <= incident.fires_by_ms + SLACK_MS
            })
            .collect();
        firsts.sort_by_key(|run| run.time_ms);
        let Some(first) = firsts.first() else {
            let seen: Vec<String> = runs
                .values()
                .filter(|run| run.trigger == "firing" && incident.matches(&run.alertname, &run.labels))
                .map(|run| format!("{} {:?}", minutes(run.firing_since_ms), run.path))
                .collect();
            failures.push(format!(
                "{named}: no firing in {}..{}; firings seen: {seen:?}",
                minutes(incident.fires_from_ms),
                minutes(incident.fires_by_ms)
            ));
            continue;
        };
        alert_ids.insert(incident.alert_id);
        for expected in &incident.triage {
            let expected_path: Vec<String> = expected.path.iter().map(|branch| (*branch).to_owned()).collect();
            let run = match expected.at_ms {
                None => Some(*first),
                Some(at_ms) => runs
                    .values()
                    .filter(|run| {
                        incident.matches(&run.alertname, &run.labels)
                            && run.time_ms >= at_ms
                            && run.time_ms <= at_ms + 5 * 60_000 + SLACK_MS
                    })
                    .min_by_key(|run| run.time_ms),
            };
            match run {
                None => failures.push(format!("{named}: no triage run for {expected:?}")),
                Some(run) if run.path != expected_path || !run.missing.is_empty() => failures.push(format!(
                    "{named}: the run at {} took {:?} (missing {:?}), expected {:?}",
                    minutes(run.time_ms),
                    run.path,
                    run.missing,
                    expected.path
                )),
                Some(_) => {}
            }
        }
    }
    let every: Vec<String> = (1..=12).map(|number| format!("A{number}")).collect();
    let paged: Vec<String> = alert_ids.iter().map(|id| (*id).to_owned()).collect();
    assert_eq!(paged.len(), 12, "alerts that paged: {paged:?} of {every:?}");

    // The local notification log: every incident's alert, firing, with its
    // first triage's path and summary, from the receiver its contact names.
    let log = std::fs::read_to_string(data.join("notifications.jsonl")).expect("the notification log");
    let mut notified: Vec<Notified> = Vec::new();
    for line in log.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let payload = &entry["payload"];
        assert_eq!(entry["path"], format!("/{}", payload["receiver"].as_str().unwrap_or_default()), "{line}");
        for alert in payload["alerts"].as_array().into_iter().flatten().filter(|alert| alert["status"] == "firing") {
            let labels: Vec<(String, String)> = alert["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_owned()))
                .collect();
            let alertname = labels.iter().find(|(name, _)| name == "alertname").map(|(_, value)| value.clone());
            let annotations = &alert["annotations"];
            notified.push(Notified {
                alertname: alertname.unwrap_or_default(),
                labels,
                triage_path: annotations["triage_path"].as_str().unwrap_or_default().to_owned(),
                summarized: annotations.get("triage_summary").is_some(),
            });
        }
    }
    for incident in day.incidents() {
        let expected = incident.triage.iter().find(|expected| expected.at_ms.is_none()).map(|e| e.path.join(","));
        let found = notified.iter().any(|notified| {
            incident.matches(&notified.alertname, &notified.labels)
                && Some(&notified.triage_path) == expected.as_ref()
                && notified.summarized
        });
        if !found {
            failures.push(format!(
                "{} ({}): no firing notification with triage_path {expected:?} and a triage_summary",
                incident.name, incident.alertname
            ));
        }
    }
    assert!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));
}
