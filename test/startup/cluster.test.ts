import { GatewayProcess, closedPort, httpGet, newEncryptionKey, snapshotDist } from '../support/processes';
import { waitFor } from '../support/wait';
import { resolveWorkers, thisMachine } from '../../src/config/workers';

/** WORKERS > 1: a supervisor with N gateway processes sharing one port (src/cluster.ts). */
describe('cluster mode (WORKERS)', () => {
  let dist: { main: string; remove: () => void };
  beforeAll(async () => {
    dist = await snapshotDist();
  }, 180_000);
  afterAll(() => dist?.remove());

  const env = (port: number, extra: Record<string, string> = {}) => ({
    DATABASE_URL: process.env.TEST_DATABASE_URL!,
    PORT: String(port),
    HOST: '127.0.0.1',
    SANDBOX: 'false',
    NODE_ENV: 'production',
    JWT_SECRET: 'cluster-test-secret-cluster-test-secret-0123',
    ENCRYPTION_KEY: newEncryptionKey(),
    LOG_LEVEL: 'info',
    WORKERS: '2',
    ...extra,
  });
  const listeningPids = (out: string) =>
    out
      .split('\n')
      .filter((l) => l.includes('"gerbang listening"'))
      .map((l) => (JSON.parse(l) as { pid?: number }).pid ?? 0);

  it('runs two workers on one port, replaces a dead one, and stops all on SIGTERM (exit 0)', async () => {
    const port = await closedPort();
    const gw = new GatewayProcess('cluster', env(port), dist.main);
    try {
      await waitFor(
        'supervisor',
        () => gw.output(),
        (o) => o.includes('gerbang supervisor running'),
        60_000,
      );
      expect((await httpGet(`http://127.0.0.1:${port}/health/ready`)).status).toBe(200);
      const first = listeningPids(gw.output());
      expect(first).toHaveLength(2);
      expect(new Set(first).size).toBe(2);
      expect(first).not.toContain(gw.pid);

      process.kill(first[0], 'SIGKILL');
      await waitFor(
        'replacement worker',
        () => listeningPids(gw.output()),
        (p) => p.length === 3,
        30_000,
      );
      expect((await httpGet(`http://127.0.0.1:${port}/health/ready`)).status).toBe(200);

      gw.proc.kill('SIGTERM');
      const { code } = await gw.exited;
      expect(code).toBe(0);
      expect(gw.output().match(/"msg":"stopped"/g)?.length).toBe(2);
      for (const pid of listeningPids(gw.output())) expect(() => process.kill(pid, 0)).toThrow();
    } finally {
      if (gw.alive) gw.proc.kill('SIGKILL');
    }
  }, 120_000);

  it('WORKERS=auto (the default) runs as many processes as this machine gets, and logs why', async () => {
    const expected = resolveWorkers('auto', false, thisMachine, []);
    const port = await closedPort();
    const gw = new GatewayProcess('cluster-auto', env(port, { WORKERS: 'auto' }), dist.main);
    try {
      const marker = expected.workers > 1 ? '"gerbang supervisor running"' : '"gerbang listening"';
      const line = await waitFor(
        'startup log',
        () =>
          gw
            .output()
            .split('\n')
            .find((l) => l.includes(marker)),
        (l) => l !== undefined,
        60_000,
      );
      const logged = JSON.parse(line!) as { workers: number; workersReason: string };
      expect(logged).toMatchObject({ workers: expected.workers, workersReason: expected.reason });
      expect(logged.workersReason).toMatch(/^auto: \d+ usable CPUs/);
      expect((await httpGet(`http://127.0.0.1:${port}/health/ready`)).status).toBe(200);
    } finally {
      gw.proc.kill('SIGTERM');
      await gw.exited;
    }
  }, 120_000);

  it('refuses WORKERS > 1 without DATABASE_URL (exit 78)', async () => {
    const port = await closedPort();
    const gw = new GatewayProcess(
      'cluster-embedded',
      { ...env(port), DATABASE_URL: '', DATA_DIR: '/tmp/gerbang-cluster-test' },
      dist.main,
    );
    const { code } = await gw.exited;
    expect(code).toBe(78);
    expect(gw.output()).toContain('WORKERS > 1 needs DATABASE_URL');
  }, 60_000);
});
