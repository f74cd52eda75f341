import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

export type AdminRole = 'admin' | 'billing';

@Entity('admin_users')
export class AdminUser {
  @PrimaryColumn('uuid') id: string;
  @Column('text') email: string;
  @Column('text', { name: 'password_hash' }) passwordHash: string;
  @Column('text') role: AdminRole;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
}
