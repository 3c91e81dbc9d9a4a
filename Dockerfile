# The StreamPulse process (all roles, selectable with ROLES). Used by docker-compose.yml.
# Three stages: `build` compiles the TypeScript (tsconfig.build.json), `deps` installs the
# production dependencies only (node-rdkafka builds librdkafka there), and the runtime image gets
# the JavaScript, the files read beside it, and those dependencies; it runs as the `node` user.
# The Node version is this one line (Node 24 LTS, the major scripts/env.sh pins;
# tests/docker-compose.test.ts checks they agree):
ARG NODE_VERSION=24

FROM node:${NODE_VERSION}-bookworm AS toolchain
# Build libraries of node-rdkafka (librdkafka) and chdb.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev zlib1g-dev libzstd-dev liblz4-dev libsasl2-dev build-essential python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./

FROM toolchain AS build
# Dev dependencies too (typescript). `npm install` with the lock, not `npm ci`: see scripts/setup.sh.
RUN npm install --no-audit --no-fund
COPY . .
RUN npx tsc -p tsconfig.build.json

FROM toolchain AS deps
RUN npm install --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:${NODE_VERSION}-bookworm-slim
# Runtime libraries node-rdkafka links against (no compilers in this image).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 zlib1g libzstd1 liblz4-1 libsasl2-2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/build/ ./
# Files read at run time beside the modules that read them (paths relative to import.meta.url or
# to the working directory: ALERT_RULES_FILE).
COPY package.json ./
COPY contracts/avro ./contracts/avro
COPY sinks/clickhouse/migrations ./sinks/clickhouse/migrations
COPY api/dashboard ./api/dashboard
COPY alerts/rules.default.yaml ./alerts/rules.default.yaml
# The code is root's and read-only to the process; only DATA_DIR is the node user's.
RUN mkdir -p /data && chown node:node /data
USER node

# HTTP_HOST serves the ingest endpoints and the API (API keys) to the network. The ClickHouse port of
# the `clickhouse` role (CLICKHOUSE_HTTP_PORT) stays on CLICKHOUSE_HTTP_HOST=127.0.0.1 inside the
# container and is not exposed; it refuses a non-loopback host unless CLICKHOUSE_PASSWORD is set.
ENV NODE_ENV=production DATA_DIR=/data HTTP_HOST=0.0.0.0 HTTP_PORT=8080
EXPOSE 8080 9464
# Liveness: /healthz answers 503 once a role failed for good. A process without an HTTP role
# (ingest, api) serves it on METRICS_PORT instead.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "const p=/(^|,)(all|ingest|api)(,|$)/.test(process.env.ROLES||'all')?process.env.HTTP_PORT||8080:process.env.METRICS_PORT||9464;fetch('http://127.0.0.1:'+p+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# A larger young generation: the processors allocate a short-lived object per event and row.
CMD ["node", "--max-semi-space-size=64", "bin/streampulse.js"]
