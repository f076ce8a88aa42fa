#!/usr/bin/env bash
# Installs what the project needs on a Debian 12 machine: Debian packages, then the Python
# package into .venv. Idempotent and quick when everything is already there.
#   scripts/bootstrap.sh run    what `make run` needs
#   scripts/bootstrap.sh test   that, plus what the tests need
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# command:package pairs; graphviz draws menus, espeak-ng and sox make prompts; sip-tester
# (sipp) places calls into the Asterisk test bed
wanted=(dot:graphviz espeak-ng:espeak-ng sox:sox sipp:sip-tester)
missing=()
for pair in "${wanted[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
# the store tests start throwaway PostgreSQL clusters (initdb and postgres live in
# /usr/lib/postgresql/<version>/bin, off PATH; see ivr/testbed/postgres.py)
if [ "$mode" = test ] && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  missing+=(postgresql)
fi
# the browser tests drive Debian's chromium with Playwright (no browser download)
if [ "$mode" = test ] && ! command -v chromium >/dev/null 2>&1; then
  missing+=(chromium)
fi
# packages without a command of their own: sox's MP3 reader and writer (recorded prompts
# and gTTS answers are MP3); debootstrap (in /usr/sbin, off a user's PATH) makes the test
# bed's Debian sid root with Asterisk 22 (ivr/testbed/server.py)
for package in libsox-fmt-mp3 debootstrap; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
# the multi-node test bed (ivr/testbed/cluster.py): Kamailio's dispatcher in front of the
# Asterisks, HAProxy in front of the engines; the tests run both as their own children, on
# their own ports, so a service the package may start is never used
if [ "$mode" = test ]; then
  for package in kamailio haproxy; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
extras=""
[ "$mode" = test ] && extras="[test,bench]"  # bench: the load generator's peers (tests/bench)
stamp=".venv/.installed-$mode-$(cat pyproject.toml setup.py scripts/bootstrap.sh | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$extras"
  if [ "$mode" = test ]; then
    # tests/prompts drive the gTTS backend against a local fake; gTTS pins click<8.2,
    # which would take away the click the CLI tests need, hence --no-deps (pyproject.toml)
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "gTTS>=2.5"
  fi
  touch "$stamp"
fi
