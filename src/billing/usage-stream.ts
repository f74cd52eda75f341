import { Logger } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import { USAGE_EXPORT_STALL_SECONDS } from '../config/config';
import { csvLine } from './csv';

const logger = new Logger('UsageStream');

/** Used when the caller gives no `stallMs` (USAGE_EXPORT_STALL_SECONDS' default). */
const DEFAULT_STALL_MS = USAGE_EXPORT_STALL_SECONDS * 1000;

/** What the stream writes to: Node's response (or, in a test, a Writable that behaves like one). */
export type StreamTarget = Pick<
  ServerResponse,
  'statusCode' | 'setHeader' | 'write' | 'end' | 'destroy' | 'destroyed' | 'once' | 'on' | 'off'
>;

/**
 * Writes batches of records to the response as they come, as CSV (header row, RFC 4180) or as a
 * `{ "data": [...] }` JSON document, waiting for 'drain' whenever the socket's buffer is full
 * (backpressure: a slow client slows the cursor, it does not fill this process's memory).
 *
 * The first batch is read before anything is sent, so a failure to start (bad database, timeout)
 * still becomes a problem+json response; a failure later can only cut the response short, and the
 * truncated body (no closing `]}` in JSON) tells the client it is incomplete.
 *
 * A client that stops reading must not keep the cursor's transaction and pooled connection: when no
 * 'drain' comes within `stallMs` of a full buffer, the response is destroyed (warn log) and the
 * iteration stopped, which rolls the transaction back and releases the connection.
 */
export async function streamRecords<T extends object>(
  reply: FastifyReply | StreamTarget,
  opts: { csv: boolean; columns: readonly (keyof T & string)[]; filename: string; stallMs?: number },
  batches: AsyncGenerator<T[]>,
): Promise<void> {
  const stallMs = opts.stallMs ?? DEFAULT_STALL_MS;
  // The body is written to Node's response directly, with its backpressure: the reply is hijacked
  // (Fastify sends nothing itself; its onResponse hook still sees the response finish, so the request
  // is in the metrics and the access log).
  const res: StreamTarget = 'raw' in reply ? reply.raw : reply;
  // Listen before the first (possibly slow) batch: a client gone by then must not leave us waiting for 'drain'.
  let gone = false;
  res.once('close', () => {
    gone = true;
  });
  const first = await batches.next();
  if ('hijack' in reply) reply.hijack(); // after the first batch: a failure to start is still a problem+json
  res.statusCode = 200;
  if (opts.csv) {
    res.setHeader('Content-Type', 'text/csv; charset=utf-8');
    res.setHeader('Content-Disposition', `attachment; filename="${opts.filename}"`);
  } else {
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
  }
  res.setHeader('Cache-Control', 'no-store');
  let wroteOne = false;
  const write = async (chunk: string) => {
    if (res.write(chunk) || gone || res.destroyed) return;
    if (await drainOrClose(res, stallMs)) return;
    gone = true;
    logger.warn(
      { stallMs, file: opts.filename },
      'usage export stalled: the client took nothing for the stall timeout; response cut, transaction rolled back',
    );
    res.destroy();
  };
  try {
    await write(opts.csv ? csvLine([...opts.columns]) : '{"data":[');
    let step = first;
    while (!step.done && !gone) {
      let chunk = '';
      for (const record of step.value) {
        if (opts.csv) chunk += csvLine(opts.columns.map((c) => record[c] as string | number));
        else {
          const picked: Record<string, unknown> = {};
          for (const c of opts.columns) picked[c] = record[c];
          chunk += (wroteOne ? ',' : '') + JSON.stringify(picked);
          wroteOne = true;
        }
      }
      await write(chunk);
      step = await batches.next();
    }
    if (gone) {
      await batches.return(undefined);
      return;
    }
    res.end(opts.csv ? '' : ']}');
  } catch (err) {
    logger.error({ err: (err as Error).message }, 'usage stream failed after the response started');
    await batches.return(undefined).catch(() => undefined);
    res.destroy(err as Error);
  }
}

/**
 * Resolves true on the first 'drain' or 'close', false when neither came within `stallMs` (the client
 * stopped reading); removes its listeners and timer either way (one wait per full buffer).
 */
function drainOrClose(res: StreamTarget, stallMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (moved: boolean) => {
      clearTimeout(timer);
      res.off('drain', onEvent);
      res.off('close', onEvent);
      resolve(moved);
    };
    const onEvent = () => done(true);
    const timer = setTimeout(() => done(false), stallMs);
    res.on('drain', onEvent);
    res.on('close', onEvent);
  });
}
