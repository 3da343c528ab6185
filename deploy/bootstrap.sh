#!/usr/bin/env bash
# System packages the hub needs and pip cannot install: a JDK 17+ (the Kafka
# broker, Debezium's Kafka Connect worker, and javac for the hub's Connect config
# provider), Maven (resolves their jars), the PostgreSQL server (the CDC demo
# source and tests) and Chromium (the console's browser tests drive Debian's build
# through Playwright, which cannot download its own here). Installs the missing
# ones from Debian's packages when run as root; otherwise says what to do.
set -euo pipefail

missing=()
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
# A JDK, not only a JRE: the hub compiles its Kafka Connect config provider with javac.
if ! command -v javac >/dev/null || ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ]; then
  missing+=(openjdk-17-jdk-headless)
fi
command -v mvn >/dev/null || missing+=(maven)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "missing system packages: ${missing[*]} - install them (e.g. sudo apt-get install ${missing[*]}) and run make again" >&2
  exit 1
fi
echo "installing ${missing[*]} from Debian's packages"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
# The package starts a default cluster on 5432; the hub runs its own, on its own port.
if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_ctlcluster >/dev/null; then
  for conf in /etc/postgresql/*/main; do
    pg_ctlcluster "$(basename "$(dirname "$conf")")" main stop 2>/dev/null || true
  done
fi
