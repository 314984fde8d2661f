#!/usr/bin/env bash
# pnpm test:containers: builds the stand-in base images and the project's three images, runs
# the compose stack (simulator override, every service but Grafana) in podman through its
# Docker-compatible API with Debian's docker-compose, and runs test/containers/stack.test.ts
# against it. Everything it starts is removed at the end, pass or fail.
#
# Why docker-compose (1.29, Debian) against `podman system service` rather than podman-compose:
# it is the Compose implementation users run, reading the same docker-compose.yml through the
# Docker API, so the test exercises what `docker compose up` does, not a reimplementation.
#
# Needs root, podman, runc, catatonit, debootstrap and docker-compose (CI=true installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."

need=(podman runc catatonit debootstrap docker-compose)
missing=()
for pkg in "${need[@]}"; do
  case "$pkg" in
    catatonit) [ -x /usr/libexec/podman/catatonit ] || [ -x /usr/bin/catatonit ] || missing+=("$pkg") ;;
    *) command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg") ;;
  esac
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "${CI:-}" = "true" ] || [ "${INSTALL:-}" = "1" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" uidmap slirp4netns golang-github-containernetworking-plugin-dnsname >/dev/null
  else
    echo "test:containers needs: ${missing[*]} (apt-get install them, or run with INSTALL=1)" >&2
    exit 1
  fi
fi

tmp="$(mktemp -d)"
# No nofile ulimit from the engine (this sandbox forbids raising it), and runc: crun refuses
# hosts with hybrid cgroups.
cat >"$tmp/containers.conf" <<'CONF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF="$tmp/containers.conf"
export DOCKER_HOST="unix://$tmp/podman.sock"
export COMPOSE_PROJECT_NAME=wxlogin-ct
podman system service --time=0 "$DOCKER_HOST" >"$tmp/service.log" 2>&1 &
service=$!
pump=""

cleanup () {
  status=$?
  [ -n "$pump" ] && kill "$pump" 2>/dev/null || true
  docker-compose -f docker-compose.yml -f docker-compose.sim.yml down -v --remove-orphans >/dev/null 2>&1 || true
  left=$(podman ps -a -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" | wc -l)
  [ "$left" -gt 0 ] && podman rm -f $(podman ps -a -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME") >/dev/null 2>&1 || true
  kill "$service" 2>/dev/null || true
  wait "$service" 2>/dev/null || true
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT

# The API socket: on a busy machine, or podman's first run (storage set up), 10 s was not always
# enough, and going on without it failed later with errors that did not say why.
for _ in $(seq 1 600); do [ -S "$tmp/podman.sock" ] && break; sleep 0.1; done
if [ ! -S "$tmp/podman.sock" ]; then
  echo "podman's API socket did not appear within 60 s; its log:" >&2
  cat "$tmp/service.log" >&2
  exit 1
fi

bash test/containers/standins.sh
node scripts/dev-secrets.mjs >/dev/null

# Podman runs health checks from systemd timers; there is no systemd here, so run them.
(
  while true; do
    for c in $(podman ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME"); do
      podman healthcheck run "$c" >/dev/null 2>&1 || true
    done
    sleep 2
  done
) &
pump=$!

cd test
npx tap --disable-coverage --allow-incomplete-coverage --timeout 1200 containers/stack.test.ts
