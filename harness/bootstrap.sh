#!/usr/bin/env bash
# Install the system packages the project needs, when they are missing and we can:
# PostgreSQL (server, initdb, pgbench), Ruby with the pg gem (for the Ruby testee),
# pgbouncer (the pooler tests) and libfaketime (the clock area's shifted server).
# As non-root or off Debian it only reports.
set -euo pipefail

missing=()
have_pg() {
  command -v initdb >/dev/null 2>&1 && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}
have_pgbench() {
  command -v pgbench >/dev/null 2>&1 && return 0
  ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1
}
have_pg || missing+=(postgresql)
have_pgbench || missing+=(postgresql-contrib)
command -v ruby >/dev/null 2>&1 || missing+=(ruby)
{ command -v pgbouncer || test -x /usr/sbin/pgbouncer; } >/dev/null 2>&1 || missing+=(pgbouncer)
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || missing+=(faketime)
ruby -e "require \"connection_pool\"" >/dev/null 2>&1 || missing+=(ruby-connection-pool)
if command -v ruby >/dev/null 2>&1; then
  ruby -e 'require "pg"' >/dev/null 2>&1 || missing+=(ruby-pg)
else
  missing+=(ruby-pg)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "bootstrap: missing system packages: ${missing[*]} (not root on Debian: install them yourself)" >&2
  exit 0
fi
echo "bootstrap: apt-get install ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
