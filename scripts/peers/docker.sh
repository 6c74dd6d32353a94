#!/usr/bin/env bash
# Prepares the Docker Engine the docker datasource tests read
# (crates/sources/tests/it/docker/live.rs and bench/docker-snapshot):
#   - installs Debian's docker.io and busybox-static when missing;
#   - starts dockerd when none answers (log: $ALERTBOOK_DOCKERD_LOG, default
#     /tmp/alertbook-dockerd.log) and waits for its socket;
#   - makes this node a single-node swarm manager (advertised on 127.0.0.1);
#   - imports localhost/busybox:static from busybox-static, since no registry
#     is reachable: /bin/busybox with a symlink per applet, running `sleep 3600`.
# Idempotent: a running daemon, an existing swarm and the image are kept.
set -euo pipefail

sudo_command=()
[[ $(id -u) -eq 0 ]] || sudo_command=(sudo)

packages=(docker.io busybox-static)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "installing Debian packages: ${missing[*]}"
    "${sudo_command[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_command[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

docker_command=(docker)
if ! docker info >/dev/null 2>&1 && "${sudo_command[@]}" docker info >/dev/null 2>&1; then
    docker_command=("${sudo_command[@]}" docker)
fi

if ! "${docker_command[@]}" info >/dev/null 2>&1; then
    log=${ALERTBOOK_DOCKERD_LOG:-/tmp/alertbook-dockerd.log}
    echo "starting dockerd (log: $log)"
    # The socket belongs to the invoking user's group, so the tests can read it without sudo.
    "${sudo_command[@]}" sh -c "nohup dockerd --group '$(id -gn)' >'$log' 2>&1 </dev/null &"
    docker_command=("${sudo_command[@]}" docker)
    for _ in $(seq 1 120); do
        "${docker_command[@]}" info >/dev/null 2>&1 && break
        sleep 0.5
    done
    if ! "${docker_command[@]}" info >/dev/null 2>&1; then
        echo "dockerd did not answer on /var/run/docker.sock within 60s; its log:" >&2
        tail -n 40 "$log" >&2 || true
        exit 1
    fi
fi

if [[ $("${docker_command[@]}" info --format '{{.Swarm.LocalNodeState}}') != active ]]; then
    echo "initialising a single-node swarm"
    "${docker_command[@]}" swarm init --advertise-addr 127.0.0.1 >/dev/null
fi

image=localhost/busybox:static
if ! "${docker_command[@]}" image inspect "$image" >/dev/null 2>&1; then
    echo "importing $image from busybox-static"
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    mkdir -p "$root/bin"
    cp /bin/busybox "$root/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
    done
    tar -C "$root" -c . | "${docker_command[@]}" import -c 'CMD ["/bin/sleep","3600"]' - "$image" >/dev/null
fi
