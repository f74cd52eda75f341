import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { DlrDispatcher, type CallbackAttempt } from './dlr-dispatcher';
import { DEFAULT_KNOBS, normalizeKnobs, SeededRandom, type SandboxKnobs } from './sandbox-knobs';
import {
  CODE_TEXT,
  formatBalanceExpiry,
  formatJakarta,
  formatMoney,
  SandboxLedger,
  type SandboxAccountSpec,
  type SandboxAccountView,
  type SandboxMessage,
} from './sandbox-state';

/**
 * The sandbox provider: a real HTTP server that behaves like the upstream of PROVIDER.md under
 * `/masking/*.php`, plus fault knobs and a small admin API under `/_sandbox/`. Used by the contract
 * tests, the benchmark, `npm run sandbox` and SANDBOX=true mode.
 *
 * It listens on 127.0.0.1 by default: the admin API has no authentication.
 */
export interface SandboxOptions {
  /** Default 0 (a free port). */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  accounts?: SandboxAccountSpec[];
  knobs?: Partial<SandboxKnobs>;
  /** Seed of the fault RNG. Default 1. */
  seed?: number;
  logger?: Logger;
  /** Clock for validity rules (tests move it). Default the system clock. */
  now?: () => Date;
}

/** A message the provider took, as `sent()` reports it. */
export type SentMessage = Omit<SandboxMessage, 'statusCode'>;

export interface SandboxHandle {
  /** Base URL of the provider API, e.g. `http://127.0.0.1:PORT/masking` (a provider account's baseUrl). */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
  setKnobs(partial: Partial<SandboxKnobs>): SandboxKnobs;
  knobs(): SandboxKnobs;
  /** Creates or replaces an account. */
  addAccount(spec: SandboxAccountSpec): SandboxAccountView;
  accounts(): SandboxAccountView[];
  setCallbackUrl(username: string, url: string | undefined): void;
  topUp(username: string, amount: string | number): SandboxAccountView;
  /** Puts an inbound message into a user's inbox (inbox.php). */
  addInbox(username: string, msisdn: string, text: string, receivedAt?: Date): void;
  /** Every message the provider took (answered or not), in order: proves no duplicates. */
  sent(): SentMessage[];
  /** Every DLR callback tried. */
  callbacks(): CallbackAttempt[];
  /** Back to the start options: accounts, knobs, seed; no messages, no pending DLRs. Ids keep increasing. */
  reset(): void;
}

export const SANDBOX_BASE_PATH = '/masking';
const MAX_FORM_BYTES = 64 * 1024;
const PHP_HTML = 'text/html; charset=UTF-8';

const WRONG_CREDENTIALS = 'Username atau Password salah';
const MISSING_PARAMETERS = 'Parameter tidak lengkap';

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_FORM_BYTES) {
        reject(new HttpError(413, 'request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function csvLine(values: string[]): string {
  return values.map(csvField).join(',') + '\r\n';
}

function phpDump(params: Record<string, string | undefined>): string {
  const entries = Object.entries(params).filter(([, v]) => v !== undefined) as Array<[string, string]>;
  const body = entries.map(([k, v]) => `["${k}"]=> string(${Buffer.byteLength(v)}) "${v}"`).join(' ');
  return `array(${entries.length}) { ${body} }`;
}

const sleep = (ms: number) => (ms > 0 ? new Promise<void>((r) => setTimeout(r, ms)) : Promise.resolve());

export async function startSandbox(options: SandboxOptions = {}): Promise<SandboxHandle> {
  const now = options.now ?? (() => new Date());
  const log = options.logger?.child({ component: 'sandbox-provider' });
  const seed = options.seed ?? 1;
  const initialKnobs: SandboxKnobs = { ...DEFAULT_KNOBS, ...normalizeKnobs(options.knobs ?? {}) };
  const initialAccounts = [...(options.accounts ?? [])];

  const ledger = new SandboxLedger();
  let knobs: SandboxKnobs = { ...initialKnobs };
  // One RNG object for the life of the server; reset() reseeds it in place, so the dispatcher keeps it.
  const rng = new SeededRandom(seed);
  const dlr = new DlrDispatcher(ledger, rng, () => knobs, log);
  for (const spec of initialAccounts) ledger.upsertAccount(spec, now());

  const blackholed = new Set<ServerResponse>();

  function reply(
    res: ServerResponse,
    status: number,
    body: string,
    contentType = PHP_HTML,
    extra: Record<string, string> = {},
  ): void {
    if (res.writableEnded || res.destroyed) return;
    res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), ...extra });
    res.end(body);
  }

  function json(res: ServerResponse, status: number, value: unknown): void {
    reply(res, status, JSON.stringify(value), 'application/json');
  }

  // --- provider endpoints ------------------------------------------------------------------------

  async function handleSend(res: ServerResponse, params: URLSearchParams, script: string): Promise<void> {
    const username = params.get('username') ?? undefined;
    const password = params.get('password') ?? undefined;
    const hp = params.get('hp')?.trim();
    const message = params.get('message') ?? undefined;

    // Front-end faults: the message is not taken.
    if (rng.chance(knobs.http500Rate)) {
      return reply(
        res,
        500,
        '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1></body></html>\n',
      );
    }
    if (rng.chance(knobs.htmlGarbageRate)) {
      // A PHP debug page that dumps the request, password included: the client must redact it.
      return reply(
        res,
        200,
        `<html><body>\n<br />\n<b>Warning</b>:  mysqli_connect(): (HY000/1040): Too many connections in <b>/var/www/html/masking/${script}</b> on line <b>7</b><br />\n<pre>${phpDump({ username, password, hp, message })}</pre>\n</body></html>\n`,
      );
    }
    if (rng.chance(knobs.emptyBodyRate)) return reply(res, 200, '');

    if (!username || password === undefined || !hp || message === undefined) return reply(res, 200, MISSING_PARAMETERS);
    const account = ledger.authenticate(username, password);
    if (!account) return reply(res, 200, WRONG_CREDENTIALS);

    const taken = ledger.submit(account, hp, message, now(), rng.chance(knobs.smsOvercountRate) ? 1 : 0);
    log?.debug({ id: taken.id, username, codes: taken.codes }, 'sandbox: message taken');
    const beforeAnswer = dlr.plan(taken);

    if (rng.chance(knobs.blackholeRate)) {
      // Taken, never answered: the socket stays open until the client gives up (or close()).
      blackholed.add(res);
      res.on('close', () => blackholed.delete(res));
      return;
    }
    await beforeAnswer;
    if (rng.chance(knobs.http500AfterAcceptRate)) {
      return reply(
        res,
        500,
        '<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1></body></html>\n',
      );
    }
    // PHP scripts end their output with a newline more often than not.
    reply(res, 200, `${taken.id}\n`);
  }

  function handleReport(res: ServerResponse, params: URLSearchParams): void {
    const message = ledger.message((params.get('rpt') ?? '').trim());
    if (!message) return reply(res, 200, '');
    if (message.statusCode === undefined) return reply(res, 200, 'Success Send');
    reply(res, 200, CODE_TEXT[message.statusCode]?.poll ?? `${message.statusCode}, Unknown`);
  }

  function handleBalance(res: ServerResponse, params: URLSearchParams): void {
    const account = ledger.authenticate(params.get('username') ?? undefined, params.get('password') ?? undefined);
    if (!account) return reply(res, 200, WRONG_CREDENTIALS);
    ledger.settle(account, now());
    reply(res, 200, `${formatMoney(account.balanceCents)}, ${formatBalanceExpiry(account.validUntil)}`);
  }

  function statusOf(message: SandboxMessage): { code: string; text: string } {
    if (message.statusCode === undefined) return { code: '', text: 'Success Send' };
    return { code: String(message.statusCode), text: CODE_TEXT[message.statusCode]?.callback ?? 'Unknown' };
  }

  function handleReportDownload(res: ServerResponse, form: URLSearchParams): void {
    const account = ledger.authenticate(form.get('username') ?? undefined, form.get('password') ?? undefined);
    if (!account) return reply(res, 200, WRONG_CREDENTIALS);
    const start = form.get('start') ?? '';
    const end = form.get('end') ?? '';
    const messages = ledger.messagesBetween(account.username, start, end);
    if (!messages) return reply(res, 200, 'Format tanggal salah (dd-mm-yyyy)');
    let csv = csvLine(['id', 'msisdn', 'message', 'sent_at', 'sms_count', 'price', 'status_code', 'status']);
    for (const m of messages) {
      const status = statusOf(m);
      csv += csvLine([
        m.id,
        m.msisdn,
        m.text,
        formatJakarta(m.at),
        String(m.smsCount),
        m.charged,
        status.code,
        status.text,
      ]);
    }
    reply(res, 200, csv, 'text/csv; charset=UTF-8', {
      'content-disposition': `attachment; filename="report_${start}_${end}.csv"`,
    });
  }

  function handleInbox(res: ServerResponse, params: URLSearchParams): void {
    const account = ledger.authenticate(params.get('username') ?? undefined, params.get('password') ?? undefined);
    if (!account) return reply(res, 200, WRONG_CREDENTIALS);
    const items = ledger.inboxOf(account.username).map((m, i) => ({
      id: String(i + 1),
      msisdn: m.msisdn,
      message: m.text,
      received_at: formatJakarta(m.receivedAt),
    }));
    if (knobs.inboxFormat === 'json') return reply(res, 200, JSON.stringify(items), 'application/json');
    if (knobs.inboxFormat === 'lines')
      return reply(res, 200, items.map((m) => `${m.msisdn},${m.received_at},${m.message}\n`).join(''));
    reply(
      res,
      200,
      csvLine(['id', 'msisdn', 'message', 'received_at']) +
        items.map((m) => csvLine([m.id, m.msisdn, m.message, m.received_at])).join(''),
    );
  }

  async function handleProvider(req: IncomingMessage, res: ServerResponse, url: URL, script: string): Promise<void> {
    // PHP reads $_GET for the GET scripts and $_POST for the *_post.php ones; the other half is ignored.
    const isPostScript = script === 'send_post.php' || script === 'reports_post.php';
    let params: URLSearchParams;
    if (!isPostScript) {
      params = url.searchParams;
      req.resume();
    } else if (req.method === 'POST') params = new URLSearchParams(await readBody(req));
    else {
      params = new URLSearchParams();
      req.resume();
    }
    await sleep(rng.between(knobs.latencyMs));
    switch (script) {
      case 'send.php':
      case 'send_post.php':
        return handleSend(res, params, script);
      case 'report.php':
        return handleReport(res, params);
      case 'balance.php':
        return handleBalance(res, params);
      case 'reports_post.php':
        return handleReportDownload(res, params);
      case 'inbox.php':
        return handleInbox(res, params);
      default:
        return reply(
          res,
          404,
          '<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>\n',
        );
    }
  }

  // --- admin endpoints ---------------------------------------------------------------------------

  function sentMessages(): SentMessage[] {
    return ledger.allMessages().map((m) => ({
      id: m.id,
      username: m.username,
      msisdn: m.msisdn,
      text: m.text,
      at: m.at,
      smsCount: m.smsCount,
      charged: m.charged,
      codes: [...m.codes],
    }));
  }

  async function handleAdmin(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const body = req.method === 'POST' ? await readBody(req) : (req.resume(), '');
    let input: Record<string, unknown> = {};
    if (body.trim()) {
      try {
        input = JSON.parse(body) as Record<string, unknown>;
      } catch {
        throw new HttpError(400, 'body must be JSON');
      }
    }
    const str = (key: string, required = true): string | undefined => {
      const v = input[key];
      if (v === undefined && !required) return undefined;
      if (typeof v !== 'string' || v === '') throw new HttpError(400, `${key} must be a non-empty string`);
      return v;
    };
    const route = `${req.method} ${path}`;
    switch (route) {
      case 'GET /_sandbox/knobs':
        return json(res, 200, handle.knobs());
      case 'POST /_sandbox/knobs':
        return json(res, 200, handle.setKnobs(input));
      case 'GET /_sandbox/sent':
        return json(res, 200, handle.sent());
      case 'GET /_sandbox/callbacks':
        return json(res, 200, handle.callbacks());
      case 'GET /_sandbox/accounts':
        return json(res, 200, handle.accounts());
      case 'POST /_sandbox/accounts': {
        const expiresAtText = str('expiresAt', false);
        const expiresAt = expiresAtText ? new Date(expiresAtText) : undefined;
        if (expiresAt && Number.isNaN(expiresAt.getTime()))
          throw new HttpError(400, 'expiresAt must be an ISO date-time');
        const balance = input.balance;
        if (typeof balance !== 'string' && typeof balance !== 'number')
          throw new HttpError(400, 'balance must be a decimal string');
        const pricePerSms = input.pricePerSms;
        if (pricePerSms !== undefined && typeof pricePerSms !== 'string' && typeof pricePerSms !== 'number')
          throw new HttpError(400, 'pricePerSms must be a decimal string');
        return json(
          res,
          201,
          handle.addAccount({
            username: str('username')!,
            password: str('password')!,
            balance,
            expiresAt,
            callbackUrl: str('callbackUrl', false),
            pricePerSms,
          }),
        );
      }
      case 'POST /_sandbox/callback':
        handle.setCallbackUrl(str('username')!, str('url', false));
        return json(res, 200, { ok: true });
      case 'POST /_sandbox/topup': {
        const amount = input.amount;
        if (typeof amount !== 'string' && typeof amount !== 'number')
          throw new HttpError(400, 'amount must be a decimal string');
        return json(res, 200, handle.topUp(str('username')!, amount));
      }
      case 'POST /_sandbox/inbox': {
        const receivedAtText = str('receivedAt', false);
        const receivedAt = receivedAtText ? new Date(receivedAtText) : undefined;
        if (receivedAt && Number.isNaN(receivedAt.getTime()))
          throw new HttpError(400, 'receivedAt must be an ISO date-time');
        handle.addInbox(str('username')!, str('msisdn')!, str('text')!, receivedAt);
        return json(res, 201, { ok: true });
      }
      case 'POST /_sandbox/reset':
        handle.reset();
        return json(res, 200, { ok: true });
      default:
        return json(res, 404, { error: 'unknown sandbox admin route' });
    }
  }

  // --- server ------------------------------------------------------------------------------------

  const server: Server = createServer((req, res) => {
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://sandbox.invalid');
    res.on('finish', () =>
      // The path only: a GET send or balance query carries the password.
      log?.debug(
        { method: req.method, path: url.pathname, status: res.statusCode, ms: Math.round(performance.now() - started) },
        'sandbox request',
      ),
    );
    let work: Promise<void>;
    if (url.pathname.startsWith(`${SANDBOX_BASE_PATH}/`))
      work = handleProvider(req, res, url, url.pathname.slice(SANDBOX_BASE_PATH.length + 1));
    else if (url.pathname.startsWith('/_sandbox/')) work = handleAdmin(req, res, url.pathname);
    else {
      req.resume();
      work = Promise.resolve(reply(res, 404, 'Not Found', 'text/plain'));
    }
    work.catch((err: unknown) => {
      if (err instanceof HttpError) return json(res, err.status, { error: err.message });
      if (err instanceof RangeError) return json(res, 400, { error: err.message });
      log?.error(
        { err: err instanceof Error ? err.message : String(err), path: url.pathname },
        'sandbox: handler failed',
      );
      json(res, 500, { error: 'sandbox error' });
    });
  });

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | undefined;

  const handle: SandboxHandle = {
    url: `http://${urlHost}:${port}${SANDBOX_BASE_PATH}`,
    port,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        // Blackholed requests and idle keep-alive sockets would otherwise hold close() forever.
        for (const res of blackholed) res.destroy();
        server.closeAllConnections();
        await dlr.close();
        await closed;
      })();
      return closing;
    },
    setKnobs(partial) {
      knobs = { ...knobs, ...normalizeKnobs(partial) };
      log?.info({ knobs }, 'sandbox: knobs changed');
      return { ...knobs };
    },
    knobs: () => ({ ...knobs, latencyMs: [...knobs.latencyMs], dlrDelayMs: [...knobs.dlrDelayMs] }),
    addAccount(spec) {
      return ledger.view(ledger.upsertAccount(spec, now()), now());
    },
    accounts: () => ledger.views(now()),
    setCallbackUrl(username, url) {
      if (url !== undefined) new URL(url); // throws on a malformed URL
      ledger.setCallbackUrl(username, url);
    },
    topUp(username, amount) {
      return ledger.view(ledger.topUp(username, amount, now()), now());
    },
    addInbox(username, msisdn, text, receivedAt) {
      ledger.addInbox({ username, msisdn, text, receivedAt: receivedAt ?? now() });
    },
    sent: sentMessages,
    callbacks: () => dlr.callbacks(),
    reset() {
      dlr.cancelAll();
      ledger.clear();
      knobs = { ...initialKnobs };
      rng.reseed(seed);
      for (const spec of initialAccounts) ledger.upsertAccount(spec, now());
    },
  };
  log?.info({ url: handle.url }, 'sandbox provider listening');
  return handle;
}
