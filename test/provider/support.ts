import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface ReceivedCallback {
  path: string;
  query: Record<string, string>;
  at: number;
}

/** A DLR receiver on 127.0.0.1: records every GET it gets. `onRequest` may run before the 200 is sent. */
export async function startCallbackReceiver(onRequest?: (cb: ReceivedCallback) => Promise<void> | void): Promise<{
  url: string;
  received: ReceivedCallback[];
  close: () => Promise<void>;
}> {
  const received: ReceivedCallback[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const url = new URL(req.url ?? '/', 'http://receiver.invalid');
    const cb = { path: url.pathname, query: Object.fromEntries(url.searchParams), at: performance.now() };
    received.push(cb);
    void Promise.resolve(onRequest?.(cb)).finally(() => res.end('OK'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
