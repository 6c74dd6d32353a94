//! The s3 prober against an S3 server that validates SigV4 signatures
//! (s3s-fs on loopback): ListObjectsV2 with the keys from files.

use std::path::PathBuf;

use probe::Reason;

use super::support::{self, probe, target};

pub const ACCESS_KEY_ID: &str = "AKIDBUSFLOWOFFSITE";
pub const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYOFFSITEKEY";

/// A bucket `busflow-offsite` with one object, and the key files.
pub struct Storage {
    pub directory: tempfile::TempDir,
    pub endpoint: String,
    pub access_key_id_file: PathBuf,
    pub secret_access_key_file: PathBuf,
}

pub async fn storage() -> Storage {
    let directory = tempfile::tempdir().expect("temporary directory");
    let root = directory.path().join("s3");
    std::fs::create_dir_all(root.join("busflow-offsite")).expect("bucket");
    std::fs::write(root.join("busflow-offsite/daily-2026-12-01.tar.zst"), b"backup").expect("object");
    let address = support::s3_server(&root, ACCESS_KEY_ID, SECRET_ACCESS_KEY).await;
    let access_key_id_file = directory.path().join("access-key-id");
    let secret_access_key_file = directory.path().join("secret-access-key");
    std::fs::write(&access_key_id_file, format!("{ACCESS_KEY_ID}\n")).expect("write");
    std::fs::write(&secret_access_key_file, format!("{SECRET_ACCESS_KEY}\n")).expect("write");
    Storage { directory, endpoint: format!("http://{address}"), access_key_id_file, secret_access_key_file }
}

pub fn s3_target(storage: &Storage, bucket: &str) -> catalog::probes::ProbeTarget {
    let mut options = target("s3", &storage.endpoint);
    options.bucket = Some(bucket.into());
    options.region = Some("fsn1".into());
    options.access_key_id_file = Some(storage.access_key_id_file.to_string_lossy().into_owned());
    options.secret_access_key_file = Some(storage.secret_access_key_file.to_string_lossy().into_owned());
    options
}

fn failure(outcome: &probe::Outcome) -> (Reason, String) {
    let failure = outcome.failure.as_ref().unwrap_or_else(|| panic!("the check succeeded: {outcome:?}"));
    (failure.reason, failure.message.clone())
}

#[tokio::test]
async fn s3_lists_the_bucket_with_signed_requests() {
    let storage = storage().await;
    let base = storage.directory.path();
    let now = support::now_seconds() * 1000;
    let outcome = probe(s3_target(&storage, "busflow-offsite"), base).run(now).await;
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(outcome.http_status, Some(200));

    // A wrong secret: the server refuses the signature.
    std::fs::write(&storage.secret_access_key_file, "not-the-secret\n").expect("write");
    let outcome = probe(s3_target(&storage, "busflow-offsite"), base).run(now).await;
    let (reason, message) = failure(&outcome);
    assert_eq!(reason, Reason::Auth, "{message}");
    assert_eq!(outcome.http_status, Some(403));
    assert!(message.contains("SignatureDoesNotMatch"), "{message}");
    assert!(!message.contains("not-the-secret") && !message.contains(SECRET_ACCESS_KEY), "{message}");
    std::fs::write(&storage.secret_access_key_file, SECRET_ACCESS_KEY).expect("write");

    // An unknown access key.
    std::fs::write(&storage.access_key_id_file, "AKIDUNKNOWN").expect("write");
    let (reason, message) = failure(&probe(s3_target(&storage, "busflow-offsite"), base).run(now).await);
    assert_eq!(reason, Reason::Auth, "{message}");
    std::fs::write(&storage.access_key_id_file, ACCESS_KEY_ID).expect("write");

    // A clock far off is refused by the server's signature check, as S3 does.
    let (reason, message) = failure(&probe(s3_target(&storage, "busflow-offsite"), base).run(now - 3_600_000).await);
    assert_eq!(reason, Reason::Auth, "{message}");

    // A bucket that does not exist.
    let outcome = probe(s3_target(&storage, "no-such-bucket"), base).run(now).await;
    let (reason, message) = failure(&outcome);
    assert_eq!(reason, Reason::Status, "{message}");
    assert!(message.contains("NoSuchBucket"), "{message}");

    // Nothing listening.
    let mut closed = s3_target(&storage, "busflow-offsite");
    closed.target = format!("http://127.0.0.1:{}", support::closed_port());
    let (reason, _) = failure(&probe(closed, base).run(now).await);
    assert_eq!(reason, Reason::Refused);
}
