#!/bin/sh
# The official image builds Redis (and Sentinel) with protected mode off by default: in a
# container, clients come over a network, never over loopback. Debian's binary has it on, so
# this stand-in says it on every start, however the server is started (sh -c, a config file).
exec /usr/bin/redis-server "$@" --protected-mode no
