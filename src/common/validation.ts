import { ArgumentMetadata, Injectable, ValidationError, ValidationPipe } from '@nestjs/common';
import { applyDecorators } from '@nestjs/common';
import {
  IsInt,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  MinLength,
  NotEquals,
  ValidateBy,
  ValidateIf,
} from 'class-validator';
import { parseInstant } from './instant';
import { FieldError, Problem } from './problem';

/** Largest integer amount the API accepts for money: Number.MAX_SAFE_INTEGER (2^53 - 1). */
export const MAX_AMOUNT = Number.MAX_SAFE_INTEGER;

function flatten(errors: ValidationError[], parent = ''): FieldError[] {
  const out: FieldError[] = [];
  for (const e of errors) {
    const field = parent ? `${parent}.${e.property}` : e.property;
    if (e.constraints) {
      for (const message of Object.values(e.constraints)) out.push({ field, message });
    }
    if (e.children && e.children.length) out.push(...flatten(e.children, field));
  }
  return out;
}

/**
 * Global validation: whitelist + reject unknown fields + transform, and errors as problem+json
 * `validation_failed` with one entry per field. A body that is not a JSON object (an array, a
 * string, null) is refused before validation: class-validator would otherwise validate nothing.
 */
@Injectable()
export class AppValidationPipe extends ValidationPipe {
  constructor() {
    super({
      whitelist: true,
      forbidNonWhitelisted: true,
      transform: true,
      forbidUnknownValues: true,
      stopAtFirstError: false,
      validationError: { target: false, value: false },
      exceptionFactory: (errors: ValidationError[]) => {
        const fieldErrors = flatten(errors);
        return new Problem(
          'validation_failed',
          fieldErrors.map((e) => `${e.field}: ${e.message}`).join('; '),
          fieldErrors,
        );
      },
    });
  }

  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    // Bodies and query strings only: path params are ids, and a malformed id is simply not found (404).
    const bad =
      metadata.type === 'body' || metadata.type === 'query'
        ? findUnstorableString(value, metadata.type === 'body' ? '' : (metadata.data ?? ''))
        : null;
    if (bad !== null) {
      // PostgreSQL cannot store NUL, and lone surrogates are not text: refuse, never a 500.
      throw new Problem('validation_failed', `${bad || 'value'} contains NUL or invalid Unicode`, [
        { field: bad || metadata.type, message: 'contains NUL or invalid Unicode' },
      ]);
    }
    if (metadata.type === 'body' && metadata.metatype && isDtoClass(metadata.metatype)) {
      if (value === undefined || value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new Problem('validation_failed', 'The request body must be a JSON object');
      }
    }
    return super.transform(value, metadata);
  }
}

/** The path of the first string (or key) holding NUL or a lone surrogate, or null. */
export function findUnstorableString(value: unknown, path: string, depth = 0): string | null {
  if (typeof value === 'string') return value.includes('\u0000') || !value.isWellFormed() ? path : null;
  if (value === null || typeof value !== 'object' || depth > 20) return null;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const p = path ? `${path}.${k}` : k;
    if (k.includes('\u0000') || !k.isWellFormed()) return p;
    const found = findUnstorableString(v, p, depth + 1);
    if (found !== null) return found;
  }
  return null;
}

function isDtoClass(t: unknown): boolean {
  return typeof t === 'function' && ![String, Boolean, Number, Array, Object].includes(t as never);
}

/** A positive integer amount of money in the tenant's currency unit, at most 2^53 - 1. */
export function IsAmount(opts: { allowZero?: boolean; signed?: boolean } = {}) {
  const min = opts.signed ? -MAX_AMOUNT : opts.allowZero ? 0 : 1;
  const rules = [IsInt({ message: '$property must be an integer' }), Min(min), Max(MAX_AMOUNT)];
  // A signed amount (an adjustment) of zero moves nothing: refuse it here so the error names the field.
  if (opts.signed && !opts.allowZero) rules.push(NotEquals(0, { message: '$property must not be zero' }));
  return applyDecorators(...rules);
}

/**
 * A non-empty, trimmed-length-checked name. At most `max` characters as PostgreSQL's `length()` counts them
 * (code points; the columns' CHECKs): `MaxLength` (validator's isLength, kept for the OpenAPI maxLength) counts
 * a surrogate pair as one and ignores variation selectors, so 150 × "❤️" (300 code points) passed it and failed
 * the CHECK, a 500.
 */
export function IsName(max = 200) {
  return applyDecorators(
    IsString(),
    MinLength(1),
    MaxLength(max),
    Matches(new RegExp(`^[\\s\\S]{0,${max}}$`, 'u'), { message: `$property must be at most ${max} characters` }),
    Matches(/\S/, { message: '$property must not be blank' }),
  );
}

/**
 * A PATCH field that may be left out but is never null: `IsOptional` skips the other rules for null too, and a
 * null then reached the service (a `.trim()` of null, a NOT NULL column: a 500). Use `IsOptional` only where
 * null means something (e.g. "back to the default").
 */
export const IsOmittable = () => ValidateIf((_object: unknown, value: unknown) => value !== undefined);

/**
 * An ISO 8601 string (with `@IsDateString({ strict: true })`, which keeps its `date-time` format in the OpenAPI
 * document) that `parseInstant` reads as a time (UTC unless it carries an offset). ISO 8601 also allows forms
 * the API does not read (week dates `2026-W05-3`, ordinal dates `2026-123`, the basic format `20261202T1800`, an
 * hour alone): refused here, by name, instead of reaching SQL as an invalid Date (a 500).
 */
export function IsReadableInstant() {
  return ValidateBy({
    name: 'isReadableInstant',
    validator: {
      validate: (value: unknown) => typeof value === 'string' && parseInstant(value) !== null,
      defaultMessage: () => '$property must be an ISO 8601 instant such as 2026-11-30T00:00:00+07:00',
    },
  });
}
