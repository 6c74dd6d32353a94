//! The `s3` prober: one SigV4-signed `ListObjectsV2` of the bucket with
//! `max-keys=1` (path style: `<endpoint>/<bucket>?list-type=2&max-keys=1`),
//! the key pair read from its files at each check, signed by `aws-sigv4`
//! (the AWS SDK's signer) at the check's time from the injected clock.
//!
//! 2xx with a `ListBucketResult` is success; 401/403 and the S3 error codes
//! of bad credentials (`SignatureDoesNotMatch`, `InvalidAccessKeyId`,
//! `AccessDenied`, `ExpiredToken`...) are `auth`; other statuses are
//! `status`, with S3's error code in the message.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode, sign,
};

use crate::check::Check;
use crate::http::HttpClient;
use crate::outcome::{Failure, Outcome, Reason};

/// The most body bytes read from an answer.
const MAX_BODY: usize = 64 * 1024;

/// The `<Code>` of an S3 error answer.
pub fn error_code(body: &str) -> Option<&str> {
    let start = body.find("<Code>")? + "<Code>".len();
    let end = body[start..].find("</Code>")? + start;
    Some(body[start..end].trim())
}

/// The request URL of the check: path style, the bucket percent-encoded.
pub fn list_url(endpoint: &str, bucket: &str) -> Result<url::Url, Failure> {
    let mut url = url::Url::parse(endpoint)
        .map_err(|error| Failure::new(Reason::Config, format!("endpoint {endpoint:?}: {error}")))?;
    url.path_segments_mut()
        .map_err(|()| Failure::new(Reason::Config, format!("endpoint {endpoint:?} cannot take a path")))?
        .pop_if_empty()
        .push(bucket)
        .push("");
    url.set_query(Some("list-type=2&max-keys=1"));
    Ok(url)
}

/// Signs a GET of `url` at `time`; the headers to send.
pub fn signed_headers(
    url: &url::Url,
    region: &str,
    access_key_id: &str,
    secret_access_key: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, Failure> {
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let identity =
        aws_credential_types::Credentials::new(access_key_id, secret_access_key, None, None, "alertbook").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|error| Failure::new(Reason::Config, format!("cannot sign: {error}")))?
        .into();
    let headers = [("host", host.as_str())];
    let signable = SignableRequest::new("GET", url.as_str(), headers.into_iter(), SignableBody::Bytes(&[]))
        .map_err(|error| Failure::new(Reason::Config, format!("cannot sign: {error}")))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|error| Failure::new(Reason::Config, format!("cannot sign: {error}")))?
        .into_parts();
    let (signed, _) = instructions.into_parts();
    Ok(signed.into_iter().map(|header| (header.name().to_owned(), header.value().to_owned())).collect())
}

/// The `s3` prober; `now_ms` is the signing time.
pub async fn probe(check: &Check, client: &HttpClient, outcome: &mut Outcome, now_ms: i64) -> Result<(), Failure> {
    let options = &check.options;
    let bucket = options.bucket.as_deref().unwrap_or_default();
    let region = options.region.as_deref().unwrap_or("us-east-1");
    let access_key_id =
        check.read_secret("access_key_id_file", options.access_key_id_file.as_deref().unwrap_or_default())?;
    let secret_access_key =
        check.read_secret("secret_access_key_file", options.secret_access_key_file.as_deref().unwrap_or_default())?;
    let url = list_url(&check.labels.target, bucket)?;
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(now_ms).unwrap_or(0));
    let headers = signed_headers(&url, region, &access_key_id, &secret_access_key, time)?;
    let mut request = client.client.get(url.as_str()).timeout(check.timeout);
    for (name, value) in headers {
        let mut value = reqwest::header::HeaderValue::from_str(&value)
            .map_err(|_| Failure::new(Reason::Config, format!("the signed header {name} is not a header value")))?;
        value.set_sensitive(name.eq_ignore_ascii_case("authorization"));
        request = request.header(name, value);
    }
    client.verifier.take();
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            let seen = client.verifier.take();
            outcome.earliest_cert_expiry = seen.earliest_expiry();
            return Err(crate::http::request_failure(&error, &seen));
        }
    };
    outcome.earliest_cert_expiry = client.verifier.take().earliest_expiry();
    let status = response.status().as_u16();
    outcome.http_status = Some(status);
    let body = crate::http::read_body(response, MAX_BODY).await?;
    let body = String::from_utf8_lossy(&body);
    let code = error_code(&body).unwrap_or("").to_owned();
    let described = if code.is_empty() { format!("status {status}") } else { format!("status {status}: {code}") };
    let auth_code = matches!(
        code.as_str(),
        "SignatureDoesNotMatch"
            | "InvalidAccessKeyId"
            | "AccessDenied"
            | "ExpiredToken"
            | "InvalidToken"
            | "AuthorizationHeaderMalformed"
            | "RequestTimeTooSkewed"
    );
    if status == 401 || status == 403 || auth_code {
        return Err(Failure::new(Reason::Auth, format!("ListObjectsV2 of {bucket:?}: {described}")));
    }
    crate::http::check_status(status, &options.valid_status_codes)
        .map_err(|_| Failure::new(Reason::Status, format!("ListObjectsV2 of {bucket:?}: {described}")))?;
    if !body.contains("<ListBucketResult") {
        return Err(Failure::new(Reason::Protocol, "the answer is not a ListBucketResult"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_path_style_and_error_codes_are_read() {
        assert_eq!(
            list_url("https://fsn1.your-objectstorage.com", "busflow-offsite").expect("url").as_str(),
            "https://fsn1.your-objectstorage.com/busflow-offsite/?list-type=2&max-keys=1"
        );
        assert_eq!(
            list_url("http://127.0.0.1:9000/prefix/", "b").expect("url").as_str(),
            "http://127.0.0.1:9000/prefix/b/?list-type=2&max-keys=1"
        );
        let body = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>x</Message></Error>";
        assert_eq!(error_code(body), Some("SignatureDoesNotMatch"));
        assert_eq!(error_code("<ListBucketResult/>"), None);
    }

    #[test]
    fn signing_follows_the_aws_test_suite_shape() {
        let url = list_url("https://examplebucket.s3.amazonaws.com", "b").expect("url");
        let time = UNIX_EPOCH + Duration::from_secs(1_369_353_600); // 2013-05-24T00:00:00Z
        let headers = signed_headers(&url, "us-east-1", "AKIAIOSFODNN7EXAMPLE", "secret", time).expect("signed");
        let find = |name: &str| headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
        assert_eq!(find("x-amz-date").as_deref(), Some("20130524T000000Z"));
        assert_eq!(
            find("x-amz-content-sha256").as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        let authorization = find("authorization").expect("authorization");
        assert!(
            authorization.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
            ),
            "{authorization}"
        );
        assert!(!authorization.contains("secret"));
    }
}
