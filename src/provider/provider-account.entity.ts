import { Column, CreateDateColumn, Entity, PrimaryColumn, UpdateDateColumn } from 'typeorm';

/** bigint columns arrive as strings; the threshold is bounded to 2^53-1 by a CHECK, so a number is exact. */
const bigintOrNull = {
  from: (v: string | null): number | null => (v === null ? null : Number(v)),
  to: (v: number | null | undefined) => v,
};

@Entity('provider_accounts')
export class ProviderAccount {
  @PrimaryColumn('uuid') id: string;
  @Column('text') name: string;
  @Column('text', { name: 'base_url' }) baseUrl: string;
  @Column('text') username: string;
  /** AES-256-GCM ciphertext (see common/secret-box.ts). Never leaves the process decrypted except to the provider. */
  @Column('text', { name: 'password_enc' }) passwordEnc: string;
  @Column('text', { name: 'send_method' }) sendMethod: 'post' | 'get';
  @Column('text', { name: 'dlr_token' }) dlrToken: string;
  @Column('text') status: 'active' | 'disabled';
  @Column('numeric', { name: 'last_balance', nullable: true }) lastBalance: string | null;
  @Column('timestamptz', { name: 'last_balance_expires_at', nullable: true }) lastBalanceExpiresAt: Date | null;
  @Column('timestamptz', { name: 'last_balance_checked_at', nullable: true }) lastBalanceCheckedAt: Date | null;
  @Column('timestamptz', { name: 'held_until', nullable: true }) heldUntil: Date | null;
  @Column('text', { name: 'held_reason', nullable: true }) heldReason: string | null;
  /** Per-account send settings; null = the environment's default (see ProviderAccountsService.settingsOf). */
  @Column('integer', { name: 'send_rate_per_second', nullable: true }) sendRatePerSecond: number | null;
  @Column('integer', { name: 'max_in_flight', nullable: true }) maxInFlight: number | null;
  @Column('bigint', { name: 'low_balance_threshold', nullable: true, transformer: bigintOrNull })
  lowBalanceThreshold: number | null;
  @Column('timestamptz', { name: 'next_balance_poll_at', nullable: true }) nextBalancePollAt: Date | null;
  @Column('text', { name: 'balance_alert_reasons', array: true }) balanceAlertReasons: string[];
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt: Date;
}
