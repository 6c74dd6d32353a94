//! The swarm state one evaluation reads: services, their tasks, secrets,
//! networks and nodes, as the Engine API lists them at one moment.
//!
//! [`Snapshot::from_engine`] builds it from the Engine API's list answers
//! (`GET /services?status=true`, `/tasks`, `/secrets`, `/networks`, `/nodes`,
//! decoded into bollard's models), so the same code runs over a live daemon
//! and over recorded answers in tests. [`Snapshot::bindings`] is the JSON tree
//! conditions and checks read (see the module docs of `super::condition`).
//!
//! Secrets hold metadata and labels only: the Engine API never returns a
//! secret's value and this module has no field for one. Service environment
//! values are kept (the runbook compares them with contracts) and never
//! printed: [`Service`]'s `Debug` shows variable names only.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use bollard::models::{Network as EngineNetwork, Node as EngineNode, Secret as EngineSecret, Service as EngineService};
use bollard::models::{Task as EngineTask, TaskState};
use serde_json::{Map, Value, json};

/// The swarm at one moment, keyed by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub services: BTreeMap<String, Service>,
    pub secrets: BTreeMap<String, Secret>,
    pub networks: BTreeMap<String, Network>,
    /// Keyed by hostname.
    pub nodes: BTreeMap<String, Node>,
}

/// A swarm service and its tasks.
#[derive(Clone, Default, PartialEq)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub image: String,
    /// `replicated`, `global`, `replicated-job` or `global-job`.
    pub mode: String,
    /// Desired replicas: `Replicas` of a replicated service, the desired task
    /// count the Engine reports (`ServiceStatus.DesiredTasks`) for the other modes.
    pub replicas: u64,
    /// Tasks in state `running` (`ServiceStatus.RunningTasks`).
    pub running: u64,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Names of the secrets the service references.
    pub secrets: Vec<String>,
    /// Names of the networks the service is attached to (IDs when the network is not listed).
    pub networks: Vec<String>,
    pub tasks: Vec<Task>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("image", &self.image)
            .field("mode", &self.mode)
            .field("replicas", &self.replicas)
            .field("running", &self.running)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("labels", &self.labels)
            .field("secrets", &self.secrets)
            .field("networks", &self.networks)
            .field("tasks", &self.tasks)
            .finish()
    }
}

/// One task of a service (`docker service ps`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Task {
    pub id: String,
    /// The replica slot of a replicated service; `None` for global services.
    pub slot: Option<i64>,
    /// The node's hostname, or its ID when the node is not listed; empty when unassigned.
    pub node: String,
    pub state: String,
    pub desired_state: String,
    pub message: String,
    /// The task's error (`Status.Err`), empty when none.
    pub error: String,
    pub timestamp: String,
}

/// A secret's metadata; the Engine API never returns the value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Secret {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub scope: String,
    pub subnets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    pub id: String,
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `ready`, `down`, `unknown` or `disconnected`.
    pub state: String,
    pub leader: bool,
    pub engine_version: String,
    pub labels: BTreeMap<String, String>,
}

fn sorted(map: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    map.unwrap_or_default().into_iter().collect()
}

fn text(value: Option<impl ToString>) -> String {
    value.map(|value| value.to_string()).unwrap_or_default()
}

impl Snapshot {
    /// Builds the snapshot from the Engine API's list answers.
    pub fn from_engine(
        services: Vec<EngineService>,
        tasks: Vec<EngineTask>,
        secrets: Vec<EngineSecret>,
        networks: Vec<EngineNetwork>,
        nodes: Vec<EngineNode>,
    ) -> Self {
        let nodes: BTreeMap<String, Node> = nodes
            .into_iter()
            .map(|node| {
                let spec = node.spec.unwrap_or_default();
                let description = node.description.unwrap_or_default();
                let id = node.id.unwrap_or_default();
                let hostname = description.hostname.filter(|name| !name.is_empty()).unwrap_or_else(|| id.clone());
                Node {
                    id,
                    hostname,
                    role: text(spec.role),
                    availability: text(spec.availability),
                    state: text(node.status.and_then(|status| status.state)),
                    leader: node.manager_status.and_then(|status| status.leader).unwrap_or(false),
                    engine_version: text(description.engine.and_then(|engine| engine.engine_version)),
                    labels: sorted(spec.labels),
                }
            })
            .map(|node| (node.hostname.clone(), node))
            .collect();
        let node_names: HashMap<&str, &str> =
            nodes.values().map(|node| (node.id.as_str(), node.hostname.as_str())).collect();

        let networks: BTreeMap<String, Network> = networks
            .into_iter()
            .map(|network| Network {
                id: network.id.unwrap_or_default(),
                name: network.name.unwrap_or_default(),
                driver: network.driver.unwrap_or_default(),
                scope: network.scope.unwrap_or_default(),
                subnets: network
                    .ipam
                    .and_then(|ipam| ipam.config)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|config| config.subnet)
                    .collect(),
                labels: sorted(network.labels),
            })
            .map(|network| (network.name.clone(), network))
            .collect();
        let network_names: HashMap<&str, &str> =
            networks.values().map(|network| (network.id.as_str(), network.name.as_str())).collect();

        let secrets: BTreeMap<String, Secret> = secrets
            .into_iter()
            .map(|secret| {
                let spec = secret.spec.unwrap_or_default();
                Secret {
                    id: secret.id.unwrap_or_default(),
                    name: spec.name.unwrap_or_default(),
                    labels: sorted(spec.labels),
                    created_at: text(secret.created_at),
                    updated_at: text(secret.updated_at),
                }
            })
            .map(|secret| (secret.name.clone(), secret))
            .collect();

        let mut tasks_by_service: HashMap<String, Vec<Task>> = HashMap::new();
        for task in tasks {
            let status = task.status.unwrap_or_default();
            let node_id = task.node_id.unwrap_or_default();
            let node = node_names.get(node_id.as_str()).map_or(node_id.clone(), |name| (*name).to_owned());
            tasks_by_service.entry(task.service_id.unwrap_or_default()).or_default().push(Task {
                id: task.id.unwrap_or_default(),
                slot: task.slot,
                node,
                state: text(status.state),
                desired_state: text(task.desired_state),
                message: status.message.unwrap_or_default(),
                error: status.err.unwrap_or_default(),
                timestamp: text(status.timestamp),
            });
        }

        let services = services
            .into_iter()
            .map(|service| {
                let id = service.id.unwrap_or_default();
                let spec = service.spec.unwrap_or_default();
                let template = spec.task_template.unwrap_or_default();
                let container = template.container_spec.unwrap_or_default();
                let mode = spec.mode.unwrap_or_default();
                let status = service.service_status.unwrap_or_default();
                let mut tasks = tasks_by_service.remove(&id).unwrap_or_default();
                // Newest first within a slot, as `docker service ps` lists them.
                tasks.sort_by(|a, b| a.slot.cmp(&b.slot).then_with(|| b.timestamp.cmp(&a.timestamp)));
                let (mode_name, replicas) = if let Some(replicated) = mode.replicated {
                    ("replicated", replicated.replicas.map_or(1, |replicas| replicas.max(0) as u64))
                } else if mode.global.is_some() {
                    ("global", status.desired_tasks.unwrap_or_else(|| desired_count(&tasks)))
                } else if mode.replicated_job.is_some() {
                    ("replicated-job", status.desired_tasks.unwrap_or_else(|| desired_count(&tasks)))
                } else if mode.global_job.is_some() {
                    ("global-job", status.desired_tasks.unwrap_or_else(|| desired_count(&tasks)))
                } else {
                    ("replicated", 1)
                };
                let running = status.running_tasks.unwrap_or_else(|| {
                    tasks.iter().filter(|task| task.state == TaskState::RUNNING.to_string()).count() as u64
                });
                // Current attachments live in the task template; `Spec.Networks` is the deprecated place.
                let attachments = template.networks.or(spec.networks).unwrap_or_default();
                Service {
                    name: spec.name.unwrap_or_default(),
                    image: container.image.unwrap_or_default(),
                    mode: mode_name.to_owned(),
                    replicas,
                    running,
                    env: container
                        .env
                        .unwrap_or_default()
                        .into_iter()
                        .map(|entry| match entry.split_once('=') {
                            Some((name, value)) => (name.to_owned(), value.to_owned()),
                            None => (entry, String::new()),
                        })
                        .collect(),
                    labels: sorted(spec.labels),
                    secrets: container
                        .secrets
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|secret| secret.secret_name)
                        .collect(),
                    networks: attachments
                        .into_iter()
                        .filter_map(|attachment| attachment.target)
                        .map(|target| {
                            network_names.get(target.as_str()).map_or(target.clone(), |name| (*name).to_owned())
                        })
                        .collect(),
                    tasks,
                    id,
                }
            })
            .map(|service| (service.name.clone(), service))
            .collect();

        Self { services, secrets, networks, nodes }
    }

    /// The JSON tree conditions and checks read: `services`, `secrets`,
    /// `networks` and `nodes`, each an object keyed by name.
    pub fn bindings(&self) -> Value {
        let services: Map<String, Value> =
            self.services.iter().map(|(name, service)| (name.clone(), service_value(service))).collect();
        let secrets: Map<String, Value> =
            self.secrets.iter().map(|(name, secret)| (name.clone(), secret_value(secret))).collect();
        let networks: Map<String, Value> =
            self.networks.iter().map(|(name, network)| (name.clone(), network_value(network))).collect();
        let nodes: Map<String, Value> =
            self.nodes.iter().map(|(name, node)| (name.clone(), node_value(node))).collect();
        json!({"services": services, "secrets": secrets, "networks": networks, "nodes": nodes})
    }
}

fn desired_count(tasks: &[Task]) -> u64 {
    tasks.iter().filter(|task| task.desired_state == TaskState::RUNNING.to_string()).count() as u64
}

fn service_value(service: &Service) -> Value {
    json!({
        "exists": true,
        "id": service.id,
        "name": service.name,
        "image": service.image,
        "mode": service.mode,
        "replicas": service.replicas,
        "running": service.running,
        "env": service.env,
        "labels": service.labels,
        "secrets": service.secrets,
        "networks": service.networks,
        "tasks": service.tasks.iter().map(task_value).collect::<Vec<_>>(),
    })
}

fn task_value(task: &Task) -> Value {
    json!({
        "id": task.id,
        "slot": task.slot,
        "node": task.node,
        "state": task.state,
        "desired_state": task.desired_state,
        "message": task.message,
        "error": task.error,
        "timestamp": task.timestamp,
    })
}

fn secret_value(secret: &Secret) -> Value {
    json!({
        "exists": true,
        "id": secret.id,
        "name": secret.name,
        "labels": secret.labels,
        "created_at": secret.created_at,
        "updated_at": secret.updated_at,
    })
}

fn network_value(network: &Network) -> Value {
    json!({
        "exists": true,
        "id": network.id,
        "name": network.name,
        "driver": network.driver,
        "scope": network.scope,
        "subnets": network.subnets,
        "labels": network.labels,
    })
}

fn node_value(node: &Node) -> Value {
    json!({
        "exists": true,
        "id": node.id,
        "hostname": node.hostname,
        "role": node.role,
        "availability": node.availability,
        "state": node.state,
        "leader": node.leader,
        "engine_version": node.engine_version,
        "labels": node.labels,
    })
}

/// The object a name that is not in the swarm reads as: `exists` false,
/// counts 0, collections empty, text null. A condition on a missing service
/// therefore sees `replicas == 0` and no secrets, and a missing secret has no labels.
pub fn absent(root: &str, name: &str) -> Value {
    match root {
        "services" => json!({
            "exists": false, "id": null, "name": name, "image": null, "mode": null, "replicas": 0,
            "running": 0, "env": {}, "labels": {}, "secrets": [], "networks": [], "tasks": [],
        }),
        "secrets" => {
            json!({"exists": false, "id": null, "name": name, "labels": {}, "created_at": null, "updated_at": null})
        }
        "networks" => json!({
            "exists": false, "id": null, "name": name, "driver": null, "scope": null, "subnets": [], "labels": {},
        }),
        _ => json!({
            "exists": false, "id": null, "hostname": name, "role": null, "availability": null, "state": null,
            "leader": false, "engine_version": null, "labels": {},
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalog::docker_shape::{ROOTS, TASK_FIELDS};

    fn keys(value: &Value) -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().expect("object").keys().cloned().collect();
        keys.sort();
        keys
    }

    fn sorted_names(names: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn bindings_have_exactly_the_fields_the_catalog_checks_conditions_against() {
        let mut snapshot = Snapshot::default();
        snapshot.services.insert("s".into(), Service { tasks: vec![Task::default()], ..Default::default() });
        snapshot.secrets.insert("s".into(), Secret::default());
        snapshot.networks.insert("s".into(), Network::default());
        snapshot.nodes.insert("s".into(), Node::default());
        let bindings = snapshot.bindings();
        assert_eq!(keys(&bindings), sorted_names(&ROOTS.iter().map(|(root, _)| *root).collect::<Vec<_>>()));
        for (root, fields) in ROOTS {
            assert_eq!(keys(&bindings[root]["s"]), sorted_names(fields), "{root}");
        }
        assert_eq!(keys(&bindings["services"]["s"]["tasks"][0]), sorted_names(TASK_FIELDS));
    }
}
