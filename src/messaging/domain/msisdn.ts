import { parsePhoneNumberFromString } from 'libphonenumber-js/max';

/**
 * Normalises a recipient number to the form the provider takes: `62` + the national significant
 * number, digits only (e.g. `6281234567890`). Only Indonesian mobile numbers are accepted.
 *
 * Accepted spellings: `+62…`, `62…`, `0062…`, `08…`, with spaces, dashes, dots and parentheses
 * anywhere (`+62 812-3456-7890`, `(0812) 3456.7890`). A `+` is only allowed first.
 * Deliberately not accepted: a bare national number without its trunk `0` (`812…`: ambiguous with
 * other countries' numbers), the trunk `0` after the country code (`+62 0812…`), tabs, NBSP and any
 * other character; all such input is an `invalid_msisdn` for the caller.
 *
 * Cost: this runs for every message (thousands per second, 1,000 per batch). Malformed input is
 * rejected by a single character scan and a length/prefix check; libphonenumber (~15 µs per call
 * with the `max` metadata) only sees candidates that already look like an Indonesian mobile number.
 *
 * Why `libphonenumber-js/max`: only the max metadata carries the per-type patterns, so `getType()`
 * can tell MOBILE from FIXED_LINE (`min` validates lengths only and would accept landlines).
 * In libphonenumber-js 1.13 the Indonesian mobile pattern is `8[1-35-9]\d{7,10}` (9–12 digits after
 * `62`), which covers every 08xx mobile range in use (0811–0819, 0821–0823, 0831–0838, 0851–0853,
 * 0855–0859, 0877–0878, 0881–0889, 0895–0899) and also the sandbox's test prefix `62899…` (inside
 * 0895–0899), so sandbox numbers such as `6289912345678` are valid without any special case. The spec pins this per range, so a metadata update that drops a range
 * fails the tests instead of silently refusing real recipients.
 */

export type MsisdnResult = { ok: true; msisdn: string } | { ok: false; reason: string };

const INDONESIA_COUNTRY_CODE = '62';

/** A formatted Indonesian number is at most ~20 characters (`+62 (812) 3456-7890`); longer is junk. */
const MAX_INPUT_LENGTH = 32;

/**
 * Indonesian mobile national significant number: `8`, then an operator digit (not 0 = special
 * services 080x, not 4 = unallocated), then 7–10 digits. Mirrors libphonenumber's metadata; it is
 * the cheap gate, libphonenumber stays the authority.
 */
const INDONESIAN_MOBILE_NSN = /^8[1-35-9]\d{7,10}$/;

const CHAR_0 = 0x30;
const CHAR_9 = 0x39;
const CHAR_PLUS = 0x2b;

function isSeparator(codeUnit: number): boolean {
  // space, '(', ')', '-', '.'
  return codeUnit === 0x20 || codeUnit === 0x28 || codeUnit === 0x29 || codeUnit === 0x2d || codeUnit === 0x2e;
}

function reject(reason: string): MsisdnResult {
  return { ok: false, reason };
}

export function normalizeMsisdn(input: string): MsisdnResult {
  if (typeof input !== 'string') return reject('The number must be a string.');
  if (input.length > MAX_INPUT_LENGTH) return reject('The number is too long.');

  // One scan: keep digits, drop separators, refuse anything else (control characters, NUL, letters).
  let digits = '';
  let international = false;
  for (let i = 0; i < input.length; i++) {
    const codeUnit = input.charCodeAt(i);
    if (codeUnit >= CHAR_0 && codeUnit <= CHAR_9) {
      digits += input[i];
    } else if (codeUnit === CHAR_PLUS) {
      if (international || digits.length > 0) return reject("A '+' is only allowed at the start of the number.");
      international = true;
    } else if (!isSeparator(codeUnit)) {
      return reject('The number may only contain digits, spaces, dashes, dots, parentheses and a leading +.');
    }
  }
  if (digits.length === 0) return reject('The number is empty.');

  let nationalNumber: string;
  if (international) {
    if (!digits.startsWith(INDONESIA_COUNTRY_CODE)) return reject('Only Indonesian (+62) numbers are supported.');
    nationalNumber = digits.slice(2);
  } else if (digits.startsWith('00')) {
    if (!digits.startsWith('0062')) return reject('Only Indonesian (+62) numbers are supported.');
    nationalNumber = digits.slice(4);
  } else if (digits.startsWith(INDONESIA_COUNTRY_CODE)) {
    nationalNumber = digits.slice(2);
  } else if (digits.startsWith('0')) {
    nationalNumber = digits.slice(1);
  } else {
    return reject('The number must start with +62, 62 or 0.');
  }

  if (!INDONESIAN_MOBILE_NSN.test(nationalNumber)) {
    return reject(
      nationalNumber.startsWith('8')
        ? 'Not a valid Indonesian mobile number (wrong length or unknown prefix).'
        : 'Not an Indonesian mobile number (mobile numbers start with 08 or 628).',
    );
  }

  const phoneNumber = parsePhoneNumberFromString(`+${INDONESIA_COUNTRY_CODE}${nationalNumber}`);
  if (!phoneNumber || !phoneNumber.isValid() || phoneNumber.getType() !== 'MOBILE') {
    return reject('Not a valid Indonesian mobile number.');
  }
  return { ok: true, msisdn: `${INDONESIA_COUNTRY_CODE}${phoneNumber.nationalNumber}` };
}
