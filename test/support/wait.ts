/**
 * The one way tests wait for something that happens in the background: poll, and throw on timeout
 * with what was awaited and the last value seen. Never returns silently with a value that does not
 * satisfy the condition (the old local copy in messaging.e2e-spec did, and the assertion after it
 * then failed far from the cause).
 *
 * - `waitFor(what, probe, done)`: until `done(value)` holds; returns that value.
 * - `waitFor(what, probe)`: until `probe()` returns a truthy value; returns it.
 */
export function waitFor<T>(
  what: string,
  probe: () => T | Promise<T>,
  done: (value: T) => boolean,
  timeoutMs?: number,
  everyMs?: number,
): Promise<T>;
export function waitFor<T>(
  what: string,
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  done?: undefined,
  timeoutMs?: number,
  everyMs?: number,
): Promise<T>;
export async function waitFor<T>(
  what: string,
  probe: () => T | Promise<T>,
  done: (value: T) => boolean = (value) => Boolean(value),
  timeoutMs = 10_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last value: ${describe(value)}`);
    await new Promise<void>((resolve) => setTimeout(resolve, everyMs));
  }
}

function describe(value: unknown): string {
  try {
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text.length > 2000 ? `${text.slice(0, 2000)}…` : text;
  } catch {
    return String(value);
  }
}
