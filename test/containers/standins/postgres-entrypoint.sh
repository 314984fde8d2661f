#!/bin/sh
# The official image's first start, as far as this project uses it: a cluster owned by
# POSTGRES_USER with its password (scram-sha-256 over the network), POSTGRES_DB created,
# listening on every address; later starts find the data and just run.
set -eu
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /run/postgresql
  chown postgres:postgres "$PGDATA" /run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pw="${POSTGRES_PASSWORD:-}"
  [ -n "${POSTGRES_PASSWORD_FILE:-}" ] && pw="$(cat "$POSTGRES_PASSWORD_FILE")"
  [ -n "$pw" ] || { echo "POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE is required" >&2; exit 1; }
  pwfile="$(mktemp)"
  printf '%s\n' "$pw" >"$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    echo "CREATE DATABASE \"$db\" OWNER \"$user\";" | postgres --single -D "$PGDATA" -j postgres >/dev/null
  fi
fi
[ "${1:-postgres}" = postgres ] && shift 2>/dev/null || true
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/run/postgresql "$@"
