#!/usr/bin/env bash
# `make run`: everything a newcomer needs, started on this machine.
#   the Debian packages and .venv (bootstrap), the flows checked, the prompts built,
#   the local Asterisk 22 test bed, demo calls on an empty installation, an admin
#   account for the web app on first start, then the QA web app and the live engine.
# Ctrl+C stops the engine and the web app (the test bed keeps running: `ivr testbed stop`).
set -euo pipefail
cd "$(dirname "$0")/.."
ivr=.venv/bin/ivr

scripts/bootstrap.sh run
$ivr validate flows
$ivr prompts build
$ivr testbed start
# an installation without calls gets simulated ones, with recordings, for the QA pages
$ivr demo --calls 100 --if-empty

# the first admin account: its password is made here, kept in .cache (mode 0600)
password_file=.cache/web-admin.password
if [ -z "$($ivr users list)" ]; then
  mkdir -p .cache
  (umask 077; .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))' > "$password_file")
  $ivr users add admin --role admin --password-stdin < "$password_file"
fi

export IVR_AMI_SECRET="${IVR_AMI_SECRET:-$(cat .cache/testbed/ami.secret)}"
$ivr web &
web_pid=$!
trap 'kill "$web_pid" 2>/dev/null || true' EXIT

echo
echo "QA web app:  http://127.0.0.1:5000/  (user admin, password in $password_file;"
echo "             more accounts: .venv/bin/ivr users add NAME --role qa)"
echo "A real call: in another terminal, .venv/bin/ivr call 1 1   (it then shows in the web app)"
echo "No phone?    .venv/bin/ivr simulate flows/main.yaml"
echo
$ivr serve
