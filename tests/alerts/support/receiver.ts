/** A local webhook receiver on 127.0.0.1 that records requests and can refuse connections (closed) for a while. */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Ports a receiver picks on its first start: below the ephemeral ranges (Linux 32768+, IANA
 * 49152+), where outgoing connections take their local ports and `listen(0)` its ports, and
 * below the ports tests/stack/kafka-lifecycle.test.ts picks (21000+). A receiver taken down and
 * started again on its port must not hold an ephemeral one: while it is closed, any connection
 * of any process may take that port as its local port, and listening on it again fails with
 * EADDRINUSE (seen in CI).
 */
const PORTS = { low: 10_000, high: 21_000 };

export interface Received {
  body: Record<string, unknown>;
  raw: string;
  headers: IncomingHttpHeaders;
}

export class TestReceiver {
  readonly received: Received[] = [];
  port = 0;
  private server: Server | null = null;

  /**
   * Listens on `port`, or (first start) on a free port of PORTS, so that
   * `down()` and `start(this.port)` get the same port back.
   */
  async start(port?: number): Promise<void> {
    if (port !== undefined) return this.listen(port);
    for (let attempt = 0; ; attempt++) {
      const candidate = PORTS.low + Math.floor(Math.random() * (PORTS.high - PORTS.low));
      try {
        return await this.listen(candidate);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 50) throw err;
      }
    }
  }

  private async listen(port: number): Promise<void> {
    const server = createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => (raw += c));
      req.on('end', () => {
        this.received.push({ body: JSON.parse(raw) as Record<string, unknown>, raw, headers: req.headers });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }
  /** Closes the listening socket: connections are refused until start(port) again. */
  async down(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }
  of(rule: string, status?: string): Received[] {
    return this.received.filter((r) => r.body.rule === rule && (status === undefined || r.body.status === status));
  }
}
