//! `alertbook probe`: one check of one target, as `alertbook run` would run
//! it from a `kind: probes` contract, printing the series it would write
//! (Prometheus text format) and, on failure, the reason and message.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

/// The arguments of `alertbook probe`.
#[derive(Debug, clap::Args)]
pub struct Arguments {
    /// The prober: http, tcp, tls, smtp or s3.
    #[arg(long, value_name = "PROBER", value_parser = ["http", "tcp", "tls", "smtp", "s3"])]
    prober: String,
    /// What to check: a URL for http and s3, host:port for tcp, tls and smtp.
    #[arg(value_name = "TARGET")]
    target: String,
    /// How long the check may take.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    timeout: String,
    /// The `probe` label [default: the target].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// http: the request method [default: GET].
    #[arg(long, value_name = "METHOD")]
    method: Option<String>,
    /// http: a request header, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// http: a request header whose value is read from a file, `Name=path` (repeatable).
    #[arg(long = "header-file", value_name = "NAME=PATH")]
    header_files: Vec<String>,
    /// http, s3: a status code that counts as success (repeatable) [default: any 2xx].
    #[arg(long = "valid-status-code", value_name = "CODE")]
    valid_status_codes: Vec<u16>,
    /// http: a regular expression the body must match.
    #[arg(long, value_name = "REGEX")]
    body_regex: Option<String>,
    /// http, smtp, s3: do not verify the peer's certificate chain and name.
    #[arg(long)]
    no_tls_verify: bool,
    /// http, tls, smtp, s3: trust the CA certificates of this PEM file instead of the system's.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<String>,
    /// tls, smtp: the TLS server name to ask for and verify [default: the target's host].
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// tcp: a line to send after connecting.
    #[arg(long, value_name = "LINE")]
    send: Option<String>,
    /// tcp: a regular expression the first line read must match.
    #[arg(long, value_name = "REGEX")]
    expect: Option<String>,
    /// smtp: do not upgrade with STARTTLS.
    #[arg(long)]
    no_starttls: bool,
    /// smtp: the EHLO name [default: alertbook].
    #[arg(long, value_name = "NAME")]
    ehlo: Option<String>,
    /// smtp: AUTH with the user name in this file (needs --password-file).
    #[arg(long, value_name = "FILE")]
    username_file: Option<String>,
    /// smtp: AUTH with the password in this file.
    #[arg(long, value_name = "FILE")]
    password_file: Option<String>,
    /// s3: the bucket to list.
    #[arg(long, value_name = "BUCKET")]
    bucket: Option<String>,
    /// s3: the SigV4 region [default: us-east-1].
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// s3: the file holding the access key id.
    #[arg(long, value_name = "FILE")]
    access_key_id_file: Option<String>,
    /// s3: the file holding the secret access key.
    #[arg(long, value_name = "FILE")]
    secret_access_key_file: Option<String>,
}

impl Arguments {
    /// The target as a contract would write it.
    fn target(&self) -> anyhow::Result<catalog::probes::ProbeTarget> {
        let mut headers = std::collections::BTreeMap::new();
        for header in &self.headers {
            let (name, value) =
                header.split_once(':').with_context(|| format!("--header {header:?} is not `Name: value`"))?;
            headers.insert(name.trim().to_owned(), value.trim().to_owned());
        }
        let mut header_files = std::collections::BTreeMap::new();
        for header in &self.header_files {
            let (name, path) =
                header.split_once('=').with_context(|| format!("--header-file {header:?} is not `Name=path`"))?;
            header_files.insert(name.trim().to_owned(), path.to_owned());
        }
        let prober = self.prober.as_str();
        Ok(catalog::probes::ProbeTarget {
            name: self.name.clone().unwrap_or_else(|| self.target.clone()),
            prober: self.prober.clone(),
            target: self.target.clone(),
            timeout: Some(self.timeout.clone()),
            method: self.method.clone(),
            headers,
            header_files,
            valid_status_codes: self.valid_status_codes.clone(),
            body_regex: self.body_regex.clone(),
            tls_verify: self.no_tls_verify.then_some(false),
            ca_file: self.ca_file.clone(),
            server_name: self.server_name.clone(),
            send: self.send.clone(),
            expect: self.expect.clone(),
            starttls: (prober == "smtp" && self.no_starttls).then_some(false),
            ehlo: self.ehlo.clone(),
            username_file: self.username_file.clone(),
            password_file: self.password_file.clone(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            access_key_id_file: self.access_key_id_file.clone(),
            secret_access_key_file: self.secret_access_key_file.clone(),
        })
    }
}

/// Runs one check; exit 0 when it succeeded, 1 when it failed, 2 for invalid arguments.
pub fn run(arguments: &Arguments) -> anyhow::Result<ExitCode> {
    let target = arguments.target()?;
    let timeout =
        catalog::duration::parse_duration(&arguments.timeout).map_err(|error| anyhow::anyhow!("--timeout: {error}"))?;
    // The interval only bounds the timeout; one check runs.
    let interval = timeout + Duration::from_millis(1);
    let errors = catalog::probes::validate_target(&target, interval);
    if !errors.is_empty() {
        for error in &errors {
            let flag = error.field.map(|field| format!("--{}: ", field.replace('_', "-"))).unwrap_or_default();
            eprintln!("error: {flag}{}", error.message);
        }
        return Ok(ExitCode::from(2));
    }
    let check = probe::Check::new("", &target, interval, Path::new("."))?;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX));
    let (outcome, batch) = runtime.block_on(async move { probe::Probe::new(check).run_series(now_ms).await });
    for (labels, samples) in &batch {
        for (_, value) in samples {
            println!("{}", exposition_line(labels, *value));
        }
    }
    match &outcome.failure {
        None => Ok(ExitCode::SUCCESS),
        Some(failure) => {
            eprintln!("probe failed ({}): {}", failure.reason, failure.message);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `name{label="value",...} value` in the Prometheus text format.
fn exposition_line(labels: &tsdb::Labels, value: f64) -> String {
    let mut line = labels.metric_name().unwrap_or_default().to_owned();
    let pairs: Vec<String> = labels
        .iter()
        .filter(|label| label.name != "__name__")
        .map(|label| {
            let escaped = label.value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            format!("{}=\"{escaped}\"", label.name)
        })
        .collect();
    line.push('{');
    line.push_str(&pairs.join(","));
    line.push('}');
    line.push(' ');
    line.push_str(&if value.is_nan() { "NaN".to_owned() } else { value.to_string() });
    line
}
