import { ValueTransformer } from 'typeorm';

/**
 * PostgreSQL bigint arrives as a string. Money in Gerbang is capped at 2^53 - 1 by the API and by
 * CHECK constraints, so a JS number holds it exactly; anything larger is a bug and throws.
 */
export const bigintNumber: ValueTransformer = {
  to: (v: number | null | undefined) => v,
  from: (v: string | null) => {
    if (v === null || v === undefined) return v;
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw new Error(`bigint out of safe range: ${v}`);
    return n;
  },
};
