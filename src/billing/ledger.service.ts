import { Injectable, Logger } from '@nestjs/common';
import { prepared, rows } from '../database/raw-rows';
import { DataSource, EntityManager } from 'typeorm';
import { inTransaction } from '../database/transaction';
import { Clock } from '../common/clock';
import { uuidv7 } from '../common/ids';
import { Problem, notFound } from '../common/problem';
import { MAX_AMOUNT } from '../common/validation';
import { TenantsService } from '../tenants/tenants.service';
import { LedgerEntry, LedgerKind } from './ledger-entry.entity';
import { BalanceState, balanceState, validityAfterTopup } from './validity';
import { WebhooksService } from '../webhooks/webhooks.service';

/**
 * Every movement of a tenant's money happens in this file.
 *
 * Invariants (also enforced by the schema, see migrations and docs/data-model.md):
 * - `tenants.balance` changes only in the same transaction as the ledger row that explains it,
 *   and `ledger_entries.balance_after` is the balance right after that row;
 * - sum(ledger_entries.amount) == tenants.balance, and the balance is never negative (CHECK);
 * - a message is debited at most once and refunded at most once (partial unique indexes), so a
 *   retried or concurrent refund is a no-op, not a second credit;
 * - at graceUntil the remaining balance is forfeited by an `expiry` row (a late refund into an ended
 *   period is forfeited at once, in its own transaction: creditRefunds).
 *
 * Locking (docs/data-model.md, "Lock order"): the tenant row is locked `FOR NO KEY UPDATE`, never
 * `FOR UPDATE`: a balance update changes no key, and `FOR NO KEY UPDATE` does not conflict with the
 * `FOR KEY SHARE` that every insert of a row referencing the tenant (message_events, ledger_entries,
 * messages…) takes. So a transaction that inserted such a row first and locks the tenant second does
 * not deadlock against another one doing the same. Rows are locked messages first (id ascending),
 * then tenants (id ascending), for as short a time as possible, inside one transaction. The
 * transactions this file opens are rerun on deadlock/serialization failure (database/transaction.ts).
 */

const DAY_MS = 86_400_000;
/** Below this age (since its debit) a message's validity period cannot have ended (28 days, less one for clocks that differ between processes): see endedPeriods. */
const PERIOD_MIN_AGE_MS = 27 * DAY_MS;
/** How far before a debit the top-up that set its validity can be (3 months and slack). */
const TOPUP_LOOKBACK_MS = 150 * DAY_MS;

export interface BalanceView {
  balance: number;
  validUntil: Date | null;
  graceUntil: Date | null;
  state: BalanceState;
}

/** A top-up or adjustment: its ledger row and the balance right after it. */
export interface Movement {
  entry: LedgerEntry;
  balance: BalanceView;
}

export interface LockedTenant {
  id: string;
  balance: number;
  validUntil: Date | null;
  graceUntil: Date | null;
}

interface NewEntry {
  tenantId: string;
  kind: LedgerKind;
  amount: number;
  balanceAfter: number;
  messageId?: string | null;
  reference?: string | null;
  validUntil?: Date | null;
  graceUntil?: Date | null;
  createdBy?: string | null;
  createdAt: Date;
}

@Injectable()
export class LedgerService {
  private readonly logger = new Logger(LedgerService.name);

  constructor(
    private readonly dataSource: DataSource,
    private readonly clock: Clock,
    private readonly webhooks: WebhooksService,
    private readonly tenants: TenantsService,
  ) {}

  /**
   * Credits a top-up and extends validity per the provider's rule (3 months + 1 month grace).
   * `within` runs inside the same transaction after the movement (e.g. completing an Idempotency-Key),
   * so the credit and whatever it records commit together or not at all.
   */
  async topUp(
    tenantId: string,
    amount: number,
    reference: string | null,
    adminUserId: string | null,
    within?: (m: EntityManager, result: Movement) => Promise<void>,
  ): Promise<Movement> {
    this.assertAmount(amount, false);
    return inTransaction(this.dataSource, async (m) => {
      const now = this.clock.now();
      let tenant = await this.lockTenant(m, tenantId);
      tenant = await this.expireLocked(m, tenant, now);
      const newBalance = this.checkedSum(tenant.balance, amount);
      const { validUntil, graceUntil } = validityAfterTopup(now, tenant.validUntil);
      await this.writeBalance(m, tenantId, newBalance, now, { validUntil, graceUntil });
      const entry = await this.insertEntry(m, {
        tenantId,
        kind: 'topup',
        amount,
        balanceAfter: newBalance,
        reference,
        validUntil,
        graceUntil,
        createdBy: adminUserId,
        createdAt: now,
      });
      const result = { entry, balance: this.view(now, newBalance, validUntil, graceUntil) };
      await within?.(m, result);
      return result;
    });
  }

  /**
   * A signed correction by an admin. It never changes validity and never drives the balance below
   * zero: a negative adjustment larger than the balance is refused with `insufficient_balance`.
   * `within`: as for topUp.
   */
  async adjust(
    tenantId: string,
    amount: number,
    reason: string,
    adminUserId: string | null,
    within?: (m: EntityManager, result: Movement) => Promise<void>,
  ): Promise<Movement> {
    this.assertAmount(amount, true);
    return inTransaction(this.dataSource, async (m) => {
      const now = this.clock.now();
      let tenant = await this.lockTenant(m, tenantId);
      tenant = await this.expireLocked(m, tenant, now);
      if (amount > 0 && tenant.graceUntil && (now >= tenant.graceUntil || (await this.periodForfeited(m, tenant)))) {
        // The validity period ended and its balance was forfeited; credit now would only be forfeited
        // again. A top-up starts a new period. Also when `now` (read before the lock) is just short of
        // graceUntil but a writer with a later clock already forfeited the period: credit past graceUntil
        // could never be forfeited again (one expiry row per period) and would fail the tenant's every write.
        throw new Problem('conflict', 'The validity period has ended: top up to start a new one instead of adjusting');
      }
      const newBalance = this.checkedSum(tenant.balance, amount);
      if (newBalance < 0) {
        throw new Problem('insufficient_balance', `Adjustment of ${amount} exceeds the balance of ${tenant.balance}`);
      }
      await this.writeBalance(m, tenantId, newBalance, now);
      const entry = await this.insertEntry(m, {
        tenantId,
        kind: 'adjustment',
        amount,
        balanceAfter: newBalance,
        reference: reason,
        createdBy: adminUserId,
        createdAt: now,
      });
      const result = { entry, balance: this.view(now, newBalance, tenant.validUntil, tenant.graceUntil) };
      await within?.(m, result);
      return result;
    });
  }

  /** The balance as the tenant sees it; forfeits first if graceUntil has passed (idempotent). */
  async balance(tenantId: string): Promise<BalanceView> {
    const now = this.clock.now();
    const rows: { balance: string; valid_until: Date | null; grace_until: Date | null }[] = await this.dataSource.query(
      `SELECT balance, valid_until, grace_until FROM tenants WHERE id = $1`,
      [tenantId],
    );
    if (rows.length === 0) throw notFound('Tenant');
    const r = rows[0];
    if (r.grace_until && now >= r.grace_until && Number(r.balance) > 0) {
      await this.expireIfDue(tenantId);
      return this.balance(tenantId);
    }
    return this.view(now, Number(r.balance), r.valid_until, r.grace_until);
  }

  /**
   * Forfeits the remaining balance of a tenant whose grace period has ended. Safe to call any time,
   * concurrently: the decision is re-made under the tenant's lock, so a second caller (another process's
   * sweep, a read) finds the balance already 0, and a top-up that committed first (new validity) leaves
   * nothing due. `ledger_one_expiry_per_period_uq` is the backstop. Returns whether it forfeited now.
   */
  async expireIfDue(tenantId: string): Promise<boolean> {
    return inTransaction(this.dataSource, async (m) => {
      const tenant = await this.lockTenant(m, tenantId);
      const after = await this.expireLocked(m, tenant, this.clock.now());
      return after !== tenant;
    });
  }

  /**
   * The scheduled forfeiture sweep: every tenant past graceUntil with money left, in batches (keyset on id,
   * candidates read without locks, each decided by expireIfDue). One tenant's failure is logged and left to
   * the next run. Returns how many this call forfeited.
   */
  async sweepExpired(batch = 100): Promise<number> {
    const now = this.clock.now();
    let expired = 0;
    let after = '00000000-0000-0000-0000-000000000000';
    for (;;) {
      const due = await rows<{ id: string }>(
        this.dataSource,
        `SELECT id FROM tenants WHERE grace_until <= $1 AND balance > 0 AND id > $2 ORDER BY id LIMIT $3`,
        [now, after, batch],
      );
      for (const { id } of due) {
        try {
          if (await this.expireIfDue(id)) expired++;
        } catch (e) {
          this.logger.error({ tenantId: id, err: (e as Error).message }, 'forfeiture failed');
        }
      }
      if (due.length < batch) return expired;
      after = due[due.length - 1].id;
    }
  }

  async listEntries(tenantId: string, limit: number, afterSeq: number | null): Promise<LedgerEntry[]> {
    const qb = this.dataSource
      .getRepository(LedgerEntry)
      .createQueryBuilder('e')
      .where('e.tenant_id = :tenantId', { tenantId })
      .orderBy('e.seq', 'DESC')
      .limit(limit);
    if (afterSeq !== null) qb.andWhere('e.seq < :afterSeq', { afterSeq });
    return qb.getMany();
  }

  // ---- messages: debit on accept, refund on failure -------------------------------------

  /**
   * Locks the tenant row for a message-accept transaction and applies a due forfeiture first.
   * The caller (messaging/accept.service.ts) holds the lock for one short transaction that
   * charges many messages at once: one hot-row update per batch, not per message.
   */
  async lockForCharging(m: EntityManager, tenantId: string, now: Date) {
    // The money lock: billing's own columns (balance, validity) under FOR NO KEY UPDATE. The settings
    // (status, price, provider account) belong to tenants and are read through TenantsService after
    // the lock, in this transaction: an admin's PATCH of them waits for this row lock, so they cannot
    // change before the charge commits.
    const locked = await this.lockTenant(m, tenantId);
    const settings = await this.tenants.settings(tenantId, m);
    if (!settings) throw notFound('Tenant');
    const tenant = await this.expireLocked(m, locked, now);
    return {
      ...tenant,
      status: settings.status,
      pricePerSegment: settings.pricePerSegment,
      providerAccountId: settings.providerAccountId,
      state: balanceState(now, tenant.balance, tenant.validUntil, tenant.graceUntil),
    };
  }

  /**
   * Writes one `debit` row per message (in the given order, each with its running balance_after)
   * and the tenant's new balance, inside the caller's transaction, under the lock taken by
   * lockForCharging. The caller has already checked that the balance covers every price.
   * The messages rows must exist already (trigger ledger_entries_message_check: same tenant).
   */
  async debitMessages(
    m: EntityManager,
    tenantId: string,
    startBalance: number,
    debits: { messageId: string; price: number }[],
    now: Date,
  ): Promise<number> {
    if (debits.length === 0) return startBalance;
    let balance = startBalance;
    const ids: string[] = [];
    const amounts: number[] = [];
    const after: number[] = [];
    const messageIds: string[] = [];
    for (const d of debits) {
      balance -= d.price;
      if (balance < 0) throw new Error('debitMessages: balance would go negative (caller bug)');
      ids.push(uuidv7());
      amounts.push(-d.price);
      after.push(balance);
      messageIds.push(d.messageId);
    }
    await prepared(
      m,
      `INSERT INTO ledger_entries (id, tenant_id, kind, amount, balance_after, message_id, created_at)
       SELECT u.id, $1, 'debit', u.amount, u.after, u.message_id, $2
         FROM unnest($3::uuid[], $4::bigint[], $5::bigint[], $6::uuid[]) WITH ORDINALITY AS u(id, amount, after, message_id, ord)
        ORDER BY u.ord`,
      [tenantId, now, ids, amounts, after, messageIds],
    );
    await this.writeBalance(m, tenantId, balance, now);
    return balance;
  }

  /**
   * Credits refunds of messages in full, inside the caller's transaction. The caller has already
   * decided, exactly once, which messages are refunded now: messaging's guarded flip of
   * `messages.refunded` (MessageRefundsService.markRefunded), which locked those message rows in id
   * order; the unique index ledger_one_refund_per_message_uq is the backstop. This locks the tenants
   * next, ascending (docs/data-model.md, "Lock order").
   */
  async creditRefunds(
    m: EntityManager,
    refunds: { messageId: string; tenantId: string; price: number; createdAt: Date }[],
    now: Date,
  ): Promise<void> {
    if (refunds.length === 0) return;
    const byTenant = new Map<string, { id: string; price: number; createdAt: Date }[]>();
    for (const r of refunds) {
      const list = byTenant.get(r.tenantId) ?? [];
      list.push({ id: r.messageId, price: r.price, createdAt: r.createdAt });
      byTenant.set(r.tenantId, list);
    }
    // All tenants are locked up front in ascending id order, whatever order the caller worked in, so
    // concurrent multi-tenant refunds (dispatcher outcomes, delivery reports, cancels) cannot deadlock.
    const locked = await this.lockTenants(m, [...byTenant.keys()]);
    for (const lockedTenant of locked) {
      const tenantId = lockedTenant.id;
      const items = byTenant.get(tenantId)!;
      // A due forfeiture first (one period row), so the refunds below never inflate it.
      const tenant = await this.expireLocked(m, lockedTenant, now);
      let balance = tenant.balance;
      const ids: string[] = [];
      const after: number[] = [];
      for (const it of items) {
        balance = this.checkedSum(balance, it.price);
        ids.push(uuidv7());
        after.push(balance);
      }
      await this.insertMessageRows(
        m,
        tenantId,
        'refund',
        now,
        ids,
        items.map((i) => i.price),
        after,
        items,
        null,
      );
      const ended = await this.endedPeriods(m, tenant, items, now);
      const lost = items.filter((it) => ended.has(it.id));
      if (lost.length > 0) {
        // The validity period these messages were paid from has ended and its balance was forfeited: the
        // refund is forfeited too, at once, by one expiry row per refunded message naming that period (the
        // period's own expiry row is unique, docs/data-model.md).
        const expIds: string[] = [];
        const expAfter: number[] = [];
        for (const it of lost) {
          balance -= it.price;
          expIds.push(uuidv7());
          expAfter.push(balance);
        }
        await this.insertMessageRows(
          m,
          tenantId,
          'expiry',
          now,
          expIds,
          lost.map((i) => -i.price),
          expAfter,
          lost,
          lost.map((i) => ended.get(i.id)!),
        );
        this.logger.log({ tenantId, forfeited: lost.length }, 'late refunds forfeited: their period has ended');
      }
      await this.writeBalance(m, tenantId, balance, now);
    }
  }

  // ---- internals -------------------------------------------------------------------------

  /**
   * The one write of `tenants.balance` (the caller holds the tenant's lock and writes the ledger rows that
   * explain it). It also keeps the `balance.low` state in the same statement: the write that takes the
   * balance below the tenant's `lowBalanceThreshold` while the notice is armed queues one `balance.low` in
   * this transaction and disarms it; a write at or above the threshold re-arms it. So a run of debits below
   * the threshold notifies once, and a top-up above it then a debit below again notifies again.
   */
  private async writeBalance(
    m: EntityManager,
    tenantId: string,
    balance: number,
    now: Date,
    validity?: { validUntil: Date; graceUntil: Date },
  ): Promise<void> {
    const params: unknown[] = [tenantId, balance, now];
    let setValidity = '';
    if (validity) {
      params.push(validity.validUntil, validity.graceUntil);
      setValidity = ', valid_until = $4, grace_until = $5';
    }
    // `was` reads the row this transaction already holds locked: the state before this write.
    const [state] = await rows<{ was_low: boolean; is_low: boolean; threshold: string }>(
      m,
      `UPDATE tenants t
          SET balance = $2::bigint, low_balance_notified = $2::bigint < t.low_balance_threshold,
              updated_at = $3${setValidity}
         FROM (SELECT low_balance_notified FROM tenants WHERE id = $1) was
        WHERE t.id = $1
        RETURNING was.low_balance_notified AS was_low, t.low_balance_notified AS is_low, t.low_balance_threshold AS threshold`,
      params,
    );
    if (state && state.is_low && !state.was_low) {
      await this.webhooks.enqueue(m, [
        { tenantId, type: 'balance.low', data: { balance, threshold: Number(state.threshold) }, occurredAt: now },
      ]);
    }
  }

  /** Ledger rows for messages, one statement, in the given order (seq follows it): a running chain. */
  private async insertMessageRows(
    m: EntityManager,
    tenantId: string,
    kind: 'refund' | 'expiry',
    now: Date,
    ids: string[],
    amounts: number[],
    after: number[],
    items: { id: string }[],
    graceUntil: (Date | null)[] | null,
  ): Promise<void> {
    await m.query(
      `INSERT INTO ledger_entries (id, tenant_id, kind, amount, balance_after, message_id, grace_until, created_at)
       SELECT u.id, $1, $2, u.amount, u.after, u.message_id, u.grace_until, $3
         FROM unnest($4::uuid[], $5::bigint[], $6::bigint[], $7::uuid[], $8::timestamptz[])
              WITH ORDINALITY AS u(id, amount, after, message_id, grace_until, ord)
        ORDER BY u.ord`,
      [tenantId, kind, now, ids, amounts, after, items.map((i) => i.id), graceUntil ?? items.map(() => null)],
    );
  }

  /** Whether the tenant's current validity period has been forfeited already (its period expiry row exists). */
  private async periodForfeited(m: EntityManager, tenant: LockedTenant): Promise<boolean> {
    const found = await rows<{ one: number }>(
      m,
      `SELECT 1 AS one FROM ledger_entries
        WHERE tenant_id = $1 AND kind = 'expiry' AND message_id IS NULL AND grace_until = $2`,
      [tenant.id, tenant.graceUntil],
    );
    return found.length > 0;
  }

  /**
   * Which of these refunded messages were paid from a validity period that has ended (their refund is
   * forfeited at once), each with that period's graceUntil. Ended: the tenant's graceUntil has passed, or the
   * ledger holds the end of a period after the message's debit, which the tenant row alone no longer shows:
   * - the period's own forfeiture, booked by a writer whose clock had passed graceUntil while this
   *   transaction's `now` (read before it waited for its locks) had not: crediting the refund would leave money
   *   past graceUntil that no second period row may forfeit (the tenant's every later write would fail);
   * - a top-up that started a new period (made at or after the graceUntil in force before it), also when the
   *   ended period had nothing left to forfeit: the refund must not become the new period's money.
   * A period ends at the earliest a grace month (28 days or more) after a debit made in it (debits stop at
   * validUntil), so younger messages, nearly all refunds, cost no query.
   */
  private async endedPeriods(
    m: EntityManager,
    tenant: LockedTenant,
    items: { id: string; createdAt: Date }[],
    now: Date,
  ): Promise<Map<string, Date>> {
    const ended = new Map<string, Date>();
    if (tenant.graceUntil && now >= tenant.graceUntil) {
      for (const it of items) ended.set(it.id, tenant.graceUntil);
      return ended;
    }
    const old = items.filter((it) => it.createdAt.getTime() <= now.getTime() - PERIOD_MIN_AGE_MS);
    if (old.length === 0) return ended;
    // The validity in force at a debit was set by a top-up less than 3 months (+ one month's slack) before it.
    const since = new Date(Math.min(...old.map((it) => it.createdAt.getTime())) - TOPUP_LOOKBACK_MS);
    const found = await rows<{ message_id: string; grace_until: Date | null }>(
      m,
      `WITH ends AS (
         SELECT seq, grace_until FROM ledger_entries
          WHERE tenant_id = $1 AND kind = 'expiry' AND message_id IS NULL
         UNION ALL
         SELECT seq, prev_grace FROM (
           SELECT seq, created_at, lag(grace_until) OVER (ORDER BY seq) AS prev_grace
             FROM ledger_entries WHERE tenant_id = $1 AND kind = 'topup' AND created_at >= $3) t
          WHERE created_at >= prev_grace)
       SELECT d.message_id, (SELECT e.grace_until FROM ends e WHERE e.seq > d.seq ORDER BY e.seq LIMIT 1) AS grace_until
         FROM ledger_entries d
        WHERE d.kind = 'debit' AND d.tenant_id = $1 AND d.message_id = ANY($2::uuid[])`,
      [tenant.id, old.map((it) => it.id), since],
    );
    for (const f of found) if (f.grace_until) ended.set(f.message_id, f.grace_until);
    return ended;
  }

  private async expireLocked(m: EntityManager, tenant: LockedTenant, now: Date): Promise<LockedTenant> {
    if (!tenant.graceUntil || now < tenant.graceUntil || tenant.balance <= 0) return tenant;
    await this.writeBalance(m, tenant.id, 0, now);
    await this.insertEntry(m, {
      tenantId: tenant.id,
      kind: 'expiry',
      amount: -tenant.balance,
      balanceAfter: 0,
      reference: 'validity and grace period ended',
      validUntil: tenant.validUntil,
      graceUntil: tenant.graceUntil,
      createdAt: now,
    });
    this.logger.log({ tenantId: tenant.id, forfeited: tenant.balance }, 'balance forfeited at end of grace');
    return { ...tenant, balance: 0 };
  }

  /**
   * Locks several tenant rows `FOR NO KEY UPDATE` in ascending id order (the one order every
   * multi-tenant transaction uses) and returns them in that order.
   */
  async lockTenants(m: EntityManager, tenantIds: string[]): Promise<LockedTenant[]> {
    const sorted = [...new Set(tenantIds)].sort();
    const out: LockedTenant[] = [];
    // One statement per row: the order of the locks is then the order of the statements, by construction.
    for (const id of sorted) out.push(await this.lockTenant(m, id));
    return out;
  }

  private async lockTenant(m: EntityManager, tenantId: string): Promise<LockedTenant> {
    const rows: { id: string; balance: string; valid_until: Date | null; grace_until: Date | null }[] = await m.query(
      `SELECT id, balance, valid_until, grace_until FROM tenants WHERE id = $1 FOR NO KEY UPDATE`,
      [tenantId],
    );
    if (rows.length === 0) throw notFound('Tenant');
    const r = rows[0];
    return { id: r.id, balance: Number(r.balance), validUntil: r.valid_until, graceUntil: r.grace_until };
  }

  private async insertEntry(m: EntityManager, e: NewEntry): Promise<LedgerEntry> {
    const id = uuidv7();
    const rows: { seq: string }[] = await m.query(
      `INSERT INTO ledger_entries (id, tenant_id, kind, amount, balance_after, message_id, reference, valid_until, grace_until, created_by, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING seq`,
      [
        id,
        e.tenantId,
        e.kind,
        e.amount,
        e.balanceAfter,
        e.messageId ?? null,
        e.reference ?? null,
        e.validUntil ?? null,
        e.graceUntil ?? null,
        e.createdBy ?? null,
        e.createdAt,
      ],
    );
    return Object.assign(new LedgerEntry(), {
      seq: Number(rows[0].seq),
      id,
      tenantId: e.tenantId,
      kind: e.kind,
      amount: e.amount,
      balanceAfter: e.balanceAfter,
      messageId: e.messageId ?? null,
      reference: e.reference ?? null,
      validUntil: e.validUntil ?? null,
      graceUntil: e.graceUntil ?? null,
      createdBy: e.createdBy ?? null,
      createdAt: e.createdAt,
    });
  }

  private assertAmount(amount: number, signed: boolean): void {
    if (!Number.isSafeInteger(amount) || (signed ? amount === 0 : amount <= 0)) {
      throw new Problem(
        'validation_failed',
        signed ? 'amount must be a non-zero integer' : 'amount must be a positive integer',
      );
    }
  }

  private checkedSum(balance: number, amount: number): number {
    const sum = balance + amount;
    if (sum > MAX_AMOUNT) throw new Problem('validation_failed', `The balance would exceed ${MAX_AMOUNT}`);
    return sum;
  }

  view(now: Date, balance: number, validUntil: Date | null, graceUntil: Date | null): BalanceView {
    return { balance, validUntil, graceUntil, state: balanceState(now, balance, validUntil, graceUntil) };
  }
}
