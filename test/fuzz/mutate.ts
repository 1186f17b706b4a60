// Mutators as fast-check arbitraries. A value is a small recipe (seed index + mutation list), not the bytes: it
// shrinks to the fewest, simplest mutations and prints short, and `materialize` rebuilds the bytes from it.
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { SIGNATURE_SPANS, type Seed } from './seeds';

/**
 * Positions are raw numbers taken modulo the input length when applied, drawn mostly inside the first 64 bytes or
 * the first 4 KiB, where the headers are.
 */
type Op =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'field'; at: number; width: 2 | 4; littleEndian: boolean; value: number }
  | { op: 'truncate'; at: number }
  | { op: 'delete'; at: number; length: number }
  | { op: 'duplicate'; at: number; from: number; length: number }
  | { op: 'insert'; at: number; bytes: number[] }
  | { op: 'splice'; at: number; other: number; from: number };

export interface Mutant {
  /** Index into the target's seeds. */
  seed: number;
  ops: Op[];
  /** Recompute PNG chunk CRCs afterwards, so that mutations get past libpng's checksum test to what it guards. */
  fixCrcs: boolean;
}

// AFL's "interesting values" and the extremes of 16- and 32-bit fields, signed and unsigned.
const FIELD_VALUES = [0, 1, 2, 3, 4, 8, 16, 24, 32, 64, 127, 128, 255, 256, 512, 1000, 1024, 4096, 0x7fff, 0x8000, 0xffff,
  0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

const position = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 63 }) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 4095 }) },
  { weight: 2, arbitrary: fc.nat() },
);
const chunkLength = fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 64 }) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 65536 }) });

function opArbitrary(partners: number): fc.Arbitrary<Op> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ op: fc.constant('flip' as const), at: position, bit: fc.integer({ min: 0, max: 7 }) }) },
    {
      weight: 3,
      arbitrary: fc.record({ op: fc.constant('set' as const), at: position, value: fc.oneof(fc.constantFrom(0x00, 0xff, 0x7f, 0x80), fc.integer({ min: 0, max: 255 })) }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant('field' as const),
        at: position,
        width: fc.constantFrom(2 as const, 4 as const),
        littleEndian: fc.boolean(),
        value: fc.oneof(
          { weight: 3, arbitrary: fc.constantFrom(...FIELD_VALUES) },
          // Structure values: BMP header sizes, TIFF tag ids, types and compressions, chunk counts.
          { weight: 2, arbitrary: fc.integer({ min: 0, max: 511 }) },
          { weight: 1, arbitrary: fc.integer({ min: -0x80000000, max: 0x7fffffff }) },
        ),
      }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('truncate' as const), at: position }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), at: position, length: chunkLength }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('duplicate' as const), at: position, from: position, length: chunkLength }) },
    {
      weight: 1,
      arbitrary: fc.record({ op: fc.constant('insert' as const), at: position, bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 64 }) }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('splice' as const), at: position, other: fc.nat({ max: partners - 1 }), from: position }) },
  );
}

/** A seed of `seeds` with 1 to 5 mutations; splices take their tail from any of `partners`. */
export function mutantArbitrary(seeds: readonly Seed[], partners: readonly Seed[]): fc.Arbitrary<Mutant> {
  return fc.record({
    seed: fc.nat({ max: seeds.length - 1 }),
    ops: fc.array(opArbitrary(partners.length), { minLength: 1, maxLength: 5 }),
    fixCrcs: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  });
}

/**
 * The bytes a mutant stands for; never writes into a seed's own buffer. With `keepSignature`, the seed's format
 * signature is put back afterwards: a target of one format should spend its time inside that format's parser
 * (header-any covers damaged signatures).
 */
export function materialize(mutant: Mutant, seeds: readonly Seed[], partners: readonly Seed[], keepSignature = false): Uint8Array {
  let data = seeds[mutant.seed].bytes;
  let owned = false;
  const replace = (...parts: Uint8Array[]): void => {
    [data, owned] = [join(parts), true];
  };
  const writable = (): Uint8Array => {
    if (!owned) replace(data);
    return data;
  };
  for (const op of mutant.ops) {
    // Positions inside the data for overwrites, and up to its end for cuts and insertions.
    const inside = data.length === 0 ? 0 : op.at % data.length;
    const cut = op.at % (data.length + 1);
    switch (op.op) {
      case 'flip':
        if (data.length > 0) writable()[inside] ^= 1 << op.bit;
        break;
      case 'set':
        if (data.length > 0) writable()[inside] = op.value;
        break;
      case 'field': {
        if (data.length < op.width) break;
        const at = Math.min(inside, data.length - op.width);
        const bytes = writable();
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
        if (op.width === 2) view.setUint16(at, op.value & 0xffff, op.littleEndian);
        else view.setUint32(at, op.value >>> 0, op.littleEndian);
        break;
      }
      case 'truncate':
        data = data.subarray(0, cut);
        break;
      case 'delete':
        replace(data.subarray(0, cut), data.subarray(cut + op.length));
        break;
      case 'duplicate': {
        const from = op.from % (data.length + 1);
        replace(data.subarray(0, cut), data.subarray(from, from + op.length), data.subarray(cut));
        break;
      }
      case 'insert':
        replace(data.subarray(0, cut), Uint8Array.from(op.bytes), data.subarray(cut));
        break;
      case 'splice': {
        const other = partners[op.other].bytes;
        replace(data.subarray(0, cut), other.subarray(op.from % (other.length + 1)));
        break;
      }
    }
  }
  const { format, bytes: original } = seeds[mutant.seed];
  if (keepSignature && format !== undefined) {
    for (const [start, end] of SIGNATURE_SPANS[format]) {
      if (end <= data.length && data.subarray(start, end).some((b, i) => b !== original[start + i])) writable().set(original.subarray(start, end), start);
    }
  }
  if (mutant.fixCrcs && format === 'png') fixPngCrcs(writable());
  return data;
}

/** `parts` in one new buffer: unzeroed, as every byte is written (a megabyte copies about 6x faster than with slice()). */
function join(parts: Uint8Array[]): Uint8Array {
  const out = Buffer.allocUnsafeSlow(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Rewrites the CRC of every complete chunk, following the (possibly mutated) chunk lengths from the signature on. */
function fixPngCrcs(data: Uint8Array): void {
  const view = new DataView(data.buffer, data.byteOffset, data.length);
  for (let at = 8; at + 12 <= data.length;) {
    const end = at + 8 + view.getUint32(at);
    if (end + 4 > data.length) break;
    view.setUint32(end, crc32(data.subarray(at + 4, end)));
    at = end + 4;
  }
}
