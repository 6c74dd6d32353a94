//! The day's log streams, computed once when the day is built, in the formats
//! their sources write (samples of each in `testdata/telemetry/`):
//!
//! - `{job="faro", app="busflow-web"}`: Grafana Alloy `faro.receiver` lines
//!   (logfmt): page logs, web vitals, exceptions, the synthetic checkout
//!   probe's card number (a reviewed false positive), and the script's
//!   personal data. Lines are written raw, as the browser sent them: whoever
//!   stores them must redact them first, as alertbook's push path does;
//! - `{service_name="busflow_grafana"}`: Grafana 11's logfmt request log and
//!   its authn service's warnings (JWTs it cannot verify, missing sessions);
//! - `{job="traefik", log_type="access"}`: the studio Traefik's v3 JSON
//!   access log (`ServiceAddr`, `ServiceName`, `DownstreamStatus`, …);
//! - `{service_name="busflow_traefik"}`: Traefik 3's JSON log, with the ACME
//!   renewal errors of a certificate that is not renewed.

use serde_json::{Map, Value, json};

use crate::clock::{self, MINUTE_MS, SECOND_MS};
use crate::noise::Noise;
use crate::script::{Cause, pii_spacing};
use crate::world::World;
use crate::{Labels, LogEntry, labels};

const NS_PER_MS: i64 = 1_000_000;

/// Every log entry of the day from `first_ms` to `end_ms`, in time order.
pub fn build(world: &World, noise: &Noise, first_ms: i64, end_ms: i64) -> Vec<LogEntry> {
    let mut entries = Vec::new();
    faro(world, noise, first_ms, end_ms, &mut entries);
    grafana(world, noise, first_ms, end_ms, &mut entries);
    traefik_access(world, noise, first_ms, end_ms, &mut entries);
    traefik_log(world, first_ms, end_ms, &mut entries);
    entries.sort_by(|a, b| a.time_ns.cmp(&b.time_ns).then_with(|| a.stream.cmp(&b.stream)));
    entries
}

/// Times of a stream with about one entry every `mean_ms`, jittered.
fn arrivals(noise: &Noise, stream: &str, first_ms: i64, end_ms: i64, mean_ms: i64) -> Vec<(u64, i64)> {
    let mut times = Vec::new();
    let mut time_ms = first_ms;
    let mut index = 0u64;
    while time_ms < end_ms {
        let gap = (mean_ms as f64 * (0.4 + 1.2 * noise.uniform(stream, index))) as i64;
        time_ms += gap.max(1);
        if time_ms < end_ms {
            times.push((index, time_ms * NS_PER_MS + (noise.below(stream, index + 1_000_000, 1_000_000) as i64)));
        }
        index += 1;
    }
    times
}

const FIRST_NAMES: [&str; 8] = ["jana", "lukas", "marie", "felix", "sofia", "jonas", "lea", "paul"];
const LAST_NAMES: [&str; 8] = ["novak", "schulz", "weber", "fischer", "meyer", "wagner", "becker", "hoffmann"];
const MAIL_DOMAINS: [&str; 4] = ["example.com", "mail.example.org", "busflow-kunde.de", "example.net"];
/// IBANs with valid check digits (the PII rule validates mod 97).
const IBANS: [&str; 4] =
    ["DE89370400440532013000", "GB82WEST12345698765432", "NL91ABNA0417164300", "FR1420041010050500013M02606"];
const PHONES: [&str; 4] = ["+49 151 23456789", "+49 170 9876543", "+43 664 1234567", "+41 79 123 45 67"];

fn faro(world: &World, noise: &Noise, first_ms: i64, end_ms: i64, entries: &mut Vec<LogEntry>) {
    let stream = labels(&[("app", "busflow-web"), ("job", "faro")]);
    let meta = |index: u64, page: &str| {
        let session =
            noise.word("faro/session", index / 12, 10, b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789");
        let page_id = noise.word("faro/page", index, 5, b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789");
        let (browser, version, os) = match noise.below("faro/browser", index / 12, 3) {
            0 => ("Chrome", "131.0.0.0", "Windows 10"),
            1 => ("Safari", "18.1", "iOS 18.1"),
            _ => ("Firefox", "133.0", "Linux"),
        };
        format!(
            "sdk_name=@grafana/faro-web-sdk sdk_version=1.12.2 app_name=busflow-web app_version=2026.11.3 app_environment=production session_id={session} page_id={page_id} page_url=https://app.busflow.app{page} browser_name={browser} browser_version={version} browser_os=\"{os}\" browser_mobile={} browser_language=de-DE view_name=default",
            browser == "Safari"
        )
    };
    let trace = |index: u64| {
        format!("traceID={} spanID={}", noise.hex("faro/trace", index, 32), noise.hex("faro/span", index, 16))
    };
    let mut push = |time_ns: i64, line: String| entries.push(LogEntry { stream: stream.clone(), time_ns, line });
    for (index, time_ns) in arrivals(noise, "faro", first_ms, end_ms, 20 * SECOND_MS) {
        let timestamp = clock::go_time(time_ns);
        let line = match noise.below("faro/kind", index, 10) {
            0..=3 => {
                let (component, message, page) = match noise.below("faro/message", index, 4) {
                    0 => ("BookingForm", "booking form submitted", "/bookings/new"),
                    1 => ("TripSearch", "trip search returned results", "/trips"),
                    2 => ("SeatMap", "seat map loaded", "/trips/seats"),
                    _ => ("Inbox", "messages refreshed", "/messages"),
                };
                format!(
                    "timestamp=\"{timestamp}\" kind=log message=\"{message}\" level=info context_component={component} {} {}",
                    trace(index),
                    meta(index, page)
                )
            }
            4..=7 => {
                let lcp = 900.0 + 2400.0 * noise.uniform("faro/lcp", index);
                format!(
                    "timestamp=\"{timestamp}\" kind=measurement type=web-vitals lcp={lcp:.6} traceID= spanID= value_lcp={} {}",
                    (lcp * 10.0).round() / 10.0,
                    meta(index, "/")
                )
            }
            _ => format!(
                // Faro hashes the exception's stack trace: the same exception, the same hash.
                "timestamp=\"{timestamp}\" kind=exception type=TypeError value=\"Cannot read properties of undefined (reading 'seats')\" stacktrace=\"TypeError: Cannot read properties of undefined (reading 'seats')\\n  at renderSeatMap (https://app.busflow.app/assets/seats.js:1:4411)\" hash=17275028365403427601 {} {}",
                trace(index),
                meta(index, "/trips/seats")
            ),
        };
        push(time_ns, line);
    }
    // The synthetic checkout probe pays with a test card every 30 minutes: a reviewed false positive.
    let mut probe_ms = first_ms - first_ms.rem_euclid(30 * MINUTE_MS) + 30 * MINUTE_MS + 17 * SECOND_MS;
    let mut index = 0u64;
    while probe_ms < end_ms {
        let time_ns = probe_ms * NS_PER_MS;
        push(
            time_ns,
            format!(
                "timestamp=\"{}\" kind=log message=\"checkout probe paid with card=4242424242424242 (synthetic checkout probe)\" level=info context_component=Checkout {} {}",
                clock::go_time(time_ns),
                trace(900_000 + index),
                meta(900_000 + index, "/checkout")
            ),
        );
        probe_ms += 30 * MINUTE_MS;
        index += 1;
    }
    // The script's leaks: one line per rule, evenly spread over the episode.
    for episode in &world.episodes {
        let Cause::PiiLeak { rules } = &episode.cause else { continue };
        let spacing = pii_spacing(episode);
        for (position, rule) in rules.iter().enumerate() {
            let minute = episode.from_minute as f64 + spacing * position as f64;
            let time_ms = world.at_minute(minute);
            if time_ms < first_ms || time_ms >= end_ms {
                continue;
            }
            let time_ns = time_ms * NS_PER_MS + 311_000_000;
            let index = 800_000 + (episode.from_minute as u64) * 100 + position as u64;
            let pick = noise.below("faro/pii", index, 4) as usize;
            let timestamp = clock::go_time(time_ns);
            let line = match *rule {
                "email" => format!(
                    "timestamp=\"{timestamp}\" kind=log message=\"booking form submitted by {}.{}@{}\" level=info context_component=BookingForm {} {}",
                    FIRST_NAMES[pick * 2 % 8],
                    LAST_NAMES[(pick * 3 + position) % 8],
                    MAIL_DOMAINS[pick],
                    trace(index),
                    meta(index, "/bookings/new")
                ),
                "iban" => format!(
                    "timestamp=\"{timestamp}\" kind=exception type=Error value=\"IBAN {iban} rejected\" stacktrace=\"Error: IBAN {iban} rejected\\n  at submitPayment (https://app.busflow.app/assets/pay.js:1:2211)\" hash=11918291033271861722 {} {}",
                    trace(index),
                    meta(index, "/payments"),
                    iban = IBANS[(pick + position) % IBANS.len()],
                ),
                _ => format!(
                    "timestamp=\"{timestamp}\" kind=log message=\"callback requested for {}\" level=info context_component=Callback {} {}",
                    PHONES[(pick + position) % PHONES.len()],
                    trace(index),
                    meta(index, "/support")
                ),
            };
            push(time_ns, line);
        }
    }
}

fn grafana(world: &World, noise: &Noise, first_ms: i64, end_ms: i64, entries: &mut Vec<LogEntry>) {
    let stream = labels(&[("service_name", "busflow_grafana")]);
    let mut push = |time_ns: i64, line: String| entries.push(LogEntry { stream: stream.clone(), time_ns, line });
    let dashboards = ["trips", "bookings", "api-errors", "fleet", "invoices"];
    for (index, time_ns) in arrivals(noise, "grafana", first_ms, end_ms, 30 * SECOND_MS) {
        let dashboard = dashboards[noise.below("grafana/dashboard", index, dashboards.len() as u64) as usize];
        let milliseconds = 4.0 + 30.0 * noise.uniform("grafana/duration", index);
        push(
            time_ns,
            format!(
                "logger=context userId={} orgId={} uname={} t={} level=info msg=\"Request Completed\" method=GET path=/api/dashboards/uid/{dashboard} status=200 remote_addr=10.0.0.2 time_ms={} duration={milliseconds:.5}ms size={} referer=https://grafana.busflow.app/d/{dashboard} handler=/api/dashboards/uid/:uid status_source=server",
                10 + noise.below("grafana/user", index, 30),
                2 + noise.below("grafana/org", index, 6),
                ["ops@busflow.app", "dispatch@busflow.app", "finance@busflow.app"]
                    [noise.below("grafana/uname", index, 3) as usize],
                clock::rfc3339_nanos(time_ns),
                milliseconds as u64,
                4000 + noise.below("grafana/size", index, 9000),
            ),
        );
        // Now and then a browser comes back with an expired session cookie.
        if noise.below("grafana/session", index, 25) == 0 {
            push(
                time_ns + 80_000_000,
                format!(
                    "logger=authn.service t={} level=warn msg=\"Failed to authenticate request\" client=auth.client.session error=\"user token not found\"",
                    clock::rfc3339_nanos(time_ns + 80_000_000)
                ),
            );
        }
    }
    // Requests whose JWT Grafana cannot verify, while a JWT episode lasts.
    for (index, time_ns) in arrivals(noise, "grafana/jwt", first_ms, end_ms, 40 * SECOND_MS) {
        let time_ms = time_ns / NS_PER_MS;
        let Some(episode) = world.find(time_ms, |cause| matches!(cause, Cause::JwtFailures { .. })) else { continue };
        let error = if episode.cause == (Cause::JwtFailures { env_drift: true }) {
            "[auth.jwt.invalid] failed to verify JWT: square/go-jose/jwt: validation failed, token is expired (exp)"
        } else {
            "[auth.jwt.invalid] failed to verify JWT: square/go-jose: error in cryptographic primitive"
        };
        let dashboard = dashboards[noise.below("grafana/jwt-dashboard", index, dashboards.len() as u64) as usize];
        let lines = [
            format!(
                "logger=authn.service t={} level=warn msg=\"Failed to authenticate request\" client=auth.client.jwt error=\"{error}\"",
                clock::rfc3339_nanos(time_ns)
            ),
            format!(
                "logger=context userId=0 orgId=0 uname= t={} level=warn msg=Unauthorized error=\"{error}\" remote_addr=10.0.0.2 traceID=",
                clock::rfc3339_nanos(time_ns + 90_000)
            ),
            format!(
                "logger=context userId=0 orgId=0 uname= t={} level=info msg=\"Request Completed\" method=GET path=/d/{dashboard} status=401 remote_addr=10.0.0.2 time_ms=0 duration=612.31µs size=40 referer= handler=/d/:uid status_source=server",
                clock::rfc3339_nanos(time_ns + 130_000)
            ),
        ];
        for (offset, line) in lines.into_iter().enumerate() {
            push(time_ns + [0, 90_000, 130_000][offset], line);
        }
    }
}

/// The studio stack's services behind its Traefik: (name, address on busflow-traefik, port, paths).
const STUDIO_SERVICES: [(&str, &str, &[&str]); 3] = [
    ("context-engine", "10.0.1.14:8080", &["/api/projects", "/api/render", "/api/context"]),
    ("docs-hub", "10.0.1.22:3000", &["/docs/", "/docs/api", "/docs/guides/onboarding"]),
    ("landing", "10.0.1.9:80", &["/", "/pricing", "/about"]),
];

fn traefik_access(world: &World, noise: &Noise, first_ms: i64, end_ms: i64, entries: &mut Vec<LogEntry>) {
    let stream = labels(&[("job", "traefik"), ("log_type", "access")]);
    for (index, time_ns) in arrivals(noise, "traefik", first_ms, end_ms, 15 * SECOND_MS) {
        let start_ms = time_ns / NS_PER_MS;
        let pick = noise.below("traefik/service", index, 20);
        let (service, address, paths) = STUDIO_SERVICES[if pick < 11 {
            0
        } else if pick < 16 {
            1
        } else {
            2
        }];
        let path = paths[noise.below("traefik/path", index, paths.len() as u64) as usize];
        let method = if path == "/api/render" { "POST" } else { "GET" };
        let wrong_network = world
            .find(
                start_ms,
                |cause| matches!(cause, Cause::WrongNetwork { service: failing, .. } if *failing == service),
            )
            .and_then(|episode| match episode.cause {
                Cause::WrongNetwork { address, .. } => Some(address),
                _ => None,
            })
            // Traefik picks the wrong address for about two requests in three.
            .filter(|_| noise.below("traefik/network", index, 3) < 2);
        let crash_loop = world
            .find(start_ms, |cause| matches!(cause, Cause::CrashLoop { service: failing } if *failing == service))
            .is_some();
        let not_ready =
            service == "context-engine" && world.find(start_ms, |cause| *cause == Cause::QdrantDown).is_some();
        let client_port = 40_000 + noise.below("traefik/port", index, 20_000);
        let mut fields = Map::new();
        let duration_ns: i64;
        if let Some(address) = wrong_network {
            // The backend address is on a network Traefik is not attached to: the dial times out after 30 s.
            duration_ns = 30_000_000_000 + noise.below("traefik/duration", index, 900_000) as i64;
            fields.insert("DownstreamContentSize".into(), json!(15));
            fields.insert("DownstreamStatus".into(), json!(504));
            fields.insert("OriginContentSize".into(), json!(15));
            fields.insert("OriginDuration".into(), json!(duration_ns - 130_000));
            fields.insert("OriginStatus".into(), json!(504));
            fields.insert("ServiceAddr".into(), json!(address));
            fields.insert("ServiceName".into(), json!(format!("{service}@swarm")));
            fields.insert("ServiceURL".into(), json!(format!("http://{address}")));
        } else if crash_loop {
            // No healthy server: Traefik answers 503 itself, before choosing a backend.
            duration_ns = 200_000 + noise.below("traefik/duration", index, 200_000) as i64;
            fields.insert("DownstreamContentSize".into(), json!(19));
            fields.insert("DownstreamStatus".into(), json!(503));
            fields.insert("OriginContentSize".into(), json!(0));
            fields.insert("OriginDuration".into(), json!(0));
            fields.insert("OriginStatus".into(), json!(0));
        } else {
            // Answered by the backend; context-engine answers 503 while Qdrant is down.
            let status = if not_ready { 503 } else { 200 };
            let origin_ns = 2_000_000 + (60_000_000.0 * noise.uniform("traefik/duration", index)) as i64;
            duration_ns = origin_ns + 150_000;
            let size = if status == 200 { 800 + noise.below("traefik/size", index, 9000) } else { 38 };
            fields.insert("DownstreamContentSize".into(), json!(size));
            fields.insert("DownstreamStatus".into(), json!(status));
            fields.insert("OriginContentSize".into(), json!(size));
            fields.insert("OriginDuration".into(), json!(origin_ns));
            fields.insert("OriginStatus".into(), json!(status));
            fields.insert("ServiceAddr".into(), json!(address));
            fields.insert("ServiceName".into(), json!(format!("{service}@swarm")));
            fields.insert("ServiceURL".into(), json!(format!("http://{address}")));
        }
        let client = format!("10.0.0.{}", 2 + noise.below("traefik/client", index / 40, 3));
        fields.insert("ClientAddr".into(), json!(format!("{client}:{client_port}")));
        fields.insert("ClientHost".into(), json!(client));
        fields.insert("ClientPort".into(), json!(client_port.to_string()));
        fields.insert("ClientUsername".into(), json!("-"));
        fields.insert("Duration".into(), json!(duration_ns));
        fields.insert("Overhead".into(), json!(130_000 + noise.below("traefik/overhead", index, 50_000)));
        fields.insert("RequestAddr".into(), json!("studio.busflow.app"));
        fields.insert("RequestContentSize".into(), json!(if method == "POST" { 412 } else { 0 }));
        fields.insert("RequestCount".into(), json!(8_800 + index));
        fields.insert("RequestHost".into(), json!("studio.busflow.app"));
        fields.insert("RequestMethod".into(), json!(method));
        fields.insert("RequestPath".into(), json!(path));
        fields.insert("RequestPort".into(), json!("-"));
        fields.insert("RequestProtocol".into(), json!("HTTP/2.0"));
        fields.insert("RequestScheme".into(), json!("https"));
        fields.insert("RetryAttempts".into(), json!(0));
        fields.insert("RouterName".into(), json!(format!("{service}@swarm")));
        fields.insert("StartLocal".into(), json!(clock::rfc3339_nanos(time_ns)));
        fields.insert("StartUTC".into(), json!(clock::rfc3339_nanos(time_ns)));
        fields.insert("TLSCipher".into(), json!("TLS_AES_128_GCM_SHA256"));
        fields.insert("TLSVersion".into(), json!("1.3"));
        fields.insert("entryPointName".into(), json!("websecure"));
        fields.insert("level".into(), json!("info"));
        fields.insert("msg".into(), json!(""));
        // The access log writes a request when it ends.
        let end_ns = time_ns + duration_ns;
        fields.insert("time".into(), json!(clock::rfc3339_seconds(end_ns)));
        entries.push(LogEntry { stream: stream.clone(), time_ns: end_ns, line: Value::Object(fields).to_string() });
    }
}

fn traefik_log(world: &World, first_ms: i64, end_ms: i64, entries: &mut Vec<LogEntry>) {
    let stream: Labels = labels(&[("service_name", "busflow_traefik")]);
    let started_ns = first_ms * NS_PER_MS + 1_000_000_000;
    entries.push(LogEntry {
        stream: stream.clone(),
        time_ns: started_ns,
        line: format!(
            "{{\"level\":\"info\",\"version\":\"3.6.2\",\"time\":\"{}\",\"message\":\"Traefik version 3.6.2 built on 2025-11-18T14:02:11Z\"}}",
            clock::rfc3339_seconds(started_ns)
        ),
    });
    // Traefik retries a failed renewal; each attempt logs one error naming the resolver.
    let mut attempt_ms = first_ms + 5 * MINUTE_MS;
    while attempt_ms < end_ms {
        for cn in ["studio.busflow.app", "grafana.busflow.app"] {
            if !world.renewal_failing(cn, attempt_ms) {
                continue;
            }
            let time_ns = attempt_ms * NS_PER_MS;
            let (resolver, router, error) = if cn == "studio.busflow.app" {
                (
                    "letsencrypt-dns",
                    "studio@swarm",
                    format!(
                        "unable to generate a certificate for the domains [{cn}]: error: one or more domains had a problem:\n[{cn}] [{cn}] acme: error presenting token: cloudflare: failed to find zone busflow.app.: Invalid request headers (6003)\n"
                    ),
                )
            } else {
                (
                    "letsencrypt-http",
                    "grafana@swarm",
                    format!(
                        "unable to generate a certificate for the domains [{cn}]: error: one or more domains had a problem:\n[{cn}] invalid authorization: acme: error: 403 :: urn:ietf:params:acme:error:unauthorized :: Invalid response from http://{cn}/.well-known/acme-challenge/x9Q: 404\n"
                    ),
                )
            };
            let text = |value: &str| Value::String(value.to_owned()).to_string();
            entries.push(LogEntry {
                stream: stream.clone(),
                time_ns,
                line: format!(
                    "{{\"level\":\"error\",\"providerName\":{},\"routerName\":{},\"rule\":{},\"ACME CA\":\"https://acme-v02.api.letsencrypt.org/directory\",\"acmeCA\":\"https://acme-v02.api.letsencrypt.org/directory\",\"domains\":[{}],\"error\":{},\"time\":\"{}\",\"message\":\"Unable to obtain ACME certificate for domains\"}}",
                    text(&format!("{resolver}.acme")),
                    text(router),
                    text(&format!("Host(`{cn}`)")),
                    text(cn),
                    text(&error),
                    clock::rfc3339_seconds(time_ns)
                ),
            });
        }
        attempt_ms += 20 * MINUTE_MS;
    }
}
