//! The cost of one Docker datasource snapshot against the docker CLI on the
//! same swarm: creates `--services` services with 0 replicas (so no container
//! runs), then times, alternating, alertbook's snapshot (services with status,
//! tasks, secrets, networks, nodes, decoded and turned into the condition
//! tree) and `docker service ls` followed by `docker service inspect` of every
//! service. Prints p50/p90 of each, the ratio and `/proc/loadavg`, and removes
//! the services it created, whatever happens.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use sources::docker::{DockerDatasource, DockerOptions};

#[derive(Parser)]
#[command(about = "time a Docker datasource snapshot against docker service ls + inspect")]
struct Arguments {
    /// Services to create (replicas 0).
    #[arg(long, default_value_t = 200)]
    services: usize,
    /// Timed rounds per side.
    #[arg(long, default_value_t = 10)]
    repeat: usize,
    /// The Docker Engine to read.
    #[arg(long, default_value = "unix:///var/run/docker.sock")]
    host: String,
    /// The image of the services (imported by scripts/peers/docker.sh).
    #[arg(long, default_value = "localhost/busybox:static")]
    image: String,
}

fn docker(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("docker").args(args).output().context("cannot run the docker CLI")?;
    if !output.status.success() {
        bail!("docker {}: {}", args.first().unwrap_or(&""), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Removes the services whose names start with the prefix, on drop.
struct Created {
    prefix: String,
}

impl Created {
    fn remove(&self) -> anyhow::Result<usize> {
        let names: Vec<String> = docker(&["service", "ls", "--quiet", "--filter", &format!("name={}", self.prefix)])?
            .lines()
            .map(str::to_owned)
            .collect();
        for chunk in names.chunks(100) {
            let mut args = vec!["service", "rm"];
            args.extend(chunk.iter().map(String::as_str));
            docker(&args)?;
        }
        Ok(names.len())
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        match self.remove() {
            Ok(removed) => eprintln!("[docker-snapshot-bench] removed {removed} services"),
            Err(error) => eprintln!("[docker-snapshot-bench] cleanup failed: {error:#}"),
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned()
}

fn quantile(times: &[Duration], q: f64) -> f64 {
    let mut sorted: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    sorted.sort_by(f64::total_cmp);
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)] * 1000.0
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let prefix = format!("abbench{}x", std::process::id());
    println!("loadavg before: {}", loadavg());

    let created = Created { prefix: prefix.clone() };
    let started = Instant::now();
    let names: Vec<String> = (0..arguments.services).map(|index| format!("{prefix}{index:04}")).collect();
    // Four CLI processes at a time: creation is setup, not measured.
    for batch in names.chunks(4) {
        let children: Vec<_> = batch
            .iter()
            .map(|name| {
                Command::new("docker")
                    .args(["service", "create", "--detach", "--quiet", "--replicas", "0", "--name", name])
                    .args(["--label", "bench=docker-snapshot", "--env", "ROLE=bench", &arguments.image])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
            })
            .collect::<Result<_, _>>()
            .context("cannot run docker service create")?;
        for child in children {
            let output = child.wait_with_output()?;
            if !output.status.success() {
                bail!("docker service create: {}", String::from_utf8_lossy(&output.stderr).trim());
            }
        }
    }
    eprintln!("[docker-snapshot-bench] created {} services in {:.1} s", names.len(), started.elapsed().as_secs_f64());

    let mut options = DockerOptions::new("docker", arguments.host.clone());
    options.cache_ttl = Duration::ZERO;
    let datasource = DockerDatasource::connect(&options)?;
    let snapshot = datasource.read_now()?;
    let ours = snapshot.services.keys().filter(|name| name.starts_with(&prefix)).count();
    if ours != names.len()
        || snapshot.services.values().any(|service| service.name.starts_with(&prefix) && service.replicas != 0)
    {
        bail!("the snapshot holds {ours} of the {} services created, or wrong replicas", names.len());
    }
    let total = snapshot.services.len();

    let peer = || -> anyhow::Result<usize> {
        let listed = docker(&["service", "ls", "--quiet"])?;
        let ids: Vec<&str> = listed.lines().collect();
        let mut args = vec!["service", "inspect"];
        args.extend(ids.iter().copied());
        let inspected: serde_json::Value = serde_json::from_str(&docker(&args)?)?;
        Ok(inspected.as_array().map_or(0, Vec::len))
    };
    // Warm-up of both sides.
    datasource.read_now()?;
    peer()?;

    let mut alertbook_times = Vec::new();
    let mut peer_times = Vec::new();
    for round in 0..arguments.repeat {
        let mut measure_alertbook = || -> anyhow::Result<()> {
            let started = Instant::now();
            let snapshot = datasource.read_now()?;
            alertbook_times.push(started.elapsed());
            anyhow::ensure!(snapshot.services.len() >= names.len(), "services vanished");
            Ok(())
        };
        let mut measure_peer = || -> anyhow::Result<()> {
            let started = Instant::now();
            let inspected = peer()?;
            peer_times.push(started.elapsed());
            anyhow::ensure!(inspected >= names.len(), "docker service inspect returned {inspected} services");
            Ok(())
        };
        if round % 2 == 0 {
            measure_alertbook()?;
            measure_peer()?;
        } else {
            measure_peer()?;
            measure_alertbook()?;
        }
    }

    let (ours_p50, ours_p90) = (quantile(&alertbook_times, 0.5), quantile(&alertbook_times, 0.9));
    let (peer_p50, peer_p90) = (quantile(&peer_times, 0.5), quantile(&peer_times, 0.9));
    println!("services in the swarm: {total} ({} created, replicas 0); rounds: {}", names.len(), arguments.repeat);
    println!("{:<44} {:>10} {:>10}", "", "p50_ms", "p90_ms");
    println!("{:<44} {:>10.1} {:>10.1}", "alertbook snapshot (5 list calls + model)", ours_p50, ours_p90);
    println!("{:<44} {:>10.1} {:>10.1}", "docker service ls + service inspect (all)", peer_p50, peer_p90);
    println!("ratio docker_p50 / alertbook_p50: {:.2} (above 1: alertbook is faster)", peer_p50 / ours_p50);
    println!("target: alertbook p50 under 200 ms: {}", if ours_p50 < 200.0 { "met" } else { "NOT met" });
    println!("loadavg after: {}", loadavg());
    drop(created);
    Ok(())
}
