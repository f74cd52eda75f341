/**
 * SMS segment counting per 3GPP TS 23.038 (alphabets) and TS 23.040 (concatenation),
 * and the units the gateway bills (PROVIDER.md "Segments").
 *
 * Pure and allocation-light: it runs for every accepted message (thousands per second),
 * so characters are classified through a flat lookup table rather than Sets or regexes.
 */

export type SmsEncoding = 'GSM-7' | 'UCS-2';

export interface SegmentCount {
  encoding: SmsEncoding;
  /** Parts a handset/carrier sends, per TS 23.038/23.040. */
  segments: number;
  /** Septets for GSM-7 (extension-table characters count 2), UTF-16 code units for UCS-2. */
  units: number;
  /** User-perceived length, counted in Unicode code points (an emoji is 1). */
  characters: number;
  /** Distinct characters that forced UCS-2, in order of first appearance (empty for GSM-7). */
  nonGsmCharacters: string[];
  /** Units the tenant is charged: never fewer than the provider's own 160-characters rule. */
  billedSegments: number;
}

/** Default ceiling on segments for one message; the configured value lives in the app config. */
export const MAX_SEGMENTS_DEFAULT = 10;

export const GSM7_SINGLE_SEPTETS = 160;
/** 160 septets minus the 7 septets (6-octet UDH, padded) of the concatenation header. */
export const GSM7_PART_SEPTETS = 153;
export const UCS2_SINGLE_UNITS = 70;
/** 70 UTF-16 units minus the 6-octet concatenation header (3 units). */
export const UCS2_PART_UNITS = 67;
/** The provider's naive rule: 160 characters per SMS, whatever the encoding. */
export const PROVIDER_CHARACTERS_PER_SMS = 160;

/**
 * TS 23.038 §6.2.1 GSM 7-bit default alphabet, in table order (index = septet value).
 * 0x1B is the escape to the extension table, not a character: it is left as a placeholder that
 * is excluded below, so a literal U+001B in a text is not GSM and forces UCS-2.
 * 0x09 is 'Ç' as printed in the table (the brief and most gateways map it so).
 */
const GSM7_BASIC =
  '@£$¥èéùìòÇ\nØø\rÅå' +
  'Δ_ΦΓΛΩΠΨΣΘΞ\u001BÆæßÉ' +
  ' !"#¤%&\'()*+,-./' +
  '0123456789:;<=>?' +
  '¡ABCDEFGHIJKLMNO' +
  'PQRSTUVWXYZÄÖÑÜ§' +
  '¿abcdefghijklmno' +
  'pqrstuvwxyzäöñüà';

/** TS 23.038 §6.2.1.1 extension table characters: sent as ESC + char, so 2 septets each. */
const GSM7_EXTENSION = '\f^{}\\[~]|€';

const ESCAPE = 0x1b;

/**
 * Septet cost per UTF-16 code unit: 0 = not in GSM-7, 1 = basic table, 2 = extension table.
 * The highest GSM character is '€' (U+20AC), so anything above the table's end is not GSM.
 */
const GSM7_SEPTETS: Uint8Array = (() => {
  let highest = 0;
  for (const table of [GSM7_BASIC, GSM7_EXTENSION]) {
    for (let i = 0; i < table.length; i++) highest = Math.max(highest, table.charCodeAt(i));
  }
  const septets = new Uint8Array(highest + 1);
  for (let i = 0; i < GSM7_BASIC.length; i++) {
    const code = GSM7_BASIC.charCodeAt(i);
    if (code !== ESCAPE) septets[code] = 1;
  }
  for (let i = 0; i < GSM7_EXTENSION.length; i++) septets[GSM7_EXTENSION.charCodeAt(i)] = 2;
  return septets;
})();

function gsmSeptets(codeUnit: number): number {
  return codeUnit < GSM7_SEPTETS.length ? GSM7_SEPTETS[codeUnit] : 0;
}

function isHighSurrogate(codeUnit: number): boolean {
  return codeUnit >= 0xd800 && codeUnit <= 0xdbff;
}

function isLowSurrogate(codeUnit: number): boolean {
  return codeUnit >= 0xdc00 && codeUnit <= 0xdfff;
}

/*
 * Concatenated parts are packed greedily, the way a handset builds them: an indivisible item
 * (an ESC+char pair in GSM-7, a surrogate pair in UCS-2) that does not fit whole in the current
 * part starts the next one, leaving the current part one unit short. So the part count can exceed
 * ceil(units / perPart) by the items that straddle a boundary.
 */

function gsm7PackedParts(text: string): number {
  let parts = 1;
  let used = 0;
  for (let i = 0; i < text.length; i++) {
    const septets = gsmSeptets(text.charCodeAt(i));
    if (used + septets > GSM7_PART_SEPTETS) {
      parts++;
      used = 0;
    }
    used += septets;
  }
  return parts;
}

function ucs2PackedParts(text: string): number {
  let parts = 1;
  let used = 0;
  for (let i = 0; i < text.length; i++) {
    const units =
      isHighSurrogate(text.charCodeAt(i)) && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1)) ? 2 : 1;
    if (used + units > UCS2_PART_UNITS) {
      parts++;
      used = 0;
    }
    used += units;
    i += units - 1;
  }
  return parts;
}

/**
 * The provider's rule (PROVIDER.md): ceil(characters / 160), at least 1, characters being code points.
 * With that reading the TS 23.038 count is never lower (septets and UTF-16 units are ≥ code points,
 * and 153/67 < 160), so `billedSegments` equals `segments` today; the max() keeps the billing
 * promise ("never fewer than the provider's rule") true if the provider's counting turns out to
 * differ, e.g. counting UTF-8 bytes.
 */
export function providerSegmentCount(characters: number): number {
  return Math.max(1, Math.ceil(characters / PROVIDER_CHARACTERS_PER_SMS));
}

/**
 * Counts the segments of `text` per 3GPP TS 23.038.
 *
 * Empty text counts as 1 segment (and 1 billed segment): an empty SMS is still one SMS on the wire.
 * The API rejects empty text before it gets here, so this only matters for preview-like callers.
 *
 * Encoding is GSM-7 when every code point is in the default alphabet or its extension table,
 * otherwise UCS-2 for the whole message (there is no per-part encoding switch).
 * Lone surrogates (malformed UTF-16) count as one non-GSM character of one unit.
 */
export function countSegments(text: string): SegmentCount {
  const length = text.length;

  // One pass classifies every code point: septet total, code points, the non-GSM characters.
  // A second (packing) pass only runs for multi-part texts with indivisible items, so the common
  // case (short GSM-7) is a single loop with no allocation beyond the result.
  let characters = 0;
  let septetTotal = 0;
  let hasExtension = false;
  let nonGsm: Set<string> | undefined;

  for (let i = 0; i < length; i++) {
    const codeUnit = text.charCodeAt(i);
    characters++;
    if (isHighSurrogate(codeUnit) && i + 1 < length && isLowSurrogate(text.charCodeAt(i + 1))) {
      // Astral code points (emoji, etc.) are never GSM.
      (nonGsm ??= new Set()).add(text.slice(i, i + 2));
      i++;
      continue;
    }
    const septets = gsmSeptets(codeUnit);
    if (septets === 0) {
      (nonGsm ??= new Set()).add(text[i]);
    } else {
      septetTotal += septets;
      if (septets === 2) hasExtension = true;
    }
  }

  const providerCount = providerSegmentCount(characters);

  if (nonGsm === undefined) {
    let segments: number;
    if (septetTotal <= GSM7_SINGLE_SEPTETS) {
      segments = 1;
    } else if (!hasExtension) {
      segments = Math.ceil(septetTotal / GSM7_PART_SEPTETS);
    } else {
      segments = gsm7PackedParts(text);
    }
    return {
      encoding: 'GSM-7',
      segments,
      units: septetTotal,
      characters,
      nonGsmCharacters: [],
      billedSegments: Math.max(segments, providerCount),
    };
  }

  // UCS-2 (in practice UTF-16, as every modern handset decodes it): units are UTF-16 code units.
  const units = length;
  let segments: number;
  if (units <= UCS2_SINGLE_UNITS) {
    segments = 1;
  } else if (characters === units) {
    // No surrogate pairs: nothing indivisible, plain division.
    segments = Math.ceil(units / UCS2_PART_UNITS);
  } else {
    segments = ucs2PackedParts(text);
  }
  return {
    encoding: 'UCS-2',
    segments,
    units,
    characters,
    nonGsmCharacters: [...nonGsm],
    billedSegments: Math.max(segments, providerCount),
  };
}
