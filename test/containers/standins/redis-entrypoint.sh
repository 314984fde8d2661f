#!/bin/sh
# The official image builds Redis with protected mode off by default (containers are reached
# over a network, never on loopback); Debian's binary has it on, so say it here.
set -e
if [ "$1" = "redis-server" ]; then
  shift
  set -- redis-server --protected-mode no "$@"
fi
exec "$@"
