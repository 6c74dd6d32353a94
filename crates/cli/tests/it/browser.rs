//! The web UI in a real browser: headless Chromium (Debian's `chromium`)
//! driven through its WebDriver (`chromedriver`, started by
//! `scripts/peers/chromium.sh`, which exports ALERTBOOK_TEST_WEBDRIVER_URL).
//! `alertbook run` gets remote-written data that fires A6 (a Loki compactor
//! five hours behind) and A9 (a certificate whose probe target is a script);
//! the test opens the alerts page, finds both, checks that the script label
//! is inert text, walks the first keyboard stops, opens A6's alert page and
//! finds its triage evidence and sparkline, and opens the health page; then
//! a responder logs in, acknowledges A6, is refused twice (no root cause; a
//! contract change without its pull request) and closes it, and finds the
//! entry in the journal page, its Markdown export and `alertbook journal export`.
//! With ALERTBOOK_SCREENSHOTS_DIR set it saves a screenshot of each page
//! there (`scripts/screenshots.sh` writes docs/screenshots/ so).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fantoccini::{Client, ClientBuilder, Locator};
use ingest::remote_write::{Label, Sample, TimeSeries, WriteRequest, encode};

use super::durability::{free_port, start_with};

/// The responder's password in the closing workflow.
const PASSWORD: &str = "correct horse battery staple";

/// A target label that would run if it were ever markup.
const HOSTILE_TARGET: &str = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">";

fn webdriver_url() -> Option<String> {
    match std::env::var("ALERTBOOK_TEST_WEBDRIVER_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("ALERTBOOK_SKIP_PEERS").as_deref() == Ok("1") => None,
        _ => panic!(
            "ALERTBOOK_TEST_WEBDRIVER_URL is not set: run `source scripts/peers/chromium.sh` first (scripts/test does), \
             or set ALERTBOOK_SKIP_PEERS=1 to skip the browser tests"
        ),
    }
}

fn series(name: &str, labels: &[(&str, &str)], value: f64, timestamp: i64) -> TimeSeries {
    let mut all = vec![Label { name: "__name__".into(), value: name.into() }];
    all.extend(labels.iter().map(|(name, value)| Label { name: (*name).into(), value: (*value).into() }));
    TimeSeries { labels: all, samples: vec![Sample { value, timestamp }], exemplars: vec![], histograms: vec![] }
}

/// A6's compactor five hours behind, written a few times so its sparkline has points,
/// and a certificate of the tls-certificates probe group that expires tomorrow.
fn write_firing_data(url: &str, client: &reqwest::blocking::Client) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64;
    let compactor = "loki_boltdb_shipper_compact_tables_operation_last_successful_run_timestamp_seconds";
    let mut timeseries: Vec<TimeSeries> = (0..6)
        .map(|minutes_ago| {
            let at = now - minutes_ago * 60_000;
            series(compactor, &[("job", "loki")], ((now - 5 * 3_600_000) / 1000 - minutes_ago * 30) as f64, at)
        })
        .collect();
    timeseries.reverse();
    let request = WriteRequest { timeseries, metadata: vec![] };
    post(url, client, &request);
    let certificate = series(
        "probe_ssl_earliest_cert_expiry",
        &[("probe", "hostile"), ("probe_group", "tls-certificates"), ("target", HOSTILE_TARGET)],
        (now / 1000 + 86_400) as f64,
        now,
    );
    post(url, client, &WriteRequest { timeseries: vec![certificate], metadata: vec![] });
}

fn post(url: &str, client: &reqwest::blocking::Client, request: &WriteRequest) {
    let response = client
        .post(format!("{url}/api/v1/write"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .body(encode(request))
        .send()
        .expect("remote write");
    assert_eq!(response.status().as_u16(), 204, "{:?}", response.text());
}

fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if let Some(found) = probe() {
            return found;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("timed out waiting for {what}");
}

async fn connect(webdriver: &str) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=en-US"]}),
    );
    ClientBuilder::rustls()
        .expect("TLS roots for the WebDriver client")
        .capabilities(capabilities)
        .connect(webdriver)
        .await
        .unwrap_or_else(|error| panic!("cannot start a Chromium session through {webdriver}: {error}"))
}

async fn screenshot(client: &Client, name: &str) {
    let Ok(directory) = std::env::var("ALERTBOOK_SCREENSHOTS_DIR") else { return };
    let directory = super::workspace_root().join(directory);
    std::fs::create_dir_all(&directory).expect("screenshot directory");
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(directory.join(format!("{name}.png")), png).expect("write screenshot");
}

/// What the focused element is, as `tag#id text`.
async fn focused(client: &Client) -> String {
    let value = client
        .execute(
            "const e = document.activeElement; return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ' ' + (e.textContent || '').trim().slice(0, 40);",
            vec![],
        )
        .await
        .expect("active element");
    value.as_str().unwrap_or_default().to_owned()
}

/// Waits until the browser's URL (path and query) satisfies `wanted`.
async fn wait_for_url(client: &Client, wanted: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = client.current_url().await.expect("current URL");
        let here = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        if wanted(&here) {
            return;
        }
        assert!(Instant::now() < deadline, "the browser stayed at {here}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn press_tab(client: &Client) {
    client.active_element().await.expect("active element").send_keys("\u{e004}").await.expect("Tab");
}

#[test]
fn alerts_alert_and_health_pages_in_chromium() {
    let Some(webdriver) = webdriver_url() else { return };
    let work = tempfile::tempdir().expect("temporary directory");
    let catalog = work.path().join("catalog");
    super::fast_catalog_at(&catalog, "metrics.rules.yaml");
    let catalog_path = catalog.to_str().expect("utf-8").to_owned();
    let data_path = work.path().join("data");
    let data = data_path.to_str().expect("utf-8").to_owned();
    std::fs::create_dir_all(&data_path).expect("data directory");
    super::alertbook_with_input(
        &["user", "add", "alice", "--role", "responder", "--data", &data],
        &format!("{PASSWORD}\n"),
    );
    let server = start_with(&data_path, free_port(), &["--catalog", &catalog_path]);
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    write_firing_data(&server.url, &http);
    // Both alerts fire and A6 has been triaged.
    let a6 = eventually("A6 and A9 firing", || {
        let alerts: serde_json::Value = http.get(format!("{}/api/v1/alerts", server.url)).send().ok()?.json().ok()?;
        let alerts = alerts["data"]["alerts"].as_array()?.clone();
        let find =
            |name: &str| alerts.iter().find(|alert| alert["labels"]["alertname"] == name && alert["state"] == "firing");
        find("TlsCertExpiringSoon")?;
        Some(find("LokiCompactorBehind")?["fingerprint"].as_str()?.to_owned())
    });
    eventually("A6's triage run", || {
        let response = http.get(format!("{}/api/v1/triage?fingerprint={a6}", server.url)).send().ok()?;
        let record: serde_json::Value = response.json().ok()?;
        (!record["data"]["runs"].as_array()?.is_empty()).then_some(())
    });

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let client = connect(&webdriver).await;
        client.goto(&format!("{}/alerts", server.url)).await.expect("open /alerts");
        // The alerts page lists both; the script label is text on the page and never ran.
        let link = client.find(Locator::LinkText("LokiCompactorBehind")).await.expect("the A6 row");
        assert_eq!(link.attr("href").await.expect("href"), Some(format!("/alerts/{a6}")));
        client.find(Locator::LinkText("TlsCertExpiringSoon")).await.expect("the A9 row");
        let values = client.find_all(Locator::Css("span.label-value")).await.expect("label values");
        let mut texts = Vec::new();
        for value in values {
            texts.push(value.text().await.expect("text"));
        }
        assert!(texts.iter().any(|text| text == HOSTILE_TARGET), "{texts:?}");
        let verdict = client
            .execute("return [window.__pwned === undefined, document.scripts.length, document.images.length];", vec![])
            .await
            .expect("script");
        assert_eq!(verdict, serde_json::json!([true, 1, 0]), "the hostile label became markup");
        screenshot(&client, "alerts").await;
        // On a phone's width the table turns into one card per alert, nothing wider than the screen.
        client.set_window_size(390, 844).await.expect("phone size");
        let overflow = client
            .execute("return document.documentElement.scrollWidth <= window.innerWidth + 1;", vec![])
            .await
            .expect("width");
        assert_eq!(overflow, serde_json::json!(true), "the alerts page scrolls sideways on a phone");
        screenshot(&client, "alerts-phone").await;
        client.set_window_size(1280, 1000).await.expect("desktop size");

        // Keyboard: the first stop is the skip link, then the site name and the navigation,
        // then the filters' fields in reading order.
        client.execute("document.activeElement.blur(); window.scrollTo(0, 0);", vec![]).await.expect("blur");
        let mut stops = Vec::new();
        for _ in 0..9 {
            press_tab(&client).await;
            stops.push(focused(&client).await);
        }
        assert_eq!(
            &stops[..7],
            ["a Skip to content", "a alertbook", "a Alerts", "a Journal", "a Health", "a Runbook", "a Log in"],
            "{stops:?}"
        );
        assert!(stops[7].starts_with("select#filter-runbook"), "{stops:?}");
        assert!(stops[8].starts_with("select#filter-route"), "{stops:?}");
        // The skip link moves focus to the main content.
        client.goto(&format!("{}/alerts", server.url)).await.expect("open /alerts again");
        press_tab(&client).await;
        assert_eq!(focused(&client).await, "a Skip to content");
        client.active_element().await.expect("skip link").send_keys("\u{e007}").await.expect("Enter");
        assert!(focused(&client).await.starts_with("main#main"), "{}", focused(&client).await);

        // The filter form works without JavaScript's help: a label matcher narrows the list.
        let input = client.find(Locator::Id("filter-labels")).await.expect("labels field");
        input.send_keys("alertname=\"LokiCompactorBehind\"").await.expect("type");
        client
            .find(Locator::Css("form.filters button[type=submit]"))
            .await
            .expect("submit")
            .click()
            .await
            .expect("submit");
        wait_for_url(&client, |url| url.contains("labels=")).await;
        let counts = client.find(Locator::Css("p.counts")).await.expect("counts").text().await.expect("text");
        assert!(counts.starts_with("1 firing, 0 pending, 0 acknowledged (filtered from "), "{counts}");

        // The alert page: the runbook entry, the path taken, evidence and a sparkline.
        client.find(Locator::LinkText("LokiCompactorBehind")).await.expect("A6 link").click().await.expect("open");
        wait_for_url(&client, |url| url.starts_with(&format!("/alerts/{a6}"))).await;
        let heading = client.find(Locator::Css("h1")).await.expect("h1").text().await.expect("text");
        assert!(heading.starts_with("LokiCompactorBehind"), "{heading}");
        let path = client.find(Locator::Css("ol.path")).await.expect("path").text().await.expect("text");
        assert_eq!(path, "compactor-unhealthy");
        let first_step = client.find(Locator::Css("#step-1")).await.expect("step 1");
        assert_eq!(first_step.attr("class").await.expect("class").as_deref(), Some("step step-ran step-taken"));
        let line = client.find(Locator::Css("#step-1 figure.sparkline path.spark-line")).await.expect("sparkline");
        let d = line.attr("d").await.expect("d").unwrap_or_default();
        assert!(d.starts_with('M') && d.matches('L').count() >= 1, "{d}");
        let label = client.find(Locator::Css("#step-1 figure.sparkline svg")).await.expect("svg");
        assert!(label.attr("aria-label").await.expect("label").is_some_and(|label| label.contains("points from")));
        let missing =
            client.find(Locator::Css(".notice-warning ul")).await.expect("missing facts").text().await.expect("text");
        assert_eq!(missing, "compactor_replicas");
        let skipped = client.find_all(Locator::Css("li.step-skipped")).await.expect("skipped steps");
        assert!(!skipped.is_empty());
        client.find(Locator::Css("li.guard-rail")).await.expect("a guard rail box");
        screenshot(&client, "alert").await;

        // Runbook and alert page link both ways.
        client.find(Locator::Css("a[href=\"/runbook/A6\"]")).await.expect("runbook link").click().await.expect("open");
        wait_for_url(&client, |url| url.starts_with("/runbook/A6")).await;
        let back = client.find(Locator::Css(&format!("a[href=\"/alerts/{a6}\"]"))).await.expect("link back");
        back.click().await.expect("back to the alert page");
        wait_for_url(&client, |url| url.starts_with(&format!("/alerts/{a6}"))).await;
        client.find(Locator::Css("ol.path")).await.expect("alert page again");

        client.goto(&format!("{}/health", server.url)).await.expect("open /health");
        let heading = client.find(Locator::Css("h1")).await.expect("h1").text().await.expect("text");
        assert_eq!(heading, "Health");
        let rules = client.find_all(Locator::Css("#rules-heading + table tbody tr")).await.expect("rule rows");
        assert!(rules.len() > 10, "{} rules", rules.len());
        screenshot(&client, "health").await;

        closing_workflow(&client, &server.url, &a6, &data).await;
        client.close().await.expect("close the session");
    });
}

/// The journal's entries as `alertbook journal export --format json` gives them.
fn exported_entries(data: &str) -> Vec<serde_json::Value> {
    let text = super::alertbook_with_input(&["journal", "export", "--format", "json", "--data", data], "");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"));
    value.as_array().cloned().unwrap_or_else(|| panic!("the export is not a JSON array: {text}"))
}

/// The element once the page shows it (after a form post's page has loaded).
async fn wait_for(client: &Client, locator: Locator<'_>) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(locator)
        .await
        .unwrap_or_else(|error| panic!("the page never showed {locator:?}: {error}"))
}

/// Submits the alert page's close form.
async fn submit_close_form(client: &Client) {
    let button = client.find(Locator::Css("form.journal-form button[type=submit]")).await.expect("close button");
    button.click().await.expect("submit the close form");
}

/// Sets a text field of the close form.
async fn fill(client: &Client, id: &str, text: &str) {
    let field = client.find(Locator::Id(id)).await.unwrap_or_else(|_| panic!("field {id}"));
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

/// The runbook's closing rule, in the browser: log in from the alert page,
/// acknowledge, be refused without a root cause and for a contract change
/// without its PR (nothing saved either time), close, and find the entry in
/// the journal page, its Markdown export and `alertbook journal export`.
async fn closing_workflow(client: &Client, url: &str, a6: &str, data: &str) {
    client.goto(&format!("{url}/alerts/{a6}")).await.expect("open the alert page");
    client.find(Locator::LinkText("Log in to acknowledge")).await.expect("login link").click().await.expect("click");
    wait_for_url(client, |here| here.starts_with("/login")).await;
    client.find(Locator::Id("user")).await.expect("user").send_keys("alice").await.expect("type");
    client.find(Locator::Id("password")).await.expect("password").send_keys(PASSWORD).await.expect("type");
    client.find(Locator::Css("form.login-form button")).await.expect("log in").click().await.expect("click");
    wait_for_url(client, |here| here.starts_with(&format!("/alerts/{a6}"))).await;
    let account = client.find(Locator::Css("div.account")).await.expect("account").text().await.expect("text");
    let account = account.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(account.starts_with("Logged in as alice (responder)"), "{account}");

    client.find(Locator::Css("form.inline-form button")).await.expect("acknowledge").click().await.expect("click");
    let state = wait_for(client, Locator::Css("p.journal-state")).await.text().await.expect("text");
    assert!(state.starts_with("Acknowledged by alice at "), "{state}");

    // No root cause: refused at the field, the rest kept, nothing saved.
    fill(client, "journal-remediation", "no-op, transient").await;
    client.find(Locator::Id("journal-contract_changed-no")).await.expect("no").click().await.expect("click");
    submit_close_form(client).await;
    let error = wait_for(client, Locator::Id("journal-root_cause-error")).await;
    assert!(!error.text().await.expect("text").is_empty());
    let invalid = client.find(Locator::Id("journal-root_cause")).await.expect("field");
    assert_eq!(invalid.attr("aria-invalid").await.expect("attr").as_deref(), Some("true"));
    let kept = client.find(Locator::Id("journal-remediation")).await.expect("remediation");
    assert_eq!(kept.prop("value").await.expect("value").as_deref(), Some("no-op, transient"));
    assert!(exported_entries(data).is_empty(), "a refused close saved an entry");

    // A contract changed without its pull request: refused at contract_pr.
    fill(client, "journal-root_cause", "compactor stalled on a full disk").await;
    client.find(Locator::Id("journal-contract_changed-yes")).await.expect("yes").click().await.expect("click");
    client
        .execute(
            "const s = document.getElementById('journal-contract'); \
             s.selectedIndex = [...s.options].findIndex(o => o.value !== ''); return s.value;",
            vec![],
        )
        .await
        .expect("pick a contract");
    submit_close_form(client).await;
    wait_for(client, Locator::Id("journal-contract_pr-error")).await;
    assert!(exported_entries(data).is_empty(), "a refused close saved an entry");
    screenshot(client, "alert-close-refused").await;

    // A proper close.
    client.find(Locator::Id("journal-contract_changed-no")).await.expect("no").click().await.expect("click");
    submit_close_form(client).await;
    wait_for(client, Locator::Css("p.journal-state a[href^=\"/journal/\"]")).await;
    let closed = texts_of(client, "p.journal-state").await;
    let errors = texts_of(client, ".notice-error").await;
    assert!(closed.contains("Closed by alice"), "{closed} {errors}");
    let entries = exported_entries(data);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["root_cause"], "compactor stalled on a full disk");
    assert_eq!(entries[0]["alert_id"], "A6");

    client.find(Locator::Css("a[href^=\"/journal/\"]")).await.expect("entry link").click().await.expect("open");
    wait_for_url(client, |here| here.starts_with("/journal/")).await;
    client.goto(&format!("{url}/journal")).await.expect("open /journal");
    let row = client.find(Locator::Css("table.responsive tbody tr")).await.expect("a journal row");
    let text = row.text().await.expect("text");
    assert!(text.contains("compactor stalled on a full disk") && text.contains("A6"), "{text}");
    screenshot(client, "journal").await;
    let markdown = client
        .execute("return fetch('/journal/export?format=md').then(r => r.text());", vec![])
        .await
        .expect("the Markdown export");
    let markdown = markdown.as_str().unwrap_or_default();
    assert!(markdown.contains("compactor stalled on a full disk") && markdown.contains("A6"), "{markdown}");
}

/// The text of every element matching `css`, one per line.
async fn texts_of(client: &Client, css: &str) -> String {
    let elements = client.find_all(Locator::Css(css)).await.expect("elements");
    let mut texts = Vec::new();
    for element in elements {
        texts.push(element.text().await.expect("text"));
    }
    texts.join("\n")
}
