# Sourced, not run (`source scripts/env.sh`), by scripts/setup.sh and .ci/run, and by hand in a
# shell: puts the Node LTS StreamPulse runs on first on PATH and tells node-gyp where its headers
# are. StreamPulse needs Node >= STREAMPULSE_NODE_MAJOR (Node 20 reached end of life on 2026-04-30).
# When the machine's own node is older, scripts/setup.sh unpacks the npm registry's
# node-linux-<arch> package (the official binary and its headers) into .cache/node-<version>, and
# this file puts that first on PATH. npm scripts do not need this file: setup also links
# node_modules/.bin/node to the same node, and npm puts node_modules/.bin first on its scripts' PATH
# even when npm itself was started by an older node.
STREAMPULSE_NODE_VERSION=24.22.3
STREAMPULSE_NODE_MAJOR=${STREAMPULSE_NODE_VERSION%%.*}
STREAMPULSE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STREAMPULSE_NODE_HOME="$STREAMPULSE_ROOT/.cache/node-$STREAMPULSE_NODE_VERSION"

# Major version of the node first on PATH (0 when there is none).
streampulse_node_major() {
  local v
  v="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null)" || v=0
  echo "${v:-0}"
}

if [ "$(streampulse_node_major)" -lt "$STREAMPULSE_NODE_MAJOR" ] && [ -x "$STREAMPULSE_NODE_HOME/bin/node" ]; then
  # npm reads its global config from <its node's prefix>/etc/npmrc: the machine's (e.g.
  # /usr/etc/npmrc) may say how to reach the registry (a proxy's CA file, `cafile=`, a mirror),
  # and the npm of the unpacked Node would look in .cache/node-<version>/etc instead and fail
  # (SELF_SIGNED_CERT_IN_CHAIN behind a TLS-inspecting proxy). Keep the machine's.
  if [ -z "${npm_config_globalconfig:-}" ] && command -v node >/dev/null 2>&1; then
    _sp_prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
    if [ -f "$_sp_prefix/etc/npmrc" ]; then export npm_config_globalconfig="$_sp_prefix/etc/npmrc"; fi
    unset _sp_prefix
  fi
  export PATH="$STREAMPULSE_NODE_HOME/bin:$PATH"
fi

# node-gyp builds native modules (node-rdkafka) against the headers of the node that will load
# them. Both the registry package and the official images (node:24-bookworm) ship them in
# <prefix>/include/node; pointing at them also spares node-gyp a download from the internet.
if command -v node >/dev/null 2>&1; then
  _sp_prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
  if [ -f "$_sp_prefix/include/node/common.gypi" ]; then export npm_config_nodedir="$_sp_prefix"; fi
  unset _sp_prefix
fi
