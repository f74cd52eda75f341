import { Column, Entity, PrimaryColumn } from 'typeorm';
import { bigintNumber } from '../database/bigint.transformer';

export type LedgerKind = 'topup' | 'debit' | 'refund' | 'expiry' | 'adjustment';

/** Append-only (a trigger refuses UPDATE and DELETE). `amount` is signed: sum(amount) == tenants.balance. */
@Entity('ledger_entries')
export class LedgerEntry {
  @Column('bigint', { transformer: bigintNumber }) seq: number;
  @PrimaryColumn('uuid') id: string;
  @Column('uuid', { name: 'tenant_id' }) tenantId: string;
  @Column('text') kind: LedgerKind;
  @Column('bigint', { transformer: bigintNumber }) amount: number;
  @Column('bigint', { name: 'balance_after', transformer: bigintNumber }) balanceAfter: number;
  @Column('uuid', { name: 'message_id', nullable: true }) messageId: string | null;
  @Column('text', { nullable: true }) reference: string | null;
  @Column('timestamptz', { name: 'valid_until', nullable: true }) validUntil: Date | null;
  @Column('timestamptz', { name: 'grace_until', nullable: true }) graceUntil: Date | null;
  @Column('uuid', { name: 'created_by', nullable: true }) createdBy: string | null;
  @Column('timestamptz', { name: 'created_at' }) createdAt: Date;
}
