import { DateTime } from 'luxon';

/**
 * The sandbox provider's bookkeeping, following PROVIDER.md: accounts with a decimal balance and a
 * validity, the provider's own 160-characters-per-SMS count, numeric increasing ids, and the five
 * status codes. Pure apart from the clock it is given; the HTTP layer lives in sandbox.ts.
 *
 * Validity (the provider's rule, "3 months + 1 month grace"): a top-up makes the balance valid for
 * 3 months from now (never shortening a later validity). Until `validUntil` it can be spent. In the
 * following month of grace it is kept but cannot be spent (sends get 51) and a top-up revives it;
 * from `validUntil + 1 month` on it is forfeited (balance 0).
 *
 * Deterministic test numbers (the destination decides the DLR codes):
 * - `62899…`  → 52 No Charge (wrong number, not charged); so is anything that is not `62`/`0` + 6–14 digits
 * - `62898…`  → 20 Pending, later 22 Delivered
 * - `62897…`  → 20 Pending, and nothing after (stays pending)
 * - anything else → 22 Delivered
 * Account state comes first: lapsed validity → 51, balance below the price → 50 (both not charged).
 */

export const SANDBOX_ZONE = 'Asia/Jakarta';
export const VALIDITY_MONTHS = 3;
export const GRACE_MONTHS = 1;
export const PROVIDER_CHARS_PER_SMS = 160;
/** The provider document's example id: the lowest id ever handed out. */
export const FIRST_MESSAGE_ID = 18319370;
/** Ids per millisecond of wall-clock time the counter may run ahead before a restart could reuse one. */
const IDS_PER_MS = 100;

/**
 * Where a fresh sandbox starts counting: the wall clock × 100 (about 1.8e14, a safe integer).
 * A restart (the demo on the same `.data`, whose database keeps the ids of the earlier run) must
 * never hand out an id it issued before, or an old message would receive the new one's reports
 * and the month's unique index on provider ids (`messages_pYYYYMM_provider_id_uq`) would refuse the new one. 100 ids per ms of headroom is far more
 * than the sandbox can issue (it would have to average 100,000 sends a second over its whole run).
 * Within a run ids are consecutive.
 */
export function clockSeededId(nowMs = Date.now()): number {
  return Math.max(FIRST_MESSAGE_ID, Math.floor(nowMs) * IDS_PER_MS);
}

export const CODE_TEXT: Readonly<Record<number, { callback: string; poll: string }>> = {
  22: { callback: 'Delivered', poll: '22, Delivered' },
  20: { callback: 'Pending', poll: '20, Pending' },
  // The poll answer folds 50/51/52 under 50 with the provider's Indonesian text (PROVIDER.md §3).
  50: { callback: 'Insufficient Credit Balance', poll: '50, Saldo Habis' },
  51: { callback: 'Expiration Period', poll: '50, Periode Habis' },
  52: { callback: 'No Charge', poll: '50, No Charge' },
};

// --- money: decimal strings in, integer hundredths inside, decimal strings out ------------------

/** Parses `125000`, `125000.5`, `125000.50` (at most 2 decimals) into hundredths. */
export function parseMoney(value: string | number): bigint {
  const text = typeof value === 'number' ? String(value) : value.trim();
  const m = /^(-?)([0-9]+)(?:\.([0-9]{1,2}))?$/.exec(text);
  if (!m) throw new RangeError(`not an amount: ${JSON.stringify(text)}`);
  const cents = BigInt(m[2]) * 100n + BigInt((m[3] ?? '').padEnd(2, '0') || '0');
  return m[1] ? -cents : cents;
}

/** `125000` when whole, else `125000.50`. */
export function formatMoney(cents: bigint): string {
  const sign = cents < 0n ? '-' : '';
  const abs = cents < 0n ? -cents : cents;
  const whole = abs / 100n;
  const frac = abs % 100n;
  return frac === 0n ? `${sign}${whole}` : `${sign}${whole}.${frac.toString().padStart(2, '0')}`;
}

/** The provider's count: 160 characters (code points) per SMS, at least one. */
export function providerSmsCount(text: string): number {
  return Math.max(1, Math.ceil([...text].length / PROVIDER_CHARS_PER_SMS));
}

function addMonths(date: Date, months: number): Date {
  return DateTime.fromJSDate(date, { zone: SANDBOX_ZONE }).plus({ months }).toJSDate();
}

/** `YYYY/MM/DD-HH:mm:ss` in Jakarta, as balance.php writes it. */
export function formatBalanceExpiry(date: Date): string {
  return DateTime.fromJSDate(date, { zone: SANDBOX_ZONE }).toFormat('yyyy/MM/dd-HH:mm:ss');
}

export function formatJakarta(date: Date): string {
  return DateTime.fromJSDate(date, { zone: SANDBOX_ZONE }).toFormat('yyyy-MM-dd HH:mm:ss');
}

// --- accounts ------------------------------------------------------------------------------------

export interface SandboxAccountSpec {
  username: string;
  password: string;
  /** Decimal string (or number) in the provider's currency. */
  balance: string | number;
  /** End of validity; default now + 3 months. */
  expiresAt?: Date;
  /** Where DLR callbacks of this provider user go (PROVIDER.md: one URL per user id). */
  callbackUrl?: string;
  /** Price of one SMS (provider count). Default 300. */
  pricePerSms?: string | number;
}

export interface SandboxAccount {
  username: string;
  password: string;
  balanceCents: bigint;
  validUntil: Date;
  callbackUrl?: string;
  priceCents: bigint;
}

/** What an admin listing shows of an account: never the password. */
export interface SandboxAccountView {
  username: string;
  balance: string;
  validUntil: string;
  graceUntil: string;
  callbackUrl?: string;
  pricePerSms: string;
}

export interface SandboxMessage {
  id: string;
  username: string;
  msisdn: string;
  text: string;
  at: Date;
  /** Provider count (160 characters per SMS). */
  smsCount: number;
  /** What the provider took from the account ('0' when not charged). */
  charged: string;
  /** The DLR codes this message will go through, in true order (e.g. [20, 22]). */
  codes: number[];
  /** The latest status report.php knows; undefined until the first DLR event ("Success Send"). */
  statusCode?: number;
}

export interface InboxMessage {
  username: string;
  msisdn: string;
  text: string;
  receivedAt: Date;
}

const graceCache = new WeakMap<SandboxAccount, { validUntil: number; graceUntil: Date }>();

/** validUntil + 1 month (Jakarta calendar); memoised, as it is read on every send. */
export function graceUntil(account: SandboxAccount): Date {
  const cached = graceCache.get(account);
  if (cached && cached.validUntil === account.validUntil.getTime()) return cached.graceUntil;
  const value = addMonths(account.validUntil, GRACE_MONTHS);
  graceCache.set(account, { validUntil: account.validUntil.getTime(), graceUntil: value });
  return value;
}

export class SandboxLedger {
  private readonly accounts = new Map<string, SandboxAccount>();
  private readonly messages: SandboxMessage[] = [];
  private readonly messagesById = new Map<string, SandboxMessage>();
  private readonly inbox: InboxMessage[] = [];
  private nextId: number;

  /** Without `firstId` the ids follow the wall clock (unique across restarts); tests may fix it. */
  constructor(firstId?: number) {
    this.nextId = firstId ?? clockSeededId();
  }

  /** Creates or replaces an account (same username = replaced). */
  upsertAccount(spec: SandboxAccountSpec, now: Date): SandboxAccount {
    if (!spec.username || !spec.password) throw new RangeError('username and password are required');
    const account: SandboxAccount = {
      username: spec.username,
      password: spec.password,
      balanceCents: parseMoney(spec.balance),
      validUntil: spec.expiresAt ?? addMonths(now, VALIDITY_MONTHS),
      callbackUrl: spec.callbackUrl,
      priceCents: parseMoney(spec.pricePerSms ?? 300),
    };
    if (account.balanceCents < 0n) throw new RangeError('balance must not be negative');
    if (account.priceCents < 0n) throw new RangeError('pricePerSms must not be negative');
    this.accounts.set(account.username, account);
    return account;
  }

  account(username: string): SandboxAccount | undefined {
    return this.accounts.get(username);
  }

  /** The account when the credentials match, else undefined (no hint which one was wrong). */
  authenticate(username: string | undefined, password: string | undefined): SandboxAccount | undefined {
    if (!username || password === undefined) return undefined;
    const account = this.accounts.get(username);
    return account && account.password === password ? account : undefined;
  }

  /** Forfeits a balance whose grace month has passed. Called before every read or spend. */
  settle(account: SandboxAccount, now: Date): void {
    if (account.balanceCents !== 0n && now >= graceUntil(account)) account.balanceCents = 0n;
  }

  topUp(username: string, amount: string | number, now: Date): SandboxAccount {
    const account = this.requireAccount(username);
    const cents = parseMoney(amount);
    if (cents <= 0n) throw new RangeError('top-up amount must be positive');
    this.settle(account, now);
    account.balanceCents += cents;
    const fresh = addMonths(now, VALIDITY_MONTHS);
    if (fresh > account.validUntil) account.validUntil = fresh;
    return account;
  }

  setCallbackUrl(username: string, url: string | undefined): void {
    this.requireAccount(username).callbackUrl = url;
  }

  view(account: SandboxAccount, now: Date): SandboxAccountView {
    this.settle(account, now);
    return {
      username: account.username,
      balance: formatMoney(account.balanceCents),
      validUntil: account.validUntil.toISOString(),
      graceUntil: graceUntil(account).toISOString(),
      callbackUrl: account.callbackUrl,
      pricePerSms: formatMoney(account.priceCents),
    };
  }

  views(now: Date): SandboxAccountView[] {
    return [...this.accounts.values()].map((a) => this.view(a, now));
  }

  /**
   * Takes one message: issues the next id and decides its codes and charge. The send is "taken" in
   * every case (the provider answers with an id and reports 50/51/52 later), as the real one does.
   * `extraSms` is counted on top of the provider's rule (the `smsOvercountRate` knob).
   */
  submit(account: SandboxAccount, msisdn: string, text: string, now: Date, extraSms = 0): SandboxMessage {
    this.settle(account, now);
    const smsCount = providerSmsCount(text) + extraSms;
    const cost = account.priceCents * BigInt(smsCount);
    let codes: number[];
    let charged = 0n;
    if (now >= account.validUntil) codes = [51];
    else if (!/^(?:62|0)[0-9]{6,14}$/.test(msisdn) || msisdn.startsWith('62899')) codes = [52];
    else if (account.balanceCents < cost) codes = [50];
    else {
      charged = cost;
      account.balanceCents -= cost;
      codes = msisdn.startsWith('62898') ? [20, 22] : msisdn.startsWith('62897') ? [20] : [22];
    }
    const message: SandboxMessage = {
      id: String(this.nextId++),
      username: account.username,
      msisdn,
      text,
      at: now,
      smsCount,
      charged: formatMoney(charged),
      codes,
    };
    this.messages.push(message);
    this.messagesById.set(message.id, message);
    return message;
  }

  message(id: string): SandboxMessage | undefined {
    return this.messagesById.get(id);
  }

  allMessages(): readonly SandboxMessage[] {
    return this.messages;
  }

  /** Messages of a user whose Jakarta calendar day is within [start, end] (dd-mm-YYYY, inclusive). */
  messagesBetween(username: string, start: string, end: string): SandboxMessage[] | undefined {
    const from = DateTime.fromFormat(start.trim(), 'dd-MM-yyyy', { zone: SANDBOX_ZONE });
    const to = DateTime.fromFormat(end.trim(), 'dd-MM-yyyy', { zone: SANDBOX_ZONE });
    if (!from.isValid || !to.isValid) return undefined;
    const lo = from.startOf('day').toMillis();
    const hi = to.plus({ days: 1 }).startOf('day').toMillis();
    return this.messages.filter((m) => m.username === username && m.at.getTime() >= lo && m.at.getTime() < hi);
  }

  addInbox(message: InboxMessage): void {
    this.requireAccount(message.username);
    this.inbox.push(message);
  }

  inboxOf(username: string): InboxMessage[] {
    return this.inbox.filter((m) => m.username === username);
  }

  /** Clears messages, inbox and accounts; ids keep increasing (a provider never reuses an id). */
  clear(): void {
    this.accounts.clear();
    this.messages.length = 0;
    this.messagesById.clear();
    this.inbox.length = 0;
  }

  private requireAccount(username: string): SandboxAccount {
    const account = this.accounts.get(username);
    if (!account) throw new RangeError(`no sandbox account ${username}`);
    return account;
  }
}
