#!/bin/sh
# Upstream's binary stores data in data/ under the working directory (/prometheus) unless told
# otherwise; Debian's build defaults to /var/lib/prometheus. Keep upstream's default.
case " $* " in
  *" --storage.tsdb.path"*) ;;
  *) set -- "$@" --storage.tsdb.path=data/ ;;
esac
exec /usr/bin/prometheus "$@"
