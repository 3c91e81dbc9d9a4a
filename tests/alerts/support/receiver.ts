/** A local webhook receiver on 127.0.0.1 that records requests and can refuse connections (closed) for a while. */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received { body: Record<string, unknown>; raw: string; headers: IncomingHttpHeaders }

export class TestReceiver {
  readonly received: Received[] = [];
  port = 0;
  private server: Server | null = null;

  async start(port = 0): Promise<void> {
    const server = createServer((req, res) => {
      let raw = '';
      req.on('data', (c) => (raw += c));
      req.on('end', () => {
        this.received.push({ body: JSON.parse(raw) as Record<string, unknown>, raw, headers: req.headers });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      });
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
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
