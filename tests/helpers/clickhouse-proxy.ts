/**
 * A pass-through HTTP proxy in front of a ClickHouse HTTP port, for the fault "an insert that
 * times out after ClickHouse applied it" (tests/helpers/fault-rig.ts). Everything is forwarded as
 * is. Armed with `holdInserts(n)`, it forwards the next n INSERT statements, reads ClickHouse's
 * whole answer (the rows are in), then holds that answer past the client's request timeout and
 * drops the connection: the client sees a timeout for an insert that was applied.
 *
 * While the upstream is down (the ClickHouse owner killed) a request's connection is dropped, as
 * the owner's closed port would: the client sees `socket hang up` instead of `ECONNREFUSED`.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface HeldInsert {
  /** HTTP status ClickHouse answered the insert with (200: applied). */
  status: number;
  /** The INSERT statement (its first 120 characters). */
  statement: string;
}

export class ClickHouseProxy {
  private server: Server | null = null;
  private toHold = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Inserts forwarded and applied whose answers were held and dropped, in order. */
  readonly held: HeldInsert[] = [];
  port = 0;

  /**
   * @param upstreamPort the ClickHouse HTTP port (read per request: the owner may be restarted on it)
   * @param holdMs how long an answer is held before the connection is dropped (past the client's timeout)
   */
  constructor(
    private readonly upstreamPort: () => number,
    private readonly holdMs: number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<void> {
    const server = createServer((req, res) => this.forward(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as { port: number }).port;
  }

  /** The next `n` INSERTs are applied but their answers never reach the client. */
  holdInserts(n: number): void {
    this.toHold += n;
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    // @clickhouse/client sends a statement with a body of rows (exec, insert) in the `query` URL parameter.
    const statement = new URL(req.url ?? '/', 'http://proxy').searchParams.get('query') ?? '';
    const hold = this.toHold > 0 && /^\s*INSERT\b/i.test(statement);
    if (hold) this.toHold--;
    const up = request({ host: '127.0.0.1', port: this.upstreamPort(), method: req.method, path: req.url, headers: req.headers }, (answer) => {
      if (!hold) {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        return;
      }
      answer.resume();
      answer.on('end', () => {
        this.held.push({ status: answer.statusCode ?? 0, statement: statement.slice(0, 120) });
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          res.destroy();
        }, this.holdMs);
        this.timers.add(timer);
      });
    });
    up.on('error', () => res.destroy());
    req.on('error', () => up.destroy());
    req.pipe(up);
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
