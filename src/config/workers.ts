import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';

/** What the machine gives this process: CPUs it may run on, and a container's CPU quota if one is set. */
export interface Machine {
  /** `os.availableParallelism()`: CPUs in this process's affinity mask. */
  cores: number;
  /** The cgroup CPU quota in CPUs (e.g. 1.5 for `docker run --cpus=1.5`), undefined when unlimited. */
  cpuLimit: number | undefined;
}

/** `WORKERS=auto` never starts more: 4 × DB_POOL_SIZE (20) = 80 of PostgreSQL's default max_connections (100). */
export const AUTO_MAX_WORKERS = 4;

type Read = (path: string) => string;
const readText: Read = (path) => readFileSync(path, 'utf8');

/**
 * The container's CPU quota in CPUs: cgroup v2 `cpu.max` ("max 100000" or "150000 100000"), else cgroup
 * v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1: none). Node counts CPUs by affinity only, so without
 * this a container limited to 2 CPUs on a 64-core host would start processes for 64.
 */
export function cgroupCpuLimit(read: Read = readText): number | undefined {
  const attempt = (f: () => number | undefined): number | undefined => {
    try {
      return f();
    } catch {
      return undefined;
    }
  };
  const v2 = (): number => {
    const [quota, period] = read('/sys/fs/cgroup/cpu.max').trim().split(/\s+/);
    return quota === 'max' ? Infinity : Number(quota) / Number(period);
  };
  const v1 = (): number => {
    const quota = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us').trim());
    const period = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us').trim());
    return quota < 0 ? Infinity : quota / period;
  };
  const limit = attempt(v2) ?? attempt(v1);
  return limit !== undefined && Number.isFinite(limit) && limit > 0 ? limit : undefined;
}

export function thisMachine(): Machine {
  return { cores: availableParallelism(), cpuLimit: cgroupCpuLimit() };
}

/**
 * `WORKERS`: a number of gateway processes (1–64), or `auto` (the default): one process with the embedded
 * database (it serves one process); otherwise the usable CPUs (the affinity mask, capped by a container's
 * quota) minus one, at least 1 and at most AUTO_MAX_WORKERS. The core left over is for what shares the
 * machine in a small install, PostgreSQL and the kernel's network work: on this project's 2-core machine a
 * second process measured no gain (docs/benchmark.md), and auto gives 1 there. `reason` says how it decided.
 */
export function resolveWorkers(
  raw: string | undefined,
  embedded: boolean,
  machine: () => Machine,
  problems: string[],
): { workers: number; reason: string } {
  const value = (raw ?? '').trim().toLowerCase();
  if (value === '' || value === 'auto') {
    if (embedded) return { workers: 1, reason: 'auto: the embedded database serves one process' };
    const { cores, cpuLimit } = machine();
    const usable = Math.max(1, cpuLimit === undefined ? cores : Math.min(cores, Math.floor(cpuLimit)));
    const workers = Math.min(AUTO_MAX_WORKERS, Math.max(1, usable - 1));
    const quota = cpuLimit === undefined ? '' : ` (${cores} cores, CPU quota ${cpuLimit})`;
    return {
      workers,
      reason: `auto: ${usable} usable CPUs${quota} − 1 left for PostgreSQL and the network, at most ${AUTO_MAX_WORKERS}`,
    };
  }
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 64) {
    problems.push(`WORKERS must be auto or an integer between 1 and 64, got "${raw}"`);
    return { workers: 1, reason: 'invalid' };
  }
  return { workers: Number(value), reason: 'WORKERS' };
}
