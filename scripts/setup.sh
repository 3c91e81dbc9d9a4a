#!/usr/bin/env bash
# Everything StreamPulse needs on a fresh Debian machine, idempotent and quick when done before:
# the Debian packages node-rdkafka builds against (and Redis, Java, Maven if missing), the npm
# dependencies (when node_modules is missing or older than the lock), and the Kafka jars
# from Maven Central. Used by the README's two commands and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

PKGS=(libssl-dev zlib1g-dev libzstd-dev liblz4-dev libsasl2-dev build-essential python3 redis-server)
command -v java >/dev/null 2>&1 || PKGS+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || PKGS+=(maven)
[ "${STREAMPULSE_BROWSER_TESTS:-on}" = "off" ] || command -v chromium >/dev/null 2>&1 || PKGS+=(chromium)
# promtool (tests/ops/prometheus-rules.test.ts) and the local Prometheus of `npm run stack:up -- --prometheus`.
command -v promtool >/dev/null 2>&1 || PKGS+=(prometheus)
MISSING=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || MISSING+=("$p")
done
if [ "${#MISSING[@]}" -gt 0 ]; then
  echo "== apt-get install ${MISSING[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${MISSING[@]}"
  # On a machine with systemd the package starts a Prometheus service on :9090; StreamPulse only
  # needs its binaries (stack:up starts its own Prometheus when asked).
  if [[ " ${MISSING[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -f node_modules/node-rdkafka/build/Release/node-librdkafka.node ]; then
  # `npm install` with the committed lock, not `npm ci`: chdb lists per-platform optional packages
  # of which the registry serves only the Linux x64 one, so the lock cannot name the others and
  # `npm ci` refuses it. With the lock present `npm install` installs the locked versions.
  echo "== npm install (node-rdkafka builds librdkafka from source: a few minutes)"
  npm install --no-audit --no-fund
fi

if [ ! -f "$ROOT/.cache/kafka/libs/.complete" ]; then
  echo "== Kafka jars (Maven Central)"
  mvn -q -B -f stack/kafka/pom.xml dependency:copy-dependencies -DoutputDirectory="$ROOT/.cache/kafka/libs" -DincludeScope=runtime
  npx tsx stack/cli.ts jars >/dev/null
  touch "$ROOT/.cache/kafka/libs/.complete"
fi
echo "== setup done"
