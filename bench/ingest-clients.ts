/**
 * The HTTP clients of `npm run bench:ingest`, in a child process of their own so that the
 * bench process's CPU time is the gateway's (Fastify, parse, validation, Avro, librdkafka) and
 * not the clients'. Forked with IPC: it loads the request bodies, says `ready`, waits for `go`,
 * sends them with `clients` concurrent keep-alive connections, and answers with what it saw.
 * Each body is encoded to bytes once, at load: sending then writes those bytes as they are (no
 * string encode and byte count of 1.2 MB per request), so the clients take less of the CPU the
 * gateway and the broker share with them. Every request is still a real NDJSON body on a socket.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';

export interface ClientJob {
  kind: string;
  key: string;
  body: string;
}

export interface ClientsResult {
  accepted: number;
  seconds: number;
  /** CPU seconds of this client process while it sent (user + system). */
  cpuSeconds: number;
}

/** A job as sent: its body encoded once, its headers built once. */
interface PreparedJob {
  path: string;
  headers: Record<string, string | number>;
  body: Buffer;
}

function prepare(job: ClientJob): PreparedJob {
  const body = Buffer.from(job.body, 'utf8');
  return {
    path: `/v1/events/${job.kind}`,
    headers: { 'content-type': 'application/x-ndjson', 'x-api-key': job.key, 'content-length': body.length },
    body,
  };
}

function post(agent: Agent, url: URL, job: PreparedJob): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        method: 'POST',
        path: job.path,
        headers: job.headers,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(job.body);
  });
}

async function run(url: URL, jobs: PreparedJob[], clients: number): Promise<ClientsResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let accepted = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < jobs.length) {
        const job = jobs[next++]!;
        const res = await post(agent, url, job);
        const r = JSON.parse(res.body) as { accepted: number; rejected: number };
        if (res.status !== 200 || r.rejected > 0) throw new Error(`ingest answered ${res.status}: ${res.body.slice(0, 300)}`);
        accepted += r.accepted;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  agent.destroy();
  return { accepted, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

const [url, jobsFile, clients] = process.argv.slice(2);
const jobs = (JSON.parse(readFileSync(jobsFile!, 'utf8')) as ClientJob[]).map(prepare);
process.send!({ type: 'ready' });
process.on('message', (m: { type: string }) => {
  if (m.type !== 'go') return;
  run(new URL(url!), jobs, Number(clients)).then(
    (result) => process.send!({ type: 'done', result }, () => process.exit(0)),
    (err: Error) => process.send!({ type: 'error', message: err.message }, () => process.exit(1)),
  );
});
