#!/usr/bin/env bash
# Install what the project needs, when it is missing and we can:
# - Debian packages: PostgreSQL (server, initdb, pgbench), Ruby with the pg gem (the Ruby
#   testee), pgbouncer (the pooler tests), libfaketime (the clock area's shifted server),
#   with --test also chromium (the HTML report's rendering test), and with --docker (or
#   --test) the container path's engine and base image tools: Debian's docker.io,
#   iptables and debootstrap, when no Docker engine is installed;
# - the Go toolchain that testees/go/go.mod names, when `go` is missing or older: Debian's golang
#   is too old for it, so the toolchain comes from the Go module proxy (golang.org/toolchain,
#   the module the go command itself downloads) into ~/.cache/que-interop/go;
# - Ruby Que 0.14.3 (testees/ruby/Gemfile), with `gem install`, when it is not installed, QUE_RUBY_LIB
#   is not set and RubyGems answers within a few seconds.
# As non-root or off Debian it installs no packages and only reports what is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
with_test=0
with_docker=0
for option in "$@"; do
  case "$option" in
    --test) with_test=1; with_docker=1 ;;
    --docker) with_docker=1 ;;
  esac
done

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
  # The Rails side of the ActiveJob checks (testees/rails/probe.rb): Rails 6.1's ActiveJob.
  ruby -e 'require "active_job"' >/dev/null 2>&1 || missing+=(ruby-activejob)
  ruby -e 'require "global_id"' >/dev/null 2>&1 || missing+=(ruby-globalid)
else
  missing+=(ruby-pg ruby-activejob ruby-globalid)
fi

command -v unzip >/dev/null 2>&1 || missing+=(unzip)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ "$with_test" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi
if [ "$with_docker" = 1 ]; then
  # An engine already running (reached through the docker CLI) needs nothing more.
  if ! { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }; then
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v iptables >/dev/null 2>&1 || missing+=(iptables)
    { command -v debootstrap || test -x /usr/sbin/debootstrap; } >/dev/null 2>&1 || missing+=(debootstrap)
  fi
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: missing system packages: ${missing[*]} (not root on Debian: install them yourself)" >&2
  else
    echo "bootstrap: apt-get install ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

# -- Go: the version go.mod asks for -----------------------------------------------------
want_go="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$here/../testees/go/go.mod")"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/que-interop"
go_version_of() { "$1" env GOVERSION 2>/dev/null | sed 's/^go//'; }
newer_or_equal() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }
have_go=""
for candidate in "$(command -v go || true)" /usr/local/go/bin/go "$cache/go/bin/go"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    version="$(go_version_of "$candidate")"
    if [ -n "$version" ] && newer_or_equal "$version" "$want_go"; then
      have_go="$candidate"
      break
    fi
  fi
done
if [ -z "$have_go" ]; then
  proxy="$(printf '%s' "${GOPROXY:-https://proxy.golang.org}" | cut -d, -f1)"
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
  zip_url="$proxy/golang.org/toolchain/@v/v0.0.1-go$want_go.linux-$arch.zip"
  echo "bootstrap: Go $want_go is not installed; fetching the toolchain from $zip_url" >&2
  tmp="$(mktemp -d)"
  if curl -fsSL --max-time 600 -o "$tmp/go.zip" "$zip_url" && unzip -q "$tmp/go.zip" -d "$tmp"; then
    rm -rf "$cache/go"
    mkdir -p "$cache"
    mv "$tmp/golang.org/toolchain@v0.0.1-go$want_go.linux-$arch" "$cache/go"
    echo "bootstrap: Go $want_go is in $cache/go/bin/go" >&2
  else
    echo "bootstrap: could not fetch Go $want_go: the go and gue rows will be unavailable" >&2
  fi
  rm -rf "$tmp"
fi

# -- Ruby Que 0.14.3 ----------------------------------------------------------------------
if command -v ruby >/dev/null 2>&1 && [ -z "${QUE_RUBY_LIB:-}" ] && ! ruby -e 'gem "que", "~> 0.14.3"; require "que"' >/dev/null 2>&1; then
  if command -v gem >/dev/null 2>&1 && curl -fsS --max-time 5 -o /dev/null https://rubygems.org/api/v1/versions/que.json 2>/dev/null; then
    echo "bootstrap: gem install que -v 0.14.3 (testees/ruby/Gemfile)" >&2
    gem install --no-document que -v 0.14.3 >/dev/null || echo "bootstrap: gem install que failed" >&2
  else
    echo "bootstrap: Ruby Que 0.14.3 is not installed and RubyGems is not reachable: set QUE_RUBY_LIB to the" \
      "lib/ folder of a que v0.14.3 source tree, or the ruby row is unavailable" >&2
  fi
fi

# -- Ruby Que 2.4.1 (the Que 2 dialect; installed beside 0.14.3, each testee activates its own)
if command -v ruby >/dev/null 2>&1 && [ -z "${QUE2_RUBY_LIB:-}" ] && ! ruby -e 'gem "que", "~> 2.4.1"; require "que"' >/dev/null 2>&1; then
  if command -v gem >/dev/null 2>&1 && curl -fsS --max-time 5 -o /dev/null https://rubygems.org/api/v1/versions/que.json 2>/dev/null; then
    echo "bootstrap: gem install que -v 2.4.1 (testees/ruby2/Gemfile)" >&2
    gem install --no-document que -v 2.4.1 >/dev/null || echo "bootstrap: gem install que 2.4.1 failed" >&2
  else
    echo "bootstrap: Ruby Que 2.4.1 is not installed and RubyGems is not reachable: set QUE2_RUBY_LIB to the" \
      "lib/ folder of a que v2.4.1 source tree, or the ruby-2.4.1 row is unavailable" >&2
  fi
fi
exit 0
