# The StreamPulse process (all roles, selectable with ROLES). Used by docker-compose.yml.
# Node 24 LTS, the major scripts/env.sh pins (tests/docker-compose.test.ts checks they agree).
FROM node:24-bookworm

# Build and runtime libraries of node-rdkafka (librdkafka) and chdb.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev zlib1g-dev libzstd-dev liblz4-dev libsasl2-dev build-essential python3 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY package.json package-lock.json ./
# tsx (a dev dependency) runs the TypeScript entry point, so dev dependencies are installed too.
# `npm install` with the lock (see scripts/setup.sh for why not `npm ci`).
RUN npm install --no-audit --no-fund
COPY . .

# HTTP_HOST serves the ingest endpoints and the API (API keys) to the network. The ClickHouse port of
# the `clickhouse` role (CLICKHOUSE_HTTP_PORT) stays on CLICKHOUSE_HTTP_HOST=127.0.0.1 inside the
# container and is not exposed; it refuses a non-loopback host unless CLICKHOUSE_PASSWORD is set.
ENV DATA_DIR=/data HTTP_HOST=0.0.0.0 HTTP_PORT=8080
EXPOSE 8080 9464
# A larger young generation: the processors allocate a short-lived object per event and row.
CMD ["node", "--max-semi-space-size=64", "--import", "tsx", "bin/streampulse.ts"]
