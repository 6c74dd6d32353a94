//! The client against a stand-in Engine on a TCP port that answers with the
//! recorded bodies (refusing API versions above 1.41, as Engine 20.10 does):
//! the tcp:// path, and the Engine's
//! 503 answer on a node that is not a swarm manager.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sources::docker::{DockerDatasource, DockerError, DockerOptions};

use super::{a8_condition, fixtures};

/// Serves one HTTP/1.1 answer per connection: `/version` from the recording,
/// the list endpoints from `set` or, when `swarm` is false, the Engine's 503.
fn start_engine(set: &'static str, swarm: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header == "\r\n" || header.is_empty() {
                    break;
                }
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let endpoint = path.split('?').next().unwrap_or_default().rsplit('/').next().unwrap_or_default();
            let (status, body) = if endpoint == "version" {
                ("200 OK", std::fs::read(fixtures().join(set).join("version.json")).expect("version"))
            } else if !swarm.load(Ordering::SeqCst) {
                ("503 Service Unavailable", std::fs::read(fixtures().join("not-swarm-manager.json")).expect("503"))
            } else if too_new(&path) {
                let message = r#"{"message":"client version is too new. Maximum supported API version is 1.41"}"#;
                ("400 Bad Request", message.as_bytes().to_vec())
            } else {
                match std::fs::read(fixtures().join(set).join(format!("{endpoint}.json"))) {
                    Ok(body) => ("200 OK", body),
                    Err(_) => ("404 Not Found", br#"{"message":"page not found"}"#.to_vec()),
                }
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
        }
    });
    format!("tcp://{address}")
}

/// A versioned path above 1.41, which Engine 20.10 refuses (unversioned paths get its own version).
fn too_new(path: &str) -> bool {
    let Some(version) = path.strip_prefix("/v").and_then(|rest| rest.split('/').next()) else { return false };
    let mut parts = version.split('.').map(|part| part.parse::<u32>().unwrap_or(u32::MAX));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) > (1, 41)
}

#[test]
fn a_tcp_engine_is_read() {
    let host = start_engine("busflow", Arc::new(AtomicBool::new(true)));
    let mut options = DockerOptions::new("remote", host);
    options.cache_ttl = std::time::Duration::ZERO;
    let datasource = DockerDatasource::connect(&options).expect("connect");
    let reading = datasource.reading(1_000).expect("reading");
    assert_eq!(reading.snapshot.services.len(), 5);
    assert_eq!(reading.snapshot.services["busflow_api"].replicas, 3);
    assert_eq!(rules::Datasource::query(&datasource, &a8_condition(), 1_000).expect("query"), Vec::new());
    assert_eq!(datasource.reads(), 1, "the rule reused the reading of its evaluation time");
    rules::Datasource::query(&datasource, &a8_condition(), 2_000).expect("query");
    assert_eq!(datasource.reads(), 2, "a new evaluation time reads again once the cache expired");
}

#[test]
fn a_node_outside_a_swarm_is_a_clear_error_until_it_joins() {
    let swarm = Arc::new(AtomicBool::new(false));
    let host = start_engine("busflow", swarm.clone());
    let mut options = DockerOptions::new("docker", host.clone());
    options.cache_ttl = std::time::Duration::ZERO;
    let datasource = DockerDatasource::connect(&options).expect("connect");

    let error = datasource.reading(1_000).expect_err("not a swarm manager");
    assert!(matches!(error, DockerError::NotSwarmManager { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "docker datasource `docker`: the Docker Engine at {host} is not a swarm manager (run `docker swarm \
             init`, or point the datasource at a manager node): This node is not a swarm manager. Use \"docker \
             swarm init\" or \"docker swarm join\" to connect this node to swarm and try again."
        )
    );
    let rule_error = rules::Datasource::query(&datasource, &a8_condition(), 2_000).expect_err("unavailable");
    assert!(matches!(rule_error, rules::DatasourceError::Unavailable(_)), "{rule_error:?}");

    // After `docker swarm init` the next evaluation reads the swarm.
    swarm.store(true, Ordering::SeqCst);
    assert!(datasource.reading(3_000).is_ok());
}

#[test]
fn a_closed_port_is_unreachable() {
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    let options = DockerOptions::new("docker", format!("tcp://127.0.0.1:{port}"));
    let error = DockerDatasource::connect(&options).expect("connect").reading(1_000).expect_err("closed");
    let message = error.to_string();
    assert!(matches!(error, DockerError::Unreachable { .. }), "{error:?}");
    assert!(
        message.starts_with(&format!(
            "docker datasource `docker`: cannot reach the Docker Engine at tcp://127.0.0.1:{port}"
        )),
        "{message}"
    );
}
