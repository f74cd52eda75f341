import { normalizeKnobs, type SandboxKnobs } from './sandbox-knobs';
import type { SandboxAccountSpec } from './sandbox-state';

/**
 * `npm run sandbox`: the sandbox provider as its own process.
 *
 *   --port N          | SANDBOX_PORT      default 9099
 *   --host H          | SANDBOX_HOST      default 127.0.0.1 (the admin API has no auth: keep it local)
 *   --accounts LIST   | SANDBOX_ACCOUNTS  `user:pass:balance[:callbackUrl][,user2:…]`, default `demo:demo:1000000`
 *   --knobs JSON      | SANDBOX_KNOBS     e.g. '{"latencyMs":[20,80],"http500Rate":0.05}'
 *   --seed N          | SANDBOX_SEED      default 1
 *   --log-level L     | LOG_LEVEL         default info (debug logs every request, path only)
 *
 * A password or callback URL cannot contain `,` here (and a password no `:`): use the admin API for those.
 * Logs are JSON lines on stdout. SIGTERM/SIGINT close the server (pending DLRs are dropped).
 */

export function parseAccounts(list: string): SandboxAccountSpec[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      // The callback URL contains ':' itself, so only the first three separators split.
      const [username, password, balance, ...rest] = entry.split(':');
      if (!username || !password || !balance)
        throw new RangeError(`account "${username ?? ''}" must be user:pass:balance[:callbackUrl]`);
      const callbackUrl = rest.length ? rest.join(':') : undefined;
      if (callbackUrl) new URL(callbackUrl);
      return { username, password, balance, callbackUrl };
    });
}

export interface SandboxCliConfig {
  port: number;
  host: string;
  accounts: SandboxAccountSpec[];
  knobs: Partial<SandboxKnobs>;
  seed: number;
  logLevel: string;
}

export function parseArgs(argv: string[], env: NodeJS.ProcessEnv): SandboxCliConfig {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m) throw new RangeError(`unexpected argument ${argv[i]}`);
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new RangeError(`--${m[1]} needs a value`);
    flags.set(m[1], value);
  }
  const known = new Set(['port', 'host', 'accounts', 'knobs', 'seed', 'log-level']);
  for (const key of flags.keys()) if (!known.has(key)) throw new RangeError(`unknown flag --${key}`);

  const port = Number(flags.get('port') ?? env.SANDBOX_PORT ?? 9099);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError('port must be 0..65535');
  const seed = Number(flags.get('seed') ?? env.SANDBOX_SEED ?? 1);
  if (!Number.isInteger(seed)) throw new RangeError('seed must be an integer');
  const knobsJson = flags.get('knobs') ?? env.SANDBOX_KNOBS;
  let knobs: Partial<SandboxKnobs> = {};
  if (knobsJson) {
    try {
      knobs = normalizeKnobs(JSON.parse(knobsJson));
    } catch (err) {
      throw new RangeError(`knobs: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }
  return {
    port,
    host: flags.get('host') ?? env.SANDBOX_HOST ?? '127.0.0.1',
    accounts: parseAccounts(flags.get('accounts') ?? env.SANDBOX_ACCOUNTS ?? 'demo:demo:1000000'),
    knobs,
    seed,
    logLevel: flags.get('log-level') ?? env.LOG_LEVEL ?? 'info',
  };
}
