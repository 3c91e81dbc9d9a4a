/**
 * docker-compose.yml and the Dockerfile, checked without Docker: the services exist, publish the
 * documented ports, and the streampulse service is configured only with keys lib/config.ts knows,
 * pointing at the other services by name.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { EnvSchema, loadConfig } from '../lib/config.js';
import { REPO_ROOT } from './helpers/env.js';

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}

const compose = parse(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service> };
const s = compose.services;
/** Host ports a service publishes (`[ip:]host:container`). */
const published = (svc: Service) => (svc.ports ?? []).map((p) => p.split(':').slice(-2)[0]);

describe('docker-compose.yml', () => {
  it('has every service, with the expected images', () => {
    expect(Object.keys(s).sort()).toEqual(['clickhouse', 'grafana', 'kafka', 'prometheus', 'redis', 'schema-registry', 'streampulse']);
    expect(s.prometheus!.image).toMatch(/^prom\/prometheus:/);
    expect(s.kafka!.image).toBe('apache/kafka:4.1.1');
    expect(s['schema-registry']!.image).toMatch(/^confluentinc\/cp-schema-registry:/);
    expect(s.clickhouse!.image).toMatch(/^clickhouse\/clickhouse-server:/);
    expect(s.redis!.image).toMatch(/^redis:/);
    expect(s.grafana!.image).toMatch(/^grafana\/grafana:/);
    expect(s.streampulse!.build).toEqual({ context: '.', dockerfile: 'Dockerfile' });
  });

  it('runs Kafka as a single KRaft node without auto-created topics', () => {
    const env = s.kafka!.environment!;
    expect(env.KAFKA_PROCESS_ROLES).toBe('broker,controller');
    expect(env.KAFKA_CONTROLLER_QUORUM_VOTERS).toBe('1@kafka:9093');
    expect(env.KAFKA_ADVERTISED_LISTENERS).toContain('PLAINTEXT://kafka:9092');
    expect(env.KAFKA_AUTO_CREATE_TOPICS_ENABLE).toBe('false');
    expect(env.KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR).toBe('1');
    expect(s['schema-registry']!.environment!.SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS).toBe('PLAINTEXT://kafka:9092');
  });

  it('publishes the documented ports', () => {
    expect(published(s.streampulse!)).toEqual(['8080', '9464']);
    expect(published(s['schema-registry']!)).toEqual(['8081']);
    expect(published(s.clickhouse!)).toEqual(['8123', '9000']);
    expect(published(s.redis!)).toEqual(['6379']);
    expect(published(s.grafana!)).toEqual(['3000']);
    expect(published(s.kafka!)).toEqual(['29092']);
    expect(published(s.prometheus!)).toEqual(['9090']);
    for (const p of s.prometheus!.ports!) expect(p).toMatch(/^127\.0\.0\.1:/);
  });

  it('every service has a healthcheck', () => {
    expect(
      Object.entries(s)
        .filter(([, svc]) => !svc.healthcheck?.test?.length)
        .map(([name]) => name),
    ).toEqual([]);
    // The app's checks its liveness endpoint on the API port.
    expect(s.streampulse!.healthcheck!.test.join(' ')).toContain('/healthz');
  });

  it('Prometheus scrapes the streampulse service and loads the pipeline rules; Grafana gets its URL', () => {
    expect(s.prometheus!.volumes).toContain('./stack/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro');
    expect(s.prometheus!.volumes).toContain('./stack/prometheus/rules:/etc/prometheus/rules:ro');
    const prom = parse(readFileSync(join(REPO_ROOT, 'stack/prometheus/prometheus.yml'), 'utf8')) as {
      rule_files: string[];
      scrape_configs: Array<{ static_configs: Array<{ targets: string[] }> }>;
    };
    expect(prom.rule_files).toEqual(['/etc/prometheus/rules/pipeline.rules.yml']);
    expect(prom.scrape_configs[0]!.static_configs[0]!.targets).toEqual([`streampulse:${s.streampulse!.environment!.HTTP_PORT}`]);
    expect(s.grafana!.environment!.PROMETHEUS_URL).toBe('http://prometheus:9090');
  });

  it('publishes ClickHouse on the host loopback only, with the analyst user and its profile mounted; Grafana reads as the analyst', () => {
    for (const p of s.clickhouse!.ports!) expect(p).toMatch(/^127\.0\.0\.1:/);
    expect(s.clickhouse!.volumes).toContain('./stack/clickhouse/users.d/streampulse-analyst.xml:/etc/clickhouse-server/users.d/streampulse-analyst.xml:ro');
    const usersXml = readFileSync(join(REPO_ROOT, 'stack/clickhouse/users.d/streampulse-analyst.xml'), 'utf8');
    expect(usersXml).toMatch(/<readonly>1<\/readonly>/);
    expect(usersXml).toMatch(/<analyst>[\s\S]*<password from_env="CLICKHOUSE_ANALYST_PASSWORD"\/>[\s\S]*<profile>streampulse_analyst<\/profile>/);
    expect(s.clickhouse!.environment!.CLICKHOUSE_ANALYST_PASSWORD).toBeTruthy();
    expect(s.grafana!.environment!.CLICKHOUSE_USER).toBe('analyst');
    expect(s.grafana!.environment!.CLICKHOUSE_PASSWORD).toBe(s.clickhouse!.environment!.CLICKHOUSE_ANALYST_PASSWORD);
    const sp = loadConfig(s.streampulse!.environment!);
    expect(sp.clickhouseAnalyst).toEqual({ name: 'analyst', password: s.clickhouse!.environment!.CLICKHOUSE_ANALYST_PASSWORD });
    expect(sp.clickhouse.user).not.toBe('analyst');
  });

  it('installs the ClickHouse plugin in Grafana and mounts the provisioning folder', () => {
    expect(s.grafana!.environment!.GF_PLUGINS_PREINSTALL).toContain('grafana-clickhouse-datasource');
    expect(s.grafana!.volumes).toContain('./grafana/provisioning:/etc/grafana/provisioning:ro');
  });

  it('configures streampulse with known config keys that point at the other services', () => {
    const env = s.streampulse!.environment!;
    const known = Object.keys(EnvSchema.properties);
    expect(Object.keys(env).filter((k) => !known.includes(k))).toEqual([]);
    const config = loadConfig(env);
    expect(config.kafkaBrokers).toBe('kafka:9092');
    expect(config.env.SCHEMA_REGISTRY_URL).toBe('http://schema-registry:8081');
    expect(config.clickhouse.url).toBe('http://clickhouse:8123');
    expect(config.env.REDIS_URL).toBe('redis://redis:6379');
    expect(config.env.HTTP_PORT).toBe(8080);
    expect(config.roles.has('registry')).toBe(false);
    expect(config.roles.has('api')).toBe(true);
    expect(Object.keys(s.streampulse!.depends_on!).sort()).toEqual(['clickhouse', 'kafka', 'redis', 'schema-registry']);
    // Services streampulse depends on have health checks, so "service_healthy" can be met.
    for (const dep of Object.keys(s.streampulse!.depends_on!)) expect({ dep, hc: Boolean(s[dep]!.healthcheck) }).toEqual({ dep, hc: true });
  });

  it('builds a multi-stage image: compiled JavaScript, production dependencies only, non-root, healthcheck', () => {
    const df = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    // The Node version is one ARG line; every stage's base image uses it.
    expect(df.match(/^ARG NODE_VERSION=\d+$/gm)).toHaveLength(1);
    // The image, package.json's engines and the node scripts/setup.sh provides are one Node major.
    const major = /^STREAMPULSE_NODE_VERSION=(\d+)\./m.exec(readFileSync(join(REPO_ROOT, 'scripts/env.sh'), 'utf8'))?.[1];
    expect(Number(major)).toBeGreaterThanOrEqual(24);
    expect(df).toMatch(new RegExp(`^ARG NODE_VERSION=${major}$`, 'm'));
    expect(JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).engines.node).toBe(`>=${major}`);
    const froms = df.match(/^FROM .*$/gm)!;
    expect(froms.length).toBeGreaterThanOrEqual(3);
    for (const f of froms) expect(f).toMatch(/^FROM (node:\$\{NODE_VERSION\}-bookworm(-slim)?|toolchain)( AS \w+)?$/);
    expect(froms[froms.length - 1]).toMatch(/-slim$/);
    expect(df).toMatch(/npx tsc -p tsconfig\.build\.json/);
    expect(df).toMatch(/npm install --omit=dev/);
    expect(df).toMatch(/^USER node$/m);
    expect(df).toMatch(/^HEALTHCHECK .*\n?.*\/healthz/m);
    expect(df).toContain('"bin/streampulse.js"');
    expect(df).not.toContain('tsx');
    // Every file read at run time beside a module is copied beside its compiled module.
    for (const asset of ['contracts/avro', 'sinks/clickhouse/migrations', 'api/dashboard', 'alerts/rules.default.yaml'])
      expect(df).toMatch(new RegExp(`^COPY ${asset} `, 'm'));
    const build = JSON.parse(readFileSync(join(REPO_ROOT, 'tsconfig.build.json'), 'utf8').replace(/^\s*\/\/.*$/gm, '')) as {
      include: string[];
      compilerOptions: { outDir: string };
    };
    expect(build.include).toContain('bin/streampulse.ts');
    expect(build.compilerOptions.outDir).toBe('build');
    expect(existsSync(join(REPO_ROOT, 'package-lock.json'))).toBe(true);
  });

  it('packages only tests import are devDependencies', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    for (const p of ['kafkajs', '@kafkajs/confluent-schema-registry', 'playwright-core']) {
      expect(pkg.dependencies[p], p).toBeUndefined();
      expect(pkg.devDependencies[p], p).toBeDefined();
    }
    // Every package the shipped code imports is a runtime dependency.
    const shipped = ['bin', 'lib', 'contracts', 'producers', 'processors', 'sinks', 'api', 'alerts', 'stack'];
    const imported = new Set<string>();
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith('.ts'))
          for (const m of readFileSync(p, 'utf8').matchAll(/^import(?!\s+type\b)[^'"]*['"]([^'".][^'"]*)['"]/gm))
            if (!m[1]!.startsWith('node:')) imported.add(m[1]!.startsWith('@') ? m[1]!.split('/').slice(0, 2).join('/') : m[1]!.split('/')[0]!);
      }
    };
    for (const d of shipped) walk(join(REPO_ROOT, d));
    expect([...imported].filter((p) => !pkg.dependencies[p]).sort()).toEqual([]);
  });
});
