import { AUTO_MAX_WORKERS, cgroupCpuLimit, resolveWorkers } from './workers';

/** WORKERS: how many gateway processes, and how `auto` decides from the machine (docs/scaling.md). */
describe('resolveWorkers', () => {
  const on = (cores: number, cpuLimit?: number) => () => ({ cores, cpuLimit });
  const resolve = (raw: string | undefined, embedded: boolean, cores: number, cpuLimit?: number) => {
    const problems: string[] = [];
    const r = resolveWorkers(raw, embedded, on(cores, cpuLimit), problems);
    return { ...r, problems };
  };

  it('auto (the default) leaves one CPU for PostgreSQL and the network: 1 on 2 cores, 3 on 4', () => {
    expect(resolve(undefined, false, 2).workers).toBe(1);
    expect(resolve('', false, 1).workers).toBe(1);
    expect(resolve('auto', false, 4)).toMatchObject({ workers: 3, problems: [] });
    expect(resolve('AUTO', false, 4).reason).toBe(
      `auto: 4 usable CPUs − 1 left for PostgreSQL and the network, at most ${AUTO_MAX_WORKERS}`,
    );
  });

  it(`auto starts at most ${AUTO_MAX_WORKERS} processes (their pools within PostgreSQL's default 100 connections)`, () => {
    expect(resolve('auto', false, 64).workers).toBe(AUTO_MAX_WORKERS);
  });

  it("auto follows a container's CPU quota, not the host's cores", () => {
    expect(resolve('auto', false, 64, 2).workers).toBe(1);
    expect(resolve('auto', false, 64, 3.5)).toMatchObject({
      workers: 2,
      reason: expect.stringContaining('CPU quota 3.5'),
    });
    expect(resolve('auto', false, 2, 0.5).workers).toBe(1);
  });

  it('auto with the embedded database is one process, whatever the cores', () => {
    expect(resolve(undefined, true, 16)).toMatchObject({ workers: 1, reason: expect.stringContaining('embedded') });
  });

  it('takes an explicit number as given, and refuses anything else', () => {
    expect(resolve('6', false, 2)).toMatchObject({ workers: 6, problems: [] });
    expect(resolve('2', true, 2).workers).toBe(2); // refused later, with its own message (cluster.ts)
    for (const bad of ['0', '65', '-1', '2.5', 'many'])
      expect(resolve(bad, false, 2).problems).toEqual([
        `WORKERS must be auto or an integer between 1 and 64, got "${bad}"`,
      ]);
  });
});

describe('cgroupCpuLimit', () => {
  const files = (map: Record<string, string>) => (path: string) => {
    if (!(path in map)) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    return map[path];
  };

  it('reads cgroup v2 cpu.max: a quota in CPUs, or none for "max"', () => {
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu.max': '150000 100000\n' }))).toBe(1.5);
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' }))).toBeUndefined();
  });

  it('falls back to cgroup v1 cfs quota/period (-1: none), and to none without either', () => {
    const v1 = (quota: string) =>
      files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': quota, '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' });
    expect(cgroupCpuLimit(v1('200000\n'))).toBe(2);
    expect(cgroupCpuLimit(v1('-1\n'))).toBeUndefined();
    expect(cgroupCpuLimit(files({}))).toBeUndefined();
    expect(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu.max': 'garbage' }))).toBeUndefined();
  });
});
