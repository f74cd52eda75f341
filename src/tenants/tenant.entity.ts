import { Column, CreateDateColumn, Entity, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import { bigintNumber } from '../database/bigint.transformer';

export type TenantStatus = 'active' | 'suspended';

@Entity('tenants')
export class Tenant {
  @PrimaryColumn('uuid') id: string;
  @Column('text') name: string;
  @Column('uuid', { name: 'provider_account_id' }) providerAccountId: string;
  @Column('text') status: TenantStatus;
  @Column('bigint', { name: 'price_per_segment', transformer: bigintNumber }) pricePerSegment: number;
  @Column('bigint', { name: 'low_balance_threshold', transformer: bigintNumber }) lowBalanceThreshold: number;
  @Column('integer', { name: 'rate_limit_per_second' }) rateLimitPerSecond: number;
  /** Only billing/ledger.service.ts writes this column, always together with a ledger row. */
  @Column('bigint', { transformer: bigintNumber }) balance: number;
  @Column('timestamptz', { name: 'valid_until', nullable: true }) validUntil: Date | null;
  @Column('timestamptz', { name: 'grace_until', nullable: true }) graceUntil: Date | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt: Date;
}
