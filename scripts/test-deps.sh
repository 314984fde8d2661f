#!/usr/bin/env bash
# What the tests need from Debian, installed when absent (the README's test command and .ci/run
# both run this): redis-server; PostgreSQL and MariaDB (private servers on free ports, never
# 6379, 5432 or 3306); python3-jwt (a session verified from Python); promtool (Debian's
# prometheus), docker-compose and kubectl (its kustomize) for the deployment checks. The
# container test (test/containers/run.sh) installs podman and what it needs itself.
# Quiet and quick when everything is there: a contributor may run it before every test run.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v kubectl >/dev/null 2>&1 || missing+=(kubectl)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
/usr/bin/python3 -c 'import jwt, cryptography' >/dev/null 2>&1 || missing+=(python3-jwt python3-cryptography)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: missing ${missing[*]}, and this is not a Debian or Ubuntu machine: install them by hand" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "test-deps: missing ${missing[*]}: run as root, or install sudo" >&2; exit 1; }
  sudo=(sudo)
fi
echo "test-deps: installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
