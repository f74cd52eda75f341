import { parseAccounts, parseArgs } from './sandbox-cli';

describe('sandbox CLI', () => {
  it('defaults to 127.0.0.1:9099 and a demo account', () => {
    expect(parseArgs([], {})).toMatchObject({
      port: 9099,
      host: '127.0.0.1',
      seed: 1,
      accounts: [{ username: 'demo', password: 'demo', balance: '1000000' }],
    });
  });

  it('reads env, and flags win over env', () => {
    const env = { SANDBOX_PORT: '9100', SANDBOX_ACCOUNTS: 'a:b:10', SANDBOX_KNOBS: '{"http500Rate":0.1}' };
    expect(parseArgs([], env)).toMatchObject({
      port: 9100,
      accounts: [{ username: 'a' }],
      knobs: { http500Rate: 0.1 },
    });
    expect(parseArgs(['--port', '0', '--knobs={"latencyMs":5}'], env)).toMatchObject({
      port: 0,
      knobs: { latencyMs: [5, 5] },
    });
  });

  it('parses accounts with a callback URL (which contains colons)', () => {
    expect(parseAccounts('u1:p1:100.50:http://127.0.0.1:3000/v1/dlr/tok, u2:p2:0')).toEqual([
      { username: 'u1', password: 'p1', balance: '100.50', callbackUrl: 'http://127.0.0.1:3000/v1/dlr/tok' },
      { username: 'u2', password: 'p2', balance: '0', callbackUrl: undefined },
    ]);
  });

  it.each([
    [['--port', 'x']],
    [['--nope', '1']],
    [['--knobs', '{"http500Rate":3}']],
    [['--accounts', 'onlyuser']],
    [['stray']],
  ])('refuses %p', (argv) => {
    expect(() => parseArgs(argv, {})).toThrow(RangeError);
  });
});
