import { randomBytes } from 'node:crypto';
import { SecretBox } from './secret-box';

describe('SecretBox', () => {
  const box = new SecretBox(randomBytes(32));
  it('round-trips and never stores the plaintext', () => {
    const sealed = box.seal('s3cret-pässword');
    expect(sealed).not.toContain('s3cret');
    expect(box.open(sealed)).toBe('s3cret-pässword');
  });
  it('uses a fresh IV per seal', () => {
    expect(box.seal('x')).not.toBe(box.seal('x'));
  });
  it('refuses tampered ciphertext and a wrong key', () => {
    const sealed = box.seal('hello');
    const parts = sealed.split('.');
    const ct = Buffer.from(parts[3], 'base64url');
    ct[0] ^= 1;
    parts[3] = ct.toString('base64url');
    expect(() => box.open(parts.join('.'))).toThrow();
    expect(() => new SecretBox(randomBytes(32)).open(sealed)).toThrow();
  });
});
