import { Inject, Injectable, Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Clock } from '../common/clock';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { rows as sqlRows } from '../database/raw-rows';
import { MESSAGE_COLUMNS, MessageRow, messageDto, publicStatus } from '../messaging';
import { WebhookEvent, derivedEventId } from './webhook-events';
import { webhookRelayLag } from './webhook-metrics';
import { WebhooksService } from './webhooks.service';

const CURSOR = 'message_status';
/** A sequence number missing this long is taken as a rolled-back transaction and skipped. */
export const GAP_GRACE_MS = 60_000;
const BATCH = 1000;

type EventRow = {
  seq: string;
  ev_message_id: string;
  ev_tenant_id: string;
  ev_status: string;
  ev_created_at: Date;
  wanted: boolean;
} & Partial<MessageRow>;

/**
 * Turns `message_events` rows (every status change of every message, written by the messaging
 * module in the transaction that changes the status) into `message.status` deliveries: an outbox
 * relay, so the messaging code does not call the webhook module at all.
 *
 * One process relays at a time: a tick holds the cursor row (`FOR UPDATE SKIP LOCKED`; others skip
 * the tick). Rows are read by `seq` after the cursor. An identity value is taken at insert, not at
 * commit, so a lower seq can become visible after a higher one: a missing seq is a gap that is
 * re-read on every tick (by primary key) until it appears or GAP_GRACE_MS passes (a rolled-back
 * transaction never fills it). Rows beyond a gap are relayed at once; the durable cursor only
 * advances to just before the oldest open gap, and a relay that restarts or takes over re-reads
 * from there: the deliveries' unique (tenant_id, event_id), with the event id derived from the seq,
 * makes the re-read harmless.
 *
 * Reads of `message_events`/`messages` here are read-only; the messaging module owns those tables.
 */
@Injectable()
export class MessageStatusRelay {
  private readonly logger = new Logger(MessageStatusRelay.name);
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private wakeUp: (() => void) | null = null;
  /** The cursor this process last wrote; if the stored one differs, another process relayed since. */
  private cursor: number | null = null;
  private highest = 0;
  private gaps = new Map<number, number>();
  private readonly pollMs: number;
  /** Called after a tick created deliveries (the worker claims at once instead of at its next poll). */
  onDeliveries: () => void = () => {};

  constructor(
    private readonly dataSource: DataSource,
    private readonly webhooks: WebhooksService,
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly clock: Clock,
  ) {
    this.pollMs = config.webhooks.pollMs;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wakeUp?.();
    await this.loopDone;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      let n = 0;
      try {
        n = await this.tick();
      } catch (e) {
        this.logger.error({ err: (e as Error).message }, 'message-status relay tick failed');
      }
      if (this.running && n < BATCH)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.pollMs);
          this.wakeUp = () => {
            clearTimeout(timer);
            resolve();
          };
        });
    }
  }

  /** One relay step. Returns how many new message_events rows it read (0: nothing, or another process holds the cursor). */
  async tick(): Promise<number> {
    let created = 0;
    // The in-memory gap state changes inside the transaction; if it does not commit, forget it and
    // start again from the stored cursor (re-reading is harmless, skipping is not).
    const read = await this.dataSource
      .transaction(async (m) => {
        const held: { last_seq: string }[] = await m.query(
          `SELECT last_seq FROM webhook_relay_cursors WHERE name = $1 FOR UPDATE SKIP LOCKED`,
          [CURSOR],
        );
        if (held.length === 0) return 0;
        const stored = Number(held[0].last_seq);
        if (stored !== this.cursor) {
          this.highest = stored;
          this.gaps.clear();
        }
        const gapSeqs = [...this.gaps.keys()];
        const rows: EventRow[] = await m.query(
          `SELECT ev.seq, ev.message_id AS ev_message_id, ev.tenant_id AS ev_tenant_id, ev.status AS ev_status,
                ev.created_at AS ev_created_at, (e.tenant_id IS NOT NULL) AS wanted,
                ${MESSAGE_COLUMNS.split(',')
                  .map((c) => `msg.${c.trim()}`)
                  .join(', ')}
           FROM (SELECT * FROM (SELECT * FROM message_events WHERE seq > $1 ORDER BY seq LIMIT $2) fresh
                 UNION ALL
                 SELECT * FROM message_events WHERE seq = ANY ($3::bigint[])) ev
           LEFT JOIN webhook_endpoints e
                  ON e.tenant_id = ev.tenant_id AND e.enabled AND 'message.status' = ANY (e.events)
           LEFT JOIN messages msg ON msg.id = ev.message_id AND e.tenant_id IS NOT NULL
          ORDER BY ev.seq`,
          [this.highest, BATCH, gapSeqs],
        );
        const events: WebhookEvent[] = [];
        for (const r of rows) {
          if (!r.wanted || !r.id) continue;
          const seq = Number(r.seq);
          events.push({
            tenantId: r.ev_tenant_id,
            type: 'message.status',
            messageId: r.ev_message_id,
            eventId: derivedEventId(`message_events:${seq}`),
            sequence: seq,
            occurredAt: r.ev_created_at,
            // The Message as stored now, with the status this event reports (a later change has its own event).
            data: { ...messageDto(r as MessageRow), status: publicStatus(r.ev_status) },
          });
        }
        created = await this.webhooks.enqueue(m, events);

        const nowMs = this.clock.now().getTime(); // the injected clock: tests move it past GAP_GRACE_MS
        let fresh = 0;
        for (const r of rows) {
          const seq = Number(r.seq);
          if (this.gaps.delete(seq)) continue;
          fresh++;
          for (let s = this.highest + 1; s < seq && s - this.highest <= 100_000; s++) this.gaps.set(s, nowMs);
          this.highest = Math.max(this.highest, seq);
        }
        for (const [s, since] of this.gaps) if (nowMs - since > GAP_GRACE_MS) this.gaps.delete(s);
        let next = this.highest;
        for (const s of this.gaps.keys()) if (s - 1 < next) next = s - 1;
        if (next !== stored)
          await m.query(`UPDATE webhook_relay_cursors SET last_seq = $2, updated_at = now() WHERE name = $1`, [
            CURSOR,
            next,
          ]);
        this.cursor = next;
        return fresh;
      })
      .catch((e: unknown) => {
        this.cursor = null;
        throw e;
      });
    if (created > 0) this.onDeliveries();
    if (read > 0 || Math.random() < 0.05) await this.refreshLag();
    return read;
  }

  private async refreshLag(): Promise<void> {
    const [r] = await sqlRows<{ lag: string }>(
      this.dataSource,
      `SELECT coalesce((SELECT max(seq) FROM message_events), 0) - c.last_seq AS lag
         FROM webhook_relay_cursors c WHERE c.name = $1`,
      [CURSOR],
    );
    if (r) webhookRelayLag.set(Math.max(0, Number(r.lag)));
  }
}
