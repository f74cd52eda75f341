import { DUMMY_HASH, hashPassword, verifyPassword } from './password';

describe('password hashing', () => {
  it('verifies the right password and refuses a wrong one', async () => {
    const h = await hashPassword('correct horse battery');
    expect(h.startsWith('scrypt$32768$8$1$')).toBe(true);
    expect(h).not.toContain('correct horse');
    await expect(verifyPassword('correct horse battery', h)).resolves.toBe(true);
    await expect(verifyPassword('correct horse batterx', h)).resolves.toBe(false);
  });
  it('salts: two hashes of one password differ', async () => {
    expect(await hashPassword('pw-12345678')).not.toBe(await hashPassword('pw-12345678'));
  });
  it('refuses malformed stored hashes and the dummy hash', async () => {
    await expect(verifyPassword('x', 'plain')).resolves.toBe(false);
    await expect(verifyPassword('anything', DUMMY_HASH)).resolves.toBe(false);
  });
});
