//! Against the real Docker daemon, which `scripts/peers/docker.sh` starts (as
//! a swarm manager, with the image `localhost/busybox:static` imported).
//! Each test creates its own objects under a unique name and removes them; the
//! A8 test needs the exact names `busflow_postgres_exporter` and
//! `pgexporter_dsn`, so it removes leftovers of those first and is the only
//! test that touches them. `ALERTBOOK_SKIP_PEERS=1` skips these tests when no
//! daemon runs; otherwise a missing daemon fails them.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rules::{AlertState, Datasource, Manager};
use sources::docker::{DockerDatasource, DockerOptions};

use super::catalog_root;

const SOCKET: &str = "/var/run/docker.sock";
const IMAGE: &str = "localhost/busybox:static";

/// Whether the daemon is there; panics with the remedy unless skipping was asked for.
fn daemon() -> bool {
    if Path::new(SOCKET).exists() {
        let swarm = docker(&["info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"]);
        assert_eq!(
            swarm.trim(),
            "active true",
            "the Docker daemon is not a swarm manager: run scripts/peers/docker.sh"
        );
        return true;
    }
    if std::env::var("ALERTBOOK_SKIP_PEERS").as_deref() == Ok("1") {
        eprintln!("skipped: no Docker daemon at {SOCKET} and ALERTBOOK_SKIP_PEERS=1");
        return false;
    }
    panic!(
        "no Docker daemon at {SOCKET}: run scripts/peers/docker.sh (scripts/test does), or set ALERTBOOK_SKIP_PEERS=1"
    );
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().unwrap_or_else(|error| panic!("docker {args:?}: {error}"))
}

/// Runs the docker CLI; panics with its error output when it fails.
fn docker(args: &[&str]) -> String {
    let output = run(args);
    assert!(output.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A name no other test or run uses.
fn unique(role: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("abtest{}n{}_{role}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
}

/// Removes services, then secrets, then networks when dropped (also on panic).
#[derive(Default)]
struct Objects {
    services: Vec<String>,
    secrets: Vec<String>,
    networks: Vec<String>,
}

impl Objects {
    fn remove_all(&mut self) {
        for service in self.services.drain(..) {
            let _ = run(&["service", "rm", &service]);
        }
        // A secret or network is refused while a removed service's tasks still hold it.
        for (kind, names) in
            [("secret", std::mem::take(&mut self.secrets)), ("network", std::mem::take(&mut self.networks))]
        {
            for name in names {
                for _ in 0..60 {
                    let output = run(&[kind, "rm", &name]);
                    let stderr = String::from_utf8_lossy(&output.stderr);
                    if output.status.success() || stderr.contains("not found") || stderr.contains("No such") {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
    }
}

impl Drop for Objects {
    fn drop(&mut self) {
        self.remove_all();
    }
}

fn datasource(name: &str) -> Arc<DockerDatasource> {
    let mut options = DockerOptions::new(name, format!("unix://{SOCKET}"));
    options.cache_ttl = Duration::ZERO;
    Arc::new(DockerDatasource::connect(&options).expect("connect"))
}

fn create_secret(objects: &mut Objects, name: &str, labels: &[&str], value: &str) {
    let mut args = vec!["secret", "create"];
    for label in labels {
        args.extend(["--label", label]);
    }
    args.extend([name, "-"]);
    let mut child = Command::new("docker")
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("docker secret create");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(value.as_bytes()).expect("write secret");
    let output = child.wait_with_output().expect("docker secret create");
    assert!(output.status.success(), "docker secret create {name}: {}", String::from_utf8_lossy(&output.stderr));
    objects.secrets.push(name.to_owned());
}

#[test]
fn a_live_snapshot_reads_what_was_created() {
    if !daemon() {
        return;
    }
    let mut objects = Objects::default();
    let network = unique("net");
    docker(&["network", "create", "--driver", "overlay", "--label", "team=ops", &network]);
    objects.networks.push(network.clone());
    let secret = unique("secret");
    create_secret(&mut objects, &secret, &["stub=true"], "not a real value");
    let service = unique("svc");
    docker(&[
        "service",
        "create",
        "--detach",
        "--quiet",
        "--name",
        &service,
        "--replicas",
        "0",
        "--env",
        "EXPORTER_PORT=9187",
        "--label",
        "traefik.enable=false",
        "--secret",
        &secret,
        "--network",
        &network,
        IMAGE,
    ]);
    objects.services.push(service.clone());

    let snapshot = datasource("docker").read_now().expect("snapshot");
    let read = &snapshot.services[&service];
    assert_eq!((read.mode.as_str(), read.replicas, read.running), ("replicated", 0, 0));
    assert_eq!(read.image, IMAGE);
    assert_eq!(read.env.get("EXPORTER_PORT").map(String::as_str), Some("9187"));
    assert_eq!(read.labels.get("traefik.enable").map(String::as_str), Some("false"));
    assert_eq!(read.secrets, [secret.as_str()]);
    assert_eq!(read.networks, [network.as_str()]);
    assert_eq!(snapshot.secrets[&secret].labels.get("stub").map(String::as_str), Some("true"));
    let subnets = docker(&["network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", &network]);
    assert_eq!(snapshot.networks[&network].subnets, subnets.split_whitespace().collect::<Vec<_>>());
    assert_eq!(snapshot.networks[&network].driver, "overlay");
    let hostname = docker(&["node", "inspect", "self", "--format", "{{.Description.Hostname}}"]);
    assert_eq!(snapshot.nodes[hostname.trim()].role, "manager");
}

/// Serialises the tests that use the A8 names (one today; keep it so).
static A8_NAMES: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

const EXPORTER: &str = "busflow_postgres_exporter";
const SECRET: &str = "pgexporter_dsn";

fn firing(manager: &Manager) -> Vec<rules::Alert> {
    manager.statuses()[0].rules[0].alerts.iter().filter(|alert| alert.state == AlertState::Firing).cloned().collect()
}

#[test]
fn a8_fires_and_resolves_from_the_real_swarm() {
    if !daemon() {
        return;
    }
    let _names = A8_NAMES.lock();
    let mut objects = Objects { services: vec![EXPORTER.into()], secrets: vec![SECRET.into()], networks: Vec::new() };
    objects.remove_all();

    let files = catalog::load_rules(&[catalog_root().join("rules/docker.rules.yaml")])
        .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let mut options = rules::ManagerOptions::embedded(rules::EmbeddedDatasource::new(
        Arc::new(tsdb::MemStore::new()),
        promql::Engine::default(),
    ));
    let docker_source = datasource("docker");
    let resolved = docker_source.clone();
    options.resolve_datasource = Some(Arc::new(move |_: &str, group: &catalog::RuleGroup| {
        (group.datasource == catalog::Datasource::Docker).then(|| resolved.clone() as Arc<dyn Datasource>)
    }));
    let manager = Manager::new(&files, options);
    let mut time_ms = 1_700_000_000_000;
    let mut evaluate = || {
        time_ms += 60_000;
        let (notifications, errors) = manager.evaluate_group(0, time_ms);
        assert!(errors.is_empty(), "{errors:?}");
        notifications
    };

    // No exporter: quiet.
    evaluate();
    assert!(firing(&manager).is_empty());

    // The exporter runs without its secret: fires at once (the rule has no `for`) and is sent.
    objects.services.push(EXPORTER.into());
    docker(&["service", "create", "--detach", "--quiet", "--name", EXPORTER, "--replicas", "1", IMAGE]);
    let notifications = evaluate();
    let alerts = firing(&manager);
    assert_eq!(alerts.len(), 1, "missing secret");
    assert_eq!(alerts[0].labels.get("alertname"), Some("PostgresExporterDsnGateOpen"));
    assert_eq!(alerts[0].labels.get("severity"), Some("page"));
    assert_eq!(alerts[0].value, 1.0);
    assert_eq!(notifications.len(), 1, "the firing alert is handed to the notifier");

    // A stub secret attached: still fires.
    create_secret(&mut objects, SECRET, &["stub=true"], "stub");
    docker(&["service", "update", "--detach", "--quiet", "--secret-add", SECRET, EXPORTER]);
    evaluate();
    assert_eq!(firing(&manager).len(), 1, "stub secret");

    // Scaled to 0: resolves.
    docker(&["service", "update", "--detach", "--quiet", "--replicas", "0", EXPORTER]);
    evaluate();
    let alerts = &manager.statuses()[0].rules[0].alerts;
    assert!(firing(&manager).is_empty(), "scaled to 0: {alerts:?}");
    assert!(alerts.iter().all(|alert| alert.state == AlertState::Inactive && alert.resolved_at_ms.is_some()));

    // Back to one replica with the stub: fires again.
    docker(&["service", "update", "--detach", "--quiet", "--replicas", "1", EXPORTER]);
    evaluate();
    assert_eq!(firing(&manager).len(), 1, "scaled back up with the stub");

    // The real secret replaces the stub: resolves.
    docker(&["service", "update", "--detach", "--quiet", "--secret-rm", SECRET, EXPORTER]);
    objects.remove_all_secrets_named(SECRET);
    create_secret(&mut objects, SECRET, &[], "postgresql://exporter@db:5432/busflow");
    docker(&["service", "update", "--detach", "--quiet", "--secret-add", SECRET, EXPORTER]);
    evaluate();
    assert!(firing(&manager).is_empty(), "real secret attached");
    assert_eq!(manager.statuses()[0].rules[0].health, rules::Health::Ok);
    assert_eq!(docker_source.reads(), 6, "one Engine read per group evaluation");
}

impl Objects {
    /// Removes one secret now (the service no longer references it).
    fn remove_all_secrets_named(&mut self, name: &str) {
        self.secrets.retain(|secret| secret != name);
        let mut removed = Objects { services: Vec::new(), secrets: vec![name.to_owned()], networks: Vec::new() };
        removed.remove_all();
    }
}

#[test]
fn a_group_evaluation_reads_the_engine_once_for_all_its_rules() {
    if !daemon() {
        return;
    }
    let mut objects = Objects::default();
    let service = unique("svc");
    docker(&["service", "create", "--detach", "--quiet", "--name", &service, "--replicas", "0", IMAGE]);
    objects.services.push(service.clone());

    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("swarm.rules.yaml");
    std::fs::write(
        &path,
        format!(
            "groups:\n  - name: swarm\n    datasource: docker\n    rules:\n\
             \x20     - alert: Scaled\n        expr: services.{service}.replicas == 0\n\
             \x20     - alert: Present\n        expr: services.{service}.exists\n\
             \x20     - alert: NoSecrets\n        expr: count(services.{service}.secrets) == 0\n\
             \x20     - record: swarm:services:count\n        expr: count(services)\n"
        ),
    )
    .expect("write rules");
    let files = catalog::load_rules(&[path]).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let store = Arc::new(tsdb::MemStore::new());
    let mut options =
        rules::ManagerOptions::embedded(rules::EmbeddedDatasource::new(store.clone(), promql::Engine::default()));
    let docker_source = datasource("docker");
    let resolved = docker_source.clone();
    options.resolve_datasource =
        Some(Arc::new(move |_: &str, _: &catalog::RuleGroup| Some(resolved.clone() as Arc<dyn Datasource>)));
    let manager = Manager::new(&files, options);

    let (_, errors) = manager.evaluate_group(0, 60_000);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(docker_source.reads(), 1, "four rules, one read");
    let status = &manager.statuses()[0];
    assert!(status.rules[..3].iter().all(|rule| rule.alerts.len() == 1), "{:?}", status.rules);
    manager.evaluate_group(0, 120_000);
    assert_eq!(docker_source.reads(), 2, "a second evaluation reads again");

    // Other tests create services meanwhile: the count includes at least this one.
    let recorded = rules::EmbeddedDatasource::new(store, promql::Engine::default())
        .query("swarm:services:count", 120_000)
        .expect("query");
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].1 >= 1.0, "{recorded:?}");
}
