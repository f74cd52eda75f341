import { createServer, IncomingHttpHeaders, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { waitFor as waitForCondition } from '../support/wait';

export interface ReceivedWebhook {
  headers: IncomingHttpHeaders;
  raw: string;
  body: { type: string; id: string; createdAt: string; sequence?: number; data: Record<string, unknown> };
  at: number;
}

/** How the receiver answers the next request: a status (with a body), or hang until the client gives up. */
export type Answer =
  | { status: number; body?: string; delayMs?: number; headers?: Record<string, string> }
  | 'hang'
  /** Sends a 200's headers and the start of a body, then nothing more (until the client gives up). */
  | 'stall';

/** A real HTTP webhook receiver on 127.0.0.1 that records every request and answers as told. */
export class Receiver {
  readonly received: ReceivedWebhook[] = [];
  answer: (req: ReceivedWebhook) => Answer = () => ({ status: 200, body: 'ok' });
  inFlight = 0;
  maxInFlight = 0;
  private server!: Server;
  port = 0;

  async start(port = 0): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const hook: ReceivedWebhook = { headers: req.headers, raw, body: JSON.parse(raw), at: Date.now() };
        this.received.push(hook);
        this.inFlight++;
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
        const a = this.answer(hook);
        const done = () => this.inFlight--;
        if (a === 'hang' || a === 'stall') {
          res.on('close', done);
          if (a === 'stall') res.writeHead(200, { 'content-type': 'text/plain' }).write('partial answer');
          return;
        }
        setTimeout(() => {
          done();
          res.writeHead(a.status, { 'content-type': 'text/plain', ...a.headers }).end(a.body ?? '');
        }, a.delayMs ?? 0);
      });
    });
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Verifies a received webhook with the standardwebhooks package, as a tenant would. */
  static verify(hook: ReceivedWebhook, secret: string): unknown {
    return new Webhook(secret).verify(hook.raw, {
      'webhook-id': String(hook.headers['webhook-id']),
      'webhook-timestamp': String(hook.headers['webhook-timestamp']),
      'webhook-signature': String(hook.headers['webhook-signature']),
    });
  }
}

/** The one `waitFor` (test/support/wait.ts, throws on timeout), with this folder's argument order. */
export function waitFor<T>(fn: () => T | Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  return waitForCondition('the condition', fn, ok, ms);
}
