#!/usr/bin/env bash
# Everything StreamPulse needs on a fresh Debian machine, idempotent and quick when done before:
# the Debian packages node-rdkafka builds against (and Redis, Java, Maven if missing), Node 24 LTS
# when the machine's node is older (see scripts/env.sh), the npm dependencies (when node_modules is
# missing or older than the lock) with the native modules built for that node, and the Kafka jars
# from Maven Central. Used by the README's two commands and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
# shellcheck source=scripts/env.sh
source scripts/env.sh

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

PKGS=(libssl-dev zlib1g-dev libzstd-dev liblz4-dev libsasl2-dev build-essential python3 redis-server)
command -v java >/dev/null 2>&1 || PKGS+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || PKGS+=(maven)
# npm fetches Node 24 below; Debian's npm (with its older node) is enough for that.
command -v npm >/dev/null 2>&1 || PKGS+=(npm)
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

# --- Node LTS -----------------------------------------------------------------------------------
if [ "$(streampulse_node_major)" -lt "$STREAMPULSE_NODE_MAJOR" ]; then
  if [ ! -x "$STREAMPULSE_NODE_HOME/bin/node" ]; then
    case "$(uname -m)" in x86_64) ARCH=x64 ;; aarch64) ARCH=arm64 ;; *) ARCH="$(uname -m)" ;; esac
    echo "== Node $STREAMPULSE_NODE_VERSION from the npm registry (node-linux-$ARCH; this machine's node is $(node -v 2>/dev/null || echo none))"
    mkdir -p "$ROOT/.cache"
    TMP="$(mktemp -d "$ROOT/.cache/node-download.XXXXXX")"
    npm pack --silent --pack-destination "$TMP" "node-linux-$ARCH@$STREAMPULSE_NODE_VERSION" >/dev/null
    tar xzf "$TMP"/node-linux-*.tgz -C "$TMP"
    "$TMP/package/bin/node" -e 'process.exit(0)'
    # Moved into place only once complete, so an interrupted download is fetched again.
    mv "$TMP/package" "$STREAMPULSE_NODE_HOME"
    rm -rf "$TMP"
  fi
  source scripts/env.sh
fi
NODE_BIN="$(readlink -f "$(command -v node)")"
echo "== node $(node -v) ($NODE_BIN)"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -f node_modules/node-rdkafka/build/Release/node-librdkafka.node ]; then
  # `npm install` with the committed lock, not `npm ci`: chdb lists per-platform optional packages
  # of which the registry serves only the Linux x64 one, so the lock cannot name the others and
  # `npm ci` refuses it. With the lock present `npm install` installs the locked versions.
  echo "== npm install (node-rdkafka builds librdkafka from source: a few minutes)"
  npm install --no-audit --no-fund
fi

# node-rdkafka is a native module built for one Node ABI (chdb uses Node-API, which any Node
# loads); a node_modules built by another node (e.g. by Node 20 before this script provided 24)
# fails to load with "was compiled against a different Node.js version". Loading both is the
# check; rebuilding compiles librdkafka again (a few minutes).
NATIVE_CHECK='require("node-rdkafka"); require("chdb")'
if ! node -e "$NATIVE_CHECK" >/dev/null 2>&1; then
  echo "== npm rebuild node-rdkafka (native modules do not load in node $(node -v): built for another Node?)"
  npm rebuild node-rdkafka
  node -e "$NATIVE_CHECK"
fi
# npm puts node_modules/.bin first on the PATH of the scripts it runs, whichever node started npm:
# this link makes `npm run demo`, `npm test` (and the vitest workers, the pipeline and simulator
# processes the tests and bench spawn with process.execPath) run on the node the modules were
# built for. Relative when inside the checkout, so the checkout can move.
case "$NODE_BIN" in
  "$ROOT"/*) ln -sfn "../../${NODE_BIN#"$ROOT"/}" node_modules/.bin/node ;;
  *) ln -sfn "$NODE_BIN" node_modules/.bin/node ;;
esac

if [ ! -f "$ROOT/.cache/kafka/libs/.complete" ]; then
  echo "== Kafka jars (Maven Central)"
  mvn -q -B -f stack/kafka/pom.xml dependency:copy-dependencies -DoutputDirectory="$ROOT/.cache/kafka/libs" -DincludeScope=runtime
  npx tsx stack/cli.ts jars >/dev/null
  touch "$ROOT/.cache/kafka/libs/.complete"
fi
echo "== setup done"
