//! The swarm at a moment, as the Docker Engine API (1.41+) lists it: the
//! Busflow stack, the studio stack and the observability services, their
//! tasks (with the history `docker service ps` shows), secrets (metadata
//! only), overlay networks and nodes. Shapes as in the recorded answers of
//! `crates/sources/tests/fixtures/docker/`.

use serde_json::{Value, json};

use crate::clock::{self, DAY_MS, MINUTE_MS};
use crate::facts::{API_IMAGE, DockerState, Facts, object_id, task_id};
use crate::metrics::NODES;
use crate::script::Cause;

/// The overlay networks: (name, subnet).
const NETWORKS: [(&str, &str); 6] = [
    ("ingress", "10.0.0.0/24"),
    ("busflow-studio_busflow-traefik", "10.0.1.0/24"),
    ("busflow-studio_busflow-qdrant", "10.0.2.0/24"),
    ("busflow-studio_docs-internal", "10.0.3.0/24"),
    ("busflow_traefik-public", "10.0.4.0/24"),
    ("busflow_backend", "10.0.5.0/24"),
];

/// The Grafana environment of the contract (contracts/grafana-environment.yaml).
const GRAFANA_ENV: [(&str, &str); 4] = [
    ("GF_SECURITY_COOKIE_DOMAIN", "busflow.app"),
    ("GF_SECURITY_COOKIE_SAMESITE", "none"),
    ("GF_SECURITY_COOKIE_SECURE", "true"),
    ("GF_SERVER_ROOT_URL", "https://grafana.busflow.app/"),
];

/// A service as the script shapes it at a moment.
struct ServiceSpec {
    name: &'static str,
    image: &'static str,
    replicas: u32,
    env: Vec<String>,
    labels: Vec<(&'static str, &'static str)>,
    secrets: Vec<&'static str>,
    networks: Vec<&'static str>,
    /// Tasks per slot, newest first: (generation, state, desired state, message, error, since ms).
    tasks: Vec<(u32, Vec<TaskSpec>)>,
}

#[derive(Clone)]
struct TaskSpec {
    generation: u32,
    state: &'static str,
    desired: &'static str,
    message: &'static str,
    error: &'static str,
    since_ms: i64,
    node: usize,
}

/// `replicas` slots, each with one task running since `since_ms`.
fn steady(replicas: u32, first_node: usize, since_ms: i64) -> Vec<(u32, Vec<TaskSpec>)> {
    (1..=replicas).map(|slot| (slot, vec![running(0, since_ms, first_node + slot as usize - 1)])).collect()
}

fn running(generation: u32, since_ms: i64, node: usize) -> TaskSpec {
    TaskSpec { generation, state: "running", desired: "running", message: "started", error: "", since_ms, node }
}

fn shutdown(generation: u32, since_ms: i64, node: usize) -> TaskSpec {
    TaskSpec { generation, state: "shutdown", desired: "shutdown", message: "shutdown", error: "", since_ms, node }
}

impl<'a> Facts<'a> {
    /// The Engine API's answers to `/services?status=true`, `/tasks`, `/secrets`, `/networks` and `/nodes`.
    pub fn docker(&self) -> DockerState {
        let specs = self.services();
        let long_ago = self.world.start_ms - 20 * DAY_MS;
        let mut services = Vec::new();
        let mut tasks = Vec::new();
        for spec in &specs {
            let service_id = object_id(self.noise, "service", spec.name);
            for (slot, history) in &spec.tasks {
                for task in history.iter().take(5) {
                    tasks.push(self.task_json(spec, &service_id, *slot, task));
                }
            }
            let running_tasks = spec
                .tasks
                .iter()
                .filter(|(_, history)| history.first().is_some_and(|task| task.state == "running"))
                .count();
            let mut container = json!({
                "Image": format!("{}@sha256:{}", spec.image, self.noise.hex(&format!("digest/{}", spec.image), 0, 64)),
                "Init": false,
                "DNSConfig": {},
                "Isolation": "default"
            });
            if !spec.env.is_empty() {
                container["Env"] = json!(spec.env);
            }
            if !spec.secrets.is_empty() {
                container["Secrets"] = Value::Array(
                    spec.secrets
                        .iter()
                        .map(|secret| {
                            json!({
                                "File": {"Name": secret, "UID": "0", "GID": "0", "Mode": 292},
                                "SecretID": object_id(self.noise, "secret", &self.secret_generation(secret)),
                                "SecretName": secret
                            })
                        })
                        .collect(),
                );
            }
            let labels: serde_json::Map<String, Value> = spec
                .labels
                .iter()
                .map(|(name, value)| ((*name).to_owned(), json!(value)))
                .chain(std::iter::once((
                    "com.docker.stack.namespace".to_owned(),
                    json!(if spec.name.starts_with("busflow-studio_") { "busflow-studio" } else { "busflow" }),
                )))
                .collect();
            services.push(json!({
                "ID": service_id,
                "Version": {"Index": 100 + spec.tasks.iter().map(|(_, history)| history.len()).sum::<usize>()},
                "CreatedAt": clock::rfc3339_nanos(long_ago * 1_000_000),
                "UpdatedAt": clock::rfc3339_nanos(self.last_update_ms(spec, long_ago) * 1_000_000),
                "Spec": {
                    "Name": spec.name,
                    "Labels": labels,
                    "TaskTemplate": {
                        "ContainerSpec": container,
                        "Resources": {"Limits": {}, "Reservations": {}},
                        "Placement": {},
                        "Networks": spec.networks.iter().map(|network| json!({"Target": object_id(self.noise, "network", network)})).collect::<Vec<_>>(),
                        "ForceUpdate": 0,
                        "Runtime": "container"
                    },
                    "Mode": {"Replicated": {"Replicas": spec.replicas}},
                    "EndpointSpec": {"Mode": "vip"}
                },
                "Endpoint": {"Spec": {"Mode": "vip"}},
                "ServiceStatus": {"RunningTasks": running_tasks, "DesiredTasks": spec.replicas, "CompletedTasks": 0}
            }));
        }
        DockerState {
            services: Value::Array(services),
            tasks: Value::Array(tasks),
            secrets: self.secrets_json(long_ago),
            networks: self.networks_json(long_ago),
            nodes: self.nodes_json(long_ago),
        }
    }

    fn last_update_ms(&self, spec: &ServiceSpec, long_ago: i64) -> i64 {
        spec.tasks.iter().filter_map(|(_, history)| history.first().map(|task| task.since_ms)).max().unwrap_or(long_ago)
    }

    fn task_json(&self, spec: &ServiceSpec, service_id: &str, slot: u32, task: &TaskSpec) -> Value {
        let node = NODES[task.node % NODES.len()];
        let mut status = json!({
            "Timestamp": clock::rfc3339_nanos(task.since_ms * 1_000_000),
            "State": task.state,
            "Message": task.message,
            "PortStatus": {}
        });
        if !task.error.is_empty() {
            status["Err"] = json!(task.error);
        }
        if matches!(task.state, "running" | "shutdown" | "failed") {
            status["ContainerStatus"] = json!({
                "ContainerID": self.noise.hex(&format!("container/{}", spec.name), u64::from(slot) * 1000 + u64::from(task.generation), 64),
                "PID": if task.state == "running" { 1000 + self.noise.below("pid", u64::from(slot), 60_000) } else { 0 },
                "ExitCode": if task.state == "failed" { if spec.name.ends_with("qdrant") { 137 } else { 1 } } else { 0 }
            });
        }
        let mut value = json!({
            "ID": task_id(self.noise, spec.name, slot, task.generation),
            "Version": {"Index": 200 + task.generation},
            "CreatedAt": clock::rfc3339_nanos(task.since_ms * 1_000_000),
            "UpdatedAt": clock::rfc3339_nanos(task.since_ms * 1_000_000 + 2_000_000_000),
            "Labels": {},
            "Spec": {"ContainerSpec": {"Image": spec.image}, "ForceUpdate": 0},
            "ServiceID": service_id,
            "Slot": slot,
            "Status": status,
            "DesiredState": task.desired
        });
        if task.state != "pending" {
            value["NodeID"] = json!(object_id(self.noise, "node", node));
        }
        if task.state == "running" {
            value["NetworksAttachments"] = Value::Array(
                spec.networks
                    .iter()
                    .enumerate()
                    .map(|(position, network)| {
                        let subnet = NETWORKS.iter().find(|(name, _)| name == network).map_or("10.0.9.0/24", |(_, subnet)| subnet);
                        let prefix = subnet.trim_end_matches("0/24");
                        let host = self.address_host(spec.name, slot, position);
                        json!({
                            "Network": {"ID": object_id(self.noise, "network", network), "Spec": {"Name": network, "Driver": "overlay"}},
                            "Addresses": [format!("{prefix}{host}/24")]
                        })
                    })
                    .collect(),
            );
        }
        value
    }

    /// The host part of a task's address on its nth network (docs-hub's are those Traefik's log shows).
    fn address_host(&self, service: &str, slot: u32, position: usize) -> u64 {
        match (service, position) {
            ("busflow-studio_docs-hub", 0) => 22,
            ("busflow-studio_docs-hub", _) => 9,
            ("busflow-studio_context-engine", 0) => 14,
            ("busflow-studio_landing", 0) => 9,
            _ => 30 + self.noise.below(&format!("address/{service}/{position}"), u64::from(slot), 200),
        }
    }

    /// The name under which a secret's current generation is known (a re-created secret gets a new ID).
    fn secret_generation(&self, secret: &str) -> String {
        match self.world.latest(self.time_ms, |cause| *cause == Cause::ExporterGate { stub: true }) {
            Some(episode)
                if secret == "pgexporter_dsn" && self.world.minute(self.time_ms) >= episode.until_minute as f64 =>
            {
                format!("{secret}/real")
            }
            _ => secret.to_owned(),
        }
    }

    fn secrets_json(&self, long_ago: i64) -> Value {
        let mut secrets = Vec::new();
        let mut add = |name: &str, labels: Value, created_ms: i64| {
            secrets.push(json!({
                "ID": object_id(self.noise, "secret", &self.secret_generation(name)),
                "Version": {"Index": 11 + secrets.len()},
                "CreatedAt": clock::rfc3339_nanos(created_ms * 1_000_000),
                "UpdatedAt": clock::rfc3339_nanos(created_ms * 1_000_000),
                "Spec": {"Name": name, "Labels": labels}
            }));
        };
        for name in [
            "busflow_db_url",
            "busflow_smtp_username",
            "busflow_smtp_password",
            "offsite_s3_access_key",
            "offsite_s3_secret_key",
            "anthropic_api_key",
            "gemini_api_key",
        ] {
            add(name, json!({}), long_ago);
        }
        // pgexporter_dsn: absent until the bootstrap re-creates it as a stub; a real one replaces the stub.
        if let Some(episode) = self.world.latest(self.time_ms, |cause| *cause == Cause::ExporterGate { stub: true }) {
            let minute = self.world.minute(self.time_ms);
            if minute < episode.until_minute as f64 {
                add("pgexporter_dsn", json!({"stub": "true"}), self.world.at_minute(episode.from_minute as f64 - 2.0));
            } else {
                add("pgexporter_dsn", json!({}), self.world.at_minute(episode.until_minute as f64));
            }
        }
        Value::Array(secrets)
    }

    fn networks_json(&self, long_ago: i64) -> Value {
        Value::Array(
            NETWORKS
                .iter()
                .map(|(name, subnet)| {
                    let gateway = format!("{}1", subnet.trim_end_matches("0/24"));
                    json!({
                        "Name": name,
                        "Id": object_id(self.noise, "network", name),
                        "Created": clock::rfc3339_nanos(long_ago * 1_000_000),
                        "Scope": "swarm",
                        "Driver": "overlay",
                        "EnableIPv6": false,
                        "IPAM": {"Driver": "default", "Options": null, "Config": [{"Subnet": subnet, "Gateway": gateway}]},
                        "Internal": false,
                        "Attachable": false,
                        "Ingress": *name == "ingress",
                        "ConfigFrom": {"Network": ""},
                        "ConfigOnly": false,
                        "Containers": null,
                        "Options": {"com.docker.network.driver.overlay.vxlanid_list": format!("{}", 4096 + subnet.len())},
                        "Labels": if *name == "ingress" { Value::Null } else { json!({"com.docker.stack.namespace": if name.starts_with("busflow-studio_") { "busflow-studio" } else { "busflow" }}) }
                    })
                })
                .collect(),
        )
    }

    fn nodes_json(&self, long_ago: i64) -> Value {
        let drained = self.world.find(self.time_ms, |cause| *cause == Cause::QdrantDown).is_some();
        Value::Array(
            NODES
                .iter()
                .enumerate()
                .map(|(index, node)| {
                    let availability = if drained && index == 2 { "drain" } else { "active" };
                    let mut value = json!({
                        "ID": object_id(self.noise, "node", node),
                        "Version": {"Index": 79 + index},
                        "CreatedAt": clock::rfc3339_nanos(long_ago * 1_000_000),
                        "UpdatedAt": clock::rfc3339_nanos(long_ago * 1_000_000),
                        "Spec": {"Labels": {}, "Role": if index == 0 { "manager" } else { "worker" }, "Availability": availability},
                        "Description": {
                            "Hostname": node,
                            "Platform": {"Architecture": "x86_64", "OS": "linux"},
                            "Resources": {"NanoCPUs": 4_000_000_000u64, "MemoryBytes": 16_765_009_920u64},
                            "Engine": {"EngineVersion": "27.3.1"}
                        },
                        "Status": {"State": "ready", "Addr": format!("192.168.10.{}", 11 + index)}
                    });
                    if index == 0 {
                        value["ManagerStatus"] = json!({"Leader": true, "Reachability": "reachable", "Addr": "192.168.10.11:2377"});
                    }
                    value
                })
                .collect(),
        )
    }

    /// The services at `self.time_ms`.
    fn services(&self) -> Vec<ServiceSpec> {
        let world = self.world;
        let time_ms = self.time_ms;
        let long_ago = world.start_ms - 20 * DAY_MS;
        let minute = world.minute(time_ms);
        let mut specs = Vec::new();

        let api_replicas = world.api_replicas(time_ms);
        let scaled_ms = world.at_minute(crate::script::API_SCALED_MINUTE as f64);
        specs.push(ServiceSpec {
            name: "busflow_api",
            image: API_IMAGE,
            replicas: api_replicas,
            env: vec![
                "NODE_ENV=production".into(),
                "DATABASE_URL_FILE=/run/secrets/busflow_db_url".into(),
                "OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector:4318".into(),
                "OTEL_SERVICE_NAME=busflow_api".into(),
            ],
            labels: vec![],
            secrets: vec!["busflow_db_url"],
            networks: vec!["busflow_backend", "busflow_traefik-public"],
            tasks: (1..=api_replicas)
                .map(|slot| (slot, vec![running(0, if slot > 4 { scaled_ms } else { long_ago }, slot as usize - 1)]))
                .collect(),
        });
        specs.push(ServiceSpec {
            name: "stateful_worker",
            image: "registry.busflow.internal/worker:2026.11.3",
            replicas: 4,
            env: vec!["DATABASE_URL_FILE=/run/secrets/busflow_db_url".into(), "WORKER_CONCURRENCY=8".into()],
            labels: vec![],
            secrets: vec!["busflow_db_url"],
            networks: vec!["busflow_backend"],
            tasks: steady(4, 1, long_ago),
        });

        // Grafana: a redeploy drifts its environment; the revert is another deploy.
        let drift = world.latest(time_ms, |cause| *cause == Cause::JwtFailures { env_drift: true });
        let mut grafana_env: Vec<String> = GRAFANA_ENV.iter().map(|(name, value)| format!("{name}={value}")).collect();
        let mut grafana_tasks = vec![running(0, long_ago, 0)];
        if let Some(episode) = drift {
            let deployed = world.at_minute(episode.from_minute as f64 - 3.0);
            let reverted = world.at_minute(episode.until_minute as f64);
            if minute < episode.until_minute as f64 {
                grafana_env[1] = "GF_SECURITY_COOKIE_SAMESITE=lax".into();
                grafana_tasks = vec![running(1, deployed, 1), shutdown(0, deployed, 0)];
            } else {
                grafana_tasks = vec![running(2, reverted, 0), shutdown(1, reverted, 1), shutdown(0, deployed, 0)];
            }
        }
        grafana_env.push("GF_AUTH_JWT_ENABLED=true".into());
        grafana_env.push("GF_AUTH_JWT_HEADER_NAME=X-JWT-Assertion".into());
        specs.push(ServiceSpec {
            name: "busflow_grafana",
            image: "grafana/grafana:11.3.1",
            replicas: 1,
            env: grafana_env,
            labels: vec![],
            secrets: vec![],
            networks: vec!["busflow_backend", "busflow_traefik-public"],
            tasks: vec![(1, grafana_tasks)],
        });

        // The postgres exporter: scaled to 0 (the bootstrap gap) except in the gate episodes.
        let gate = world.find(time_ms, |cause| matches!(cause, Cause::ExporterGate { .. }));
        let (replicas, secrets, env) = match gate.map(|episode| &episode.cause) {
            Some(Cause::ExporterGate { stub: false }) => {
                (1, vec![], vec!["DATA_SOURCE_NAME_FILE=/run/secrets/pgexporter_dsn".to_owned()])
            }
            Some(_) => {
                (1, vec!["pgexporter_dsn"], vec!["DATA_SOURCE_NAME_FILE=/run/secrets/pgexporter_dsn".to_owned()])
            }
            None => (0, vec![], vec!["DATA_SOURCE_NAME_FILE=/run/secrets/pgexporter_dsn".to_owned()]),
        };
        specs.push(ServiceSpec {
            name: "busflow_postgres_exporter",
            image: "quay.io/prometheuscommunity/postgres-exporter:v0.16.0",
            replicas,
            env,
            labels: vec![],
            secrets,
            networks: vec!["busflow_backend"],
            tasks: match gate {
                Some(episode) => vec![(1, vec![running(0, world.at_minute(episode.from_minute as f64), 2)])],
                None => vec![],
            },
        });
        specs.push(ServiceSpec {
            name: "loki_compactor",
            image: "grafana/loki:3.3.2",
            replicas: 1,
            env: vec![],
            labels: vec![],
            secrets: vec![],
            networks: vec!["busflow_backend"],
            tasks: if minute >= crate::script::COMPACTOR_RESTART_MINUTE as f64 {
                let restarted = world.at_minute(crate::script::COMPACTOR_RESTART_MINUTE as f64);
                vec![(1, vec![running(1, restarted, 1), shutdown(0, restarted, 1)])]
            } else {
                steady(1, 1, long_ago)
            },
        });
        specs.push(ServiceSpec {
            name: "busflow_traefik",
            image: "traefik:v3.6.2",
            replicas: 1,
            env: vec!["CF_DNS_API_TOKEN_FILE=/run/secrets/cf_dns_api_token".into()],
            labels: vec![],
            secrets: vec![],
            networks: vec!["busflow_traefik-public"],
            tasks: steady(1, 0, long_ago),
        });
        specs.extend(self.studio_services(long_ago));
        specs
    }

    fn studio_services(&self, long_ago: i64) -> Vec<ServiceSpec> {
        let world = self.world;
        let time_ms = self.time_ms;
        let minute = world.minute(time_ms);
        let traefik_label = ("traefik.swarm.network", "busflow-studio_busflow-traefik");
        let mut specs = Vec::new();

        // context-engine: a redeploy without GEMINI_API_KEY_FILE crash-loops until fixed.
        let mut env = vec![
            "QDRANT_URL=http://qdrant:6333".to_owned(),
            "GEMINI_API_KEY_FILE=/run/secrets/gemini_api_key".to_owned(),
            "ANTHROPIC_API_KEY_FILE=/run/secrets/anthropic_api_key".to_owned(),
        ];
        let mut tasks = vec![running(0, long_ago, 0)];
        if let Some(episode) = world.latest(time_ms, |cause| matches!(cause, Cause::CrashLoop { .. })) {
            let from = episode.from_minute as f64;
            let until = episode.until_minute as f64;
            // A failed start every 20 seconds (the 5 s restart delay and the start-up); the fix is a new deploy.
            let every = 1.0 / 3.0;
            let failures = (((minute.min(until) - from) / every).floor().max(0.0)) as u32;
            let mut history = vec![shutdown(0, world.at_minute(from - 1.0), 0)];
            for attempt in 0..failures {
                let at = world.at_minute(from + every * f64::from(attempt + 1));
                history.insert(
                    0,
                    TaskSpec {
                        generation: attempt + 1,
                        state: "failed",
                        desired: "shutdown",
                        message: "started",
                        error: "task: non-zero exit (1)",
                        since_ms: at,
                        node: attempt as usize,
                    },
                );
            }
            if minute < until {
                env.remove(1);
                history.insert(
                    0,
                    TaskSpec {
                        generation: failures + 1,
                        state: "starting",
                        desired: "running",
                        message: "starting",
                        error: "",
                        since_ms: world.at_minute(from + every * f64::from(failures)).min(time_ms),
                        node: failures as usize,
                    },
                );
            } else {
                history.insert(0, running(failures + 1, world.at_minute(until), 1));
            }
            tasks = history;
        }
        specs.push(ServiceSpec {
            name: "busflow-studio_context-engine",
            image: "registry.busflow.internal/context-engine:2026.11.2",
            replicas: 1,
            env,
            labels: vec![traefik_label],
            secrets: vec!["gemini_api_key", "anthropic_api_key"],
            networks: vec!["busflow-studio_busflow-traefik", "busflow-studio_busflow-qdrant"],
            tasks: vec![(1, tasks)],
        });

        // docs-hub: redeployed onto a second network without the label; the label is added at the end.
        let mut networks = vec!["busflow-studio_busflow-traefik"];
        let mut labels = vec![];
        let mut tasks = vec![running(0, long_ago, 1)];
        if let Some(episode) =
            world.latest(time_ms + 5 * MINUTE_MS, |cause| matches!(cause, Cause::WrongNetwork { .. }))
        {
            let joined = world.at_minute(episode.from_minute as f64 - 5.0);
            let fixed = world.at_minute(episode.until_minute as f64);
            networks.push("busflow-studio_docs-internal");
            if time_ms < fixed {
                tasks = vec![running(1, joined, 2), shutdown(0, joined, 1)];
            } else {
                labels.push(traefik_label);
                tasks = vec![running(2, fixed, 1), shutdown(1, fixed, 2), shutdown(0, joined, 1)];
            }
        }
        specs.push(ServiceSpec {
            name: "busflow-studio_docs-hub",
            image: "registry.busflow.internal/docs-hub:2026.11.1",
            replicas: 1,
            env: vec!["PORT=3000".into()],
            labels,
            secrets: vec![],
            networks,
            tasks: vec![(1, tasks)],
        });
        specs.push(ServiceSpec {
            name: "busflow-studio_landing",
            image: "registry.busflow.internal/landing:2026.10.7",
            replicas: 1,
            env: vec![],
            labels: vec![traefik_label],
            secrets: vec![],
            networks: vec!["busflow-studio_busflow-traefik"],
            tasks: steady(1, 2, long_ago),
        });

        // qdrant: OOM-killed; its volume's node is drained, so the replacement stays pending.
        let mut tasks = vec![running(0, long_ago, 2)];
        if let Some(episode) = world.latest(time_ms, |cause| *cause == Cause::QdrantDown) {
            let killed = world.at_minute(episode.from_minute as f64);
            let back = world.at_minute(episode.until_minute as f64);
            let failed = TaskSpec {
                generation: 0,
                state: "failed",
                desired: "shutdown",
                message: "started",
                error: "task: non-zero exit (137)",
                since_ms: killed,
                node: 2,
            };
            tasks = if time_ms < back {
                vec![
                    TaskSpec {
                        generation: 1,
                        state: "pending",
                        desired: "running",
                        message: "pending task scheduling",
                        error: "no suitable node (scheduling constraints not satisfied on 3 nodes)",
                        since_ms: killed + 5_000,
                        node: 2,
                    },
                    failed,
                ]
            } else {
                vec![running(1, back, 2), failed]
            };
        }
        specs.push(ServiceSpec {
            name: "busflow-studio_qdrant",
            image: "qdrant/qdrant:v1.12.4",
            replicas: 1,
            env: vec![],
            labels: vec![],
            secrets: vec![],
            networks: vec!["busflow-studio_busflow-qdrant"],
            tasks: vec![(1, tasks)],
        });
        for (name, image, node) in [
            ("busflow-studio_traefik", "traefik:v3.6.2", 0),
            ("busflow-studio_uptime-kuma", "louislam/uptime-kuma:1.23.16", 1),
        ] {
            specs.push(ServiceSpec {
                name,
                image,
                replicas: 1,
                env: vec![],
                labels: vec![],
                secrets: vec![],
                networks: vec!["busflow-studio_busflow-traefik"],
                tasks: steady(1, node, long_ago),
            });
        }
        specs
    }
}
