//! The snapshot model, conditions and runbook checks over recorded Engine API 1.41 answers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use catalog::expr::Expr;
use serde_json::{Value, json};
use sources::docker::{DockerDatasource, DockerError, DockerOptions, HealthHook, condition};
use tsdb::Labels;

use super::{a8_condition, catalog_root, recorded_snapshot};

#[test]
fn recorded_answers_become_the_snapshot() {
    let snapshot = recorded_snapshot("mixed");
    let exporter = &snapshot.services["abfx_exporter"];
    assert_eq!(exporter.mode, "replicated");
    assert_eq!((exporter.replicas, exporter.running), (1, 1));
    assert_eq!(exporter.image, "localhost/busybox:static");
    assert_eq!(exporter.env.get("DATA_SOURCE_URI").map(String::as_str), Some("postgres:5432/busflow"));
    assert_eq!(exporter.labels.get("traefik.enable").map(String::as_str), Some("false"));
    assert_eq!(exporter.secrets, ["abfx_dsn"]);
    assert_eq!(exporter.networks, ["abfx_backend"], "network IDs are resolved to names");
    assert_eq!(exporter.tasks.len(), 1);
    assert_eq!(exporter.tasks[0].state, "running");
    assert_eq!(exporter.tasks[0].node, "vm", "node IDs are resolved to hostnames");
    assert_eq!(exporter.tasks[0].slot, Some(1));

    let agent = &snapshot.services["abfx_agent"];
    assert_eq!((agent.mode.as_str(), agent.replicas), ("global", 1));
    assert_eq!(agent.tasks[0].slot, None);

    let failing = &snapshot.services["abfx_failing"];
    assert_eq!((failing.replicas, failing.running), (1, 0));
    assert_eq!(failing.tasks[0].state, "failed");
    assert_eq!(failing.tasks[0].desired_state, "shutdown");
    assert!(failing.tasks[0].error.contains("no such file or directory"), "{:?}", failing.tasks[0]);

    let secret = &snapshot.secrets["abfx_dsn"];
    assert_eq!(secret.labels.get("stub").map(String::as_str), Some("true"));
    assert!(!secret.id.is_empty() && !secret.created_at.is_empty());

    let backend = &snapshot.networks["abfx_backend"];
    assert_eq!((backend.driver.as_str(), backend.scope.as_str()), ("overlay", "swarm"));
    assert_eq!(backend.subnets, ["10.231.0.0/24"]);
    assert_eq!(backend.labels.get("team").map(String::as_str), Some("ops"));
    assert_eq!(snapshot.networks["bridge"].subnets, ["172.17.0.0/16"]);

    let node = &snapshot.nodes["vm"];
    assert_eq!((node.role.as_str(), node.availability.as_str(), node.state.as_str()), ("manager", "active", "ready"));
    assert!(node.leader);
    assert_eq!(node.engine_version, "20.10.24+dfsg1");
}

#[test]
fn environment_values_stay_out_of_debug_output() {
    let snapshot = recorded_snapshot("mixed");
    let printed = format!("{snapshot:?}");
    assert!(printed.contains("DATA_SOURCE_URI"), "names are shown");
    assert!(!printed.contains("postgres:5432/busflow"), "values are not: {printed}");
}

fn evaluate(text: &str, bindings: &Value) -> Vec<(Labels, f64)> {
    let parsed = condition::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"));
    condition::evaluate(&parsed, bindings).unwrap_or_else(|error| panic!("{text}: {error}"))
}

#[test]
fn a8_over_recorded_swarms() {
    let a8 = a8_condition();
    let fired = vec![(Labels::empty(), 1.0)];

    // The exporter runs with a pgexporter_dsn secret that has no stub label: quiet.
    let mut bindings = recorded_snapshot("busflow").bindings();
    assert_eq!(evaluate(&a8, &bindings), Vec::new());

    // The same secret labelled stub=true: fires.
    bindings["secrets"]["pgexporter_dsn"]["labels"] = json!({"stub": "true"});
    assert_eq!(evaluate(&a8, &bindings), fired);

    // Without the secret attached and without the secret at all: fires.
    let mut detached = recorded_snapshot("busflow");
    detached.services.get_mut("busflow_postgres_exporter").expect("exporter").secrets.clear();
    detached.secrets.clear();
    assert_eq!(evaluate(&a8, &detached.bindings()), fired);

    // Scaled to zero, or no exporter service: quiet.
    let mut scaled = detached.clone();
    scaled.services.get_mut("busflow_postgres_exporter").expect("exporter").replicas = 0;
    assert_eq!(evaluate(&a8, &scaled.bindings()), Vec::new());
    let mut removed = detached;
    removed.services.remove("busflow_postgres_exporter");
    assert_eq!(evaluate(&a8, &removed.bindings()), Vec::new());

    // The other recording lists the exporter with its (unlabelled) secret too.
    assert_eq!(evaluate(&a8, &recorded_snapshot("mixed").bindings()), Vec::new());
    assert_eq!(
        evaluate(
            "services.abfx_exporter.replicas > 0 and secrets.abfx_dsn.labels.stub == \"true\"",
            &recorded_snapshot("mixed").bindings()
        ),
        fired
    );
}

#[test]
fn conditions_read_tasks_networks_and_nodes() {
    let bindings = recorded_snapshot("mixed").bindings();
    assert_eq!(evaluate("count(services)", &bindings), vec![(Labels::empty(), 4.0)]);
    assert_eq!(evaluate("services.abfx_failing.running < services.abfx_failing.replicas", &bindings).len(), 1);
    assert_eq!(evaluate("count(services.abfx_failing.tasks) == 1", &bindings).len(), 1);
    assert_eq!(evaluate("contains(networks.abfx_backend.subnets, \"10.231.0.0/24\")", &bindings).len(), 1);
    assert_eq!(evaluate("networks.abfx_backend.driver == \"overlay\"", &bindings).len(), 1);
    assert_eq!(evaluate("nodes.vm.leader and nodes.vm.state == \"ready\"", &bindings).len(), 1);
    assert_eq!(evaluate("contains(services.abfx_exporter.labels, \"traefik.enable\")", &bindings).len(), 1);
}

/// Every name a runbook expression may read: check results, computed facts, contracts.
fn lookup(results: &BTreeMap<String, Value>, contracts: &Value, path: &[String]) -> Option<Value> {
    if path[0] == "contracts" {
        let mut value = contracts.get(path.get(1)?)?;
        for segment in &path[2..] {
            value = value.get(segment)?;
        }
        return Some(value.clone());
    }
    let mut value = results.get(&path[0])?;
    for segment in &path[1..] {
        value = value.get(segment)?;
    }
    Some(value.clone())
}

fn all_bound(expr: &Expr, results: &BTreeMap<String, Value>) -> bool {
    expr.free_paths().iter().all(|path| path[0] == "contracts" || results.contains_key(&path[0]))
}

/// Runs the Docker checks of one runbook entry over `bindings` in step order,
/// with its computed facts and predicates: returns the results, the branches
/// taken and whether each guard rail holds.
fn triage(
    entry: &catalog::Entry,
    bindings: &Value,
    contracts: &Value,
) -> (BTreeMap<String, Value>, Vec<String>, Vec<bool>) {
    let mut results = BTreeMap::new();
    let mut branches = Vec::new();
    let mut guards = Vec::new();
    for step in &entry.steps {
        if let Some(check) = &step.check {
            if check.datasource != catalog::Datasource::Docker {
                continue;
            }
            let query = expand_for_alert(&check.query);
            let value = match condition::check(&query, bindings) {
                Ok(value) => value,
                // A service the recording lacks: the fact is missing, as in a real run.
                Err(error) if error.message.starts_with("no service") => continue,
                Err(error) => panic!("{} step {}: {}: {error}", entry.id, step.number, query),
            };
            results.insert(check.result.clone(), value);
            for branch in &check.branches {
                let taken = match &branch.when {
                    None => true,
                    Some(predicate) => {
                        assert!(all_bound(&predicate.expr, &results), "{}: {}", entry.id, predicate.text);
                        let value = predicate
                            .expr
                            .evaluate(&|path: &[String]| lookup(&results, contracts, path))
                            .unwrap_or_else(|error| panic!("{}: {}: {error}", entry.id, predicate.text));
                        value == Value::Bool(true)
                    }
                };
                if taken {
                    branches.push(branch.branch.clone());
                    break;
                }
            }
        }
        for computed in &step.compute {
            if !all_bound(&computed.predicate.expr, &results) {
                continue;
            }
            let value = computed
                .predicate
                .expr
                .evaluate(&|path: &[String]| lookup(&results, contracts, path))
                .unwrap_or_else(|error| panic!("{}: {}: {error}", entry.id, computed.predicate.text));
            results.insert(computed.name.clone(), value);
        }
        if let Some(holds) = &step.holds
            && all_bound(&holds.expr, &results)
        {
            let value = holds
                .expr
                .evaluate(&|path: &[String]| lookup(&results, contracts, path))
                .unwrap_or_else(|error| panic!("{}: {}: {error}", entry.id, holds.text));
            guards.push(value == Value::Bool(true));
        }
    }
    (results, branches, guards)
}

#[test]
fn runbook_docker_checks_evaluate_over_a_recorded_swarm() {
    let catalog = catalog::load(&catalog_root()).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let contracts: Value =
        catalog.contracts.iter().map(|(name, contract)| (name.clone(), contract.tree.clone())).collect();
    let bindings = recorded_snapshot("busflow").bindings();
    let entry = |id: &str| catalog.entry(id).unwrap_or_else(|| panic!("no entry {id}"));

    // A2: stateful_worker runs 2 replicas, so the ceiling is floor(2 × 1.5) = 3;
    // busflow_api already runs 3, so scaling up would pass it.
    let (results, branches, guards) = triage(entry("A2"), &bindings, &contracts);
    assert_eq!(results["stateful_worker_replicas"], json!(2));
    assert_eq!(results["replica_ceiling"].as_f64(), Some(3.0));
    assert_eq!(results["api_replicas"], json!(3));
    assert_eq!(results["scale_to"].as_f64(), Some(3.0));
    assert_eq!(branches, ["at-ceiling"]);
    assert_eq!(guards, [true]);

    // A7: busflow_grafana's SameSite cookie setting drifted from the contract.
    let (results, branches, _) = triage(entry("A7"), &bindings, &contracts);
    assert_eq!(results["drifted_variables"], json!(["GF_SECURITY_COOKIE_SAMESITE"]));
    assert_eq!(branches, ["env-drift"]);

    // A8: the secret is attached and carries no `stub` label, so a real
    // secret; no DSN in the environment.
    let (results, branches, guards) = triage(entry("A8"), &bindings, &contracts);
    assert_eq!(results["exporter_secrets"], json!(["pgexporter_dsn"]));
    assert_eq!(branches, ["secret-attached", "secret-real"]);
    assert_eq!(guards, [true]);
    let mut detached = bindings.clone();
    detached["services"]["busflow_postgres_exporter"]["secrets"] = json!([]);
    detached["services"]["busflow_postgres_exporter"]["env"] = json!({"DATA_SOURCE_NAME": "x"});
    let (_, branches, guards) = triage(entry("A8"), &detached, &contracts);
    // This harness evaluates every Docker check whatever branch it sits on, so the
    // secret's own check still answers; the triage engine skips it on the
    // secret-missing path (catalog/busflow/tests/A8-triage.yaml).
    assert_eq!(branches, ["secret-missing", "secret-real"]);
    assert_eq!(guards, [false], "a DSN in the environment breaks the guard rail");

    // A11: context-engine's one task runs (tasks stable), and it sits on two
    // overlay networks; the recording has no qdrant service, so that fact is missing.
    let (results, branches, _) = triage(entry("A11"), &bindings, &contracts);
    let tasks = results["service_tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["state"], json!("running"));
    let mut networks = results["service_networks"].clone();
    networks.as_array_mut().expect("networks").sort_by_key(Value::to_string);
    assert_eq!(networks, json!(["busflow-studio_busflow-traefik", "busflow-studio_default"]));
    assert_eq!(branches, ["tasks-stable", "multi-network"]);
}

#[test]
fn every_docker_check_and_rule_of_the_catalog_is_understood() {
    let catalog = catalog::load(&catalog_root()).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let bindings = recorded_snapshot("busflow").bindings();
    let mut checks = 0;
    for entry in &catalog.entries {
        for check in entry.steps.iter().filter_map(|step| step.check.as_ref()) {
            if check.datasource == catalog::Datasource::Docker {
                // Services the recording lacks answer "no service"; the grammar is never refused.
                let query = expand_for_alert(&check.query);
                if let Err(error) = condition::check(&query, &bindings) {
                    assert!(error.message.starts_with("no service"), "{}: {}: {error}", entry.id, query);
                }
                checks += 1;
            }
        }
    }
    assert!(checks >= 6, "the catalog's Docker checks: {checks}");
    for (_, group, rule) in catalog.alert_rules() {
        if group.datasource == catalog::Datasource::Docker {
            condition::parse(&rule.expr).unwrap_or_else(|error| panic!("{}: {error}", rule.expr));
        }
    }
}

#[derive(Default)]
struct CountingHook {
    succeeded: AtomicU64,
    failed: AtomicU64,
    last_error: parking_lot::Mutex<Option<DockerError>>,
}

impl HealthHook for CountingHook {
    fn succeeded(&self) {
        self.succeeded.fetch_add(1, Ordering::SeqCst);
    }

    fn failed(&self, error: &DockerError) {
        self.failed.fetch_add(1, Ordering::SeqCst);
        *self.last_error.lock() = Some(error.clone());
    }
}

#[test]
fn an_absent_daemon_is_a_rule_error_naming_the_datasource() {
    let hook = Arc::new(CountingHook::default());
    let options = DockerOptions::new("swarm-a", "unix:///nonexistent/docker.sock");
    let datasource =
        Arc::new(DockerDatasource::connect(&options).expect("connect checks the host only").with_health(hook.clone()));

    let error = rules::Datasource::query(datasource.as_ref(), &a8_condition(), 1_000).expect_err("no daemon");
    assert_eq!(
        error.to_string(),
        "datasource unavailable: docker datasource `swarm-a`: cannot reach the Docker Engine at \
         unix:///nonexistent/docker.sock: no socket at /nonexistent/docker.sock"
    );

    // Through the rules manager: the rule's health is err with that message, and
    // one read is reported per group evaluation, whatever the number of rules.
    let files = catalog::load_rules(&[catalog_root().join("rules/docker.rules.yaml")])
        .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let mut options = rules::ManagerOptions::embedded(rules::EmbeddedDatasource::new(
        Arc::new(tsdb::MemStore::new()),
        promql::Engine::default(),
    ));
    let docker = datasource.clone();
    options.resolve_datasource = Some(Arc::new(move |_: &str, group: &catalog::RuleGroup| {
        (group.datasource == catalog::Datasource::Docker).then(|| docker.clone() as Arc<dyn rules::Datasource>)
    }));
    let manager = rules::Manager::new(&files, options);
    let (notifications, errors) = manager.evaluate_group(0, 60_000);
    assert!(notifications.is_empty());
    assert_eq!(errors.len(), 1, "{errors:?}");
    let status = &manager.statuses()[0].rules[0];
    assert_eq!(status.health, rules::Health::Err);
    let message = status.last_error.as_deref().unwrap_or_default();
    assert!(message.contains("docker datasource `swarm-a`: cannot reach the Docker Engine"), "{message}");
    assert_eq!(hook.failed.load(Ordering::SeqCst), 2);
    assert_eq!(hook.succeeded.load(Ordering::SeqCst), 0);
    assert!(matches!(*hook.last_error.lock(), Some(DockerError::Unreachable { .. })));

    // A bad condition is a query error and costs no read.
    let reads = datasource.reads();
    let error = rules::Datasource::query(datasource.as_ref(), "services.x.replica > 0", 120_000).expect_err("typo");
    assert!(
        matches!(&error, rules::DatasourceError::Query(message) if message.contains("no field `replica`")),
        "{error}"
    );
    assert_eq!(datasource.reads(), reads);
}

#[test]
fn a_failed_read_is_shared_by_the_rules_of_one_evaluation() {
    let hook = Arc::new(CountingHook::default());
    let options = DockerOptions::new("docker", "unix:///nonexistent/docker.sock");
    let datasource = Arc::new(DockerDatasource::connect(&options).expect("connect").with_health(hook.clone()));
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("swarm.rules.yaml");
    std::fs::write(
        &path,
        "groups:\n  - name: swarm\n    datasource: docker\n    rules:\n\
         \x20     - alert: A\n        expr: services.a.replicas > 0\n\
         \x20     - alert: B\n        expr: secrets.b.exists\n\
         \x20     - alert: C\n        expr: count(networks) > 0\n",
    )
    .expect("write rules");
    let files = catalog::load_rules(&[path]).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let mut manager_options = rules::ManagerOptions::embedded(rules::EmbeddedDatasource::new(
        Arc::new(tsdb::MemStore::new()),
        promql::Engine::default(),
    ));
    let docker = datasource.clone();
    manager_options.resolve_datasource =
        Some(Arc::new(move |_: &str, _: &catalog::RuleGroup| Some(docker.clone() as Arc<dyn rules::Datasource>)));
    let manager = rules::Manager::new(&files, manager_options);
    let (_, errors) = manager.evaluate_group(0, 60_000);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(manager.statuses()[0].rules.iter().all(|rule| rule.health == rules::Health::Err));
    assert_eq!(hook.failed.load(Ordering::SeqCst), 1, "three rules, one attempt");
    manager.evaluate_group(0, 120_000);
    assert_eq!(hook.failed.load(Ordering::SeqCst), 2, "the next evaluation tries again");
}

/// A check's query as triage expands it (a Go template over the alert) for an
/// alert about context-engine, the service the recorded swarm runs.
fn expand_for_alert(query: &str) -> String {
    let data = catalog::template::TemplateData {
        labels: [("probe".to_owned(), "context-engine".to_owned())].into(),
        ..Default::default()
    };
    catalog::template::expand("query", query, &data, None).unwrap_or_else(|error| panic!("{query}: {error}"))
}
