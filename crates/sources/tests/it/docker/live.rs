//! Against the real Docker daemon (started by scripts/peers/docker.sh).
